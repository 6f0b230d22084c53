//! MLflow 3's tracing REST API (`/api/3.0/mlflow/traces/...`, the v2 shapes under
//! `/api/2.0`), assessments, and the OTLP span endpoint `POST /v1/traces`. Bodies are
//! protobuf's JSON form as MLflow's `message_to_json` writes it (snake_case, timestamps as
//! RFC 3339 text, durations as `"1.5s"`).
use crate::error::ApiError;
use crate::otlp;
use crate::request::{missing, Fields};
use crate::{blocking, next_token, reply, ApiResult, AppState};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use cairn_core::model::KeyValue;
use cairn_core::traces::{
    Assessment, AssessmentKind, AssessmentUpdate, Span, TraceInfo, TraceSelection, TraceState,
};
use serde_json::{json, Map, Value};

/// The header naming the experiment OTLP spans go to.
pub const EXPERIMENT_HEADER: &str = "x-mlflow-experiment-id";
/// The header naming a run the finished traces of an OTLP export are linked to.
pub const RUN_HEADER: &str = "x-mlflow-run-id";

/// The trace routes of one API version, to be nested under `/api/{2,3}.0` and `/ajax-api`:
/// `POST /mlflow/traces` starts a trace in that version's shape.
pub fn routes(v3: bool) -> Router<AppState> {
    let start = if v3 {
        post(start_trace_v3)
    } else {
        post(start_trace_v2)
    };
    let router = Router::new()
        .route("/mlflow/get-trace-artifact", get(get_trace_artifact))
        .route("/mlflow/traces", start.get(search_traces_v2))
        .route("/mlflow/traces/search", post(search_traces_v3))
        .route("/mlflow/traces/get", get(get_trace))
        .route("/mlflow/traces/batchGet", get(batch_get_traces))
        .route("/mlflow/traces/batchGetInfos", post(batch_get_infos))
        .route("/mlflow/traces/delete-traces", post(delete_traces))
        .route("/mlflow/traces/link-to-run", post(link_to_run))
        .route(
            "/mlflow/traces/{trace_id}",
            get(get_trace_info_v3).patch(end_trace_v2),
        )
        .route("/mlflow/traces/{trace_id}/info", get(get_trace_info_v2))
        .route(
            "/mlflow/traces/{trace_id}/tags",
            axum::routing::patch(set_tag).delete(delete_tag),
        )
        .route(
            "/mlflow/traces/{trace_id}/assessments",
            post(create_assessment),
        )
        .route(
            "/mlflow/traces/{trace_id}/assessments/{assessment_id}",
            get(get_assessment)
                .patch(update_assessment)
                .delete(delete_assessment),
        );
    if v3 {
        router
            .route(
                "/mlflow/traces/metrics",
                post(crate::trace_analytics::query_metrics),
            )
            .route(
                "/mlflow/traces/calculate-filter-correlation",
                post(crate::trace_analytics::filter_correlation),
            )
    } else {
        router
    }
}

// ---- time ----

use cairn_core::dates::{civil_from_days, days_from_civil};

/// Milliseconds as protobuf's JSON `Timestamp` (`2025-04-15T08:49:18.699Z`).
pub fn timestamp_json(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    let base = format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
        t / 3600,
        t % 3600 / 60,
        t % 60
    );
    if millis == 0 {
        format!("{base}Z")
    } else {
        format!("{base}.{millis:03}Z")
    }
}

/// Reads protobuf's JSON `Timestamp` (RFC 3339, any fraction, `Z` or an offset) as ms.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded = format!("{:0<3}", &frac[..digits.min(3)]);
        millis = padded.parse::<i64>().ok()?;
        rest = &frac[digits..];
    }
    let offset_secs = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) => {
            let hh: i64 = o.get(1..3)?.parse().ok()?;
            let mm: i64 = o.get(4..6)?.parse().ok()?;
            let sign = if o.starts_with('-') { -1 } else { 1 };
            sign * (hh * 3600 + mm * 60)
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset_secs;
    Some(secs * 1000 + millis)
}

/// Milliseconds as protobuf's JSON `Duration` (`"1.500s"`).
pub fn duration_json(ms: i64) -> String {
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        let sign = if ms < 0 { "-" } else { "" };
        let abs = ms.unsigned_abs();
        format!("{sign}{}.{:03}s", abs / 1000, abs % 1000)
    }
}

