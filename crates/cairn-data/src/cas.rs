//! The local content-addressed store: every file's bytes once, named by their BLAKE3 digest,
//! under `objects/<2 hex>/<62 hex>`.
//!
//! Invariant: a file under `objects/` is complete and its bytes hash to its name when it
//! appears. Objects are written to `tmp/` first (hashed while written) and renamed into place;
//! an interrupted write leaves only a temp file, which `gc` removes. Objects are read-only.
//! Writes are not fsynced one by one (a process crash loses nothing the kernel has; a power cut
//! can, and `verify` then names the damaged objects).
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::hash::{hash_file, SMALL_FILE};
use crate::progress::Progress;
use std::fs::{self, File, Permissions};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use tempfile::NamedTempFile;

/// The local object store.
#[derive(Debug, Clone)]
pub struct Cas {
    objects: PathBuf,
    tmp: PathBuf,
}

/// What storing a file did.
#[derive(Debug, Clone, Copy)]
pub struct Stored {
    /// The bytes' digest.
    pub digest: Digest,
    /// Their length.
    pub size: u64,
    /// Whether the object was new to the store.
    pub new: bool,
}

impl Cas {
    /// Opens (creating) the store at `root`.
    pub fn open(root: &Path) -> Result<Cas> {
        let objects = root.join("objects");
        let tmp = root.join("tmp");
        fs::create_dir_all(&tmp).at(&tmp)?;
        // All 256 fan-out folders up front, so storing an object never has to check for one.
        if !objects.join("ff").is_dir() {
            for fan in 0..=255u8 {
                let dir = objects.join(format!("{fan:02x}"));
                fs::create_dir_all(&dir).at(&dir)?;
            }
        }
        Ok(Cas { objects, tmp })
    }

