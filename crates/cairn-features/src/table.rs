//! Parquet columns as the feature store reads them: join keys as text, timestamps as
//! microseconds since the epoch, feature values as the file's own arrays.
use crate::error::{Error, Result};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Int32Type, Int64Type, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::fs::File;
use std::path::Path;

/// Separates the parts of a compound entity key.
pub(crate) const KEY_SEPARATOR: char = '\u{1f}';

/// Opens a Parquet file for batches of the named columns (in the file's order); a missing
/// column is an error that lists the file's columns.
pub(crate) fn open(
    path: &Path,
    columns: &[String],
) -> Result<parquet::arrow::arrow_reader::ParquetRecordBatchReader> {
    let bad = |e: parquet::errors::ParquetError| Error::invalid(format!("{}: {e}", path.display()));
    let file = File::open(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(bad)?
        .with_batch_size(65_536);
    let names: Vec<String> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    for c in columns {
        if !names.contains(c) {
            return Err(Error::invalid(format!(
                "{}: no column {c} (columns: {})",
                path.display(),
                names.join(", ")
            )));
        }
    }
    let roots: Vec<usize> = names
        .iter()
        .enumerate()
        .filter(|(_, n)| columns.contains(n))
        .map(|(i, _)| i)
        .collect();
    let mask = parquet::arrow::ProjectionMask::roots(builder.parquet_schema(), roots);
    builder.with_projection(mask).build().map_err(bad)
}

/// Reads the named columns of a whole file, in the order asked.
pub(crate) fn read_all(path: &Path, columns: &[String]) -> Result<(Vec<ArrayRef>, usize)> {
    let mut parts: Vec<Vec<ArrayRef>> = vec![Vec::new(); columns.len()];
    let mut rows = 0;
    for batch in open(path, columns)? {
        let batch = batch.map_err(|e| Error::invalid(format!("{}: {e}", path.display())))?;
        rows += batch.num_rows();
        for (part, name) in parts.iter_mut().zip(columns) {
            part.push(column(&batch, name)?);
        }
    }
    let mut out = Vec::with_capacity(columns.len());
    for (part, name) in parts.into_iter().zip(columns) {
        let refs: Vec<&dyn Array> = part.iter().map(|a| a.as_ref()).collect();
        out.push(if refs.is_empty() {
            arrow_array::new_empty_array(&DataType::Null)
        } else {
            arrow_select::concat::concat(&refs)
                .map_err(|e| Error::invalid(format!("{}: column {name}: {e}", path.display())))?
        });
    }
    Ok((out, rows))
}

pub(crate) fn column(batch: &RecordBatch, name: &str) -> Result<ArrayRef> {
    batch
        .column_by_name(name)
        .cloned()
        .ok_or_else(|| Error::invalid(format!("no column {name}")))
}

/// A timestamp column as microseconds since the epoch (naive timestamps are UTC, as Feast
/// takes them); `None` where null.
pub(crate) fn micros(array: &dyn Array, name: &str) -> Result<Vec<Option<i64>>> {
    let scaled = |v: Option<i64>, f: fn(i64) -> i64| v.map(f);
    Ok(match array.data_type() {
        DataType::Timestamp(TimeUnit::Microsecond, _) => array
            .as_primitive::<TimestampMicrosecondType>()
            .iter()
            .collect(),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => array
            .as_primitive::<TimestampNanosecondType>()
            .iter()
            .map(|v| scaled(v, |n| n.div_euclid(1000)))
            .collect(),
        DataType::Timestamp(TimeUnit::Millisecond, _) => array
            .as_primitive::<TimestampMillisecondType>()
            .iter()
            .map(|v| scaled(v, |n| n * 1000))
            .collect(),
        DataType::Timestamp(TimeUnit::Second, _) => array
            .as_primitive::<TimestampSecondType>()
            .iter()
            .map(|v| scaled(v, |n| n * 1_000_000))
            .collect(),
        other => {
            return Err(Error::invalid(format!(
                "column {name} holds {other}, not timestamps"
            )))
        }
    })
}

/// One key part per row as text (integers in decimal); `None` where null.
pub(crate) fn key_texts(array: &dyn Array, name: &str) -> Result<Vec<Option<String>>> {
    Ok(match array.data_type() {
        DataType::Int64 => array
            .as_primitive::<Int64Type>()
            .iter()
            .map(|v| v.map(|v| v.to_string()))
            .collect(),
        DataType::Int32 => array
            .as_primitive::<Int32Type>()
            .iter()
            .map(|v| v.map(|v| v.to_string()))
            .collect(),
        DataType::UInt64 => array
            .as_primitive::<UInt64Type>()
            .iter()
            .map(|v| v.map(|v| v.to_string()))
            .collect(),
        DataType::UInt32 => array
            .as_primitive::<UInt32Type>()
            .iter()
            .map(|v| v.map(|v| v.to_string()))
            .collect(),
        DataType::Utf8 => array
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(String::from))
            .collect(),
        DataType::LargeUtf8 => array
            .as_string::<i64>()
            .iter()
            .map(|v| v.map(String::from))
            .collect(),
        DataType::Dictionary(_, value) if **value == DataType::Utf8 => {
            let dict = array.as_any_dictionary();
            let values = key_texts(dict.values().as_ref(), name)?;
            let keys = dict.normalized_keys();
            (0..array.len())
                .map(|i| {
                    if array.is_null(i) {
                        None
                    } else {
                        values.get(keys[i]).cloned().flatten()
                    }
                })
                .collect()
        }
        other => {
            return Err(Error::invalid(format!(
                "join key {name} holds {other}: integers or text"
            )))
        }
    })
}

