//! Artifact bytes in an object store (an S3-compatible bucket under a prefix), behind the same
//! synchronous [`ArtifactStore`] the handlers use for a folder.
//!
//! The store's requests run on a small runtime of its own, so callers on any thread (the
//! server's blocking pool, a CLI command without a runtime) block on them the same way.
//! Writes stream: a body up to one part is one `PUT`, a larger one a multipart upload of
//! [`PART`]-sized parts with at most [`PARTS_IN_FLIGHT`] in flight, so memory stays bounded
//! whatever the file's size; an object becomes visible only when its upload completes (S3
//! never shows part of one), and a body that fails midway aborts the upload. Reads stream the
//! same way, at most [`CHUNKS_AHEAD`] network chunks ahead of the reader. With
//! [`ObjectArtifactStore::with_ranged_reads`], an object larger than two [`RANGE`]s is read as
//! its first range from the first response and the rest as byte ranges, several at once, in
//! order, each pinned to the first response's ETag: a single stream is the bottleneck of many
//! S3 servers (the S3 docs recommend ranged reads, and boto3's downloads use them), but some
//! (moto's) read the whole object for every range, so it is a choice, off by default.
use cairn_core::paths::ArtifactPath;
use cairn_core::{ArtifactEntry, ArtifactStore, Error, Result};
use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path as Key;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use std::future::Future;
use std::io::{self, Read};
use std::sync::Arc;

/// Bodies up to this size go in one request; larger ones in parts of this size (S3's parts
/// must be at least 5 MiB).
pub const PART: usize = 8 << 20;
/// Parts uploading at once: memory per upload is at most this many parts plus one filling.
pub const PARTS_IN_FLIGHT: usize = 4;
/// How long the start-up check waits for the bucket.
const START_CHECK: std::time::Duration = std::time::Duration::from_secs(10);
/// Network chunks a download reads ahead of its consumer.
const CHUNKS_AHEAD: usize = 8;
/// Bytes per ranged request of a large download.
pub const RANGE: usize = 4 << 20;
/// The most ranged requests of one download at once: with the chunks ahead (1 MiB slices of
/// ranges), a download holds at most about (n + 3) x 4 MiB (measured with 8: a 1 GiB download
/// through the server raised its RSS by 44 MiB; with 4, 27 MiB but 27% slower from s3s-fs).
pub const MAX_RANGES_IN_FLIGHT: usize = 8;
/// Ranges are handed to the reader in slices of this size, so that the chunks ahead bound
/// memory in bytes, not in ranges.
const SLICE: usize = 1 << 20;

/// An [`ArtifactStore`] on any [`ObjectStore`] (S3 in practice), under a key prefix.
pub struct ObjectArtifactStore {
    store: Arc<dyn ObjectStore>,
    /// Keys start with this (no leading or trailing `/`; empty for the bucket's root).
    prefix: String,
    /// Shown in errors and logs: `s3://bucket/prefix`.
    url: String,
    runtime: Option<tokio::runtime::Runtime>,
    /// Ranged requests per large download; 0 reads every object as one stream.
    ranges_in_flight: usize,
}

impl std::fmt::Debug for ObjectArtifactStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectArtifactStore")
            .field("url", &self.url)
            .finish()
    }
}

impl Drop for ObjectArtifactStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics on an async thread; let it go in the
        // background instead (nothing is in flight once the store is dropped).
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl ObjectArtifactStore {
    /// Reads objects larger than two [`RANGE`]s by byte ranges, `in_flight` at once (at most
    /// [`MAX_RANGES_IN_FLIGHT`]; 0 keeps one stream per object).
    pub fn with_ranged_reads(mut self, in_flight: usize) -> Self {
        self.ranges_in_flight = in_flight.min(MAX_RANGES_IN_FLIGHT);
        self
    }

    /// Keeps artifacts in `store` under `prefix`; `url` names the place in messages.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, url: &str) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cairn-artifacts")
            .enable_all()
            .build()?;
        Ok(ObjectArtifactStore {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            url: url.to_string(),
            runtime: Some(runtime),
            ranges_in_flight: 0,
        })
    }

    /// Where the artifacts live, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Checks the bucket answers (a listing of one page under the prefix), so a server with a
    /// wrong endpoint, bucket or credentials fails at start, not at its first upload.
    pub fn check(&self) -> Result<()> {
        let store = self.store.clone();
        let prefix = self.key_of(&[])?;
        let url = self.url.clone();
        self.block(async move {
            let mut listing = store.list(Some(&prefix));
            // The client retries for minutes; a start-up check answers sooner.
            match tokio::time::timeout(START_CHECK, listing.next()).await {
                Err(_) => Err(Error::Io(io::Error::other(format!(
                    "artifact store {url}: no answer within {} s",
                    START_CHECK.as_secs()
                )))),
                Ok(Some(Err(e))) => Err(unavailable(&url, e)),
                Ok(_) => Ok(()),
            }
        })
    }

    /// Runs `work` on the store's runtime and waits for it from any thread (never panics on
    /// an async thread the way `block_on` would; it only blocks it).
    fn block<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| Error::Storage("the artifact store is shut down".into()))?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = tx.send(work.await);
        });
        rx.recv()
            .map_err(|_| Error::Storage("an artifact store request was cancelled".into()))?
    }

    /// The key of a path's components under the prefix.
    fn key_of(&self, components: &[String]) -> Result<Key> {
        let mut raw = self.prefix.clone();
        for part in components {
            if !raw.is_empty() {
                raw.push('/');
            }
            raw.push_str(part);
        }
        Key::parse(&raw).map_err(|e| Error::invalid(format!("Invalid artifact path: {e}")))
    }

    fn not_found(path: &ArtifactPath) -> Error {
        Error::not_found(format!("Artifact '{}' does not exist", path.as_string()))
    }
}

