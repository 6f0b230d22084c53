//! Profiles of known-good data, and suites drafted from them (`cairn suite suggest`).
use crate::error::Result;
use crate::table::{Table, ValueType};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::Array;
use rayon::prelude::*;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::path::Path;

/// Distinct values tracked per column before it counts as high-cardinality.
const DISTINCT_CAP: usize = 1000;
/// Largest set a drafted `in_set` expectation lists.
const SET_LIMIT: usize = 20;

/// What one pass learned about one column.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnProfile {
    /// Column name.
    pub name: String,
    /// Value type.
    pub value_type: ValueType,
    /// Missing values.
    pub missing: u64,
    /// Smallest number (numeric columns).
    pub min: Option<f64>,
    /// Largest number.
    pub max: Option<f64>,
    /// Mean (numeric columns).
    pub mean: Option<f64>,
    /// Shortest and longest text, in characters (text columns).
    pub lengths: Option<(u64, u64)>,
    /// Distinct values when there are at most 1000 of them.
    pub distinct: Option<BTreeSet<String>>,
}

/// A profile of a whole table.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Rows.
    pub rows: u64,
    /// Columns in file order.
    pub columns: Vec<ColumnProfile>,
}

struct Acc {
    profile: ColumnProfile,
    sum: f64,
    present: u64,
}

impl Acc {
    fn feed(&mut self, col: &dyn Array) {
        let p = &mut self.profile;
        let note = |distinct: &mut Option<BTreeSet<String>>, v: String| {
            if let Some(set) = distinct {
                set.insert(v);
                if set.len() > DISTINCT_CAP {
                    *distinct = None;
                }
            }
        };
        let number = |x: f64, p: &mut ColumnProfile, sum: &mut f64, present: &mut u64| {
            *sum += x;
            *present += 1;
            p.min = Some(p.min.map_or(x, |m| m.min(x)));
            p.max = Some(p.max.map_or(x, |m| m.max(x)));
        };
        if let Some(a) = col.as_primitive_opt::<Int64Type>() {
            for v in a.iter() {
                match v {
                    Some(x) => {
                        number(x as f64, p, &mut self.sum, &mut self.present);
                        note(&mut p.distinct, x.to_string());
                    }
                    None => p.missing += 1,
                }
            }
        } else if let Some(a) = col.as_primitive_opt::<Float64Type>() {
            for v in a.iter() {
                match v {
                    Some(x) if !x.is_nan() => {
                        number(x, p, &mut self.sum, &mut self.present);
                        note(&mut p.distinct, format!("{x:?}"));
                    }
                    _ => p.missing += 1,
                }
            }
        } else if let Some(a) = col.as_boolean_opt() {
            for v in a.iter() {
                match v {
                    Some(b) => note(&mut p.distinct, b.to_string()),
                    None => p.missing += 1,
                }
            }
        } else if let Some(a) = col.as_string_opt::<i32>() {
            for v in a.iter() {
                match v {
                    Some(s) => {
                        let n = s.chars().count() as u64;
                        p.lengths =
                            Some(p.lengths.map_or((n, n), |(lo, hi)| (lo.min(n), hi.max(n))));
                        if p.distinct.is_some() {
                            note(&mut p.distinct, s.to_owned());
                        }
                    }
                    None => p.missing += 1,
                }
            }
        }
    }
}

/// Profiles the table at `path` in one streamed pass.
pub fn profile(path: &Path) -> Result<Profile> {
    let mut table = Table::open(path)?;
    let types = table.types();
    let mut accs: Vec<Acc> = table
        .schema()
        .fields()
        .iter()
        .zip(&types)
        .map(|(f, t)| Acc {
            profile: ColumnProfile {
                name: f.name().clone(),
                value_type: *t,
                missing: 0,
                min: None,
                max: None,
                mean: None,
                lengths: None,
                distinct: Some(BTreeSet::new()),
            },
            sum: 0.0,
            present: 0,
        })
        .collect();
    let mut rows = 0;
    while let Some(batch) = table.next_batch()? {
        rows += batch.num_rows() as u64;
        accs.par_iter_mut()
            .zip(batch.columns().par_iter())
            .for_each(|(acc, col)| acc.feed(col.as_ref()));
    }
    Ok(Profile {
        rows,
        columns: accs
            .into_iter()
            .map(|a| {
                let mut p = a.profile;
                if a.present > 0 {
                    p.mean = Some(a.sum / a.present as f64);
                }
                p
            })
            .collect(),
    })
}

fn expectation(type_name: &str, kwargs: Value) -> Value {
    let mut m = Map::new();
    m.insert(type_name.to_owned(), kwargs);
    Value::Object(m)
}

/// Drafts a suite that the profiled data passes: its columns, row count, types, null rates,
/// numeric ranges, small value sets, text lengths and uniqueness.
pub fn suggest(profile: &Profile, name: &str) -> Value {
    let mut list = vec![
        expectation(
            "expect_table_columns_to_match_set",
            json!({"column_set": profile.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>()}),
        ),
        expectation(
            "expect_table_row_count_to_be_between",
            json!({"min_value": profile.rows / 2, "max_value": profile.rows.saturating_mul(2)}),
        ),
    ];
    for c in &profile.columns {
        let column = &c.name;
        list.push(expectation(
            "expect_column_values_to_be_of_type",
            json!({"column": column, "type_": match c.value_type.pandas_dtype(c.missing > 0) { "object" => "object", t => t }}),
        ));
        if c.missing == 0 {
            list.push(expectation(
                "expect_column_values_to_not_be_null",
                json!({"column": column}),
            ));
        } else if profile.rows > 0 {
            // Allow the null rate seen, rounded down to the percent below.
            let present = (profile.rows - c.missing) as f64 / profile.rows as f64;
            let mostly = (present * 100.0).floor() / 100.0;
            if mostly > 0.0 {
                list.push(expectation(
                    "expect_column_values_to_not_be_null",
                    json!({"column": column, "mostly": mostly}),
                ));
            }
        }
        let present = profile.rows - c.missing;
        let distinct = c.distinct.as_ref();
        if c.value_type.is_numeric() {
            if let (Some(lo), Some(hi)) = (c.min, c.max) {
                list.push(expectation(
                    "expect_column_values_to_be_between",
                    json!({"column": column, "min_value": lo, "max_value": hi}),
                ));
            }
        }
        if let Some(set) = distinct {
            if set.len() as u64 == present && present > 1 && c.value_type != ValueType::Bool {
                list.push(expectation(
                    "expect_column_values_to_be_unique",
                    json!({"column": column}),
                ));
            } else if c.value_type == ValueType::Str && set.len() <= SET_LIMIT && !set.is_empty() {
                list.push(expectation(
                    "expect_column_values_to_be_in_set",
                    json!({"column": column, "value_set": set.iter().collect::<Vec<_>>()}),
                ));
            }
        }
        if let Some((lo, hi)) = c.lengths {
            list.push(expectation(
                "expect_column_value_lengths_to_be_between",
                json!({"column": column, "min_value": lo, "max_value": hi}),
            ));
        }
    }
    json!({"name": name, "expectations": list})
}
