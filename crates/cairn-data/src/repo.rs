//! A project's versioned data: adding paths to the store, their status, restoring versions,
//! verifying and collecting the store.
//!
//! The project root is the nearest folder (from the working directory up) holding `cairn.yaml`,
//! `.cairn/` or `.git`; every path a user names must resolve inside it. The store and the stat
//! cache live under the Cairn home (`<home>/data`), shared by all projects of that home.
use crate::cas::Cas;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::hash::{hash_file, SMALL_FILE};
use crate::manifest::{check_relative, Entry, EntryKind, Manifest};
use crate::pointer::{Kind, Pointer, SUFFIX};
use crate::progress::Progress;
use crate::statcache::StatCache;
use crate::walk::{scan, StatKey};
use cairn_core::model::{DatasetVersion, NewDatasetVersion};
use cairn_core::DatasetStore;
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::fs::{self, File, Permissions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The bytes a path held, as hashed (and possibly stored).
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// File or directory.
    pub kind: Kind,
    /// Digest of the file, or of the directory's manifest.
    pub digest: Digest,
    /// Total bytes.
    pub size: u64,
    /// Number of files.
    pub files: u64,
    /// Detected format.
    pub format: String,
    /// Permission bits of a single file.
    pub mode: Option<u32>,
    /// The directory's manifest.
    pub manifest: Option<Manifest>,
    /// Files whose bytes were read (the rest came from the stat cache).
    pub hashed_files: u64,
    /// Objects new to the store.
    pub new_objects: u64,
    /// Bytes of those objects.
    pub new_bytes: u64,
}

/// What `add` did.
#[derive(Debug, Clone)]
pub struct AddOutcome {
    /// The hashed tree.
    pub snapshot: Snapshot,
    /// The pointer file written.
    pub pointer_file: PathBuf,
    /// The recorded version.
    pub version: DatasetVersion,
    /// False when the newest version already had these bytes.
    pub created: bool,
}

/// State of one tracked path against its pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Same bytes as the pointer names.
    Unchanged,
    /// Different bytes.
    Modified,
    /// The path does not exist.
    Missing,
}

/// One pointer's status.
#[derive(Debug, Clone)]
pub struct Status {
    /// Pointer file, relative to the root.
    pub pointer: String,
    /// Data path, relative to the root.
    pub path: String,
    /// What the pointer says.
    pub recorded: Pointer,
    /// The workspace against it.
    pub state: State,
    /// Whether every object of the recorded version is in the local store.
    pub in_store: bool,
}

/// What a restore did.
#[derive(Debug, Clone, Default)]
pub struct Restored {
    /// Files written.
    pub written: u64,
    /// Files already right.
    pub unchanged: u64,
    /// Files and folders removed.
    pub removed: u64,
}

/// What `verify` found.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Objects checked.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Objects whose bytes do not hash to their name, with the problem.
    pub corrupt: Vec<String>,
    /// Objects that recorded versions or pointers need but the store lacks.
    pub missing: Vec<String>,
}

/// What `gc` did (or would do).
#[derive(Debug, Clone, Default)]
pub struct GcReport {
    /// Objects kept.
    pub kept: u64,
    /// Objects removed.
    pub removed: u64,
    /// Their bytes.
    pub removed_bytes: u64,
    /// Temp files of interrupted writes removed.
    pub temp_files: u64,
}

/// A project's data.
pub struct DataRepo {
    root: PathBuf,
    home: PathBuf,
    cas: Cas,
    cache: StatCache,
    meta: Arc<dyn DatasetStore>,
    user: String,
}

/// The nearest folder from `start` up holding `cairn.yaml`, `.cairn/` or `.git`; else `start`.
pub fn find_root(start: &Path) -> PathBuf {
    for dir in start.ancestors() {
        if dir.join("cairn.yaml").is_file()
            || dir.join(".cairn").is_dir()
            || dir.join(".git").exists()
        {
            return dir.to_path_buf();
        }
    }
    start.to_path_buf()
}

/// The format a file name suggests.
pub fn format_of(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("csv") => "csv",
        Some("tsv") => "tsv",
        Some("parquet" | "pq") => "parquet",
        Some("json") => "json",
        Some("jsonl" | "ndjson") => "jsonl",
        Some("txt") => "text",
        Some("npy" | "npz") => "numpy",
        Some("onnx") => "onnx",
        Some("png" | "jpg" | "jpeg" | "gif" | "webp" | "bmp") => "image",
        _ => "binary",
    }
}

