//! MLflow model-registry REST handlers: registered models, versions, stages, aliases, tags.
use crate::error::ApiError;
use crate::request::Fields;
use crate::wire;
use crate::{blocking, next_token, reply, ApiResult, AppState};
use axum::extract::State;
use axum::routing::{delete, get, patch, post};
use axum::Router;
use cairn_core::model::Stage;
use cairn_core::registry::{parse_version, NewModelVersion};
use serde_json::{json, Value};

/// The `/mlflow/registered-models/...` and `/mlflow/model-versions/...` routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/mlflow/registered-models/create", post(create_model))
        .route("/mlflow/registered-models/get", get(get_model))
        .route("/mlflow/registered-models/rename", post(rename_model))
        .route("/mlflow/registered-models/update", patch(update_model))
        .route("/mlflow/registered-models/delete", delete(delete_model))
        .route("/mlflow/registered-models/search", get(search_models))
        .route(
            "/mlflow/registered-models/get-latest-versions",
            post(latest_versions).get(latest_versions),
        )
        .route("/mlflow/registered-models/set-tag", post(set_model_tag))
        .route(
            "/mlflow/registered-models/delete-tag",
            delete(delete_model_tag),
        )
        .route(
            "/mlflow/registered-models/alias",
            post(set_alias).delete(delete_alias).get(get_alias),
        )
        .route("/mlflow/model-versions/create", post(create_version))
        .route("/mlflow/model-versions/get", get(get_version))
        .route("/mlflow/model-versions/update", patch(update_version))
        .route("/mlflow/model-versions/delete", delete(delete_version))
        .route("/mlflow/model-versions/search", get(search_versions))
        .route("/mlflow/model-versions/get-download-uri", get(download_uri))
        .route(
            "/mlflow/model-versions/transition-stage",
            post(transition_stage),
        )
        .route("/mlflow/model-versions/set-tag", post(set_version_tag))
        .route(
            "/mlflow/model-versions/delete-tag",
            delete(delete_version_tag),
        )
}

fn version(f: &Fields) -> Result<i64, ApiError> {
    Ok(parse_version(&f.non_empty("version")?)?)
}

fn page_reply(name: &str, items: Vec<Value>, next: Option<u64>) -> ApiResult {
    let mut obj = serde_json::Map::new();
    obj.insert(name.into(), Value::Array(items));
    next_token(&mut obj, next);
    reply(Value::Object(obj))
}

async fn create_model(State(s): State<AppState>, f: Fields) -> ApiResult {
    let name = f.str("name")?;
    let description = f.opt_str("description")?;
    let tags = f.key_values("tags")?;
    let model =
        blocking(move || s.registry.create_model(&name, description.as_deref(), tags)).await?;
    reply(json!({ "registered_model": wire::registered_model(&model) }))
}

async fn get_model(State(s): State<AppState>, f: Fields) -> ApiResult {
    let name = f.str("name")?;
    let model = blocking(move || s.registry.get_model(&name)).await?;
    reply(json!({ "registered_model": wire::registered_model(&model) }))
}

async fn rename_model(State(s): State<AppState>, f: Fields) -> ApiResult {
    let name = f.str("name")?;
    let new_name = f.str("new_name")?;
    let model = blocking(move || s.registry.rename_model(&name, &new_name)).await?;
    reply(json!({ "registered_model": wire::registered_model(&model) }))
}

async fn update_model(State(s): State<AppState>, f: Fields) -> ApiResult {
    let name = f.str("name")?;
    let description = f.opt_str("description")?.unwrap_or_default();
    let model = blocking(move || s.registry.update_model(&name, &description)).await?;
    reply(json!({ "registered_model": wire::registered_model(&model) }))
}

async fn delete_model(State(s): State<AppState>, f: Fields) -> ApiResult {
    let name = f.str("name")?;
    blocking(move || s.registry.delete_model(&name)).await?;
    reply(json!({}))
}