/// Reads protobuf's JSON `Duration` as ms.
pub fn parse_duration(s: &str) -> Option<i64> {
    let secs: f64 = s.strip_suffix('s')?.parse().ok()?;
    secs.is_finite().then(|| (secs * 1000.0).round() as i64)
}

// ---- wire shapes ----

fn list_of(kvs: &[KeyValue]) -> Value {
    kvs.iter()
        .map(|kv| json!({"key": kv.key, "value": kv.value}))
        .collect()
}

fn assessment_json(a: &Assessment) -> Value {
    let mut o = Map::new();
    o.insert("assessment_id".into(), a.assessment_id.clone().into());
    o.insert("assessment_name".into(), a.name.clone().into());
    o.insert("trace_id".into(), a.trace_id.clone().into());
    if let Some(span) = &a.span_id {
        o.insert("span_id".into(), span.clone().into());
    }
    o.insert(
        "source".into(),
        json!({"source_type": a.source_type, "source_id": a.source_id}),
    );
    o.insert("create_time".into(), timestamp_json(a.create_time).into());
    o.insert(
        "last_update_time".into(),
        timestamp_json(a.last_update_time).into(),
    );
    let payload: Value = serde_json::from_str(&a.payload).unwrap_or_else(|_| json!({}));
    o.insert(a.kind.as_str().into(), payload);
    if let Some(r) = &a.rationale {
        o.insert("rationale".into(), r.clone().into());
    }
    if let Some(m) = a
        .metadata
        .as_deref()
        .and_then(|m| serde_json::from_str::<Value>(m).ok())
    {
        o.insert("metadata".into(), m);
    }
    if let Some(run) = &a.run_id {
        o.insert("run_id".into(), run.clone().into());
    }
    if let Some(over) = &a.overrides {
        o.insert("overrides".into(), over.clone().into());
    }
    o.insert("valid".into(), a.valid.into());
    Value::Object(o)
}

/// A trace info in MLflow 3's shape, as a JSON value (one writer: [`TraceInfoWire`]).
pub fn trace_info_json(t: &TraceInfo) -> Value {
    serde_json::to_value(TraceInfoWire(t)).unwrap_or(Value::Null)
}

/// A trace info in MLflow 3's shape, serialised straight to the answer (a search writes a
/// hundred of them; building `Value` trees first cost most of its time).
pub struct TraceInfoWire<'a>(pub &'a TraceInfo);

struct StringMap<'a>(&'a [KeyValue]);

impl serde::Serialize for StringMap<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = ser.serialize_map(Some(self.0.len()))?;
        for kv in self.0 {
            m.serialize_entry(&kv.key, &kv.value)?;
        }
        m.end()
    }
}

struct Location<'a>(&'a str);

impl serde::Serialize for Location<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct Experiment<'a>(&'a str);
        impl serde::Serialize for Experiment<'_> {
            fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap;
                let mut m = ser.serialize_map(Some(1))?;
                m.serialize_entry("experiment_id", self.0)?;
                m.end()
            }
        }
        let mut m = ser.serialize_map(Some(2))?;
        m.serialize_entry("type", "MLFLOW_EXPERIMENT")?;
        m.serialize_entry("mlflow_experiment", &Experiment(self.0))?;
        m.end()
    }
}

impl serde::Serialize for TraceInfoWire<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let t = self.0;
        let mut m = ser.serialize_map(None)?;
        m.serialize_entry("trace_id", &t.trace_id)?;
        if let Some(c) = &t.client_request_id {
            m.serialize_entry("client_request_id", c)?;
        }
        m.serialize_entry("trace_location", &Location(&t.experiment_id))?;
        if let Some(p) = &t.request_preview {
            m.serialize_entry("request_preview", p)?;
        }
        if let Some(p) = &t.response_preview {
            m.serialize_entry("response_preview", p)?;
        }
        m.serialize_entry("request_time", &timestamp_json(t.request_time))?;
        if let Some(d) = t.execution_duration {
            m.serialize_entry("execution_duration", &duration_json(d))?;
        }
        m.serialize_entry("state", t.state.as_str())?;
        if !t.metadata.is_empty() {
            m.serialize_entry("trace_metadata", &StringMap(&t.metadata))?;
        }
        if !t.assessments.is_empty() {
            let assessments: Vec<Value> = t.assessments.iter().map(assessment_json).collect();
            m.serialize_entry("assessments", &assessments)?;
        }
        if !t.tags.is_empty() {
            m.serialize_entry("tags", &StringMap(&t.tags))?;
        }
        m.end()
    }
}

