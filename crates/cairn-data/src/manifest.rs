//! A directory version: the sorted list of its files (path, mode, size, digest) and
//! directories (path, mode). Its canonical JSON bytes are stored as an object, and their
//! digest is the directory's digest.
use crate::digest::Digest;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// File or directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory (listed so empty ones are kept).
    Dir,
}

/// One file or directory under the root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// `/`-separated path relative to the root.
    pub path: String,
    /// File or directory.
    #[serde(rename = "type")]
    pub kind: EntryKind,
    /// Permission bits (`0o7777` of `st_mode`).
    pub mode: u32,
    /// Bytes (files).
    #[serde(default)]
    pub size: u64,
    /// Content digest (files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    cairn_manifest: u32,
    entries: Vec<Entry>,
}

/// A directory version.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    /// Entries sorted by path.
    pub entries: Vec<Entry>,
}

/// Checks that a stored relative path cannot leave its root: `/`-separated normal components,
/// no `.`, `..`, empty parts, NUL or leading `/`.
pub fn check_relative(path: &str) -> Result<()> {
    let bad = path.is_empty()
        || path.contains('\0')
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(Error::invalid(format!(
            "unsafe path {path:?} in a manifest: paths must be relative and stay inside their root"
        )));
    }
    Ok(())
}

impl Manifest {
    /// Builds a manifest, sorting the entries.
    pub fn new(mut entries: Vec<Entry>) -> Manifest {
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Manifest { entries }
    }

    /// The canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let wire = Wire {
            cairn_manifest: 1,
            entries: self.entries.clone(),
        };
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// The directory's digest.
    pub fn digest(&self) -> Digest {
        Digest::of(&self.to_bytes())
    }

    /// Parses and checks stored bytes: safe paths, sorted, unique, files with digests.
    pub fn from_bytes(bytes: &[u8]) -> Result<Manifest> {
        let wire: Wire = serde_json::from_slice(bytes)
            .map_err(|e| Error::invalid(format!("not a Cairn directory manifest: {e}")))?;
        for (i, e) in wire.entries.iter().enumerate() {
            check_relative(&e.path)?;
            if i > 0 && wire.entries[i - 1].path >= e.path {
                return Err(Error::invalid("manifest entries are not sorted and unique"));
            }
            if e.kind == EntryKind::File && e.digest.is_none() {
                return Err(Error::invalid(format!(
                    "manifest file {} has no digest",
                    e.path
                )));
            }
        }
        Ok(Manifest {
            entries: wire.entries,
        })
    }

    /// The files.
    pub fn files(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.kind == EntryKind::File)
    }

    /// Number of files.
    pub fn file_count(&self) -> u64 {
        self.files().count() as u64
    }

    /// Total bytes of the files.
    pub fn size(&self) -> u64 {
        self.files().map(|e| e.size).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_paths_are_refused() {
        for bad in ["", "/etc/passwd", "a/../../b", "..", "a//b", "./a", "a/"] {
            assert!(check_relative(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "a/b.csv", "..a", "a..b/c"] {
            assert!(check_relative(good).is_ok(), "{good:?}");
        }
        let m = Manifest::new(vec![Entry {
            path: "../x".into(),
            kind: EntryKind::Dir,
            mode: 0o755,
            size: 0,
            digest: None,
        }]);
        assert!(Manifest::from_bytes(&m.to_bytes()).is_err());
    }
}
