//! CSV sources. A CSV file has no types, so it is read once into Parquet, each column typed as
//! the definitions declare it (join keys by their entity's value type, the timestamp columns as
//! UTC times, features by their dtype), a batch at a time; everything else reads the Parquet.
//! An empty cell is null; a cell that does not parse as its column's type is an error naming
//! the line and the column.
use crate::definitions::{Definitions, Dtype, Source, ValueType};
use crate::error::{Error, Result};
use crate::online::parse_time_micros;
use arrow_array::builder::{
    BooleanBuilder, Float32Builder, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use std::path::Path;
use std::sync::Arc;

/// What a CSV column becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    Int32,
    Int64,
    Float32,
    Float64,
    Bool,
    Text,
    /// A time: RFC 3339 or `YYYY-MM-DD[ HH:MM:SS[.ffffff]]` (UTC), or seconds since the epoch.
    Time,
}

impl ColumnType {
    fn data_type(self) -> DataType {
        match self {
            ColumnType::Int32 => DataType::Int32,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Float32 => DataType::Float32,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::Bool => DataType::Boolean,
            ColumnType::Text => DataType::Utf8,
            ColumnType::Time => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        }
    }

    fn of_dtype(dtype: Dtype) -> ColumnType {
        match dtype {
            Dtype::Int32 => ColumnType::Int32,
            Dtype::Int64 => ColumnType::Int64,
            Dtype::Float32 => ColumnType::Float32,
            Dtype::Float64 => ColumnType::Float64,
            Dtype::String => ColumnType::Text,
            Dtype::Bool => ColumnType::Bool,
            Dtype::UnixTimestamp => ColumnType::Time,
        }
    }
}

/// Whether a source file is CSV (by its name).
pub fn is_csv(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".csv")
}

/// The columns of `source` the definitions read, with the type each is read as; two views
/// that declare one column with different types are refused.
pub fn csv_columns(d: &Definitions, source: &Source) -> Result<Vec<(String, ColumnType)>> {
    let mut out: Vec<(String, ColumnType)> = Vec::new();
    let mut add = |name: &str, t: ColumnType, what: &str| -> Result<()> {
        match out.iter().find(|(n, _)| n == name) {
            Some((_, existing)) if *existing != t => Err(Error::invalid(format!(
                "source {}: column {name} is read as {existing:?} and as {t:?} ({what})",
                source.name
            ))),
            Some(_) => Ok(()),
            None => {
                out.push((name.to_string(), t));
                Ok(())
            }
        }
    };
    add(&source.timestamp_field, ColumnType::Time, "timestamp_field")?;
    if let Some(c) = &source.created_timestamp_column {
        add(c, ColumnType::Time, "created_timestamp_column")?;
    }
    for view in d.feature_views.iter().filter(|v| v.source == source.name) {
        for key in d.join_keys(view) {
            let t = match d.key_type(&key) {
                Some(ValueType::String) => ColumnType::Text,
                _ => ColumnType::Int64,
            };
            add(&key, t, &format!("join key of {}", view.name))?;
        }
        for f in &view.schema {
            add(
                &f.name,
                ColumnType::of_dtype(f.dtype),
                &format!("feature of {}", view.name),
            )?;
        }
    }
    Ok(out)
}

/// A column being filled.
enum Builder {
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Bool(BooleanBuilder),
    Text(StringBuilder),
    Time(TimestampMicrosecondBuilder),
}

impl Builder {
    fn new(t: ColumnType) -> Builder {
        match t {
            ColumnType::Int32 => Builder::Int32(Int32Builder::new()),
            ColumnType::Int64 => Builder::Int64(Int64Builder::new()),
            ColumnType::Float32 => Builder::Float32(Float32Builder::new()),
            ColumnType::Float64 => Builder::Float64(Float64Builder::new()),
            ColumnType::Bool => Builder::Bool(BooleanBuilder::new()),
            ColumnType::Text => Builder::Text(StringBuilder::new()),
            ColumnType::Time => Builder::Time(TimestampMicrosecondBuilder::new()),
        }
    }

    /// Appends one cell; `Err(())` when it does not parse.
    fn push(&mut self, cell: &str) -> std::result::Result<(), ()> {
        let text = cell.trim();
        if text.is_empty() {
            match self {
                Builder::Int32(b) => b.append_null(),
                Builder::Int64(b) => b.append_null(),
                Builder::Float32(b) => b.append_null(),
                Builder::Float64(b) => b.append_null(),
                Builder::Bool(b) => b.append_null(),
                Builder::Text(b) => b.append_null(),
                Builder::Time(b) => b.append_null(),
            }
            return Ok(());
        }
        match self {
            Builder::Int32(b) => b.append_value(text.parse().map_err(|_| ())?),
            Builder::Int64(b) => b.append_value(text.parse().map_err(|_| ())?),
            Builder::Float32(b) => b.append_value(text.parse().map_err(|_| ())?),
            Builder::Float64(b) => b.append_value(text.parse().map_err(|_| ())?),
            Builder::Bool(b) => b.append_value(match text.to_ascii_lowercase().as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => return Err(()),
            }),
            Builder::Text(b) => b.append_value(cell),
            Builder::Time(b) => {
                let value = match text.parse::<i64>() {
                    Ok(seconds) => serde_json::Value::from(seconds),
                    Err(_) => serde_json::Value::from(text),
                };
                b.append_value(parse_time_micros(&value).ok_or(())?);
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Int32(b) => Arc::new(b.finish()),
            Builder::Int64(b) => Arc::new(b.finish()),
            Builder::Float32(b) => Arc::new(b.finish()),
            Builder::Float64(b) => Arc::new(b.finish()),
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Text(b) => Arc::new(b.finish()),
            Builder::Time(b) => Arc::new(b.finish().with_timezone("UTC")),
        }
    }
}

