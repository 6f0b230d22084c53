//! MLflow tracking REST handlers: extract fields, call [`Tracking`], shape the answer.
use crate::error::ApiError;
use crate::request::{as_f64, as_i64, missing, Fields, Typed};
use crate::wire;
use crate::{blocking, next_token, reply, ApiResult, AppState};
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::Router;
use cairn_core::model::*;
use cairn_core::search::{self, Entity, OrderBy};
use cairn_core::tracking::{NewLoggedModel, NewRun};
use cairn_core::validate::MAX_BATCH_LOG_REQUEST_SIZE;
use serde_json::{json, Value};

/// The `/mlflow/...` routes, to be nested under `/api/2.0` and `/ajax-api/2.0`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/mlflow/experiments/create", post(experiments_create))
        .route("/mlflow/experiments/get", get(experiments_get))
        .route(
            "/mlflow/experiments/get-by-name",
            get(experiments_get_by_name),
        )
        .route(
            "/mlflow/experiments/search",
            get(experiments_search).post(experiments_search),
        )
        .route("/mlflow/experiments/update", post(experiments_update))
        .route("/mlflow/experiments/delete", post(experiments_delete))
        .route("/mlflow/experiments/restore", post(experiments_restore))
        .route(
            "/mlflow/experiments/set-experiment-tag",
            post(experiments_set_tag),
        )
        .route(
            "/mlflow/experiments/delete-experiment-tag",
            post(experiments_delete_tag),
        )
        .route("/mlflow/runs/create", post(runs_create))
        .route("/mlflow/runs/get", get(runs_get))
        .route("/mlflow/runs/update", post(runs_update))
        .route("/mlflow/runs/delete", post(runs_delete))
        .route("/mlflow/runs/restore", post(runs_restore))
        .route("/mlflow/runs/search", post(runs_search).get(runs_search))
        .route("/mlflow/runs/log-metric", post(runs_log_metric))
        .route("/mlflow/runs/log-parameter", post(runs_log_param))
        .route("/mlflow/runs/set-tag", post(runs_set_tag))
        .route("/mlflow/runs/delete-tag", post(runs_delete_tag))
        .route("/mlflow/runs/log-batch", post(runs_log_batch))
        .route("/mlflow/runs/log-inputs", post(runs_log_inputs))
        .route("/mlflow/runs/outputs", post(runs_log_outputs))
        .route("/mlflow/runs/log-model", post(runs_log_model))
        .route("/mlflow/metrics/get-history", get(metrics_history))
        .route(
            "/mlflow/metrics/get-history-bulk-interval",
            get(metrics_bulk_interval),
        )
        .route(
            "/mlflow/metrics/get-history-bulk",
            get(metrics_history_bulk),
        )
        .route(
            "/mlflow/experiments/search-datasets",
            post(experiments_search_datasets),
        )
        .route("/mlflow/logged-models", post(logged_models_create))
        .route("/mlflow/logged-models/search", post(logged_models_search))
        .route(
            "/mlflow/logged-models/{model_id}",
            get(logged_models_get)
                .patch(logged_models_finalize)
                .delete(logged_models_delete),
        )
        .route(
            "/mlflow/logged-models/{model_id}/tags",
            axum::routing::patch(logged_models_set_tags),
        )
        .route(
            "/mlflow/logged-models/{model_id}/tags/{key}",
            delete(logged_models_delete_tag),
        )
        .route(
            "/mlflow/logged-models/{model_id}/params",
            post(logged_models_log_params),
        )
}

fn view_type(f: &Fields, name: &str) -> Result<ViewType, ApiError> {
    Ok(match f.opt_str(name)? {
        None => ViewType::ActiveOnly,
        Some(v) => ViewType::parse(&v)?,
    })
}

// ---- experiments ----

async fn experiments_create(State(s): State<AppState>, f: Fields) -> ApiResult {
    let name = f.str("name")?;
    let location = f.opt_str("artifact_location")?;
    let tags = f.key_values("tags")?;
    let id = blocking(move || s.tracking.create_experiment(&name, location, tags)).await?;
    reply(json!({ "experiment_id": id }))
}

