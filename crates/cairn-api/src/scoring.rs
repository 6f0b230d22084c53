//! MLflow's scoring protocol for a single served model (`cairn serve`): `POST /invocations`
//! with `dataframe_split`, `dataframe_records`, `instances` or `inputs` (JSON) or a CSV body,
//! answered `{"predictions": ...}`; `/ping`, `/health` and `/version` beside it.
//!
//! A table feeds a one-input model as an `[N, columns]` tensor, columns in the order given;
//! a model with several inputs takes each input from the column of that name.
use crate::oip::{json_values, serving_status, ServedModel, Serving};
use crate::request::read_limited;
use axum::extract::{Request, State};
use axum::http::{header::CONTENT_TYPE, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cairn_serving::{ElementType, NamedTensor, TensorData, TensorSpec};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Instant;

/// A scoring error, as MLflow's scoring server words it.
struct ScoringError(StatusCode, &'static str, String);

impl IntoResponse for ScoringError {
    fn into_response(self) -> Response {
        let message = crate::request_id::public_message(self.0, self.2);
        (
            self.0,
            Json(json!({"error_code": self.1, "message": message})),
        )
            .into_response()
    }
}

fn bad(msg: impl Into<String>) -> ScoringError {
    ScoringError(StatusCode::BAD_REQUEST, "BAD_REQUEST", msg.into())
}

/// The routes for the model `name` of `serving`.
pub fn routes(serving: Serving, name: String) -> Router {
    Router::new()
        .route("/invocations", post(invocations))
        .route("/ping", get(|| async { "\n" }))
        .route("/health", get(|| async { "\n" }))
        .route("/version", get(|| async { crate::MLFLOW_API_VERSION }))
        .with_state((serving, Arc::new(name)))
}

/// A table: column names (if given) and rows.
struct Table {
    columns: Option<Vec<String>>,
    rows: Vec<Vec<Value>>,
}

fn parse_csv(text: &str) -> Result<Table, ScoringError> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().ok_or_else(|| bad("the CSV body is empty"))?;
    let columns: Vec<String> = header.split(',').map(|c| c.trim().to_string()).collect();
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate() {
        let row: Vec<Value> = line
            .split(',')
            .map(|cell| {
                let cell = cell.trim();
                cell.parse::<f64>()
                    .ok()
                    .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
                    .unwrap_or_else(|| Value::String(cell.to_string()))
            })
            .collect();
        if row.len() != columns.len() {
            return Err(bad(format!(
                "CSV row {} has {} values for {} columns",
                i + 1,
                row.len(),
                columns.len()
            )));
        }
        rows.push(row);
    }
    Ok(Table {
        columns: Some(columns),
        rows,
    })
}

fn table_from_split(v: &Value) -> Result<Table, ScoringError> {
    let columns = match v.get("columns") {
        None | Some(Value::Null) => None,
        Some(Value::Array(cols)) => Some(
            cols.iter()
                .map(|c| match c {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect(),
        ),
        Some(_) => return Err(bad("dataframe_split.columns must be a list")),
    };
    let rows = v
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("dataframe_split needs a 'data' list of rows"))?
        .iter()
        .enumerate()
        .map(|(i, r)| match r {
            Value::Array(cells) => Ok(cells.clone()),
            _ => Err(bad(format!("dataframe_split.data[{i}] is not a list"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Table { columns, rows })
}

fn table_from_records(v: &Value) -> Result<Table, ScoringError> {
    let records = v
        .as_array()
        .ok_or_else(|| bad("dataframe_records must be a list of objects"))?;
    let first = records
        .first()
        .and_then(Value::as_object)
        .ok_or_else(|| bad("dataframe_records must be a non-empty list of objects"))?;
    let columns: Vec<String> = first.keys().cloned().collect();
    let rows = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let r = r
                .as_object()
                .ok_or_else(|| bad(format!("dataframe_records[{i}] is not an object")))?;
            columns
                .iter()
                .map(|c| {
                    r.get(c)
                        .cloned()
                        .ok_or_else(|| bad(format!("dataframe_records[{i}] has no '{c}'")))
                })
                .collect()
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Table {
        columns: Some(columns),
        rows,
    })
}

fn convert(spec: &TensorSpec, values: &[&Value]) -> Result<TensorData, ScoringError> {
    let name = &spec.name;
    let wrong = |i: usize, v: &Value| {
        bad(format!(
            "input '{name}' value {i} ({v}) is not {}",
            spec.element_type.as_str()
        ))
    };
    let numbers = || {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| match v.as_f64() {
                Some(f) if f.is_finite() => Ok(f),
                _ => Err(wrong(i, v)),
            })
            .collect::<Result<Vec<f64>, _>>()
    };
    let integers = || {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| v.as_i64().ok_or_else(|| wrong(i, v)))
            .collect::<Result<Vec<i64>, _>>()
    };
    Ok(match spec.element_type {
        ElementType::Fp32 => {
            let values = numbers()?;
            let narrowed = values.iter().map(|&f| f as f32).collect::<Vec<f32>>();
            // A value beyond f32's range would become infinity (and the outputs null).
            if let Some(i) = narrowed.iter().position(|f| !f.is_finite()) {
                return Err(wrong(i, &values[i].into()));
            }
            TensorData::Fp32(narrowed)
        }
        ElementType::Fp64 => TensorData::Fp64(numbers()?),
        ElementType::Int64 => TensorData::Int64(integers()?),
        ElementType::Int32 => TensorData::Int32(
            integers()?
                .into_iter()
                .map(|n| {
                    i32::try_from(n)
                        .map_err(|_| bad(format!("input '{name}': {n} overflows INT32")))
                })
                .collect::<Result<_, _>>()?,
        ),
        ElementType::Bool => TensorData::Bool(
            values
                .iter()
                .enumerate()
                .map(|(i, v)| v.as_bool().ok_or_else(|| wrong(i, v)))
                .collect::<Result<_, _>>()?,
        ),
        ElementType::Bytes => TensorData::Bytes(
            values
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect(),
        ),
    })
}

fn tensors_from_table(
    specs: &[TensorSpec],
    table: &Table,
) -> Result<Vec<NamedTensor>, ScoringError> {
    let n = table.rows.len();
    if let [spec] = specs {
        let width = table.rows.first().map_or(0, Vec::len);
        if let Some(i) = table.rows.iter().position(|r| r.len() != width) {
            return Err(bad(format!(
                "row {i} has {} values, row 0 has {width}",
                table.rows[i].len()
            )));
        }
        let values: Vec<&Value> = table.rows.iter().flatten().collect();
        let shape = if spec.shape.len() == 1 {
            vec![n * width]
        } else {
            vec![n, width]
        };
        return Ok(vec![NamedTensor {
            name: spec.name.clone(),
            shape,
            data: convert(spec, &values)?,
        }]);
    }
    let columns = table
        .columns
        .as_ref()
        .ok_or_else(|| bad("a model with several inputs needs named columns"))?;
    specs
        .iter()
        .map(|spec| {
            let c = columns
                .iter()
                .position(|c| c == &spec.name)
                .ok_or_else(|| {
                    bad(format!(
                        "the model's input '{}' is not among the columns",
                        spec.name
                    ))
                })?;
            let values: Vec<&Value> = table.rows.iter().filter_map(|r| r.get(c)).collect();
            let shape = if spec.shape.len() == 1 {
                vec![n]
            } else {
                vec![n, 1]
            };
            Ok(NamedTensor {
                name: spec.name.clone(),
                shape,
                data: convert(spec, &values)?,
            })
        })
        .collect()
}

/// A nested list's shape and its leaves.
fn nested<'a>(v: &'a Value, what: &str) -> Result<(Vec<usize>, Vec<&'a Value>), ScoringError> {
    let mut shape = Vec::new();
    let mut probe = v;
    while let Value::Array(items) = probe {
        shape.push(items.len());
        match items.first() {
            Some(first) => probe = first,
            None => break,
        }
    }
    let mut leaves = Vec::new();
    fn walk<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
        match v {
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            other => out.push(other),
        }
    }
    walk(v, &mut leaves);
    if leaves.len() != shape.iter().product::<usize>() {
        return Err(bad(format!("{what} is a ragged list")));
    }
    Ok((shape, leaves))
}

fn tensors_from_instances(
    specs: &[TensorSpec],
    v: &Value,
    key: &str,
) -> Result<Vec<NamedTensor>, ScoringError> {
    match v {
        Value::Object(map) => tensors_from_map(specs, map, key),
        Value::Array(items) if items.first().is_some_and(Value::is_object) => {
            // A list of per-row objects: stack each input's rows.
            let mut map = Map::new();
            for spec in specs {
                let rows: Vec<Value> = items
                    .iter()
                    .map(|r| {
                        r.get(&spec.name)
                            .cloned()
                            .ok_or_else(|| bad(format!("a row of '{key}' has no '{}'", spec.name)))
                    })
                    .collect::<Result<_, _>>()?;
                map.insert(spec.name.clone(), Value::Array(rows));
            }
            tensors_from_map(specs, &map, key)
        }
        other => {
            let [spec] = specs else {
                return Err(bad(format!(
                    "the model has {} inputs: '{key}' must name them",
                    specs.len()
                )));
            };
            let (shape, leaves) = nested(other, key)?;
            Ok(vec![NamedTensor {
                name: spec.name.clone(),
                shape,
                data: convert(spec, &leaves)?,
            }])
        }
    }
}

fn tensors_from_map(
    specs: &[TensorSpec],
    map: &Map<String, Value>,
    key: &str,
) -> Result<Vec<NamedTensor>, ScoringError> {
    if let Some(extra) = map.keys().find(|k| !specs.iter().any(|s| &s.name == *k)) {
        return Err(bad(format!(
            "'{key}' names '{extra}', which is not an input of the model"
        )));
    }
    specs
        .iter()
        .map(|spec| {
            let v = map
                .get(&spec.name)
                .ok_or_else(|| bad(format!("'{key}' lacks the model's input '{}'", spec.name)))?;
            let (shape, leaves) = nested(v, &spec.name)?;
            Ok(NamedTensor {
                name: spec.name.clone(),
                shape,
                data: convert(spec, &leaves)?,
            })
        })
        .collect()
}

/// Rebuilds the nesting of `shape` around flat values.
fn nest(values: &[Value], shape: &[usize]) -> Value {
    match shape {
        [] => values.first().cloned().unwrap_or(Value::Null),
        [_] => Value::Array(values.to_vec()),
        [_, rest @ ..] => {
            let step = rest.iter().product::<usize>().max(1);
            Value::Array(values.chunks(step).map(|c| nest(c, rest)).collect())
        }
    }
}

/// One value per row: a scalar when each row holds one value, else the row's nesting.
fn rows_of(t: &NamedTensor) -> Vec<Value> {
    let values = json_values(&t.data);
    let rows = t.shape.first().copied().unwrap_or(1).max(1);
    let per_row = values.len() / rows;
    values
        .chunks(per_row.max(1))
        .map(|c| {
            if per_row == 1 {
                c[0].clone()
            } else {
                nest(c, &t.shape[1..])
            }
        })
        .collect()
}

async fn invocations(
    State((serving, name)): State<(Serving, Arc<String>)>,
    req: Request,
) -> Response {
    let resolved = match serving.models.resolve_now(&name, None) {
        Some(now) => Ok(now),
        None => {
            let models = serving.models.clone();
            let name = name.to_string();
            tokio::task::spawn_blocking(move || models.resolve(&name, None)).await
        }
    };
    let Ok(Ok(served)) = resolved else {
        return ScoringError(
            StatusCode::SERVICE_UNAVAILABLE,
            "INTERNAL_ERROR",
            "the model is not loaded".into(),
        )
        .into_response();
    };
    let started = Instant::now();
    // With monitoring on, the request id (the caller's `x-request-id`, or a new one) comes
    // back as `x-request-id`, for labels posted later.
    let request_id = serving.monitoring.as_ref().and_then(|m| {
        let given = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok());
        // Without one from the caller, the request's own id (its log line's) is logged.
        m.request_id(Some(
            given
                .map_or_else(crate::request_id::current, str::to_owned)
                .as_str(),
        ))
    });
    let result = score(&served, req, request_id.is_some()).await;
    let elapsed = started.elapsed();
    let status = result.as_ref().map_or_else(|e| e.0.as_u16(), |_| 200);
    serving
        .metrics
        .record(&served.name, &served.version, elapsed, status);
    match result {
        Ok((v, tensors)) => {
            let mut response = Json(v).into_response();
            if let (Some(m), Some(id), Some((inputs, outputs))) =
                (&serving.monitoring, request_id, tensors)
            {
                if let Ok(header) = HeaderValue::from_str(&id) {
                    response.headers_mut().insert(REQUEST_ID, header);
                }
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
        }
        Err(e) => e.into_response(),
    }
}

const REQUEST_ID: &str = "x-request-id";

/// MLflow's error code for a status.
fn code_of(status: StatusCode) -> &'static str {
    if status == StatusCode::BAD_REQUEST {
        "BAD_REQUEST"
    } else {
        "INTERNAL_ERROR"
    }
}

