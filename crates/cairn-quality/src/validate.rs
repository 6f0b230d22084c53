//! Running a suite over a table in one streamed pass, with Great Expectations' SUMMARY result
//! format.
//!
//! Statistics are shared, not recomputed per expectation: each column referenced gets one
//! accumulator (null count, min, max, a compensated sum, and only when some expectation needs
//! them the values for a median or the value counts for uniqueness), fed once per batch, with
//! the columns fed in parallel. Per-value checks (between, in set, regex, lengths) keep a
//! count and the first 20 unexpected values with their row numbers.
use crate::error::Result;
use crate::suite::{Check, Expectation, Stat, Suite, PARTIAL};
use crate::table::{Table, ValueType};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type};
use arrow_array::{Array, DictionaryArray, RecordBatch, StringArray};
use rayon::prelude::*;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// One cell's value, hashable (floats by their bits; NaN never appears, it is missing).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Float(OrderedBits),
    Str(String),
}

/// An `f64` with a total order and a hash (for value counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct OrderedBits(u64);

impl OrderedBits {
    fn new(x: f64) -> Self {
        OrderedBits((if x == 0.0 { 0.0f64 } else { x }).to_bits())
    }
    fn get(self) -> f64 {
        f64::from_bits(self.0)
    }
}

impl PartialOrd for OrderedBits {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrderedBits {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.get().total_cmp(&other.get())
    }
}

impl Cell {
    fn number(&self) -> Option<f64> {
        match self {
            Cell::Int(i) => Some(*i as f64),
            Cell::Float(f) => Some(f.get()),
            _ => None,
        }
    }

    /// The value as pandas would hand it to JSON: integers of a column with gaps are floats.
    fn to_json(&self, float_ints: bool) -> Value {
        match self {
            Cell::Null => Value::Null,
            Cell::Bool(b) => Value::Bool(*b),
            Cell::Int(i) if float_ints => json!(*i as f64),
            Cell::Int(i) => json!(i),
            Cell::Float(f) => json!(f.get()),
            Cell::Str(s) => Value::String(s.clone()),
        }
    }

    /// Whether the cell equals a value from a suite (numbers compare by value).
    fn matches(&self, v: &Value) -> bool {
        match (self, v) {
            (Cell::Str(s), Value::String(t)) => s == t,
            (Cell::Bool(b), Value::Bool(c)) => b == c,
            (Cell::Int(_) | Cell::Float(_), Value::Number(n)) => n.as_f64() == self.number(),
            _ => false,
        }
    }

    /// `str(value)` as pandas' `astype(str)` writes it, for regular expressions.
    fn text(&self) -> String {
        match self {
            Cell::Null => "nan".into(),
            Cell::Bool(b) => if *b { "True" } else { "False" }.into(),
            Cell::Int(i) => i.to_string(),
            Cell::Float(f) => format!("{:?}", f.get()),
            Cell::Str(s) => s.clone(),
        }
    }
}

fn cell_at(col: &dyn Array, i: usize) -> Cell {
    if col.is_null(i) {
        return Cell::Null;
    }
    if let Some(a) = col.as_primitive_opt::<Int64Type>() {
        Cell::Int(a.value(i))
    } else if let Some(a) = col.as_primitive_opt::<Float64Type>() {
        let x = a.value(i);
        if x.is_nan() {
            Cell::Null
        } else {
            Cell::Float(OrderedBits::new(x))
        }
    } else if let Some(a) = col.as_boolean_opt() {
        Cell::Bool(a.value(i))
    } else if let Some(a) = col.as_string_opt::<i32>() {
        Cell::Str(a.value(i).to_owned())
    } else if let Some(d) = col.as_any().downcast_ref::<DictionaryArray<Int32Type>>() {
        let values = d.values().as_string_opt::<i32>();
        match (values, usize::try_from(d.keys().value(i))) {
            (Some(v), Ok(k)) if k < v.len() && !v.is_null(k) => Cell::Str(v.value(k).to_owned()),
            _ => Cell::Null,
        }
    } else {
        Cell::Null
    }
}

/// Unexpected values seen so far by one per-value check.
#[derive(Default)]
struct Misses {
    count: u64,
    first: Vec<(u64, Cell)>,
}

impl Misses {
    fn add(&mut self, row: u64, cell: impl FnOnce() -> Cell) {
        self.count += 1;
        if self.first.len() < PARTIAL {
            self.first.push((row, cell()));
        }
    }
}

