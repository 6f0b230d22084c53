//! Cairn's HTTP surface: the MLflow-compatible tracking REST API (`/api/2.0/mlflow/...`, also
//! under `/ajax-api/2.0`), the artifact proxy (`/api/2.0/mlflow-artifacts/...`), server info
//! and health. This is the only crate that knows the wire format: handlers read [`Fields`],
//! call `cairn_core::Tracking`, and map errors once, in [`ApiError`].
#![deny(missing_docs)]

pub mod artifacts;
pub mod auth;
pub mod authz;
pub mod bound;
mod error;
mod evaluation;
pub mod features;
pub mod guard;
pub mod lineage;
pub mod listen;
pub mod metrics;
pub mod monitoring;
pub mod oip;
pub mod otlp;
mod registry;
mod request;
pub mod request_id;
pub mod scoring;
pub mod served;
pub mod trace_analytics;
pub mod traces;
mod tracking;
pub mod wire;

pub use error::ApiError;
pub use request::{Fields, JsonLimit, DEFAULT_MAX_JSON_BYTES};

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use cairn_core::{ArtifactStore, Tracking};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The tracking service.
    pub tracking: Tracking,
    /// The model registry.
    pub registry: cairn_core::Registry,
    /// Artifact bytes behind the proxy.
    pub artifacts: Arc<dyn ArtifactStore>,
    /// Dataset versions and lineage.
    pub lineage: cairn_core::lineage::Lineage,
    /// Traces, spans and assessments.
    pub traces: cairn_core::Traces,
    /// Evaluation datasets and scorers.
    pub evaluation: cairn_core::Evaluation,
    /// Users and permissions; `None` when the server runs without authentication.
    pub authn: Option<Arc<auth::Authn>>,
    /// The feature store of one project (`/get-online-features`, `/push`, and the features of
    /// bound model versions); `None` when the server serves none.
    pub features: Option<Arc<features::FeatureServer>>,
}

/// Limits of the HTTP surface.
#[derive(Debug, Clone, Copy)]
pub struct ApiOptions {
    /// Largest JSON request body; larger ones get 413.
    pub max_json_bytes: usize,
    /// Largest artifact upload; larger ones get 413 and leave no file.
    pub max_artifact_bytes: u64,
    /// How served models run (batching, queue bound).
    pub runner: cairn_serving::RunnerOptions,
    /// How many loaded model versions `cairn server` keeps in memory.
    pub loaded_models: served::CacheBounds,
}

impl Default for ApiOptions {
    fn default() -> Self {
        ApiOptions {
            max_json_bytes: DEFAULT_MAX_JSON_BYTES,
            max_artifact_bytes: artifacts::DEFAULT_MAX_ARTIFACT_BYTES,
            runner: cairn_serving::RunnerOptions::default(),
            loaded_models: served::CacheBounds::default(),
        }
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

/// Adds `next_page_token` to a search answer when another page follows.
fn next_token(obj: &mut serde_json::Map<String, Value>, next_offset: Option<u64>) {
    if let Some(offset) = next_offset {
        obj.insert(
            "next_page_token".into(),
            cairn_core::search::page_token(offset).into(),
        );
    }
}

/// Wraps a JSON body as a successful answer.
fn reply(v: Value) -> ApiResult {
    Ok(Json(v))
}

/// Runs store work on the blocking pool (stores are synchronous; the runtime must not wait).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> cairn_core::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(e) => Err(ApiError::internal(format!("worker failed: {e}"))),
    }
}

/// The MLflow REST API release Cairn answers as (what `mlflow server` of that release says at
/// `/version`).
pub const MLFLOW_API_VERSION: &str = "3.17.2";
/// Cairn's own version.
pub const CAIRN_VERSION: &str = env!("CARGO_PKG_VERSION");

async fn cairn_version() -> Json<Value> {
    Json(json!({"cairn": CAIRN_VERSION, "mlflow_api": MLFLOW_API_VERSION}))
}