async fn experiments_get(State(s): State<AppState>, f: Fields) -> ApiResult {
    let id = f.non_empty("experiment_id")?;
    let exp = blocking(move || s.tracking.get_experiment(&id)).await?;
    reply(json!({ "experiment": wire::experiment(&exp) }))
}

async fn experiments_get_by_name(State(s): State<AppState>, f: Fields) -> ApiResult {
    let name = f.non_empty("experiment_name")?;
    let exp = blocking(move || s.tracking.get_experiment_by_name(&name)).await?;
    reply(json!({ "experiment": wire::experiment(&exp) }))
}

async fn experiments_search(State(s): State<AppState>, f: Fields) -> ApiResult {
    let filter = f.opt_str("filter")?.unwrap_or_default();
    let order_by = f.strs("order_by")?;
    let view = view_type(&f, "view_type")?;
    let max = f.opt_u64("max_results")?;
    let token = f.opt_str("page_token")?.unwrap_or_default();
    let page = blocking(move || {
        s.tracking
            .search_experiments(&filter, &order_by, view, max, &token)
    })
    .await?;
    let mut obj = serde_json::Map::new();
    obj.insert(
        "experiments".into(),
        page.items.iter().map(wire::experiment).collect(),
    );
    next_token(&mut obj, page.next_offset);
    reply(Value::Object(obj))
}

async fn experiments_update(State(s): State<AppState>, f: Fields) -> ApiResult {
    let id = f.non_empty("experiment_id")?;
    let new_name = f.opt_str("new_name")?;
    blocking(move || match new_name {
        Some(name) => s.tracking.rename_experiment(&id, &name),
        None => s.tracking.get_experiment(&id).map(|_| ()),
    })
    .await?;
    reply(json!({}))
}

async fn experiments_delete(State(s): State<AppState>, f: Fields) -> ApiResult {
    let id = f.non_empty("experiment_id")?;
    blocking(move || s.tracking.delete_experiment(&id)).await?;
    reply(json!({}))
}

async fn experiments_restore(State(s): State<AppState>, f: Fields) -> ApiResult {
    let id = f.non_empty("experiment_id")?;
    blocking(move || s.tracking.restore_experiment(&id)).await?;
    reply(json!({}))
}

async fn experiments_set_tag(State(s): State<AppState>, f: Fields) -> ApiResult {
    let id = f.non_empty("experiment_id")?;
    let key = f.str("key")?;
    let value = f.str("value")?;
    blocking(move || s.tracking.set_experiment_tag(&id, &key, &value)).await?;
    reply(json!({}))
}

async fn experiments_delete_tag(State(s): State<AppState>, f: Fields) -> ApiResult {
    let id = f.non_empty("experiment_id")?;
    let key = f.str("key")?;
    blocking(move || s.tracking.delete_experiment_tag(&id, &key)).await?;
    reply(json!({}))
}

// ---- runs ----

async fn runs_create(State(s): State<AppState>, f: Fields) -> ApiResult {
    let new = NewRun {
        experiment_id: f.opt_str("experiment_id")?,
        user_id: f.opt_str("user_id")?,
        run_name: f.opt_str("run_name")?,
        start_time: f.opt_i64("start_time")?,
        tags: f.key_values("tags")?,
    };
    let run = blocking(move || s.tracking.create_run(new)).await?;
    reply(json!({ "run": wire::run(&run) }))
}

async fn runs_get(State(s): State<AppState>, f: Fields) -> ApiResult {
    let run_id = f.run_id()?;
    let run = blocking(move || s.tracking.get_run(&run_id)).await?;
    reply(json!({ "run": wire::run(&run) }))
}

async fn runs_update(State(s): State<AppState>, f: Fields) -> ApiResult {
    let run_id = f.run_id()?;
    let status = f
        .opt_str("status")?
        .map(|v| RunStatus::parse(&v))
        .transpose()?;
    let end_time = f.opt_i64("end_time")?;
    let name = f.opt_str("run_name")?;
    let info = blocking(move || {
        s.tracking
            .update_run(&run_id, status, end_time, name.as_deref())
    })
    .await?;
    reply(json!({ "run_info": wire::run_info(&info) }))
}

async fn runs_delete(State(s): State<AppState>, f: Fields) -> ApiResult {
    let run_id = f.run_id()?;
    blocking(move || s.tracking.delete_run(&run_id)).await?;
    reply(json!({}))
}