fn v2_status(state: TraceState) -> &'static str {
    match state {
        TraceState::Unspecified => "TRACE_STATUS_UNSPECIFIED",
        other => other.as_str(),
    }
}

/// A trace info in MLflow 2's shape.
fn trace_info_v2_json(t: &TraceInfo) -> Value {
    let mut o = Map::new();
    o.insert("request_id".into(), t.trace_id.clone().into());
    o.insert("experiment_id".into(), t.experiment_id.clone().into());
    o.insert("timestamp_ms".into(), t.request_time.into());
    if let Some(d) = t.execution_duration {
        o.insert("execution_time_ms".into(), d.into());
    }
    o.insert("status".into(), v2_status(t.state).into());
    if !t.metadata.is_empty() {
        o.insert("request_metadata".into(), list_of(&t.metadata));
    }
    if !t.tags.is_empty() {
        o.insert("tags".into(), list_of(&t.tags));
    }
    Value::Object(o)
}

fn trace_json(info: &TraceInfo, spans: &[Span]) -> Value {
    let spans: Vec<Value> = spans
        .iter()
        .map(|s| serde_json::from_str(&s.content).unwrap_or_else(|_| json!({})))
        .collect();
    json!({"trace_info": trace_info_json(info), "spans": spans})
}

// ---- reading requests ----

/// A string-to-string map (`{"k": "v"}`), as protobuf maps arrive.
fn string_map(f: &Fields, name: &str) -> Result<Vec<KeyValue>, ApiError> {
    match f.map_get(name) {
        None => Ok(Vec::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok(KeyValue::new(k.clone(), s.clone())),
                other => Err(ApiError::invalid(format!(
                    "Invalid value {other} for key '{k}' of parameter '{name}': expected a string"
                ))),
            })
            .collect(),
        Some(other) => Err(ApiError::invalid(format!(
            "Invalid value {other} for parameter '{name}' supplied: expected an object"
        ))),
    }
}

fn timestamp_field(f: &Fields, name: &str) -> Result<Option<i64>, ApiError> {
    match f.opt_str(name)? {
        None => Ok(None),
        Some(s) => parse_timestamp(&s).map(Some).ok_or_else(|| {
            ApiError::invalid(format!(
                "Invalid value '{s}' for parameter '{name}': expected an RFC 3339 timestamp"
            ))
        }),
    }
}

fn experiment_of_location(location: &Fields) -> Result<String, ApiError> {
    let kind = location.opt_str("type")?.unwrap_or_default();
    if !kind.is_empty() && kind != "MLFLOW_EXPERIMENT" {
        return Err(ApiError::invalid(format!(
            "Unsupported trace location type '{kind}': this server keeps traces in MLflow \
             experiments"
        )));
    }
    location
        .object("mlflow_experiment")?
        .ok_or_else(|| missing("trace_location.mlflow_experiment"))?
        .non_empty("experiment_id")
}

fn trace_info_from(f: &Fields) -> Result<TraceInfo, ApiError> {
    let trace_id = f.non_empty("trace_id")?;
    let location = f
        .object("trace_location")?
        .ok_or_else(|| missing("trace_location"))?;
    let assessments = f
        .objects("assessments")?
        .iter()
        .map(|a| assessment_from(a, Some(&trace_id)))
        .collect::<Result<_, _>>()?;
    Ok(TraceInfo {
        experiment_id: experiment_of_location(&location)?,
        request_time: timestamp_field(f, "request_time")?.unwrap_or_else(cairn_core::now_millis),
        execution_duration: match f.opt_str("execution_duration")? {
            None => None,
            Some(s) => Some(parse_duration(&s).ok_or_else(|| {
                ApiError::invalid(format!(
                    "Invalid value '{s}' for parameter 'execution_duration': expected a \
                     duration such as '1.5s'"
                ))
            })?),
        },
        state: TraceState::parse(&f.opt_str("state")?.unwrap_or_default())?,
        client_request_id: f.opt_str("client_request_id")?,
        request_preview: f.opt_str("request_preview")?,
        response_preview: f.opt_str("response_preview")?,
        metadata: string_map(f, "trace_metadata")?,
        tags: string_map(f, "tags")?,
        assessments,
        trace_id,
    })
}

