//! Reading CSV/TSV and Parquet files as a stream of Arrow record batches whose columns are
//! one of four types (`Int64`, `Float64`, `Boolean`, `Utf8`), so memory stays bounded by the
//! batch size whatever the file size.
//!
//! CSV columns are typed the way pandas' `read_csv` types them, because the numbers users
//! compare with come from Great Expectations and Evidently running on pandas: the same
//! missing-value tokens (`""`, `NA`, `NaN`, `null`, ...), integers when every present value is
//! one, floats when every present value parses as one, booleans only from `True/TRUE/true`
//! and `False/FALSE/false`, text otherwise. This takes one extra pass over the file (parsing
//! only, no values kept), since a type seen in the first rows can be contradicted by the last.
use crate::error::{Error, Result};
use arrow_array::builder::{BooleanBuilder, Float64Builder, Int64Builder, StringBuilder};
use arrow_array::{Array, ArrayRef, RecordBatch, RecordBatchOptions, RecordBatchReader};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use cairn_data::columns::{convert, is_float, is_integer};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Rows per record batch.
pub const BATCH_ROWS: usize = 65_536;

/// A column's value type after reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    /// 64-bit integers.
    Int,
    /// 64-bit floats.
    Float,
    /// Booleans.
    Bool,
    /// Text.
    Str,
}

impl ValueType {
    fn arrow(self) -> DataType {
        match self {
            ValueType::Int => DataType::Int64,
            ValueType::Float => DataType::Float64,
            ValueType::Bool => DataType::Boolean,
            ValueType::Str => DataType::Utf8,
        }
    }

    /// Whether values are numbers.
    pub fn is_numeric(self) -> bool {
        matches!(self, ValueType::Int | ValueType::Float)
    }

    /// The pandas dtype name a column of this type gets, given whether it holds missing
    /// values (pandas turns integers with gaps into floats, booleans with gaps into objects).
    pub fn pandas_dtype(self, has_missing: bool) -> &'static str {
        match (self, has_missing) {
            (ValueType::Int, false) => "int64",
            (ValueType::Int, true) | (ValueType::Float, _) => "float64",
            (ValueType::Bool, false) => "bool",
            (ValueType::Bool, true) | (ValueType::Str, _) => "object",
        }
    }
}

/// The file formats read here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values with a header row.
    Csv,
    /// Tab-separated values with a header row.
    Tsv,
    /// Apache Parquet.
    Parquet,
}

impl Format {
    /// The format a file name implies.
    pub fn of(path: &Path) -> Result<Format> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("csv") => Ok(Format::Csv),
            Some("tsv") | Some("tab") => Ok(Format::Tsv),
            Some("parquet") | Some("pq") => Ok(Format::Parquet),
            _ => Err(Error::Invalid(format!(
                "{}: not a table (expected a .csv, .tsv or .parquet file)",
                path.display()
            ))),
        }
    }
}

/// An open table: its normalised schema and a source of batches.
pub struct Table {
    path: PathBuf,
    schema: SchemaRef,
    all_columns: Vec<String>,
    source: Source,
}

enum Source {
    Csv {
        reader: Box<csv::Reader<File>>,
        types: Vec<ValueType>,
        record: csv::ByteRecord,
        line: u64,
    },
    Parquet(ParquetRecordBatchReader),
}

/// pandas' default missing-value tokens.
const NA_TOKENS: &[&[u8]] = &[
    b"",
    b"#N/A",
    b"#N/A N/A",
    b"#NA",
    b"-1.#IND",
    b"-1.#QNAN",
    b"-NaN",
    b"-nan",
    b"1.#IND",
    b"1.#QNAN",
    b"<NA>",
    b"N/A",
    b"NA",
    b"NULL",
    b"NaN",
    b"None",
    b"n/a",
    b"nan",
    b"null",
];

fn is_na(v: &[u8]) -> bool {
    NA_TOKENS.contains(&v)
}

fn parse_int(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?.trim();
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_float(v: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(v).ok()?.trim();
    if s.is_empty() {
        return None;
    }
    s.parse().ok()
}

fn parse_bool(v: &[u8]) -> Option<bool> {
    match v {
        b"True" | b"TRUE" | b"true" => Some(true),
        b"False" | b"FALSE" | b"false" => Some(false),
        _ => None,
    }
}

/// What a pass over a CSV column has ruled out.
#[derive(Clone, Copy)]
struct Candidates {
    int: bool,
    float: bool,
    bool: bool,
    any: bool,
}

impl Candidates {
    fn new() -> Self {
        Candidates {
            int: true,
            float: true,
            bool: true,
            any: false,
        }
    }

    fn see(&mut self, v: &[u8]) {
        if is_na(v) {
            return;
        }
        self.any = true;
        if self.int && parse_int(v).is_none() {
            self.int = false;
        }
        if self.float && !self.int && parse_float(v).is_none() {
            self.float = false;
        }
        if self.bool && parse_bool(v).is_none() {
            self.bool = false;
        }
    }

    fn decide(self) -> ValueType {
        if !self.any {
            ValueType::Float
        } else if self.int {
            ValueType::Int
        } else if self.float {
            ValueType::Float
        } else if self.bool {
            ValueType::Bool
        } else {
            ValueType::Str
        }
    }
}

fn csv_reader(path: &Path, delimiter: u8) -> Result<csv::Reader<File>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    Ok(csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .flexible(false)
        .from_reader(file))
}

