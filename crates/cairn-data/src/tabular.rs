//! Row and schema differences between two versions of a CSV/TSV or Parquet file.
//!
//! Rows are compared as a multiset on the columns both versions share (order-insensitive, as
//! a table has no inherent order): every row of A is counted in, every row of B counted out,
//! and what remains is rows removed (positive) and added (negative). A changed row shows as one
//! removed plus one added. Columns whose type changed are compared as text.
use crate::error::{Error, IoContext, Result};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_row::{RowConverter, SortField};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::HashMap;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::path::Path;

/// How two versions of a table differ.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableDiff {
    /// Rows in A.
    pub rows_a: u64,
    /// Rows in B.
    pub rows_b: u64,
    /// Rows of B not in A (on the shared columns).
    pub rows_added: u64,
    /// Rows of A not in B.
    pub rows_removed: u64,
    /// Columns only B has.
    pub columns_added: Vec<String>,
    /// Columns only A has.
    pub columns_removed: Vec<String>,
    /// Shared columns whose type changed: (column, type in A, type in B).
    pub type_changes: Vec<(String, String, String)>,
}

/// Whether a format can be diffed by rows.
pub fn is_tabular(format: &str) -> bool {
    matches!(format, "csv" | "tsv" | "parquet")
}

fn bad(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::invalid(format!("{}: cannot read as a table: {e}", path.display()))
}

/// Counts of row hashes, plus per-column types.
struct Side {
    columns: Vec<String>,
    types: Vec<String>,
    rows: u64,
}

fn finish(a: Side, b: Side, counts: HashMap<u64, i64>) -> TableDiff {
    let mut diff = TableDiff {
        rows_a: a.rows,
        rows_b: b.rows,
        ..Default::default()
    };
    for c in counts.values() {
        if *c > 0 {
            diff.rows_removed += *c as u64;
        } else {
            diff.rows_added += c.unsigned_abs();
        }
    }
    diff.columns_removed = a
        .columns
        .iter()
        .filter(|c| !b.columns.contains(c))
        .cloned()
        .collect();
    diff.columns_added = b
        .columns
        .iter()
        .filter(|c| !a.columns.contains(c))
        .cloned()
        .collect();
    for (i, c) in a.columns.iter().enumerate() {
        if let Some(j) = b.columns.iter().position(|x| x == c) {
            if a.types[i] != b.types[j] {
                diff.type_changes
                    .push((c.clone(), a.types[i].clone(), b.types[j].clone()));
            }
        }
    }
    diff
}

/// Diffs two tables of one format (`csv`, `tsv` or `parquet`).
pub fn diff_tables(a: &Path, b: &Path, format: &str) -> Result<TableDiff> {
    match format {
        "csv" => diff_delimited(a, b, b','),
        "tsv" => diff_delimited(a, b, b'\t'),
        "parquet" => diff_parquet(a, b),
        other => Err(Error::invalid(format!("cannot diff {other} files by rows"))),
    }
}

#[derive(Clone, Copy)]
struct Inferred {
    int: bool,
    float: bool,
    boolean: bool,
    any: bool,
}

impl Inferred {
    fn new() -> Self {
        Inferred {
            int: true,
            float: true,
            boolean: true,
            any: false,
        }
    }
    fn see(&mut self, v: &str) {
        if v.is_empty() {
            return;
        }
        self.any = true;
        if self.int && v.parse::<i64>().is_err() {
            self.int = false;
        }
        if self.float && v.parse::<f64>().is_err() {
            self.float = false;
        }
        if self.boolean && !matches!(v.to_ascii_lowercase().as_str(), "true" | "false") {
            self.boolean = false;
        }
    }
    fn name(&self) -> String {
        if !self.any {
            "empty"
        } else if self.int {
            "integer"
        } else if self.float {
            "float"
        } else if self.boolean {
            "boolean"
        } else {
            "string"
        }
        .into()
    }
}

fn delimited_header(path: &Path, delimiter: u8) -> Result<csv::Reader<File>> {
    let file = File::open(path).at(path)?;
    Ok(csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(file))
}

