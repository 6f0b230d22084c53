//! Shared set-up: a project folder and a home with a SQLite metadata store.
#![allow(dead_code, clippy::unwrap_used)]
use cairn_data::repo::DataRepo;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct Project {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub home: PathBuf,
}

impl Project {
    pub fn new() -> Project {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("proj");
        std::fs::create_dir_all(root.join(".cairn")).unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        Project { dir, root, home }
    }

    /// A repo over this project with the home's store (a second call sees the same state).
    pub fn repo(&self) -> DataRepo {
        self.repo_with_home(&self.home)
    }

    pub fn repo_with_home(&self, home: &Path) -> DataRepo {
        std::fs::create_dir_all(home).unwrap();
        let uri = format!("sqlite:///{}", home.join("cairn.db").display());
        let store = cairn_store::SqlStore::open(&uri).unwrap();
        DataRepo::open(&self.root, &home.join("data"), Arc::new(store)).unwrap()
    }

    pub fn write(&self, rel: &str, bytes: &[u8]) {
        let path = self.root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    pub fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.root.join(rel)).unwrap()
    }
}

/// Everything under a folder: path -> (is_dir, mode, bytes).
pub fn tree(root: &Path) -> BTreeMap<String, (bool, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let mode = m.permissions().mode() & 0o7777;
            if m.is_dir() {
                out.insert(rel, (true, mode, vec![]));
                stack.push(p);
            } else {
                out.insert(rel, (false, mode, std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}
