//! Training sets, point in time: for every entity row, each feature view's newest row of that
//! entity with `event_ts <= entity_ts` and, when the view has a time to live,
//! `event_ts >= entity_ts - ttl` (both ends inclusive); rows with the same event time are
//! ordered by their created timestamp, then by their place in the file. This is the join
//! Feast's `get_historical_features` makes (its file offline store's `_filter_ttl` and
//! `_drop_duplicates`).
use crate::definitions::{Definitions, FeatureRef};
use crate::error::{Error, Result};
use crate::table::{entity_keys, key_texts, micros, read_all};
use arrow_array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow_schema::{Field, Schema};
use parquet::arrow::ArrowWriter;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// What `get_historical` is asked for.
pub struct HistoricalRequest<'a> {
    pub definitions: &'a Definitions,
    /// The folder source paths are relative to.
    pub root: &'a Path,
    /// A Parquet file of entity rows: the join keys and `timestamp_column`.
    pub entities: &'a Path,
    pub timestamp_column: &'a str,
    pub features: &'a [FeatureRef],
    /// Name feature columns `view__feature` (Feast's `full_feature_names`).
    pub full_feature_names: bool,
}

/// What was joined.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoricalOutcome {
    pub rows: usize,
    /// Per feature view, how many entity rows found a value.
    pub matched: Vec<(String, usize)>,
}

/// The Parquet column names of a file.
fn column_names(path: &Path) -> Result<Vec<String>> {
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| Error::invalid(format!("{}: {e}", path.display())))?;
    Ok(builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect())
}

/// For each entity row, the source row it joins (`None` when none qualifies).
fn point_in_time(
    entity_keys: &[Option<String>],
    entity_ts: &[Option<i64>],
    source_keys: &[Option<String>],
    source_ts: &[Option<i64>],
    source_created: Option<&[Option<i64>]>,
    ttl_micros: Option<i64>,
) -> Vec<Option<u32>> {
    let mut by_key: HashMap<&str, Vec<u32>> = HashMap::new();
    for (row, key) in source_keys.iter().enumerate() {
        if let (Some(k), Some(_)) = (key, source_ts[row]) {
            by_key.entry(k.as_str()).or_default().push(row as u32);
        }
    }
    let order = |r: &u32| {
        let r = *r as usize;
        (
            source_ts[r].unwrap_or(i64::MIN),
            source_created.and_then(|c| c[r]).unwrap_or(i64::MIN),
            r,
        )
    };
    for rows in by_key.values_mut() {
        rows.sort_by_key(order);
    }
    entity_keys
        .iter()
        .zip(entity_ts)
        .map(|(key, ts)| {
            let (key, ts) = (key.as_deref()?, (*ts)?);
            let rows = by_key.get(key)?;
            let after = rows.partition_point(|r| source_ts[*r as usize].unwrap_or(i64::MIN) <= ts);
            let row = *rows.get(after.checked_sub(1)?)?;
            let event = source_ts[row as usize]?;
            match ttl_micros {
                Some(ttl) if event < ts.saturating_sub(ttl) => None,
                _ => Some(row),
            }
        })
        .collect()
}