/// A parsed request body: a table, or `instances` / `inputs` under its key.
enum Body {
    Table(Table),
    Instances(Value, String),
}

impl Body {
    /// The entity rows the body sends, when the model is bound to a feature service and the
    /// body names none of its inputs: each join key with one value per row.
    fn entities(
        &self,
        served: &ServedModel,
    ) -> Option<Result<crate::bound::EntityRows, ScoringError>> {
        match self {
            Body::Table(Table {
                columns: Some(columns),
                rows,
            }) => {
                if !crate::bound::sends_entities(served, columns.iter().map(String::as_str)) {
                    return None;
                }
                Some(Ok(columns
                    .iter()
                    .enumerate()
                    .map(|(c, name)| {
                        let values = rows
                            .iter()
                            .map(|r| r.get(c).cloned().unwrap_or(Value::Null))
                            .collect();
                        (name.clone(), values)
                    })
                    .collect()))
            }
            Body::Table(_) => None,
            Body::Instances(Value::Object(map), _) => {
                if !crate::bound::sends_entities(served, map.keys().map(String::as_str)) {
                    return None;
                }
                Some(Ok(map
                    .iter()
                    .map(|(name, v)| match v {
                        Value::Array(values) => (name.clone(), values.clone()),
                        other => (name.clone(), vec![other.clone()]),
                    })
                    .collect()))
            }
            Body::Instances(Value::Array(items), key)
                if items.first().is_some_and(Value::is_object) =>
            {
                let names: Vec<&String> = items[0].as_object()?.keys().collect();
                if !crate::bound::sends_entities(served, names.iter().map(|n| n.as_str())) {
                    return None;
                }
                Some(
                    names
                        .iter()
                        .map(|name| {
                            let values = items
                                .iter()
                                .map(|r| {
                                    r.get(name.as_str()).cloned().ok_or_else(|| {
                                        bad(format!("a row of '{key}' has no '{name}'"))
                                    })
                                })
                                .collect::<Result<_, _>>()?;
                            Ok(((*name).clone(), values))
                        })
                        .collect(),
                )
            }
            Body::Instances(..) => None,
        }
    }
}