/// Occurrences of one value (for uniqueness): its count and its first row numbers. Only a
/// repeated value allocates (most values of a unique column occur once).
struct Occurrences {
    count: u64,
    first: u64,
    later: Vec<u64>,
}

impl Occurrences {
    fn new(row: u64) -> Self {
        Occurrences {
            count: 1,
            first: row,
            later: Vec::new(),
        }
    }

    fn again(&mut self, row: u64) {
        self.count += 1;
        if self.later.len() + 1 < PARTIAL {
            self.later.push(row);
        }
    }

    fn rows(&self) -> impl Iterator<Item = u64> + '_ {
        std::iter::once(self.first).chain(self.later.iter().copied())
    }
}

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// An `f64` as a `u64` whose unsigned order is the number order (-0.0 taken as 0.0).
fn ordered_key(x: f64) -> u64 {
    let bits = (if x == 0.0 { 0.0f64 } else { x }).to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

fn float_of_key(key: u64) -> f64 {
    f64::from_bits(if key >> 63 == 1 {
        key & !(1 << 63)
    } else {
        !key
    })
}

fn count(map: &mut FastMap<Cell, Occurrences>, key: Cell, row: u64) {
    match map.get_mut(&key) {
        Some(o) => o.again(row),
        None => {
            map.insert(key, Occurrences::new(row));
        }
    }
}

/// Everything computed for one column in the pass.
struct ColumnState {
    index: usize,
    value_type: ValueType,
    nulls: u64,
    present: u64,
    min: Option<Cell>,
    max: Option<Cell>,
    sum: f64,
    compensation: f64,
    /// Values kept for a median, only when one is asked for.
    values: Option<Vec<f64>>,
    /// Value counts, only when uniqueness or distinct values are asked for on a non-numeric
    /// column.
    counts: Option<FastMap<Cell, Occurrences>>,
    /// For the same on a numeric column: (order-preserving key, row), sorted after the pass.
    /// Sixteen bytes a value and one parallel sort, where a map of cells costs ~10x more.
    keyed: Option<Vec<(u64, u64)>>,
    /// Per-value checks on this column: (expectation index, check).
    checks: Vec<(usize, Check, Misses)>,
}

impl ColumnState {
    /// A missing value: counted, and unexpected for `not_be_null` checks.
    fn record_null(&mut self, row: u64) {
        self.nulls += 1;
        for (_, check, misses) in &mut self.checks {
            if let Check::NotNull(_) = check {
                misses.add(row, || Cell::Null);
            }
        }
    }

    /// Text read as a dictionary: each check runs once per distinct value of the batch.
    fn feed_dictionary(
        &mut self,
        col: &DictionaryArray<Int32Type>,
        values: &StringArray,
        first_row: u64,
    ) {
        let verdicts: Vec<Vec<bool>> = self
            .checks
            .iter()
            .map(|(_, check, _)| {
                (0..values.len())
                    .map(|v| {
                        let s = values.value(v);
                        match check {
                            Check::InSet(_, set) => {
                                set.iter().any(|x| matches!(x, Value::String(t) if t == s))
                            }
                            Check::Regex(_, re) => re.is_match(s),
                            Check::Lengths(_, r) => r.contains(s.chars().count() as f64),
                            Check::Between(..) => false,
                            _ => true,
                        }
                    })
                    .collect()
            })
            .collect();
        let keys = col.keys();
        for i in 0..col.len() {
            let row = first_row + i as u64;
            let key = (!keys.is_null(i))
                .then(|| keys.value(i))
                .and_then(|k| usize::try_from(k).ok())
                .filter(|k| *k < values.len() && !values.is_null(*k));
            let Some(key) = key else {
                self.record_null(row);
                continue;
            };
            self.present += 1;
            if let Some(counts) = &mut self.counts {
                count(counts, Cell::Str(values.value(key).to_owned()), row);
            }
            for ((_, _, misses), verdict) in self.checks.iter_mut().zip(&verdicts) {
                if !verdict[key] {
                    misses.add(row, || Cell::Str(values.value(key).to_owned()));
                }
            }
        }
    }

    fn feed(&mut self, col: &dyn Array, first_row: u64) {
        if let Some(d) = col.as_any().downcast_ref::<DictionaryArray<Int32Type>>() {
            if let Some(values) = d.values().as_string_opt::<i32>() {
                self.feed_dictionary(d, values, first_row);
                return;
            }
        }
        // Downcast once per batch, not per value.
        let ints = col.as_primitive_opt::<Int64Type>();
        let floats = col.as_primitive_opt::<Float64Type>();
        let strings = col.as_string_opt::<i32>();
        let bools = col.as_boolean_opt();
        let numeric = ints.is_some() || floats.is_some();
        for i in 0..col.len() {
            let row = first_row + i as u64;
            let number = match (ints, floats) {
                _ if col.is_null(i) => None,
                (Some(a), _) => Some(a.value(i) as f64),
                (_, Some(a)) => Some(a.value(i)).filter(|x| !x.is_nan()),
                _ => None,
            };
            let null = if numeric {
                number.is_none()
            } else {
                col.is_null(i)
            };
            if null {
                self.record_null(row);
                continue;
            }
            self.present += 1;
            if let Some(x) = number {
                // Neumaier's compensated sum: exact enough that means match pandas'.
                let t = self.sum + x;
                if self.sum.abs() >= x.abs() {
                    self.compensation += (self.sum - t) + x;
                } else {
                    self.compensation += (x - t) + self.sum;
                }
                self.sum = t;
                if let Some(v) = &mut self.values {
                    v.push(x);
                }
                if self
                    .min
                    .as_ref()
                    .and_then(Cell::number)
                    .is_none_or(|m| x < m)
                {
                    self.min = Some(cell_at(col, i));
                }
                if self
                    .max
                    .as_ref()
                    .and_then(Cell::number)
                    .is_none_or(|m| x > m)
                {
                    self.max = Some(cell_at(col, i));
                }
            }
            if let (Some(keyed), Some(x)) = (&mut self.keyed, number) {
                let key = match ints {
                    Some(a) => (a.value(i) as u64) ^ (1 << 63),
                    None => ordered_key(x),
                };
                keyed.push((key, row));
            } else if let Some(counts) = &mut self.counts {
                count(counts, cell_at(col, i), row);
            }
            let text = strings.map(|a| a.value(i));
            let flag = bools.map(|a| a.value(i));
            for (_, check, misses) in &mut self.checks {
                let ok = match check {
                    Check::NotNull(_) => true,
                    Check::Between(_, r) => number.is_some_and(|x| r.contains(x)),
                    Check::InSet(_, set) => set.iter().any(|v| match (v, text, number, flag) {
                        (Value::String(t), Some(s), _, _) => t == s,
                        (Value::Number(n), _, Some(x), _) => n.as_f64() == Some(x),
                        (Value::Bool(b), _, _, Some(f)) => *b == f,
                        _ => false,
                    }),
                    Check::Regex(_, re) => match text {
                        Some(s) => re.is_match(s),
                        None => re.is_match(&cell_at(col, i).text()),
                    },
                    Check::Lengths(_, r) => {
                        text.is_some_and(|s| r.contains(s.chars().count() as f64))
                    }
                    _ => true,
                };
                if !ok {
                    misses.add(row, || cell_at(col, i));
                }
            }
        }
    }

    /// The cell a key of `keyed` stands for.
    fn cell_of_key(&self, key: u64) -> Cell {
        match self.value_type {
            ValueType::Int => Cell::Int((key ^ (1 << 63)) as i64),
            _ => Cell::Float(OrderedBits::new(float_of_key(key))),
        }
    }

    /// Turns the sorted keys of a numeric column into the value counts a map would hold,
    /// keeping only what results need: repeated values (with their first rows), and every
    /// distinct value when `keep_distinct`.
    fn summarise_keys(&mut self, keep_distinct: bool) {
        let Some(mut keyed) = self.keyed.take() else {
            return;
        };
        keyed.par_sort_unstable();
        let mut repeated: FastMap<Cell, Occurrences> = FastMap::default();
        let mut start = 0;
        while start < keyed.len() {
            let key = keyed[start].0;
            let mut end = start + 1;
            while end < keyed.len() && keyed[end].0 == key {
                end += 1;
            }
            if end - start > 1 || keep_distinct {
                let mut o = Occurrences::new(keyed[start].1);
                for (_, row) in &keyed[start + 1..end] {
                    o.again(*row);
                }
                repeated.insert(self.cell_of_key(key), o);
            }
            start = end;
        }
        self.counts = Some(repeated);
    }

    fn float_ints(&self) -> bool {
        self.value_type == ValueType::Int && self.nulls > 0
    }

    fn mean(&self) -> Option<f64> {
        (self.present > 0).then(|| (self.sum + self.compensation) / self.present as f64)
    }
}

/// Rows keyed by the values of several columns (compound uniqueness).
struct CompoundState {
    indices: Vec<usize>,
    missing: u64,
    counts: FastMap<Vec<Cell>, Occurrences>,
}

impl CompoundState {
    fn feed(&mut self, batch: &RecordBatch, first_row: u64) {
        for i in 0..batch.num_rows() {
            let key: Vec<Cell> = self
                .indices
                .iter()
                .map(|c| cell_at(batch.column(*c).as_ref(), i))
                .collect();
            if key.iter().all(|c| *c == Cell::Null) {
                self.missing += 1;
                continue;
            }
            let row = first_row + i as u64;
            match self.counts.get_mut(&key) {
                Some(o) => o.again(row),
                None => {
                    self.counts.insert(key, Occurrences::new(row));
                }
            }
        }
    }
}

/// The result of one expectation, in GX's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectationResult {
    /// The expectation's type.
    pub type_name: String,
    /// Its arguments.
    pub kwargs: Map<String, Value>,
    /// Whether it passed.
    pub success: bool,
    /// GX's `result` object.
    pub result: Map<String, Value>,
    /// Why it could not be evaluated (a missing column, a type that does not fit).
    pub exception: Option<String>,
}