fn payload_of(f: &Fields) -> Result<Option<(AssessmentKind, String)>, ApiError> {
    let feedback = f.map_get("feedback");
    let expectation = f.map_get("expectation");
    match (feedback, expectation) {
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "An assessment is either feedback or an expectation, not both",
        )),
        (Some(v @ Value::Object(_)), None) => Ok(Some((AssessmentKind::Feedback, v.to_string()))),
        (None, Some(v @ Value::Object(_))) => {
            Ok(Some((AssessmentKind::Expectation, v.to_string())))
        }
        (Some(v), None) | (None, Some(v)) => Err(ApiError::invalid(format!(
            "Invalid value {v} for the assessment's feedback or expectation: expected an object"
        ))),
        (None, None) => Ok(None),
    }
}

fn assessment_from(f: &Fields, trace_id: Option<&str>) -> Result<Assessment, ApiError> {
    let (kind, payload) = payload_of(f)?.ok_or_else(|| {
        ApiError::invalid("An assessment must have either a feedback or an expectation value")
    })?;
    let source = f.object("source")?;
    let source_type = match &source {
        Some(s) => s.opt_str("source_type")?.unwrap_or_default(),
        None => String::new(),
    };
    let source_type = if source_type.is_empty() {
        "SOURCE_TYPE_UNSPECIFIED".to_string()
    } else {
        source_type
    };
    let source_id = match &source {
        Some(s) => s.opt_str("source_id")?.unwrap_or_default(),
        None => String::new(),
    };
    let metadata = match f.map_get("metadata") {
        None => None,
        Some(v @ Value::Object(_)) => Some(v.to_string()),
        Some(v) => {
            return Err(ApiError::invalid(format!(
                "Invalid value {v} for parameter 'metadata' supplied: expected an object"
            )))
        }
    };
    Ok(Assessment {
        assessment_id: f.opt_str("assessment_id")?.unwrap_or_default(),
        trace_id: match trace_id {
            Some(t) => t.to_string(),
            None => f.opt_str("trace_id")?.unwrap_or_default(),
        },
        name: f.opt_str("assessment_name")?.unwrap_or_default(),
        kind,
        payload,
        source_type,
        source_id,
        create_time: timestamp_field(f, "create_time")?.unwrap_or(0),
        last_update_time: timestamp_field(f, "last_update_time")?.unwrap_or(0),
        span_id: f.opt_str("span_id")?.filter(|s| !s.is_empty()),
        run_id: f.opt_str("run_id")?.filter(|s| !s.is_empty()),
        rationale: f.opt_str("rationale")?,
        metadata,
        overrides: f.opt_str("overrides")?.filter(|s| !s.is_empty()),
        valid: true,
    })
}

fn bool_field(f: &Fields, name: &str) -> Result<bool, ApiError> {
    match f.map_get(name) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(ApiError::invalid(format!(
            "Invalid value {v} for parameter '{name}' supplied: expected a boolean"
        ))),
    }
}

// ---- handlers ----

async fn start_trace_v3(State(s): State<AppState>, f: Fields) -> ApiResult {
    let trace = f.object("trace")?.ok_or_else(|| missing("trace"))?;
    let info = trace
        .object("trace_info")?
        .ok_or_else(|| missing("trace.trace_info"))?;
    let info = trace_info_from(&info)?;
    let stored = blocking(move || s.traces.start_trace(info)).await?;
    reply(json!({"trace": {"trace_info": trace_info_json(&stored)}}))
}

async fn start_trace_v2(State(s): State<AppState>, f: Fields) -> ApiResult {
    let experiment_id = f.non_empty("experiment_id")?;
    let timestamp = f
        .opt_i64("timestamp_ms")?
        .unwrap_or_else(cairn_core::now_millis);
    let metadata = f.key_values("request_metadata")?;
    let tags = f.key_values("tags")?;
    let stored = blocking(move || {
        s.traces
            .start_trace_v2(&experiment_id, timestamp, metadata, tags)
    })
    .await?;
    reply(json!({"trace_info": trace_info_v2_json(&stored)}))
}

