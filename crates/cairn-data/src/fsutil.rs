//! Small file-system helpers shared by the modules.
use crate::error::{IoContext, Result};
use std::io::Write;
use std::path::Path;

/// Prefix of the temp files Cairn writes beside user files (skipped by add, removed by checkout).
pub(crate) const TEMP_PREFIX: &str = ".cairn-tmp-";

/// Writes a file by temp file, fsync and rename, so readers see the old or the new bytes, never
/// half, and the new ones survive a crash once this returns.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_replacing(path, bytes, true)
}

/// [`write_atomic`] with the fsync optional (for caches, which may be lost).
pub(crate) fn write_replacing(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)
        .at(dir)?;
    tmp.write_all(bytes).at(path)?;
    if durable {
        tmp.as_file().sync_all().at(path)?;
    }
    tmp.persist(path).map_err(|e| crate::Error::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

/// Nanoseconds of a (seconds, nanoseconds) timestamp.
pub(crate) fn nanos(secs: i64, nsec: i64) -> i128 {
    secs as i128 * 1_000_000_000 + nsec as i128
}
