//! The artifact proxy (`mlflow-artifacts:` URIs): PUT, GET, list and DELETE over an
//! [`cairn_core::ArtifactStore`], streamed in both directions.
use crate::error::ApiError;
use crate::request::Fields;
use crate::{blocking, reply, ApiResult, AppState};
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use cairn_core::paths::ArtifactPath;
use cairn_core::ArtifactEntry;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Default largest artifact upload: far above any model this project is for, below a full disk.
pub const DEFAULT_MAX_ARTIFACT_BYTES: u64 = 16 << 30;

/// The largest artifact upload a router takes, as a request extension.
#[derive(Debug, Clone, Copy)]
pub struct ArtifactLimit(pub u64);

/// Scheme of run artifact URIs served by this proxy.
pub const PROXY_SCHEME: &str = "mlflow-artifacts:";

/// `/mlflow-artifacts/...` routes, nested under `/api/2.0` and `/ajax-api/2.0`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/mlflow-artifacts/artifacts", get(list))
        .route("/mlflow-artifacts/artifacts/", get(list))
        .route(
            "/mlflow-artifacts/artifacts/{*path}",
            get(download).put(upload).delete(remove),
        )
        .route("/mlflow/artifacts/list", get(list_for_run))
        .route(
            "/mlflow/logged-models/{model_id}/artifacts/directories",
            get(list_for_logged_model),
        )
        .route(
            "/mlflow/logged-models/{model_id}/artifacts/files",
            get(logged_model_file),
        )
}

fn entries_json(entries: &[ArtifactEntry], prefix: &str) -> Value {
    let files: Vec<Value> = entries
        .iter()
        .map(|e| {
            let path = if prefix.is_empty() {
                e.path.clone()
            } else {
                format!("{prefix}/{}", e.path)
            };
            match e.file_size {
                Some(size) if !e.is_dir => {
                    json!({"path": path, "is_dir": false, "file_size": size})
                }
                _ => json!({"path": path, "is_dir": true}),
            }
        })
        .collect();
    json!({ "files": files })
}

async fn list(State(s): State<AppState>, f: Fields) -> ApiResult {
    let path = ArtifactPath::parse(&f.opt_str("path")?.unwrap_or_default())?;
    let entries = blocking(move || s.artifacts.list(&path)).await?;
    reply(entries_json(&entries, ""))
}

/// A refused upload may leave part of its body unread; closing the connection keeps a pooling
/// client from sending its next request into that leftover.
async fn upload(state: State<AppState>, path: Path<String>, req: Request) -> Response {
    match store_upload(state, path, req).await {
        Ok(ok) => ok.into_response(),
        Err(e) => {
            let mut response = e.into_response();
            response.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            response
        }
    }
}

async fn store_upload(
    State(s): State<AppState>,
    Path(raw): Path<String>,
    req: Request,
) -> ApiResult {
    let path = ArtifactPath::parse(&raw)?;
    let limit = req
        .extensions()
        .get::<ArtifactLimit>()
        .map_or(DEFAULT_MAX_ARTIFACT_BYTES, |l| l.0);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(artifact_too_large(limit));
    }
    // Why the body stopped, when it stopped early: the store only sees an I/O error, and
    // leaves no file behind either way.
    let over_limit = Arc::new(AtomicBool::new(false));
    let unreadable = Arc::new(AtomicBool::new(false));
    let (over, broken) = (over_limit.clone(), unreadable.clone());
    let mut received: u64 = 0;
    let stream = req
        .into_body()
        .into_data_stream()
        .map(move |chunk| match chunk {
            Ok(bytes) => {
                received = received.saturating_add(bytes.len() as u64);
                if received > limit {
                    over.store(true, Ordering::Relaxed);
                    Err(std::io::Error::other("artifact over the size limit"))
                } else {
                    Ok(bytes)
                }
            }
            Err(e) => {
                broken.store(true, Ordering::Relaxed);
                Err(std::io::Error::other(e))
            }
        });
    let reader = tokio_util::io::StreamReader::new(stream);
    let mut bridge = tokio_util::io::SyncIoBridge::new(reader);
    match blocking(move || s.artifacts.put(&path, &mut bridge)).await {
        Ok(_) => reply(json!({})),
        Err(_) if over_limit.load(Ordering::Relaxed) => Err(artifact_too_large(limit)),
        Err(_) if unreadable.load(Ordering::Relaxed) => Err(ApiError::bad_request(
            "The artifact body could not be read whole (cut off or stalled); nothing was stored",
        )),
        Err(e) => Err(e),
    }
}

fn artifact_too_large(limit: u64) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        "REQUEST_LIMIT_EXCEEDED",
        format!("Artifact exceeds the limit of {limit} bytes (--max-artifact-bytes)"),
    )
}

async fn download(
    State(s): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let path = ArtifactPath::parse(&raw)?;
    let (reader, size) = blocking(move || s.artifacts.open(&path)).await?;
    Ok(file_response(reader, size))
}

/// An artifact's bytes, streamed, typed as opaque.
fn file_response(reader: Box<dyn Read + Send>, size: u64) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, size.to_string()),
            // Never let a browser guess a type (an uploaded HTML file must not run as a page).
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
        ],
        stream_body(reader),
    )
        .into_response()
}

