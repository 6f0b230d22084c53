//! MLflow 3's evaluation datasets (`/api/3.0/mlflow/datasets/...`) and scorers
//! (`/api/3.0/mlflow/scorers/...`) as the pinned client calls them. Tags and records travel
//! as JSON text inside the JSON body, as MLflow's protos carry them.
use crate::error::ApiError;
use crate::request::{missing, Fields};
use crate::{blocking, next_token, reply, ApiResult, AppState};
use axum::extract::{Path, State};
use axum::routing::{delete, get, post};
use axum::Router;
use cairn_core::evaluation::{
    DatasetRecord, EvaluationDataset, Issue, IssueUpdate, NewRecord, ScorerVersion,
};
use cairn_core::model::KeyValue;
use serde_json::{json, Map, Value};

/// The dataset and scorer routes, to be nested under `/api/3.0` and `/ajax-api/3.0`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/mlflow/datasets/create", post(create_dataset))
        .route("/mlflow/datasets/search", post(search_datasets))
        .route(
            "/mlflow/datasets/{dataset_id}",
            get(get_dataset).delete(delete_dataset),
        )
        .route(
            "/mlflow/datasets/{dataset_id}/tags",
            axum::routing::patch(set_tags),
        )
        .route(
            "/mlflow/datasets/{dataset_id}/tags/{key}",
            delete(delete_tag),
        )
        .route(
            "/mlflow/datasets/{dataset_id}/records",
            post(upsert_records).get(get_records).delete(delete_records),
        )
        .route(
            "/mlflow/datasets/{dataset_id}/experiment-ids",
            get(experiment_ids),
        )
        .route(
            "/mlflow/datasets/{dataset_id}/add-experiments",
            post(add_experiments),
        )
        .route(
            "/mlflow/datasets/{dataset_id}/remove-experiments",
            post(remove_experiments),
        )
        .route("/mlflow/scorers/register", post(register_scorer))
        .route("/mlflow/scorers/list", get(list_scorers))
        .route("/mlflow/scorers/versions", get(scorer_versions))
        .route("/mlflow/scorers/get", get(get_scorer))
        .route("/mlflow/scorers/delete", delete(delete_scorer))
        .route("/mlflow/scorers/online-configs", get(online_configs))
        .route("/mlflow/issues", post(create_issue))
        .route("/mlflow/issues/search", post(search_issues))
        .route(
            "/mlflow/issues/{issue_id}",
            get(get_issue).patch(update_issue),
        )
}

const USER_TAG: &str = "mlflow.user";

/// `{name: items}`, or `{}` when there are none (protobuf's JSON leaves empty lists out).
fn listing(name: &str, items: Vec<Value>) -> Value {
    let mut obj = Map::new();
    if !items.is_empty() {
        obj.insert(name.into(), Value::Array(items));
    }
    Value::Object(obj)
}

fn dataset_json(d: &EvaluationDataset, with_experiments: bool) -> Value {
    let mut o = Map::new();
    o.insert("dataset_id".into(), d.dataset_id.clone().into());
    o.insert("name".into(), d.name.clone().into());
    let tags: Map<String, Value> = d
        .tags
        .iter()
        .map(|t| (t.key.clone(), Value::String(t.value.clone())))
        .collect();
    o.insert("tags".into(), Value::Object(tags).to_string().into());
    if d.num_records > 0 {
        o.insert(
            "profile".into(),
            json!({"num_records": d.num_records}).to_string().into(),
        );
    }
    o.insert("digest".into(), d.digest.clone().into());
    o.insert("created_time".into(), d.created_time.into());
    o.insert("last_update_time".into(), d.last_update_time.into());
    if let Some(u) = &d.created_by {
        o.insert("created_by".into(), u.clone().into());
    }
    if let Some(u) = &d.last_updated_by {
        o.insert("last_updated_by".into(), u.clone().into());
    }
    if with_experiments {
        o.insert("experiment_ids".into(), d.experiment_ids.clone().into());
    }
    Value::Object(o)
}

