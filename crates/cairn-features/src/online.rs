//! The online store's side of the feature store: materialization (the latest value of every
//! entity per feature view, read from the source in bounded memory) and lookups answered in
//! Feast's feature-server JSON.
use crate::definitions::{Definitions, FeatureRef, FeatureView, ValueType};
use crate::error::{Error, Result};
use crate::table::{column, entity_keys, key_texts, micros, open, KEY_SEPARATOR};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt32Type, UInt64Type,
};
use arrow_array::Array;
use arrow_schema::DataType;
use cairn_core::features::OnlineRow;
use cairn_core::OnlineStore;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::Path;

/// The online store's bookkeeping view: per feature view, the end of its last
/// materialization (for `materialize-incremental`).
pub const MATERIALIZED: &str = "__cairn_materialized__";

/// Rows written to the online store at a time.
const WRITE_BATCH: usize = 5_000;

/// A float as Feast's protobuf JSON answers it: a number, or `"NaN"`, `"Infinity"`,
/// `"-Infinity"`.
fn float_answer(f: f64) -> Value {
    if f.is_finite() {
        json!(f)
    } else if f.is_nan() {
        json!("NaN")
    } else if f > 0.0 {
        json!("Infinity")
    } else {
        json!("-Infinity")
    }
}

/// How a float is stored: `["f", bits]`. serde_json's default float parsing may land one unit
/// in the last place off (it trades exactness for speed), so stored floats are never read back
/// from decimal text; integers parse exactly.
fn stored_float(f: f64) -> Value {
    json!(["f", f.to_bits()])
}

/// A stored value as it is answered.
fn answered(v: &Value) -> Value {
    match v {
        Value::Array(pair) if pair.len() == 2 && pair[0] == "f" => pair[1]
            .as_u64()
            .map_or(Value::Null, |bits| float_answer(f64::from_bits(bits))),
        other => other.clone(),
    }
}

/// One value of an Arrow array as stored (timestamps as microseconds).
fn json_value(array: &dyn Array, i: usize) -> Value {
    if array.is_null(i) {
        return Value::Null;
    }
    let float = stored_float;
    match array.data_type() {
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(i)),
        // Feast answers a FLOAT32 feature with the float's exact double.
        DataType::Float32 => float(f64::from(array.as_primitive::<Float32Type>().value(i))),
        DataType::Int64 => json!(array.as_primitive::<Int64Type>().value(i)),
        DataType::Int32 => json!(array.as_primitive::<Int32Type>().value(i)),
        DataType::Int16 => json!(array.as_primitive::<Int16Type>().value(i)),
        DataType::Int8 => json!(array.as_primitive::<Int8Type>().value(i)),
        DataType::UInt64 => json!(array.as_primitive::<UInt64Type>().value(i)),
        DataType::UInt32 => json!(array.as_primitive::<UInt32Type>().value(i)),
        DataType::Boolean => json!(array.as_boolean().value(i)),
        DataType::Utf8 => json!(array.as_string::<i32>().value(i)),
        DataType::LargeUtf8 => json!(array.as_string::<i64>().value(i)),
        DataType::Timestamp(..) => micros(&array.slice(i, 1), "")
            .ok()
            .and_then(|v| v.first().copied().flatten())
            .map_or(Value::Null, |m| json!(m)),
        DataType::Dictionary(..) => key_texts(&array.slice(i, 1), "")
            .ok()
            .and_then(|v| v.into_iter().next().flatten())
            .map_or(Value::Null, Value::String),
        other => json!(format!("{other} value")),
    }
}

/// What one view's materialization did.
#[derive(Debug, Clone, PartialEq)]
pub struct Materialized {
    pub view: String,
    /// Source rows in the interval.
    pub rows: u64,
    /// Entities whose latest values were written.
    pub entities: usize,
}

/// Writes, for each online feature view (or those named), the latest row of every entity with
/// an event time in `[start, end]` (microseconds; `start` `None` for the beginning). Reads the
/// source a batch at a time, keeping one row per entity. Writing again is idempotent: the
/// store keeps an entity's later row.
pub fn materialize(
    d: &Definitions,
    root: &Path,
    store: &dyn OnlineStore,
    views: &[String],
    start: Option<i64>,
    end: i64,
    progress: &mut dyn FnMut(&str, u64),
) -> Result<Vec<Materialized>> {
    for v in views {
        if d.view(v).is_none() {
            return Err(Error::invalid(format!("unknown feature view {v}")));
        }
    }
    let mut out = Vec::new();
    for view in d
        .feature_views
        .iter()
        .filter(|v| v.online && (views.is_empty() || views.contains(&v.name)))
    {
        out.push(materialize_view(
            d, root, store, view, start, end, progress,
        )?);
    }
    Ok(out)
}

