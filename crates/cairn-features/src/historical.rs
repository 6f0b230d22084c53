//! Training sets, point in time: for every entity row, each feature view's newest row of that
//! entity with `event_ts <= entity_ts` and, when the view has a time to live,
//! `event_ts >= entity_ts - ttl` (both ends inclusive); rows with the same event time are
//! ordered by their created timestamp, then by their place in the file. This is the join
//! Feast's `get_historical_features` makes (its file offline store's `_filter_ttl` and
//! `_drop_duplicates`).
use crate::definitions::{Definitions, FeatureRef, SourceFiles};
use crate::error::{Error, Result};
use crate::table::{
    column, keys_and_times, micros, open, read_all, write_key, KeyPart, KeysAndTimes,
};
use arrow_array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow_schema::{Field, Schema};
use parquet::arrow::ArrowWriter;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// What `get_historical` is asked for.
pub struct HistoricalRequest<'a> {
    pub definitions: &'a Definitions,
    /// Where each source's file is.
    pub files: &'a SourceFiles,
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

/// The entity rows of one feature view, grouped by entity key: what the join keeps in memory
/// (a few words per entity row), whatever the size of the source.
struct EntityIndex {
    /// A single integer join key's values, or every key as text, to a dense key id.
    ids: KeyIds,
    /// Entity rows grouped by key id (`starts[id]..starts[id + 1]`), sorted by timestamp
    /// within a key: (timestamp, entity row).
    starts: Vec<u32>,
    rows: Vec<(i64, u32)>,
}

enum KeyIds {
    Ints(HashMap<i64, u32>),
    Texts(HashMap<String, u32>),
}

impl KeyIds {
    fn len(&self) -> usize {
        match self {
            KeyIds::Ints(m) => m.len(),
            KeyIds::Texts(m) => m.len(),
        }
    }
}

impl EntityIndex {
    fn new(parts: &[KeyPart], ts: &[Option<i64>]) -> EntityIndex {
        let rows = ts.len();
        let mut key_of: Vec<Option<u32>> = Vec::with_capacity(rows);
        let ids = match parts {
            [KeyPart::Ints(values)] => {
                let mut m: HashMap<i64, u32> = HashMap::new();
                for v in values {
                    key_of.push(v.map(|v| {
                        let next = m.len() as u32;
                        *m.entry(v).or_insert(next)
                    }));
                }
                KeyIds::Ints(m)
            }
            _ => {
                let mut m: HashMap<String, u32> = HashMap::new();
                let mut key = String::new();
                for i in 0..rows {
                    key_of.push(write_key(parts, i, &mut key).then(|| {
                        let next = m.len() as u32;
                        match m.get(key.as_str()) {
                            Some(id) => *id,
                            None => {
                                m.insert(key.clone(), next);
                                next
                            }
                        }
                    }));
                }
                KeyIds::Texts(m)
            }
        };
        let keys = ids.len();
        // An entity row without a key or a time joins nothing: it is left out of the groups.
        let mut starts = vec![0u32; keys + 1];
        for (row, id) in key_of.iter().enumerate() {
            if let (Some(id), Some(_)) = (id, ts[row]) {
                starts[*id as usize + 1] += 1;
            }
        }
        for k in 0..keys {
            starts[k + 1] += starts[k];
        }
        let mut fill = starts.clone();
        let mut grouped = vec![(0i64, 0u32); starts[keys] as usize];
        for (row, id) in key_of.iter().enumerate() {
            if let (Some(id), Some(t)) = (id, ts[row]) {
                grouped[fill[*id as usize] as usize] = (t, row as u32);
                fill[*id as usize] += 1;
            }
        }
        for k in 0..keys {
            grouped[starts[k] as usize..starts[k + 1] as usize].sort_unstable();
        }
        EntityIndex {
            ids,
            starts,
            rows: grouped,
        }
    }

    /// The rows of key `id`, oldest first.
    fn group(&self, id: u32) -> (usize, &[(i64, u32)]) {
        let from = self.starts[id as usize] as usize;
        let to = self.starts[id as usize + 1] as usize;
        (from, &self.rows[from..to])
    }

