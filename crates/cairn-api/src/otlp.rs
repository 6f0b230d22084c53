//! OpenTelemetry's trace export (OTLP/HTTP, `POST /v1/traces`) as MLflow 3's client and any
//! OpenTelemetry SDK send it: protobuf or JSON, optionally gzip-compressed. The messages are
//! declared here with `prost`'s derive (field numbers from `opentelemetry/proto/trace/v1`);
//! each span becomes a stored [`Span`] whose payload is the span in protobuf's JSON form, the
//! shape MLflow's `GetTrace` answers with.
use cairn_core::traces::{trace_id_from_otel, Span};
use serde_json::{json, Map, Value};

/// `ExportTraceServiceRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportTraceServiceRequest {
    /// Spans grouped by the resource that made them.
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

/// `ResourceSpans`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceSpans {
    /// The resource.
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    /// Spans by instrumentation scope.
    #[prost(message, repeated, tag = "2")]
    pub scope_spans: Vec<ScopeSpans>,
    /// Schema.
    #[prost(string, tag = "3")]
    pub schema_url: String,
}

/// `Resource`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Resource {
    /// Attributes (`service.name`, ...).
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
    /// Dropped.
    #[prost(uint32, tag = "2")]
    pub dropped_attributes_count: u32,
}

/// `ScopeSpans`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ScopeSpans {
    /// The instrumentation scope.
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    /// The spans.
    #[prost(message, repeated, tag = "2")]
    pub spans: Vec<OtelSpan>,
    /// Schema.
    #[prost(string, tag = "3")]
    pub schema_url: String,
}

/// `InstrumentationScope`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InstrumentationScope {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Version.
    #[prost(string, tag = "2")]
    pub version: String,
    /// Attributes.
    #[prost(message, repeated, tag = "3")]
    pub attributes: Vec<KeyValue>,
    /// Dropped.
    #[prost(uint32, tag = "4")]
    pub dropped_attributes_count: u32,
}

/// `Span`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OtelSpan {
    /// 16 bytes.
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    /// 8 bytes.
    #[prost(bytes = "vec", tag = "2")]
    pub span_id: Vec<u8>,
    /// W3C trace state.
    #[prost(string, tag = "3")]
    pub trace_state: String,
    /// Empty for a root span.
    #[prost(bytes = "vec", tag = "4")]
    pub parent_span_id: Vec<u8>,
    /// W3C flags.
    #[prost(fixed32, tag = "16")]
    pub flags: u32,
    /// Name.
    #[prost(string, tag = "5")]
    pub name: String,
    /// SpanKind.
    #[prost(int32, tag = "6")]
    pub kind: i32,
    /// Start, ns.
    #[prost(fixed64, tag = "7")]
    pub start_time_unix_nano: u64,
    /// End, ns.
    #[prost(fixed64, tag = "8")]
    pub end_time_unix_nano: u64,
    /// Attributes.
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<KeyValue>,
    /// Dropped.
    #[prost(uint32, tag = "10")]
    pub dropped_attributes_count: u32,
    /// Events (exceptions among them).
    #[prost(message, repeated, tag = "11")]
    pub events: Vec<Event>,
    /// Dropped.
    #[prost(uint32, tag = "12")]
    pub dropped_events_count: u32,
    /// Links.
    #[prost(message, repeated, tag = "13")]
    pub links: Vec<Link>,
    /// Dropped.
    #[prost(uint32, tag = "14")]
    pub dropped_links_count: u32,
    /// Status.
    #[prost(message, optional, tag = "15")]
    pub status: Option<Status>,
}

/// `Span.Event`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// When, ns.
    #[prost(fixed64, tag = "1")]
    pub time_unix_nano: u64,
    /// Name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Attributes.
    #[prost(message, repeated, tag = "3")]
    pub attributes: Vec<KeyValue>,
    /// Dropped.
    #[prost(uint32, tag = "4")]
    pub dropped_attributes_count: u32,
}