fn csv_error(path: &Path, e: csv::Error) -> Error {
    Error::Invalid(format!("{}: {e}", path.display()))
}

impl Table {
    /// Opens a CSV/TSV or Parquet file; CSV types are inferred by a first pass.
    pub fn open(path: &Path) -> Result<Table> {
        let format = Format::of(path)?;
        match format {
            Format::Csv | Format::Tsv => {
                let delimiter = if format == Format::Csv { b',' } else { b'\t' };
                let mut reader = csv_reader(path, delimiter)?;
                let names: Vec<String> = reader
                    .headers()
                    .map_err(|e| csv_error(path, e))?
                    .iter()
                    .map(str::to_owned)
                    .collect();
                let mut candidates = vec![Candidates::new(); names.len()];
                let mut record = csv::ByteRecord::new();
                while reader
                    .read_byte_record(&mut record)
                    .map_err(|e| csv_error(path, e))?
                {
                    for (c, v) in candidates.iter_mut().zip(record.iter()) {
                        c.see(v);
                    }
                }
                let types: Vec<ValueType> =
                    candidates.into_iter().map(Candidates::decide).collect();
                let fields: Vec<Field> = names
                    .iter()
                    .zip(&types)
                    .map(|(n, t)| Field::new(n, t.arrow(), true))
                    .collect();
                let mut reader = csv_reader(path, delimiter)?;
                reader.headers().map_err(|e| csv_error(path, e))?;
                Ok(Table {
                    path: path.to_owned(),
                    schema: Arc::new(Schema::new(fields)),
                    all_columns: names,
                    source: Source::Csv {
                        reader: Box::new(reader),
                        types,
                        record,
                        line: 1,
                    },
                })
            }
            Format::Parquet => Self::open_parquet(path, None, false),
        }
    }

    /// Opens a file reading only the named columns where the format allows it (Parquet
    /// reads just those column chunks; CSV is read whole). Names not in the file are ignored.
    /// [`Table::all_columns`] still lists every column.
    pub fn open_columns(path: &Path, columns: &[String]) -> Result<Table> {
        match Format::of(path)? {
            Format::Parquet => Self::open_parquet(path, Some(columns), true),
            _ => Self::open(path),
        }
    }

    /// With `dictionaries`, text columns come as `Dictionary(Int32, Utf8)` arrays (as Parquet
    /// usually stores them), so a caller can check each distinct value once per batch.
    fn open_parquet(path: &Path, columns: Option<&[String]>, dictionaries: bool) -> Result<Table> {
        let bad =
            |e: parquet::errors::ParquetError| Error::Invalid(format!("{}: {e}", path.display()));
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut builder = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(bad)?
            .with_batch_size(BATCH_ROWS);
        if dictionaries {
            let hinted: Vec<Field> = builder
                .schema()
                .fields()
                .iter()
                .map(|f| match f.data_type() {
                    DataType::Utf8 => f.as_ref().clone().with_data_type(DataType::Dictionary(
                        Box::new(DataType::Int32),
                        Box::new(DataType::Utf8),
                    )),
                    _ => f.as_ref().clone(),
                })
                .collect();
            let options = parquet::arrow::arrow_reader::ArrowReaderOptions::new()
                .with_schema(Arc::new(Schema::new(hinted)));
            let file = File::open(path).map_err(|e| Error::io(path, e))?;
            builder = ParquetRecordBatchReaderBuilder::try_new_with_options(file, options)
                .map_err(bad)?
                .with_batch_size(BATCH_ROWS);
        }
        let all_columns: Vec<String> = builder
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        if let Some(wanted) = columns {
            let roots: Vec<usize> = all_columns
                .iter()
                .enumerate()
                .filter(|(_, n)| wanted.contains(n))
                .map(|(i, _)| i)
                .collect();
            let mask = parquet::arrow::ProjectionMask::roots(builder.parquet_schema(), roots);
            builder = builder.with_projection(mask);
        }
        let reader = builder.build().map_err(bad)?;
        let fields: Vec<Field> = reader
            .schema()
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), normalised(f.data_type()), true))
            .collect();
        Ok(Table {
            path: path.to_owned(),
            schema: Arc::new(Schema::new(fields)),
            all_columns,
            source: Source::Parquet(reader),
        })
    }

    /// Every column of the file, read or not, in order.
    pub fn all_columns(&self) -> &[String] {
        &self.all_columns
    }

    /// Names of the columns read, in order.
    pub fn column_names(&self) -> Vec<String> {
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    /// Column names and types, normalised.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The value type of every column, in order.
    pub fn types(&self) -> Vec<ValueType> {
        self.schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Int64 => ValueType::Int,
                DataType::Float64 => ValueType::Float,
                DataType::Boolean => ValueType::Bool,
                _ => ValueType::Str,
            })
            .collect()
    }

    /// The next batch, or `None` at the end.
    pub fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        match &mut self.source {
            Source::Csv {
                reader,
                types,
                record,
                line,
            } => {
                let mut builders: Vec<ColumnBuilder> =
                    types.iter().map(|t| ColumnBuilder::new(*t)).collect();
                let mut rows = 0;
                while rows < BATCH_ROWS {
                    if !reader
                        .read_byte_record(record)
                        .map_err(|e| csv_error(&self.path, e))?
                    {
                        break;
                    }
                    *line += 1;
                    for (b, v) in builders.iter_mut().zip(record.iter()) {
                        b.push(v).map_err(|what| {
                            Error::Invalid(format!(
                                "{}: line {line}: {what} (the file changed while it was read?)",
                                self.path.display()
                            ))
                        })?;
                    }
                    rows += 1;
                }
                if rows == 0 {
                    return Ok(None);
                }
                let columns: Vec<ArrayRef> =
                    builders.into_iter().map(ColumnBuilder::finish).collect();
                batch(&self.schema, columns, rows).map(Some)
            }
            Source::Parquet(reader) => match reader.next() {
                None => Ok(None),
                Some(Err(e)) => Err(Error::Invalid(format!("{}: {e}", self.path.display()))),
                Some(Ok(read)) => {
                    let mut columns = Vec::with_capacity(read.num_columns());
                    for (col, field) in read.columns().iter().zip(self.schema.fields()) {
                        columns.push(normalise(col, field.data_type()).map_err(|e| {
                            Error::Invalid(format!(
                                "{}: column {}: {e}",
                                self.path.display(),
                                field.name()
                            ))
                        })?);
                    }
                    batch(&self.schema, columns, read.num_rows()).map(Some)
                }
            },
        }
    }
}

