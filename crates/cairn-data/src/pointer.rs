//! Pointer files: `PATH.cairn`, a few lines of YAML beside the data, meant for git. They name
//! the exact bytes (by digest) the path held when it was added.
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// File name suffix of pointer files.
pub const SUFFIX: &str = ".cairn";

/// `file` or `directory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// One file; the digest is its bytes'.
    File,
    /// A directory; the digest is its manifest's.
    Directory,
}

impl Kind {
    /// `file` / `directory`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Directory => "directory",
        }
    }
    /// Parses [`Kind::as_str`].
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "file" => Some(Kind::File),
            "directory" => Some(Kind::Directory),
            _ => None,
        }
    }
}

/// The contents of a pointer file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pointer {
    /// The data's file name, in the pointer's folder.
    pub path: String,
    /// File or directory.
    pub kind: Kind,
    /// Always `blake3`.
    pub hash: String,
    /// Digest of the bytes (file) or of the manifest (directory).
    pub digest: Digest,
    /// Total bytes.
    pub size: u64,
    /// Number of files.
    pub files: u64,
    /// `csv`, `parquet`, ... / `mixed` / `binary`.
    pub format: String,
    /// Permission bits of a single file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// Dataset name it was recorded under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Version number it was recorded as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
}

const HEADER: &str = "# Cairn data pointer: commit this file; the bytes live in the Cairn store \
                      (`cairn data checkout` restores them).\n";

impl Pointer {
    /// The pointer file for a data path.
    pub fn file_for(data: &Path) -> PathBuf {
        let mut name = data.file_name().unwrap_or_default().to_os_string();
        name.push(SUFFIX);
        data.with_file_name(name)
    }

    /// Reads and checks a pointer file.
    pub fn read(file: &Path) -> Result<Pointer> {
        let text = std::fs::read_to_string(file).at(file)?;
        let p: Pointer = serde_yaml::from_str(&text).map_err(|e| {
            Error::invalid(format!(
                "{} is not a valid Cairn pointer: {e}",
                file.display()
            ))
        })?;
        if p.path.is_empty() || p.path.contains('/') || p.path == "." || p.path == ".." {
            return Err(Error::invalid(format!(
                "{}: path {:?} must be a file name in the pointer's folder",
                file.display(),
                p.path
            )));
        }
        if p.hash != "blake3" {
            return Err(Error::invalid(format!(
                "{}: unsupported hash {:?} (only blake3)",
                file.display(),
                p.hash
            )));
        }
        Ok(p)
    }

    /// Writes the pointer file atomically.
    pub fn write(&self, file: &Path) -> Result<()> {
        let body = serde_yaml::to_string(self)
            .map_err(|e| Error::invalid(format!("cannot write pointer: {e}")))?;
        crate::fsutil::write_atomic(file, format!("{HEADER}{body}").as_bytes())
    }

    /// The data path this pointer (stored at `file`) describes.
    pub fn data_path(&self, file: &Path) -> PathBuf {
        file.with_file_name(&self.path)
    }
}
