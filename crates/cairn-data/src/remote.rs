//! Remotes: a folder or an S3-compatible bucket holding the same `objects/` layout as the local
//! store, reached through the `object_store` crate.
//!
//! Push lists what the remote has and uploads only the rest, files before the directory
//! manifests that name them, so a manifest on the remote implies its files are there. Pull
//! fetches manifests first, then the missing files, each into a temp file hashed as it arrives
//! and renamed into the store only when its digest matches. Both run transfers in parallel and
//! resume after an interruption by skipping what already arrived.
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::manifest::Manifest;
use crate::pointer::Kind;
use crate::progress::Progress;
use crate::repo::DataRepo;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Objects up to this size go in one request; larger ones in parts of this size.
const PART: usize = 8 << 20;

/// Project configuration in `.cairn/config.yaml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Config {
    /// Remote name -> URL.
    #[serde(default)]
    pub remotes: BTreeMap<String, String>,
    /// The remote used when none is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_remote: Option<String>,
}

fn config_file(root: &Path) -> PathBuf {
    root.join(".cairn").join("config.yaml")
}

impl Config {
    /// Loads the project's configuration (empty if none).
    pub fn load(root: &Path) -> Result<Config> {
        let file = config_file(root);
        match std::fs::read_to_string(&file) {
            Ok(text) => serde_yaml::from_str(&text)
                .map_err(|e| Error::invalid(format!("{}: {e}", file.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(Error::Io {
                path: file,
                source: e,
            }),
        }
    }

    /// Saves it.
    pub fn save(&self, root: &Path) -> Result<()> {
        let file = config_file(root);
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).at(dir)?;
        }
        let text = serde_yaml::to_string(self).map_err(|e| Error::invalid(e.to_string()))?;
        crate::fsutil::write_atomic(&file, text.as_bytes())
    }

    /// The URL for `--remote NAME` (a name, or a URL/path itself), or the default remote.
    pub fn resolve(&self, given: Option<&str>) -> Result<(String, String)> {
        match given {
            Some(g) => match self.remotes.get(g) {
                Some(url) => Ok((g.to_string(), url.clone())),
                None if g.contains("://") || g.starts_with('/') => {
                    Ok((g.to_string(), g.to_string()))
                }
                None => Err(Error::NotFound(format!(
                    "no remote named {g} (add one with `cairn data remote add {g} URL`)"
                ))),
            },
            None => {
                let name = self.default_remote.clone().or_else(|| {
                    (self.remotes.len() == 1)
                        .then(|| self.remotes.keys().next().cloned())
                        .flatten()
                });
                let name = name.ok_or_else(|| {
                    Error::invalid(
                        "no remote given and no default remote: `cairn data remote add NAME URL --default`",
                    )
                })?;
                let url = self.remotes.get(&name).ok_or_else(|| {
                    Error::NotFound(format!("default remote {name} is not configured"))
                })?;
                Ok((name, url.clone()))
            }
        }
    }
}

/// The bucket an `s3://bucket/prefix` URL names, reached with the usual `AWS_*` variables
/// (credentials, `AWS_REGION`, and `AWS_ENDPOINT_URL` for MinIO or moto), and the prefix with
/// no leading or trailing `/`. Used by remotes and by the server's artifact store.
pub fn s3_from_env(url: &str) -> std::result::Result<(Arc<dyn ObjectStore>, String), String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("{url}: not an s3:// URL"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("{url}: no bucket"));
    }
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .or_else(|_| std::env::var("AWS_ENDPOINT"))
        .unwrap_or_default();
    if endpoint.starts_with("http://") {
        builder = builder.with_allow_http(true);
    } else if std::env::var_os("AWS_UNSIGNED_PAYLOAD").is_none() {
        // As boto3 does over HTTPS: TLS already protects the body, so requests are signed
        // without hashing every byte (SHA-256 of each part halved uploads here). Over plain
        // HTTP bodies stay signed unless AWS_UNSIGNED_PAYLOAD=true says otherwise.
        builder = builder.with_unsigned_payload(true);
    }
    if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err() {
        builder = builder.with_region("us-east-1");
    }
    let store = builder.build().map_err(|e| e.to_string())?;
    Ok((Arc::new(store), prefix.trim_matches('/').to_string()))
}