async fn search_models(State(s): State<AppState>, f: Fields) -> ApiResult {
    let filter = f.opt_str("filter")?.unwrap_or_default();
    let order_by = f.strs("order_by")?;
    let max = f.opt_u64("max_results")?;
    let token = f.opt_str("page_token")?.unwrap_or_default();
    let page = blocking(move || s.registry.search_models(&filter, &order_by, max, &token)).await?;
    page_reply(
        "registered_models",
        page.items.iter().map(wire::registered_model).collect(),
        page.next_offset,
    )
}

async fn latest_versions(State(s): State<AppState>, f: Fields) -> ApiResult {
    let name = f.str("name")?;
    let stages = f.strs("stages")?;
    let versions = blocking(move || s.registry.latest_versions(&name, &stages)).await?;
    reply(json!({ "model_versions": versions.iter().map(wire::model_version).collect::<Vec<_>>() }))
}

async fn set_model_tag(State(s): State<AppState>, f: Fields) -> ApiResult {
    let (name, key, value) = (f.str("name")?, f.str("key")?, f.str("value")?);
    blocking(move || s.registry.set_model_tag(&name, &key, &value)).await?;
    reply(json!({}))
}

async fn delete_model_tag(State(s): State<AppState>, f: Fields) -> ApiResult {
    let (name, key) = (f.str("name")?, f.str("key")?);
    blocking(move || s.registry.delete_model_tag(&name, &key)).await?;
    reply(json!({}))
}

async fn set_alias(State(s): State<AppState>, f: Fields) -> ApiResult {
    let (name, alias, version) = (f.str("name")?, f.str("alias")?, version(&f)?);
    blocking(move || s.registry.set_alias(&name, &alias, version)).await?;
    reply(json!({}))
}

async fn delete_alias(State(s): State<AppState>, f: Fields) -> ApiResult {
    let (name, alias) = (f.str("name")?, f.str("alias")?);
    blocking(move || s.registry.delete_alias(&name, &alias)).await?;
    reply(json!({}))
}

async fn get_alias(State(s): State<AppState>, f: Fields) -> ApiResult {
    let (name, alias) = (f.str("name")?, f.str("alias")?);
    let v = blocking(move || s.registry.version_by_alias(&name, &alias)).await?;
    reply(json!({ "model_version": wire::model_version(&v) }))
}

async fn create_version(State(s): State<AppState>, f: Fields) -> ApiResult {
    let new = NewModelVersion {
        name: f.str("name")?,
        source: f.str("source")?,
        run_id: f.opt_str("run_id")?,
        run_link: f.opt_str("run_link")?,
        model_id: f.opt_str("model_id")?,
        description: f.opt_str("description")?,
        tags: f.key_values("tags")?,
        user_id: f.opt_str("user_id")?,
    };
    // The ONNX graph is checked before the version exists, and the version is created with
    // its signature tag in one transaction: a crash leaves either nothing or the whole version.
    let v = blocking(move || {
        let mut new = new;
        s.registry.check_new_version(&new)?;
        let location = s.registry.storage_location_of(&new.source)?;
        if let Some(signature) =
            crate::served::checked_signature(s.artifacts.as_ref(), &new.name, &location)?
        {
            new.tags.retain(|t| t.key != crate::served::SIGNATURE_TAG);
            new.tags.push(cairn_core::model::KeyValue::new(
                crate::served::SIGNATURE_TAG,
                signature,
            ));
        }
        let model_id = new.model_id.clone().filter(|m| !m.is_empty());
        let v = s.registry.create_version(new)?;
        if let Some(model_id) = model_id {
            note_version_on_logged_model(&s, &model_id, &v.name, v.version)?;
        }
        Ok(v)
    })
    .await?;
    reply(json!({ "model_version": wire::model_version(&v) }))
}