async fn end_trace_v2(
    State(s): State<AppState>,
    Path(trace_id): Path<String>,
    f: Fields,
) -> ApiResult {
    let timestamp = f
        .opt_i64("timestamp_ms")?
        .unwrap_or_else(cairn_core::now_millis);
    let state = TraceState::parse(&f.opt_str("status")?.unwrap_or_default())?;
    let metadata = f.key_values("request_metadata")?;
    let tags = f.key_values("tags")?;
    let stored = blocking(move || {
        s.traces
            .end_trace_v2(&trace_id, timestamp, state, metadata, tags)
    })
    .await?;
    reply(json!({"trace_info": trace_info_v2_json(&stored)}))
}

async fn get_trace_info_v3(State(s): State<AppState>, Path(trace_id): Path<String>) -> ApiResult {
    let info = blocking(move || s.traces.get_trace_info(&trace_id)).await?;
    reply(json!({"trace": {"trace_info": trace_info_json(&info)}}))
}

async fn get_trace_info_v2(State(s): State<AppState>, Path(trace_id): Path<String>) -> ApiResult {
    let info = blocking(move || s.traces.get_trace_info(&trace_id)).await?;
    reply(json!({"trace_info": trace_info_v2_json(&info)}))
}

async fn get_trace(State(s): State<AppState>, f: Fields) -> ApiResult {
    let trace_id = f.non_empty("trace_id")?;
    let allow_partial = bool_field(&f, "allow_partial")?;
    let (info, spans) = blocking(move || s.traces.get_trace(&trace_id)).await?;
    if spans.is_empty() && !allow_partial {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "RESOURCE_DOES_NOT_EXIST",
            format!(
                "Trace with ID {} is not fully exported yet, please try again later.",
                info.trace_id
            ),
        ));
    }
    reply(json!({"trace": trace_json(&info, &spans)}))
}

async fn batch_get_traces(State(s): State<AppState>, f: Fields) -> ApiResult {
    let ids = f.strs("trace_ids")?;
    let traces = blocking(move || {
        let infos = s.traces.get_trace_infos(&ids)?;
        infos
            .into_iter()
            .map(|info| {
                let (info, spans) = s.traces.get_trace(&info.trace_id)?;
                Ok(trace_json(&info, &spans))
            })
            .collect::<cairn_core::Result<Vec<Value>>>()
    })
    .await?;
    reply(json!({ "traces": traces }))
}

/// A stored span (protobuf JSON) in the form MLflow's `Span.to_dict` writes and its UI reads
/// from `traces.json`: attributes as JSON text, event attributes as values, links empty.
fn span_dict(content: &str) -> Value {
    use crate::trace_analytics::attribute_value;
    let span: Value = serde_json::from_str(content).unwrap_or_else(|_| json!({}));
    let attributes = |list: &Value, encode: bool| -> Map<String, Value> {
        list.as_array()
            .into_iter()
            .flatten()
            .filter_map(|kv| {
                let key = kv["key"].as_str()?.to_string();
                let value = attribute_value(&kv["value"]);
                Some(if encode {
                    (key, Value::String(otlp::python_json(&value)))
                } else {
                    (key, value)
                })
            })
            .collect()
    };
    let events: Vec<Value> = span["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            json!({
                "name": e["name"],
                "time_unix_nano": e["time_unix_nano"],
                "attributes": attributes(&e["attributes"], false),
            })
        })
        .collect();
    json!({
        "trace_id": span["trace_id"],
        "span_id": span["span_id"],
        "parent_span_id": span["parent_span_id"],
        "name": span["name"],
        "start_time_unix_nano": span["start_time_unix_nano"],
        "end_time_unix_nano": span["end_time_unix_nano"],
        "events": events,
        "status": {
            "code": span["status"]["code"].as_str().unwrap_or("STATUS_CODE_UNSET"),
            "message": span["status"]["message"].as_str().unwrap_or(""),
        },
        "attributes": attributes(&span["attributes"], true),
        "links": [],
    })
}

