//! Data drift between a reference and a current dataset, column by column, with Evidently's
//! default method per column and its thresholds, so the numbers match what Evidently users see:
//!
//! | reference rows | numerical, > 5 unique | numerical <= 5 unique, or categorical | <= 2 unique |
//! |---|---|---|---|
//! | <= 1000 | KS p-value <= 0.05 | chi-square p-value < 0.05 | Z-test p-value < 0.05 |
//! | > 1000 | Wasserstein (normed by the reference std) >= 0.1 | Jensen-Shannon >= 0.1 | Jensen-Shannon >= 0.1 |
//!
//! Missing and infinite values are dropped first. Column kinds follow Evidently's inference on
//! the current data: floats are numerical, integers numerical when they have more than 10
//! distinct values (categorical otherwise), booleans categorical, text categorical unless more
//! than half its values are distinct (free text, which is not compared). The dataset drifts when
//! the share of drifted columns reaches `drift_share` (0.5).
use crate::error::{Error, Result};
use crate::ks::ks_2samp_sorted;
use crate::special::{chi2_sf, normal_cdf};
use crate::table::{Table, ValueType};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::Array;
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// What a column holds, for the purpose of choosing a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// Numbers compared as a distribution.
    Numerical,
    /// Labels compared by their frequencies.
    Categorical,
    /// Free text (mostly distinct values): not compared.
    Text,
}

impl ColumnKind {
    /// The kind's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            ColumnKind::Numerical => "num",
            ColumnKind::Categorical => "cat",
            ColumnKind::Text => "text",
        }
    }
}

/// The drift methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// Two-sample Kolmogorov-Smirnov p-value (numerical).
    Ks,
    /// Chi-square goodness-of-fit p-value of current counts against reference shares.
    ChiSquare,
    /// Two-proportion Z-test p-value (two values).
    Z,
    /// Wasserstein distance divided by the reference standard deviation (numerical).
    Wasserstein,
    /// Jensen-Shannon distance of binned or categorical shares.
    JensenShannon,
    /// Population stability index of binned or categorical shares.
    Psi,
}

impl Method {
    /// Every method, in the order they are documented.
    pub const ALL: [Method; 6] = [
        Method::Ks,
        Method::ChiSquare,
        Method::Z,
        Method::Wasserstein,
        Method::JensenShannon,
        Method::Psi,
    ];

    /// Evidently's name for the method.
    pub fn name(self) -> &'static str {
        match self {
            Method::Ks => "ks",
            Method::ChiSquare => "chisquare",
            Method::Z => "z",
            Method::Wasserstein => "wasserstein",
            Method::JensenShannon => "jensenshannon",
            Method::Psi => "psi",
        }
    }

    /// Parses Evidently's name.
    pub fn parse(name: &str) -> Result<Method> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown drift method {name:?} (one of: {})",
                    Method::ALL.map(Method::name).join(", ")
                ))
            })
    }

    /// The threshold Evidently uses when none is given.
    pub fn default_threshold(self) -> f64 {
        match self {
            Method::Ks | Method::ChiSquare | Method::Z => 0.05,
            Method::Wasserstein | Method::JensenShannon | Method::Psi => 0.1,
        }
    }

    /// Whether the score is a p-value (small means drift) rather than a distance.
    pub fn is_p_value(self) -> bool {
        matches!(self, Method::Ks | Method::ChiSquare | Method::Z)
    }

    fn drifted(self, score: f64, threshold: f64) -> bool {
        match self {
            Method::Ks => score <= threshold,
            Method::ChiSquare | Method::Z => score < threshold,
            _ => score >= threshold,
        }
    }

    fn works_on_numbers_only(self) -> bool {
        matches!(self, Method::Ks | Method::Wasserstein)
    }
}

/// The non-missing values of one column of one dataset.
#[derive(Debug, Clone, PartialEq)]
pub enum Sample {
    /// Finite numbers, sorted ascending; `integer` when the column is integer-typed with no
    /// missing values (pandas would keep it `int64`, which changes histogram bin widths).
    Numbers {
        /// The values.
        values: Vec<f64>,
        /// Integer-typed.
        integer: bool,
        /// Rows that were missing (null, NaN, infinite).
        missing: u64,
    },
    /// Counts per label.
    Labels {
        /// Label -> count.
        counts: BTreeMap<String, u64>,
        /// Rows that were missing.
        missing: u64,
        /// Whether the labels are booleans.
        boolean: bool,
    },
}