    /// Row `i` of a source batch's key id, if the entity rows have that key.
    fn id(&self, parts: &[KeyPart], i: usize, key: &mut String) -> Option<u32> {
        match (&self.ids, parts) {
            (KeyIds::Ints(m), [KeyPart::Ints(values)]) => m.get(&values[i]?).copied(),
            (KeyIds::Texts(m), _) => write_key(parts, i, key)
                .then(|| m.get(key.as_str()).copied())
                .flatten(),
            // An integer entity key against a text source key (or the reverse): as text.
            (KeyIds::Ints(m), _) => {
                if !write_key(parts, i, key) {
                    return None;
                }
                m.get(&key.parse::<i64>().ok()?).copied()
            }
        }
    }
}

/// A source row's place in the join's order: newer event, then newer created time, then later
/// in the file wins.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Candidate {
    event: i64,
    created: i64,
    row: u64,
}

const NO_ROW: u64 = u64::MAX;

/// For each entity row, the source row it joins (`None` when none qualifies), reading the
/// source's key and time columns in batches. Memory is a few words per entity row: each entity
/// row keeps the best source row whose time falls between the previous entity row of its key
/// and its own; the answer for a row is then the newest of those at or before it, if it is
/// within the time to live.
fn point_in_time(
    index: &EntityIndex,
    entity_rows: usize,
    batches: impl Iterator<Item = Result<KeysAndTimes>>,
    ttl_micros: Option<i64>,
) -> Result<Vec<Option<u64>>> {
    let none = Candidate {
        event: i64::MIN,
        created: i64::MIN,
        row: NO_ROW,
    };
    // One slot per place in `index.rows`: the best source row in that row's time bucket.
    let mut best = vec![none; index.rows.len()];
    let mut offset = 0u64;
    let mut key = String::new();
    for batch in batches {
        let (parts, ts, created) = batch?;
        for (i, t) in ts.iter().enumerate() {
            let Some(event) = *t else { continue };
            let Some(id) = index.id(&parts, i, &mut key) else {
                continue;
            };
            let (from, group) = index.group(id);
            // The first entity row at or after the event: its bucket holds the event.
            let at = group.partition_point(|(e, _)| *e < event);
            if at == group.len() {
                continue;
            }
            let candidate = Candidate {
                event,
                created: created.as_ref().and_then(|c| c[i]).unwrap_or(i64::MIN),
                row: offset + i as u64,
            };
            let slot = &mut best[from + at];
            if slot.row == NO_ROW || candidate > *slot {
                *slot = candidate;
            }
        }
        offset += ts.len() as u64;
    }
    let mut joined = vec![None; entity_rows];
    for id in 0..index.ids.len() as u32 {
        let (from, group) = index.group(id);
        let mut newest = none;
        for (j, (entity_ts, row)) in group.iter().enumerate() {
            let bucket = best[from + j];
            if bucket.row != NO_ROW {
                newest = bucket;
            }
            let fresh = ttl_micros.is_none_or(|ttl| newest.event >= entity_ts.saturating_sub(ttl));
            if newest.row != NO_ROW && fresh {
                joined[*row as usize] = Some(newest.row);
            }
        }
    }
    Ok(joined)
}

/// The values of `columns` of the source rows `joined` names, in entity row order (null where
/// no row joined), reading the source in batches again and keeping only the rows taken.
fn gather(path: &Path, columns: &[String], joined: &[Option<u64>]) -> Result<Vec<ArrayRef>> {
    // (source row, entity row), in file order.
    let mut wanted: Vec<(u64, u32)> = joined
        .iter()
        .enumerate()
        .filter_map(|(e, r)| r.map(|r| (r, e as u32)))
        .collect();
    wanted.sort_unstable();
    let mut parts: Vec<Vec<ArrayRef>> = vec![Vec::new(); columns.len()];
    let mut next = 0usize;
    let mut offset = 0u64;
    let mut kinds: Vec<Option<arrow_schema::DataType>> = vec![None; columns.len()];
    for batch in open(path, columns)? {
        let batch = batch.map_err(|e| Error::invalid(format!("{}: {e}", path.display())))?;
        let end = offset + batch.num_rows() as u64;
        let from = next;
        while next < wanted.len() && wanted[next].0 < end {
            next += 1;
        }
        let local: UInt32Array = wanted[from..next]
            .iter()
            .map(|(r, _)| (r - offset) as u32)
            .collect();
        for (j, name) in columns.iter().enumerate() {
            let values = column(&batch, name)?;
            kinds[j] = Some(values.data_type().clone());
            if !local.is_empty() {
                parts[j].push(
                    arrow_select::take::take(values.as_ref(), &local, None)
                        .map_err(|e| Error::invalid(format!("feature {name}: {e}")))?,
                );
            }
        }
        offset = end;
    }
    // Taken values are in file order: place them at their entity rows.
    let mut place = vec![None; joined.len()];
    for (k, (_, e)) in wanted.iter().enumerate() {
        place[*e as usize] = Some(k as u32);
    }
    let place: UInt32Array = place.into_iter().collect();
    columns
        .iter()
        .zip(parts)
        .zip(kinds)
        .map(|((name, part), kind)| {
            let kind = kind.unwrap_or(arrow_schema::DataType::Null);
            let taken = if part.is_empty() {
                arrow_array::new_empty_array(&kind)
            } else {
                let refs: Vec<&dyn Array> = part.iter().map(|a| a.as_ref()).collect();
                arrow_select::concat::concat(&refs)
                    .map_err(|e| Error::invalid(format!("feature {name}: {e}")))?
            };
            arrow_select::take::take(taken.as_ref(), &place, None)
                .map_err(|e| Error::invalid(format!("feature {name}: {e}")))
        })
        .collect()
}