/// A batch of `rows` rows (explicit, so a batch with no column read still counts its rows).
fn batch(schema: &SchemaRef, columns: Vec<ArrayRef>, rows: usize) -> Result<RecordBatch> {
    RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )
    .map_err(|e| Error::Invalid(e.to_string()))
}

/// The one of the four types an Arrow type is read as.
fn normalised(t: &DataType) -> DataType {
    if is_text_dictionary(t) {
        t.clone()
    } else if is_integer(t) {
        DataType::Int64
    } else if is_float(t) {
        DataType::Float64
    } else if *t == DataType::Boolean {
        DataType::Boolean
    } else {
        DataType::Utf8
    }
}

/// `Dictionary(Int32, Utf8)`, which is kept as it is read.
pub fn is_text_dictionary(t: &DataType) -> bool {
    matches!(t, DataType::Dictionary(k, v) if **k == DataType::Int32 && **v == DataType::Utf8)
}

fn normalise(col: &ArrayRef, to: &DataType) -> std::result::Result<ArrayRef, String> {
    convert(col, to).ok_or_else(|| format!("values of type {} cannot be read", col.data_type()))
}

enum ColumnBuilder {
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    Str(StringBuilder),
}

impl ColumnBuilder {
    fn new(t: ValueType) -> Self {
        match t {
            ValueType::Int => ColumnBuilder::Int(Int64Builder::with_capacity(BATCH_ROWS)),
            ValueType::Float => ColumnBuilder::Float(Float64Builder::with_capacity(BATCH_ROWS)),
            ValueType::Bool => ColumnBuilder::Bool(BooleanBuilder::with_capacity(BATCH_ROWS)),
            ValueType::Str => ColumnBuilder::Str(StringBuilder::new()),
        }
    }

    fn push(&mut self, v: &[u8]) -> std::result::Result<(), String> {
        if is_na(v) {
            match self {
                ColumnBuilder::Int(b) => b.append_null(),
                ColumnBuilder::Float(b) => b.append_null(),
                ColumnBuilder::Bool(b) => b.append_null(),
                ColumnBuilder::Str(b) => b.append_null(),
            }
            return Ok(());
        }
        let bad = || {
            format!(
                "{:?} does not fit the column's type",
                String::from_utf8_lossy(v)
            )
        };
        match self {
            ColumnBuilder::Int(b) => b.append_value(parse_int(v).ok_or_else(bad)?),
            ColumnBuilder::Float(b) => b.append_value(parse_float(v).ok_or_else(bad)?),
            ColumnBuilder::Bool(b) => b.append_value(parse_bool(v).ok_or_else(bad)?),
            ColumnBuilder::Str(b) => b.append_value(String::from_utf8_lossy(v)),
        }
        Ok(())
    }

    fn finish(self) -> ArrayRef {
        match self {
            ColumnBuilder::Int(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Float(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Bool(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Str(mut b) => Arc::new(b.finish()),
        }
    }
}