/// What a result says, for printing: an error, an observed value, or unexpected values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome<'a> {
    /// It could not be evaluated.
    Error(&'a str),
    /// An aggregate's observed value.
    Observed(&'a Value),
    /// Per-value results: how many were unexpected, their share, and the first few.
    Unexpected {
        /// Unexpected values.
        count: &'a Value,
        /// Their share of non-missing values, in percent.
        percent: Option<f64>,
        /// The first unexpected values, when there are any.
        examples: Option<&'a Value>,
    },
    /// Nothing to show (`expect_column_to_exist`).
    Nothing,
}

impl Outcome<'_> {
    /// `N unexpected (P%)` for per-value results.
    pub fn unexpected_summary(count: &Value, percent: Option<f64>) -> String {
        format!(
            "{count} unexpected{}",
            percent.map(|p| format!(" ({p:.2}%)")).unwrap_or_default()
        )
    }
}

impl ExpectationResult {
    /// What the result says, for printing.
    pub fn outcome(&self) -> Outcome<'_> {
        if let Some(e) = &self.exception {
            return Outcome::Error(e);
        }
        if let Some(v) = self.result.get("observed_value") {
            return Outcome::Observed(v);
        }
        match self.result.get("unexpected_count") {
            Some(count) => Outcome::Unexpected {
                count,
                percent: self
                    .result
                    .get("unexpected_percent")
                    .and_then(Value::as_f64),
                examples: self
                    .result
                    .get("partial_unexpected_list")
                    .filter(|v| v.as_array().is_some_and(|a| !a.is_empty())),
            },
            None => Outcome::Nothing,
        }
    }
}