/// An opened remote.
pub struct Remote {
    name: String,
    store: Arc<dyn ObjectStore>,
    prefix: String,
}

/// What a transfer did.
#[derive(Debug, Clone, Default)]
pub struct Transfer {
    /// Objects sent or received.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Objects already on the other side.
    pub skipped: u64,
}

impl Remote {
    /// Opens `url`: `s3://bucket/prefix` (credentials, region and endpoint from the usual
    /// `AWS_*` variables, e.g. `AWS_ENDPOINT_URL` for MinIO or moto), `file:///path` or `/path`.
    pub fn open(name: &str, url: &str) -> Result<Remote> {
        let fail = |message: String| Error::Remote {
            remote: name.to_string(),
            message,
        };
        if url.starts_with("s3://") {
            let (store, prefix) = s3_from_env(url).map_err(fail)?;
            return Ok(Remote {
                name: name.to_string(),
                store,
                prefix: if prefix.is_empty() {
                    String::new()
                } else {
                    format!("{prefix}/")
                },
            });
        }
        let dir = if let Some(path) = url.strip_prefix("file://") {
            PathBuf::from(path)
        } else if url.starts_with('/') {
            PathBuf::from(url)
        } else {
            return Err(fail(format!(
                "unsupported remote URL {url}: use s3://bucket/prefix, file:///path or /path"
            )));
        };
        std::fs::create_dir_all(&dir).at(&dir)?;
        let store = LocalFileSystem::new_with_prefix(&dir).map_err(|e| fail(e.to_string()))?;
        Ok(Remote {
            name: name.to_string(),
            store: Arc::new(store),
            prefix: String::new(),
        })
    }

    fn key(&self, d: &Digest) -> StorePath {
        let hex = d.to_hex();
        StorePath::from(format!(
            "{}objects/{}/{}",
            self.prefix,
            &hex[..2],
            &hex[2..]
        ))
    }

    fn fail(&self, e: impl std::fmt::Display) -> Error {
        Error::Remote {
            remote: self.name.clone(),
            message: e.to_string(),
        }
    }

    async fn present(&self) -> Result<HashSet<Digest>> {
        let prefix = StorePath::from(format!("{}objects", self.prefix));
        let metas: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| self.fail(e))?;
        Ok(metas
            .iter()
            .filter_map(|m| {
                let parts: Vec<_> = m.location.parts().collect();
                let n = parts.len();
                if n < 2 {
                    return None;
                }
                Digest::parse(&format!(
                    "{}{}",
                    parts[n - 2].as_ref(),
                    parts[n - 1].as_ref()
                ))
            })
            .collect())
    }

    async fn upload(&self, repo: &DataRepo, d: Digest, progress: &dyn Progress) -> Result<u64> {
        let path = repo.cas().object_path(&d);
        let size = std::fs::metadata(&path).at(&path)?.len();
        let key = self.key(&d);
        if size as usize <= PART {
            let bytes = tokio::fs::read(&path).await.at(&path)?;
            self.store
                .put(&key, PutPayload::from(bytes))
                .await
                .map_err(|e| self.fail(e))?;
            progress.advance(size);
            return Ok(size);
        }
        let upload = self
            .store
            .put_multipart(&key)
            .await
            .map_err(|e| self.fail(e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut file = tokio::fs::File::open(&path).await.at(&path)?;
        let mut buf = vec![0u8; PART];
        loop {
            use tokio::io::AsyncReadExt;
            let n = file.read(&mut buf).await.at(&path)?;
            if n == 0 {
                break;
            }
            if let Err(e) = writer.wait_for_capacity(4).await {
                return Err(self.fail(e));
            }
            writer.write(&buf[..n]);
            progress.advance(n as u64);
        }
        writer.finish().await.map_err(|e| self.fail(e))?;
        Ok(size)
    }

    async fn download(&self, repo: &DataRepo, d: Digest, progress: &dyn Progress) -> Result<u64> {
        let result = match self.store.get(&self.key(&d)).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(self.fail(format!(
                    "object {d} is not on the remote (push it from where it was added)"
                )))
            }
            Err(e) => return Err(self.fail(e)),
        };
        let mut tmp = repo.cas().temp()?;
        let mut hasher = blake3::Hasher::new();
        let mut stream = result.into_stream();
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.fail(e))?;
            hasher.update(&chunk);
            tmp.write_all(&chunk).at(tmp.path())?;
            size += chunk.len() as u64;
            progress.advance(chunk.len() as u64);
        }
        let actual: Digest = hasher.finalize().into();
        if actual != d {
            return Err(self.fail(format!(
                "object {d} on the remote is corrupt: its bytes hash to {actual}"
            )));
        }
        repo.cas().commit(tmp, &d)?;
        Ok(size)
    }
}