/// A key column read once per batch: integers kept as numbers (turned into text only for
/// the rows that need it), text as text.
pub(crate) enum KeyPart {
    Ints(Vec<Option<i64>>),
    Texts(Vec<Option<String>>),
}

impl KeyPart {
    pub(crate) fn read(array: &dyn Array, name: &str) -> Result<KeyPart> {
        Ok(match array.data_type() {
            DataType::Int64 => KeyPart::Ints(array.as_primitive::<Int64Type>().iter().collect()),
            DataType::Int32 => KeyPart::Ints(
                array
                    .as_primitive::<Int32Type>()
                    .iter()
                    .map(|v| v.map(i64::from))
                    .collect(),
            ),
            _ => KeyPart::Texts(key_texts(array, name)?),
        })
    }
}

/// Writes row `i`'s entity key into `out` (cleared first); false when a part is null.
pub(crate) fn write_key(parts: &[KeyPart], i: usize, out: &mut String) -> bool {
    use std::fmt::Write;
    out.clear();
    for (j, part) in parts.iter().enumerate() {
        if j > 0 {
            out.push(KEY_SEPARATOR);
        }
        match part {
            KeyPart::Ints(v) => match v[i] {
                Some(n) => {
                    let _ = write!(out, "{n}");
                }
                None => return false,
            },
            KeyPart::Texts(v) => match &v[i] {
                Some(t) => out.push_str(t),
                None => return false,
            },
        }
    }
    true
}

/// A source batch's entity key parts, event times and created times (`None` without a created
/// column): what both the point-in-time join and materialization read of every row.
pub(crate) type KeysAndTimes = (Vec<KeyPart>, Vec<Option<i64>>, Option<Vec<Option<i64>>>);

/// Reads [`KeysAndTimes`] from a batch of `source`.
pub(crate) fn keys_and_times(
    batch: &RecordBatch,
    keys: &[String],
    source: &crate::definitions::Source,
) -> Result<KeysAndTimes> {
    let parts = keys
        .iter()
        .map(|k| KeyPart::read(column(batch, k)?.as_ref(), k))
        .collect::<Result<Vec<_>>>()?;
    let ts = micros(
        column(batch, &source.timestamp_field)?.as_ref(),
        &source.timestamp_field,
    )?;
    let created = match &source.created_timestamp_column {
        Some(c) => Some(micros(column(batch, c)?.as_ref(), c)?),
        None => None,
    };
    Ok((parts, ts, created))
}
