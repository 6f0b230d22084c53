//! The feature server's wire: `POST /get-online-features` with Feast's request and response
//! JSON (`features` or `feature_service`, `entities`, `full_feature_names`; `metadata`,
//! `results` with `values`, `statuses`, `event_timestamps`). The definitions are the project's
//! latest applied ones, checked against the store on every request (another process may apply
//! new ones); the parsed copy is reused while the store's digest is unchanged.
use crate::error::ApiError;
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use cairn_core::{FeatureRegistryStore, OnlineStore};
use cairn_features::definitions::Definitions;
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// A feature store error as an API error: the caller's mistakes are 400s.
fn feature_error(e: cairn_features::Error) -> ApiError {
    match e {
        cairn_features::Error::Invalid(m) => ApiError::invalid(m),
        other => ApiError::internal(other.to_string()),
    }
}

/// The column lists of a write's `df`.
fn frame(body: &Value) -> Result<&serde_json::Map<String, Value>, ApiError> {
    body["df"]
        .as_object()
        .ok_or_else(|| ApiError::invalid("df must map each column to a list of values"))
}

/// What the feature server reads: one project's definitions and its online store.
pub struct FeatureServer {
    registry: Arc<dyn FeatureRegistryStore>,
    online: Arc<dyn OnlineStore>,
    project: String,
    parsed: Mutex<Option<(String, Arc<Definitions>)>>,
}

impl FeatureServer {
    /// A server for `project`'s features.
    pub fn new(
        registry: Arc<dyn FeatureRegistryStore>,
        online: Arc<dyn OnlineStore>,
        project: &str,
    ) -> FeatureServer {
        FeatureServer {
            registry,
            online,
            project: project.to_string(),
            parsed: Mutex::new(None),
        }
    }

    /// The project's latest applied definitions.
    fn definitions(&self) -> Result<Arc<Definitions>, ApiError> {
        let stored = self
            .registry
            .definitions(&self.project, None)
            .map_err(|e| ApiError::internal(e.to_string()))?
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "project {} has no applied definitions: run `cairn features apply`",
                    self.project
                ))
            })?;
        let mut parsed = self
            .parsed
            .lock()
            .map_err(|_| ApiError::internal("the definitions cache is poisoned"))?;
        if let Some((digest, d)) = parsed.as_ref() {
            if *digest == stored.digest {
                return Ok(d.clone());
            }
        }
        let d = Arc::new(
            Definitions::parse(
                &stored.text,
                &format!("{} v{}", self.project, stored.version),
            )
            .map_err(|e| ApiError::internal(e.to_string()))?,
        );
        *parsed = Some((stored.digest, d.clone()));
        Ok(d)
    }

    /// Answers one `get-online-features` request body.
    pub fn get_online_features(&self, body: &Value) -> Result<Value, ApiError> {
        let d = self.definitions()?;
        let refs: Vec<String> = match (&body["features"], &body["feature_service"]) {
            (Value::Array(fs), Value::Null) => fs
                .iter()
                .map(|f| {
                    f.as_str().map(String::from).ok_or_else(|| {
                        ApiError::invalid(format!("features: {f} is not a view:feature string"))
                    })
                })
                .collect::<Result<_, _>>()?,
            (Value::Null, Value::String(name)) => d
                .service(name)
                .ok_or_else(|| ApiError::invalid(format!("unknown feature service {name}")))?
                .features
                .clone(),
            _ => {
                return Err(ApiError::invalid(
                    "give either features (a list of view:feature) or feature_service (a name)",
                ))
            }
        };
        let features = d
            .resolve(&refs)
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        let entities: Vec<(String, Vec<Value>)> = match &body["entities"] {
            Value::Object(m) => m
                .iter()
                .map(|(k, v)| match v {
                    Value::Array(values) => Ok((k.clone(), values.clone())),
                    other => Err(ApiError::invalid(format!(
                        "entities: {k} must be a list of values, not {other}"
                    ))),
                })
                .collect::<Result<_, _>>()?,
            _ => {
                return Err(ApiError::invalid(
                    "entities must map each join key to a list of values",
                ))
            }
        };
        let full = match &body["full_feature_names"] {
            Value::Null => false,
            Value::Bool(b) => *b,
            other => {
                return Err(ApiError::invalid(format!(
                    "full_feature_names must be true or false, not {other}"
                )))
            }
        };
        cairn_features::online::get_online(
            &d,
            &*self.online,
            &features,
            &entities,
            full,
            cairn_core::now_millis(),
        )
        .map_err(feature_error)
    }
}

