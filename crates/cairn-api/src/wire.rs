//! Domain values as MLflow's proto-JSON: int64 as numbers, NaN/infinities as strings, empty
//! repeated fields and unset optional fields left out.
use cairn_core::model::*;
use serde_json::{json, Map, Value};

/// A double as proto-JSON writes it.
pub fn num(v: f64) -> Value {
    if v.is_nan() {
        Value::from("NaN")
    } else if v == f64::INFINITY {
        Value::from("Infinity")
    } else if v == f64::NEG_INFINITY {
        Value::from("-Infinity")
    } else {
        Value::from(v)
    }
}

/// `{key, value}` pairs.
pub fn key_values(kvs: &[KeyValue]) -> Value {
    Value::Array(
        kvs.iter()
            .map(|kv| json!({"key": kv.key, "value": kv.value}))
            .collect(),
    )
}

fn put_list(obj: &mut Map<String, Value>, name: &str, list: Value) {
    if list.as_array().is_some_and(|a| !a.is_empty()) {
        obj.insert(name.into(), list);
    }
}

fn put_opt<T: Into<Value>>(obj: &mut Map<String, Value>, name: &str, v: Option<T>) {
    if let Some(v) = v {
        obj.insert(name.into(), v.into());
    }
}

/// One metric.
pub fn metric(m: &Metric) -> Value {
    let mut obj = Map::new();
    obj.insert("key".into(), m.key.clone().into());
    obj.insert("value".into(), num(m.value));
    obj.insert("timestamp".into(), m.timestamp.into());
    obj.insert("step".into(), m.step.into());
    put_opt(&mut obj, "run_id", m.run_id.clone());
    put_opt(&mut obj, "model_id", m.model_id.clone());
    put_opt(&mut obj, "dataset_name", m.dataset_name.clone());
    put_opt(&mut obj, "dataset_digest", m.dataset_digest.clone());
    Value::Object(obj)
}

/// An experiment.
pub fn experiment(e: &Experiment) -> Value {
    let mut obj = Map::new();
    obj.insert("experiment_id".into(), e.experiment_id.clone().into());
    obj.insert("name".into(), e.name.clone().into());
    obj.insert(
        "artifact_location".into(),
        e.artifact_location.clone().into(),
    );
    obj.insert("lifecycle_stage".into(), e.lifecycle_stage.as_str().into());
    obj.insert("last_update_time".into(), e.last_update_time.into());
    obj.insert("creation_time".into(), e.creation_time.into());
    put_list(&mut obj, "tags", key_values(&e.tags));
    // MLflow 3.17 names every experiment's workspace; Cairn has the one default.
    obj.insert("workspace".into(), "default".into());
    Value::Object(obj)
}

/// A run's info.
pub fn run_info(i: &RunInfo) -> Value {
    let mut obj = Map::new();
    obj.insert("run_id".into(), i.run_id.clone().into());
    obj.insert("run_uuid".into(), i.run_id.clone().into());
    obj.insert("run_name".into(), i.run_name.clone().into());
    obj.insert("experiment_id".into(), i.experiment_id.clone().into());
    obj.insert("user_id".into(), i.user_id.clone().into());
    obj.insert("status".into(), i.status.as_str().into());
    obj.insert("start_time".into(), i.start_time.into());
    put_opt(&mut obj, "end_time", i.end_time);
    obj.insert("artifact_uri".into(), i.artifact_uri.clone().into());
    obj.insert("lifecycle_stage".into(), i.lifecycle_stage.as_str().into());
    Value::Object(obj)
}

fn dataset(d: &Dataset) -> Value {
    let mut obj = Map::new();
    obj.insert("name".into(), d.name.clone().into());
    obj.insert("digest".into(), d.digest.clone().into());
    obj.insert("source_type".into(), d.source_type.clone().into());
    obj.insert("source".into(), d.source.clone().into());
    put_opt(&mut obj, "schema", d.schema.clone());
    put_opt(&mut obj, "profile", d.profile.clone());
    Value::Object(obj)
}

/// A whole run.
pub fn run(r: &Run) -> Value {
    let mut data = Map::new();
    put_list(
        &mut data,
        "metrics",
        Value::Array(r.metrics.iter().map(metric).collect()),
    );
    put_list(&mut data, "params", key_values(&r.params));
    put_list(&mut data, "tags", key_values(&r.tags));
    let mut inputs = Map::new();
    put_list(
        &mut inputs,
        "dataset_inputs",
        Value::Array(
            r.dataset_inputs
                .iter()
                .map(|i| {
                    let mut obj = Map::new();
                    put_list(&mut obj, "tags", key_values(&i.tags));
                    obj.insert("dataset".into(), dataset(&i.dataset));
                    Value::Object(obj)
                })
                .collect(),
        ),
    );
    put_list(
        &mut inputs,
        "model_inputs",
        Value::Array(
            r.model_inputs
                .iter()
                .map(|m| json!({"model_id": m}))
                .collect(),
        ),
    );
    let mut outputs = Map::new();
    put_list(
        &mut outputs,
        "model_outputs",
        Value::Array(
            r.model_outputs
                .iter()
                .map(|m| json!({"model_id": m.model_id, "step": m.step}))
                .collect(),
        ),
    );
    json!({"info": run_info(&r.info), "data": data, "inputs": inputs, "outputs": outputs})
}

