//! `POST /api/3.0/mlflow/traces/metrics` and `.../traces/calculate-filter-correlation`: the
//! wire side of `cairn_core::trace_metrics` (request fields, answers as MLflow 3.17 writes
//! them) and the [`PayloadReader`] that reads token usage, span costs and assessment values
//! out of the stored JSON.
use crate::request::{missing, Fields};
use crate::{blocking, reply, ApiResult, AppState};
use axum::extract::State;
use cairn_core::trace_metrics::{
    Aggregation, MetricView, MetricsRequest, PayloadReader, SpanFacts, MAX_RESULTS,
};
use serde_json::{json, Map, Value};

/// Reads Cairn's stored JSON: trace metadata values, spans in protobuf JSON with normalised
/// attributes, assessment payloads (`{"value": ...}` plus source and error fields).
pub struct JsonPayloads;

/// An attribute value as the span stores it (`{"string_value": ...}`, `{"int_value": ...}`,
/// `{"kvlist_value": {"values": [...]}}`), as plain JSON. Stored values are already
/// normalised (JSON text the client sent became the value it encodes), so text stays text.
pub fn attribute_value(v: &Value) -> Value {
    let Some(obj) = v.as_object() else {
        return Value::Null;
    };
    if let Some(s) = obj.get("string_value").and_then(Value::as_str) {
        return Value::String(s.to_string());
    }
    if let Some(i) = obj.get("int_value") {
        return match i {
            Value::String(s) => s.parse::<i64>().map(Value::from).unwrap_or(Value::Null),
            other => other.clone(),
        };
    }
    if let Some(d) = obj.get("double_value") {
        return d.clone();
    }
    if let Some(b) = obj.get("bool_value") {
        return b.clone();
    }
    if let Some(b) = obj.get("bytes_value") {
        return b.clone();
    }
    if let Some(list) = obj.get("kvlist_value") {
        let mut out = Map::new();
        for kv in list["values"].as_array().into_iter().flatten() {
            if let Some(k) = kv["key"].as_str() {
                out.insert(k.to_string(), attribute_value(&kv["value"]));
            }
        }
        return Value::Object(out);
    }
    if let Some(list) = obj.get("array_value") {
        return Value::Array(
            list["values"]
                .as_array()
                .into_iter()
                .flatten()
                .map(attribute_value)
                .collect(),
        );
    }
    Value::Null
}

fn finite(v: &Value) -> Option<f64> {
    v.as_f64().filter(|x| x.is_finite())
}

impl PayloadReader for JsonPayloads {
    fn token_usage(&self, metadata_value: &str) -> Vec<(String, f64)> {
        let Ok(Value::Object(usage)) = serde_json::from_str::<Value>(metadata_value) else {
            return Vec::new();
        };
        usage
            .iter()
            .filter_map(|(k, v)| {
                // Token counts are integers; MLflow leaves anything else out.
                let n = v
                    .as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))?;
                Some((k.clone(), n as f64))
            })
            .collect()
    }

    fn span_facts(&self, span_content: &str) -> SpanFacts {
        let Ok(span) = serde_json::from_str::<Value>(span_content) else {
            return SpanFacts::default();
        };
        let attribute = |key: &str| {
            span["attributes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["key"] == key)
                .map(|a| attribute_value(&a["value"]))
        };
        let text = |key: &str| match attribute(key) {
            Some(Value::String(s)) => Some(s.chars().take(500).collect()),
            _ => None,
        };
        let costs = match attribute("mlflow.llm.cost") {
            Some(Value::Object(c)) => c
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), finite(v)?)))
                .collect(),
            _ => Vec::new(),
        };
        SpanFacts {
            model_name: text("mlflow.llm.model"),
            model_provider: text("mlflow.llm.provider"),
            costs,
        }
    }

    fn assessment_value(&self, payload: &str) -> (Option<f64>, Option<String>) {
        let Ok(payload) = serde_json::from_str::<Value>(payload) else {
            return (None, None);
        };
        let Some(value) = payload.get("value") else {
            return (None, None);
        };
        let aggregate = match value {
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Value::Number(_) => finite(value),
            Value::String(s) => match s.trim().to_lowercase().as_str() {
                "yes" => Some(1.0),
                "no" => Some(0.0),
                _ => None,
            },
            _ => None,
        };
        // The dimension is the value as Python's json.dumps writes it.
        (aggregate, Some(crate::otlp::python_json(value)))
    }
}