/// `Span.Link`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Link {
    /// Linked trace.
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    /// Linked span.
    #[prost(bytes = "vec", tag = "2")]
    pub span_id: Vec<u8>,
    /// Trace state.
    #[prost(string, tag = "3")]
    pub trace_state: String,
    /// Attributes.
    #[prost(message, repeated, tag = "4")]
    pub attributes: Vec<KeyValue>,
    /// Dropped.
    #[prost(uint32, tag = "5")]
    pub dropped_attributes_count: u32,
    /// Flags.
    #[prost(fixed32, tag = "6")]
    pub flags: u32,
}

/// `Status`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    /// Message.
    #[prost(string, tag = "2")]
    pub message: String,
    /// 0 unset, 1 ok, 2 error.
    #[prost(int32, tag = "3")]
    pub code: i32,
}

/// `KeyValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    /// Key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Value.
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

/// `AnyValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AnyValue {
    /// One of the kinds.
    #[prost(oneof = "any_value::Kind", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub kind: Option<any_value::Kind>,
}

/// `AnyValue`'s kinds.
pub mod any_value {
    /// The value.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        /// Text.
        #[prost(string, tag = "1")]
        StringValue(String),
        /// Boolean.
        #[prost(bool, tag = "2")]
        BoolValue(bool),
        /// Integer.
        #[prost(int64, tag = "3")]
        IntValue(i64),
        /// Float.
        #[prost(double, tag = "4")]
        DoubleValue(f64),
        /// List.
        #[prost(message, tag = "5")]
        ArrayValue(super::ArrayValue),
        /// Map.
        #[prost(message, tag = "6")]
        KvlistValue(super::KeyValueList),
        /// Bytes.
        #[prost(bytes = "vec", tag = "7")]
        BytesValue(Vec<u8>),
    }
}

/// `ArrayValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ArrayValue {
    /// Items.
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<AnyValue>,
}

/// `KeyValueList`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValueList {
    /// Entries.
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<KeyValue>,
}

/// Why a body is not an OTLP export.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    /// The body does not parse.
    #[error("Invalid OpenTelemetry format")]
    Malformed,
    /// It parses but holds no spans.
    #[error("Invalid OpenTelemetry format - no spans found")]
    NoSpans,
    /// A span lacks its ids.
    #[error("Cannot convert OpenTelemetry span to MLflow span: {0}")]
    BadSpan(&'static str),
}

/// Decodes a protobuf body.
pub fn decode_protobuf(body: &[u8]) -> Result<ExportTraceServiceRequest, OtlpError> {
    <ExportTraceServiceRequest as prost::Message>::decode(body).map_err(|_| OtlpError::Malformed)
}

/// Decodes a JSON body (OTLP's JSON mapping: camelCase or snake_case names, hex ids, 64-bit
/// integers as strings or numbers, enums as numbers).
pub fn decode_json(body: &[u8]) -> Result<ExportTraceServiceRequest, OtlpError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| OtlpError::Malformed)?;
    let obj = v.as_object().ok_or(OtlpError::Malformed)?;
    Ok(ExportTraceServiceRequest {
        resource_spans: list(obj, "resourceSpans", "resource_spans")?
            .iter()
            .map(json_resource_spans)
            .collect::<Result<_, _>>()?,
    })
}

fn field<'a>(obj: &'a Map<String, Value>, camel: &str, snake: &str) -> Option<&'a Value> {
    obj.get(camel)
        .or_else(|| obj.get(snake))
        .filter(|v| !v.is_null())
}

fn list<'a>(
    obj: &'a Map<String, Value>,
    camel: &str,
    snake: &str,
) -> Result<&'a [Value], OtlpError> {
    match field(obj, camel, snake) {
        None => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(OtlpError::Malformed),
    }
}

fn text(obj: &Map<String, Value>, camel: &str, snake: &str) -> Result<String, OtlpError> {
    match field(obj, camel, snake) {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(OtlpError::Malformed),
    }
}