/// The result of a suite.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationResult {
    /// The suite's name.
    pub suite: String,
    /// Whether every expectation passed.
    pub success: bool,
    /// One result per expectation, in suite order.
    pub results: Vec<ExpectationResult>,
    /// Rows read.
    pub rows: u64,
}

impl ValidationResult {
    /// GX's suite statistics.
    pub fn statistics(&self) -> Value {
        let evaluated = self.results.len();
        let successful = self.results.iter().filter(|r| r.success).count();
        json!({
            "evaluated_expectations": evaluated,
            "successful_expectations": successful,
            "unsuccessful_expectations": evaluated - successful,
            "success_percent": if evaluated == 0 { Value::Null } else { json!(successful as f64 / evaluated as f64 * 100.0) },
        })
    }

    /// The whole result as GX's JSON (`success`, `statistics`, `results`).
    pub fn to_json(&self) -> Value {
        json!({
            "suite": self.suite,
            "success": self.success,
            "statistics": self.statistics(),
            "results": self.results.iter().map(|r| json!({
                "expectation_config": {"type": r.type_name, "kwargs": r.kwargs},
                "success": r.success,
                "result": r.result,
                "exception_info": match &r.exception {
                    Some(m) => json!({"raised_exception": true, "exception_message": m}),
                    None => json!({"raised_exception": false}),
                },
            })).collect::<Vec<_>>(),
        })
    }
}

