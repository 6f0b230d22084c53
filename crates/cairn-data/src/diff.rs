//! `cairn data diff A B`: files added, removed and changed between two versions (recorded, or
//! the workspace), with row and schema changes for CSV, TSV and Parquet files.
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::pointer::{Kind, Pointer};
use crate::progress::NoProgress;
use crate::repo::{format_of, parse_version_ref, DataRepo};
use crate::tabular::{diff_tables, is_tabular, TableDiff};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One side of a diff.
#[derive(Debug, Clone)]
pub struct Side {
    /// How the user named it.
    pub label: String,
    /// File or directory.
    pub kind: Kind,
    /// Path -> (digest, size, where its bytes are). A single file has path "".
    files: BTreeMap<String, (Digest, u64, PathBuf)>,
    /// The file name of a single file (for formats).
    name: String,
}

/// How a file changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Only in B.
    Added,
    /// Only in A.
    Removed,
    /// In both with other bytes.
    Modified,
}

/// One changed file.
#[derive(Debug, Clone)]
pub struct FileChange {
    /// Path inside the version ("" for a single file).
    pub path: String,
    /// How.
    pub change: Change,
    /// Size in A.
    pub size_a: Option<u64>,
    /// Size in B.
    pub size_b: Option<u64>,
    /// Rows and schema, for a modified table.
    pub table: Option<TableDiff>,
}

/// The difference between two versions.
#[derive(Debug, Clone)]
pub struct Diff {
    /// A's label.
    pub a: String,
    /// B's label.
    pub b: String,
    /// Changed files, by path.
    pub changes: Vec<FileChange>,
    /// Files with the same bytes on both sides.
    pub unchanged: u64,
}

impl DataRepo {
    fn stored_side(&self, label: String, kind: Kind, digest: Digest, name: String) -> Result<Side> {
        let mut files = BTreeMap::new();
        match kind {
            Kind::File => {
                let size = std::fs::metadata(self.cas().object_path(&digest))
                    .map(|m| m.len())
                    .map_err(|_| Error::Missing(digest))?;
                files.insert(
                    String::new(),
                    (digest, size, self.cas().object_path(&digest)),
                );
            }
            Kind::Directory => {
                let m = Manifest::from_bytes(&self.cas().read(&digest)?)?;
                for e in m.files() {
                    let d = e
                        .digest
                        .ok_or_else(|| Error::invalid("manifest file without digest"))?;
                    files.insert(e.path.clone(), (d, e.size, self.cas().object_path(&d)));
                }
            }
        }
        Ok(Side {
            label,
            kind,
            files,
            name,
        })
    }

    fn workspace_side(&self, label: String, abs: &Path) -> Result<Side> {
        let snap = self.snapshot(abs, false, &NoProgress)?;
        let name = abs
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut files = BTreeMap::new();
        match &snap.manifest {
            None => {
                files.insert(String::new(), (snap.digest, snap.size, abs.to_path_buf()));
            }
            Some(m) => {
                for e in m.files() {
                    if let Some(d) = e.digest {
                        files.insert(e.path.clone(), (d, e.size, abs.join(&e.path)));
                    }
                }
            }
        }
        Ok(Side {
            label,
            kind: snap.kind,
            files,
            name,
        })
    }