fn unavailable(url: &str, e: object_store::Error) -> Error {
    Error::Io(io::Error::other(format!("artifact store {url}: {e}")))
}

/// Whether anything lies under `dir` (one page of a listing, stopped at its first key).
async fn has_children(store: &dyn ObjectStore, dir: &Key, url: &str) -> Result<bool> {
    let mut listing = store.list(Some(dir));
    match listing.next().await {
        None => Ok(false),
        Some(Ok(_)) => Ok(true),
        Some(Err(e)) => Err(unavailable(url, e)),
    }
}

/// Whether an object exists at `key`.
async fn is_object(store: &dyn ObjectStore, key: &Key, url: &str) -> Result<bool> {
    match store.head(key).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(unavailable(url, e)),
    }
}

/// Fills `buf` from `body` as far as it goes; answers how many bytes (less than the buffer's
/// length only at the end of the body).
fn fill(body: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match body.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

impl ArtifactStore for ObjectArtifactStore {
    fn put(&self, path: &ArtifactPath, body: &mut dyn Read) -> Result<u64> {
        if path.is_root() {
            return Err(Error::invalid("An artifact path must name a file"));
        }
        let parts = path.components().to_vec();
        let key = self.key_of(&parts)?;
        // The folder's rules, kept on a bucket: a file never hides under a file, and a
        // directory is never overwritten by one.
        let ancestors: Vec<(String, Key)> = (1..parts.len())
            .map(|n| Ok((parts[..n].join("/"), self.key_of(&parts[..n])?)))
            .collect::<Result<_>>()?;
        let (store, url, target) = (self.store.clone(), self.url.clone(), key.clone());
        let shown = path.as_string();
        self.block(async move {
            let checks = ancestors.iter().map(|(_, k)| is_object(&*store, k, &url));
            let found = futures_util::future::try_join_all(checks).await?;
            if let Some(((name, _), _)) = ancestors.iter().zip(found).find(|(_, is)| *is) {
                return Err(Error::invalid(format!(
                    "Invalid artifact path '{shown}': '{name}' is a file, not a directory"
                )));
            }
            if has_children(&*store, &target, &url).await? {
                return Err(Error::invalid(format!(
                    "Artifact path '{shown}' is a directory"
                )));
            }
            Ok(())
        })?;

        let mut buf = vec![0u8; PART];
        let first = fill(body, &mut buf)?;
        if first < PART {
            buf.truncate(first);
            let (store, url) = (self.store.clone(), self.url.clone());
            self.block(async move {
                store
                    .put(&key, PutPayload::from(buf))
                    .await
                    .map_err(|e| unavailable(&url, e))
            })?;
            return Ok(first as u64);
        }
        let (store, url) = (self.store.clone(), self.url.clone());
        let upload = self.block(async move {
            let upload = store
                .put_multipart(&key)
                .await
                .map_err(|e| unavailable(&url, e))?;
            Ok(WriteMultipart::new_with_chunk_size(upload, PART))
        })?;
        // The writer moves between this thread and the runtime, one step at a time.
        let mut writer = Some(upload);
        let mut total = first as u64;
        let mut chunk = Some(buf);
        while let Some(data) = chunk.take() {
            let mut w = writer
                .take()
                .ok_or_else(|| Error::Storage("multipart upload lost".into()))?;
            let url = self.url.clone();
            let stepped = self.block(async move {
                w.write(&data);
                match w.wait_for_capacity(PARTS_IN_FLIGHT).await {
                    Ok(()) => Ok(Ok((w, data))),
                    Err(e) => Ok(Err((w, unavailable(&url, e)))),
                }
            })?;
            let mut data = match stepped {
                Ok((w, data)) => {
                    writer = Some(w);
                    data
                }
                Err((w, e)) => {
                    let _ = self.block(async move { Ok(w.abort().await) });
                    return Err(e);
                }
            };
            data.resize(PART, 0);
            match fill(body, &mut data) {
                Ok(0) => break,
                Ok(n) => {
                    data.truncate(n);
                    total += n as u64;
                    chunk = Some(data);
                }
                Err(e) => {
                    if let Some(w) = writer.take() {
                        let _ = self.block(async move { Ok(w.abort().await) });
                    }
                    return Err(e.into());
                }
            }
        }
        let w = writer.ok_or_else(|| Error::Storage("multipart upload lost".into()))?;
        let url = self.url.clone();
        self.block(async move { w.finish().await.map_err(|e| unavailable(&url, e)) })?;
        Ok(total)
    }

    fn open(&self, path: &ArtifactPath) -> Result<(Box<dyn Read + Send>, u64)> {
        let key = self.key_of(path.components())?;
        let (store, url) = (self.store.clone(), self.url.clone());
        let in_flight = self.ranges_in_flight;
        let got = self.block(async move {
            match store.get(&key).await {
                Ok(result) => {
                    let size = result.meta.size;
                    let e_tag = result.meta.e_tag.clone();
                    let first = result.into_stream();
                    Ok(Some((
                        size,
                        ranged(store, key, first, size, e_tag, in_flight),
                    )))
                }
                Err(object_store::Error::NotFound { .. }) => {
                    if has_children(&*store, &key, &url).await? {
                        Err(Error::invalid("directory"))
                    } else {
                        Ok(None)
                    }
                }
                Err(e) => Err(unavailable(&url, e)),
            }
        });
        let (size, stream) = match got {
            Ok(Some(found)) => found,
            Ok(None) => return Err(Self::not_found(path)),
            Err(Error::InvalidParameter(_)) => {
                return Err(Error::invalid(format!(
                    "Artifact '{}' is a directory",
                    path.as_string()
                )))
            }
            Err(e) => return Err(e),
        };
        Ok((Box::new(self.reader(stream)), size))
    }

    fn list(&self, path: &ArtifactPath) -> Result<Vec<ArtifactEntry>> {
        let dir = self.key_of(path.components())?;
        let (store, url) = (self.store.clone(), self.url.clone());
        // `list_with_delimiter` follows S3's continuation tokens, so a folder of any size
        // lists whole, page by page.
        let listing = self.block(async move {
            store
                .list_with_delimiter(Some(&dir))
                .await
                .map_err(|e| unavailable(&url, e))
        })?;
        let mut entries: Vec<ArtifactEntry> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename())
            .map(|name| ArtifactEntry {
                path: name.to_string(),
                is_dir: true,
                file_size: None,
            })
            .chain(listing.objects.iter().filter_map(|meta| {
                meta.location.filename().map(|name| ArtifactEntry {
                    path: name.to_string(),
                    is_dir: false,
                    file_size: Some(meta.size),
                })
            }))
            .collect();
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    }

    fn delete(&self, path: &ArtifactPath) -> Result<()> {
        if path.is_root() {
            return Err(Error::invalid("Refusing to delete the artifact root"));
        }
        let key = self.key_of(path.components())?;
        let (store, url) = (self.store.clone(), self.url.clone());
        let deleted = self.block(async move {
            if is_object(&*store, &key, &url).await? {
                store.delete(&key).await.map_err(|e| unavailable(&url, e))?;
                return Ok(true);
            }
            let under: BoxStream<'static, object_store::Result<Key>> =
                store.list(Some(&key)).map_ok(|meta| meta.location).boxed();
            let mut gone = store.delete_stream(under);
            let mut any = false;
            while let Some(result) = gone.next().await {
                match result {
                    Ok(_) => any = true,
                    Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(unavailable(&url, e)),
                }
            }
            Ok(any)
        })?;
        if deleted {
            Ok(())
        } else {
            Err(Self::not_found(path))
        }
    }
}