fn uint(obj: &Map<String, Value>, camel: &str, snake: &str) -> Result<u64, OtlpError> {
    match field(obj, camel, snake) {
        None => Ok(0),
        Some(Value::Number(n)) => n.as_u64().ok_or(OtlpError::Malformed),
        Some(Value::String(s)) => s.parse().map_err(|_| OtlpError::Malformed),
        Some(_) => Err(OtlpError::Malformed),
    }
}

fn hex_bytes(obj: &Map<String, Value>, camel: &str, snake: &str) -> Result<Vec<u8>, OtlpError> {
    let s = text(obj, camel, snake)?;
    if s.len() % 2 != 0 {
        return Err(OtlpError::Malformed);
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| OtlpError::Malformed))
        .collect()
}

fn object(v: &Value) -> Result<&Map<String, Value>, OtlpError> {
    v.as_object().ok_or(OtlpError::Malformed)
}

fn json_resource_spans(v: &Value) -> Result<ResourceSpans, OtlpError> {
    let obj = object(v)?;
    Ok(ResourceSpans {
        resource: field(obj, "resource", "resource")
            .map(|r| {
                Ok::<_, OtlpError>(Resource {
                    attributes: json_attributes(object(r)?)?,
                    dropped_attributes_count: 0,
                })
            })
            .transpose()?,
        scope_spans: list(obj, "scopeSpans", "scope_spans")?
            .iter()
            .map(|s| {
                let s = object(s)?;
                Ok(ScopeSpans {
                    scope: None,
                    spans: list(s, "spans", "spans")?
                        .iter()
                        .map(json_span)
                        .collect::<Result<_, _>>()?,
                    schema_url: String::new(),
                })
            })
            .collect::<Result<_, OtlpError>>()?,
        schema_url: String::new(),
    })
}

fn json_attributes(obj: &Map<String, Value>) -> Result<Vec<KeyValue>, OtlpError> {
    list(obj, "attributes", "attributes")?
        .iter()
        .map(json_key_value)
        .collect()
}

fn json_key_value(v: &Value) -> Result<KeyValue, OtlpError> {
    let obj = object(v)?;
    Ok(KeyValue {
        key: text(obj, "key", "key")?,
        value: field(obj, "value", "value").map(json_any).transpose()?,
    })
}

fn json_any(v: &Value) -> Result<AnyValue, OtlpError> {
    use any_value::Kind;
    let obj = object(v)?;
    let kind = if let Some(s) = field(obj, "stringValue", "string_value") {
        Some(Kind::StringValue(
            s.as_str().ok_or(OtlpError::Malformed)?.to_string(),
        ))
    } else if let Some(b) = field(obj, "boolValue", "bool_value") {
        Some(Kind::BoolValue(b.as_bool().ok_or(OtlpError::Malformed)?))
    } else if field(obj, "intValue", "int_value").is_some() {
        let i = match field(obj, "intValue", "int_value") {
            Some(Value::Number(n)) => n.as_i64().ok_or(OtlpError::Malformed)?,
            Some(Value::String(s)) => s.parse().map_err(|_| OtlpError::Malformed)?,
            _ => return Err(OtlpError::Malformed),
        };
        Some(Kind::IntValue(i))
    } else if let Some(d) = field(obj, "doubleValue", "double_value") {
        Some(Kind::DoubleValue(match d {
            Value::Number(n) => n.as_f64().ok_or(OtlpError::Malformed)?,
            Value::String(s) => s.parse().map_err(|_| OtlpError::Malformed)?,
            _ => return Err(OtlpError::Malformed),
        }))
    } else if let Some(a) = field(obj, "arrayValue", "array_value") {
        Some(Kind::ArrayValue(ArrayValue {
            values: list(object(a)?, "values", "values")?
                .iter()
                .map(json_any)
                .collect::<Result<_, _>>()?,
        }))
    } else if let Some(kv) = field(obj, "kvlistValue", "kvlist_value") {
        Some(Kind::KvlistValue(KeyValueList {
            values: list(object(kv)?, "values", "values")?
                .iter()
                .map(json_key_value)
                .collect::<Result<_, _>>()?,
        }))
    } else if let Some(b) = field(obj, "bytesValue", "bytes_value") {
        use base64::Engine;
        let s = b.as_str().ok_or(OtlpError::Malformed)?;
        Some(Kind::BytesValue(
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| OtlpError::Malformed)?,
        ))
    } else {
        None
    };
    Ok(AnyValue { kind })
}