impl Sample {
    /// Non-missing values.
    pub fn len(&self) -> u64 {
        match self {
            Sample::Numbers { values, .. } => values.len() as u64,
            Sample::Labels { counts, .. } => counts.values().sum(),
        }
    }

    /// Whether no value is present.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Distinct non-missing values.
    pub fn distinct(&self) -> usize {
        match self {
            Sample::Numbers { values, .. } => distinct_sorted(values),
            Sample::Labels { counts, .. } => counts.len(),
        }
    }

    /// The sorted numbers of a numeric sample (empty for labels).
    fn numbers(&self) -> &[f64] {
        match self {
            Sample::Numbers { values, .. } => values,
            Sample::Labels { .. } => &[],
        }
    }

    /// The label counts of a sample (numbers become their shortest decimal form); borrowed
    /// for labels, so tests that need counts twice do not copy them.
    fn counts(&self) -> std::borrow::Cow<'_, BTreeMap<String, u64>> {
        match self {
            Sample::Labels { counts, .. } => std::borrow::Cow::Borrowed(counts),
            Sample::Numbers { values, .. } => {
                let mut counts = BTreeMap::new();
                for v in values {
                    *counts.entry(number_label(*v)).or_insert(0) += 1;
                }
                std::borrow::Cow::Owned(counts)
            }
        }
    }
}

fn number_label(v: f64) -> String {
    // -0.0 and 0.0 are one value to pandas.
    if v == 0.0 {
        "0".to_owned()
    } else {
        format!("{v}")
    }
}

fn distinct_sorted(values: &[f64]) -> usize {
    if values.is_empty() {
        return 0;
    }
    1 + values.windows(2).filter(|w| w[0] != w[1]).count()
}

/// The columns of one dataset, collected for drift.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Rows read.
    pub rows: u64,
    /// Column name and its values, in file order.
    pub columns: Vec<(String, Sample)>,
}

impl Dataset {
    /// Reads a CSV/TSV/Parquet file, keeping every column's non-missing values.
    pub fn read(path: &Path) -> Result<Dataset> {
        let mut table = Table::open(path)?;
        let types = table.types();
        let names = table.column_names();
        let mut columns: Vec<Sample> = types
            .iter()
            .map(|t| match t {
                ValueType::Int | ValueType::Float => Sample::Numbers {
                    values: Vec::new(),
                    integer: *t == ValueType::Int,
                    missing: 0,
                },
                ValueType::Bool | ValueType::Str => Sample::Labels {
                    counts: BTreeMap::new(),
                    missing: 0,
                    boolean: *t == ValueType::Bool,
                },
            })
            .collect();
        let mut rows = 0u64;
        while let Some(batch) = table.next_batch()? {
            rows += batch.num_rows() as u64;
            for (sample, col) in columns.iter_mut().zip(batch.columns()) {
                collect(sample, col.as_ref());
            }
        }
        columns.par_iter_mut().for_each(|s| {
            if let Sample::Numbers {
                values,
                integer,
                missing,
            } = s
            {
                values.sort_unstable_by(f64::total_cmp);
                if *missing > 0 {
                    *integer = false;
                }
            }
        });
        Ok(Dataset {
            rows,
            columns: names.into_iter().zip(columns).collect(),
        })
    }

    /// The values of the column `name`, if the dataset has it.
    pub fn column(&self, name: &str) -> Option<&Sample> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }
}

fn collect(sample: &mut Sample, col: &dyn Array) {
    match sample {
        Sample::Numbers {
            values, missing, ..
        } => {
            let mut push = |v: Option<f64>| match v {
                Some(x) if x.is_finite() => values.push(x),
                _ => *missing += 1,
            };
            if let Some(a) = col.as_primitive_opt::<Float64Type>() {
                a.iter().for_each(&mut push);
            } else if let Some(a) = col.as_primitive_opt::<Int64Type>() {
                a.iter().for_each(|v| push(v.map(|x| x as f64)));
            }
        }
        Sample::Labels {
            counts, missing, ..
        } => {
            if let Some(a) = col.as_string_opt::<i32>() {
                for v in a.iter() {
                    match v {
                        Some(s) => {
                            if let Some(c) = counts.get_mut(s) {
                                *c += 1;
                            } else {
                                counts.insert(s.to_owned(), 1);
                            }
                        }
                        None => *missing += 1,
                    }
                }
            } else if let Some(a) = col.as_boolean_opt() {
                for v in a.iter() {
                    match v {
                        Some(b) => {
                            *counts
                                .entry(if b { "True" } else { "False" }.into())
                                .or_insert(0) += 1
                        }
                        None => *missing += 1,
                    }
                }
            }
        }
    }
}

