//! Cairn's web UI, rendered by the server: experiments and their runs (MLflow's search grammar,
//! chosen columns, grouping, paging, all in the URL), run pages with an artifact browser,
//! metric charts drawn as SVG from min/max-downsampled histories, run comparison, registered
//! models with their lineage down to dataset bytes, dataset versions, monitoring and a
//! playground that sends the Open Inference Protocol request a client would.
//!
//! Pages are plain HTML that reads without JavaScript; `assets/cairn.js` adds hover values,
//! zoom, the column chooser and the playground. Every change goes through the same
//! `cairn_core` service calls as the REST API, from forms protected by a CSRF token.
#![deny(missing_docs)]

mod charts;
mod compare;
mod csrf;
mod data;
mod error;
mod evaluation;
mod experiments;
mod format;
mod layout;
mod login;
mod models;
mod monitoring;
mod params;
mod playground;
mod runs;
mod traces;
mod viewer;

use axum::extract::Request;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use cairn_api::oip::Serving;
use cairn_api::AppState;
pub use error::PageError;
use std::sync::Arc;

/// What every page handler shares: the services, and the serving state of this server
/// (request counters, monitoring) when there is one.
#[derive(Clone)]
pub struct Ui {
    /// Tracking, registry, artifacts and lineage.
    pub state: AppState,
    /// The models this server answers, their counters and monitoring.
    pub serving: Serving,
    /// `<home>/data`, where `cairn data` keeps dataset bytes (for diffs), when the server has
    /// a home.
    pub data_home: Option<std::path::PathBuf>,
}

type Shared = Arc<Ui>;

/// Runs store work on the blocking pool; the runtime never waits on SQL.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PageError> + Send + 'static,
) -> Result<T, PageError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => Err(PageError::internal(format!("worker failed: {e}"))),
    }
}

/// The pages, their assets and the fallback (HTML 404 for pages, JSON 404 under the API's
/// prefixes).
pub fn routes(state: AppState, serving: &Serving, data_home: Option<std::path::PathBuf>) -> Router {
    let ui: Shared = Arc::new(Ui {
        state,
        serving: serving.clone(),
        data_home,
    });
    Router::new()
        .route("/", get(experiments::list))
        .route(
            "/experiments",
            get(experiments::list).post(experiments::create),
        )
        .route("/experiments/{id}", get(experiments::runs_of_one))
        .route("/experiments/{id}/runs", get(experiments::runs_of_one))
        .route("/experiments/{id}/edit", post(experiments::edit))
        .route("/experiments/{id}/columns", get(experiments::columns))
        .route("/experiments/{id}/traces", get(traces::list))
        .route("/experiments/{id}/traces/{trace_id}", get(traces::page))
        .route(
            "/experiments/{id}/evaluation-datasets",
            get(evaluation::list),
        )
        .route(
            "/experiments/{id}/evaluation-datasets/{dataset_id}",
            get(evaluation::page),
        )
        .route("/runs", get(experiments::runs_of_many))
        .route("/experiments/{id}/runs/{run}", get(runs::page))
        .route("/experiments/{id}/runs/{run}/edit", post(runs::edit))
        .route(
            "/experiments/{id}/runs/{run}/artifacts",
            get(runs::artifacts),
        )
        .route(
            "/experiments/{id}/runs/{run}/artifact-raw",
            get(runs::artifact_raw),
        )
        .route("/runs/{run}", get(runs::by_id))
        .route("/chart", get(charts::page))
        .route("/chart.svg", get(charts::svg))
        .route("/compare", get(compare::page))
        .route("/models", get(models::list))
        .route("/models/{name}", get(models::model))
        .route("/models/{name}/edit", post(models::edit_model))
        .route("/models/{name}/versions/{version}", get(models::version))
        .route(
            "/models/{name}/versions/{version}/edit",
            post(models::edit_version),
        )
        .route(
            "/models/{name}/versions/{version}/playground",
            get(playground::page),
        )
        .route("/datasets", get(data::list))
        .route("/datasets/{name}/{version}", get(data::version))
        .route("/datasets/{name}/diff/{a}/{b}", get(data::diff))
        .route("/monitoring", get(monitoring::list))
        .route("/monitoring/{name}/{version}", get(monitoring::version))
        .route("/ui-api/keys", get(experiments::keys_json))
        .route("/login", get(login::page).post(login::sign_in))
        .route("/logout", post(login::sign_out))
        .fallback(fallback)
        .with_state(ui)
        .merge(asset_routes())
        .layer(axum::middleware::from_fn(login::layer))
        .layer(axum::middleware::from_fn(csrf::layer))
}

/// The stylesheet, the script and an empty favicon.
fn asset_routes() -> Router {
    Router::new()
        .route("/static/cairn.css", get(css))
        .route("/static/cairn.js", get(js))
        .route(
            "/favicon.ico",
            get(|| async { axum::http::StatusCode::NO_CONTENT }),
        )
}

pub use playground::serve_routes;

const CSS: &str = include_str!("assets/cairn.css");
const JS: &str = include_str!("assets/cairn.js");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

/// API paths keep MLflow's JSON 404; anything else is a page that does not exist.
async fn fallback(req: Request) -> Response {
    let path = req.uri().path();
    let api = ["/api/", "/ajax-api/", "/v2/", "/v2"]
        .iter()
        .any(|p| path.starts_with(p));
    if api {
        return cairn_api::not_found_json(req).await;
    }
    PageError::not_found(format!("There is no page at {path}.")).into_response()
}