/// Validates the table at `path` against `suite`.
pub fn validate(path: &Path, suite: &Suite) -> Result<ValidationResult> {
    // Read only the columns some expectation names (Parquet skips the others' bytes).
    let mut wanted: Vec<String> = Vec::new();
    for e in &suite.expectations {
        match &e.check {
            Check::CompoundUnique(cols) => wanted.extend(cols.iter().cloned()),
            _ => wanted.extend(e.column().map(str::to_owned)),
        }
    }
    let mut table = Table::open_columns(path, &wanted)?;
    let all_names: Vec<String> = table.all_columns().to_vec();
    let names = table.column_names();
    let types = table.types();
    let index_of = |c: &str| names.iter().position(|n| n == c);

    // One accumulator per column that any expectation reads.
    let mut states: Vec<ColumnState> = Vec::new();
    let mut state_of: HashMap<usize, usize> = HashMap::new();
    let mut compounds: Vec<(usize, CompoundState)> = Vec::new();
    for (k, e) in suite.expectations.iter().enumerate() {
        if let Check::CompoundUnique(cols) = &e.check {
            if let Some(indices) = cols.iter().map(|c| index_of(c)).collect::<Option<Vec<_>>>() {
                compounds.push((
                    k,
                    CompoundState {
                        indices,
                        missing: 0,
                        counts: FastMap::default(),
                    },
                ));
            }
            continue;
        }
        let Some(col) = e.column().and_then(index_of) else {
            continue;
        };
        let s = *state_of.entry(col).or_insert_with(|| {
            states.push(ColumnState {
                index: col,
                value_type: types[col],
                nulls: 0,
                present: 0,
                min: None,
                max: None,
                sum: 0.0,
                compensation: 0.0,
                values: None,
                counts: None,
                keyed: None,
                checks: Vec::new(),
            });
            states.len() - 1
        });
        let state = &mut states[s];
        match &e.check {
            Check::Stat(_, Stat::Median, _) if state.value_type.is_numeric() => {
                state.values.get_or_insert_with(Vec::new);
            }
            Check::Unique(_) | Check::DistinctInSet(..) if state.value_type.is_numeric() => {
                state.keyed.get_or_insert_with(Vec::new);
            }
            Check::Unique(_) | Check::DistinctInSet(..) => {
                state.counts.get_or_insert_with(FastMap::default);
            }
            _ => {}
        }
        if matches!(
            e.check,
            Check::NotNull(_)
                | Check::Between(..)
                | Check::InSet(..)
                | Check::Regex(..)
                | Check::Lengths(..)
        ) {
            state.checks.push((k, e.check.clone(), Misses::default()));
        }
    }

    let mut rows = 0u64;
    // Decode the next batch on a thread of its own while this one is checked; two batches in
    // flight at most, so memory stays bounded.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<RecordBatch>>(1);
    let reader = std::thread::spawn(move || loop {
        match table.next_batch() {
            Ok(Some(batch)) => {
                if tx.send(Ok(batch)).is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
    });
    for batch in rx {
        let batch = batch?;
        let first_row = rows;
        rayon::join(
            || {
                states
                    .par_iter_mut()
                    .for_each(|s| s.feed(batch.column(s.index).as_ref(), first_row))
            },
            || {
                compounds
                    .iter_mut()
                    .for_each(|(_, c)| c.feed(&batch, first_row))
            },
        );
        rows += batch.num_rows() as u64;
    }
    let _ = reader.join();
    for state in &mut states {
        let keep_distinct = suite.expectations.iter().any(
            |e| matches!(&e.check, Check::DistinctInSet(c, _) if index_of(c) == Some(state.index)),
        );
        state.summarise_keys(keep_distinct);
    }

    let results: Vec<ExpectationResult> = suite
        .expectations
        .iter()
        .enumerate()
        .map(|(k, e)| {
            let state = e
                .column()
                .and_then(index_of)
                .and_then(|c| state_of.get(&c))
                .map(|s| &states[*s]);
            let compound = compounds.iter().find(|(i, _)| *i == k).map(|(_, c)| c);
            evaluate(k, e, rows, &all_names, types.as_slice(), state, compound)
        })
        .collect();
    Ok(ValidationResult {
        suite: suite.name.clone(),
        success: results.iter().all(|r| r.success),
        results,
        rows,
    })
}

/// A result that was computed (as opposed to a [`failure`]).
fn evaluated(e: &Expectation, success: bool, result: Map<String, Value>) -> ExpectationResult {
    ExpectationResult {
        type_name: e.type_name.clone(),
        kwargs: e.kwargs.clone(),
        success,
        result,
        exception: None,
    }
}

/// GX's `{"observed_value": v}`.
fn observed(v: Value) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("observed_value".into(), v);
    m
}

fn failure(e: &Expectation, message: String) -> ExpectationResult {
    ExpectationResult {
        type_name: e.type_name.clone(),
        kwargs: e.kwargs.clone(),
        success: false,
        result: Map::new(),
        exception: Some(message),
    }
}

fn mostly_success(considered: u64, unexpected: u64, mostly: f64) -> bool {
    if considered == 0 {
        return true;
    }
    (considered as f64 - unexpected as f64) / considered as f64 >= mostly
}

/// GX's `partial_unexpected_counts`: counts over the partial list, by count then value.
fn partial_counts(values: &[Value], each_null_apart: bool) -> Value {
    let mut counts: Vec<(Value, u64)> = Vec::new();
    for v in values {
        if each_null_apart && v.is_null() {
            counts.push((Value::Null, 1));
            continue;
        }
        match counts.iter_mut().find(|(k, _)| k == v) {
            Some((_, c)) => *c += 1,
            None => counts.push((v.clone(), 1)),
        }
    }
    counts.sort_by(|(va, ca), (vb, cb)| cb.cmp(ca).then_with(|| compare_json(va, vb)));
    Value::Array(
        counts
            .into_iter()
            .map(|(value, count)| json!({"value": value, "count": count}))
            .collect(),
    )
}

fn compare_json(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .unwrap_or(f64::NAN)
            .total_cmp(&y.as_f64().unwrap_or(f64::NAN)),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                let o = compare_json(p, q);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        _ => Ordering::Equal,
    }
}