/// Evidently's column kind for a column of the current dataset.
pub fn infer_kind(sample: &Sample) -> ColumnKind {
    match sample {
        Sample::Numbers { integer: false, .. } => ColumnKind::Numerical,
        Sample::Numbers { values, .. } => {
            if distinct_sorted(values) <= 10 {
                ColumnKind::Categorical
            } else {
                ColumnKind::Numerical
            }
        }
        Sample::Labels { boolean: true, .. } => ColumnKind::Categorical,
        Sample::Labels { counts, .. } => {
            let present: u64 = counts.values().sum();
            if counts.len() as f64 > present as f64 * 0.5 {
                ColumnKind::Text
            } else {
                ColumnKind::Categorical
            }
        }
    }
}

/// Per-column choices that override the defaults.
#[derive(Debug, Clone, Default)]
pub struct DriftOptions {
    /// Method for every column (unless a per-column one is given).
    pub method: Option<Method>,
    /// Method per column.
    pub per_column_method: HashMap<String, Method>,
    /// Threshold for every column.
    pub threshold: Option<f64>,
    /// Threshold per column.
    pub per_column_threshold: HashMap<String, f64>,
    /// Share of drifted columns at which the dataset drifts (default 0.5).
    pub drift_share: Option<f64>,
    /// Only these columns (all shared ones when empty).
    pub columns: Vec<String>,
}

/// A column's drift result.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDrift {
    /// Column name.
    pub column: String,
    /// Its kind.
    pub kind: ColumnKind,
    /// Method used, `None` for a text column (not compared).
    pub method: Option<Method>,
    /// p-value or distance.
    pub score: f64,
    /// The threshold it was held to.
    pub threshold: f64,
    /// Whether it drifted.
    pub drifted: bool,
    /// Non-missing values in the reference and current data.
    pub reference_count: u64,
    /// Non-missing values in the current data.
    pub current_count: u64,
    /// Shares per bin or label, for drawing.
    pub distribution: Distribution,
}

/// The distributions being compared, as shares, for reports.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Distribution {
    /// Bin edges (numerical; one more than the shares) or empty.
    pub edges: Vec<f64>,
    /// Labels (categorical) or empty.
    pub labels: Vec<String>,
    /// Reference shares.
    pub reference: Vec<f64>,
    /// Current shares.
    pub current: Vec<f64>,
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftReport {
    /// One entry per compared column.
    pub columns: Vec<ColumnDrift>,
    /// Drifted columns.
    pub drifted_columns: usize,
    /// Columns compared (text columns excluded).
    pub compared_columns: usize,
    /// drifted / compared.
    pub share: f64,
    /// The share at which the dataset drifts.
    pub share_threshold: f64,
    /// Whether the dataset drifted.
    pub dataset_drift: bool,
    /// Rows read from the reference and the current data.
    pub reference_rows: u64,
    /// Rows in the current data.
    pub current_rows: u64,
}