impl crate::bound::FeatureLookup for FeatureServer {
    fn lookup(
        &self,
        service: &str,
        entities: &[(String, Vec<Value>)],
    ) -> Result<Value, crate::bound::BoundError> {
        use crate::bound::BoundError;
        let unavailable = |e: ApiError| BoundError(e.status(), e.message().to_string());
        let d = self.definitions().map_err(unavailable)?;
        let wanted = d.service(service).ok_or_else(|| {
            BoundError::invalid(format!(
                "the model is bound to feature service '{service}', which project {} does not \
                 define: bind it to another service or apply definitions that have it",
                self.project
            ))
        })?;
        let features = d
            .resolve(&wanted.features)
            .map_err(|e| BoundError::invalid(e.to_string()))?;
        cairn_features::online::get_online(
            &d,
            &*self.online,
            &features,
            entities,
            true,
            cairn_core::now_millis(),
        )
        .map_err(|e| match e {
            cairn_features::Error::Invalid(m) => BoundError::invalid(m),
            other => BoundError(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                other.to_string(),
            ),
        })
    }
}

impl FeatureServer {
    /// Answers one `push` request body (Feast's: `push_source_name`, `df` as column lists,
    /// `to`: `online`; the offline store is not written yet).
    pub fn push(&self, body: &Value) -> Result<Value, ApiError> {
        let d = self.definitions()?;
        let source = body["push_source_name"]
            .as_str()
            .ok_or_else(|| ApiError::invalid("push_source_name is required"))?;
        match body["to"].as_str().unwrap_or("online") {
            "online" => {}
            other => {
                return Err(ApiError::invalid(format!(
                "to: {other} is not supported: Cairn pushes to the online store only (to: online)"
            )))
            }
        }
        let columns = frame(body)?;
        let written = cairn_features::online::push(
            &d,
            &*self.online,
            source,
            columns,
            cairn_core::now_millis(),
        )
        .map_err(feature_error)?;
        Ok(
            serde_json::json!({"written": written.iter().map(|(v, n)| serde_json::json!({"feature_view": v, "rows": n})).collect::<Vec<_>>()}),
        )
    }
}

impl FeatureServer {
    /// Answers one `write-to-online-store` request body (Feast's remote online store client:
    /// `feature_view_name`, `df` as column lists with `event_timestamp` and `created`).
    pub fn write_to_online_store(&self, body: &Value) -> Result<Value, ApiError> {
        let d = self.definitions()?;
        let view = body["feature_view_name"]
            .as_str()
            .ok_or_else(|| ApiError::invalid("feature_view_name is required"))?;
        let columns = frame(body)?;
        let written = cairn_features::online::write_to_view(
            &d,
            &*self.online,
            view,
            columns,
            cairn_core::now_millis(),
        )
        .map_err(feature_error)?;
        Ok(serde_json::json!({"status": "success", "rows": written}))
    }
}

async fn write_to_online_store(
    State(server): State<Arc<FeatureServer>>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    blocking(move || server.write_to_online_store(&body)).await
}

/// Runs a request's work on the blocking pool (the stores block).
async fn blocking(
    f: impl FnOnce() -> Result<Value, ApiError> + Send + 'static,
) -> Result<Json<Value>, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("worker failed: {e}")))?
        .map(Json)
}

async fn push(
    State(server): State<Arc<FeatureServer>>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    blocking(move || server.push(&body)).await
}

async fn get_online_features(
    State(server): State<Arc<FeatureServer>>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    blocking(move || server.get_online_features(&body)).await
}

/// The feature server's routes: `POST /get-online-features`, `POST /push`, `POST
/// /write-to-online-store`.
pub fn routes(server: Arc<FeatureServer>) -> Router {
    Router::new()
        .route("/get-online-features", post(get_online_features))
        .route("/push", post(push))
        .route("/write-to-online-store", post(write_to_online_store))
        .with_state(server)
}