async fn server_info() -> Json<Value> {
    // The keys `mlflow server` 3.17.2 answers with; Cairn's own version is at
    // `/api/2.0/cairn/version`.
    Json(json!({
        "store_type": "SqlStore",
        "workspaces_enabled": false,
        "trace_archival_enabled": false,
        "multipart_uploads_enabled": false,
        "multipart_downloads_enabled": false,
        "presigned_upload_run_id_supported": false,
        "presigned_upload_model_id_supported": false,
        "features_enabled": {"gateway": false},
    }))
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "ENDPOINT_NOT_FOUND",
        format!("No API endpoint {} {}", req.method(), req.uri().path()),
    )
}

/// One structured log line per request, under the request id that error bodies name.
async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = Instant::now();
    let id = request_id::next();
    let handled = std::panic::AssertUnwindSafe(request_id::scope(id.clone(), next.run(req)));
    let mut response = match futures_util::FutureExt::catch_unwind(handled).await {
        Ok(response) => response,
        // A panic answers 500 for this request only; the server keeps serving.
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            request_id::scope(id.clone(), async move {
                use axum::response::IntoResponse;
                ApiError::internal(format!("handler panicked: {what}")).into_response()
            })
            .await
        }
    };
    tracing::info!(
        request_id = id,
        %method,
        path,
        status = response.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    // A handler that logged the request for monitoring already named it (the caller's id).
    if !response.headers().contains_key("x-request-id") {
        if let Ok(value) = axum::http::HeaderValue::from_str(&id) {
            response.headers_mut().insert("x-request-id", value);
        }
    }
    response
}

/// Bodies up to this size are read before the handler runs (see [`buffer_small_body`]).
const PREREAD_BODY_BYTES: u64 = 1 << 20;

/// Reads a small request body in full before routing. A handler that answers without reading
/// the body (an unknown endpoint, a refused credential, a validation error) would otherwise
/// leave hyper unable to drain it when its bytes arrive after the headers, and hyper then
/// closes the keep-alive connection: a pooled client's next request on it fails with "peer
/// disconnected". Larger and chunked bodies stream to their handlers as before.
async fn buffer_small_body(req: Request) -> Result<Request, Response> {
    use axum::response::IntoResponse;
    let length = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match length {
        Some(n) if n > 0 && n <= PREREAD_BODY_BYTES => {
            let (parts, body) = req.into_parts();
            match axum::body::to_bytes(body, n as usize).await {
                Ok(bytes) => Ok(Request::from_parts(parts, axum::body::Body::from(bytes))),
                Err(e) => Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "BAD_REQUEST",
                    format!("Could not read the request body: {e}"),
                )
                .into_response()),
            }
        }
        _ => Ok(req),
    }
}

/// The body limit and the request log, shared by every router.
fn with_common_layers(router: Router, options: ApiOptions) -> Router {
    let limit = JsonLimit(options.max_json_bytes);
    let artifact_limit = artifacts::ArtifactLimit(options.max_artifact_bytes);
    router
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| async move {
                let mut req = match buffer_small_body(req).await {
                    Ok(req) => req,
                    Err(response) => return response,
                };
                req.extensions_mut().insert(limit);
                req.extensions_mut().insert(artifact_limit);
                let mut response = next.run(req).await;
                response.headers_mut().insert(
                    "x-cairn-version",
                    axum::http::HeaderValue::from_static(CAIRN_VERSION),
                );
                response
            },
        ))
        .layer(axum::middleware::from_fn(log_request))
}

/// The router of `cairn serve`: the Open Inference Protocol over the given models, MLflow's
/// scoring protocol for `scoring_model`, Prometheus metrics.
pub fn serving_router(serving: oip::Serving, scoring_model: String, options: ApiOptions) -> Router {
    serving_router_with_pages(serving, scoring_model, options, Router::new())
}