/// Joins the features onto the entity rows; returns the table (entity columns as given, then
/// one column per feature) and what matched. The source files are read in batches, twice per
/// view (keys and times, then the values of the rows taken): memory follows the entity rows
/// and the output, not the sources.
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
            key_parts.push(KeyPart::read(entity_arrays[i].as_ref(), k)?);
        }
        let index = EntityIndex::new(&key_parts, &entity_ts);
        drop(key_parts);

        let wanted: Vec<&FeatureRef> = request
            .features
            .iter()
            .filter(|f| f.view == view_name)
            .collect();
        let mut join_columns: Vec<String> = keys.clone();
        join_columns.push(source.timestamp_field.clone());
        if let Some(c) = &source.created_timestamp_column {
            join_columns.push(c.clone());
        }
        let path = request.files.path(source)?;
        let shown = path.display().to_string();
        let batches = open(path, &join_columns)?.map(|batch| {
            let batch = batch.map_err(|e| Error::invalid(format!("{shown}: {e}")))?;
            keys_and_times(&batch, &keys, source)
        });
        let ttl = (view.ttl.0 > 0).then(|| view.ttl.0 as i64 * 1_000_000);
        let joined = point_in_time(&index, rows, batches, ttl)?;
        drop(index);
        matched.push((view_name.to_string(), joined.iter().flatten().count()));
        let feature_columns: Vec<String> = wanted.iter().map(|f| f.feature.clone()).collect();
        let values = gather(path, &feature_columns, &joined)?;
        for (f, taken) in wanted.iter().zip(values) {
            let name = f.column(request.full_feature_names);
            if names.contains(&name) {
                return Err(Error::invalid(format!(
                    "two columns would be named {name}: ask for full feature names (view__feature)"
                )));
            }
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

    fn texts(v: &[&str]) -> KeyPart {
        KeyPart::Texts(v.iter().map(|s| Some(s.to_string())).collect())
    }

    /// The join of text-keyed entity rows against a source read in batches of `batch` rows.
    fn join(
        entity_keys: &[&str],
        entity_ts: &[Option<i64>],
        source_keys: &[&str],
        source_ts: &[Option<i64>],
        created: Option<&[Option<i64>]>,
        ttl: Option<i64>,
        batch: usize,
    ) -> Vec<Option<u64>> {
        let index = EntityIndex::new(&[texts(entity_keys)], entity_ts);
        let batches: Vec<_> = (0..source_keys.len())
            .step_by(batch)
            .map(|from| {
                let to = (from + batch).min(source_keys.len());
                Ok((
                    vec![texts(&source_keys[from..to])],
                    source_ts[from..to].to_vec(),
                    created.map(|c| c[from..to].to_vec()),
                ))
            })
            .collect();
        point_in_time(&index, entity_keys.len(), batches.into_iter(), ttl).unwrap()
    }

    #[test]
    fn the_newest_row_at_or_before_the_entity_time_within_the_ttl() {
        // Source rows for entity a at times 10, 20, 20 (created 7 then 5), 30; b at 15.
        let source_keys = ["a", "a", "a", "a", "b"];
        let source_ts = [Some(10), Some(20), Some(20), Some(30), Some(15)];
        let created = [Some(1), Some(7), Some(5), Some(1), Some(1)];
        let entity_keys = ["a", "a", "a", "a", "b", "c"];
        let entity_ts = [Some(5), Some(10), Some(25), Some(30), Some(100), Some(50)];
        for batch in [1, 2, 5] {
            let joined = join(
                &entity_keys,
                &entity_ts,
                &source_keys,
                &source_ts,
                Some(&created),
                None,
                batch,
            );
            // Before any row; exactly at 10; at 25 the tie at 20 goes to created 7 (row 1);
            // the row at 30 itself; b's only row; c unknown.
            assert_eq!(joined, vec![None, Some(0), Some(1), Some(3), Some(4), None]);
            // A ttl of 10: at 100 b's row (15) is too old.
            let joined = join(
                &entity_keys,
                &entity_ts,
                &source_keys,
                &source_ts,
                Some(&created),
                Some(10),
                batch,
            );
            assert_eq!(joined, vec![None, Some(0), Some(1), Some(3), None, None]);
        }
        let edge = join(
            &["b"],
            &[Some(25)],
            &source_keys,
            &source_ts,
            None,
            Some(10),
            2,
        );
        assert_eq!(edge, vec![Some(4)], "15 >= 25 - 10");
        // Without created times, the later of two rows at one time wins.
        let tie = join(&["a"], &[Some(20)], &source_keys, &source_ts, None, None, 1);
        assert_eq!(tie, vec![Some(2)]);
    }

    /// The bucketed join equals the plain definition (for each entity row, the maximum over
    /// all qualifying source rows) on random data, integer keys and text keys alike.
    #[test]
    fn the_streamed_join_equals_the_definition() {
        let mut state = 3u64;
        let mut next = |n: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % n
        };
        for round in 0..40 {
            let keys = 1 + next(6);
            let sources = next(60) as usize;
            let entities = next(40) as usize;
            let src_key: Vec<i64> = (0..sources).map(|_| next(keys) as i64).collect();
            let src_ts: Vec<Option<i64>> = (0..sources)
                .map(|_| (next(10) > 0).then(|| next(30) as i64))
                .collect();
            let src_created: Vec<Option<i64>> =
                (0..sources).map(|_| Some(next(3) as i64)).collect();
            let ent_key: Vec<Option<i64>> = (0..entities)
                .map(|_| (next(10) > 0).then(|| next(keys + 1) as i64))
                .collect();
            let ent_ts: Vec<Option<i64>> = (0..entities)
                .map(|_| (next(10) > 0).then(|| next(35) as i64))
                .collect();
            let ttl = (round % 2 == 0).then(|| next(10) as i64);
            let expected: Vec<Option<u64>> = (0..entities)
                .map(|e| {
                    let (k, t) = (ent_key[e]?, ent_ts[e]?);
                    (0..sources)
                        .filter(|&r| src_key[r] == k)
                        .filter_map(|r| src_ts[r].map(|s| (s, src_created[r].unwrap_or(0), r)))
                        .filter(|(s, _, _)| *s <= t && ttl.is_none_or(|l| *s >= t - l))
                        .max()
                        .map(|(_, _, r)| r as u64)
                })
                .collect();
            let index = EntityIndex::new(&[KeyPart::Ints(ent_key.clone())], &ent_ts);
            let batches = src_key.chunks(7).enumerate().map(|(c, part)| {
                let from = c * 7;
                let to = from + part.len();
                Ok((
                    vec![KeyPart::Ints(part.iter().map(|k| Some(*k)).collect())],
                    src_ts[from..to].to_vec(),
                    Some(src_created[from..to].to_vec()),
                ))
            });
            let got = point_in_time(&index, entities, batches, ttl).unwrap();
            assert_eq!(got, expected, "round {round}");
            // Text keys on the entity side, integers on the source side: the same join.
            let text_keys =
                KeyPart::Texts(ent_key.iter().map(|k| k.map(|k| k.to_string())).collect());
            let index = EntityIndex::new(&[text_keys], &ent_ts);
            let batches = std::iter::once(Ok((
                vec![KeyPart::Ints(src_key.iter().map(|k| Some(*k)).collect())],
                src_ts.clone(),
                Some(src_created.clone()),
            )));
            let got = point_in_time(&index, entities, batches, ttl).unwrap();
            assert_eq!(got, expected, "round {round} (text keys)");
        }
    }
}
