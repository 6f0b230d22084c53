//! The stat cache: digests of files whose (inode, size, mtime, ctime) have not changed since
//! they were hashed, so re-adding an unchanged tree reads no file contents.
//!
//! One line per file: `ino size mtime_ns ctime_ns digest path`. An entry is only recorded for
//! a file whose timestamps are older than the scan's start by more than the clock's tick, so a
//! write landing in the same tick as the hashing cannot hide behind an unchanged stat (git's
//! "racy clean" problem).
use crate::digest::Digest;
use crate::error::Result;
use crate::walk::StatKey;
use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::RwLock;

/// Timestamps within this many nanoseconds before the scan started are not trusted.
const RACY_NS: i128 = 100_000_000;

/// A path's bytes -> what it looked like when hashed, and the digest.
type Entries = HashMap<Box<[u8]>, (StatKey, Digest)>;

pub(crate) struct StatCache {
    file: PathBuf,
    /// Keyed by the path's bytes: hashing bytes is several times cheaper than a `Path`.
    entries: RwLock<Entries>,
    horizon_ns: AtomicI64,
    dirty: AtomicBool,
}

fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// One cache line, parsed.
type Line = (Box<[u8]>, (StatKey, Digest));

fn parse_line(line: &str) -> Option<Line> {
    let mut parts = line.splitn(6, ' ');
    let ino = parts.next()?.parse().ok()?;
    let size = parts.next()?.parse().ok()?;
    let mtime_ns = parts.next()?.parse().ok()?;
    let ctime_ns = parts.next()?.parse().ok()?;
    let digest = Digest::parse(parts.next()?)?;
    let path: Box<[u8]> = parts.next()?.as_bytes().into();
    Some((
        path,
        (
            StatKey {
                ino,
                size,
                mtime_ns,
                ctime_ns,
            },
            digest,
        ),
    ))
}

impl StatCache {
    /// Loads the cache (a missing or damaged file is an empty cache: it is only a cache).
    pub fn load(file: &Path) -> StatCache {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let entries = text.lines().filter_map(parse_line).collect();
        StatCache {
            file: file.to_path_buf(),
            entries: RwLock::new(entries),
            horizon_ns: AtomicI64::new((now_ns() - RACY_NS) as i64),
            dirty: AtomicBool::new(false),
        }
    }

    /// Marks the start of a scan: files changed from here on (or just before) are not cached.
    pub fn begin_scan(&self) {
        self.horizon_ns
            .store((now_ns() - RACY_NS) as i64, Ordering::Relaxed);
    }

    /// The cached digest, if the file's stat is unchanged.
    pub fn get(&self, abs: &Path, stat: &StatKey) -> Option<Digest> {
        let entries = self.entries.read().ok()?;
        match entries.get(abs.as_os_str().as_bytes()) {
            Some((key, digest)) if key == stat => Some(*digest),
            _ => None,
        }
    }

    /// Records a digest, unless the timestamps are too recent to trust.
    pub fn put(&self, abs: &Path, stat: StatKey, digest: Digest) {
        let horizon = self.horizon_ns.load(Ordering::Relaxed) as i128;
        if stat.mtime_ns >= horizon || stat.ctime_ns >= horizon {
            return;
        }
        if let Some(text) = abs.to_str() {
            if text.contains('\n') {
                return;
            }
            if let Ok(mut entries) = self.entries.write() {
                let old = entries.insert(text.as_bytes().into(), (stat, digest));
                if old != Some((stat, digest)) {
                    self.dirty.store(true, Ordering::Relaxed);
                }
            }
        }
    }

    /// Forgets entries under `root` that `keep` does not list (deleted files).
    pub fn retain_under(&self, root: &Path, keep: &dyn Fn(&[u8]) -> bool) {
        let mut prefix = root.as_os_str().as_bytes().to_vec();
        prefix.push(b'/');
        if let Ok(mut entries) = self.entries.write() {
            let before = entries.len();
            entries.retain(|p, _| !p.starts_with(&prefix) || keep(p));
            if entries.len() != before {
                self.dirty.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Writes the cache back atomically, if anything changed.
    pub fn save(&self) -> Result<()> {
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        let mut text = String::new();
        if let Ok(entries) = self.entries.read() {
            text.reserve(entries.len() * 140);
            for (path, (k, d)) in entries.iter() {
                if let Ok(p) = std::str::from_utf8(path) {
                    use std::fmt::Write;
                    let _ = writeln!(
                        text,
                        "{} {} {} {} {} {}",
                        k.ino, k.size, k.mtime_ns, k.ctime_ns, d, p
                    );
                }
            }
        }
        if let Some(dir) = self.file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        crate::fsutil::write_replacing(&self.file, text.as_bytes(), false)
    }
}
