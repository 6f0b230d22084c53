//! The Open Inference Protocol v2 over REST (KServe, Triton, MLServer clients): JSON tensors
//! and the binary tensor extension (`Inference-Header-Content-Length`, `binary_data_size`,
//! `binary_data` / `binary_data_output`), which `tritonclient` uses by default.
//! Errors are `{"error": "..."}`: 400 for bad input, 404 for unknown models, 503 when the
//! model's queue is full.
use crate::metrics::Metrics;
use crate::request::read_limited;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use cairn_serving::{ElementType, NamedTensor, Runner, ServingError, TensorData, TensorSpec};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Instant;

/// A model ready to answer, with the name and version it answers as.
pub struct ServedModel {
    /// Model name (the registered model's name, or the file stem for `cairn serve FILE`).
    pub name: String,
    /// Version that answers.
    pub version: String,
    /// The loaded graph and the policy it runs under.
    pub runner: Runner,
    /// The columns of its input `x`, when its trainer recorded them (`cairn train`).
    pub columns: Option<Vec<cairn_serving::FeatureColumn>>,
    /// The feature service whose entity keys a request may send instead of the inputs.
    pub binding: Option<crate::bound::Binding>,
}

impl ServedModel {
    /// A model loaded from `bytes`, unbound.
    pub fn new(name: String, version: String, runner: Runner, bytes: &[u8]) -> ServedModel {
        ServedModel {
            name,
            version,
            runner,
            columns: cairn_serving::feature_columns(bytes),
            binding: None,
        }
    }
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

impl std::fmt::Display for ModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelError::Unknown(m) | ModelError::Unservable(m) => f.write_str(m),
        }
    }
}

/// Finds the model a request names. `version` is a version number or an alias; `None` means
/// the default (newest) one. May block (database, files): callers run it off the runtime.
pub trait ModelSource: Send + Sync {
    /// The model answering for `name` at `version`.
    fn resolve(&self, name: &str, version: Option<&str>) -> Result<Arc<ServedModel>, ModelError>;

    /// The same answer when it needs no blocking work (a fixed set of models); `None` sends
    /// the caller to [`ModelSource::resolve`] on the blocking pool.
    fn resolve_now(
        &self,
        _name: &str,
        _version: Option<&str>,
    ) -> Option<Result<Arc<ServedModel>, ModelError>> {
        None
    }

    /// The graph bytes held in memory for version `number` of `name` created at `created_ms`,
    /// or `None` when that version is not loaded (it loads on its first request).
    fn loaded_bytes(&self, _name: &str, _number: i64, _created_ms: i64) -> Option<u64> {
        None
    }
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

    fn resolve_now(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Option<Result<Arc<ServedModel>, ModelError>> {
        Some(self.resolve(name, version))
    }
}

/// An OIP error answer.
pub struct OipError(StatusCode, String);

impl OipError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.0
    }

    /// The message.
    pub fn message(self) -> String {
        self.1
    }
}