fn json_span(v: &Value) -> Result<OtelSpan, OtlpError> {
    let obj = object(v)?;
    let status = field(obj, "status", "status")
        .map(|s| {
            let s = object(s)?;
            let code = match field(s, "code", "code") {
                None => 0,
                Some(Value::Number(n)) => n.as_i64().ok_or(OtlpError::Malformed)? as i32,
                Some(Value::String(name)) => match name.as_str() {
                    "STATUS_CODE_OK" => 1,
                    "STATUS_CODE_ERROR" => 2,
                    _ => 0,
                },
                Some(_) => return Err(OtlpError::Malformed),
            };
            Ok(Status {
                message: text(s, "message", "message")?,
                code,
            })
        })
        .transpose()?;
    Ok(OtelSpan {
        trace_id: hex_bytes(obj, "traceId", "trace_id")?,
        span_id: hex_bytes(obj, "spanId", "span_id")?,
        trace_state: text(obj, "traceState", "trace_state")?,
        parent_span_id: hex_bytes(obj, "parentSpanId", "parent_span_id")?,
        flags: uint(obj, "flags", "flags")? as u32,
        name: text(obj, "name", "name")?,
        kind: uint(obj, "kind", "kind")? as i32,
        start_time_unix_nano: uint(obj, "startTimeUnixNano", "start_time_unix_nano")?,
        end_time_unix_nano: uint(obj, "endTimeUnixNano", "end_time_unix_nano")?,
        attributes: json_attributes(obj)?,
        dropped_attributes_count: 0,
        events: list(obj, "events", "events")?
            .iter()
            .map(|e| {
                let e = object(e)?;
                Ok(Event {
                    time_unix_nano: uint(e, "timeUnixNano", "time_unix_nano")?,
                    name: text(e, "name", "name")?,
                    attributes: json_attributes(e)?,
                    dropped_attributes_count: 0,
                })
            })
            .collect::<Result<_, OtlpError>>()?,
        dropped_events_count: 0,
        links: Vec::new(),
        dropped_links_count: 0,
        status,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The value as MLflow reads it back into Python (lists and maps recursively).
pub fn any_to_json(v: &AnyValue) -> Value {
    use any_value::Kind;
    match &v.kind {
        None => Value::Null,
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::IntValue(i)) => json!(i),
        Some(Kind::DoubleValue(d)) => json!(d),
        Some(Kind::ArrayValue(a)) => Value::Array(a.values.iter().map(any_to_json).collect()),
        Some(Kind::KvlistValue(kv)) => Value::Object(
            kv.values
                .iter()
                .map(|e| {
                    (
                        e.key.clone(),
                        e.value.as_ref().map(any_to_json).unwrap_or(Value::Null),
                    )
                })
                .collect(),
        ),
        Some(Kind::BytesValue(b)) => Value::String(b64(b)),
    }
}

/// `AnyValue` in protobuf's JSON form (snake_case, as MLflow's `message_to_json` writes).
fn any_proto_json(v: &AnyValue) -> Value {
    use any_value::Kind;
    match &v.kind {
        None => json!({}),
        Some(Kind::StringValue(s)) => json!({ "string_value": s }),
        Some(Kind::BoolValue(b)) => json!({ "bool_value": b }),
        Some(Kind::IntValue(i)) => json!({ "int_value": i }),
        Some(Kind::DoubleValue(d)) => json!({ "double_value": d }),
        Some(Kind::ArrayValue(a)) => {
            json!({ "array_value": { "values": a.values.iter().map(any_proto_json).collect::<Vec<_>>() } })
        }
        Some(Kind::KvlistValue(kv)) => {
            json!({ "kvlist_value": { "values": attributes_proto_json(&kv.values) } })
        }
        Some(Kind::BytesValue(b)) => json!({ "bytes_value": b64(b) }),
    }
}

fn attributes_proto_json(attrs: &[KeyValue]) -> Vec<Value> {
    attrs
        .iter()
        .map(|kv| {
            json!({
                "key": kv.key,
                "value": kv.value.as_ref().map(any_proto_json).unwrap_or_else(|| json!({})),
            })
        })
        .collect()
}

fn status_name(code: i32) -> &'static str {
    match code {
        1 => "STATUS_CODE_OK",
        2 => "STATUS_CODE_ERROR",
        _ => "STATUS_CODE_UNSET",
    }
}

/// The span in protobuf's JSON form: what `GetTrace` hands back.
fn span_proto_json(s: &OtelSpan) -> Value {
    let mut obj = Map::new();
    obj.insert("trace_id".into(), b64(&s.trace_id).into());
    obj.insert("span_id".into(), b64(&s.span_id).into());
    if !s.trace_state.is_empty() {
        obj.insert("trace_state".into(), s.trace_state.clone().into());
    }
    if !s.parent_span_id.is_empty() {
        obj.insert("parent_span_id".into(), b64(&s.parent_span_id).into());
    }
    if s.flags != 0 {
        obj.insert("flags".into(), s.flags.into());
    }
    obj.insert("name".into(), s.name.clone().into());
    if s.kind != 0 {
        let kind = match s.kind {
            1 => "SPAN_KIND_INTERNAL",
            2 => "SPAN_KIND_SERVER",
            3 => "SPAN_KIND_CLIENT",
            4 => "SPAN_KIND_PRODUCER",
            5 => "SPAN_KIND_CONSUMER",
            _ => "SPAN_KIND_UNSPECIFIED",
        };
        obj.insert("kind".into(), kind.into());
    }
    obj.insert("start_time_unix_nano".into(), s.start_time_unix_nano.into());
    if s.end_time_unix_nano != 0 {
        obj.insert("end_time_unix_nano".into(), s.end_time_unix_nano.into());
    }
    if !s.attributes.is_empty() {
        obj.insert(
            "attributes".into(),
            attributes_proto_json(&s.attributes).into(),
        );
    }
    if !s.events.is_empty() {
        let events: Vec<Value> = s
            .events
            .iter()
            .map(|e| {
                let mut ev = Map::new();
                ev.insert("time_unix_nano".into(), e.time_unix_nano.into());
                ev.insert("name".into(), e.name.clone().into());
                if !e.attributes.is_empty() {
                    ev.insert(
                        "attributes".into(),
                        attributes_proto_json(&e.attributes).into(),
                    );
                }
                Value::Object(ev)
            })
            .collect();
        obj.insert("events".into(), events.into());
    }
    let mut status = Map::new();
    if let Some(st) = &s.status {
        if !st.message.is_empty() {
            status.insert("message".into(), st.message.clone().into());
        }
        if st.code != 0 {
            status.insert("code".into(), status_name(st.code).into());
        }
    }
    obj.insert("status".into(), Value::Object(status));
    Value::Object(obj)
}

/// JSON as an OTLP value (MLflow keeps attributes as JSON and gives them back structured).
fn json_to_any(v: &Value) -> AnyValue {
    use any_value::Kind;
    let kind = match v {
        Value::Null => None,
        Value::Bool(b) => Some(Kind::BoolValue(*b)),
        Value::Number(n) => Some(match n.as_i64() {
            Some(i) => Kind::IntValue(i),
            None => Kind::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        }),
        Value::String(s) => Some(Kind::StringValue(s.clone())),
        Value::Array(items) => Some(Kind::ArrayValue(ArrayValue {
            values: items.iter().map(json_to_any).collect(),
        })),
        Value::Object(map) => Some(Kind::KvlistValue(KeyValueList {
            values: map
                .iter()
                .map(|(k, v)| KeyValue {
                    key: k.clone(),
                    value: Some(json_to_any(v)),
                })
                .collect(),
        })),
    };
    AnyValue { kind }
}

/// An attribute as `mlflow server` gives it back: a string holding JSON becomes the value it
/// encodes (MLflow's client sends JSON-encoded strings for structured inputs).
fn normalised(attr: &KeyValue) -> KeyValue {
    let value = match &attr.value {
        Some(AnyValue {
            kind: Some(any_value::Kind::StringValue(s)),
        }) => match serde_json::from_str::<Value>(s) {
            Ok(parsed) => Some(json_to_any(&parsed)),
            Err(_) => attr.value.clone(),
        },
        other => other.clone(),
    };
    KeyValue {
        key: attr.key.clone(),
        value,
    }
}

/// Writes JSON as Python's `json.dumps` does (`", "` and `": "`), which MLflow's previews use.
struct PythonStyle;

impl serde_json::ser::Formatter for PythonStyle {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
    ) -> std::io::Result<()> {
        writer.write_all(b": ")
    }
}