/// GX's `_format_map_output` at SUMMARY level.
fn map_result(
    element_count: u64,
    missing: Option<u64>,
    unexpected: u64,
    partial: &[(u64, Value)],
    counts_key: Option<Vec<Value>>,
    each_null_apart: bool,
) -> Map<String, Value> {
    let pct = |n: u64, d: u64| {
        if d == 0 {
            Value::Null
        } else {
            json!(n as f64 / d as f64 * 100.0)
        }
    };
    let values: Vec<Value> = partial.iter().map(|(_, v)| v.clone()).collect();
    let mut r = Map::new();
    r.insert("element_count".into(), json!(element_count));
    r.insert("unexpected_count".into(), json!(unexpected));
    r.insert(
        "partial_unexpected_list".into(),
        Value::Array(values.clone()),
    );
    r.insert(
        "partial_unexpected_index_list".into(),
        json!(partial.iter().map(|(row, _)| *row).collect::<Vec<_>>()),
    );
    r.insert(
        "partial_unexpected_counts".into(),
        partial_counts(&counts_key.unwrap_or(values), each_null_apart),
    );
    match missing {
        Some(missing) => {
            let nonmissing = element_count - missing;
            r.insert("missing_count".into(), json!(missing));
            r.insert("missing_percent".into(), pct(missing, element_count));
            r.insert(
                "unexpected_percent_total".into(),
                pct(unexpected, element_count),
            );
            let nonmissing_pct = if element_count == 0 {
                Value::Null
            } else {
                pct(unexpected, nonmissing)
            };
            r.insert(
                "unexpected_percent_nonmissing".into(),
                nonmissing_pct.clone(),
            );
            r.insert("unexpected_percent".into(), nonmissing_pct);
        }
        None => {
            r.insert("unexpected_percent".into(), pct(unexpected, element_count));
        }
    }
    r
}

/// pandas' dtype name as GX reports it (`np.dtype.type.__name__`).
fn observed_type(state: &ColumnState) -> &'static str {
    match state.value_type.pandas_dtype(state.nulls > 0) {
        "object" => "object_",
        other => other,
    }
}

/// Whether GX's `np.dtype(type_)` (or pandas' aliases) names the observed type.
fn type_matches(expected: &str, observed: &str) -> bool {
    let canonical = match expected {
        "int" | "int64" | "i8" | "long" | "int_" | "Int64" => "int64",
        "float" | "float64" | "f8" | "double" | "float_" | "Float64" => "float64",
        "bool" | "bool_" | "?" | "boolean" => "bool",
        "object" | "O" | "object_" => "object_",
        other => other,
    };
    canonical == observed
}