/// A blocking reader (an artifact store's file) as a streamed body: read on the blocking pool
/// in 256 KiB pieces, at most four in flight, so no file is held in memory whole.
pub fn stream_body(mut reader: Box<dyn Read + Send>) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tx
                        .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                    {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Body::from_stream(stream)
}

async fn remove(State(s): State<AppState>, Path(raw): Path<String>) -> ApiResult {
    let path = ArtifactPath::parse(&raw)?;
    blocking(move || s.artifacts.delete(&path)).await?;
    reply(json!({}))
}

/// The store-relative root of a run's artifacts, when they live behind this proxy.
pub fn proxied_root(artifact_uri: &str) -> Option<String> {
    let rest = artifact_uri.strip_prefix(PROXY_SCHEME)?;
    // `mlflow-artifacts://host:port/path` names a host; keep the path only.
    let rest = match rest.strip_prefix("//") {
        Some(hosted) => hosted.split_once('/').map(|(_, p)| p).unwrap_or(""),
        None => rest,
    };
    Some(rest.trim_start_matches('/').to_string())
}

/// The place under this proxy of `sub` inside the artifact root `uri`; `None` when the root
/// lives elsewhere.
fn place_in(uri: &str, sub: &ArtifactPath) -> cairn_core::Result<Option<ArtifactPath>> {
    match proxied_root(uri) {
        Some(root) => Ok(Some(ArtifactPath::parse(&root)?.join(sub))),
        None => Ok(None),
    }
}

/// A listing answer: `sub`'s entries under the root `uri`, paths relative to the root.
async fn listing(s: AppState, uri: String, sub: ArtifactPath) -> ApiResult {
    let prefix = sub.as_string();
    let (uri, entries) = blocking(move || {
        let entries = match place_in(&uri, &sub)? {
            Some(place) => s.artifacts.list(&place)?,
            None => vec![],
        };
        Ok((uri, entries))
    })
    .await?;
    let mut body = entries_json(&entries, &prefix);
    body["root_uri"] = uri.into();
    reply(body)
}

/// `GET /mlflow/artifacts/list?run_id=&path=`: paths relative to the run's artifact root.
async fn list_for_run(State(s): State<AppState>, f: Fields) -> ApiResult {
    let run_id = f.run_id()?;
    let sub = ArtifactPath::parse(&f.opt_str("path")?.unwrap_or_default())?;
    let tracking = s.tracking.clone();
    let uri = blocking(move || Ok(tracking.get_run(&run_id)?.info.artifact_uri)).await?;
    listing(s, uri, sub).await
}

/// A logged model's artifact root and the place of `sub` in it (see [`place_in`]).
fn logged_model_place(
    s: &AppState,
    model_id: &str,
    sub: &ArtifactPath,
) -> cairn_core::Result<(String, Option<ArtifactPath>)> {
    let model = s.tracking.get_logged_model(model_id)?;
    let place = place_in(&model.artifact_uri, sub)?;
    Ok((model.artifact_uri, place))
}

/// `GET /mlflow/logged-models/{id}/artifacts/directories?artifact_directory_path=`: as
/// MLflow's `ListLoggedModelArtifacts`, paths relative to the model's root.
async fn list_for_logged_model(
    State(s): State<AppState>,
    Path(model_id): Path<String>,
    f: Fields,
) -> ApiResult {
    let sub = ArtifactPath::parse(&f.opt_str("artifact_directory_path")?.unwrap_or_default())?;
    let tracking = s.tracking.clone();
    let uri = blocking(move || Ok(tracking.get_logged_model(&model_id)?.artifact_uri)).await?;
    listing(s, uri, sub).await
}

/// `GET /mlflow/logged-models/{id}/artifacts/files?artifact_file_path=`: one file of a
/// logged model, streamed (MLflow's UI reads `MLmodel` and previews through it).
async fn logged_model_file(
    State(s): State<AppState>,
    Path(model_id): Path<String>,
    f: Fields,
) -> Result<Response, ApiError> {
    let rel = f.opt_str("artifact_file_path")?.unwrap_or_default();
    if rel.is_empty() {
        return Err(ApiError::bad_request(
            "Request must include the \"artifact_file_path\" query parameter.",
        ));
    }
    let sub = ArtifactPath::parse(&rel)?;
    let (reader, size) = blocking(move || {
        let (_, place) = logged_model_place(&s, &model_id, &sub)?;
        let place = place.ok_or_else(|| {
            cairn_core::Error::NotFound(format!(
                "The artifacts of logged model '{model_id}' are not served by this server"
            ))
        })?;
        s.artifacts.open(&place)
    })
    .await?;
    Ok(file_response(reader, size))
}

#[cfg(test)]
mod tests {
    use super::proxied_root;

    #[test]
    fn proxied_roots() {
        assert_eq!(
            proxied_root("mlflow-artifacts:/1/abc/artifacts").as_deref(),
            Some("1/abc/artifacts")
        );
        assert_eq!(
            proxied_root("mlflow-artifacts://h:5000/1/x").as_deref(),
            Some("1/x")
        );
        assert_eq!(proxied_root("s3://bucket/x"), None);
    }
}