/// A field holding JSON text (`"tags": "{\"k\": \"v\"}"`), parsed.
fn json_text(f: &Fields, name: &str) -> Result<Option<Value>, ApiError> {
    match f.opt_str(name)? {
        None => Ok(None),
        Some(text) if text.trim().is_empty() => Ok(None),
        Some(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| ApiError::invalid(format!("Invalid JSON in parameter '{name}': {e}"))),
    }
}

fn tags_from(f: &Fields) -> Result<Vec<KeyValue>, ApiError> {
    match json_text(f, "tags")? {
        None => Ok(Vec::new()),
        Some(Value::Object(m)) => Ok(m
            .into_iter()
            .map(|(k, v)| {
                let value = match v {
                    Value::String(s) => s,
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                KeyValue::new(k, value)
            })
            .collect()),
        Some(other) => Err(ApiError::invalid(format!(
            "Invalid value for parameter 'tags': expected a JSON object, got {other}"
        ))),
    }
}

async fn create_dataset(State(s): State<AppState>, f: Fields) -> ApiResult {
    let name = f.non_empty("name")?;
    let experiment_ids = f.strs("experiment_ids")?;
    let tags = tags_from(&f)?;
    let user = tags
        .iter()
        .find(|t| t.key == USER_TAG)
        .map(|t| t.value.clone());
    let d = blocking(move || {
        s.evaluation
            .create_dataset(&name, experiment_ids, tags, user)
    })
    .await?;
    reply(json!({"dataset": dataset_json(&d, true)}))
}

async fn get_dataset(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let d = blocking(move || s.evaluation.get_dataset(&id)).await?;
    reply(json!({"dataset": dataset_json(&d, false)}))
}

async fn delete_dataset(
    State(s): State<AppState>,
    Path(id): Path<String>,
    _body: Fields,
) -> ApiResult {
    blocking(move || s.evaluation.delete_dataset(&id)).await?;
    reply(json!({}))
}

async fn search_datasets(State(s): State<AppState>, f: Fields) -> ApiResult {
    let experiment_ids = f.strs("experiment_ids")?;
    let filter = f.opt_str("filter_string")?.unwrap_or_default();
    let order_by = f.strs("order_by")?;
    let max = f.opt_u64("max_results")?;
    let token = f.opt_str("page_token")?.unwrap_or_default();
    let page = blocking(move || {
        s.evaluation
            .search_datasets(experiment_ids, &filter, &order_by, max, &token)
    })
    .await?;
    let mut obj = Map::new();
    if !page.items.is_empty() {
        obj.insert(
            "datasets".into(),
            page.items.iter().map(|d| dataset_json(d, false)).collect(),
        );
    }
    next_token(&mut obj, page.next_offset);
    reply(Value::Object(obj))
}

async fn set_tags(State(s): State<AppState>, Path(id): Path<String>, f: Fields) -> ApiResult {
    let tags = tags_from(&f)?;
    blocking(move || s.evaluation.set_dataset_tags(&id, tags)).await?;
    reply(json!({}))
}

async fn delete_tag(
    State(s): State<AppState>,
    Path((id, key)): Path<(String, String)>,
    _body: Fields,
) -> ApiResult {
    blocking(move || s.evaluation.delete_dataset_tag(&id, &key)).await?;
    reply(json!({}))
}

/// Merges a record again: expectations and tags key by key, outputs and source replaced
/// when given (MLflow's upsert).
fn merge_record(old: &str, new: &str) -> String {
    let (Ok(Value::Object(mut old)), Ok(Value::Object(new))) = (
        serde_json::from_str::<Value>(old),
        serde_json::from_str::<Value>(new),
    ) else {
        return new.to_string();
    };
    for (key, value) in new {
        match (key.as_str(), old.get_mut(&key), value) {
            ("expectations" | "tags", Some(Value::Object(into)), Value::Object(more)) => {
                into.extend(more);
            }
            (_, _, value) => {
                old.insert(key, value);
            }
        }
    }
    Value::Object(old).to_string()
}

async fn upsert_records(State(s): State<AppState>, Path(id): Path<String>, f: Fields) -> ApiResult {
    let records = match json_text(&f, "records")? {
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "Invalid value for parameter 'records': expected a JSON list, got {other}"
            )))
        }
        None => return Err(missing("records")),
    };
    if records.is_empty() {
        // As `mlflow server`: nothing to merge is answered without looking the dataset up.
        return reply(json!({"inserted_count": 0, "updated_count": 0}));
    }
    let mut user = None;
    let mut new = Vec::with_capacity(records.len());
    for (i, r) in records.into_iter().enumerate() {
        let Value::Object(mut record) = r else {
            return Err(ApiError::invalid(format!(
                "Record {i} is not a JSON object"
            )));
        };
        let inputs = record.get("inputs").cloned().unwrap_or(Value::Null);
        if !inputs.is_object() {
            return Err(ApiError::invalid(format!(
                "Record {i} needs 'inputs', a JSON object"
            )));
        }
        if user.is_none() {
            user = record
                .get("tags")
                .and_then(|t| t.get(USER_TAG))
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        record.entry("expectations").or_insert_with(|| json!({}));
        // serde_json's maps are sorted, so equal inputs give equal keys.
        new.push(NewRecord {
            input_key: inputs.to_string(),
            payload: Value::Object(record).to_string(),
        });
    }
    let (inserted, updated) =
        blocking(move || s.evaluation.upsert_records(&id, new, &merge_record, user)).await?;
    reply(json!({"inserted_count": inserted, "updated_count": updated}))
}