const BATCH_ROWS: usize = 65_536;

/// Reads `csv` (a header line, then rows) into a Parquet file at `out` with `columns`, typed;
/// returns the number of rows. The file is written next to `out` and renamed into place, so
/// `out` is either whole or absent.
pub fn csv_to_parquet(csv: &Path, out: &Path, columns: &[(String, ColumnType)]) -> Result<u64> {
    let shown = csv.display().to_string();
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| Error::Io { path, source }
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_path(csv)
        .map_err(|e| Error::invalid(format!("{shown}: {e}")))?;
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| Error::invalid(format!("{shown}: {e}")))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let positions: Vec<usize> = columns
        .iter()
        .map(|(name, _)| {
            header.iter().position(|h| h == name).ok_or_else(|| {
                Error::invalid(format!(
                    "{shown}: no column {name} (columns: {})",
                    header.join(", ")
                ))
            })
        })
        .collect::<Result<_>>()?;
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, t)| Field::new(name, t.data_type(), true))
            .collect::<Vec<_>>(),
    ));
    let partial = out.with_extension("parquet.partial");
    let file = std::fs::File::create(&partial).map_err(io(&partial))?;
    let mut writer = ArrowWriter::try_new(file, schema.clone(), None)
        .map_err(|e| Error::invalid(format!("{}: {e}", partial.display())))?;
    let mut builders: Vec<Builder> = columns.iter().map(|(_, t)| Builder::new(*t)).collect();
    let mut in_batch = 0usize;
    let mut rows = 0u64;
    let flush = |builders: &mut Vec<Builder>, writer: &mut ArrowWriter<std::fs::File>| {
        let arrays: Vec<ArrayRef> = builders.iter_mut().map(Builder::finish).collect();
        let batch = RecordBatch::try_new(schema.clone(), arrays)
            .map_err(|e| Error::invalid(e.to_string()))?;
        writer
            .write(&batch)
            .map_err(|e| Error::invalid(format!("{}: {e}", partial.display())))
    };
    let mut record = csv::StringRecord::new();
    loop {
        let more = reader
            .read_record(&mut record)
            .map_err(|e| Error::invalid(format!("{shown}: {e}")))?;
        if !more {
            break;
        }
        for ((builder, &at), (name, t)) in builders.iter_mut().zip(&positions).zip(columns) {
            let cell = record.get(at).unwrap_or("");
            if builder.push(cell).is_err() {
                let line = record.position().map_or(0, |p| p.line());
                return Err(Error::invalid(format!(
                    "{shown} line {line}: column {name} holds {cell:?}, which is not {t:?}"
                )));
            }
        }
        in_batch += 1;
        rows += 1;
        if in_batch == BATCH_ROWS {
            flush(&mut builders, &mut writer)?;
            in_batch = 0;
        }
    }
    if in_batch > 0 || rows == 0 {
        flush(&mut builders, &mut writer)?;
    }
    writer
        .close()
        .map_err(|e| Error::invalid(format!("{}: {e}", partial.display())))?;
    std::fs::rename(&partial, out).map_err(io(out))?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
    use arrow_array::Array;

    #[test]
    fn a_csv_becomes_typed_parquet_and_bad_cells_name_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("s.csv");
        std::fs::write(
            &csv,
            "driver_id,event_timestamp,rate,city,extra\n\
             1,2026-11-01T00:00:00Z,0.5,oslo,x\n\
             2,2026-11-01 01:00:00.25,,\"lima, pe\",y\n\
             3,1793491200,1e-3,,z\n",
        )
        .unwrap();
        let out = dir.path().join("s.parquet");
        let columns = vec![
            ("event_timestamp".to_string(), ColumnType::Time),
            ("driver_id".to_string(), ColumnType::Int64),
            ("rate".to_string(), ColumnType::Float64),
            ("city".to_string(), ColumnType::Text),
        ];
        assert_eq!(csv_to_parquet(&csv, &out, &columns).unwrap(), 3);
        let file = std::fs::File::open(&out).unwrap();
        let batch = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let times = batch.column(0).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(times.value(0), 1_793_491_200_000_000);
        assert_eq!(times.value(1), 1_793_494_800_250_000);
        assert_eq!(times.value(2), 1_793_491_200_000_000);
        assert_eq!(batch.column(1).as_primitive::<Int64Type>().value(2), 3);
        let rates = batch.column(2).as_primitive::<Float64Type>();
        assert!(rates.is_null(1));
        assert_eq!(rates.value(2), 1e-3);
        assert_eq!(batch.column(3).as_string::<i32>().value(1), "lima, pe");
        assert!(batch.column(3).is_null(2));

        std::fs::write(
            &csv,
            "driver_id,event_timestamp,rate,city\n1,2026-11-01,abc,x\n",
        )
        .unwrap();
        let err = csv_to_parquet(&csv, &out, &columns)
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("rate"), "{err}");
        let missing = vec![("speed".to_string(), ColumnType::Float64)];
        let err = csv_to_parquet(&csv, &out, &missing)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no column speed"), "{err}");
    }
}