/// The end of a view's last materialization, microseconds.
pub fn last_materialized(
    d: &Definitions,
    store: &dyn OnlineStore,
    view: &str,
) -> Result<Option<i64>> {
    let found = store.read_online(&d.project, MATERIALIZED, &[view.to_string()])?;
    Ok(found
        .into_iter()
        .next()
        .flatten()
        .and_then(|r| r.values.parse().ok()))
}

fn materialize_view(
    d: &Definitions,
    root: &Path,
    store: &dyn OnlineStore,
    view: &FeatureView,
    start: Option<i64>,
    end: i64,
    progress: &mut dyn FnMut(&str, u64),
) -> Result<Materialized> {
    let source = d
        .source(&view.source)
        .ok_or_else(|| Error::invalid(format!("unknown source {}", view.source)))?;
    let keys = d.join_keys(view);
    let mut columns = keys.clone();
    columns.push(source.timestamp_field.clone());
    if let Some(c) = &source.created_timestamp_column {
        columns.push(c.clone());
    }
    columns.extend(view.schema.iter().map(|f| f.name.clone()));
    let path = d.source_path(source, root);
    // Per entity: (event, created, values).
    let mut latest: HashMap<String, (i64, i64, Map<String, Value>)> = HashMap::new();
    let mut rows_in_range = 0u64;
    for batch in open(&path, &columns)? {
        let batch = batch.map_err(|e| Error::invalid(format!("{}: {e}", path.display())))?;
        let n = batch.num_rows();
        let parts = keys
            .iter()
            .map(|k| key_texts(column(&batch, k)?.as_ref(), k))
            .collect::<Result<Vec<_>>>()?;
        let entity = entity_keys(&parts, n);
        let ts = micros(
            column(&batch, &source.timestamp_field)?.as_ref(),
            &source.timestamp_field,
        )?;
        let created = match &source.created_timestamp_column {
            Some(c) => Some(micros(column(&batch, c)?.as_ref(), c)?),
            None => None,
        };
        let features: Vec<_> = view
            .schema
            .iter()
            .map(|f| column(&batch, &f.name))
            .collect::<Result<_>>()?;
        for i in 0..n {
            let (Some(key), Some(t)) = (&entity[i], ts[i]) else {
                continue;
            };
            if t > end || start.is_some_and(|s| t < s) {
                continue;
            }
            rows_in_range += 1;
            let c = created.as_ref().and_then(|c| c[i]).unwrap_or(i64::MIN);
            let newer = latest
                .get(key)
                .is_none_or(|(lt, lc, _)| (t, c) >= (*lt, *lc));
            if newer {
                let values: Map<String, Value> = view
                    .schema
                    .iter()
                    .zip(&features)
                    .map(|(f, a)| (f.name.clone(), json_value(a.as_ref(), i)))
                    .collect();
                latest.insert(key.clone(), (t, c, values));
            }
        }
        progress(&view.name, n as u64);
    }
    let entities = latest.len();
    let rows: Vec<OnlineRow> = latest
        .into_iter()
        .map(|(entity_key, (t, c, values))| OnlineRow {
            entity_key,
            values: Value::Object(values).to_string(),
            event_ms: t.div_euclid(1000),
            created_ms: if c == i64::MIN {
                t.div_euclid(1000)
            } else {
                c.div_euclid(1000)
            },
        })
        .collect();
    for chunk in rows.chunks(WRITE_BATCH) {
        store.write_online(&d.project, &view.name, chunk)?;
    }
    store.write_online(
        &d.project,
        MATERIALIZED,
        &[OnlineRow {
            entity_key: view.name.clone(),
            values: end.to_string(),
            event_ms: end.div_euclid(1000),
            created_ms: end.div_euclid(1000),
        }],
    )?;
    Ok(Materialized {
        view: view.name.clone(),
        rows: rows_in_range,
        entities,
    })
}

/// RFC 3339 in UTC with Feast's adaptive precision (none, ms, µs); the epoch for "no time".
pub fn rfc3339(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, m, d) = cairn_core::dates::civil_from_days(days);
    let secs = rem / 1000;
    let base = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    );
    match rem % 1000 {
        0 => format!("{base}Z"),
        frac => format!("{base}.{frac:03}Z"),
    }
}

/// An entity value from a request as its key text, checked against the key's type.
fn key_part(key: &str, value_type: ValueType, v: &Value) -> Result<String> {
    match (value_type, v) {
        (ValueType::Int64 | ValueType::Int32, Value::Number(n)) if n.is_i64() => Ok(n.to_string()),
        (ValueType::String, Value::String(s)) => Ok(s.clone()),
        (t, other) => Err(Error::invalid(format!(
            "entity {key}: {other} is not {}",
            match t {
                ValueType::String => "a string",
                _ => "an integer",
            }
        ))),
    }
}