fn evaluate(
    k: usize,
    e: &Expectation,
    rows: u64,
    names: &[String],
    types: &[ValueType],
    state: Option<&ColumnState>,
    compound: Option<&CompoundState>,
) -> ExpectationResult {
    let ok = |success: bool, result: Map<String, Value>| evaluated(e, success, result);
    match &e.check {
        Check::RowCount(r) => ok(r.contains(rows as f64), observed(json!(rows))),
        Check::ColumnsMatchSet { set, exact } => {
            let actual: HashSet<&str> = names.iter().map(String::as_str).collect();
            let expected: HashSet<&str> = set.iter().map(String::as_str).collect();
            let mut sorted_names: Vec<&str> = actual.iter().copied().collect();
            sorted_names.sort();
            let mut unexpected: Vec<&str> = actual.difference(&expected).copied().collect();
            let mut missing: Vec<&str> = expected.difference(&actual).copied().collect();
            unexpected.sort();
            missing.sort();
            let mut result = observed(json!(sorted_names));
            if unexpected.is_empty() && missing.is_empty() {
                return ok(true, result);
            }
            let mut mismatched = Map::new();
            if !unexpected.is_empty() {
                mismatched.insert("unexpected".into(), json!(unexpected));
            }
            if !missing.is_empty() {
                mismatched.insert("missing".into(), json!(missing));
            }
            result.insert("details".into(), json!({ "mismatched": mismatched }));
            ok(!exact && missing.is_empty(), result)
        }
        Check::ColumnExists(c) => ok(names.contains(c), Map::new()),
        Check::CompoundUnique(cols) => {
            let Some(cs) = compound else {
                let absent: Vec<&String> = cols.iter().filter(|c| !names.contains(c)).collect();
                return failure(e, format!("column(s) {absent:?} do not exist"));
            };
            let float_ints: Vec<bool> = cs
                .indices
                .iter()
                .map(|i| types[*i] == ValueType::Int && has_gaps(cs, *i))
                .collect();
            let mut dups: Vec<(u64, &Vec<Cell>)> = Vec::new();
            let mut unexpected = 0;
            for (key, o) in &cs.counts {
                if o.count > 1 {
                    unexpected += o.count;
                    dups.extend(o.rows().map(|r| (r, key)));
                }
            }
            dups.sort_by_key(|(r, _)| *r);
            dups.truncate(PARTIAL);
            let partial: Vec<(u64, Value)> = dups
                .iter()
                .map(|(r, key)| {
                    let m: Map<String, Value> = cols
                        .iter()
                        .zip(key.iter().zip(&float_ints))
                        .map(|(c, (v, f))| (c.clone(), v.to_json(*f)))
                        .collect();
                    (*r, Value::Object(m))
                })
                .collect();
            let keys: Vec<Value> = dups
                .iter()
                .map(|(_, key)| {
                    Value::Array(
                        key.iter()
                            .zip(&float_ints)
                            .map(|(v, f)| v.to_json(*f))
                            .collect(),
                    )
                })
                .collect();
            let considered = rows - cs.missing;
            let result = map_result(
                rows,
                Some(cs.missing),
                unexpected,
                &partial,
                Some(keys),
                false,
            );
            ok(mostly_success(considered, unexpected, e.mostly), result)
        }
        _ => {
            let column = e.column().unwrap_or_default();
            let Some(state) = state else {
                return failure(e, format!("column {column:?} does not exist"));
            };
            column_result(k, e, rows, state)
        }
    }
}

/// Whether a column of a compound key has missing values (then pandas holds it as floats).
fn has_gaps(cs: &CompoundState, index: usize) -> bool {
    let pos = cs.indices.iter().position(|i| *i == index).unwrap_or(0);
    cs.counts.keys().any(|k| k[pos] == Cell::Null)
}