/// A protobuf enum field given by name or number.
fn enum_field(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `POST /mlflow/traces/metrics`.
pub async fn query_metrics(State(s): State<AppState>, f: Fields) -> ApiResult {
    let experiment_ids = f.strs("experiment_ids")?;
    if experiment_ids.is_empty() {
        return Err(missing("experiment_ids"));
    }
    let view = enum_field(f.map_get("view_type")).ok_or_else(|| missing("view_type"))?;
    let view = MetricView::parse(&view)?;
    let metric_name = f
        .non_empty("metric_name")
        .map_err(|_| missing("metric_name"))?;
    let mut aggregations = Vec::new();
    for a in f.objects("aggregations")? {
        let kind = enum_field(a.map_get("aggregation_type")).unwrap_or_default();
        aggregations.push(Aggregation::parse(&kind, a.opt_f64("percentile_value")?)?);
    }
    if aggregations.is_empty() {
        return Err(missing("aggregations"));
    }
    let request = MetricsRequest {
        experiment_ids,
        view,
        metric_name,
        aggregations,
        dimensions: f.strs("dimensions")?,
        filters: f.strs("filters")?,
        time_interval_seconds: f.opt_i64("time_interval_seconds")?,
        start_time_ms: f.opt_i64("start_time_ms")?,
        end_time_ms: f.opt_i64("end_time_ms")?,
        max_results: f
            .opt_u64("max_results")?
            .filter(|n| *n > 0)
            .unwrap_or(MAX_RESULTS),
    };
    let points = blocking(move || s.traces.query_metrics(&request, &JsonPayloads)).await?;
    if points.is_empty() {
        return reply(json!({}));
    }
    let points: Vec<Value> = points
        .into_iter()
        .map(|p| {
            let mut point = Map::new();
            point.insert("metric_name".into(), p.metric_name.into());
            if !p.dimensions.is_empty() {
                let dims: Map<String, Value> = p
                    .dimensions
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect();
                point.insert("dimensions".into(), dims.into());
            }
            let values: Map<String, Value> =
                p.values.into_iter().map(|(k, v)| (k, json!(v))).collect();
            point.insert("values".into(), values.into());
            Value::Object(point)
        })
        .collect();
    reply(json!({ "data_points": points }))
}

/// `POST /mlflow/traces/calculate-filter-correlation`.
pub async fn filter_correlation(State(s): State<AppState>, f: Fields) -> ApiResult {
    let experiment_ids = f.strs("experiment_ids")?;
    if experiment_ids.is_empty() {
        return Err(missing("experiment_ids"));
    }
    let first = f
        .opt_str("filter_string1")?
        .ok_or_else(|| missing("filter_string1"))?;
    let second = f
        .opt_str("filter_string2")?
        .ok_or_else(|| missing("filter_string2"))?;
    let base = f.opt_str("base_filter")?;
    let r = blocking(move || {
        s.traces
            .filter_correlation(&experiment_ids, &first, &second, base.as_deref())
    })
    .await?;
    // MLflow leaves an undefined (NaN) NPMI out and always writes the counts.
    let mut answer = Map::new();
    for (key, v) in [("npmi", r.npmi), ("npmi_smoothed", r.npmi_smoothed)] {
        if v.is_finite() {
            answer.insert(key.into(), json!(v));
        }
    }
    for (key, n) in [
        ("filter1_count", r.filter1_count),
        ("filter2_count", r.filter2_count),
        ("joint_count", r.joint_count),
        ("total_count", r.total_count),
    ] {
        answer.insert(key.into(), json!(n));
    }
    reply(Value::Object(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_span_costs_and_models_as_stored() {
        let content = json!({"attributes": [
            {"key": "mlflow.llm.model", "value": {"string_value": "gpt-4o"}},
            {"key": "mlflow.llm.provider", "value": {"string_value": "openai"}},
            {"key": "mlflow.llm.cost", "value": {"kvlist_value": {"values": [
                {"key": "input_cost", "value": {"double_value": 0.25}},
                {"key": "total_cost", "value": {"double_value": 0.5}},
            ]}}},
        ]})
        .to_string();
        let facts = JsonPayloads.span_facts(&content);
        assert_eq!(facts.model_name.as_deref(), Some("gpt-4o"));
        assert_eq!(facts.model_provider.as_deref(), Some("openai"));
        assert_eq!(
            facts.costs,
            vec![
                ("input_cost".to_string(), 0.25),
                ("total_cost".to_string(), 0.5)
            ]
        );
    }

    #[test]
    fn assessment_values_aggregate_as_mlflow() {
        let read = |p: Value| JsonPayloads.assessment_value(&p.to_string());
        assert_eq!(
            read(json!({"value": true})),
            (Some(1.0), Some("true".into()))
        );
        assert_eq!(
            read(json!({"value": "Yes "})),
            (Some(1.0), Some("\"Yes \"".into()))
        );
        assert_eq!(
            read(json!({"value": 0.75})),
            (Some(0.75), Some("0.75".into()))
        );
        assert_eq!(read(json!({"value": "maybe"})).0, None);
        assert_eq!(read(json!({"error": {}})), (None, None));
    }
}
