//! Artifact bytes in a local folder. Writes go to a temporary file in the target directory,
//! are fsynced, then renamed into place, so a crash never leaves a partial file visible.
use cairn_core::paths::ArtifactPath;
use cairn_core::{ArtifactEntry, ArtifactStore, Error, Result};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Prefix of in-flight temporary files; they are never listed.
const TMP_PREFIX: &str = ".cairn-tmp-";

/// An [`ArtifactStore`] rooted at a local directory.
#[derive(Debug, Clone)]
pub struct LocalArtifactStore {
    root: PathBuf,
}

impl LocalArtifactStore {
    /// Uses (and creates) `root`.
    pub fn new(root: impl AsRef<Path>) -> Result<Self> {
        fs::create_dir_all(root.as_ref())?;
        Ok(LocalArtifactStore {
            root: fs::canonicalize(root.as_ref())?,
        })
    }

    /// The directory artifacts live in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Maps a checked path under the root, refusing any existing component that is a symlink
    /// (a link could point anywhere on the machine).
    /// A component that exists as a file with more components after it is the client's
    /// mistake (400), never an I/O error (500).
    fn resolve(&self, path: &ArtifactPath) -> Result<PathBuf> {
        let mut current = self.root.clone();
        let parts = path.components();
        for (i, part) in parts.iter().enumerate() {
            current.push(part);
            match fs::symlink_metadata(&current) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(Error::invalid(format!(
                        "Invalid artifact path '{}': symbolic links are not followed",
                        path.as_string()
                    )))
                }
                Ok(meta) if !meta.is_dir() && i + 1 < parts.len() => {
                    return Err(Error::invalid(format!(
                        "Invalid artifact path '{}': '{}' is a file, not a directory",
                        path.as_string(),
                        parts[..=i].join("/")
                    )))
                }
                Ok(_) => {}
                // Nothing further down can exist once a component is missing.
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(self.root.join(parts.join("/")))
    }

    fn not_found(path: &ArtifactPath) -> Error {
        Error::not_found(format!("Artifact '{}' does not exist", path.as_string()))
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

impl ArtifactStore for LocalArtifactStore {
    fn put(&self, path: &ArtifactPath, body: &mut dyn Read) -> Result<u64> {
        if path.is_root() {
            return Err(Error::invalid("An artifact path must name a file"));
        }
        let target = self.resolve(path)?;
        if target.is_dir() {
            return Err(Error::invalid(format!(
                "Artifact path '{}' is a directory",
                path.as_string()
            )));
        }
        let dir = target
            .parent()
            .ok_or_else(|| Error::invalid("An artifact path must name a file"))?;
        fs::create_dir_all(dir)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(TMP_PREFIX)
            .tempfile_in(dir)?;
        let written = io::copy(body, tmp.as_file_mut())?;
        tmp.as_file_mut().flush()?;
        tmp.as_file().sync_all()?;
        tmp.persist(&target).map_err(|e| Error::Io(e.error))?;
        sync_dir(dir)?;
        Ok(written)
    }

    fn open(&self, path: &ArtifactPath) -> Result<(Box<dyn Read + Send>, u64)> {
        let target = self.resolve(path)?;
        let meta = match fs::metadata(&target) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Self::not_found(path)),
            Err(e) => return Err(e.into()),
        };
        if meta.is_dir() {
            return Err(Error::invalid(format!(
                "Artifact '{}' is a directory",
                path.as_string()
            )));
        }
        Ok((Box::new(fs::File::open(&target)?), meta.len()))
    }

    fn list(&self, path: &ArtifactPath) -> Result<Vec<ArtifactEntry>> {
        let target = self.resolve(path)?;
        if !target.is_dir() {
            return Ok(vec![]);
        }
        let mut entries = Vec::new();
        for entry in fs::read_dir(&target)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let file_type = entry.file_type()?;
            if name.starts_with(TMP_PREFIX) || file_type.is_symlink() {
                continue;
            }
            let is_dir = file_type.is_dir();
            let file_size = if is_dir {
                None
            } else {
                Some(entry.metadata()?.len())
            };
            entries.push(ArtifactEntry {
                path: name,
                is_dir,
                file_size,
            });
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    }

    fn delete(&self, path: &ArtifactPath) -> Result<()> {
        if path.is_root() {
            return Err(Error::invalid("Refusing to delete the artifact root"));
        }
        let target = self.resolve(path)?;
        match fs::symlink_metadata(&target) {
            Ok(meta) if meta.is_dir() => fs::remove_dir_all(&target)?,
            Ok(_) => fs::remove_file(&target)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Self::not_found(path)),
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, LocalArtifactStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalArtifactStore::new(dir.path().join("artifacts")).unwrap();
        (dir, store)
    }

    fn p(s: &str) -> ArtifactPath {
        ArtifactPath::parse(s).unwrap()
    }

    #[test]
    fn put_open_list_delete() {
        let (_dir, store) = store();
        store
            .put(&p("1/run/artifacts/a/b.txt"), &mut &b"hello"[..])
            .unwrap();
        let (mut r, size) = store.open(&p("1/run/artifacts/a/b.txt")).unwrap();
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!((s.as_str(), size), ("hello", 5));
        let listed = store.list(&p("1/run/artifacts")).unwrap();
        assert_eq!(
            listed,
            vec![ArtifactEntry {
                path: "a".into(),
                is_dir: true,
                file_size: None
            }]
        );
        store.delete(&p("1/run/artifacts/a")).unwrap();
        assert!(matches!(
            store.open(&p("1/run/artifacts/a/b.txt")),
            Err(Error::NotFound(_))
        ));
    }

    #[test]
    fn refuses_symlinks_out_of_root() {
        let (dir, store) = store();
        let outside = dir.path().join("outside");
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("secret"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, store.root().join("link")).unwrap();
        assert!(matches!(
            store.open(&p("link/secret")),
            Err(Error::InvalidParameter(_))
        ));
        assert!(matches!(
            store.put(&p("link/new"), &mut &b"x"[..]),
            Err(Error::InvalidParameter(_))
        ));
        assert!(!outside.join("new").exists());
        assert!(store.list(&p("")).unwrap().is_empty());
    }

    #[test]
    fn a_file_used_as_a_directory_is_the_clients_mistake() {
        let (_dir, store) = store();
        store.put(&p("a/file.txt"), &mut &b"x"[..]).unwrap();
        let under = p("a/file.txt/child");
        assert!(matches!(
            store.put(&under, &mut &b"y"[..]),
            Err(Error::InvalidParameter(_))
        ));
        assert!(matches!(
            store.open(&under),
            Err(Error::InvalidParameter(_))
        ));
        assert!(matches!(
            store.list(&under),
            Err(Error::InvalidParameter(_))
        ));
        assert!(matches!(
            store.delete(&under),
            Err(Error::InvalidParameter(_))
        ));
    }

    #[test]
    fn failed_write_leaves_no_file() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("client went away"))
            }
        }
        let (_dir, store) = store();
        assert!(store.put(&p("x/y.bin"), &mut Failing).is_err());
        assert!(matches!(store.open(&p("x/y.bin")), Err(Error::NotFound(_))));
        assert!(store.list(&p("x")).unwrap().is_empty());
    }
}