/// [`serving_router`] plus `pages` (routes without a fallback).
pub fn serving_router_with_pages(
    serving: oip::Serving,
    scoring_model: String,
    options: ApiOptions,
    pages: Router,
) -> Router {
    let router = oip::routes(serving.clone())
        .merge(scoring::routes(serving.clone(), scoring_model))
        .merge(observability_routes(&serving))
        .merge(pages)
        .fallback(not_found);
    with_common_layers(router, options)
}

/// `/metrics`, and the monitoring endpoints when monitoring is on.
fn observability_routes(serving: &oip::Serving) -> Router {
    let metrics = Router::new()
        .route("/metrics", get(metrics::handler))
        .with_state((serving.metrics.clone(), serving.monitoring.clone()));
    match &serving.monitoring {
        Some(m) => metrics.merge(monitoring::routes(m.clone())),
        None => metrics,
    }
}

/// The whole API as one router; with `monitoring`, served predictions are logged and the
/// monitoring endpoints and gauges are added.
pub fn router(
    state: AppState,
    options: ApiOptions,
    monitoring: Option<Arc<monitoring::Monitoring>>,
) -> Router {
    router_with_pages(state, options, monitoring, |_| None)
}

/// [`router`] plus web pages: `pages` gets the serving state (models, counters, monitoring)
/// and returns a router that answers everything the API does not, fallback included
/// ([`not_found_json`] serves API paths there). Without pages, unknown paths get JSON 404s.
pub fn router_with_pages(
    state: AppState,
    options: ApiOptions,
    monitoring: Option<Arc<monitoring::Monitoring>>,
    pages: impl FnOnce(&oip::Serving) -> Option<Router>,
) -> Router {
    let serving = oip::Serving {
        models: Arc::new(
            served::RegistryModels::new(
                state.registry.clone(),
                state.artifacts.clone(),
                options.runner,
                options.loaded_models,
            )
            .with_features(
                state
                    .features
                    .clone()
                    .map(|f| f as Arc<dyn bound::FeatureLookup>),
            ),
        ),
        metrics: Arc::default(),
        monitoring,
    };
    let api = tracking::routes()
        .merge(registry::routes())
        .merge(lineage::routes())
        .merge(artifacts::routes())
        .merge(traces::routes(false));
    let api_v3 = traces::routes(true).merge(evaluation::routes());
    let router = Router::new()
        .nest("/api/2.0", api.clone())
        .nest("/ajax-api/2.0", api)
        .nest("/api/3.0", api_v3.clone())
        .nest("/ajax-api/3.0", api_v3)
        .route("/api/3.0/mlflow/server-info", get(server_info))
        .route("/ajax-api/3.0/mlflow/server-info", get(server_info))
        .route("/v1/traces", axum::routing::post(traces::export_spans))
        .route("/health", get(|| async { "OK" }))
        // MLflow's client gates features on this (spans need 3.4): the API version Cairn
        // speaks. Cairn's own version is in `x-cairn-version` and `/api/2.0/cairn/version`.
        .route("/version", get(|| async { MLFLOW_API_VERSION }))
        .route("/api/2.0/cairn/version", get(cairn_version))
        .with_state(state.clone())
        .merge(oip::routes(serving.clone()))
        .merge(observability_routes(&serving));
    let router = router.merge(auth::routes());
    // Feature routes sit with the rest: behind the same authentication.
    let router = match &state.features {
        Some(server) => router.merge(features::routes(server.clone())),
        None => router,
    };
    let router = match pages(&serving) {
        Some(pages) => router.merge(pages),
        None => router.fallback(not_found),
    };
    let router = match state.authn.clone() {
        Some(authn) => auth::protect(router, state, authn),
        None => router,
    };
    with_common_layers(router, options)
}

/// The JSON 404 of an unknown API endpoint, for a pages router's fallback to use on API paths.
pub async fn not_found_json(req: Request) -> Response {
    use axum::response::IntoResponse;
    not_found(req).await.into_response()
}