async fn runs_restore(State(s): State<AppState>, f: Fields) -> ApiResult {
    let run_id = f.run_id()?;
    blocking(move || s.tracking.restore_run(&run_id)).await?;
    reply(json!({}))
}

async fn runs_search(State(s): State<AppState>, f: Fields) -> ApiResult {
    let experiment_ids = f.strs("experiment_ids")?;
    let filter = f.opt_str("filter")?.unwrap_or_default();
    let order_by = f.strs("order_by")?;
    let view = view_type(&f, "run_view_type")?;
    let max = f.opt_u64("max_results")?;
    let token = f.opt_str("page_token")?.unwrap_or_default();
    let page = blocking(move || {
        s.tracking
            .search_runs(experiment_ids, &filter, &order_by, view, max, &token)
    })
    .await?;
    let mut obj = serde_json::Map::new();
    if !page.items.is_empty() {
        obj.insert("runs".into(), page.items.iter().map(wire::run).collect());
    }
    next_token(&mut obj, page.next_offset);
    reply(Value::Object(obj))
}

/// Reads one metric object; `path` names it in errors.
fn metric_from(m: &Fields, path: &str) -> Result<Metric, ApiError> {
    let key = m
        .opt_str("key")?
        .ok_or_else(|| missing(&format!("{path}key")))?;
    let value = match m.opt_f64("value") {
        Ok(Some(v)) => v,
        Ok(None) => return Err(missing(&format!("{path}value"))),
        // A request's own field: `mlflow server`'s type message.
        Err(e) if path.is_empty() => return Err(e),
        Err(_) => {
            return Err(ApiError::invalid(format!(
                "Invalid value for parameter '{path}value' supplied: metric '{key}' must be a \
                 valid double (64-bit floating point)"
            )))
        }
    };
    let timestamp = m
        .opt_i64("timestamp")?
        .ok_or_else(|| missing(&format!("{path}timestamp")))?;
    Ok(Metric {
        key,
        value,
        timestamp,
        step: m.opt_i64("step")?.unwrap_or(0),
        model_id: m.opt_str("model_id")?.filter(|s| !s.is_empty()),
        dataset_name: m.opt_str("dataset_name")?.filter(|s| !s.is_empty()),
        dataset_digest: m.opt_str("dataset_digest")?.filter(|s| !s.is_empty()),
        run_id: None,
    })
}

async fn runs_log_metric(State(s): State<AppState>, f: Fields) -> ApiResult {
    let run_id = f.run_id()?;
    let metric = metric_from(&f, "")?;
    blocking(move || s.tracking.log_metric(&run_id, metric)).await?;
    reply(json!({}))
}

async fn runs_log_param(State(s): State<AppState>, f: Fields) -> ApiResult {
    let run_id = f.run_id()?;
    let key = f.str("key")?;
    let value = f.str("value")?;
    blocking(move || s.tracking.log_param(&run_id, &key, &value)).await?;
    reply(json!({}))
}

async fn runs_set_tag(State(s): State<AppState>, f: Fields) -> ApiResult {
    let run_id = f.run_id()?;
    let key = f.str("key")?;
    let value = f.str("value")?;
    blocking(move || s.tracking.set_tag(&run_id, &key, &value)).await?;
    reply(json!({}))
}

async fn runs_delete_tag(State(s): State<AppState>, f: Fields) -> ApiResult {
    let run_id = f.run_id()?;
    let key = f.str("key")?;
    blocking(move || s.tracking.delete_tag(&run_id, &key)).await?;
    reply(json!({}))
}

/// `runs/log-batch` as it arrives: typed, because it is the hottest endpoint.
#[derive(serde::Deserialize)]
struct LogBatchIn {
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    run_uuid: Option<String>,
    #[serde(default)]
    metrics: Vec<MetricIn>,
    #[serde(default)]
    params: Vec<KeyValueIn>,
    #[serde(default)]
    tags: Vec<KeyValueIn>,
}

#[derive(serde::Deserialize)]
struct MetricIn {
    key: Option<String>,
    value: Option<Value>,
    timestamp: Option<Value>,
    step: Option<Value>,
    model_id: Option<String>,
    dataset_name: Option<String>,
    dataset_digest: Option<String>,
}