/// Compares `current` against `reference`.
pub fn compare(
    reference: &Dataset,
    current: &Dataset,
    options: &DriftOptions,
) -> Result<DriftReport> {
    let wanted: Vec<&(String, Sample)> = if options.columns.is_empty() {
        current
            .columns
            .iter()
            .filter(|(n, _)| reference.column(n).is_some())
            .collect()
    } else {
        options
            .columns
            .iter()
            .map(|c| {
                current.columns.iter().find(|(n, _)| n == c).ok_or_else(|| {
                    Error::Invalid(format!("column {c:?} is not in the current data"))
                })
            })
            .collect::<Result<_>>()?
    };
    for name in options
        .per_column_method
        .keys()
        .chain(options.per_column_threshold.keys())
    {
        if !wanted.iter().any(|(n, _)| n == name) {
            return Err(Error::Invalid(format!(
                "column {name:?} (given an option) is not compared: it is not in both datasets"
            )));
        }
    }
    if wanted.is_empty() {
        return Err(Error::Invalid(
            "the reference and current data share no column".into(),
        ));
    }
    let results: Vec<ColumnDrift> = wanted
        .par_iter()
        .map(|(name, cur)| {
            let reference = reference.column(name).ok_or_else(|| {
                Error::Invalid(format!("column {name:?} is not in the reference data"))
            })?;
            column_drift(name, reference, cur, options)
        })
        .collect::<Result<_>>()?;
    let compared = results.iter().filter(|c| c.method.is_some()).count();
    let drifted = results.iter().filter(|c| c.drifted).count();
    let share = if compared == 0 {
        0.0
    } else {
        drifted as f64 / compared as f64
    };
    let share_threshold = options.drift_share.unwrap_or(0.5);
    Ok(DriftReport {
        columns: results,
        drifted_columns: drifted,
        compared_columns: compared,
        share,
        share_threshold,
        dataset_drift: compared > 0 && share >= share_threshold,
        reference_rows: reference.rows,
        current_rows: current.rows,
    })
}

/// Evidently's `_get_default_stattest`.
pub fn default_method(kind: ColumnKind, reference_rows: u64, distinct: usize) -> Option<Method> {
    match kind {
        ColumnKind::Text => None,
        _ if reference_rows <= 1000 => Some(if kind == ColumnKind::Numerical && distinct > 5 {
            Method::Ks
        } else if distinct > 2 {
            Method::ChiSquare
        } else {
            Method::Z
        }),
        ColumnKind::Numerical if distinct > 5 => Some(Method::Wasserstein),
        _ => Some(Method::JensenShannon),
    }
}

fn pooled_distinct(a: &Sample, b: &Sample) -> usize {
    match (a, b) {
        (Sample::Numbers { values: x, .. }, Sample::Numbers { values: y, .. }) => {
            // Both are sorted: count distinct values of their merge without building it.
            let (mut i, mut j, mut distinct, mut last) = (0, 0, 0, None);
            while i < x.len() || j < y.len() {
                let v = if j == y.len() || (i < x.len() && x[i] <= y[j]) {
                    i += 1;
                    x[i - 1]
                } else {
                    j += 1;
                    y[j - 1]
                };
                if last != Some(v) {
                    distinct += 1;
                    last = Some(v);
                }
            }
            distinct
        }
        _ => {
            let (ka, kb) = (a.counts(), b.counts());
            ka.len() + kb.keys().filter(|k| !ka.contains_key(*k)).count()
        }
    }
}

fn column_drift(
    name: &str,
    reference: &Sample,
    current: &Sample,
    options: &DriftOptions,
) -> Result<ColumnDrift> {
    let kind = infer_kind(current);
    if kind == ColumnKind::Numerical && !matches!(reference, Sample::Numbers { .. }) {
        return Err(Error::Invalid(format!(
            "column {name:?} is numerical in the current data but not in the reference data"
        )));
    }
    if reference.is_empty() {
        return Err(Error::Invalid(format!(
            "column {name:?} has no values in the reference data"
        )));
    }
    if current.is_empty() {
        return Err(Error::Invalid(format!(
            "column {name:?} has no values in the current data"
        )));
    }
    let chosen = options
        .per_column_method
        .get(name)
        .copied()
        .or(options.method);
    let method = chosen
        .or_else(|| default_method(kind, reference.len(), pooled_distinct(reference, current)));
    let Some(method) = method else {
        return Ok(ColumnDrift {
            column: name.to_owned(),
            kind,
            method: None,
            score: f64::NAN,
            threshold: f64::NAN,
            drifted: false,
            reference_count: reference.len(),
            current_count: current.len(),
            distribution: Distribution::default(),
        });
    };
    let threshold = options
        .per_column_threshold
        .get(name)
        .copied()
        .or(options.threshold)
        .unwrap_or(method.default_threshold());
    if method.works_on_numbers_only() && kind != ColumnKind::Numerical {
        return Err(Error::Invalid(format!(
            "method {} needs a numerical column; {name:?} is {}",
            method.name(),
            if kind == ColumnKind::Text {
                "text"
            } else {
                "categorical"
            }
        )));
    }
    let (score, distribution) = match method {
        Method::Ks => {
            let (r, c) = (reference.numbers(), current.numbers());
            (
                ks_2samp_sorted(r, c).p_value,
                binned(reference, current, kind, false),
            )
        }
        Method::Wasserstein => {
            let (r, c) = (reference.numbers(), current.numbers());
            let norm = std_dev(r).max(0.001);
            (
                wasserstein_sorted(r, c) / norm,
                binned(reference, current, kind, false),
            )
        }
        Method::ChiSquare => {
            let d = label_shares(reference, current);
            (chi_square_p(reference, current), d)
        }
        Method::Z => (
            z_test_p(reference, current),
            label_shares(reference, current),
        ),
        Method::JensenShannon => {
            let d = binned(reference, current, kind, false);
            (jensen_shannon(&d.reference, &d.current), d)
        }
        Method::Psi => {
            let d = binned(reference, current, kind, true);
            (psi(&d.reference, &d.current), d)
        }
    };
    Ok(ColumnDrift {
        column: name.to_owned(),
        kind,
        method: Some(method),
        score,
        threshold,
        drifted: method.drifted(score, threshold),
        reference_count: reference.len(),
        current_count: current.len(),
        distribution,
    })
}