/// A lookup as Feast's `POST /get-online-features` answers it: `entities` maps each join key
/// to one value per row (in the order given); the answer has the join keys then the
/// features, each with `values`, `statuses` and `event_timestamps`. A value older than its
/// view's time to live is answered with status `OUTSIDE_MAX_AGE`, a null one `NULL_VALUE`.
pub fn get_online(
    d: &Definitions,
    store: &dyn OnlineStore,
    features: &[FeatureRef],
    entities: &[(String, Vec<Value>)],
    full_feature_names: bool,
    now_ms: i64,
) -> Result<Value> {
    let rows = entities.first().map_or(0, |(_, v)| v.len());
    if entities.is_empty() {
        return Err(Error::invalid("no entities given"));
    }
    if let Some((k, v)) = entities.iter().find(|(_, v)| v.len() != rows) {
        return Err(Error::invalid(format!(
            "entity {k} has {} values, {} has {rows}: every entity needs one per row",
            v.len(),
            entities[0].0
        )));
    }
    let mut names: Vec<String> = entities.iter().map(|(k, _)| k.clone()).collect();
    let epoch = rfc3339(0);
    let mut results: Vec<Value> = entities
        .iter()
        .map(|(_, values)| {
            json!({"values": values, "statuses": vec!["PRESENT"; rows],
                   "event_timestamps": vec![&epoch; rows]})
        })
        .collect();
    let mut views: Vec<&str> = Vec::new();
    for f in features {
        if !views.contains(&f.view.as_str()) {
            views.push(&f.view);
        }
    }
    for view_name in views {
        let view = d
            .view(view_name)
            .ok_or_else(|| Error::invalid(format!("unknown feature view {view_name}")))?;
        if !view.online {
            return Err(Error::invalid(format!(
                "feature view {view_name} is not served online (online: false)"
            )));
        }
        let keys = d.join_keys(view);
        let mut parts: Vec<Vec<String>> = Vec::with_capacity(keys.len());
        for k in &keys {
            let (_, values) = entities.iter().find(|(n, _)| n == k).ok_or_else(|| {
                Error::invalid(format!(
                    "feature view {view_name} needs entity key {k}, which the request does not give"
                ))
            })?;
            let t = d.key_type(k).unwrap_or(ValueType::Int64);
            parts.push(
                values
                    .iter()
                    .map(|v| key_part(k, t, v))
                    .collect::<Result<_>>()?,
            );
        }
        let lookup: Vec<String> = (0..rows)
            .map(|i| {
                parts
                    .iter()
                    .map(|p| p[i].as_str())
                    .collect::<Vec<_>>()
                    .join(&KEY_SEPARATOR.to_string())
            })
            .collect();
        let found = store.read_online(&d.project, view_name, &lookup)?;
        let decoded: Vec<Option<(i64, Map<String, Value>)>> = found
            .into_iter()
            .map(|r| {
                r.and_then(|r| match serde_json::from_str(&r.values) {
                    Ok(Value::Object(m)) => Some((r.event_ms, m)),
                    _ => None,
                })
            })
            .collect();
        let ttl_ms = (view.ttl.0 > 0).then(|| view.ttl.0 as i64 * 1000);
        for f in features.iter().filter(|f| f.view == view_name) {
            names.push(f.column(full_feature_names));
            let mut values = Vec::with_capacity(rows);
            let mut statuses = Vec::with_capacity(rows);
            let mut times = Vec::with_capacity(rows);
            for row in &decoded {
                match row {
                    None => {
                        values.push(Value::Null);
                        statuses.push("NOT_FOUND");
                        times.push(epoch.clone());
                    }
                    Some((event_ms, m)) => {
                        let v = m.get(&f.feature).map_or(Value::Null, answered);
                        statuses.push(if ttl_ms.is_some_and(|t| now_ms - event_ms > t) {
                            "OUTSIDE_MAX_AGE"
                        } else if v.is_null() {
                            "NULL_VALUE"
                        } else {
                            "PRESENT"
                        });
                        values.push(v);
                        times.push(rfc3339(*event_ms));
                    }
                }
            }
            results
                .push(json!({"values": values, "statuses": statuses, "event_timestamps": times}));
        }
    }
    Ok(json!({"metadata": {"feature_names": names}, "results": results}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_come_back_exactly() {
        for f in [0.215_348_712_813_202_23, 1e-300, f64::MAX, -0.0] {
            let text = stored_float(f).to_string();
            let back: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(answered(&back).as_f64().unwrap().to_bits(), f.to_bits(), "{f}");
        }
        assert_eq!(answered(&stored_float(f64::NAN)), json!("NaN"));
        assert_eq!(answered(&stored_float(f64::NEG_INFINITY)), json!("-Infinity"));
    }

    #[test]
    fn times_print_as_feast_prints_them() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_618_225_182_000), "2021-04-12T10:59:42Z");
        assert_eq!(rfc3339(1_618_225_182_250), "2021-04-12T10:59:42.250Z");
    }
}