impl ObjectArtifactStore {
    /// A blocking reader over a download: a task on the store's runtime pulls the network
    /// stream at most [`CHUNKS_AHEAD`] chunks ahead.
    fn reader(
        &self,
        mut stream: BoxStream<'static, object_store::Result<bytes::Bytes>>,
    ) -> ChunkReader {
        let (tx, rx) = std::sync::mpsc::sync_channel(CHUNKS_AHEAD);
        let url = self.url.clone();
        if let Some(runtime) = &self.runtime {
            runtime.spawn(async move {
                while let Some(item) = stream.next().await {
                    let item =
                        item.map_err(|e| io::Error::other(format!("artifact store {url}: {e}")));
                    let failed = item.is_err();
                    if !send_chunk(&tx, Some(item)).await || failed {
                        return;
                    }
                }
                send_chunk(&tx, None).await;
            });
        }
        ChunkReader {
            chunks: rx,
            current: bytes::Bytes::new(),
            done: false,
        }
    }
}

/// The download of an object of `size` bytes whose whole-object response is `first`: that
/// stream alone when ranged reads are off, the object is small or it has no ETag to pin
/// ranges to; otherwise its first [`RANGE`] bytes, then the rest by ranged requests pinned to
/// the ETag, `in_flight` at once, in order, in [`SLICE`]-sized chunks.
fn ranged(
    store: Arc<dyn ObjectStore>,
    key: Key,
    first: BoxStream<'static, object_store::Result<bytes::Bytes>>,
    size: u64,
    e_tag: Option<String>,
    in_flight: usize,
) -> BoxStream<'static, object_store::Result<bytes::Bytes>> {
    let range = RANGE as u64;
    let Some(e_tag) = e_tag.filter(|_| in_flight > 0 && size > 2 * range) else {
        return first;
    };
    // The first range from the response already open; the connection closes when it drops.
    let head = first
        .scan(0u64, move |taken, chunk| {
            let left = range - *taken;
            let item = match chunk {
                _ if left == 0 => None,
                Ok(mut bytes) => {
                    if bytes.len() as u64 > left {
                        bytes.truncate(left as usize);
                    }
                    *taken += bytes.len() as u64;
                    Some(Ok(bytes))
                }
                Err(e) => Some(Err(e)),
            };
            futures_util::future::ready(item)
        })
        .boxed();
    let rest = futures_util::stream::iter((1..size.div_ceil(range)).map(move |i| {
        let (store, key) = (store.clone(), key.clone());
        let options = GetOptions {
            range: Some(GetRange::Bounded(i * range..((i + 1) * range).min(size))),
            if_match: Some(e_tag.clone()),
            ..GetOptions::default()
        };
        async move { store.get_opts(&key, options).await?.bytes().await }
    }))
    .buffered(in_flight)
    .map_ok(|bytes| {
        let slices: Vec<object_store::Result<bytes::Bytes>> = (0..bytes.len())
            .step_by(SLICE)
            .map(|at| Ok(bytes.slice(at..(at + SLICE).min(bytes.len()))))
            .collect();
        futures_util::stream::iter(slices)
    })
    .try_flatten();
    head.chain(rest).boxed()
}