fn tree_format<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let formats: HashSet<&str> = names.map(format_of).collect();
    match formats.len() {
        0 => "empty".into(),
        1 => formats.into_iter().next().unwrap_or("binary").into(),
        _ => "mixed".into(),
    }
}

/// Checks a dataset name: letters, digits, `.`, `_`, `-`, at most 200 characters.
pub fn check_dataset_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid dataset name {name:?}: use letters, digits, '.', '_' and '-' (at most 200)"
        )))
    }
}

/// Parses `NAME@VERSION`.
pub fn parse_version_ref(text: &str) -> Result<(String, i64)> {
    let (name, version) = text.rsplit_once('@').ok_or_else(|| {
        Error::invalid(format!(
            "{text:?} is not NAME@VERSION (for example iris.csv@2)"
        ))
    })?;
    check_dataset_name(name)?;
    let version = version
        .parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| Error::invalid(format!("{text:?}: version must be a positive number")))?;
    Ok((name.to_string(), version))
}

fn rel_string(rel: &Path) -> Result<String> {
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str().ok_or_else(|| {
                Error::invalid(format!("{}: paths must be UTF-8", rel.display()))
            })?),
            _ => {
                return Err(Error::invalid(format!(
                    "{}: not a plain relative path",
                    rel.display()
                )))
            }
        }
    }
    Ok(parts.join("/"))
}

/// An entry of a tree being replaced: what is there now.
enum Present {
    File {
        abs: PathBuf,
        stat: StatKey,
        mode: u32,
    },
    Dir,
    Other,
}

fn scan_present(root: &Path) -> Result<Vec<(String, Present)>> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        for entry in fs::read_dir(&dir).at(&dir)? {
            let entry = entry.at(&dir)?;
            let abs = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let meta = fs::symlink_metadata(&abs).at(&abs)?;
            let ft = meta.file_type();
            if ft.is_dir() {
                out.push((child.clone(), Present::Dir));
                stack.push((abs, child));
            } else if ft.is_file() {
                out.push((
                    child,
                    Present::File {
                        stat: StatKey::of(&meta),
                        mode: meta.mode() & 0o7777,
                        abs,
                    },
                ));
            } else {
                out.push((child, Present::Other));
            }
        }
    }
    Ok(out)
}

fn remove_any(path: &Path) -> Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).at(path),
    };
    if meta.is_dir() {
        // A read-only folder cannot be emptied; make it writable first.
        let _ = fs::set_permissions(path, Permissions::from_mode(0o700));
        fs::remove_dir_all(path).at(path)
    } else {
        fs::remove_file(path).at(path)
    }
}

impl DataRepo {
    /// Opens the data of the project at `root`, with the store under `home_data`.
    pub fn open(root: &Path, home_data: &Path, meta: Arc<dyn DatasetStore>) -> Result<DataRepo> {
        let root = fs::canonicalize(root).at(root)?;
        fs::create_dir_all(home_data).at(home_data)?;
        let home = fs::canonicalize(home_data).at(home_data)?;
        let cas = Cas::open(&home)?;
        let cache = StatCache::load(&home.join("statcache"));
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .or_else(|_| std::env::var("USERNAME"))
            .unwrap_or_else(|_| "unknown".into());
        Ok(DataRepo {
            root,
            home,
            cas,
            cache,
            meta,
            user,
        })
    }

    /// The project root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The object store.
    pub fn cas(&self) -> &Cas {
        &self.cas
    }

    /// `<home>/data`.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The metadata store.
    pub fn meta(&self) -> &Arc<dyn DatasetStore> {
        &self.meta
    }

    /// Writes the stat cache back.
    pub fn save_cache(&self) -> Result<()> {
        self.cache.save()
    }