impl IntoResponse for OipError {
    fn into_response(self) -> Response {
        let message = crate::request_id::public_message(self.0, self.1);
        let mut response = (self.0, Json(json!({ "error": message }))).into_response();
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

/// What the serving routes share: where models come from, and the counters they feed.
#[derive(Clone)]
pub struct Serving {
    /// The models.
    pub models: Arc<dyn ModelSource>,
    /// Request counters and latency histograms.
    pub metrics: Arc<Metrics>,
    /// Where answered requests are logged for monitoring, if anywhere.
    pub monitoring: Option<Arc<crate::monitoring::Monitoring>>,
}

/// The routes, with their own state.
pub fn routes(serving: Serving) -> Router {
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
        .route("/v2/models/{name}/config", get(config))
        .route(
            "/v2/models/{name}/versions/{version}/config",
            get(config_version),
        )
        .with_state(serving)
}

async fn server_metadata() -> Json<Value> {
    Json(
        json!({"name": "cairn", "version": env!("CARGO_PKG_VERSION"), "extensions": ["binary_tensor_data"]}),
    )
}

/// A tensor spec as OIP metadata JSON (`name`, `datatype`, `shape`).
pub fn spec_json(s: &TensorSpec) -> Value {
    json!({"name": s.name, "datatype": s.element_type.as_str(), "shape": s.shape})
}

async fn find(
    serving: &Serving,
    name: &str,
    version: Option<&str>,
) -> Result<Arc<ServedModel>, OipError> {
    let resolved = match serving.models.resolve_now(name, version) {
        Some(now) => now,
        None => {
            let (models, name, version) = (
                serving.models.clone(),
                name.to_string(),
                version.map(str::to_string),
            );
            off_runtime(move || models.resolve(&name, version.as_deref())).await?
        }
    };
    resolved.map_err(|e| match e {
        ModelError::Unknown(msg) => OipError(StatusCode::NOT_FOUND, msg),
        ModelError::Unservable(msg) => OipError(StatusCode::UNPROCESSABLE_ENTITY, msg),
    })
}

fn metadata_of(m: &ServedModel) -> Json<Value> {
    let sig = m.runner.model().signature();
    Json(json!({
        "name": m.name,
        "versions": [m.version],
        "platform": "onnx",
        "inputs": sig.inputs.iter().map(spec_json).collect::<Vec<_>>(),
        "outputs": sig.outputs.iter().map(spec_json).collect::<Vec<_>>(),
    }))
}

async fn metadata(
    State(m): State<Serving>,
    Path(name): Path<String>,
) -> Result<Json<Value>, OipError> {
    let model = find(&m, &name, None).await?;
    Ok(metadata_of(&model))
}

async fn metadata_version(
    State(m): State<Serving>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>, OipError> {
    let model = find(&m, &name, Some(&version)).await?;
    Ok(metadata_of(&model))
}

async fn ready(
    State(m): State<Serving>,
    Path(name): Path<String>,
) -> Result<Json<Value>, OipError> {
    let model = find(&m, &name, None).await?;
    Ok(Json(json!({"name": model.name, "ready": true})))
}

async fn ready_version(
    State(m): State<Serving>,
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

/// Reads `count` values of a binary tensor (little-endian; BYTES as 4-byte length + bytes).
fn tensor_from_binary(
    name: &str,
    element_type: ElementType,
    bytes: &[u8],
) -> Result<TensorData, OipError> {
    fn fixed<const N: usize, T>(
        name: &str,
        bytes: &[u8],
        f: impl Fn([u8; N]) -> T,
    ) -> Result<Vec<T>, OipError> {
        if !bytes.len().is_multiple_of(N) {
            return Err(bad(format!(
                "input '{name}' has {} bytes of binary data, not a multiple of {N}",
                bytes.len()
            )));
        }
        Ok(bytes
            .chunks_exact(N)
            .map(|c| {
                let mut a = [0u8; N];
                a.copy_from_slice(c);
                f(a)
            })
            .collect())
    }
    Ok(match element_type {
        ElementType::Fp32 => TensorData::Fp32(fixed(name, bytes, f32::from_le_bytes)?),
        ElementType::Fp64 => TensorData::Fp64(fixed(name, bytes, f64::from_le_bytes)?),
        ElementType::Int32 => TensorData::Int32(fixed(name, bytes, i32::from_le_bytes)?),
        ElementType::Int64 => TensorData::Int64(fixed(name, bytes, i64::from_le_bytes)?),
        ElementType::Bool => TensorData::Bool(fixed(name, bytes, |[b]: [u8; 1]| b != 0)?),
        ElementType::Bytes => {
            let mut values = Vec::new();
            let mut rest = bytes;
            while !rest.is_empty() {
                let (len, tail) = rest
                    .split_first_chunk::<4>()
                    .ok_or_else(|| bad(format!("input '{name}': truncated BYTES element")))?;
                let len = u32::from_le_bytes(*len) as usize;
                if tail.len() < len {
                    return Err(bad(format!("input '{name}': truncated BYTES element")));
                }
                let (value, tail) = tail.split_at(len);
                values.push(String::from_utf8(value.to_vec()).map_err(|_| {
                    bad(format!(
                        "input '{name}': BYTES element {} is not UTF-8",
                        values.len()
                    ))
                })?);
                rest = tail;
            }
            TensorData::Bytes(values)
        }
    })
}

fn tensor_to_binary(data: &TensorData, out: &mut Vec<u8>) {
    match data {
        TensorData::Fp32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        TensorData::Fp64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        TensorData::Int32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        TensorData::Int64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        TensorData::Bool(v) => out.extend(v.iter().map(|b| u8::from(*b))),
        TensorData::Bytes(v) => v.iter().for_each(|s| {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }),
    }
}

/// One request input; binary data, when the input declares `binary_data_size`, is taken
/// from the front of `binary`.
fn tensor_from_json(
    t: &Map<String, Value>,
    index: usize,
    binary: &mut &[u8],
) -> Result<NamedTensor, OipError> {
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
    if shape
        .iter()
        .try_fold(1usize, |count, &d| count.checked_mul(d))
        .is_none()
    {
        return Err(bad(format!(
            "input '{name}' has shape {shape:?}, whose element count overflows"
        )));
    }
    let binary_size = t.get("parameters").and_then(|p| p.get("binary_data_size"));
    if let Some(size) = binary_size {
        let size = size
            .as_u64()
            .ok_or_else(|| bad(format!("input '{name}' has a bad binary_data_size")))?
            as usize;
        if size > binary.len() {
            return Err(bad(format!(
                "input '{name}' declares {size} bytes of binary data, the request has {} left",
                binary.len()
            )));
        }
        let (mine, rest) = binary.split_at(size);
        *binary = rest;
        let data = tensor_from_binary(name, element_type, mine)?;
        let non_finite = match &data {
            TensorData::Fp32(v) => v.iter().position(|f| !f.is_finite()),
            TensorData::Fp64(v) => v.iter().position(|f| !f.is_finite()),
            _ => None,
        };
        if let Some(i) = non_finite {
            return Err(bad(format!(
                "input '{name}' value {i} is not a finite number"
            )));
        }
        return Ok(NamedTensor {
            name: name.to_string(),
            shape,
            data,
        });
    }
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
                let narrowed = values.iter().map(|&f| f as f32).collect::<Vec<f32>>();
                // A value beyond f32's range would become infinity (and the outputs null).
                if let Some(i) = narrowed.iter().position(|f| !f.is_finite()) {
                    return Err(bad(format!(
                        "input '{name}' value {i} ({}) is outside the range of FP32",
                        values[i]
                    )));
                }
                TensorData::Fp32(narrowed)
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

/// A tensor's values as flat JSON.
pub(crate) fn json_values(data: &TensorData) -> Vec<Value> {
    match data {
        TensorData::Fp32(v) => v.iter().map(|f| Value::from(*f as f64)).collect(),
        TensorData::Fp64(v) => v.iter().map(|f| Value::from(*f)).collect(),
        TensorData::Int32(v) => v.iter().map(|n| Value::from(*n)).collect(),
        TensorData::Int64(v) => v.iter().map(|n| Value::from(*n)).collect(),
        TensorData::Bool(v) => v.iter().map(|b| Value::from(*b)).collect(),
        TensorData::Bytes(v) => v.iter().map(|s| Value::from(s.as_str())).collect(),
    }
}

fn tensor_to_json(t: &NamedTensor) -> Value {
    json!({"name": t.name, "datatype": t.data.element_type().as_str(), "shape": t.shape, "data": json_values(&t.data)})
}

/// The request: its JSON header and, with the binary extension, the bytes after it.
struct InferBody {
    header: Map<String, Value>,
    binary: Bytes,
}

const HEADER_LENGTH: &str = "inference-header-content-length";

impl<S: Send + Sync> FromRequest<S> for InferBody {
    type Rejection = OipError;

    async fn from_request(req: Request, _: &S) -> Result<Self, OipError> {
        let header_length = match req.headers().get(HEADER_LENGTH) {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .ok_or_else(|| bad("Inference-Header-Content-Length is not a number"))?,
            ),
        };
        let bytes = read_limited(req)
            .await
            .map_err(|e| OipError(e.status(), e.message().to_string()))?;
        let (json, binary) = match header_length {
            Some(n) if n > bytes.len() => {
                return Err(bad(format!(
                    "Inference-Header-Content-Length is {n}, the body has {} bytes",
                    bytes.len()
                )))
            }
            Some(n) => (bytes.slice(..n), bytes.slice(n..)),
            None => (bytes, Bytes::new()),
        };
        match serde_json::from_slice(&json) {
            Ok(Value::Object(header)) => Ok(InferBody { header, binary }),
            Ok(_) => Err(bad("the request body must be a JSON object")),
            Err(e) => Err(bad(format!("malformed JSON: {e}"))),
        }
    }
}

fn served_headers(response: &mut Response, served: &ServedModel) {
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
}

/// Maps an inference failure to its status: 400 for the caller's input, 503 when full.
pub(crate) fn serving_status(e: ServingError) -> OipError {
    match e {
        ServingError::BadInput(msg) => bad(msg),
        ServingError::Overloaded(msg) => OipError(StatusCode::SERVICE_UNAVAILABLE, msg),
        other => OipError(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}

async fn run_inference(
    serving: Serving,
    name: String,
    version: Option<String>,
    body: InferBody,
) -> Result<Response, OipError> {
    let served = find(&serving, &name, version.as_deref()).await?;
    let started = Instant::now();
    // With monitoring on, every answer carries a request id that labels can refer to later.
    let request_id = serving
        .monitoring
        .as_ref()
        .and_then(|m| m.request_id(body.header.get("id").and_then(Value::as_str)));
    let result = answer(&served, body, request_id.as_deref()).await;
    let elapsed = started.elapsed();
    serving.metrics.record(
        &served.name,
        &served.version,
        elapsed,
        result.as_ref().map_or_else(|e| e.0.as_u16(), |_| 200),
    );
    let result = result.map(|(response, tensors)| {
        if let (Some(m), Some(id), Some((inputs, outputs))) =
            (&serving.monitoring, request_id, tensors)
        {
            m.record(
                &id,
                &served.name,
                &served.version,
                elapsed,
                &inputs,
                &outputs,
            );
        }
        response
    });
    let mut response = result.into_response();
    served_headers(&mut response, &served);
    Ok(response)
}

/// Inputs and outputs of an answered request, for the prediction log.
pub(crate) type Tensors = (Vec<NamedTensor>, Vec<NamedTensor>);

/// The inputs of a bound model for entity rows, looked up off the runtime.
pub(crate) async fn features_for(
    served: &Arc<ServedModel>,
    entities: Vec<(String, Vec<Value>)>,
) -> Result<Vec<NamedTensor>, OipError> {
    let served = served.clone();
    off_runtime(move || crate::bound::inputs_for_entities(&served, &entities))
        .await?
        .map_err(|e| OipError(e.0, e.1))
}

/// Answers one request. With a `logged_id` (the prediction log is on), the answer carries it
/// and the input and output tensors are returned too; without, the answer echoes the
/// request's own id, if any.
async fn answer(
    served: &Arc<ServedModel>,
    body: InferBody,
    logged_id: Option<&str>,
) -> Result<(Response, Option<Tensors>), OipError> {
    let keep = logged_id.is_some();
    let InferBody { header, binary } = body;
    let mut cursor: &[u8] = &binary;
    let inputs = header
        .get("inputs")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("the request has no 'inputs' list"))?
        .iter()
        .enumerate()
        .map(|(i, t)| {
            t.as_object()
                .ok_or_else(|| bad(format!("inputs[{i}] is not an object")))
                .and_then(|t| tensor_from_json(t, i, &mut cursor))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !cursor.is_empty() {
        return Err(bad(format!(
            "{} bytes of binary data are not claimed by any input",
            cursor.len()
        )));
    }
    let inputs = if crate::bound::sends_entities(served, inputs.iter().map(|t| t.name.as_str())) {
        // Entity keys: the bound feature service's values become the inputs.
        let entities: Vec<(String, Vec<Value>)> = inputs
            .iter()
            .map(|t| (t.name.clone(), json_values(&t.data)))
            .collect();
        features_for(served, entities).await?
    } else {
        inputs
    };
    let all_binary = header
        .get("parameters")
        .and_then(|p| p.get("binary_data_output"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    // (name, binary?) for each requested output; None = every output.
    let wanted: Option<Vec<(String, bool)>> =
        header.get("outputs").and_then(Value::as_array).map(|outs| {
            outs.iter()
                .filter_map(|o| {
                    let name = o.get("name").and_then(Value::as_str)?;
                    let binary = o
                        .get("parameters")
                        .and_then(|p| p.get("binary_data"))
                        .and_then(Value::as_bool)
                        .unwrap_or(all_binary);
                    Some((name.to_string(), binary))
                })
                .collect()
        });
    if let Some(wanted) = &wanted {
        let known = &served.runner.model().signature().outputs;
        if let Some((missing, _)) = wanted
            .iter()
            .find(|(w, _)| !known.iter().any(|k| &k.name == w))
        {
            return Err(bad(format!(
                "model '{}' has no output '{missing}'",
                served.name
            )));
        }
    }
    let kept_inputs = keep.then(|| inputs.clone());
    let outputs = served.runner.infer(inputs).await.map_err(serving_status)?;
    let mut tail = Vec::new();
    let mut json_outputs = Vec::new();
    for t in &outputs {
        let binary = match &wanted {
            None => all_binary,
            Some(w) => match w.iter().find(|(n, _)| n == &t.name) {
                Some((_, b)) => *b,
                None => continue,
            },
        };
        if binary {
            let before = tail.len();
            tensor_to_binary(&t.data, &mut tail);
            json_outputs.push(json!({
                "name": t.name,
                "datatype": t.data.element_type().as_str(),
                "shape": t.shape,
                "parameters": {"binary_data_size": tail.len() - before},
            }));
        } else {
            json_outputs.push(tensor_to_json(t));
        }
    }
    let mut answer = json!({
        "model_name": served.name,
        "model_version": served.version,
        "outputs": json_outputs,
    });
    if let Some(id) = logged_id
        .map(Value::from)
        .or_else(|| header.get("id").cloned())
    {
        answer["id"] = id;
    }
    let kept = kept_inputs.map(|inputs| (inputs, outputs));
    if tail.is_empty() {
        return Ok((Json(answer).into_response(), kept));
    }
    let mut body = serde_json::to_vec(&answer)
        .map_err(|e| OipError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let header_length = body.len();
    body.extend_from_slice(&tail);
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(
        HeaderName::from_static(HEADER_LENGTH),
        HeaderValue::from(header_length),
    );
    Ok((response, kept))
}

/// A Triton-style model configuration (what `tritonclient`'s `get_model_config` reads).
fn config_of(m: &ServedModel) -> Json<Value> {
    let sig = m.runner.model().signature();
    let triton_type = |t: ElementType| match t {
        ElementType::Fp32 => "TYPE_FP32",
        ElementType::Fp64 => "TYPE_FP64",
        ElementType::Int32 => "TYPE_INT32",
        ElementType::Int64 => "TYPE_INT64",
        ElementType::Bool => "TYPE_BOOL",
        ElementType::Bytes => "TYPE_STRING",
    };
    let io = |specs: &[TensorSpec]| -> Vec<Value> {
        specs
            .iter()
            .map(|s| json!({"name": s.name, "data_type": triton_type(s.element_type), "dims": s.shape}))
            .collect()
    };
    Json(json!({
        "name": m.name,
        "platform": "onnxruntime_onnx",
        "backend": "cairn",
        "version_policy": {"specific": {"versions": [m.version]}},
        "max_batch_size": 0,
        "input": io(&sig.inputs),
        "output": io(&sig.outputs),
        "dynamic_batching": if m.runner.batching() { json!({}) } else { Value::Null },
    }))
}

async fn config(
    State(s): State<Serving>,
    Path(name): Path<String>,
) -> Result<Json<Value>, OipError> {
    Ok(config_of(&*find(&s, &name, None).await?))
}

async fn config_version(
    State(s): State<Serving>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>, OipError> {
    Ok(config_of(&*find(&s, &name, Some(&version)).await?))
}

async fn infer(
    State(m): State<Serving>,
    Path(name): Path<String>,
    body: InferBody,
) -> Result<Response, OipError> {
    run_inference(m, name, None, body).await
}

async fn infer_version(
    State(m): State<Serving>,
    Path((name, version)): Path<(String, String)>,
    body: InferBody,
) -> Result<Response, OipError> {
    run_inference(m, name, Some(version), body).await
}

#[cfg(test)]
mod property_tests {
    use super::*;
    use proptest::prelude::*;

    const TYPES: [&str; 7] = ["FP32", "FP64", "INT32", "INT64", "BOOL", "BYTES", "UINT8"];

    proptest! {
        /// Any bytes, any declared type, shape and size: a tensor or a 400, never a panic.
        #[test]
        fn the_binary_tensor_parser_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..256),
            datatype in 0usize..7,
            shape in proptest::collection::vec(0u64..(1u64 << 62), 0..4),
            size in 0u64..512,
        ) {
            let header = json!({
                "name": "x",
                "datatype": TYPES[datatype],
                "shape": shape,
                "parameters": {"binary_data_size": size},
            });
            let mut rest: &[u8] = &bytes;
            let parsed = tensor_from_json(header.as_object().unwrap_or(&Map::new()), 0, &mut rest);
            if let Err(OipError(status, _)) = parsed {
                prop_assert_eq!(status, StatusCode::BAD_REQUEST);
            }
        }

        /// JSON tensors with arbitrary data: a tensor or a 400, never a panic.
        #[test]
        fn the_json_tensor_parser_never_panics(
            data in proptest::collection::vec(prop_oneof![
                any::<f64>().prop_map(|f| json!(f)),
                any::<i64>().prop_map(|i| json!(i)),
                any::<bool>().prop_map(|b| json!(b)),
                ".{0,8}".prop_map(|s| json!(s)),
            ], 0..16),
            datatype in 0usize..7,
            shape in proptest::collection::vec(0u64..64, 0..3),
        ) {
            let header = json!({"name": "x", "datatype": TYPES[datatype], "shape": shape, "data": data});
            let mut rest: &[u8] = &[];
            if let Err(OipError(status, _)) = tensor_from_json(header.as_object().unwrap_or(&Map::new()), 0, &mut rest) {
                prop_assert_eq!(status, StatusCode::BAD_REQUEST);
            }
        }
    }
}
