//! Hashing files with BLAKE3, optionally copying them in the same pass.
//!
//! A large file is split along BLAKE3's own tree (`hazmat::left_subtree_len`) into subtrees of
//! at most [`LEAF`] bytes that run on rayon's threads; each reads its range once into a small
//! buffer, hashes it and, when copying, writes it to the same offset of the destination. The
//! result equals `blake3::hash` of the whole file, and a copy made this way is verified by
//! construction: the bytes written are the bytes hashed.
use crate::digest::Digest;
use crate::progress::Progress;
use blake3::hazmat::{
    left_subtree_len, merge_subtrees_non_root, merge_subtrees_root, ChainingValue, HasherExt, Mode,
};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Files up to this size are read whole and hashed on one thread.
pub(crate) const SMALL_FILE: u64 = 8 << 20;
/// Largest subtree one task hashes.
const LEAF: u64 = 4 << 20;
/// Read buffer of a task: small enough to stay in cache between hashing and writing.
const BUF: usize = 256 << 10;

struct Job<'a> {
    src: &'a File,
    dst: Option<&'a File>,
    progress: &'a dyn Progress,
}

impl Job<'_> {
    fn leaf(&self, offset: u64, len: u64, hasher: &mut blake3::Hasher) -> io::Result<()> {
        let mut buf = vec![0u8; BUF.min(len as usize)];
        let mut done = 0u64;
        while done < len {
            let n = ((len - done) as usize).min(BUF);
            let chunk = &mut buf[..n];
            self.src
                .read_exact_at(chunk, offset + done)
                .map_err(changed)?;
            hasher.update(chunk);
            if let Some(dst) = self.dst {
                dst.write_all_at(chunk, offset + done)?;
            }
            done += n as u64;
            self.progress.advance(n as u64);
        }
        Ok(())
    }

    fn subtree(&self, offset: u64, len: u64) -> io::Result<ChainingValue> {
        if len <= LEAF {
            let mut hasher = blake3::Hasher::new();
            hasher.set_input_offset(offset);
            self.leaf(offset, len, &mut hasher)?;
            return Ok(hasher.finalize_non_root());
        }
        let left = left_subtree_len(len);
        let (l, r) = rayon::join(
            || self.subtree(offset, left),
            || self.subtree(offset + left, len - left),
        );
        Ok(merge_subtrees_non_root(&l?, &r?, Mode::Hash))
    }

    fn root(&self, len: u64) -> io::Result<Digest> {
        if len <= LEAF {
            let mut hasher = blake3::Hasher::new();
            self.leaf(0, len, &mut hasher)?;
            return Ok(hasher.finalize().into());
        }
        let left = left_subtree_len(len);
        let (l, r) = rayon::join(|| self.subtree(0, left), || self.subtree(left, len - left));
        Ok(merge_subtrees_root(&l?, &r?, Mode::Hash).into())
    }
}

fn changed(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        io::Error::other("the file shrank while it was being read")
    } else {
        e
    }
}

/// Hashes the first `len` bytes of `src`, in parallel when large; when `dst` is given, copies
/// them there at the same offsets. Fails if the file is shorter than `len`.
pub(crate) fn hash_file(
    src: &File,
    len: u64,
    dst: Option<&File>,
    progress: &dyn Progress,
) -> io::Result<Digest> {
    if let Some(dst) = dst {
        dst.set_len(len)?;
    }
    Job { src, dst, progress }.root(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::NoProgress;
    use std::io::Write;

    #[test]
    fn parallel_tree_equals_plain_blake3_and_copies() {
        for len in [
            0usize,
            1,
            1024,
            1025,
            4 << 20,
            (4 << 20) + 1,
            (9 << 20) + 12345,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let mut src = tempfile::tempfile().unwrap();
            src.write_all(&data).unwrap();
            let dst = tempfile::tempfile().unwrap();
            let d = hash_file(&src, len as u64, Some(&dst), &NoProgress).unwrap();
            assert_eq!(d, Digest::of(&data), "length {len}");
            let mut copy = vec![0u8; len];
            dst.read_exact_at(&mut copy, 0).unwrap();
            assert!(copy == data, "copy of length {len}");
            assert_eq!(hash_file(&src, len as u64, None, &NoProgress).unwrap(), d);
        }
    }
}