fn record_json(dataset_id: &str, r: &DatasetRecord) -> Value {
    let mut o = match serde_json::from_str::<Value>(&r.payload) {
        Ok(Value::Object(o)) => o,
        _ => Map::new(),
    };
    let user = o
        .get("tags")
        .and_then(|t| t.get(USER_TAG))
        .and_then(Value::as_str)
        .map(str::to_string);
    let source_type = o.get("source").and_then(|s| s.get("source_type")).cloned();
    o.insert("dataset_record_id".into(), r.record_id.clone().into());
    o.insert("dataset_id".into(), dataset_id.into());
    o.entry("outputs").or_insert_with(|| json!({}));
    if let Some(t) = source_type {
        o.insert("source_type".into(), t);
    }
    o.insert("created_time".into(), r.created_time.into());
    o.insert("last_update_time".into(), r.last_update_time.into());
    if let Some(u) = user {
        o.insert("created_by".into(), u.clone().into());
        o.insert("last_updated_by".into(), u.into());
    }
    Value::Object(o)
}

async fn get_records(State(s): State<AppState>, Path(id): Path<String>, f: Fields) -> ApiResult {
    let max = f.opt_u64("max_results")?;
    let token = f.opt_str("page_token")?.unwrap_or_default();
    let dataset = id.clone();
    let page = blocking(move || s.evaluation.get_records(&dataset, max, &token)).await?;
    let records: Vec<Value> = page.items.iter().map(|r| record_json(&id, r)).collect();
    let mut obj = Map::new();
    obj.insert("records".into(), Value::Array(records).to_string().into());
    next_token(&mut obj, page.next_offset);
    reply(Value::Object(obj))
}

async fn delete_records(State(s): State<AppState>, Path(id): Path<String>, f: Fields) -> ApiResult {
    let ids = f.strs("dataset_record_ids")?;
    let deleted = blocking(move || s.evaluation.delete_records(&id, &ids)).await?;
    reply(json!({ "deleted_count": deleted }))
}

async fn experiment_ids(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let d = blocking(move || s.evaluation.get_dataset(&id)).await?;
    reply(json!({"experiment_ids": d.experiment_ids}))
}

async fn add_experiments(
    State(s): State<AppState>,
    Path(id): Path<String>,
    f: Fields,
) -> ApiResult {
    let ids = f.strs("experiment_ids")?;
    let d = blocking(move || s.evaluation.set_dataset_experiments(&id, &ids, true)).await?;
    reply(json!({"dataset": dataset_json(&d, true)}))
}