/// `GET /ajax-api/{2,3}.0/mlflow/get-trace-artifact?request_id=`: a trace's spans as the
/// `traces.json` file MLflow's UI downloads. Attachments (`path=`) are not kept by Cairn.
async fn get_trace_artifact(State(s): State<AppState>, f: Fields) -> Result<Response, ApiError> {
    let id = f
        .opt_str("request_id")?
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request("Request must include the \"request_id\" query parameter.")
        })?;
    if let Some(path) = f.opt_str("path")? {
        return Err(ApiError::from(cairn_core::Error::NotFound(format!(
            "Trace '{id}' has no attachment '{path}': Cairn keeps no trace attachments"
        ))));
    }
    let (_, spans) = blocking(move || s.traces.get_trace(&id)).await?;
    let body =
        json!({ "spans": spans.iter().map(|sp| span_dict(&sp.content)).collect::<Vec<_>>() });
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "text/plain"),
            (
                axum::http::header::CONTENT_DISPOSITION,
                "attachment; filename=traces.json",
            ),
            (axum::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body.to_string(),
    )
        .into_response())
}

async fn batch_get_infos(State(s): State<AppState>, f: Fields) -> ApiResult {
    let ids = f.strs("trace_ids")?;
    let infos = blocking(move || s.traces.get_trace_infos(&ids)).await?;
    reply(json!({"trace_infos": infos.iter().map(trace_info_json).collect::<Vec<_>>()}))
}

async fn search_traces_v3(State(s): State<AppState>, f: Fields) -> Result<Response, ApiError> {
    let experiment_ids = f
        .objects("locations")?
        .iter()
        .map(experiment_of_location)
        .collect::<Result<Vec<_>, _>>()?;
    let filter = f.opt_str("filter")?.unwrap_or_default();
    let order_by = f.strs("order_by")?;
    let max = f.opt_u64("max_results")?;
    let token = f.opt_str("page_token")?.unwrap_or_default();
    let page = blocking(move || {
        s.traces
            .search_traces(&experiment_ids, &filter, &order_by, max, &token)
    })
    .await?;
    #[derive(serde::Serialize)]
    struct Answer<'a> {
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        traces: &'a [TraceInfoWire<'a>],
        #[serde(skip_serializing_if = "Option::is_none")]
        next_page_token: Option<String>,
    }
    let wire: Vec<TraceInfoWire<'_>> = page.items.iter().map(TraceInfoWire).collect();
    let answer = Answer {
        traces: &wire,
        next_page_token: page.next_offset.map(cairn_core::search::page_token),
    };
    Ok(axum::Json(answer).into_response())
}

async fn search_traces_v2(State(s): State<AppState>, f: Fields) -> ApiResult {
    let experiment_ids = f.strs("experiment_ids")?;
    let filter = f.opt_str("filter")?.unwrap_or_default();
    let order_by = f.strs("order_by")?;
    let max = f.opt_u64("max_results")?;
    let token = f.opt_str("page_token")?.unwrap_or_default();
    let page = blocking(move || {
        s.traces
            .search_traces(&experiment_ids, &filter, &order_by, max, &token)
    })
    .await?;
    let mut obj = Map::new();
    if !page.items.is_empty() {
        obj.insert(
            "traces".into(),
            page.items.iter().map(trace_info_v2_json).collect(),
        );
    }
    next_token(&mut obj, page.next_offset);
    reply(Value::Object(obj))
}

async fn set_tag(State(s): State<AppState>, Path(trace_id): Path<String>, f: Fields) -> ApiResult {
    let key = f.non_empty("key")?;
    let value = f.str("value")?;
    blocking(move || s.traces.set_tag(&trace_id, &key, &value)).await?;
    reply(json!({}))
}

async fn delete_tag(
    State(s): State<AppState>,
    Path(trace_id): Path<String>,
    f: Fields,
) -> ApiResult {
    let key = f.non_empty("key")?;
    blocking(move || s.traces.delete_tag(&trace_id, &key)).await?;
    reply(json!({}))
}