    /// Resolves what the user typed: `NAME@VERSION`, a 64-hex digest of a recorded version,
    /// a pointer file (`X.cairn`: the recorded version) or a path (its current bytes).
    pub fn side(&self, cwd: &Path, text: &str) -> Result<Side> {
        if let Some(d) = Digest::parse(text) {
            let v = self
                .meta()
                .dataset_versions_by_digest(&d.to_hex())?
                .into_iter()
                .next()
                .ok_or_else(|| Error::NotFound(format!("no recorded version has digest {d}")))?;
            let kind = Kind::parse(&v.kind).unwrap_or(Kind::File);
            let name = v.path.rsplit('/').next().unwrap_or_default().to_string();
            return self.stored_side(text.to_string(), kind, d, name);
        }
        if text.contains('@') && !Path::new(text).exists() {
            let (name, version) = parse_version_ref(text)?;
            let v = self
                .meta()
                .get_dataset_version(&name, version)?
                .ok_or_else(|| Error::NotFound(format!("dataset version {text} not found")))?;
            let kind = Kind::parse(&v.kind).unwrap_or(Kind::File);
            let digest = Digest::parse(&v.digest)
                .ok_or_else(|| Error::invalid(format!("bad digest {}", v.digest)))?;
            let file = v.path.rsplit('/').next().unwrap_or_default().to_string();
            return self.stored_side(text.to_string(), kind, digest, file);
        }
        let (abs, _) = self.resolve(cwd, Path::new(text))?;
        if text.ends_with(crate::pointer::SUFFIX) {
            let p = Pointer::read(&abs)?;
            return self.stored_side(text.to_string(), p.kind, p.digest, p.path.clone());
        }
        self.workspace_side(text.to_string(), &abs)
    }

    /// The side B defaults to for A: the workspace path A was recorded from.
    pub fn default_other(&self, cwd: &Path, a: &str) -> Result<String> {
        if let Ok((name, version)) = parse_version_ref(a) {
            if let Some(v) = self.meta().get_dataset_version(&name, version)? {
                let abs = self.root().join(&v.path);
                return Ok(abs.to_string_lossy().into_owned());
            }
        }
        if let Some(stripped) = a.strip_suffix(crate::pointer::SUFFIX) {
            let (abs, _) = self.resolve(cwd, Path::new(stripped))?;
            return Ok(abs.to_string_lossy().into_owned());
        }
        Err(Error::invalid(format!(
            "give two versions to compare, or NAME@VERSION / a pointer file to compare with the workspace (got {a})"
        )))
    }

    /// Compares two versions.
    pub fn diff(&self, a: &Side, b: &Side) -> Result<Diff> {
        if a.kind != b.kind {
            return Err(Error::invalid(format!(
                "{} is a {} and {} is a {}: compare like with like",
                a.label,
                a.kind.as_str(),
                b.label,
                b.kind.as_str()
            )));
        }
        let mut changes = Vec::new();
        let mut unchanged = 0;
        let format_for = |path: &str| {
            if path.is_empty() {
                format_of(&b.name)
            } else {
                format_of(path)
            }
        };
        for (path, (da, sa, pa)) in &a.files {
            match b.files.get(path) {
                None => changes.push(FileChange {
                    path: path.clone(),
                    change: Change::Removed,
                    size_a: Some(*sa),
                    size_b: None,
                    table: None,
                }),
                Some((db, _, _)) if db == da => unchanged += 1,
                Some((db, sb, pb)) => {
                    let format = format_for(path);
                    let table = if is_tabular(format) {
                        // Stored bytes are checked before they are read, so a damaged object
                        // is named rather than diffed.
                        for (d, p) in [(da, pa), (db, pb)] {
                            if p.starts_with(self.home()) {
                                self.cas().check(d, &NoProgress)?;
                            }
                        }
                        Some(diff_tables(pa, pb, format)?)
                    } else {
                        None
                    };
                    changes.push(FileChange {
                        path: path.clone(),
                        change: Change::Modified,
                        size_a: Some(*sa),
                        size_b: Some(*sb),
                        table,
                    });
                }
            }
        }
        for (path, (_, sb, _)) in &b.files {
            if !a.files.contains_key(path) {
                changes.push(FileChange {
                    path: path.clone(),
                    change: Change::Added,
                    size_a: None,
                    size_b: Some(*sb),
                    table: None,
                });
            }
        }
        changes.sort_by(|x, y| x.path.cmp(&y.path));
        self.save_cache()?;
        Ok(Diff {
            a: a.label.clone(),
            b: b.label.clone(),
            changes,
            unchanged,
        })
    }
}