async fn remove_experiments(
    State(s): State<AppState>,
    Path(id): Path<String>,
    f: Fields,
) -> ApiResult {
    let ids = f.strs("experiment_ids")?;
    let d = blocking(move || s.evaluation.set_dataset_experiments(&id, &ids, false)).await?;
    reply(json!({"dataset": dataset_json(&d, true)}))
}

// ---- scorers ----

fn scorer_json(v: &ScorerVersion) -> Value {
    json!({
        "experiment_id": v.experiment_id.parse::<i64>().map(Value::from).unwrap_or_else(|_| v.experiment_id.clone().into()),
        "scorer_name": v.name,
        "scorer_version": v.version,
        "serialized_scorer": v.serialized,
        "creation_time": v.creation_time,
        "scorer_id": v.scorer_id,
    })
}

/// `mlflow server`'s refusal of scorers carrying their own code: loading one runs it.
const CUSTOM_SCORER_REFUSAL: &str = "Custom scorer registration (using @scorer decorator) is \
    disabled by default outside of Databricks tracking environments due to security concerns. \
    Custom scorers require arbitrary code execution during deserialization.\n\nTo use custom \
    scorers:\n1. Configure MLflow to use a Databricks tracking URI, or\n2. Manage your custom \
    scorer code in a source code repository (e.g., GitHub) and import it directly, or\n3. On a \
    self-managed MLflow server (or local environment) that you trust to run the scorer's code, \
    set the MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS environment variable to true, or\n4. Use \
    built-in scorers or make_judge() scorers instead.";

async fn register_scorer(State(s): State<AppState>, f: Fields) -> ApiResult {
    let experiment_id = f.non_empty("experiment_id")?;
    let name = f.non_empty("name")?;
    let serialized = f.non_empty("serialized_scorer")?;
    let parsed: Value = serde_json::from_str(&serialized).map_err(|e| {
        ApiError::invalid(format!(
            "Invalid JSON in parameter 'serialized_scorer': {e}"
        ))
    })?;
    if parsed.get("call_source").is_some_and(|c| !c.is_null()) {
        return Err(ApiError::invalid(CUSTOM_SCORER_REFUSAL));
    }
    let v = blocking(move || {
        s.evaluation
            .register_scorer(&experiment_id, &name, &serialized)
    })
    .await?;
    reply(json!({
        "version": v.version,
        "scorer_id": v.scorer_id,
        "experiment_id": v.experiment_id,
        "name": v.name,
        "serialized_scorer": v.serialized,
        "creation_time": v.creation_time,
    }))
}

async fn list_scorers(State(s): State<AppState>, f: Fields) -> ApiResult {
    let experiment_id = f.non_empty("experiment_id")?;
    let list = blocking(move || s.evaluation.list_scorers(&experiment_id)).await?;
    reply(listing("scorers", list.iter().map(scorer_json).collect()))
}

async fn scorer_versions(State(s): State<AppState>, f: Fields) -> ApiResult {
    let experiment_id = f.non_empty("experiment_id")?;
    let name = f.non_empty("name")?;
    let list = blocking(move || s.evaluation.scorer_versions(&experiment_id, &name)).await?;
    reply(listing("scorers", list.iter().map(scorer_json).collect()))
}

async fn get_scorer(State(s): State<AppState>, f: Fields) -> ApiResult {
    let experiment_id = f.non_empty("experiment_id")?;
    let name = f.non_empty("name")?;
    let version = f.opt_i64("version")?;
    let v = blocking(move || s.evaluation.get_scorer(&experiment_id, &name, version)).await?;
    reply(json!({"scorer": scorer_json(&v)}))
}

async fn delete_scorer(State(s): State<AppState>, f: Fields) -> ApiResult {
    let experiment_id = f.non_empty("experiment_id")?;
    let name = f.non_empty("name")?;
    let version = f.opt_i64("version")?;
    blocking(move || s.evaluation.delete_scorer(&experiment_id, &name, version)).await?;
    reply(json!({}))
}

/// Online scoring (judges run on live traces) is not offered: no scorer has a configuration.
async fn online_configs(_f: Fields) -> ApiResult {
    reply(json!({"configs": []}))
}

// ---- issues ----