    /// Resolves a path the user typed (relative to `cwd`) to an absolute path inside the root
    /// and its `/`-separated path relative to the root. Refuses paths that leave the root,
    /// through `..`, absolute paths or symbolic links.
    pub fn resolve(&self, cwd: &Path, path: &Path) -> Result<(PathBuf, String)> {
        let joined = cwd.join(path);
        let mut lexical = PathBuf::new();
        for c in joined.components() {
            match c {
                Component::ParentDir => {
                    lexical.pop();
                }
                Component::CurDir => {}
                other => lexical.push(other),
            }
        }
        let name = lexical.file_name().map(|n| n.to_os_string());
        let parent = lexical.parent().unwrap_or(Path::new("/"));
        let parent = fs::canonicalize(parent)
            .map_err(|_| Error::NotFound(format!("{}: folder does not exist", parent.display())))?;
        let abs = match name {
            Some(n) => parent.join(n),
            None => parent,
        };
        let rel = abs.strip_prefix(&self.root).map_err(|_| {
            Error::invalid(format!(
                "{} is outside the project root {}",
                path.display(),
                self.root.display()
            ))
        })?;
        let rel = rel_string(rel)?;
        if let Ok(m) = fs::symlink_metadata(&abs) {
            if m.file_type().is_symlink() {
                return Err(Error::invalid(format!(
                    "{} is a symbolic link: Cairn versions regular files and directories only",
                    path.display()
                )));
            }
        }
        Ok((abs, rel))
    }

    /// The digest of one file, from the stat cache or by reading it; stored when `store`.
    fn file_digest(
        &self,
        abs: &Path,
        stat: StatKey,
        store: bool,
        progress: &dyn Progress,
        counters: &Counters,
    ) -> Result<Digest> {
        if let Some(d) = self.cache.get(abs, &stat) {
            if !store || self.cas.contains(&d) {
                progress.advance(stat.size);
                return Ok(d);
            }
        }
        counters.hashed.fetch_add(1, Ordering::Relaxed);
        let digest = if store {
            let stored = self.cas.store_file(abs, progress)?;
            if stored.new {
                counters.new_objects.fetch_add(1, Ordering::Relaxed);
                counters.new_bytes.fetch_add(stored.size, Ordering::Relaxed);
            }
            stored.digest
        } else if stat.size <= SMALL_FILE {
            let bytes = fs::read(abs).at(abs)?;
            progress.advance(bytes.len() as u64);
            Digest::of(&bytes)
        } else {
            let file = File::open(abs).at(abs)?;
            hash_file(&file, stat.size, None, progress).at(abs)?
        };
        self.cache.put(abs, stat, digest);
        Ok(digest)
    }

