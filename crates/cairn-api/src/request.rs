//! MLflow's request conventions: GET carries fields as query parameters, other methods as a
//! JSON body; int64 may arrive as a number or a string; NaN arrives as `"NaN"`.
use crate::error::ApiError;
use axum::extract::{FromRequest, Request};
use axum::http::Method;
use cairn_core::model::KeyValue;
use serde_json::{Map, Value};

/// Largest JSON request body by default (dataset profiles may reach 16 MB).
pub const DEFAULT_MAX_JSON_BYTES: usize = 32 * 1024 * 1024;

/// The request's fields, from the query string and/or the JSON body.
#[derive(Debug, Default)]
pub struct Fields {
    map: Map<String, Value>,
    /// Whether numbers and booleans count as strings: inside a list of objects (log-batch's
    /// params and tags), where `mlflow server` converts them; never for a request's own
    /// fields, which it refuses.
    lenient: bool,
    /// Size of the JSON body in bytes.
    pub body_len: usize,
}

/// Limit for JSON bodies, read from request extensions (set by the router).
#[derive(Debug, Clone, Copy)]
pub struct JsonLimit(pub usize);

/// A JSON value's type as MLflow's server (Python) names it in its messages.
fn python_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// A field of the wrong type, in `mlflow server`'s words.
fn wrong_type(name: &str, v: &Value) -> ApiError {
    ApiError::invalid(format!(
        "Invalid value {v} for parameter '{name}' supplied:  Hint: Value was of type '{}'. \
         See the API docs for more information about request parameters.",
        python_type(v)
    ))
}

/// Missing required field, in MLflow's words.
pub fn missing(name: &str) -> ApiError {
    ApiError::invalid(format!(
        "Missing value for required parameter '{name}'. See the API docs for more information \
         about request parameters."
    ))
}

/// A query string as fields: a repeated key becomes an array of its values.
pub(crate) fn query_fields(query: &str) -> Result<Map<String, Value>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|e| ApiError::bad_request(format!("Malformed query string: {e}")))?;
    let mut map = Map::new();
    for (k, v) in pairs {
        match map.get_mut(&k) {
            Some(Value::Array(items)) => items.push(Value::String(v)),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, Value::String(v)]);
            }
            None => {
                map.insert(k, Value::String(v));
            }
        }
    }
    Ok(map)
}

/// Reads a request body up to the router's JSON limit: 413 when it is larger, 400 when it
/// cannot be read whole (shorter than its `Content-Length`, cut off, timed out).
pub async fn read_limited(req: Request) -> Result<axum::body::Bytes, ApiError> {
    let limit = req
        .extensions()
        .get::<JsonLimit>()
        .map(|l| l.0)
        .unwrap_or(DEFAULT_MAX_JSON_BYTES);
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::too_large(limit));
    }
    match axum::body::to_bytes(req.into_body(), limit).await {
        Ok(bytes) => Ok(bytes),
        Err(e) if is_length_limit(&e) => Err(ApiError::too_large(limit)),
        Err(e) => Err(ApiError::bad_request(format!(
            "The request body could not be read whole: {e}"
        ))),
    }
}

/// Whether a body error is the limit being reached (not the client going away).
fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.to_string().contains("length limit exceeded") {
            return true;
        }
        source = err.source();
    }
    false
}

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let mut map = match req.uri().query() {
            Some(query) => query_fields(query)?,
            None => Map::new(),
        };
        let method = req.method().clone();
        let bytes = read_limited(req).await?;
        let body_len = bytes.len();
        if method != Method::GET && !bytes.iter().all(u8::is_ascii_whitespace) {
            let body: Value = serde_json::from_slice(&bytes).map_err(|e| {
                ApiError::bad_request(format!("Malformed JSON in request body: {e}"))
            })?;
            match body {
                Value::Object(obj) => map.extend(obj),
                other => {
                    return Err(ApiError::bad_request(format!(
                        "Request body must be a JSON object, got a {}",
                        python_type(&other)
                    )))
                }
            }
        }
        Ok(Fields {
            map,
            lenient: false,
            body_len,
        })
    }
}

impl Fields {
    /// Fields from a JSON object (for tests and internal callers).
    pub fn from_map(map: Map<String, Value>) -> Self {
        Fields {
            map,
            lenient: false,
            body_len: 0,
        }
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    /// A required string.
    pub fn str(&self, name: &str) -> Result<String, ApiError> {
        self.opt_str(name)?.ok_or_else(|| missing(name))
    }

    /// A required non-empty string.
    pub fn non_empty(&self, name: &str) -> Result<String, ApiError> {
        self.opt_str(name)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing(name))
    }