fn delimited_pass(
    path: &Path,
    delimiter: u8,
    project: &dyn Fn(&[String]) -> Vec<Option<usize>>,
    counts: &mut HashMap<u64, i64>,
    sign: i64,
) -> Result<Side> {
    let mut reader = delimited_header(path, delimiter)?;
    let columns: Vec<String> = reader
        .headers()
        .map_err(|e| bad(path, e))?
        .iter()
        .map(str::to_owned)
        .collect();
    let picks = project(&columns);
    let mut types = vec![Inferred::new(); columns.len()];
    let mut record = csv::ByteRecord::new();
    let mut rows = 0u64;
    while reader
        .read_byte_record(&mut record)
        .map_err(|e| bad(path, e))?
    {
        rows += 1;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for p in &picks {
            let field = p.and_then(|i| record.get(i)).unwrap_or(b"");
            field.len().hash(&mut h);
            h.write(field);
        }
        *counts.entry(h.finish()).or_insert(0) += sign;
        for (i, t) in types.iter_mut().enumerate() {
            if let Some(f) = record.get(i) {
                t.see(&String::from_utf8_lossy(f));
            }
        }
    }
    Ok(Side {
        columns,
        types: types.iter().map(Inferred::name).collect(),
        rows,
    })
}

fn diff_delimited(a: &Path, b: &Path, delimiter: u8) -> Result<TableDiff> {
    let header = |p: &Path| -> Result<Vec<String>> {
        let mut r = delimited_header(p, delimiter)?;
        Ok(r.headers()
            .map_err(|e| bad(p, e))?
            .iter()
            .map(str::to_owned)
            .collect())
    };
    let (ha, hb) = (header(a)?, header(b)?);
    let shared: Vec<String> = ha.iter().filter(|c| hb.contains(c)).cloned().collect();
    let project = |cols: &[String]| -> Vec<Option<usize>> {
        shared
            .iter()
            .map(|s| cols.iter().position(|c| c == s))
            .collect()
    };
    let mut counts = HashMap::new();
    let sa = delimited_pass(a, delimiter, &project, &mut counts, 1)?;
    let sb = delimited_pass(b, delimiter, &project, &mut counts, -1)?;
    counts.retain(|_, c| *c != 0);
    Ok(finish(sa, sb, counts))
}

fn parquet_schema(path: &Path) -> Result<Vec<(String, DataType)>> {
    let file = File::open(path).at(path)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| bad(path, e))?;
    Ok(builder
        .schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect())
}

fn parquet_pass(
    path: &Path,
    shared: &[(String, DataType)],
    counts: &mut HashMap<u64, i64>,
    sign: i64,
) -> Result<u64> {
    let file = File::open(path).at(path)?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| bad(path, e))?
        .build()
        .map_err(|e| bad(path, e))?;
    let converter = RowConverter::new(
        shared
            .iter()
            .map(|(_, t)| SortField::new(t.clone()))
            .collect(),
    )
    .map_err(|e| bad(path, e))?;
    let mut rows = 0u64;
    for batch in reader {
        let batch: RecordBatch = batch.map_err(|e| bad(path, e))?;
        rows += batch.num_rows() as u64;
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(shared.len());
        for (name, t) in shared {
            let col = batch
                .column_by_name(name)
                .ok_or_else(|| bad(path, format!("column {name} vanished")))?;
            let col = if col.data_type() == t {
                col.clone()
            } else {
                crate::columns::convert(col, t).ok_or_else(|| {
                    bad(
                        path,
                        format!(
                            "column {name} of type {} cannot be compared as text",
                            col.data_type()
                        ),
                    )
                })?
            };
            columns.push(col);
        }
        if columns.is_empty() {
            *counts.entry(0).or_insert(0) += sign * batch.num_rows() as i64;
            continue;
        }
        let converted = converter
            .convert_columns(&columns)
            .map_err(|e| bad(path, e))?;
        for row in converted.iter() {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            h.write(row.as_ref());
            *counts.entry(h.finish()).or_insert(0) += sign;
        }
    }
    Ok(rows)
}

fn diff_parquet(a: &Path, b: &Path) -> Result<TableDiff> {
    let (sa, sb) = (parquet_schema(a)?, parquet_schema(b)?);
    let shared: Vec<(String, DataType)> = sa
        .iter()
        .filter_map(|(name, ta)| {
            let tb = &sb.iter().find(|(n, _)| n == name)?.1;
            Some((
                name.clone(),
                if ta == tb { ta.clone() } else { DataType::Utf8 },
            ))
        })
        .collect();
    let mut counts = HashMap::new();
    let rows_a = parquet_pass(a, &shared, &mut counts, 1)?;
    let rows_b = parquet_pass(b, &shared, &mut counts, -1)?;
    counts.retain(|_, c| *c != 0);
    let side = |s: &[(String, DataType)], rows| Side {
        columns: s.iter().map(|(n, _)| n.clone()).collect(),
        types: s.iter().map(|(_, t)| t.to_string()).collect(),
        rows,
    };
    Ok(finish(side(&sa, rows_a), side(&sb, rows_b), counts))
}
