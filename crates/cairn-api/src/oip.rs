//! The Open Inference Protocol v2 over REST (KServe, Triton, MLServer clients), JSON tensors.
//! Errors are `{"error": "..."}`: 400 for bad input, 404 for unknown models.
use crate::request::read_limited;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cairn_serving::{ElementType, NamedTensor, OnnxModel, ServingError, TensorData, TensorSpec};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// A model ready to answer, with the name and version it answers as.
pub struct ServedModel {
    /// Model name (the registered model's name, or the file stem for `cairn serve FILE`).
    pub name: String,
    /// Version that answers.
    pub version: String,
    /// The loaded graph.
    pub model: OnnxModel,
}

/// Why no model answers a request.
#[derive(Debug)]
pub enum ModelError {
    /// No such model or version (404).
    Unknown(String),
    /// The version exists but cannot be served: no ONNX file, or a graph that does not load
    /// (the message says which).
    Unservable(String),
}

/// Finds the model a request names. `version` is a version number or an alias; `None` means
/// the default (newest) one. May block (database, files): callers run it off the runtime.
pub trait ModelSource: Send + Sync {
    /// The model answering for `name` at `version`.
    fn resolve(&self, name: &str, version: Option<&str>) -> Result<Arc<ServedModel>, ModelError>;
}

/// A fixed set of loaded models (for `cairn serve FILE`).
pub struct StaticModels(pub Vec<Arc<ServedModel>>);

impl ModelSource for StaticModels {
    fn resolve(&self, name: &str, version: Option<&str>) -> Result<Arc<ServedModel>, ModelError> {
        self.0
            .iter()
            .find(|m| m.name == name && version.is_none_or(|v| v == m.version))
            .cloned()
            .ok_or_else(|| ModelError::Unknown(unknown_text(name, version)))
    }
}

/// An OIP error answer.
pub struct OipError(StatusCode, String);

impl IntoResponse for OipError {
    fn into_response(self) -> Response {
        let mut response = (self.0, Json(json!({ "error": self.1 }))).into_response();
        if self.0 == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body was never read: the connection cannot be reused.
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                HeaderValue::from_static("close"),
            );
        }
        response
    }
}

fn bad(msg: impl Into<String>) -> OipError {
    OipError(StatusCode::BAD_REQUEST, msg.into())
}

/// Runs blocking work (database, files, inference) on the blocking pool.
async fn off_runtime<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, OipError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        OipError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("worker failed: {e}"),
        )
    })
}

/// "Unknown model 'x' version 'y'".
pub fn unknown_text(name: &str, version: Option<&str>) -> String {
    match version {
        Some(v) => format!("Unknown model '{name}' version '{v}'"),
        None => format!("Unknown model '{name}'"),
    }
}

/// The routes, with their own state (the model source).
pub fn routes(models: Arc<dyn ModelSource>) -> Router {
    Router::new()
        .route(
            "/v2/health/live",
            get(|| async { Json(json!({"live": true})) }),
        )
        .route(
            "/v2/health/ready",
            get(|| async { Json(json!({"ready": true})) }),
        )
        .route("/v2", get(server_metadata))
        .route("/v2/models/{name}", get(metadata))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(metadata_version),
        )
        .route("/v2/models/{name}/ready", get(ready))
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(ready_version),
        )
        .route("/v2/models/{name}/infer", post(infer))
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(infer_version),
        )
        .with_state(models)
}

async fn server_metadata() -> Json<Value> {
    Json(json!({"name": "cairn", "version": env!("CARGO_PKG_VERSION"), "extensions": []}))
}

fn spec_json(s: &TensorSpec) -> Value {
    json!({"name": s.name, "datatype": s.element_type.as_str(), "shape": s.shape})
}

async fn find(
    models: &Arc<dyn ModelSource>,
    name: &str,
    version: Option<&str>,
) -> Result<Arc<ServedModel>, OipError> {
    let (models, name, version) = (
        models.clone(),
        name.to_string(),
        version.map(str::to_string),
    );
    off_runtime(move || models.resolve(&name, version.as_deref()))
        .await?
        .map_err(|e| match e {
            ModelError::Unknown(msg) => OipError(StatusCode::NOT_FOUND, msg),
            ModelError::Unservable(msg) => OipError(StatusCode::UNPROCESSABLE_ENTITY, msg),
        })
}