async fn delete_traces(State(s): State<AppState>, f: Fields) -> ApiResult {
    let experiment_id = f.non_empty("experiment_id")?;
    let max_timestamp = f.opt_i64("max_timestamp_millis")?;
    let max_traces = f.opt_u64("max_traces")?;
    let mut ids = f.strs("request_ids")?;
    ids.extend(f.strs("trace_ids")?);
    let selection = match (max_timestamp, ids.is_empty()) {
        (Some(_), false) => {
            return Err(ApiError::invalid(
                "Only one of `max_timestamp_millis` and `trace_ids` can be specified.",
            ))
        }
        (None, true) => {
            return Err(ApiError::invalid(
                "Either `max_timestamp_millis` or `trace_ids` must be specified.",
            ))
        }
        (Some(max_timestamp_millis), true) => TraceSelection::Older {
            max_timestamp_millis,
            max_traces,
        },
        (None, false) => {
            if max_traces.is_some() {
                return Err(ApiError::invalid(
                    "`max_traces` can't be specified if `trace_ids` is specified.",
                ));
            }
            TraceSelection::Ids(ids)
        }
    };
    let deleted = blocking(move || s.traces.delete_traces(&experiment_id, selection)).await?;
    reply(json!({ "traces_deleted": deleted }))
}

async fn link_to_run(State(s): State<AppState>, f: Fields) -> ApiResult {
    let run_id = f.non_empty("run_id")?;
    let ids = f.strs("trace_ids")?;
    blocking(move || s.traces.link_traces_to_run(&ids, &run_id)).await?;
    reply(json!({}))
}

async fn create_assessment(
    State(s): State<AppState>,
    Path(trace_id): Path<String>,
    f: Fields,
) -> ApiResult {
    let body = f
        .object("assessment")?
        .ok_or_else(|| missing("assessment"))?;
    let a = assessment_from(&body, Some(&trace_id))?;
    let stored = blocking(move || s.traces.create_assessment(a)).await?;
    reply(json!({"assessment": assessment_json(&stored)}))
}

async fn get_assessment(
    State(s): State<AppState>,
    Path((trace_id, id)): Path<(String, String)>,
) -> ApiResult {
    let a = blocking(move || s.traces.get_assessment(&trace_id, &id)).await?;
    reply(json!({"assessment": assessment_json(&a)}))
}

/// `assessmentName` or `assessment_name` as the snake_case field name.
fn snake(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 4);
    for c in path.trim().chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

async fn update_assessment(
    State(s): State<AppState>,
    Path((trace_id, id)): Path<(String, String)>,
    f: Fields,
) -> ApiResult {
    let body = f
        .object("assessment")?
        .ok_or_else(|| missing("assessment"))?;
    let mask: Vec<String> = match f.map_get("update_mask") {
        None => Vec::new(),
        Some(Value::String(m)) => m.split(',').map(snake).filter(|p| !p.is_empty()).collect(),
        Some(Value::Object(o)) => match o.get("paths") {
            Some(Value::Array(p)) => p.iter().filter_map(|v| v.as_str()).map(snake).collect(),
            _ => Vec::new(),
        },
        Some(v) => {
            return Err(ApiError::invalid(format!(
                "Invalid value {v} for parameter 'update_mask' supplied"
            )))
        }
    };
    let wants = |field: &str| mask.is_empty() || mask.iter().any(|m| m == field);
    let mut update = AssessmentUpdate::default();
    for field in &mask {
        if ![
            "assessment_name",
            "feedback",
            "expectation",
            "rationale",
            "metadata",
        ]
        .contains(&field.as_str())
        {
            return Err(ApiError::invalid(format!(
                "Invalid field in update_mask: '{field}'. Updatable fields are \
                 assessment_name, feedback, expectation, rationale and metadata"
            )));
        }
    }
    if wants("assessment_name") {
        update.name = body.opt_str("assessment_name")?.filter(|n| !n.is_empty());
    }
    if wants("feedback") || wants("expectation") {
        update.payload = payload_of(&body)?;
    }
    if wants("rationale") {
        update.rationale = body.opt_str("rationale")?;
    }
    if wants("metadata") {
        update.metadata = match body.map_get("metadata") {
            Some(v @ Value::Object(_)) => Some(v.to_string()),
            _ => None,
        };
    }
    let a = blocking(move || s.traces.update_assessment(&trace_id, &id, update)).await?;
    reply(json!({"assessment": assessment_json(&a)}))
}