fn issue_json(i: &Issue) -> Value {
    let mut o = Map::new();
    o.insert("issue_id".into(), i.issue_id.clone().into());
    o.insert("experiment_id".into(), i.experiment_id.clone().into());
    o.insert("name".into(), i.name.clone().into());
    o.insert("description".into(), i.description.clone().into());
    o.insert("status".into(), i.status.clone().into());
    o.insert("created_timestamp".into(), i.created_timestamp.into());
    o.insert(
        "last_updated_timestamp".into(),
        i.last_updated_timestamp.into(),
    );
    if let Some(s) = &i.severity {
        o.insert("severity".into(), s.clone().into());
    }
    if !i.root_causes.is_empty() {
        o.insert("root_causes".into(), i.root_causes.clone().into());
    }
    if let Some(r) = &i.source_run_id {
        o.insert("source_run_id".into(), r.clone().into());
    }
    if !i.categories.is_empty() {
        o.insert("categories".into(), i.categories.clone().into());
    }
    if let Some(c) = &i.created_by {
        o.insert("created_by".into(), c.clone().into());
    }
    Value::Object(o)
}

async fn create_issue(State(s): State<AppState>, f: Fields) -> ApiResult {
    let issue = Issue {
        issue_id: String::new(),
        experiment_id: f.non_empty("experiment_id")?,
        name: f.non_empty("name")?,
        description: f.opt_str("description")?.unwrap_or_default(),
        status: f.opt_str("status")?.unwrap_or_default(),
        severity: f.opt_str("severity")?.filter(|v| !v.is_empty()),
        root_causes: f.strs("root_causes")?,
        source_run_id: f.opt_str("source_run_id")?.filter(|v| !v.is_empty()),
        categories: f.strs("categories")?,
        created_by: f.opt_str("created_by")?.filter(|v| !v.is_empty()),
        created_timestamp: 0,
        last_updated_timestamp: 0,
    };
    let stored = blocking(move || s.evaluation.create_issue(issue)).await?;
    reply(json!({"issue": issue_json(&stored)}))
}

async fn get_issue(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let issue = blocking(move || s.evaluation.get_issue(&id)).await?;
    reply(json!({"issue": issue_json(&issue)}))
}

async fn update_issue(State(s): State<AppState>, Path(id): Path<String>, f: Fields) -> ApiResult {
    let update = IssueUpdate {
        status: f.opt_str("status")?.filter(|v| !v.is_empty()),
        name: f.opt_str("name")?.filter(|v| !v.is_empty()),
        description: f.opt_str("description")?,
        severity: f.opt_str("severity")?.filter(|v| !v.is_empty()),
    };
    let issue = blocking(move || s.evaluation.update_issue(&id, update)).await?;
    reply(json!({"issue": issue_json(&issue)}))
}

async fn search_issues(State(s): State<AppState>, f: Fields) -> ApiResult {
    let experiment_id = f.opt_str("experiment_id")?.filter(|v| !v.is_empty());
    let filter = f.opt_str("filter_string")?.unwrap_or_default();
    let max = f.opt_u64("max_results")?;
    let token = f.opt_str("page_token")?.unwrap_or_default();
    let page = blocking(move || {
        s.evaluation
            .search_issues(experiment_id, &filter, max, &token)
    })
    .await?;
    let mut obj = Map::new();
    if !page.items.is_empty() {
        obj.insert("issues".into(), page.items.iter().map(issue_json).collect());
    }
    next_token(&mut obj, page.next_offset);
    reply(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_a_record_keeps_what_the_new_one_leaves_out() {
        let old = r#"{"inputs":{"q":"a"},"expectations":{"x":1,"y":2},"tags":{"t":"1"}}"#;
        let new = r#"{"inputs":{"q":"a"},"expectations":{"y":3},"outputs":"o"}"#;
        let merged: Value = serde_json::from_str(&merge_record(old, new)).expect("json");
        assert_eq!(merged["expectations"], json!({"x": 1, "y": 3}));
        assert_eq!(merged["tags"], json!({"t": "1"}));
        assert_eq!(merged["outputs"], "o");
    }
}