fn column_result(k: usize, e: &Expectation, rows: u64, state: &ColumnState) -> ExpectationResult {
    let ok = |success: bool, result: Map<String, Value>| evaluated(e, success, result);
    let float_ints = state.float_ints();
    let numeric = state.value_type.is_numeric();
    let column = e.column().unwrap_or_default();
    let not_numeric = || {
        failure(
            e,
            format!(
                "column {column:?} holds {}, not numbers",
                match state.value_type {
                    ValueType::Bool => "booleans",
                    _ => "text",
                }
            ),
        )
    };
    match &e.check {
        Check::ColumnExists(_) => ok(true, Map::new()),
        Check::OfType(_, t) => {
            let obs = observed_type(state);
            ok(type_matches(t, obs), observed(json!(obs)))
        }
        Check::Stat(_, stat, range) => {
            if !numeric {
                return not_numeric();
            }
            let value = match stat {
                Stat::Mean => state.mean().map(|m| json!(m)),
                Stat::Median => state
                    .values
                    .as_ref()
                    .and_then(|v| median(v))
                    .map(|m| json!(m)),
                Stat::Min => state.min.as_ref().map(|c| c.to_json(float_ints)),
                Stat::Max => state.max.as_ref().map(|c| c.to_json(float_ints)),
            };
            match value {
                Some(v) => {
                    let success = v.as_f64().is_some_and(|x| range.contains(x));
                    ok(success, observed(v))
                }
                None => ok(false, observed(Value::Null)),
            }
        }
        Check::DistinctInSet(_, set) => {
            let counts = state.counts.as_ref();
            let mut outside: Vec<&Cell> = counts
                .map(|c| {
                    c.keys()
                        .filter(|v| !set.iter().any(|s| v.matches(s)))
                        .collect()
                })
                .unwrap_or_default();
            outside.sort();
            let mut result = Map::new();
            result.insert("observed_value".into(), Value::Null);
            result.insert("unexpected_count".into(), json!(outside.len()));
            result.insert(
                "partial_unexpected_list".into(),
                Value::Array(
                    outside
                        .iter()
                        .take(PARTIAL)
                        .map(|c| c.to_json(float_ints))
                        .collect(),
                ),
            );
            ok(outside.is_empty(), result)
        }
        Check::Unique(_) => {
            let mut dups: Vec<(u64, &Cell)> = Vec::new();
            let mut unexpected = 0;
            for (v, o) in state.counts.iter().flatten() {
                if o.count > 1 {
                    unexpected += o.count;
                    dups.extend(o.rows().map(|r| (r, v)));
                }
            }
            dups.sort_by_key(|(r, _)| *r);
            dups.truncate(PARTIAL);
            let partial: Vec<(u64, Value)> = dups
                .iter()
                .map(|(r, v)| (*r, v.to_json(float_ints)))
                .collect();
            let result = map_result(rows, Some(state.nulls), unexpected, &partial, None, false);
            ok(mostly_success(state.present, unexpected, e.mostly), result)
        }
        Check::Between(..) if !numeric => not_numeric(),
        Check::Lengths(..) if state.value_type != ValueType::Str => failure(
            e,
            format!("column {column:?} does not hold text; lengths need text"),
        ),
        _ => {
            let Some((_, check, misses)) = state.checks.iter().find(|(i, _, _)| *i == k) else {
                return failure(e, "internal: no accumulator for this expectation".into());
            };
            let partial: Vec<(u64, Value)> = misses
                .first
                .iter()
                .map(|(r, c)| (*r, c.to_json(float_ints)))
                .collect();
            if let Check::NotNull(_) = check {
                let result = map_result(rows, None, misses.count, &partial, None, true);
                return ok(mostly_success(rows, misses.count, e.mostly), result);
            }
            let result = map_result(rows, Some(state.nulls), misses.count, &partial, None, false);
            ok(
                mostly_success(state.present, misses.count, e.mostly),
                result,
            )
        }
    }
}

fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    let mid = v.len() / 2;
    let (_, upper, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    let upper = *upper;
    if v.len() % 2 == 1 {
        return Some(upper);
    }
    let lower = v[..mid].iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((lower + upper) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_keys_keep_order_and_round_trip() {
        let xs = [f64::NEG_INFINITY, -3.5, -0.0, 0.0, 1e-300, 2.0, f64::MAX];
        for w in xs.windows(2) {
            assert!(ordered_key(w[0]) <= ordered_key(w[1]), "{w:?}");
        }
        assert_eq!(ordered_key(-0.0), ordered_key(0.0));
        for x in xs {
            assert_eq!(float_of_key(ordered_key(x)), if x == 0.0 { 0.0 } else { x });
        }
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn partial_counts_sort_by_count_then_value() {
        let v = [json!("b"), json!("a"), json!("b"), json!("c")];
        assert_eq!(
            partial_counts(&v, false),
            json!([{"value": "b", "count": 2}, {"value": "a", "count": 1}, {"value": "c", "count": 1}])
        );
    }
}
