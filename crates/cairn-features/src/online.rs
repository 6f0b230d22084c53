//! The online store's side of the feature store: materialization (the latest value of every
//! entity per feature view, read from the source in bounded memory) and lookups answered in
//! Feast's feature-server JSON.
use crate::definitions::{Definitions, FeatureRef, FeatureView, SourceFiles, ValueType};
use crate::error::{Error, Result};
use crate::table::{column, key_texts, keys_and_times, micros, open, write_key, KEY_SEPARATOR};
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
    files: &SourceFiles,
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
            d, files, store, view, start, end, progress,
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
    files: &SourceFiles,
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
    let path = files.path(source)?;
    // Per entity: (event, created, values).
    let mut latest: HashMap<String, (i64, i64, Map<String, Value>), foldhash::fast::RandomState> =
        HashMap::default();
    let mut rows_in_range = 0u64;
    for batch in open(path, &columns)? {
        let batch = batch.map_err(|e| Error::invalid(format!("{}: {e}", path.display())))?;
        let n = batch.num_rows();
        let (parts, ts, created) = keys_and_times(&batch, &keys, source)?;
        let features: Vec<_> = view
            .schema
            .iter()
            .map(|f| column(&batch, &f.name))
            .collect::<Result<_>>()?;
        let mut key = String::new();
        for i in 0..n {
            let Some(t) = ts[i] else {
                continue;
            };
            if t > end || start.is_some_and(|s| t < s) || !write_key(&parts, i, &mut key) {
                continue;
            }
            rows_in_range += 1;
            let c = created.as_ref().and_then(|c| c[i]).unwrap_or(i64::MIN);
            let build = || -> Map<String, Value> {
                view.schema
                    .iter()
                    .zip(&features)
                    .map(|(f, a)| (f.name.clone(), json_value(a.as_ref(), i)))
                    .collect()
            };
            // One lookup per row; values are built only for rows that replace an entity's
            // latest.
            match latest.get_mut(key.as_str()) {
                Some(slot) => {
                    if (t, c) >= (slot.0, slot.1) {
                        *slot = (t, c, build());
                    }
                }
                None => {
                    latest.insert(key.clone(), (t, c, build()));
                }
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

/// `2026-11-01T12:00:00Z`, `2026-11-01 12:00:00.250`, `2026-11-01` (UTC) or seconds since the
/// epoch, as microseconds.
pub fn parse_time_micros(v: &Value) -> Option<i64> {
    if let Some(seconds) = v.as_i64() {
        return seconds.checked_mul(1_000_000);
    }
    if let Some(seconds) = v.as_f64() {
        return Some((seconds * 1e6).round() as i64);
    }
    let text = v.as_str()?;
    let t = text.trim_end_matches('Z').trim_end_matches("+00:00");
    let (date, time) = t.split_once(['T', ' ']).unwrap_or((t, "00:00:00"));
    let d: Vec<i64> = date
        .split('-')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let h: Vec<i64> = hms
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    if d.len() != 3 || h.len() != 3 || !(1..=12).contains(&d[1]) || !(1..=31).contains(&d[2]) {
        return None;
    }
    if h[0] > 23 || h[1] > 59 || h[2] > 60 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let micros: i64 = format!("{frac:0<6}").get(..6)?.parse().ok()?;
    let days = cairn_core::dates::days_from_civil(d[0], d[1], d[2]);
    Some((days * 86_400 + h[0] * 3600 + h[1] * 60 + h[2]) * 1_000_000 + micros)
}

/// [`parse_time_micros`] in milliseconds.
pub fn parse_time_ms(v: &Value) -> Option<i64> {
    parse_time_micros(v).map(|m| m.div_euclid(1000))
}

/// A pushed value as stored, checked against the feature's type.
fn pushed_value(view: &str, field: &crate::definitions::Field, v: &Value) -> Result<Value> {
    use crate::definitions::Dtype;
    let wrong = || {
        Error::invalid(format!(
            "push to {view}: {} is {:?}, not {v}",
            field.name, field.dtype
        ))
    };
    Ok(match (field.dtype, v) {
        (_, Value::Null) => Value::Null,
        (Dtype::Float32, Value::Number(n)) => {
            stored_float(f64::from(n.as_f64().ok_or_else(wrong)? as f32))
        }
        (Dtype::Float64, Value::Number(n)) => stored_float(n.as_f64().ok_or_else(wrong)?),
        (Dtype::Int32 | Dtype::Int64 | Dtype::UnixTimestamp, Value::Number(n)) if n.is_i64() => {
            v.clone()
        }
        (Dtype::String, Value::String(_)) | (Dtype::Bool, Value::Bool(_)) => v.clone(),
        _ => return Err(wrong()),
    })
}

/// Feast's `POST /push` to the online store: `columns` holds the join keys, the source's
/// timestamp column and features, one list of values each; every online view whose source is
/// `source` gets the rows (a later event time wins per entity, as materialization). Checked
/// whole before anything is written. Answers how many rows were written per view.
pub fn push(
    d: &Definitions,
    store: &dyn OnlineStore,
    source: &str,
    columns: &Map<String, Value>,
    now_ms: i64,
) -> Result<Vec<(String, usize)>> {
    let src = d
        .source(source)
        .ok_or_else(|| Error::invalid(format!("unknown push source {source}")))?;
    let views: Vec<&FeatureView> = d
        .feature_views
        .iter()
        .filter(|v| v.online && v.source == source)
        .collect();
    if views.is_empty() {
        return Err(Error::invalid(format!(
            "no online feature view reads source {source}"
        )));
    }
    write_rows(
        d,
        store,
        &views,
        columns,
        &src.timestamp_field,
        None,
        &format!("push to {source}"),
        now_ms,
    )
}

/// Feast's `POST /write-to-online-store` (what its remote online store client sends when it
/// materializes or writes through a feature server): rows of one view, `df` holding the join
/// keys, the features, `event_timestamp` and optionally `created`. Checked whole first.
pub fn write_to_view(
    d: &Definitions,
    store: &dyn OnlineStore,
    view: &str,
    columns: &Map<String, Value>,
    now_ms: i64,
) -> Result<usize> {
    let found = d
        .view(view)
        .ok_or_else(|| Error::invalid(format!("unknown feature view {view}")))?;
    let written = write_rows(
        d,
        store,
        &[found],
        columns,
        "event_timestamp",
        Some("created"),
        &format!("write to {view}"),
        now_ms,
    )?;
    Ok(written.first().map_or(0, |(_, n)| *n))
}

/// Writes rows given as columns to `views`: the event time from `timestamp_column`, the
/// created time from `created_column` where it holds one, else `now_ms`.
#[allow(clippy::too_many_arguments)]
fn write_rows(
    d: &Definitions,
    store: &dyn OnlineStore,
    views: &[&FeatureView],
    columns: &Map<String, Value>,
    timestamp_column: &str,
    created_column: Option<&str>,
    what: &str,
    now_ms: i64,
) -> Result<Vec<(String, usize)>> {
    let list = |name: &str| -> Result<&Vec<Value>> {
        columns
            .get(name)
            .and_then(Value::as_array)
            .ok_or_else(|| Error::invalid(format!("{what}: no column {name} (a list of values)")))
    };
    let times = list(timestamp_column)?;
    let rows = times.len();
    if let Some((name, _)) = columns
        .iter()
        .find(|(_, v)| v.as_array().is_some_and(|a| a.len() != rows))
    {
        return Err(Error::invalid(format!(
            "{what}: column {name} has a different number of values than {timestamp_column}"
        )));
    }
    let event_ms: Vec<i64> = times
        .iter()
        .map(|t| {
            parse_time_ms(t).ok_or_else(|| Error::invalid(format!("{what}: {t} is not a time")))
        })
        .collect::<Result<_>>()?;
    let created_ms: Vec<i64> = match created_column
        .and_then(|c| columns.get(c))
        .and_then(Value::as_array)
    {
        Some(created) => created
            .iter()
            .map(|t| match t {
                Value::Null => Ok(now_ms),
                t => parse_time_ms(t)
                    .ok_or_else(|| Error::invalid(format!("{what}: {t} is not a time"))),
            })
            .collect::<Result<_>>()?,
        None => vec![now_ms; rows],
    };
    let mut writes = Vec::new();
    for view in views {
        let keys = d.join_keys(view);
        let mut key_values: Vec<Vec<String>> = Vec::new();
        for k in &keys {
            let t = d.key_type(k).unwrap_or(ValueType::Int64);
            key_values.push(
                list(k)?
                    .iter()
                    .map(|v| key_part(k, t, v))
                    .collect::<Result<_>>()?,
            );
        }
        let mut out = Vec::with_capacity(rows);
        for i in 0..rows {
            let mut values = Map::new();
            for field in &view.schema {
                let v = match columns.get(&field.name).and_then(Value::as_array) {
                    Some(list) => pushed_value(&view.name, field, &list[i])?,
                    None => {
                        return Err(Error::invalid(format!(
                            "{what}: no column {} for view {}",
                            field.name, view.name
                        )))
                    }
                };
                values.insert(field.name.clone(), v);
            }
            out.push(OnlineRow {
                entity_key: key_values
                    .iter()
                    .map(|k| k[i].as_str())
                    .collect::<Vec<_>>()
                    .join(&KEY_SEPARATOR.to_string()),
                values: Value::Object(values).to_string(),
                event_ms: event_ms[i],
                created_ms: created_ms[i],
            });
        }
        writes.push((view.name.clone(), out));
    }
    let mut written = Vec::new();
    for (view, rows) in writes {
        for chunk in rows.chunks(WRITE_BATCH) {
            store.write_online(&d.project, &view, chunk)?;
        }
        written.push((view, rows.len()));
    }
    Ok(written)
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
    for view_name in FeatureRef::views(features) {
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
            assert_eq!(
                answered(&back).as_f64().unwrap().to_bits(),
                f.to_bits(),
                "{f}"
            );
        }
        assert_eq!(answered(&stored_float(f64::NAN)), json!("NaN"));
        assert_eq!(
            answered(&stored_float(f64::NEG_INFINITY)),
            json!("-Infinity")
        );
    }

    #[test]
    fn times_print_as_feast_prints_them() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_618_225_182_000), "2021-04-12T10:59:42Z");
        assert_eq!(rfc3339(1_618_225_182_250), "2021-04-12T10:59:42.250Z");
    }
}
