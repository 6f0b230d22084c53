//! Cairn's own JSON API for dataset versions and lineage (for the CLI against a server and the
//! web UI):
//! - `GET /api/2.0/cairn/datasets/list?name=` : versions, newest first
//! - `GET /api/2.0/cairn/datasets/get?name=&version=`
//! - `GET /api/2.0/cairn/lineage/model-version?name=&version=` (number or alias)
//! - `GET /api/2.0/cairn/lineage/dataset?name=&version=`
use crate::error::ApiError;
use crate::request::Fields;
use crate::{blocking, reply, wire, ApiResult, AppState};
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use cairn_core::lineage::{DatasetLineage, InputLineage, ModelLineage, RunLineage};
use cairn_core::model::DatasetVersion;
use cairn_core::Error;
use serde_json::{json, Value};

/// Routes, relative to `/api/2.0`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/cairn/datasets/list", get(list))
        .route("/cairn/datasets/get", get(get_version))
        .route("/cairn/lineage/model-version", get(model_version))
        .route("/cairn/lineage/dataset", get(dataset))
}

/// JSON of a dataset version.
pub fn dataset_version(v: &DatasetVersion) -> Value {
    json!({
        "name": v.name,
        "version": v.version,
        "digest": v.digest,
        "hash": "blake3",
        "kind": v.kind,
        "size": v.size,
        "files": v.files,
        "format": v.format,
        "path": v.path,
        "message": v.message,
        "user_id": v.user_id,
        "creation_time": v.creation_time,
    })
}

fn input(i: &InputLineage) -> Value {
    json!({
        "name": i.name,
        "digest": i.digest,
        "source_type": i.source_type,
        "source": i.source,
        "context": i.context,
        "dataset_versions": i.versions.iter().map(dataset_version).collect::<Vec<_>>(),
    })
}

fn run(r: &RunLineage) -> Value {
    json!({
        "run_id": r.run_id,
        "run_name": r.run_name,
        "experiment_id": r.experiment_id,
        "git_commit": r.git_commit,
        "source_name": r.source_name,
        "inputs": r.inputs.iter().map(input).collect::<Vec<_>>(),
    })
}

/// JSON of a model version's lineage.
pub fn model_lineage(l: &ModelLineage) -> Value {
    json!({
        "model_version": wire::model_version(&l.model_version),
        "run": l.run.as_ref().map(run),
    })
}

/// JSON of a dataset version's lineage.
pub fn dataset_lineage(l: &DatasetLineage) -> Value {
    json!({
        "dataset_version": dataset_version(&l.dataset),
        "runs": l.runs.iter().map(run).collect::<Vec<_>>(),
        "model_versions": l.model_versions.iter().map(wire::model_version).collect::<Vec<_>>(),
        "validations": l.validations.iter().map(|v| json!({
            "path": v.path, "suite": v.suite, "success": v.success,
            "evaluated_expectations": v.evaluated, "successful_expectations": v.successful,
            "creation_time": v.creation_time,
            "result": serde_json::from_str::<Value>(&v.result).unwrap_or(Value::String(v.result.clone())),
        })).collect::<Vec<_>>(),
        "sources": l.sources.iter().map(|s| json!({
            "kind": s.kind, "reference": s.reference, "digest": s.digest,
        })).collect::<Vec<_>>(),
    })
}

fn version_number(f: &Fields) -> Result<i64, ApiError> {
    let text = f.str("version")?;
    text.parse::<i64>().ok().filter(|v| *v > 0).ok_or_else(|| {
        Error::invalid(format!("version must be a positive number, got {text:?}")).into()
    })
}

async fn list(State(s): State<AppState>, f: Fields) -> ApiResult {
    let name = f.opt_str("name")?;
    let versions =
        blocking(move || s.lineage.datasets().list_dataset_versions(name.as_deref())).await?;
    reply(json!({ "dataset_versions": versions.iter().map(dataset_version).collect::<Vec<_>>() }))
}

async fn get_version(State(s): State<AppState>, f: Fields) -> ApiResult {
    let (name, number) = (f.str("name")?, version_number(&f)?);
    let v = blocking(move || {
        s.lineage
            .datasets()
            .get_dataset_version(&name, number)?
            .ok_or_else(|| Error::not_found(format!("Dataset version {name}@{number} not found")))
    })
    .await?;
    reply(json!({ "dataset_version": dataset_version(&v) }))
}

async fn model_version(State(s): State<AppState>, f: Fields) -> ApiResult {
    let (name, version) = (f.str("name")?, f.str("version")?);
    let l = blocking(move || s.lineage.of_model_version(&name, &version)).await?;
    reply(model_lineage(&l))
}

async fn dataset(State(s): State<AppState>, f: Fields) -> ApiResult {
    let (name, number) = (f.str("name")?, version_number(&f)?);
    let l = blocking(move || s.lineage.of_dataset_version(&name, number)).await?;
    reply(dataset_lineage(&l))
}
