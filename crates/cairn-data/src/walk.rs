//! Listing a tree for hashing: regular files and directories with their metadata. Symbolic
//! links and special files are refused, so nothing outside the tree is ever read.
use crate::error::{Error, IoContext, Result};
use crate::fsutil::nanos;
use rayon::prelude::*;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What the stat cache compares: if all equal, the bytes are assumed unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StatKey {
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

impl StatKey {
    pub fn of(m: &fs::Metadata) -> StatKey {
        StatKey {
            ino: m.ino(),
            size: m.size(),
            mtime_ns: nanos(m.mtime(), m.mtime_nsec()),
            ctime_ns: nanos(m.ctime(), m.ctime_nsec()),
        }
    }
}

/// A regular file found under the root.
#[derive(Debug, Clone)]
pub(crate) struct FileItem {
    pub rel: String,
    pub abs: PathBuf,
    pub mode: u32,
    pub stat: StatKey,
}

/// A directory found under the root (not the root itself).
#[derive(Debug, Clone)]
pub(crate) struct DirItem {
    pub rel: String,
    pub mode: u32,
}

fn utf8_name(path: &Path, name: &std::ffi::OsStr) -> Result<String> {
    name.to_str().map(str::to_owned).ok_or_else(|| {
        Error::invalid(format!(
            "{}: file names must be UTF-8 to be versioned",
            path.display()
        ))
    })
}

/// Lists every file and directory under `root`, sorted by path. Folders are read in parallel
/// (a cold metadata cache makes each `stat` a disk read; several in flight hide the latency).
pub(crate) fn scan(root: &Path) -> Result<(Vec<FileItem>, Vec<DirItem>)> {
    let (mut files, mut dirs) = scan_dir(root, "")?;
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    dirs.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok((files, dirs))
}

fn scan_dir(dir: &Path, rel: &str) -> Result<(Vec<FileItem>, Vec<DirItem>)> {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    let mut below = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let abs = entry.path();
        let name = utf8_name(&abs, &entry.file_name())?;
        if name.starts_with(crate::fsutil::TEMP_PREFIX) {
            // A checkout or pointer write interrupted here; not user data.
            continue;
        }
        let child = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        // `DirEntry::metadata` is `fstatat` without following links, relative to the folder.
        let meta = entry.metadata().at(&abs)?;
        let ft = meta.file_type();
        if ft.is_dir() {
            dirs.push(DirItem {
                rel: child.clone(),
                mode: meta.mode() & 0o7777,
            });
            below.push((abs, child));
        } else if ft.is_file() {
            files.push(FileItem {
                rel: child,
                mode: meta.mode() & 0o7777,
                stat: StatKey::of(&meta),
                abs,
            });
        } else if ft.is_symlink() {
            return Err(Error::invalid(format!(
                "{} is a symbolic link: Cairn versions regular files and directories only \
                 (copy the target in, or add it separately)",
                abs.display()
            )));
        } else {
            return Err(Error::invalid(format!(
                "{} is not a regular file or directory",
                abs.display()
            )));
        }
    }
    let nested: Vec<(Vec<FileItem>, Vec<DirItem>)> = below
        .par_iter()
        .map(|(abs, child)| scan_dir(abs, child))
        .collect::<Result<_>>()?;
    for (f, d) in nested {
        files.extend(f);
        dirs.extend(d);
    }
    Ok((files, dirs))
}