#[derive(serde::Deserialize)]
struct KeyValueIn {
    key: Option<String>,
    value: Option<Value>,
}

fn key_value_in(kv: KeyValueIn, what: &str) -> Result<KeyValue, ApiError> {
    let key = kv.key.ok_or_else(|| missing(&format!("{what}[].key")))?;
    let value = match kv.value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s,
        Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
        Some(v) => {
            return Err(ApiError::invalid(format!(
                "Invalid value {v} for parameter '{what}[].value' supplied: expected a string"
            )))
        }
    };
    Ok(KeyValue::new(key, value))
}

fn metric_in(m: MetricIn) -> Result<Metric, ApiError> {
    let key = m.key.ok_or_else(|| missing("metrics[].key"))?;
    let value = match &m.value {
        None | Some(Value::Null) => return Err(missing("metrics[].value")),
        Some(v) => as_f64(v).ok_or_else(|| {
            ApiError::invalid(format!(
                "Invalid value {v} for parameter 'metrics[].value' supplied: metric '{key}' must \
                 be a valid double (64-bit floating point)"
            ))
        })?,
    };
    let int = |v: &Option<Value>, name: &str| -> Result<Option<i64>, ApiError> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(v) => as_i64(v).map(Some).ok_or_else(|| {
                ApiError::invalid(format!(
                    "Invalid value {v} for parameter 'metrics[].{name}' supplied: expected an integer"
                ))
            }),
        }
    };
    let timestamp =
        int(&m.timestamp, "timestamp")?.ok_or_else(|| missing("metrics[].timestamp"))?;
    let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
    Ok(Metric {
        key,
        value,
        timestamp,
        step: int(&m.step, "step")?.unwrap_or(0),
        model_id: non_empty(m.model_id),
        dataset_name: non_empty(m.dataset_name),
        dataset_digest: non_empty(m.dataset_digest),
        run_id: None,
    })
}

async fn runs_log_batch(State(s): State<AppState>, req: Typed<LogBatchIn>) -> ApiResult {
    if req.body_len > MAX_BATCH_LOG_REQUEST_SIZE {
        return Err(ApiError::too_large(MAX_BATCH_LOG_REQUEST_SIZE));
    }
    let body = req.body;
    let run_id = body
        .run_id
        .filter(|r| !r.is_empty())
        .or(body.run_uuid.filter(|r| !r.is_empty()))
        .ok_or_else(|| missing("run_id"))?;
    let metrics = body
        .metrics
        .into_iter()
        .map(metric_in)
        .collect::<Result<Vec<_>, _>>()?;
    let params = body
        .params
        .into_iter()
        .map(|p| key_value_in(p, "params"))
        .collect::<Result<Vec<_>, _>>()?;
    let tags = body
        .tags
        .into_iter()
        .map(|t| key_value_in(t, "tags"))
        .collect::<Result<Vec<_>, _>>()?;
    blocking(move || s.tracking.log_batch(&run_id, metrics, params, tags)).await?;
    reply(json!({}))
}

fn dataset_input(d: &Fields) -> Result<DatasetInput, ApiError> {
    let ds = d
        .object("dataset")?
        .ok_or_else(|| missing("datasets[].dataset"))?;
    Ok(DatasetInput {
        tags: d.key_values("tags")?,
        dataset: Dataset {
            name: ds.str("name")?,
            digest: ds.str("digest")?,
            source_type: ds.opt_str("source_type")?.unwrap_or_default(),
            source: ds.opt_str("source")?.unwrap_or_default(),
            schema: ds.opt_str("schema")?,
            profile: ds.opt_str("profile")?,
        },
    })
}

async fn runs_log_inputs(State(s): State<AppState>, f: Fields) -> ApiResult {
    let run_id = f.run_id()?;
    let datasets = f
        .objects("datasets")?
        .iter()
        .map(dataset_input)
        .collect::<Result<Vec<_>, _>>()?;
    let models = f
        .objects("models")?
        .iter()
        .map(|m| m.str("model_id"))
        .collect::<Result<Vec<_>, _>>()?;
    blocking(move || s.tracking.log_inputs(&run_id, datasets, models)).await?;
    reply(json!({}))
}