/// numpy's `np.std` (population standard deviation).
fn std_dev(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    let mean = pairwise_sum(v) / n;
    let sq: Vec<f64> = v.iter().map(|x| (x - mean) * (x - mean)).collect();
    (pairwise_sum(&sq) / n).sqrt()
}

/// numpy's pairwise summation (blocks of 8 accumulators below 128 elements), so sums of
/// millions of values round the way numpy's do.
fn pairwise_sum(v: &[f64]) -> f64 {
    const BLOCK: usize = 128;
    if v.len() < 8 {
        return v.iter().fold(0.0, |a, b| a + b);
    }
    if v.len() <= BLOCK {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&v[..8]);
        let mut i = 8;
        while i + 8 <= v.len() {
            for (k, rk) in r.iter_mut().enumerate() {
                *rk += v[i + k];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for x in &v[i..] {
            res += x;
        }
        return res;
    }
    let mut half = v.len() / 2;
    half -= half % 8;
    pairwise_sum(&v[..half]) + pairwise_sum(&v[half..])
}

/// scipy's `wasserstein_distance` of two sorted samples: the integral of |F_u - F_v|.
pub fn wasserstein_sorted(u: &[f64], v: &[f64]) -> f64 {
    let mut all: Vec<f64> = Vec::with_capacity(u.len() + v.len());
    let (mut i, mut j) = (0, 0);
    while i < u.len() || j < v.len() {
        if j == v.len() || (i < u.len() && u[i] <= v[j]) {
            all.push(u[i]);
            i += 1;
        } else {
            all.push(v[j]);
            j += 1;
        }
    }
    let (nu, nv) = (u.len() as f64, v.len() as f64);
    let (mut iu, mut iv) = (0usize, 0usize);
    let mut terms = Vec::with_capacity(all.len().saturating_sub(1));
    for k in 0..all.len().saturating_sub(1) {
        let x = all[k];
        while iu < u.len() && u[iu] <= x {
            iu += 1;
        }
        while iv < v.len() && v[iv] <= x {
            iv += 1;
        }
        let diff = (iu as f64 / nu - iv as f64 / nv).abs();
        terms.push(diff * (all[k + 1] - x));
    }
    pairwise_sum(&terms)
}

/// Keys of both samples with the shares of each (Evidently's value-count path).
fn label_shares(reference: &Sample, current: &Sample) -> Distribution {
    let (r, c) = (reference.counts(), current.counts());
    let mut labels: Vec<String> = r.keys().chain(c.keys()).cloned().collect();
    labels.sort();
    labels.dedup();
    let (nr, nc) = (reference.len() as f64, current.len() as f64);
    Distribution {
        edges: Vec::new(),
        reference: labels
            .iter()
            .map(|k| *r.get(k).unwrap_or(&0) as f64 / nr)
            .collect(),
        current: labels
            .iter()
            .map(|k| *c.get(k).unwrap_or(&0) as f64 / nc)
            .collect(),
        labels,
    }
}

/// Evidently's `get_binned_data`: a Sturges histogram over both samples for numerical columns
/// with more than 20 distinct reference values, label shares otherwise; with `fill_zeros`, empty
/// bins get a small share so logarithms stay finite.
fn binned(
    reference: &Sample,
    current: &Sample,
    kind: ColumnKind,
    fill_zeros: bool,
) -> Distribution {
    let mut d = match (kind, reference, current) {
        (
            ColumnKind::Numerical,
            Sample::Numbers {
                values: r,
                integer: ri,
                ..
            },
            Sample::Numbers {
                values: c,
                integer: ci,
                ..
            },
        ) if distinct_sorted(r) > 20 => {
            let edges = sturges_edges(r, c, *ri && *ci);
            let (nr, nc) = (r.len() as f64, c.len() as f64);
            Distribution {
                reference: histogram(r, &edges)
                    .into_iter()
                    .map(|k| k as f64 / nr)
                    .collect(),
                current: histogram(c, &edges)
                    .into_iter()
                    .map(|k| k as f64 / nc)
                    .collect(),
                edges,
                labels: Vec::new(),
            }
        }
        _ => label_shares(reference, current),
    };
    if fill_zeros {
        fill_zero_shares(&mut d.reference);
        fill_zero_shares(&mut d.current);
    }
    d
}

fn fill_zero_shares(v: &mut [f64]) {
    let min = v
        .iter()
        .copied()
        .filter(|x| *x != 0.0)
        .fold(f64::INFINITY, f64::min);
    if !min.is_finite() {
        return;
    }
    let fill = if min <= 0.0001 { min / 1e6 } else { 0.0001 };
    for x in v.iter_mut().filter(|x| **x == 0.0) {
        *x = fill;
    }
}

/// `np.histogram_bin_edges(concat(r, c), bins="sturges")` for two sorted samples.
fn sturges_edges(r: &[f64], c: &[f64], integer: bool) -> Vec<f64> {
    let n = (r.len() + c.len()) as f64;
    let lo = r[0].min(c[0]);
    let hi = r[r.len() - 1].max(c[c.len() - 1]);
    let (mut first, mut last) = (lo, hi);
    if first == last {
        first -= 0.5;
        last += 0.5;
    }
    let ptp = hi - lo;
    let mut width = ptp / (n.log2() + 1.0);
    let bins = if width != 0.0 {
        if integer && width < 1.0 {
            width = 1.0;
        }
        ((last - first) / width).ceil() as usize
    } else {
        1
    };
    linspace(first, last, bins + 1)
}

/// numpy's `linspace(start, stop, num)` with the endpoint: `i * step + start`, last = stop.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let div = (num - 1) as f64;
    let step = (stop - start) / div;
    let mut out: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    if let Some(l) = out.last_mut() {
        *l = stop;
    }
    out
}