    /// Hashes a file or tree (in parallel), storing its objects when `store`.
    pub fn snapshot(&self, abs: &Path, store: bool, progress: &dyn Progress) -> Result<Snapshot> {
        let meta = fs::symlink_metadata(abs).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::NotFound(format!("{} does not exist", abs.display()))
            } else {
                Error::Io {
                    path: abs.to_path_buf(),
                    source: e,
                }
            }
        })?;
        self.cache.begin_scan();
        let counters = Counters::default();
        let name = abs
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if meta.file_type().is_file() {
            progress.add_total(meta.len());
            let digest = self.file_digest(abs, StatKey::of(&meta), store, progress, &counters)?;
            return Ok(Snapshot {
                kind: Kind::File,
                digest,
                size: meta.len(),
                files: 1,
                format: format_of(&name).into(),
                mode: Some(meta.mode() & 0o7777),
                manifest: None,
                hashed_files: counters.hashed.into_inner(),
                new_objects: counters.new_objects.into_inner(),
                new_bytes: counters.new_bytes.into_inner(),
            });
        }
        if !meta.file_type().is_dir() {
            return Err(Error::invalid(format!(
                "{} is not a regular file or directory",
                abs.display()
            )));
        }
        let (files, dirs) = scan(abs)?;
        progress.add_total(files.iter().map(|f| f.stat.size).sum());
        let file_entries: Vec<Entry> = files
            .par_iter()
            .map(|f| {
                let digest = self.file_digest(&f.abs, f.stat, store, progress, &counters)?;
                Ok(Entry {
                    path: f.rel.clone(),
                    kind: EntryKind::File,
                    mode: f.mode,
                    size: f.stat.size,
                    digest: Some(digest),
                })
            })
            .collect::<Result<_>>()?;
        let mut entries = file_entries;
        entries.extend(dirs.iter().map(|d| Entry {
            path: d.rel.clone(),
            kind: EntryKind::Dir,
            mode: d.mode,
            size: 0,
            digest: None,
        }));
        let manifest = Manifest::new(entries);
        let digest = if store {
            let bytes = manifest.to_bytes();
            if !self.cas.contains(&Digest::of(&bytes)) {
                counters.new_objects.fetch_add(1, Ordering::Relaxed);
                counters
                    .new_bytes
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }
            self.cas.store_bytes(&bytes)?
        } else {
            manifest.digest()
        };
        let listed: HashSet<&[u8]> = files.iter().map(|f| f.abs.as_os_str().as_bytes()).collect();
        self.cache.retain_under(abs, &|p| listed.contains(p));
        Ok(Snapshot {
            kind: Kind::Directory,
            digest,
            size: manifest.size(),
            files: manifest.file_count(),
            format: tree_format(files.iter().map(|f| f.rel.as_str())),
            mode: None,
            manifest: Some(manifest),
            hashed_files: counters.hashed.into_inner(),
            new_objects: counters.new_objects.into_inner(),
            new_bytes: counters.new_bytes.into_inner(),
        })
    }

    /// `cairn data add`: stores the bytes, records a version and writes the pointer file.
    pub fn add(
        &self,
        cwd: &Path,
        path: &Path,
        name: Option<&str>,
        message: &str,
        progress: &dyn Progress,
    ) -> Result<AddOutcome> {
        let (abs, rel) = self.resolve(cwd, path)?;
        if rel.is_empty() {
            return Err(Error::invalid(
                "cannot add the project root itself: add a file or folder inside it",
            ));
        }
        if rel.split('/').any(|c| c == ".git" || c == ".cairn") {
            return Err(Error::invalid(format!("{rel} is inside .git or .cairn")));
        }
        if rel.ends_with(SUFFIX) {
            return Err(Error::invalid(format!("{rel} is a Cairn pointer file")));
        }
        let file_name = abs
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = name.map(str::to_owned).unwrap_or_else(|| file_name.clone());
        check_dataset_name(&name)?;
        let snapshot = self.snapshot(&abs, true, progress)?;
        let (version, created) = self.meta.record_dataset_version(
            &NewDatasetVersion {
                name: name.clone(),
                digest: snapshot.digest.to_hex(),
                kind: snapshot.kind.as_str().into(),
                size: snapshot.size as i64,
                files: snapshot.files as i64,
                format: snapshot.format.clone(),
                path: rel,
                message: message.into(),
                user_id: self.user.clone(),
            },
            cairn_core::now_millis(),
        )?;
        let pointer = Pointer {
            path: file_name,
            kind: snapshot.kind,
            hash: "blake3".into(),
            digest: snapshot.digest,
            size: snapshot.size,
            files: snapshot.files,
            format: snapshot.format.clone(),
            mode: snapshot.mode,
            dataset: Some(name),
            version: Some(version.version),
        };
        let pointer_file = Pointer::file_for(&abs);
        pointer.write(&pointer_file)?;
        self.ignore_in_git(&abs)?;
        self.cache.save()?;
        Ok(AddOutcome {
            snapshot,
            pointer_file,
            version,
            created,
        })
    }

    /// In a git work tree, lists the data path in its folder's `.gitignore` (as DVC does), so
    /// only the pointer file is committed.
    fn ignore_in_git(&self, abs: &Path) -> Result<()> {
        if !self.root.join(".git").exists() {
            return Ok(());
        }
        let (Some(dir), Some(name)) = (abs.parent(), abs.file_name()) else {
            return Ok(());
        };
        let line = format!("/{}", name.to_string_lossy());
        let file = dir.join(".gitignore");
        let text = fs::read_to_string(&file).unwrap_or_default();
        if text.lines().any(|l| l.trim() == line) {
            return Ok(());
        }
        let mut new = text;
        if !new.is_empty() && !new.ends_with('\n') {
            new.push('\n');
        }
        new.push_str(&line);
        new.push('\n');
        crate::fsutil::write_atomic(&file, new.as_bytes())
    }

    /// Every pointer file under the root (skipping `.git`, `.cairn` and tracked folders).
    pub fn pointers(&self) -> Result<Vec<(PathBuf, Pointer)>> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let mut entries: Vec<_> = fs::read_dir(&dir)
                .at(&dir)?
                .filter_map(|e| e.ok())
                .collect();
            entries.sort_by_key(|e| e.file_name());
            let names: HashSet<String> = entries
                .iter()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            for entry in entries {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Ok(ft) = entry.file_type() else { continue };
                if ft.is_dir() {
                    let tracked = names.contains(&format!("{name}{SUFFIX}"));
                    if !tracked && !matches!(name.as_str(), ".git" | ".cairn" | "node_modules") {
                        stack.push(entry.path());
                    }
                } else if ft.is_file() && name.ends_with(SUFFIX) && name.len() > SUFFIX.len() {
                    let path = entry.path();
                    out.push((path.clone(), Pointer::read(&path)?));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    fn rel(&self, abs: &Path) -> String {
        abs.strip_prefix(&self.root)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| abs.display().to_string())
    }

    /// Whether all objects of a version are in the local store.
    pub fn complete(&self, kind: Kind, digest: &Digest) -> bool {
        match kind {
            Kind::File => self.cas.contains(digest),
            Kind::Directory => match self.cas.read(digest).and_then(|b| Manifest::from_bytes(&b)) {
                Ok(m) => {
                    let digests: Vec<Digest> = m.files().filter_map(|e| e.digest).collect();
                    digests.len() == m.file_count() as usize && self.cas.contains_all(&digests)
                }
                Err(_) => false,
            },
        }
    }

    /// `cairn data status`: every pointer against the workspace.
    pub fn status(&self, progress: &dyn Progress) -> Result<Vec<Status>> {
        let mut out = Vec::new();
        for (file, pointer) in self.pointers()? {
            let data = pointer.data_path(&file);
            let state = match fs::symlink_metadata(&data) {
                Err(_) => State::Missing,
                Ok(_) => {
                    let snap = self.snapshot(&data, false, progress)?;
                    if snap.digest == pointer.digest {
                        State::Unchanged
                    } else {
                        State::Modified
                    }
                }
            };
            out.push(Status {
                pointer: self.rel(&file),
                path: self.rel(&data),
                in_store: self.complete(pointer.kind, &pointer.digest),
                recorded: pointer,
                state,
            });
        }
        self.cache.save()?;
        Ok(out)
    }

    /// The digest of a workspace file, if it is safe to overwrite (its bytes are in the store).
    fn saved(&self, abs: &Path, stat: StatKey) -> Result<bool> {
        let d = self.file_digest(
            abs,
            stat,
            false,
            &crate::progress::NoProgress,
            &Counters::default(),
        )?;
        Ok(self.cas.contains(&d))
    }

    fn write_file(
        &self,
        digest: &Digest,
        mode: u32,
        target: &Path,
        progress: &dyn Progress,
    ) -> Result<()> {
        let dir = target.parent().unwrap_or(Path::new("."));
        let tmp = tempfile::Builder::new()
            .prefix(crate::fsutil::TEMP_PREFIX)
            .tempfile_in(dir)
            .at(dir)?;
        self.cas.copy_to(digest, tmp.as_file(), progress)?;
        fs::set_permissions(tmp.path(), Permissions::from_mode(mode)).at(tmp.path())?;
        tmp.persist(target).map_err(|e| Error::Io {
            path: target.to_path_buf(),
            source: e.error,
        })?;
        Ok(())
    }

    /// Makes `target` hold exactly the version `(kind, digest)`: copies from the store
    /// (never links), removes what the version lacks. Refuses to destroy bytes that are not in
    /// the store unless `force`.
    pub fn restore(
        &self,
        kind: Kind,
        digest: &Digest,
        file_mode: Option<u32>,
        target: &Path,
        force: bool,
        progress: &dyn Progress,
    ) -> Result<Restored> {
        let mut report = Restored::default();
        let present = fs::symlink_metadata(target).ok();
        let unsaved_error = |what: Vec<String>| {
            let more = if what.len() > 10 {
                format!(" and {} more", what.len() - 10)
            } else {
                String::new()
            };
            Error::invalid(format!(
                "{} would be overwritten but {} not in the store: `cairn data add` them first, \
                 or pass --force to discard them: {}{more}",
                target.display(),
                if what.len() == 1 { "it is" } else { "they are" },
                what.iter().take(10).cloned().collect::<Vec<_>>().join(", ")
            ))
        };
        match kind {
            Kind::File => {
                let mode = file_mode.unwrap_or(0o644);
                if !self.cas.contains(digest) {
                    return Err(Error::Missing(*digest));
                }
                if let Some(m) = &present {
                    if m.file_type().is_file() {
                        let stat = StatKey::of(m);
                        let cur =
                            self.file_digest(target, stat, false, progress, &Counters::default())?;
                        if cur == *digest {
                            if m.mode() & 0o7777 != mode {
                                fs::set_permissions(target, Permissions::from_mode(mode))
                                    .at(target)?;
                            }
                            report.unchanged = 1;
                            return Ok(report);
                        }
                        if !force && !self.cas.contains(&cur) {
                            return Err(unsaved_error(vec![self.rel(target)]));
                        }
                    } else {
                        if !force {
                            return Err(unsaved_error(vec![self.rel(target)]));
                        }
                        remove_any(target)?;
                        report.removed += 1;
                    }
                }
                progress.add_total(
                    fs::metadata(self.cas.object_path(digest))
                        .map(|m| m.len())
                        .unwrap_or(0),
                );
                self.write_file(digest, mode, target, progress)?;
                report.written = 1;
                Ok(report)
            }
            Kind::Directory => {
                let manifest = Manifest::from_bytes(&self.cas.read(digest)?)?;
                for e in manifest.files() {
                    let d = e
                        .digest
                        .ok_or_else(|| Error::invalid("manifest file without digest"))?;
                    if !self.cas.contains(&d) {
                        return Err(Error::Missing(d));
                    }
                }
                if let Some(m) = &present {
                    if !m.file_type().is_dir() {
                        let safe = force
                            || (m.file_type().is_file() && self.saved(target, StatKey::of(m))?);
                        if !safe {
                            return Err(unsaved_error(vec![self.rel(target)]));
                        }
                        remove_any(target)?;
                        report.removed += 1;
                    }
                }
                fs::create_dir_all(target).at(target)?;
                let wanted: HashMap<&str, &Entry> = manifest
                    .entries
                    .iter()
                    .map(|e| (e.path.as_str(), e))
                    .collect();
                let now = if fs::symlink_metadata(target).is_ok_and(|m| m.is_dir()) {
                    scan_present(target)?
                } else {
                    vec![]
                };
                let mut keep_files: HashSet<String> = HashSet::new();
                let mut chmod: Vec<(PathBuf, u32)> = Vec::new();
                let mut remove: Vec<String> = Vec::new();
                let mut unsaved = Vec::new();
                for (rel, p) in &now {
                    let leftover = rel
                        .rsplit('/')
                        .next()
                        .is_some_and(|n| n.starts_with(crate::fsutil::TEMP_PREFIX));
                    if leftover {
                        remove.push(rel.clone());
                        continue;
                    }
                    let want = wanted.get(rel.as_str());
                    match p {
                        Present::File { abs, stat, mode } => {
                            let cur = self.file_digest(
                                abs,
                                *stat,
                                false,
                                progress,
                                &Counters::default(),
                            )?;
                            match want {
                                Some(e) if e.kind == EntryKind::File && e.digest == Some(cur) => {
                                    keep_files.insert(rel.clone());
                                    if *mode != e.mode {
                                        chmod.push((abs.clone(), e.mode));
                                    }
                                    continue;
                                }
                                _ => {}
                            }
                            if !self.cas.contains(&cur) {
                                unsaved.push(format!("{}/{rel}", self.rel(target)));
                            }
                            if want.is_none_or(|e| e.kind == EntryKind::Dir) {
                                remove.push(rel.clone());
                            }
                        }
                        Present::Dir => match want {
                            Some(e) if e.kind == EntryKind::Dir => {}
                            _ => remove.push(rel.clone()),
                        },
                        Present::Other => {
                            unsaved.push(format!("{}/{rel}", self.rel(target)));
                            remove.push(rel.clone());
                        }
                    }
                }
                if !unsaved.is_empty() && !force {
                    return Err(unsaved_error(unsaved));
                }
                // Deepest first, so a folder is gone before its parent is looked at.
                remove.sort_by(|a, b| b.cmp(a));
                for rel in &remove {
                    let abs = target.join(rel);
                    if fs::symlink_metadata(&abs).is_ok() {
                        remove_any(&abs)?;
                        report.removed += 1;
                    }
                }
                for e in manifest.entries.iter().filter(|e| e.kind == EntryKind::Dir) {
                    check_relative(&e.path)?;
                    let abs = target.join(&e.path);
                    if !fs::symlink_metadata(&abs).is_ok_and(|m| m.is_dir()) {
                        fs::create_dir_all(&abs).at(&abs)?;
                    }
                    // Writable while filling; the recorded mode is set at the end.
                    fs::set_permissions(&abs, Permissions::from_mode(0o700)).at(&abs)?;
                }
                let todo: Vec<&Entry> = manifest
                    .files()
                    .filter(|e| !keep_files.contains(&e.path))
                    .collect();
                progress.add_total(todo.iter().map(|e| e.size).sum());
                todo.par_iter()
                    .map(|e| {
                        check_relative(&e.path)?;
                        let d = e
                            .digest
                            .ok_or_else(|| Error::invalid("manifest file without digest"))?;
                        self.write_file(&d, e.mode, &target.join(&e.path), progress)
                    })
                    .collect::<Result<()>>()?;
                report.written = todo.len() as u64;
                report.unchanged = keep_files.len() as u64;
                for (abs, mode) in chmod {
                    fs::set_permissions(&abs, Permissions::from_mode(mode)).at(&abs)?;
                }
                // Folder modes last and deepest first: a read-only folder must be filled first.
                for e in manifest
                    .entries
                    .iter()
                    .rev()
                    .filter(|e| e.kind == EntryKind::Dir)
                {
                    let abs = target.join(&e.path);
                    fs::set_permissions(&abs, Permissions::from_mode(e.mode)).at(&abs)?;
                }
                Ok(report)
            }
        }
    }

    /// `cairn data checkout [PATH...]`: restores the paths the pointer files name (all of them
    /// when none are given).
    pub fn checkout(
        &self,
        cwd: &Path,
        paths: &[PathBuf],
        force: bool,
        progress: &dyn Progress,
    ) -> Result<Vec<(String, Restored)>> {
        let pointers: Vec<(PathBuf, Pointer)> = if paths.is_empty() {
            self.pointers()?
        } else {
            let mut v = Vec::new();
            for p in paths {
                let (abs, _) = self.resolve(cwd, p)?;
                let file = if abs.to_string_lossy().ends_with(SUFFIX) {
                    abs
                } else {
                    Pointer::file_for(&abs)
                };
                if !file.is_file() {
                    return Err(Error::NotFound(format!(
                        "{} is not tracked: no pointer file {}",
                        p.display(),
                        self.rel(&file)
                    )));
                }
                v.push((file.clone(), Pointer::read(&file)?));
            }
            v
        };
        let mut out = Vec::new();
        for (file, pointer) in pointers {
            let data = pointer.data_path(&file);
            let r = self.restore(
                pointer.kind,
                &pointer.digest,
                pointer.mode,
                &data,
                force,
                progress,
            )?;
            out.push((self.rel(&data), r));
        }
        self.cache.save()?;
        Ok(out)
    }

    /// `cairn data checkout NAME@VERSION [--to PATH]`: restores a recorded version (at the
    /// path it was added from, or `to`) and points the pointer file at it.
    pub fn checkout_version(
        &self,
        cwd: &Path,
        name: &str,
        version: i64,
        to: Option<&Path>,
        force: bool,
        progress: &dyn Progress,
    ) -> Result<(String, Restored)> {
        let record = self
            .meta
            .get_dataset_version(name, version)?
            .ok_or_else(|| {
                Error::NotFound(format!("dataset version {name}@{version} not found"))
            })?;
        let kind = Kind::parse(&record.kind)
            .ok_or_else(|| Error::invalid(format!("unknown dataset kind {:?}", record.kind)))?;
        let digest = Digest::parse(&record.digest)
            .ok_or_else(|| Error::invalid(format!("bad digest {:?}", record.digest)))?;
        let (abs, rel) = match to {
            Some(p) => self.resolve(cwd, p)?,
            None => {
                check_relative(&record.path)?;
                self.resolve(&self.root, Path::new(&record.path))?
            }
        };
        if rel.is_empty() {
            return Err(Error::invalid("cannot check out over the project root"));
        }
        if let Some(parent) = abs.parent() {
            fs::create_dir_all(parent).at(parent)?;
        }
        let pointer_file = Pointer::file_for(&abs);
        let mode = Pointer::read(&pointer_file)
            .ok()
            .filter(|p| p.digest == digest)
            .and_then(|p| p.mode);
        let restored = self.restore(kind, &digest, mode, &abs, force, progress)?;
        let pointer = Pointer {
            path: abs
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            kind,
            hash: "blake3".into(),
            digest,
            size: record.size as u64,
            files: record.files as u64,
            format: record.format.clone(),
            mode: if kind == Kind::File {
                Some(mode.unwrap_or(0o644))
            } else {
                None
            },
            dataset: Some(record.name.clone()),
            version: Some(record.version),
        };
        pointer.write(&pointer_file)?;
        self.cache.save()?;
        Ok((rel, restored))
    }

    /// Objects a set of versions needs: each root, and for directories their manifests' files.
    /// Errors if a manifest is missing or corrupt when `strict`; otherwise lists it as missing.
    pub fn needed(
        &self,
        roots: &[(Kind, Digest)],
        strict: bool,
        missing: &mut Vec<Digest>,
    ) -> Result<HashSet<Digest>> {
        let mut out = HashSet::new();
        for (kind, digest) in roots {
            out.insert(*digest);
            if *kind == Kind::Directory {
                match self.cas.read(digest).and_then(|b| Manifest::from_bytes(&b)) {
                    Ok(m) => out.extend(m.files().filter_map(|e| e.digest)),
                    Err(Error::Missing(d)) if !strict => missing.push(d),
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(out)
    }

    /// Versions every recorded dataset version, pointer file, pipeline lock and run-cache
    /// entry names: what `gc` keeps.
    pub fn all_roots(&self) -> Result<Vec<(Kind, Digest)>> {
        let mut roots = Vec::new();
        for v in self.meta.list_dataset_versions(None)? {
            if let (Some(k), Some(d)) = (Kind::parse(&v.kind), Digest::parse(&v.digest)) {
                roots.push((k, d));
            }
        }
        for (_, p) in self.pointers()? {
            roots.push((p.kind, p.digest));
        }
        roots.extend(crate::pipeline::cached_roots(self)?);
        roots.sort();
        roots.dedup();
        Ok(roots)
    }

    /// `cairn data verify`: re-hashes every object; lists corrupt ones and those that recorded
    /// versions need but the store lacks.
    pub fn verify(&self, progress: &dyn Progress) -> Result<VerifyReport> {
        let objects = self.cas.list()?;
        progress.add_total(objects.iter().map(|(_, s)| *s).sum());
        let results: Vec<std::result::Result<u64, String>> = objects
            .par_iter()
            .map(|(d, _)| self.cas.check(d, progress).map_err(|e| e.to_string()))
            .collect();
        let mut report = VerifyReport::default();
        for r in results {
            match r {
                Ok(size) => {
                    report.objects += 1;
                    report.bytes += size;
                }
                Err(e) => report.corrupt.push(e),
            }
        }
        let mut missing_manifests = Vec::new();
        let roots = self.all_roots()?;
        let corrupt_ok = self.needed(&roots, false, &mut missing_manifests);
        match corrupt_ok {
            Ok(needed) => {
                let mut missing: Vec<String> = needed
                    .iter()
                    .filter(|d| !self.cas.contains(d))
                    .map(|d| d.to_hex())
                    .collect();
                missing.sort();
                report.missing = missing;
            }
            Err(e) => report.corrupt.push(e.to_string()),
        }
        report.corrupt.sort();
        report.corrupt.dedup();
        Ok(report)
    }

    /// `cairn data gc`: removes objects no recorded version, pointer, lock or run cache needs,
    /// and temp files of interrupted writes.
    pub fn gc(&self, dry_run: bool) -> Result<GcReport> {
        let roots = self.all_roots()?;
        let mut missing = Vec::new();
        let keep = self.needed(&roots, false, &mut missing)?;
        let mut report = GcReport::default();
        for (d, size) in self.cas.list()? {
            if keep.contains(&d) {
                report.kept += 1;
            } else {
                if !dry_run {
                    self.cas.remove(&d)?;
                }
                report.removed += 1;
                report.removed_bytes += size;
            }
        }
        if !dry_run {
            report.temp_files = self.cas.clean_tmp(std::time::Duration::from_secs(3600))?;
        }
        Ok(report)
    }
}

#[derive(Default)]
struct Counters {
    hashed: AtomicU64,
    new_objects: AtomicU64,
    new_bytes: AtomicU64,
}