/// A logged model.
pub fn logged_model(m: &LoggedModel) -> Value {
    let mut info = Map::new();
    info.insert("model_id".into(), m.model_id.clone().into());
    info.insert("experiment_id".into(), m.experiment_id.clone().into());
    info.insert("name".into(), m.name.clone().into());
    info.insert("artifact_uri".into(), m.artifact_uri.clone().into());
    info.insert("creation_timestamp_ms".into(), m.creation_time.into());
    info.insert(
        "last_updated_timestamp_ms".into(),
        m.last_updated_time.into(),
    );
    info.insert("status".into(), m.status.as_str().into());
    put_opt(&mut info, "status_message", m.status_message.clone());
    put_opt(&mut info, "model_type", m.model_type.clone());
    put_opt(&mut info, "source_run_id", m.source_run_id.clone());
    put_list(&mut info, "tags", key_values(&m.tags));
    let mut data = Map::new();
    put_list(&mut data, "params", key_values(&m.params));
    put_list(
        &mut data,
        "metrics",
        Value::Array(m.metrics.iter().map(metric).collect()),
    );
    json!({"info": info, "data": data})
}

fn push_json_string(out: &mut String, s: &str) {
    out.push_str(&Value::from(s).to_string());
}

fn push_num(out: &mut String, v: f64) {
    match num(v) {
        Value::String(s) => {
            out.push('"');
            out.push_str(&s);
            out.push('"');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// `{"metrics": [...], "next_page_token": ...}` written straight into a string: the same JSON
/// as [`metric`] for each item, without an intermediate tree (histories can be huge).
pub fn metric_page(metrics: &[Metric], next_page_token: Option<String>) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(32 + metrics.len() * 72);
    out.push_str("{\"metrics\":[");
    for (i, m) in metrics.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"key\":");
        push_json_string(&mut out, &m.key);
        out.push_str(",\"value\":");
        push_num(&mut out, m.value);
        let _ = write!(out, ",\"timestamp\":{},\"step\":{}", m.timestamp, m.step);
        for (name, v) in [
            ("run_id", &m.run_id),
            ("model_id", &m.model_id),
            ("dataset_name", &m.dataset_name),
            ("dataset_digest", &m.dataset_digest),
        ] {
            if let Some(v) = v {
                let _ = write!(out, ",\"{name}\":");
                push_json_string(&mut out, v);
            }
        }
        out.push('}');
    }
    out.push(']');
    if let Some(token) = next_page_token {
        out.push_str(",\"next_page_token\":");
        push_json_string(&mut out, &token);
    }
    out.push('}');
    out
}

/// A model version; the version number travels as a string.
pub fn model_version(v: &ModelVersion) -> Value {
    let mut obj = Map::new();
    obj.insert("name".into(), v.name.clone().into());
    obj.insert("version".into(), v.version.to_string().into());
    obj.insert("creation_timestamp".into(), v.creation_time.into());
    obj.insert("last_updated_timestamp".into(), v.last_updated_time.into());
    // As `mlflow server` 3.17 answers: no `user_id` when none was recorded, `run_id` and
    // `run_link` always (empty when none).
    if !v.user_id.is_empty() {
        obj.insert("user_id".into(), v.user_id.clone().into());
    }
    obj.insert("current_stage".into(), v.current_stage.as_str().into());
    obj.insert("description".into(), v.description.clone().into());
    obj.insert("source".into(), v.source.clone().into());
    obj.insert("run_id".into(), v.run_id.clone().unwrap_or_default().into());
    obj.insert(
        "run_link".into(),
        v.run_link.clone().unwrap_or_default().into(),
    );
    put_opt(&mut obj, "model_id", v.model_id.clone());
    obj.insert("status".into(), v.status.clone().into());
    put_list(&mut obj, "tags", key_values(&v.tags));
    put_list(
        &mut obj,
        "aliases",
        Value::Array(v.aliases.iter().map(|a| Value::from(a.as_str())).collect()),
    );
    Value::Object(obj)
}

/// A registered model with its latest versions, tags and aliases.
pub fn registered_model(m: &RegisteredModel) -> Value {
    let mut obj = Map::new();
    obj.insert("name".into(), m.name.clone().into());
    obj.insert("creation_timestamp".into(), m.creation_time.into());
    obj.insert("last_updated_timestamp".into(), m.last_updated_time.into());
    if !m.description.is_empty() {
        obj.insert("description".into(), m.description.clone().into());
    }
    put_list(
        &mut obj,
        "latest_versions",
        Value::Array(m.latest_versions.iter().map(model_version).collect()),
    );
    put_list(&mut obj, "tags", key_values(&m.tags));
    put_list(
        &mut obj,
        "aliases",
        Value::Array(
            m.aliases
                .iter()
                .map(|(a, v)| json!({"alias": a, "version": v.to_string()}))
                .collect(),
        ),
    );
    Value::Object(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_page_matches_the_tree_encoding() {
        let mut m = Metric {
            key: "a\"b".into(),
            value: f64::NAN,
            timestamp: 5,
            step: -1,
            model_id: Some("m-1".into()),
            dataset_name: None,
            dataset_digest: None,
            run_id: None,
        };
        let plain = Metric {
            key: "x".into(),
            value: 0.25,
            model_id: None,
            ..m.clone()
        };
        m.value = f64::NAN;
        let fast: Value =
            serde_json::from_str(&metric_page(&[m.clone(), plain.clone()], Some("t".into())))
                .unwrap();
        assert_eq!(
            fast,
            json!({"metrics": [metric(&m), metric(&plain)], "next_page_token": "t"})
        );
        let inf = Metric {
            value: f64::NEG_INFINITY,
            ..plain
        };
        let fast: Value =
            serde_json::from_str(&metric_page(std::slice::from_ref(&inf), None)).unwrap();
        assert_eq!(fast, json!({"metrics": [metric(&inf)]}));
    }
}