/// Adds `{"name": ..., "version": N}` to the logged model's `mlflow.modelVersions` tag (a
/// JSON list), as `mlflow server` does when a version is registered from a logged model.
fn note_version_on_logged_model(
    s: &AppState,
    model_id: &str,
    name: &str,
    version: i64,
) -> cairn_core::Result<()> {
    const TAG: &str = "mlflow.modelVersions";
    let model = match s.tracking.get_logged_model(model_id) {
        Ok(m) => m,
        // MLflow records a version whose logged model is gone; there is nothing to tag.
        Err(cairn_core::Error::NotFound(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    let entry = json!({"name": name, "version": version});
    let mut versions: Vec<Value> = model
        .tags
        .iter()
        .find(|t| t.key == TAG)
        .and_then(|t| serde_json::from_str(&t.value).ok())
        .unwrap_or_default();
    if versions.contains(&entry) {
        return Ok(());
    }
    versions.push(entry);
    let text = crate::otlp::python_json(&Value::Array(versions));
    s.tracking
        .set_logged_model_tags(model_id, vec![cairn_core::model::KeyValue::new(TAG, text)])?;
    Ok(())
}

async fn get_version(State(s): State<AppState>, f: Fields) -> ApiResult {
    let (name, number) = (f.str("name")?, version(&f)?);
    let v = blocking(move || s.registry.get_version(&name, number)).await?;
    reply(json!({ "model_version": wire::model_version(&v) }))
}

async fn update_version(State(s): State<AppState>, f: Fields) -> ApiResult {
    let (name, number) = (f.str("name")?, version(&f)?);
    let description = f.opt_str("description")?.unwrap_or_default();
    let v = blocking(move || s.registry.update_version(&name, number, &description)).await?;
    reply(json!({ "model_version": wire::model_version(&v) }))
}

async fn delete_version(State(s): State<AppState>, f: Fields) -> ApiResult {
    let (name, number) = (f.str("name")?, version(&f)?);
    blocking(move || s.registry.delete_version(&name, number)).await?;
    reply(json!({}))
}

async fn search_versions(State(s): State<AppState>, f: Fields) -> ApiResult {
    let filter = f.opt_str("filter")?.unwrap_or_default();
    let order_by = f.strs("order_by")?;
    let max = f.opt_u64("max_results")?;
    let token = f.opt_str("page_token")?.unwrap_or_default();
    let page =
        blocking(move || s.registry.search_versions(&filter, &order_by, max, &token)).await?;
    page_reply(
        "model_versions",
        page.items.iter().map(wire::model_version).collect(),
        page.next_offset,
    )
}

async fn download_uri(State(s): State<AppState>, f: Fields) -> ApiResult {
    let (name, number) = (f.str("name")?, version(&f)?);
    let uri = blocking(move || s.registry.download_uri(&name, number)).await?;
    reply(json!({ "artifact_uri": uri }))
}

async fn transition_stage(State(s): State<AppState>, f: Fields) -> ApiResult {
    let (name, number) = (f.str("name")?, version(&f)?);
    let stage = Stage::parse(&f.str("stage")?)?;
    let archive = match f.map_get("archive_existing_versions") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    };
    let v = blocking(move || s.registry.transition_stage(&name, number, stage, archive)).await?;
    reply(json!({ "model_version": wire::model_version(&v) }))
}

async fn set_version_tag(State(s): State<AppState>, f: Fields) -> ApiResult {
    let (name, number, key, value) = (f.str("name")?, version(&f)?, f.str("key")?, f.str("value")?);
    blocking(move || s.registry.set_version_tag(&name, number, &key, &value)).await?;
    reply(json!({}))
}

async fn delete_version_tag(State(s): State<AppState>, f: Fields) -> ApiResult {
    let (name, number, key) = (f.str("name")?, version(&f)?, f.str("key")?);
    blocking(move || s.registry.delete_version_tag(&name, number, &key)).await?;
    reply(json!({}))
}