    /// Where an object lives.
    pub fn object_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.to_hex();
        self.objects.join(&hex[..2]).join(&hex[2..])
    }

    /// Whether the object is present (not whether it is intact).
    pub fn contains(&self, digest: &Digest) -> bool {
        fs::metadata(self.object_path(digest)).is_ok_and(|m| m.is_file())
    }

    /// Whether every object is present. Many objects are checked by listing their fan-out
    /// folders (one `getdents` stream each) rather than resolving a path per object.
    pub fn contains_all(&self, digests: &[Digest]) -> bool {
        if digests.len() < 4096 {
            return digests.iter().all(|d| self.contains(d));
        }
        let mut fans: Vec<u8> = digests.iter().map(|d| d.0[0]).collect();
        fans.sort_unstable();
        fans.dedup();
        let mut present = std::collections::HashSet::with_capacity(digests.len());
        for fan in fans {
            let dir = self.objects.join(format!("{fan:02x}"));
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name();
                if let Some(d) = name
                    .to_str()
                    .and_then(|rest| Digest::parse(&format!("{fan:02x}{rest}")))
                {
                    present.insert(d);
                }
            }
        }
        digests.iter().all(|d| present.contains(d))
    }

    /// A new temp file inside the store, removed on drop unless committed. Created read-only
    /// (the open descriptor can still write), as objects are.
    pub(crate) fn temp(&self) -> Result<NamedTempFile> {
        tempfile::Builder::new()
            .prefix("obj-")
            .permissions(Permissions::from_mode(0o444))
            .tempfile_in(&self.tmp)
            .at(&self.tmp)
    }

    /// Renames a temp file whose bytes hash to `digest` into place. Callers check presence
    /// first; a concurrent writer of the same object renames identical bytes over it: harmless.
    pub(crate) fn commit(&self, tmp: NamedTempFile, digest: &Digest) -> Result<()> {
        let path = self.object_path(digest);
        if let Some(dir) = path.parent() {
            if !dir.is_dir() {
                fs::create_dir_all(dir).at(dir)?;
            }
        }
        tmp.persist(&path).map_err(|e| Error::Io {
            path: path.clone(),
            source: e.error,
        })?;
        Ok(())
    }

    /// Stores bytes held in memory.
    pub fn store_bytes(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of(bytes);
        if !self.contains(&digest) {
            let mut tmp = self.temp()?;
            tmp.write_all(bytes).at(tmp.path())?;
            self.commit(tmp, &digest)?;
        }
        Ok(digest)
    }

    /// Stores a file's bytes: small files are read whole, hashed and written only when new;
    /// large ones are copied and hashed in one parallel pass.
    pub fn store_file(&self, path: &Path, progress: &dyn Progress) -> Result<Stored> {
        let mut file = File::open(path).at(path)?;
        let size = file.metadata().at(path)?.len();
        if size <= SMALL_FILE {
            let mut bytes = Vec::with_capacity(size as usize);
            file.read_to_end(&mut bytes).at(path)?;
            progress.advance(bytes.len() as u64);
            let digest = Digest::of(&bytes);
            let new = !self.contains(&digest);
            if new {
                let mut tmp = self.temp()?;
                tmp.write_all(&bytes).at(tmp.path())?;
                self.commit(tmp, &digest)?;
            }
            return Ok(Stored {
                digest,
                size: bytes.len() as u64,
                new,
            });
        }
        let tmp = self.temp()?;
        let digest = hash_file(&file, size, Some(tmp.as_file()), progress).at(path)?;
        // Known only once hashed: a large file already stored is dropped as a temp file.
        let new = !self.contains(&digest);
        if new {
            self.commit(tmp, &digest)?;
        }
        Ok(Stored { digest, size, new })
    }

    /// Opens an object, naming a missing one.
    fn open_object(&self, digest: &Digest) -> Result<(File, PathBuf)> {
        let path = self.object_path(digest);
        match File::open(&path) {
            Ok(f) => Ok((f, path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::Missing(*digest)),
            Err(e) => Err(Error::Io { path, source: e }),
        }
    }

    /// Fails with [`Error::Corrupt`] unless the bytes hashed to the object's name.
    fn expect(digest: &Digest, actual: Digest, path: PathBuf) -> Result<()> {
        if actual == *digest {
            Ok(())
        } else {
            Err(Error::Corrupt {
                digest: *digest,
                actual,
                path,
            })
        }
    }

    /// An object's bytes, checked against its name.
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>> {
        let (mut file, path) = self.open_object(digest)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).at(&path)?;
        Self::expect(digest, Digest::of(&bytes), path)?;
        Ok(bytes)
    }

    /// Re-hashes an object (copying it into `dst` as it passes, when given); its size if intact.
    fn hash_object(
        &self,
        digest: &Digest,
        dst: Option<&File>,
        progress: &dyn Progress,
    ) -> Result<u64> {
        let (src, path) = self.open_object(digest)?;
        let size = src.metadata().at(&path)?.len();
        let actual = hash_file(&src, size, dst, progress).at(&path)?;
        Self::expect(digest, actual, path)?;
        Ok(size)
    }

    /// Copies an object into `dst`, checking its bytes against its name as they pass.
    pub fn copy_to(&self, digest: &Digest, dst: &File, progress: &dyn Progress) -> Result<u64> {
        self.hash_object(digest, Some(dst), progress)
    }

    /// Re-hashes one object; its size if intact.
    pub fn check(&self, digest: &Digest, progress: &dyn Progress) -> Result<u64> {
        self.hash_object(digest, None, progress)
    }

    /// Every object present, with its size.
    pub fn list(&self) -> Result<Vec<(Digest, u64)>> {
        let mut out = Vec::new();
        for fan in fs::read_dir(&self.objects).at(&self.objects)? {
            let fan = fan.at(&self.objects)?;
            let prefix = fan.file_name().to_string_lossy().into_owned();
            if prefix.len() != 2 || !fan.path().is_dir() {
                continue;
            }
            let dir = fan.path();
            for entry in fs::read_dir(&dir).at(&dir)? {
                let entry = entry.at(&dir)?;
                let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
                if let Some(d) = Digest::parse(&name) {
                    let size = entry.metadata().at(&entry.path())?.len();
                    out.push((d, size));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Deletes an object.
    pub fn remove(&self, digest: &Digest) -> Result<()> {
        let path = self.object_path(digest);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::Io { path, source: e })
            }
            _ => Ok(()),
        }
    }

    /// Deletes temp files left by interrupted writes (older than `age`, so a concurrent add's
    /// files survive); how many.
    pub fn clean_tmp(&self, age: Duration) -> Result<u64> {
        let mut removed = 0;
        let now = SystemTime::now();
        for entry in fs::read_dir(&self.tmp).at(&self.tmp)? {
            let entry = entry.at(&self.tmp)?;
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .map(|t| now.duration_since(t).unwrap_or_default() >= age)
                .unwrap_or(true);
            if old && fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}