/// Counts per bin of a sorted sample, numpy's rule: [e_i, e_i+1), the last bin closed.
fn histogram(sorted: &[f64], edges: &[f64]) -> Vec<u64> {
    let cum: Vec<usize> = edges
        .iter()
        .enumerate()
        .map(|(i, e)| {
            if i + 1 == edges.len() {
                sorted.partition_point(|x| x <= e)
            } else {
                sorted.partition_point(|x| x < e)
            }
        })
        .collect();
    cum.windows(2).map(|w| (w[1] - w[0]) as u64).collect()
}

/// `scipy.stats.chisquare(f_obs=current counts, f_exp=reference counts * n_cur / n_ref)`.
fn chi_square_p(reference: &Sample, current: &Sample) -> f64 {
    let (r, c) = (reference.counts(), current.counts());
    let mut keys: Vec<&String> = r.keys().chain(c.keys()).collect();
    keys.sort();
    keys.dedup();
    let k_norm = current.len() as f64 / reference.len() as f64;
    let terms: Vec<f64> = keys
        .iter()
        .map(|k| {
            let exp = *r.get(*k).unwrap_or(&0) as f64 * k_norm;
            let obs = *c.get(*k).unwrap_or(&0) as f64;
            (obs - exp) * (obs - exp) / exp
        })
        .collect();
    let stat = pairwise_sum(&terms);
    if stat.is_infinite() {
        return 0.0;
    }
    chi2_sf(stat, keys.len() as f64 - 1.0)
}