/// `json.dumps(value)` as Python writes it.
pub fn python_json(value: &Value) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonStyle);
    if serde::Serialize::serialize(value, &mut ser).is_err() {
        return value.to_string();
    }
    String::from_utf8(out).unwrap_or_else(|_| value.to_string())
}

/// Resource attributes that become trace tags (as `mlflow server` does: not the SDK's own).
fn resource_tags(resource: Option<&Resource>) -> Vec<cairn_core::model::KeyValue> {
    resource
        .map(|r| r.attributes.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|a| !a.key.starts_with("telemetry.sdk.") && !a.key.starts_with("mlflow."))
        .map(|a| {
            let value = match a.value.as_ref().and_then(|v| v.kind.as_ref()) {
                Some(any_value::Kind::StringValue(s)) => s.clone(),
                _ => python_json(&a.value.as_ref().map(any_to_json).unwrap_or(Value::Null)),
            };
            cairn_core::model::KeyValue::new(a.key.clone(), value)
        })
        .collect()
}

/// Converts one exported span into the stored form.
pub fn to_span(s: &OtelSpan) -> Result<Span, OtlpError> {
    if s.trace_id.is_empty() {
        return Err(OtlpError::BadSpan("trace_id is required but was empty"));
    }
    if s.span_id.is_empty() {
        return Err(OtlpError::BadSpan("span_id is required but was empty"));
    }
    let status = match s.status.as_ref().map(|st| st.code) {
        Some(1) => "OK",
        Some(2) => "ERROR",
        _ => "UNSET",
    };
    let trace_id = trace_id_from_otel(&s.trace_id);
    let mut stored = s.clone();
    stored.attributes = s
        .attributes
        .iter()
        .filter(|a| a.key != "mlflow.traceRequestId")
        .map(normalised)
        .collect();
    // The server names the trace from the OpenTelemetry id, never from what a client sent.
    stored.attributes.push(KeyValue {
        key: "mlflow.traceRequestId".into(),
        value: Some(AnyValue {
            kind: Some(any_value::Kind::StringValue(trace_id.clone())),
        }),
    });
    let text_of = |key: &str| {
        stored
            .attributes
            .iter()
            .find(|a| a.key == key)
            .and_then(|a| a.value.as_ref())
            .map(|v| python_json(&any_to_json(v)))
    };
    let span_type = match stored
        .attributes
        .iter()
        .find(|a| a.key == "mlflow.spanType")
        .and_then(|a| a.value.as_ref())
        .map(any_to_json)
    {
        Some(Value::String(t)) => Some(t),
        Some(other) => Some(other.to_string()),
        None => None,
    };
    let root = s.parent_span_id.is_empty();
    Ok(Span {
        trace_id,
        span_id: hex(&s.span_id),
        parent_span_id: (!root).then(|| hex(&s.parent_span_id)),
        name: s.name.clone(),
        span_type,
        status: status.into(),
        start_time_ns: s.start_time_unix_nano.min(i64::MAX as u64) as i64,
        end_time_ns: (s.end_time_unix_nano != 0)
            .then_some(s.end_time_unix_nano.min(i64::MAX as u64) as i64),
        content: span_proto_json(&stored).to_string(),
        inputs: if root {
            text_of("mlflow.spanInputs")
        } else {
            None
        },
        outputs: if root {
            text_of("mlflow.spanOutputs")
        } else {
            None
        },
        resource_tags: Vec::new(),
    })
}