async fn delete_assessment(
    State(s): State<AppState>,
    Path((trace_id, id)): Path<(String, String)>,
    // MLflow's client sends a JSON body with DELETE: reading it keeps the connection usable.
    _body: Fields,
) -> ApiResult {
    blocking(move || s.traces.delete_assessment(&trace_id, &id)).await?;
    reply(json!({}))
}

/// OTLP's answer to a bad request: `mlflow server` answers FastAPI's `{"detail": ...}`.
fn otlp_refusal(status: StatusCode, detail: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "detail": detail.into() }))).into_response()
}

fn gunzip(body: &[u8], limit: usize) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    let mut decoder = flate2::read::GzDecoder::new(body).take(limit as u64 + 1);
    decoder.read_to_end(&mut out).ok()?;
    (out.len() <= limit).then_some(out)
}

/// `POST /v1/traces`: an OTLP/HTTP trace export into the experiment its header names.
pub async fn export_spans(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let Some(experiment_id) = header(EXPERIMENT_HEADER) else {
        return otlp_refusal(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Missing required header '{EXPERIMENT_HEADER}'"),
        );
    };
    let content_type = header("content-type").unwrap_or_default();
    let media = content_type.split(';').next().unwrap_or_default().trim();
    if media != "application/x-protobuf" && media != "application/json" {
        return otlp_refusal(
            StatusCode::BAD_REQUEST,
            format!(
                "Invalid Content-Type: {content_type}. Expected: application/x-protobuf or \
                 application/json"
            ),
        );
    }
    let body = match header("content-encoding").map(|e| e.to_ascii_lowercase()) {
        None => body.to_vec(),
        Some(e) if e == "identity" => body.to_vec(),
        Some(e) if e == "gzip" => match gunzip(&body, crate::DEFAULT_MAX_JSON_BYTES) {
            Some(b) => b,
            None => return otlp_refusal(StatusCode::BAD_REQUEST, "Invalid gzip body"),
        },
        Some(e) => {
            return otlp_refusal(
                StatusCode::BAD_REQUEST,
                format!("Unsupported Content-Encoding: {e}"),
            )
        }
    };
    let decoded = if media == "application/json" {
        otlp::decode_json(&body)
    } else {
        otlp::decode_protobuf(&body)
    };
    let spans = match decoded.and_then(|r| otlp::spans(&r)) {
        Ok(spans) => spans,
        Err(e @ otlp::OtlpError::BadSpan(_)) => {
            return otlp_refusal(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
        }
        Err(e) => return otlp_refusal(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let run_id = header(RUN_HEADER).filter(|r| !r.is_empty());
    let finished: Vec<String> = spans
        .iter()
        .filter(|sp| sp.parent_span_id.is_none())
        .map(|sp| sp.trace_id.clone())
        .collect();
    let result = blocking(move || {
        s.traces.log_spans(&experiment_id, spans)?;
        if let Some(run) = run_id {
            if !finished.is_empty() {
                s.traces.link_traces_to_run(&finished, &run)?;
            }
        }
        Ok(())
    })
    .await;
    match result {
        // An empty `ExportTraceServiceResponse`: zero bytes of protobuf.
        Ok(()) => (
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, "application/x-protobuf")],
            Vec::<u8>::new(),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_as_protobuf_writes_them() {
        assert_eq!(timestamp_json(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            timestamp_json(1_744_706_958_699),
            "2025-04-15T08:49:18.699Z"
        );
        assert_eq!(
            parse_timestamp("2025-04-15T08:49:18.699Z"),
            Some(1_744_706_958_699)
        );
        assert_eq!(
            parse_timestamp("2025-04-15T08:49:18.699123456Z"),
            Some(1_744_706_958_699)
        );
        assert_eq!(
            parse_timestamp("2025-04-15T10:49:18+02:00"),
            Some(1_744_706_958_000)
        );
        assert_eq!(parse_timestamp("2025-04-15"), None);
        assert_eq!(parse_timestamp("2025-13-15T08:49:18Z"), None);
    }

    #[test]
    fn durations_read_and_write_seconds() {
        assert_eq!(duration_json(1500), "1.500s");
        assert_eq!(duration_json(2000), "2s");
        assert_eq!(parse_duration("1.5s"), Some(1500));
        assert_eq!(parse_duration("0.000001s"), Some(0));
        assert_eq!(parse_duration("12"), None);
    }
}