fn metadata_of(m: &ServedModel) -> Json<Value> {
    let sig = m.model.signature();
    Json(json!({
        "name": m.name,
        "versions": [m.version],
        "platform": "onnx",
        "inputs": sig.inputs.iter().map(spec_json).collect::<Vec<_>>(),
        "outputs": sig.outputs.iter().map(spec_json).collect::<Vec<_>>(),
    }))
}

async fn metadata(
    State(m): State<Arc<dyn ModelSource>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, OipError> {
    let model = find(&m, &name, None).await?;
    Ok(metadata_of(&model))
}

async fn metadata_version(
    State(m): State<Arc<dyn ModelSource>>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>, OipError> {
    let model = find(&m, &name, Some(&version)).await?;
    Ok(metadata_of(&model))
}

async fn ready(
    State(m): State<Arc<dyn ModelSource>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, OipError> {
    let model = find(&m, &name, None).await?;
    Ok(Json(json!({"name": model.name, "ready": true})))
}

async fn ready_version(
    State(m): State<Arc<dyn ModelSource>>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>, OipError> {
    let model = find(&m, &name, Some(&version)).await?;
    Ok(Json(json!({"name": model.name, "ready": true})))
}

/// Flattens nested JSON arrays (OIP allows both flat and nested data).
fn flatten<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other),
    }
}

fn tensor_from_json(t: &Map<String, Value>, index: usize) -> Result<NamedTensor, OipError> {
    let name = t
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("inputs[{index}] has no name")))?;
    let datatype = t
        .get("datatype")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("input '{name}' has no datatype")))?;
    let element_type = ElementType::parse(datatype).ok_or_else(|| {
        bad(format!(
            "input '{name}' has unsupported datatype '{datatype}'"
        ))
    })?;
    let shape = t
        .get("shape")
        .and_then(Value::as_array)
        .ok_or_else(|| bad(format!("input '{name}' has no shape")))?
        .iter()
        .map(|d| {
            d.as_u64()
                .map(|d| d as usize)
                .ok_or_else(|| bad(format!("input '{name}' has a bad shape: {d}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let raw = t
        .get("data")
        .ok_or_else(|| bad(format!("input '{name}' has no data")))?;
    let mut flat = Vec::new();
    flatten(raw, &mut flat);
    let wrong =
        |i: usize, v: &Value| bad(format!("input '{name}' value {i} ({v}) is not {datatype}"));
    let data = match element_type {
        ElementType::Fp32 | ElementType::Fp64 => {
            let values = flat
                .iter()
                .enumerate()
                .map(|(i, v)| match v.as_f64() {
                    Some(f) if f.is_finite() => Ok(f),
                    Some(_) | None => Err(wrong(i, v)),
                })
                .collect::<Result<Vec<f64>, _>>()?;
            if element_type == ElementType::Fp32 {
                TensorData::Fp32(values.into_iter().map(|f| f as f32).collect())
            } else {
                TensorData::Fp64(values)
            }
        }
        ElementType::Int32 => TensorData::Int32(
            flat.iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_i64()
                        .and_then(|n| i32::try_from(n).ok())
                        .ok_or_else(|| wrong(i, v))
                })
                .collect::<Result<_, _>>()?,
        ),
        ElementType::Int64 => TensorData::Int64(
            flat.iter()
                .enumerate()
                .map(|(i, v)| v.as_i64().ok_or_else(|| wrong(i, v)))
                .collect::<Result<_, _>>()?,
        ),
        ElementType::Bool => TensorData::Bool(
            flat.iter()
                .enumerate()
                .map(|(i, v)| v.as_bool().ok_or_else(|| wrong(i, v)))
                .collect::<Result<_, _>>()?,
        ),
        ElementType::Bytes => TensorData::Bytes(
            flat.iter()
                .enumerate()
                .map(|(i, v)| v.as_str().map(str::to_string).ok_or_else(|| wrong(i, v)))
                .collect::<Result<_, _>>()?,
        ),
    };
    Ok(NamedTensor {
        name: name.to_string(),
        shape,
        data,
    })
}

fn tensor_to_json(t: &NamedTensor) -> Value {
    let data: Value = match &t.data {
        TensorData::Fp32(v) => v.iter().map(|f| Value::from(*f as f64)).collect(),
        TensorData::Fp64(v) => v.iter().map(|f| Value::from(*f)).collect(),
        TensorData::Int32(v) => v.iter().map(|n| Value::from(*n)).collect(),
        TensorData::Int64(v) => v.iter().map(|n| Value::from(*n)).collect(),
        TensorData::Bool(v) => v.iter().map(|b| Value::from(*b)).collect(),
        TensorData::Bytes(v) => v.iter().map(|s| Value::from(s.as_str())).collect(),
    };
    json!({"name": t.name, "datatype": t.data.element_type().as_str(), "shape": t.shape, "data": data})
}

/// The request body, read with the server's JSON limit (413 above it).
struct InferBody(Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for InferBody {
    type Rejection = OipError;

    async fn from_request(req: Request, _: &S) -> Result<Self, OipError> {
        let bytes = read_limited(req).await.map_err(|limit| {
            OipError(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body exceeds {limit} bytes"),
            )
        })?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(map)) => Ok(InferBody(map)),
            Ok(_) => Err(bad("the request body must be a JSON object")),
            Err(e) => Err(bad(format!("malformed JSON: {e}"))),
        }
    }
}

async fn run_inference(
    models: Arc<dyn ModelSource>,
    name: String,
    version: Option<String>,
    body: InferBody,
) -> Result<Response, OipError> {
    let served = find(&models, &name, version.as_deref()).await?;
    let body = body.0;
    let inputs = body
        .get("inputs")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("the request has no 'inputs' list"))?
        .iter()
        .enumerate()
        .map(|(i, t)| {
            t.as_object()
                .ok_or_else(|| bad(format!("inputs[{i}] is not an object")))
                .and_then(|t| tensor_from_json(t, i))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let wanted: Option<Vec<String>> = body.get("outputs").and_then(Value::as_array).map(|outs| {
        outs.iter()
            .filter_map(|o| o.get("name").and_then(Value::as_str).map(str::to_string))
            .collect()
    });
    if let Some(wanted) = &wanted {
        let known = &served.model.signature().outputs;
        if let Some(missing) = wanted.iter().find(|w| !known.iter().any(|k| &k.name == *w)) {
            return Err(bad(format!("model '{name}' has no output '{missing}'")));
        }
    }
    let runner = served.clone();
    let outputs = off_runtime(move || runner.model.infer(inputs))
        .await?
        .map_err(|e| match e {
            ServingError::BadInput(msg) => bad(msg),
            other => OipError(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        })?;
    let outputs: Vec<Value> = outputs
        .iter()
        .filter(|t| wanted.as_ref().is_none_or(|w| w.contains(&t.name)))
        .map(tensor_to_json)
        .collect();
    let mut answer =
        json!({"model_name": served.name, "model_version": served.version, "outputs": outputs});
    if let Some(id) = body.get("id") {
        answer["id"] = id.clone();
    }
    let mut response = Json(answer).into_response();
    for (header, value) in [
        ("x-model-name", &served.name),
        ("x-model-version", &served.version),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            response
                .headers_mut()
                .insert(HeaderName::from_static(header), v);
        }
    }
    Ok(response)
}

async fn infer(
    State(m): State<Arc<dyn ModelSource>>,
    Path(name): Path<String>,
    body: InferBody,
) -> Result<Response, OipError> {
    run_inference(m, name, None, body).await
}

async fn infer_version(
    State(m): State<Arc<dyn ModelSource>>,
    Path((name, version)): Path<(String, String)>,
    body: InferBody,
) -> Result<Response, OipError> {
    run_inference(m, name, Some(version), body).await
}