impl Transfer {
    fn add(&mut self, sizes: &[u64]) {
        self.objects += sizes.len() as u64;
        self.bytes += sizes.iter().sum::<u64>();
    }
}

/// Runs one transfer per item, `jobs` at a time; the sizes moved, or the first error.
async fn all<T, F, Fut>(items: Vec<T>, jobs: usize, transfer: F) -> Result<Vec<u64>>
where
    F: FnMut(T) -> Fut,
    Fut: std::future::Future<Output = Result<u64>>,
{
    stream::iter(items)
        .map(transfer)
        .buffer_unordered(jobs.max(1))
        .try_collect()
        .await
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::invalid(format!("cannot start the transfer runtime: {e}")))
}

impl DataRepo {
    /// Sends the objects of these versions the remote lacks.
    pub fn push(
        &self,
        remote: &Remote,
        roots: &[(Kind, Digest)],
        jobs: usize,
        progress: &dyn Progress,
    ) -> Result<Transfer> {
        let mut missing = Vec::new();
        let needed = self.needed(roots, true, &mut missing)?;
        if let Some(d) = needed.iter().find(|d| !self.cas().contains(d)) {
            return Err(Error::Missing(*d));
        }
        let manifests: HashSet<Digest> = roots
            .iter()
            .filter(|(k, _)| *k == Kind::Directory)
            .map(|(_, d)| *d)
            .collect();
        runtime()?.block_on(async {
            let present = remote.present().await?;
            let mut report = Transfer::default();
            let mut files = Vec::new();
            let mut last = Vec::new();
            for d in needed {
                if present.contains(&d) {
                    report.skipped += 1;
                } else if manifests.contains(&d) {
                    last.push(d);
                } else {
                    files.push(d);
                }
            }
            for batch in [files, last] {
                let total: u64 = batch
                    .iter()
                    .map(|d| {
                        std::fs::metadata(self.cas().object_path(d))
                            .map(|m| m.len())
                            .unwrap_or(0)
                    })
                    .sum();
                progress.add_total(total);
                let sizes = all(batch, jobs, |d| remote.upload(self, d, progress)).await?;
                report.add(&sizes);
            }
            Ok(report)
        })
    }

    /// Fetches the objects of these versions the local store lacks.
    pub fn pull(
        &self,
        remote: &Remote,
        roots: &[(Kind, Digest)],
        jobs: usize,
        progress: &dyn Progress,
    ) -> Result<Transfer> {
        runtime()?.block_on(async {
            let mut report = Transfer::default();
            let manifests: Vec<Digest> = roots
                .iter()
                .filter(|(k, d)| *k == Kind::Directory && !self.cas().contains(d))
                .map(|(_, d)| *d)
                .collect();
            let sizes = all(manifests, jobs, |d| remote.download(self, d, progress)).await?;
            report.add(&sizes);
            let mut wanted: Vec<(Digest, u64)> = Vec::new();
            let mut seen = HashSet::new();
            for (kind, d) in roots {
                match kind {
                    Kind::File => {
                        if seen.insert(*d) {
                            wanted.push((*d, 0));
                        }
                    }
                    Kind::Directory => {
                        let m = Manifest::from_bytes(&self.cas().read(d)?)?;
                        for e in m.files() {
                            if let Some(fd) = e.digest {
                                if seen.insert(fd) {
                                    wanted.push((fd, e.size));
                                }
                            }
                        }
                    }
                }
            }
            let (have, todo): (Vec<_>, Vec<_>) = wanted
                .into_iter()
                .partition(|(d, _)| self.cas().contains(d));
            report.skipped += have.len() as u64;
            progress.add_total(todo.iter().map(|(_, s)| *s).sum());
            let sizes = all(todo, jobs, |(d, _)| remote.download(self, d, progress)).await?;
            report.add(&sizes);
            Ok(report)
        })
    }
}