/// Joins the features onto the entity rows; returns the table (entity columns as given, then
/// one column per feature) and what matched.
pub fn get_historical(request: &HistoricalRequest) -> Result<(RecordBatch, HistoricalOutcome)> {
    let d = request.definitions;
    let entity_columns = column_names(request.entities)?;
    if !entity_columns.iter().any(|c| c == request.timestamp_column) {
        return Err(Error::invalid(format!(
            "{}: no timestamp column {} (columns: {})",
            request.entities.display(),
            request.timestamp_column,
            entity_columns.join(", ")
        )));
    }
    let (entity_arrays, rows) = read_all(request.entities, &entity_columns)?;
    let ts_index = entity_columns
        .iter()
        .position(|c| c == request.timestamp_column)
        .unwrap_or_default();
    let entity_ts = micros(entity_arrays[ts_index].as_ref(), request.timestamp_column)?;

    let mut names: Vec<String> = entity_columns.clone();
    let mut fields: Vec<Field> = entity_columns
        .iter()
        .zip(&entity_arrays)
        .map(|(n, a)| Field::new(n, a.data_type().clone(), true))
        .collect();
    let mut columns: Vec<ArrayRef> = entity_arrays.clone();
    let mut matched = Vec::new();
    for view_name in FeatureRef::views(request.features) {
        let view = d
            .view(view_name)
            .ok_or_else(|| Error::invalid(format!("unknown feature view {view_name}")))?;
        let source = d
            .source(&view.source)
            .ok_or_else(|| Error::invalid(format!("unknown source {}", view.source)))?;
        let keys = d.join_keys(view);
        let mut key_parts = Vec::new();
        for k in &keys {
            let i = entity_columns.iter().position(|c| c == k).ok_or_else(|| {
                Error::invalid(format!(
                    "{}: no column {k}, the join key of feature view {view_name} (columns: {})",
                    request.entities.display(),
                    entity_columns.join(", ")
                ))
            })?;
            key_parts.push(key_texts(entity_arrays[i].as_ref(), k)?);
        }
        let entity_key = entity_keys(&key_parts, rows);

        let wanted: Vec<&FeatureRef> = request
            .features
            .iter()
            .filter(|f| f.view == view_name)
            .collect();
        let mut source_columns: Vec<String> = keys.clone();
        source_columns.push(source.timestamp_field.clone());
        if let Some(c) = &source.created_timestamp_column {
            source_columns.push(c.clone());
        }
        source_columns.extend(wanted.iter().map(|f| f.feature.clone()));
        let path = d.source_path(source, request.root);
        let (arrays, source_rows) = read_all(&path, &source_columns)?;
        let source_key = entity_keys(
            &keys
                .iter()
                .enumerate()
                .map(|(i, k)| key_texts(arrays[i].as_ref(), k))
                .collect::<Result<Vec<_>>>()?,
            source_rows,
        );
        let source_ts = micros(arrays[keys.len()].as_ref(), &source.timestamp_field)?;
        let created = match &source.created_timestamp_column {
            Some(c) => Some(micros(arrays[keys.len() + 1].as_ref(), c)?),
            None => None,
        };
        let first_feature = keys.len() + 1 + usize::from(created.is_some());
        let ttl = (view.ttl.0 > 0).then(|| view.ttl.0 as i64 * 1_000_000);
        let joined = point_in_time(
            &entity_key,
            &entity_ts,
            &source_key,
            &source_ts,
            created.as_deref(),
            ttl,
        );
        matched.push((view_name.to_string(), joined.iter().flatten().count()));
        let indices: UInt32Array = joined.into_iter().collect();
        for (j, f) in wanted.iter().enumerate() {
            let name = f.column(request.full_feature_names);
            if names.contains(&name) {
                return Err(Error::invalid(format!(
                    "two columns would be named {name}: ask for full feature names (view__feature)"
                )));
            }
            let values = arrays[first_feature + j].as_ref();
            let taken = arrow_select::take::take(values, &indices, None)
                .map_err(|e| Error::invalid(format!("feature {name}: {e}")))?;
            fields.push(Field::new(&name, taken.data_type().clone(), true));
            names.push(name);
            columns.push(taken);
        }
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| Error::invalid(e.to_string()))?;
    Ok((batch, HistoricalOutcome { rows, matched }))
}

/// Writes a table as Parquet.
pub fn write_parquet(batch: &RecordBatch, path: &Path) -> Result<()> {
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::create(path).map_err(io)?;
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None)
        .map_err(|e| Error::invalid(format!("{}: {e}", path.display())))?;
    writer
        .write(batch)
        .and_then(|_| writer.close().map(|_| ()))
        .map_err(|e| Error::invalid(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(v: &[&str]) -> Vec<Option<String>> {
        v.iter().map(|s| Some(s.to_string())).collect()
    }

    #[test]
    fn the_newest_row_at_or_before_the_entity_time_within_the_ttl() {
        // Source rows for entity a at times 10, 20, 20 (created 5 then 7), 30; b at 15.
        let source_keys = keys(&["a", "a", "a", "a", "b"]);
        let source_ts = vec![Some(10), Some(20), Some(20), Some(30), Some(15)];
        let created = vec![Some(1), Some(7), Some(5), Some(1), Some(1)];
        let entity_keys = keys(&["a", "a", "a", "a", "b", "c"]);
        let entity_ts = vec![Some(5), Some(10), Some(25), Some(30), Some(100), Some(50)];
        let joined = point_in_time(
            &entity_keys,
            &entity_ts,
            &source_keys,
            &source_ts,
            Some(&created),
            None,
        );
        // Before any row; exactly at 10; at 25 the tie at 20 goes to created 7 (row 1); the
        // row at 30 itself; b's only row; c unknown.
        assert_eq!(joined, vec![None, Some(0), Some(1), Some(3), Some(4), None]);
        // A ttl of 10: at 25 rows from 15 on qualify; at 100 b's row (15) is too old; the
        // lower edge is inclusive (30 - 10 = 20 keeps... the newest, 30).
        let joined = point_in_time(
            &entity_keys,
            &entity_ts,
            &source_keys,
            &source_ts,
            Some(&created),
            Some(10),
        );
        assert_eq!(joined, vec![None, Some(0), Some(1), Some(3), None, None]);
        let edge = point_in_time(
            &keys(&["b"]),
            &[Some(25)],
            &source_keys,
            &source_ts,
            None,
            Some(10),
        );
        assert_eq!(edge, vec![Some(4)], "15 >= 25 - 10");
    }
}