async fn score(
    served: &Arc<ServedModel>,
    req: Request,
    keep: bool,
) -> Result<(Value, Option<crate::oip::Tensors>), ScoringError> {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_ascii_lowercase();
    let bytes = read_limited(req)
        .await
        .map_err(|e| ScoringError(e.status(), "BAD_REQUEST", e.message().to_string()))?;
    let specs = &served.runner.model().signature().inputs;
    let (request, tabular) = if content_type.starts_with("text/csv") {
        let text = std::str::from_utf8(&bytes).map_err(|_| bad("the CSV body is not UTF-8"))?;
        (Body::Table(parse_csv(text)?), true)
    } else if content_type.starts_with("application/json") {
        let mut body: Map<String, Value> =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("malformed JSON: {e}")))?;
        const FORMATS: [&str; 4] = [
            "dataframe_split",
            "dataframe_records",
            "instances",
            "inputs",
        ];
        let given: Vec<&str> = FORMATS
            .into_iter()
            .filter(|f| body.contains_key(*f))
            .collect();
        match given.as_slice() {
            ["dataframe_split"] => (
                Body::Table(table_from_split(&body["dataframe_split"])?),
                true,
            ),
            ["dataframe_records"] => (
                Body::Table(table_from_records(&body["dataframe_records"])?),
                true,
            ),
            [key] => {
                let key = key.to_string();
                let value = body.remove(&key).unwrap_or(Value::Null);
                (Body::Instances(value, key), false)
            }
            _ => {
                return Err(bad(format!(
                    "the body must have exactly one of {}",
                    FORMATS.join(", ")
                )))
            }
        }
    } else {
        return Err(ScoringError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "BAD_REQUEST",
            format!(
                "content type '{content_type}' is not supported: send application/json or text/csv"
            ),
        ));
    };
    let inputs = match request.entities(served) {
        // Entity keys of the bound feature service: its values become the inputs.
        Some(entities) => crate::oip::features_for(served, entities?)
            .await
            .map_err(|e| {
                let status = e.status();
                ScoringError(status, code_of(status), e.message())
            })?,
        None => match &request {
            Body::Table(table) => tensors_from_table(specs, table)?,
            Body::Instances(value, key) => tensors_from_instances(specs, value, key)?,
        },
    };
    let kept_inputs = keep.then(|| inputs.clone());
    let outputs = served.runner.infer(inputs).await.map_err(|e| {
        let e = serving_status(e);
        let status = e.status();
        ScoringError(status, code_of(status), e.message())
    })?;
    let predictions = if tabular {
        if let [only] = outputs.as_slice() {
            Value::Array(rows_of(only))
        } else {
            let columns: Vec<(String, Vec<Value>)> = outputs
                .iter()
                .map(|t| (t.name.clone(), rows_of(t)))
                .collect();
            let n = columns.first().map_or(0, |c| c.1.len());
            Value::Array(
                (0..n)
                    .map(|i| {
                        Value::Object(
                            columns
                                .iter()
                                .map(|(name, rows)| {
                                    (name.clone(), rows.get(i).cloned().unwrap_or(Value::Null))
                                })
                                .collect(),
                        )
                    })
                    .collect(),
            )
        }
    } else if let [only] = outputs.as_slice() {
        nest(&json_values(&only.data), &only.shape)
    } else {
        Value::Object(
            outputs
                .iter()
                .map(|t| (t.name.clone(), nest(&json_values(&t.data), &t.shape)))
                .collect(),
        )
    };
    Ok((
        json!({ "predictions": predictions }),
        kept_inputs.map(|inputs| (inputs, outputs)),
    ))
}