async fn runs_log_outputs(State(s): State<AppState>, f: Fields) -> ApiResult {
    let run_id = f.run_id()?;
    let outputs = f
        .objects("models")?
        .iter()
        .map(|m| {
            Ok(ModelOutput {
                model_id: m.str("model_id")?,
                step: m.opt_i64("step")?.unwrap_or(0),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    blocking(move || s.tracking.log_outputs(&run_id, outputs)).await?;
    reply(json!({}))
}

/// MLflow 2's `log-model` stores the model's MLmodel JSON in the `mlflow.log-model.history` tag.
async fn runs_log_model(State(s): State<AppState>, f: Fields) -> ApiResult {
    let run_id = f.run_id()?;
    let model_json = f.str("model_json")?;
    let model: Value = serde_json::from_str(&model_json)
        .map_err(|e| ApiError::invalid(format!("Invalid value for 'model_json': {e}")))?;
    blocking(move || {
        let run = s.tracking.get_run(&run_id)?;
        let key = "mlflow.log-model.history";
        let mut history: Vec<Value> = run
            .tags
            .iter()
            .find(|t| t.key == key)
            .and_then(|t| serde_json::from_str(&t.value).ok())
            .unwrap_or_default();
        history.push(model);
        s.tracking
            .set_tag(&run_id, key, &Value::Array(history).to_string())
    })
    .await?;
    reply(json!({}))
}

/// Histories can hold millions of points, so the body is written directly, not built as a tree.
async fn metrics_history(
    State(s): State<AppState>,
    f: Fields,
) -> Result<axum::response::Response, ApiError> {
    let run_id = f.run_id()?;
    let key = f.str("metric_key")?;
    let max = f.opt_u64("max_results")?;
    let token = f.opt_str("page_token")?.unwrap_or_default();
    let body = blocking(move || {
        let page = s.tracking.metric_history(&run_id, &key, max, &token)?;
        Ok(wire::metric_page(
            &page.items,
            page.next_offset.map(search::page_token),
        ))
    })
    .await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

async fn metrics_history_bulk(State(s): State<AppState>, f: Fields) -> ApiResult {
    let run_ids = f.strs("run_id")?;
    let key = f.opt_str("metric_key")?;
    let max = f.opt_u64("max_results")?;
    let metrics = blocking(move || {
        s.tracking
            .metric_history_bulk(&run_ids, key.as_deref(), max)
    })
    .await?;
    // As MLflow's handler writes it: an empty list stays in the answer.
    let metrics: Vec<Value> = metrics
        .iter()
        .map(|(run_id, m)| {
            let mut v = wire::metric(m);
            v["run_id"] = json!(run_id);
            v
        })
        .collect();
    reply(json!({ "metrics": metrics }))
}

async fn experiments_search_datasets(State(s): State<AppState>, f: Fields) -> ApiResult {
    let ids = f.strs("experiment_ids")?;
    let found = blocking(move || s.tracking.search_datasets(&ids)).await?;
    let mut out = serde_json::Map::new();
    if !found.is_empty() {
        out.insert(
            "dataset_summaries".into(),
            found
                .iter()
                .map(|d| {
                    let mut o = json!({"experiment_id": d.experiment_id, "name": d.name,
                                       "digest": d.digest});
                    if let Some(c) = &d.context {
                        o["context"] = json!(c);
                    }
                    o
                })
                .collect(),
        );
    }
    reply(Value::Object(out))
}

async fn metrics_bulk_interval(State(s): State<AppState>, f: Fields) -> ApiResult {
    let run_ids = f.strs("run_ids")?;
    let key = f.str("metric_key")?;
    let start = f.opt_i64("start_step")?;
    let end = f.opt_i64("end_step")?;
    let max = f.opt_u64("max_results")?;
    let metrics = blocking(move || {
        s.tracking
            .metric_history_bulk_interval(&run_ids, &key, start, end, max)
    })
    .await?;
    reply(json!({ "metrics": metrics.iter().map(wire::metric).collect::<Vec<_>>() }))
}

// ---- logged models ----

async fn logged_models_create(State(s): State<AppState>, f: Fields) -> ApiResult {
    let new = NewLoggedModel {
        experiment_id: f.non_empty("experiment_id")?,
        name: f.opt_str("name")?,
        model_type: f.opt_str("model_type")?,
        source_run_id: f.opt_str("source_run_id")?.filter(|r| !r.is_empty()),
        params: f.key_values("params")?,
        tags: f.key_values("tags")?,
    };
    let model = blocking(move || s.tracking.create_logged_model(new)).await?;
    reply(json!({ "model": wire::logged_model(&model) }))
}

async fn logged_models_get(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let model = blocking(move || s.tracking.get_logged_model(&id)).await?;
    reply(json!({ "model": wire::logged_model(&model) }))
}

async fn logged_models_finalize(
    State(s): State<AppState>,
    Path(id): Path<String>,
    f: Fields,
) -> ApiResult {
    let status = LoggedModelStatus::parse(&f.str("status")?)?;
    let model = blocking(move || s.tracking.finalize_logged_model(&id, status)).await?;
    reply(json!({ "model": wire::logged_model(&model) }))
}

async fn logged_models_delete(
    State(s): State<AppState>,
    Path(id): Path<String>,
    // MLflow's client sends a JSON body with DELETE: reading it keeps the connection usable.
    _body: Fields,
) -> ApiResult {
    blocking(move || s.tracking.delete_logged_model(&id)).await?;
    reply(json!({}))
}

async fn logged_models_set_tags(
    State(s): State<AppState>,
    Path(id): Path<String>,
    f: Fields,
) -> ApiResult {
    let tags = f.key_values("tags")?;
    blocking(move || s.tracking.set_logged_model_tags(&id, tags)).await?;
    reply(json!({}))
}

async fn logged_models_delete_tag(
    State(s): State<AppState>,
    Path((id, key)): Path<(String, String)>,
    _body: Fields,
) -> ApiResult {
    blocking(move || s.tracking.delete_logged_model_tag(&id, &key)).await?;
    reply(json!({}))
}

async fn logged_models_log_params(
    State(s): State<AppState>,
    Path(id): Path<String>,
    f: Fields,
) -> ApiResult {
    let params = f.key_values("params")?;
    blocking(move || s.tracking.log_logged_model_params(&id, params)).await?;
    reply(json!({}))
}

/// Logged-model `order_by` arrives as objects: `{field_name, ascending}`.
fn logged_model_order(f: &Fields) -> Result<Vec<OrderBy>, ApiError> {
    let mut out = Vec::new();
    for o in f.objects("order_by")? {
        let field = o.str("field_name")?;
        let ascending = match o.map_get("ascending") {
            Some(Value::Bool(b)) => *b,
            Some(v) => as_i64(v)
                .map(|n| n != 0)
                .or_else(|| as_f64(v).map(|n| n != 0.0))
                .unwrap_or(true),
            None => true,
        };
        let mut parsed = search::parse_order_by(&field, search::Target::LoggedModels)?;
        if parsed.entity == Entity::Dataset {
            return Err(ApiError::invalid(format!(
                "Invalid order_by field '{field}'"
            )));
        }
        parsed.ascending = ascending;
        out.push(parsed);
    }
    Ok(out)
}

async fn logged_models_search(State(s): State<AppState>, f: Fields) -> ApiResult {
    let experiment_ids = f.strs("experiment_ids")?;
    if experiment_ids.is_empty() {
        return Err(missing("experiment_ids"));
    }
    let filter = f.opt_str("filter")?.unwrap_or_default();
    let mut datasets = Vec::new();
    for d in f.objects("datasets")? {
        datasets.push((
            d.opt_str("dataset_name")?.unwrap_or_default(),
            d.opt_str("dataset_digest")?,
        ));
    }
    let order_by = logged_model_order(&f)?;
    let max = f.opt_u64("max_results")?;
    let token = f.opt_str("page_token")?.unwrap_or_default();
    let page = blocking(move || {
        s.tracking
            .search_logged_models(experiment_ids, &filter, datasets, order_by, max, &token)
    })
    .await?;
    let mut obj = serde_json::Map::new();
    obj.insert(
        "models".into(),
        page.items.iter().map(wire::logged_model).collect(),
    );
    next_token(&mut obj, page.next_offset);
    reply(Value::Object(obj))
}