/// Evidently's two-proportion Z-test on "equals the smallest label".
fn z_test_p(reference: &Sample, current: &Sample) -> f64 {
    let (r, c) = (reference.counts(), current.counts());
    if r.len() == 1 && c.len() == 1 && r.keys().next() == c.keys().next() {
        return 1.0;
    }
    let Some(first) = r.keys().chain(c.keys()).min() else {
        return f64::NAN;
    };
    let (n1, n2) = (reference.len() as f64, current.len() as f64);
    // Indicator is 0 for the first label, 1 otherwise.
    let p1 = (n1 - *r.get(first).unwrap_or(&0) as f64) / n1;
    let p2 = (n2 - *c.get(first).unwrap_or(&0) as f64) / n2;
    let p = (p1 * n1 + p2 * n2) / (n1 + n2);
    let z = (p1 - p2) / (p * (1.0 - p) * (1.0 / n1 + 1.0 / n2)).sqrt();
    2.0 * (1.0 - normal_cdf(z.abs()))
}

/// `scipy.spatial.distance.jensenshannon(p, q)` (natural logarithm).
pub fn jensen_shannon(p: &[f64], q: &[f64]) -> f64 {
    let (sp, sq) = (pairwise_sum(p), pairwise_sum(q));
    let p: Vec<f64> = p.iter().map(|x| x / sp).collect();
    let q: Vec<f64> = q.iter().map(|x| x / sq).collect();
    let rel_entr = |x: f64, y: f64| {
        if x > 0.0 && y > 0.0 {
            x * (x / y).ln()
        } else if x == 0.0 && y >= 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    };
    let mut left = Vec::with_capacity(p.len());
    let mut right = Vec::with_capacity(p.len());
    for (x, y) in p.iter().zip(&q) {
        let m = (x + y) / 2.0;
        left.push(rel_entr(*x, m));
        right.push(rel_entr(*y, m));
    }
    ((pairwise_sum(&left) + pairwise_sum(&right)) / 2.0).sqrt()
}

/// Population stability index of two share vectors with no zeros.
pub fn psi(reference: &[f64], current: &[f64]) -> f64 {
    let terms: Vec<f64> = reference
        .iter()
        .zip(current)
        .map(|(r, c)| (r - c) * (r / c).ln())
        .collect();
    pairwise_sum(&terms)
}

/// First bytes of a stored reference.
const REFERENCE_MAGIC: &[u8] = b"CAIRN-REFERENCE-1\n";