    /// An optional string (numbers and booleans only inside lists of objects, as MLflow).
    pub fn opt_str(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) if self.lenient => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) if self.lenient => Ok(Some(b.to_string())),
            Some(v) => Err(wrong_type(name, v)),
        }
    }

    /// The run id, sent as `run_id` and/or the older `run_uuid`.
    pub fn run_id(&self) -> Result<String, ApiError> {
        match self.opt_str("run_id")?.filter(|s| !s.is_empty()) {
            Some(id) => Ok(id),
            None => self
                .opt_str("run_uuid")?
                .filter(|s| !s.is_empty())
                .ok_or_else(|| missing("run_id")),
        }
    }

    /// An optional int64, as a number or a string.
    pub fn opt_i64(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => as_i64(v).map(Some).ok_or_else(|| wrong_type(name, v)),
        }
    }

    /// An optional non-negative count.
    pub fn opt_u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.opt_i64(name)? {
            Some(n) if n < 0 => Err(ApiError::invalid(format!(
                "Invalid value {n} for parameter '{name}' supplied: it must be non-negative"
            ))),
            other => Ok(other.map(|n| n as u64)),
        }
    }

    /// An optional double; `"NaN"`, `"Infinity"`, `"-Infinity"` and numeric strings accepted.
    pub fn opt_f64(&self, name: &str) -> Result<Option<f64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => as_f64(v).map(Some).ok_or_else(|| wrong_type(name, v)),
        }
    }

    /// A list of strings (a single string counts as a list of one).
    pub fn strs(&self, name: &str) -> Result<Vec<String>, ApiError> {
        match self.get(name) {
            None => Ok(vec![]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    other => Err(wrong_type(name, other)),
                })
                .collect(),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(v) => Err(wrong_type(name, v)),
        }
    }

    /// A list of objects.
    pub fn objects(&self, name: &str) -> Result<Vec<Fields>, ApiError> {
        match self.get(name) {
            None => Ok(vec![]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::Object(o) => Ok(Fields {
                        map: o.clone(),
                        lenient: true,
                        body_len: 0,
                    }),
                    other => Err(wrong_type(name, other)),
                })
                .collect(),
            Some(v) => Err(wrong_type(name, v)),
        }
    }

    /// An optional object.
    pub fn object(&self, name: &str) -> Result<Option<Fields>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Object(o)) => Ok(Some(Fields::from_map(o.clone()))),
            Some(v) => Err(wrong_type(name, v)),
        }
    }

    /// A list of `{key, value}` pairs.
    pub fn key_values(&self, name: &str) -> Result<Vec<KeyValue>, ApiError> {
        self.objects(name)?
            .into_iter()
            .map(|kv| {
                Ok(KeyValue::new(
                    kv.str("key")?,
                    kv.opt_str("value")?.unwrap_or_default(),
                ))
            })
            .collect()
    }
}

/// Reads an int64 from a number or a numeric string.
pub fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Reads a double from a number or a string such as `"NaN"`.
pub fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.trim() {
            "NaN" | "nan" => Some(f64::NAN),
            "Infinity" | "inf" => Some(f64::INFINITY),
            "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
            t => t.parse().ok(),
        },
        _ => None,
    }
}

impl Fields {
    /// The raw value of a field, if present and not null.
    pub fn map_get(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }
}

/// A typed body's field of the wrong type or missing, in MLflow's words. Found by parsing
/// again with the field's path tracked: only a refused request pays for it.
fn typed_body_error<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    first: &serde_json::Error,
) -> ApiError {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let Err(e) = serde_path_to_error::deserialize::<_, T>(&mut de) else {
        return ApiError::invalid(format!("Invalid request body: {first}"));
    };
    let inner = e.inner().to_string();
    if let Some(field) = inner
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        return missing(field);
    }
    let tree: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    let mut at = Some(&tree);
    let mut name = None;
    for segment in e.path().iter() {
        at = match segment {
            serde_path_to_error::Segment::Map { key } => {
                name = Some(key.as_str());
                at.and_then(|v| v.get(key))
            }
            serde_path_to_error::Segment::Seq { index } => at.and_then(|v| v.get(*index)),
            _ => None,
        };
    }
    match (name, at) {
        (Some(name), Some(value)) => wrong_type(name, value),
        _ => ApiError::invalid(format!("Invalid request body: {inner}")),
    }
}

/// A JSON body parsed straight into a typed request, for hot endpoints where building a
/// generic tree per request costs more than the work itself. Syntax errors are `BAD_REQUEST`,
/// wrong field types `INVALID_PARAMETER_VALUE`.
pub struct Typed<T> {
    /// The parsed body.
    pub body: T,
    /// Size of the body in bytes.
    pub body_len: usize,
}

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Typed<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_limited(req).await?;
        let body = serde_json::from_slice(&bytes).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => typed_body_error::<T>(&bytes, &e),
            _ => ApiError::bad_request(format!("Malformed JSON in request body: {e}")),
        })?;
        Ok(Typed {
            body,
            body_len: bytes.len(),
        })
    }
}