/// Every span of an export, converted.
pub fn spans(request: &ExportTraceServiceRequest) -> Result<Vec<Span>, OtlpError> {
    if request.resource_spans.is_empty() {
        return Err(OtlpError::NoSpans);
    }
    let mut out = Vec::new();
    for r in &request.resource_spans {
        let tags = resource_tags(r.resource.as_ref());
        for span in r.scope_spans.iter().flat_map(|s| s.spans.iter()) {
            let mut span = to_span(span)?;
            span.resource_tags = tags.clone();
            out.push(span);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> OtelSpan {
        OtelSpan {
            trace_id: vec![0xab; 16],
            span_id: vec![0x01; 8],
            name: "predict".into(),
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_500_000_000,
            attributes: vec![KeyValue {
                key: "mlflow.spanInputs".into(),
                value: Some(AnyValue {
                    kind: Some(any_value::Kind::StringValue("{\"x\": 1}".into())),
                }),
            }],
            status: Some(Status {
                message: String::new(),
                code: 1,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn protobuf_and_json_bodies_decode_to_the_same_span() {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![sample()],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let bytes = prost::Message::encode_to_vec(&request);
        let from_proto = spans(&decode_protobuf(&bytes).expect("protobuf")).expect("spans");
        let body = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
            "traceId": "ab".repeat(16), "spanId": "01".repeat(8), "name": "predict",
            "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": 1700000000500000000u64,
            "attributes": [{"key": "mlflow.spanInputs", "value": {"stringValue": "{\"x\": 1}"}}],
            "status": {"code": 1}
        }]}]}]});
        let from_json =
            spans(&decode_json(body.to_string().as_bytes()).expect("json")).expect("spans");
        assert_eq!(from_proto, from_json);
        let span = &from_proto[0];
        assert_eq!(span.trace_id, format!("tr-{}", "ab".repeat(16)));
        assert_eq!(span.parent_span_id, None);
        assert_eq!(span.status, "OK");
        assert_eq!(span.inputs.as_deref(), Some("{\"x\": 1}"));
        // JSON text in an attribute comes back structured, as from `mlflow server`.
        let content: Value = serde_json::from_str(&span.content).expect("content");
        assert_eq!(
            content["attributes"][0]["value"]["kvlist_value"]["values"][0]["key"],
            "x"
        );
        assert_eq!(content["attributes"][1]["key"], "mlflow.traceRequestId");
        let content: Value = serde_json::from_str(&span.content).expect("content");
        assert_eq!(content["status"]["code"], "STATUS_CODE_OK");
        assert_eq!(
            content["start_time_unix_nano"],
            1_700_000_000_000_000_000u64
        );
    }

    #[test]
    fn bad_bodies_are_refused() {
        assert!(matches!(decode_json(b"[1]"), Err(OtlpError::Malformed)));
        assert!(matches!(
            decode_json(br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}"#),
            Err(OtlpError::Malformed)
        ));
        let empty = decode_json(b"{}").expect("empty parses");
        assert!(matches!(spans(&empty), Err(OtlpError::NoSpans)));
        let no_id = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![OtelSpan::default()],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        assert!(matches!(spans(&no_id), Err(OtlpError::BadSpan(_))));
    }
}