impl Dataset {
    /// The collected reference (sorted numbers, label counts) as bytes, so later comparisons
    /// need not reread or re-sort the original data.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let header = serde_json::json!({
            "rows": self.rows,
            "columns": self.columns.iter().map(|(name, s)| match s {
                Sample::Numbers { values, integer, missing } => serde_json::json!({
                    "name": name, "numbers": values.len(), "integer": integer, "missing": missing,
                }),
                Sample::Labels { counts, missing, boolean } => serde_json::json!({
                    "name": name, "labels": counts, "missing": missing, "boolean": boolean,
                }),
            }).collect::<Vec<_>>(),
        });
        let header = serde_json::to_vec(&header).map_err(|e| Error::Invalid(e.to_string()))?;
        let numbers: usize = self
            .columns
            .iter()
            .map(|(_, s)| match s {
                Sample::Numbers { values, .. } => values.len(),
                Sample::Labels { .. } => 0,
            })
            .sum();
        let mut out = Vec::with_capacity(REFERENCE_MAGIC.len() + 8 + header.len() + numbers * 8);
        out.extend_from_slice(REFERENCE_MAGIC);
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        for (_, s) in &self.columns {
            if let Sample::Numbers { values, .. } = s {
                for v in values {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        Ok(out)
    }

    /// Stores [`Dataset::to_bytes`] in a file: written to a temporary file and renamed.
    pub fn save(&self, path: &Path) -> Result<()> {
        use std::io::Write;
        let bytes = self.to_bytes()?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = dir.join(format!(
            ".{}.tmp",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("reference")
        ));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(path, e)
        })
    }

    /// Whether a file is a stored reference (by its first bytes).
    pub fn is_stored_reference(path: &Path) -> bool {
        use std::io::Read;
        let mut head = [0u8; 18];
        std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut head))
            .is_ok()
            && head == REFERENCE_MAGIC
    }

    /// Loads a reference stored by [`Dataset::save`].
    pub fn load(path: &Path) -> Result<Dataset> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Dataset::from_bytes(&bytes, &path.display().to_string())
    }

    /// Reads [`Dataset::to_bytes`] back; `what` names the source in errors.
    pub fn from_bytes(bytes: &[u8], what: &str) -> Result<Dataset> {
        let bad = |why: &str| Error::Invalid(format!("{what}: not a stored reference ({why})"));
        let rest = bytes
            .strip_prefix(REFERENCE_MAGIC)
            .ok_or_else(|| bad("wrong header"))?;
        let (len, rest) = rest.split_at_checked(8).ok_or_else(|| bad("truncated"))?;
        let len = u64::from_le_bytes(len.try_into().map_err(|_| bad("truncated"))?) as usize;
        let (header, mut data) = rest.split_at_checked(len).ok_or_else(|| bad("truncated"))?;
        let header: serde_json::Value =
            serde_json::from_slice(header).map_err(|_| bad("unreadable header"))?;
        let rows = header["rows"].as_u64().ok_or_else(|| bad("no row count"))?;
        let mut columns = Vec::new();
        for c in header["columns"]
            .as_array()
            .ok_or_else(|| bad("no columns"))?
        {
            let name = c["name"]
                .as_str()
                .ok_or_else(|| bad("unnamed column"))?
                .to_owned();
            let missing = c["missing"].as_u64().unwrap_or(0);
            let sample = if let Some(n) = c["numbers"].as_u64() {
                let (chunk, tail) = data
                    .split_at_checked(n as usize * 8)
                    .ok_or_else(|| bad("truncated values"))?;
                data = tail;
                Sample::Numbers {
                    values: chunk
                        .chunks_exact(8)
                        .map(|b| {
                            f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
                        })
                        .collect(),
                    integer: c["integer"].as_bool().unwrap_or(false),
                    missing,
                }
            } else {
                let counts: BTreeMap<String, u64> = serde_json::from_value(c["labels"].clone())
                    .map_err(|_| bad("unreadable label counts"))?;
                Sample::Labels {
                    counts,
                    missing,
                    boolean: c["boolean"].as_bool().unwrap_or(false),
                }
            };
            columns.push((name, sample));
        }
        if !data.is_empty() {
            return Err(bad("trailing bytes"));
        }
        Ok(Dataset { rows, columns })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_sum_equals_plain_sum_on_exact_values() {
        let v: Vec<f64> = (0..1000).map(f64::from).collect();
        assert_eq!(pairwise_sum(&v), 499_500.0);
    }

    #[test]
    fn method_selection_covers_every_branch() {
        use ColumnKind::*;
        assert_eq!(default_method(Numerical, 1000, 6), Some(Method::Ks));
        assert_eq!(default_method(Numerical, 1000, 5), Some(Method::ChiSquare));
        assert_eq!(default_method(Numerical, 1000, 2), Some(Method::Z));
        assert_eq!(
            default_method(Categorical, 1000, 3),
            Some(Method::ChiSquare)
        );
        assert_eq!(default_method(Categorical, 10, 2), Some(Method::Z));
        assert_eq!(
            default_method(Numerical, 1001, 6),
            Some(Method::Wasserstein)
        );
        assert_eq!(
            default_method(Numerical, 1001, 5),
            Some(Method::JensenShannon)
        );
        assert_eq!(
            default_method(Categorical, 5000, 2),
            Some(Method::JensenShannon)
        );
        assert_eq!(default_method(Text, 5000, 2), None);
    }

    #[test]
    fn histogram_follows_numpy_edges() {
        let v = [0.0, 1.0, 1.0, 2.0, 3.0];
        assert_eq!(histogram(&v, &[0.0, 1.0, 2.0, 3.0]), vec![1, 2, 2]);
        assert_eq!(linspace(0.0, 1.0, 3), vec![0.0, 0.5, 1.0]);
    }
}