/// A download's chunks, then `None` once the object has been read whole.
type Chunk = Option<io::Result<bytes::Bytes>>;

/// Hands a chunk to the reader; `false` when the reader is gone. The channel is std's (the
/// reader blocks on it from any thread), so a full one is waited on from the blocking pool,
/// never on a runtime thread.
async fn send_chunk(tx: &std::sync::mpsc::SyncSender<Chunk>, chunk: Chunk) -> bool {
    match tx.try_send(chunk) {
        Ok(()) => true,
        Err(std::sync::mpsc::TrySendError::Disconnected(_)) => false,
        Err(std::sync::mpsc::TrySendError::Full(chunk)) => {
            let tx = tx.clone();
            matches!(
                tokio::task::spawn_blocking(move || tx.send(chunk).is_ok()).await,
                Ok(true)
            )
        }
    }
}

/// Reads a download's chunks in order; an error from the bucket, or a download that stops
/// before its end, is an I/O error (never a short file).
struct ChunkReader {
    chunks: std::sync::mpsc::Receiver<Chunk>,
    current: bytes::Bytes,
    done: bool,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            if self.done {
                return Ok(0);
            }
            match self.chunks.recv() {
                Ok(Some(Ok(chunk))) => self.current = chunk,
                Ok(Some(Err(e))) => return Err(e),
                Ok(None) => {
                    self.done = true;
                    return Ok(0);
                }
                Err(_) => {
                    return Err(io::Error::other(
                        "the artifact download stopped before its end",
                    ))
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}
