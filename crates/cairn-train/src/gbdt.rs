//! Histogram gradient-boosted trees, grown leaf-wise as scikit-learn's
//! `HistGradientBoostingClassifier/Regressor` and LightGBM grow them: features binned once into
//! at most 255 bins (plus one for missing values), per-node gradient histograms built for the
//! smaller child and subtracted from the parent for the larger, splits that learn where missing
//! values go, and leaves that never hold fewer than `min_samples_leaf` rows.
//!
//! Gradients and hessians are `f32`s summed in `f64` histograms, as scikit-learn keeps them.
//! Values are compared as `f32`, and every threshold, leaf value and base score is an `f32`: the
//! exported ONNX trees take FP32 inputs (and runtimes read tree attributes in the input's type),
//! and the model must split and score a served row as it did in training.
use crate::error::{Error, Result};
use crate::frame::{Column, Frame, Target, MISSING};
use crate::linear::sigmoid;
use rayon::prelude::*;

/// Training settings; the defaults are scikit-learn's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GbdtParams {
    /// Boosting rounds (trees per output).
    pub trees: usize,
    pub learning_rate: f64,
    /// Leaves per tree.
    pub max_leaf_nodes: usize,
    /// Depth limit; `None` for none.
    pub max_depth: Option<usize>,
    pub min_samples_leaf: usize,
    /// L2 penalty on leaf values.
    pub l2_regularization: f64,
    /// Bins for non-missing values, at most 255.
    pub max_bins: usize,
}

impl Default for GbdtParams {
    fn default() -> Self {
        GbdtParams {
            trees: 100,
            learning_rate: 0.1,
            max_leaf_nodes: 31,
            max_depth: None,
            min_samples_leaf: 20,
            l2_regularization: 0.0,
            max_bins: 255,
        }
    }
}

/// Smallest hessian sum a child may have (scikit-learn's `min_hessian_to_split`).
const MIN_HESSIAN: f64 = 1e-3;
/// Rows a bin boundary is estimated from, as scikit-learn subsamples (`subsample=2e5`).
const BINNING_SAMPLE: usize = 200_000;

/// A tree node: a split on `feature` at `threshold` (`x <= threshold` goes left) or a leaf.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Split {
        feature: usize,
        threshold: f32,
        missing_left: bool,
        left: usize,
        right: usize,
        gain: f64,
    },
    Leaf {
        value: f64,
    },
}

/// One tree, its root at index 0.
#[derive(Debug, Clone, PartialEq)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    fn predict(&self, row: &[f32]) -> f64 {
        let mut i = 0;
        loop {
            match &self.nodes[i] {
                Node::Leaf { value } => return *value,
                Node::Split {
                    feature,
                    threshold,
                    missing_left,
                    left,
                    right,
                    ..
                } => {
                    let x = row[*feature];
                    let go_left = if x.is_nan() {
                        *missing_left
                    } else {
                        x <= *threshold
                    };
                    i = if go_left { *left } else { *right };
                }
            }
        }
    }
}

/// The loss being boosted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// Squared error on values.
    SquaredError,
    /// Log loss on two classes (one output, the log-odds of class 1).
    Binary,
    /// Softmax log loss on `n` classes (one output each).
    Multiclass(usize),
}

impl Loss {
    fn outputs(self) -> usize {
        match self {
            Loss::SquaredError | Loss::Binary => 1,
            Loss::Multiclass(k) => k,
        }
    }
}

/// A fitted ensemble.
#[derive(Debug, Clone, PartialEq)]
pub struct Gbdt {
    pub loss: Loss,
    /// The raw score every row starts from, per output.
    pub base_scores: Vec<f64>,
    /// Trees per round: `trees[round][output]`.
    pub trees: Vec<Vec<Tree>>,
    /// Number of input features (frame columns, categories as their codes).
    pub features: usize,
}

/// Frame columns as `f32` values, categories as their codes and missing values as NaN: the
/// matrix the trees split on, column-major.
pub fn feature_values(frame: &Frame) -> Vec<Vec<f32>> {
    frame.features.iter().map(column_values).collect()
}

/// One column of [`feature_values`].
fn column_values(feature: &crate::frame::Feature) -> Vec<f32> {
    match &feature.column {
        Column::Numeric(v) => v.iter().map(|&x| x as f32).collect(),
        Column::Categorical { codes, .. } => codes
            .iter()
            .map(|&c| if c == MISSING { f32::NAN } else { c as f32 })
            .collect(),
    }
}

/// The bin boundaries of one column: midpoints between distinct values when there are few,
/// else between quantiles of (a sample of) the values, each an `f32`.
fn bin_thresholds(values: &[f32], rows: &[usize], max_bins: usize) -> Vec<f32> {
    let step = (rows.len() / BINNING_SAMPLE).max(1);
    let mut present: Vec<f32> = rows
        .iter()
        .step_by(step)
        .map(|&r| values[r])
        .filter(|x| !x.is_nan())
        .collect();
    present.sort_by(f32::total_cmp);
    let mut distinct = present.clone();
    distinct.dedup();
    let midpoint = |a: f32, b: f32| -> f32 {
        let m = ((f64::from(a) + f64::from(b)) / 2.0) as f32;
        // Rounding may land on b; the threshold must keep b on the right.
        if m >= b {
            a
        } else {
            m
        }
    };
    if distinct.len() <= max_bins {
        return distinct.windows(2).map(|w| midpoint(w[0], w[1])).collect();
    }
    let n = present.len();
    let mut thresholds: Vec<f32> = (1..max_bins)
        .map(|i| {
            let position = i as f64 / max_bins as f64 * (n - 1) as f64;
            let (lo, hi) = (position.floor() as usize, position.ceil() as usize);
            midpoint(present[lo], present[hi.min(n - 1)])
        })
        .collect();
    thresholds.dedup();
    thresholds
}

/// The bin of a value: the first threshold it does not exceed; missing values get `missing`.
fn bin_of(x: f32, thresholds: &[f32], missing: u8) -> u8 {
    if x.is_nan() {
        missing
    } else {
        thresholds.partition_point(|t| *t < x) as u8
    }
}

/// A row's gradient and hessian.
type GradHess = (f32, f32);

#[derive(Debug, Clone, Copy, Default)]
struct Bin {
    gradient: f64,
    hessian: f64,
    count: u32,
}

/// Per feature, its bins (the missing bin last).
type Histogram = Vec<Vec<Bin>>;

/// The bins of one group of [`GROUP`] features for one row, side by side (unused lanes 0).
type Lanes = [u8; GROUP];

struct Binned {
    /// `groups[g][i]`: the bins of features `g * GROUP..` for the i-th training row. A node's
    /// rows are visited in increasing but scattered order: one load per row and group touches
    /// one cache line, where a column per feature would touch one line per feature.
    groups: Vec<Vec<Lanes>>,
    /// `columns[f][i]`: the same bins a column per feature, which partitioning a node on one
    /// feature reads in order.
    columns: Vec<Vec<u8>>,
    /// `counts[f][b]`: the training rows in bin `b` of feature `f` (the root's counts, the
    /// same for every tree).
    counts: Vec<Vec<u32>>,
    thresholds: Vec<Vec<f32>>,
}

impl Binned {
    /// Lays the bin columns (`columns[f][i]`, the i-th training row) out in groups.
    fn new(columns: Vec<Vec<u8>>, thresholds: Vec<Vec<f32>>) -> Binned {
        let rows = columns.first().map_or(0, Vec::len);
        let groups = columns
            .chunks(GROUP)
            .map(|group| {
                let mut lanes = vec![[0u8; GROUP]; rows];
                lanes
                    .par_chunks_mut(PARALLEL_ROWS)
                    .enumerate()
                    .for_each(|(c, out)| {
                        let start = c * PARALLEL_ROWS;
                        for (k, column) in group.iter().enumerate() {
                            for (lane, &b) in out.iter_mut().zip(&column[start..]) {
                                lane[k] = b;
                            }
                        }
                    });
                lanes
            })
            .collect();
        let counts = columns
            .par_iter()
            .zip(&thresholds)
            .map(|(column, thresholds)| {
                let mut counts = vec![0u32; thresholds.len() + 2];
                for &b in column {
                    counts[usize::from(b)] += 1;
                }
                counts
            })
            .collect();
        Binned {
            groups,
            columns,
            counts,
            thresholds,
        }
    }

    fn features(&self) -> usize {
        self.thresholds.len()
    }

    fn missing_bin(&self, feature: usize) -> usize {
        self.thresholds[feature].len() + 1
    }
}

#[derive(Debug, Clone, Copy)]
struct Split {
    feature: usize,
    /// Rows in bins `..=bin` go left.
    bin: usize,
    missing_left: bool,
    gain: f64,
    left: (f64, f64, u32),
    right: (f64, f64, u32),
}

/// A leaf waiting to be split: its rows are `order[start..end]`.
struct Open {
    node: usize,
    start: usize,
    end: usize,
    depth: usize,
    sums: (f64, f64),
    histogram: Histogram,
    split: Option<Split>,
}

/// Fits on the training `rows` of `frame`.
pub fn fit(frame: &Frame, rows: &[usize], params: &GbdtParams) -> Result<Gbdt> {
    if params.max_bins == 0 || params.max_bins > 255 {
        return Err(Error::invalid("max_bins must be between 1 and 255"));
    }
    if params.max_leaf_nodes < 2 {
        return Err(Error::invalid("max_leaf_nodes must be at least 2"));
    }
    let n = rows.len();
    if n == 0 {
        return Err(Error::invalid("no training rows"));
    }
    // Column by column, so the f32 copy of the whole table never exists at once.
    let (thresholds, columns): (Vec<Vec<f32>>, Vec<Vec<u8>>) = frame
        .features
        .par_iter()
        .map(|feature| {
            let values = column_values(feature);
            let thresholds = bin_thresholds(&values, rows, params.max_bins);
            let missing = (thresholds.len() + 1) as u8;
            let bins = rows
                .iter()
                .map(|&r| bin_of(values[r], &thresholds, missing))
                .collect();
            (thresholds, bins)
        })
        .unzip();
    let binned = Binned::new(columns, thresholds);

    let (loss, labels): (Loss, Vec<f64>) = match &frame.target {
        Target::Values(v) => (Loss::SquaredError, rows.iter().map(|&r| v[r]).collect()),
        Target::Classes { codes, classes } => (
            if classes.len() == 2 {
                Loss::Binary
            } else {
                Loss::Multiclass(classes.len())
            },
            rows.iter().map(|&r| f64::from(codes[r])).collect(),
        ),
    };
    let outputs = loss.outputs();
    let base_scores: Vec<f64> = base_scores(loss, &labels)
        .into_iter()
        .map(|b| f64::from(b as f32))
        .collect();
    let mut raw: Vec<f64> = (0..n).flat_map(|_| base_scores.iter().copied()).collect();
    // Gradients and hessians are kept as f32s, as scikit-learn keeps them; histograms sum
    // them in f64.
    let mut gradients: Vec<GradHess> = vec![(0.0, 0.0); n];
    let mut class_probabilities = match loss {
        Loss::Multiclass(_) => vec![0.0; n * outputs],
        _ => Vec::new(),
    };
    let mut trees = Vec::with_capacity(params.trees);
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut buffers = Buffers::default();
    for _ in 0..params.trees {
        let mut round = Vec::with_capacity(outputs);
        // Multiclass gradients of all outputs come from the scores before this round.
        if let Loss::Multiclass(_) = loss {
            for (row, out) in raw
                .chunks(outputs)
                .zip(class_probabilities.chunks_mut(outputs))
            {
                softmax(row, out);
            }
        }
        for k in 0..outputs {
            let (raw_now, labels, probabilities) = (&raw, &labels, &class_probabilities);
            let gradient = |(i, gh): (usize, &mut GradHess)| {
                let (g, h) = match loss {
                    Loss::SquaredError => (raw_now[i] - labels[i], 1.0),
                    Loss::Binary => {
                        let p = sigmoid(raw_now[i]);
                        (p - labels[i], (p * (1.0 - p)).max(1e-16))
                    }
                    Loss::Multiclass(_) => {
                        let y = if labels[i] as usize == k { 1.0 } else { 0.0 };
                        let p = probabilities[i * outputs + k];
                        (p - y, (p * (1.0 - p)).max(1e-16))
                    }
                };
                *gh = (g as f32, h as f32);
            };
            if n >= PARALLEL_WORK {
                gradients.par_iter_mut().enumerate().for_each(gradient);
            } else {
                gradients.iter_mut().enumerate().for_each(gradient);
            }
            let (tree, leaves) = grow(&binned, &gradients, &mut order, params, &mut buffers);
            add_leaf_values(&mut raw, outputs, k, &order, &leaves);
            round.push(tree);
        }
        trees.push(round);
    }
    Ok(Gbdt {
        loss,
        base_scores,
        trees,
        features: frame.features.len(),
    })
}

/// Adds each leaf's value to output `k` of the raw scores of its rows (`order[start..end]`).
/// A leaf's rows are increasing, so each block of rows finds its part of every leaf by binary
/// search, and blocks are updated in parallel.
fn add_leaf_values(
    raw: &mut [f64],
    outputs: usize,
    k: usize,
    order: &[u32],
    leaves: &[(f64, usize, usize)],
) {
    let update = |(block, raw): (usize, &mut [f64])| {
        let first = block * PARALLEL_ROWS;
        let last = first + raw.len() / outputs;
        for &(value, start, end) in leaves {
            let rows = &order[start..end];
            let from = rows.partition_point(|&r| (r as usize) < first);
            let to = rows.partition_point(|&r| (r as usize) < last);
            for &r in &rows[from..to] {
                raw[(r as usize - first) * outputs + k] += value;
            }
        }
    };
    let block = PARALLEL_ROWS * outputs;
    if raw.len() >= 2 * block {
        raw.par_chunks_mut(block).enumerate().for_each(update);
    } else {
        raw.chunks_mut(block).enumerate().for_each(update);
    }
}

fn base_scores(loss: Loss, labels: &[f64]) -> Vec<f64> {
    let n = labels.len() as f64;
    match loss {
        Loss::SquaredError => vec![labels.iter().sum::<f64>() / n],
        Loss::Binary => {
            let p = (labels.iter().sum::<f64>() / n).clamp(1e-15, 1.0 - 1e-15);
            vec![(p / (1.0 - p)).ln()]
        }
        Loss::Multiclass(k) => {
            let mut counts = vec![0.0; k];
            for &y in labels {
                counts[y as usize] += 1.0;
            }
            let logs: Vec<f64> = counts
                .iter()
                .map(|c| (c / n).clamp(1e-15, 1.0).ln())
                .collect();
            let mean = logs.iter().sum::<f64>() / k as f64;
            logs.iter().map(|l| l - mean).collect()
        }
    }
}

fn softmax(scores: &[f64], out: &mut [f64]) {
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for (o, s) in out.iter_mut().zip(scores) {
        *o = (s - max).exp();
        sum += *o;
    }
    for o in out.iter_mut() {
        *o /= sum;
    }
}

/// Features whose histograms one pass over a node's rows fills together: each row's gradient
/// is read once for all of them, and consecutive additions go to different histograms, so they
/// do not wait on each other. Their histograms (48 KB) sit in the L1 and L2 caches; groups of
/// four fit L1 alone but read every node's rows twice as often, which measured slower.
const GROUP: usize = 8;

thread_local! {
    /// Each thread's histograms for one group of features, all zero between calls of
    /// [`fill_group`].
    static GROUP_SCRATCH: std::cell::RefCell<Vec<[Bin; 256]>> =
        std::cell::RefCell::new(vec![[Bin::default(); 256]; GROUP]);
}

/// Histograms of the features of group `group` (the first `G` lanes) over the node's rows,
/// into `out` (one per feature, replaced): `rows[j]` has gradient `ordered[j]`; `in_order` when
/// `rows` is every row in order.
fn fill_group<const G: usize>(
    binned: &Binned,
    group: usize,
    rows: &[u32],
    ordered: &[GradHess],
    in_order: bool,
    out: &mut [Vec<Bin>],
) {
    let lanes = binned.groups[group].as_slice();
    GROUP_SCRATCH.with_borrow_mut(|scratch| {
        let histograms: &mut [[Bin; 256]] = &mut scratch[..G];
        if in_order {
            // Every row: the counts are the columns' own, known since binning.
            for (bins, &gh) in lanes.iter().zip(ordered) {
                add::<G, false>(histograms, bins, gh);
            }
        } else {
            // A node's rows are increasing but scattered: the hardware sees no stream to
            // prefetch, so each row's bins are asked for ahead of time.
            const AHEAD: usize = 24;
            for (j, (&r, &gh)) in rows.iter().zip(ordered).enumerate() {
                if let Some(&next) = rows.get(j + AHEAD) {
                    prefetch_index::prefetch_index(lanes, next as usize);
                }
                add::<G, true>(histograms, &lanes[r as usize], gh);
            }
        }
        // Only bins up to each feature's missing bin are filled: taking them leaves every
        // histogram zero.
        for (k, (histogram, out)) in histograms.iter_mut().zip(out).enumerate() {
            let feature = group * GROUP + k;
            out.clear();
            out.extend(
                histogram[..=binned.missing_bin(feature)]
                    .iter_mut()
                    .map(std::mem::take),
            );
            if in_order {
                for (bin, &count) in out.iter_mut().zip(&binned.counts[feature]) {
                    bin.count = count;
                }
            }
        }
    })
}

/// Adds one row's gradient and hessian (and one to the count, with `COUNT`) to the bins of
/// the first `G` features of a group.
#[inline(always)]
fn add<const G: usize, const COUNT: bool>(
    histograms: &mut [[Bin; 256]],
    bins: &Lanes,
    (g, h): GradHess,
) {
    let (g, h) = (f64::from(g), f64::from(h));
    for (histogram, &b) in histograms.iter_mut().zip(&bins[..G]) {
        // 256 bins indexed by a u8: no bounds check in the hot loop.
        let bin = &mut histogram[usize::from(b)];
        bin.gradient += g;
        bin.hessian += h;
        if COUNT {
            bin.count += 1;
        }
    }
}

/// Gradient histograms of the rows `order[start..end]`, one per feature, built in parallel,
/// in memory taken from `pool`.
fn histogram(
    binned: &Binned,
    gradients: &[GradHess],
    rows: &[u32],
    every_row_in_order: bool,
    gathered: &mut Vec<GradHess>,
    pool: &mut Vec<Vec<Bin>>,
) -> Histogram {
    // Gather the node's gradients once (into a buffer kept across nodes), so each group of
    // features reads them in order.
    let ordered = if every_row_in_order {
        gradients
    } else {
        gathered.clear();
        if rows.len() >= PARALLEL_ROWS {
            gathered.par_extend(rows.par_iter().map(|&r| gradients[r as usize]));
        } else {
            gathered.extend(rows.iter().map(|&r| gradients[r as usize]));
        }
        gathered.as_slice()
    };
    let features = binned.features();
    // Histogram memory is reused node after node and tree after tree rather than allocated
    // for every node (30 features x 256 bins x 24 bytes each time).
    let mut histogram: Histogram = (0..features)
        .map(|_| pool.pop().unwrap_or_default())
        .collect();
    let build = |(group, out): (usize, &mut [Vec<Bin>])| {
        let fill = match out.len() {
            1 => fill_group::<1>,
            2 => fill_group::<2>,
            3 => fill_group::<3>,
            4 => fill_group::<4>,
            5 => fill_group::<5>,
            6 => fill_group::<6>,
            7 => fill_group::<7>,
            _ => fill_group::<GROUP>,
        };
        fill(binned, group, rows, ordered, every_row_in_order, out)
    };
    if rows.len() * features >= PARALLEL_WORK {
        histogram.par_chunks_mut(GROUP).enumerate().for_each(build);
    } else {
        histogram.chunks_mut(GROUP).enumerate().for_each(build);
    }
    histogram
}

/// Below this much work (rows x features) a node's histograms and split search stay on the
/// calling thread: handing tiny tasks to the pool costs more than they take.
const PARALLEL_WORK: usize = 100_000;

/// The larger child's histograms: the parent's less the smaller child's, in the parent's memory.
fn subtract(mut parent: Histogram, child: &Histogram) -> Histogram {
    for (p, c) in parent.iter_mut().zip(child) {
        for (a, b) in p.iter_mut().zip(c) {
            a.gradient -= b.gradient;
            a.hessian -= b.hessian;
            a.count -= b.count;
        }
    }
    parent
}

fn score(g: f64, h: f64, l2: f64) -> f64 {
    g * g / (h + l2)
}

/// The best split of a leaf, if one gains anything and keeps `min_samples_leaf` rows a side.
fn best_split(
    histogram: &Histogram,
    sums: (f64, f64),
    count: u32,
    params: &GbdtParams,
) -> Option<Split> {
    let (g_total, h_total) = sums;
    let l2 = params.l2_regularization;
    let parent = score(g_total, h_total, l2);
    let min_leaf = params.min_samples_leaf.max(1) as u32;
    let search = |(feature, bins): (usize, &Vec<Bin>)| -> Option<Split> {
        let missing = bins[bins.len() - 1];
        let present = &bins[..bins.len() - 1];
        let mut best: Option<Split> = None;
        // Missing values try both sides; with none, they follow the larger child.
        let sides: &[bool] = if missing.count > 0 {
            &[false, true]
        } else {
            &[false]
        };
        for &missing_left in sides {
            let (mut g, mut h, mut c) = if missing_left {
                (missing.gradient, missing.hessian, missing.count)
            } else {
                (0.0, 0.0, 0)
            };
            for (bin, b) in present.iter().enumerate() {
                // An empty bin splits the rows as the bin before it did: no new candidate.
                if b.count == 0 {
                    continue;
                }
                g += b.gradient;
                h += b.hessian;
                c += b.count;
                if c < min_leaf {
                    continue;
                }
                let right_count = count - c;
                if right_count < min_leaf {
                    break;
                }
                let (gr, hr) = (g_total - g, h_total - h);
                if h < MIN_HESSIAN || hr < MIN_HESSIAN {
                    continue;
                }
                let gain = score(g, h, l2) + score(gr, hr, l2) - parent;
                if gain > best.map_or(1e-12, |s| s.gain) {
                    best = Some(Split {
                        feature,
                        bin,
                        missing_left,
                        gain,
                        left: (g, h, c),
                        right: (gr, hr, right_count),
                    });
                }
            }
        }
        if missing.count == 0 {
            if let Some(s) = best.as_mut() {
                s.missing_left = s.left.2 >= s.right.2;
            }
        }
        best
    };
    // Ties go to the lower feature, so the result does not depend on thread timing.
    let pick = |a: Split, b: Split| {
        if b.gain > a.gain || (b.gain == a.gain && b.feature < a.feature) {
            b
        } else {
            a
        }
    };
    if count as usize * histogram.len() < PARALLEL_WORK {
        histogram.iter().enumerate().filter_map(search).reduce(pick)
    } else {
        histogram
            .par_iter()
            .enumerate()
            .filter_map(search)
            .reduce_with(pick)
    }
}

/// Working memory kept from node to node and tree to tree: large buffers allocated afresh
/// for every node cost page faults.
#[derive(Default)]
struct Buffers {
    /// Rows going right while a node is partitioned.
    scratch: Vec<u32>,
    /// A node's gradients in the order of its rows.
    gathered: Vec<GradHess>,
    /// Per-feature histograms no node holds now.
    pool: Vec<Vec<Bin>>,
}

/// Below this many rows, work row by row (a node's partition, a gather of its gradients, leaf
/// values added to the scores) stays on the calling thread; above, rows go to the pool in
/// blocks of this many.
const PARALLEL_ROWS: usize = 1 << 16;

/// Moves the rows that go left before the others, each side keeping its order (so building a
/// child's histograms reads the bin columns forwards); returns how many go left.
fn partition(
    slice: &mut [u32],
    scratch: &mut Vec<u32>,
    goes_left: impl Fn(u32) -> bool + Sync,
) -> usize {
    // Branch-free: each row is written to both sides and only the side it belongs to moves
    // on (which side is a coin toss the branch predictor would lose).
    let serial = |slice: &mut [u32], scratch: &mut Vec<u32>| {
        scratch.clear();
        scratch.resize(slice.len(), 0);
        let (mut left, mut right) = (0, 0);
        for i in 0..slice.len() {
            let r = slice[i];
            let goes = goes_left(r);
            slice[left] = r;
            scratch[right] = r;
            left += usize::from(goes);
            right += usize::from(!goes);
        }
        slice[left..].copy_from_slice(&scratch[..right]);
        left
    };
    if slice.len() < PARALLEL_ROWS {
        return serial(slice, scratch);
    }
    // Partition chunks in parallel, then gather every chunk's left rows, then every right.
    let chunk = PARALLEL_ROWS / 4;
    let lefts: Vec<usize> = slice
        .par_chunks_mut(chunk)
        .map_init(Vec::new, |scratch, c| serial(c, scratch))
        .collect();
    let total_left: usize = lefts.iter().sum();
    scratch.clear();
    scratch.resize(slice.len(), 0);
    let (mut left_out, mut right_out) = scratch.split_at_mut(total_left);
    let mut destinations = Vec::with_capacity(lefts.len());
    for (c, &left) in slice.chunks(chunk).zip(&lefts) {
        let (l, rest) = std::mem::take(&mut left_out).split_at_mut(left);
        let (r, rest_right) = std::mem::take(&mut right_out).split_at_mut(c.len() - left);
        left_out = rest;
        right_out = rest_right;
        destinations.push((l, r));
    }
    slice
        .par_chunks(chunk)
        .zip(lefts.par_iter())
        .zip(destinations.into_par_iter())
        .for_each(|((c, &left), (l, r))| {
            l.copy_from_slice(&c[..left]);
            r.copy_from_slice(&c[left..]);
        });
    slice
        .par_chunks_mut(chunk)
        .zip(scratch.par_chunks(chunk))
        .for_each(|(to, from)| to.copy_from_slice(from));
    total_left
}

/// Grows one tree leaf-wise on the given gradients; returns it with each leaf's (value, start,
/// end) in `order`.
fn grow(
    binned: &Binned,
    gradients: &[GradHess],
    order: &mut [u32],
    params: &GbdtParams,
    buffers: &mut Buffers,
) -> (Tree, Vec<(f64, usize, usize)>) {
    // Rows in their original order read the columns sequentially at the root.
    for (i, o) in order.iter_mut().enumerate() {
        *o = i as u32;
    }
    let n = order.len();
    let Buffers {
        scratch,
        gathered,
        pool,
    } = buffers;
    let root_histogram = histogram(binned, gradients, order, true, gathered, pool);
    let sums = root_histogram[0]
        .iter()
        .fold((0.0, 0.0), |(g, h), b| (g + b.gradient, h + b.hessian));
    let mut nodes = vec![Node::Leaf { value: 0.0 }];
    let mut open = vec![Open {
        node: 0,
        start: 0,
        end: n,
        depth: 0,
        sums,
        split: best_split(&root_histogram, sums, n as u32, params),
        histogram: root_histogram,
    }];
    let mut leaves = 1;
    while leaves < params.max_leaf_nodes {
        // The open leaf whose split gains most.
        let Some(pick) = open
            .iter()
            .enumerate()
            .filter_map(|(i, o)| o.split.map(|s| (i, s.gain)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
        else {
            break;
        };
        let leaf = open.swap_remove(pick);
        let Some(split) = leaf.split else { break };
        // Partition the leaf's rows: left ones first.
        let column = binned.columns[split.feature].as_slice();
        let missing_bin = binned.missing_bin(split.feature);
        let (last_left, missing_left) = (split.bin, split.missing_left);
        let goes_left = |r: u32| {
            let b = usize::from(column[r as usize]);
            (b == missing_bin && missing_left) | (b != missing_bin && b <= last_left)
        };
        let middle = partition(&mut order[leaf.start..leaf.end], scratch, goes_left);
        let middle = leaf.start + middle;
        let (left_id, right_id) = (nodes.len(), nodes.len() + 1);
        nodes.push(Node::Leaf { value: 0.0 });
        nodes.push(Node::Leaf { value: 0.0 });
        let threshold = binned.thresholds[split.feature]
            .get(split.bin)
            .copied()
            .unwrap_or(f32::INFINITY);
        nodes[leaf.node] = Node::Split {
            feature: split.feature,
            threshold,
            missing_left: split.missing_left,
            left: left_id,
            right: right_id,
            gain: split.gain,
        };
        leaves += 1;
        let depth = leaf.depth + 1;
        let can_split = params.max_depth.is_none_or(|d| depth < d);
        let left_rows = &order[leaf.start..middle];
        let right_rows = &order[middle..leaf.end];
        let (left_histogram, right_histogram) = if left_rows.len() <= right_rows.len() {
            let small = histogram(binned, gradients, left_rows, false, gathered, pool);
            let large = subtract(leaf.histogram, &small);
            (small, large)
        } else {
            let small = histogram(binned, gradients, right_rows, false, gathered, pool);
            let large = subtract(leaf.histogram, &small);
            (large, small)
        };
        for (node, start, end, (g, h, c), hist) in [
            (left_id, leaf.start, middle, split.left, left_histogram),
            (right_id, middle, leaf.end, split.right, right_histogram),
        ] {
            let split = if can_split && c as usize >= 2 * params.min_samples_leaf.max(1) {
                best_split(&hist, (g, h), c, params)
            } else {
                None
            };
            open.push(Open {
                node,
                start,
                end,
                depth,
                sums: (g, h),
                histogram: hist,
                split,
            });
        }
    }
    let mut out = Vec::with_capacity(open.len());
    for leaf in open {
        let (g, h) = leaf.sums;
        // Leaf values are kept as f32s: ONNX runtimes read tree weights in the input's type.
        let value = f64::from((-params.learning_rate * g / (h + params.l2_regularization)) as f32);
        nodes[leaf.node] = Node::Leaf { value };
        out.push((value, leaf.start, leaf.end));
        pool.extend(leaf.histogram);
    }
    (Tree { nodes }, out)
}

impl Gbdt {
    /// Raw scores (log-odds, softmax inputs or values) of one row of `f32` features.
    pub fn raw_scores(&self, row: &[f32]) -> Vec<f64> {
        let mut scores = self.base_scores.clone();
        for round in &self.trees {
            for (k, tree) in round.iter().enumerate() {
                scores[k] += tree.predict(row);
            }
        }
        scores
    }

    /// Class probabilities per row (row-major, one per class), or values (one per row).
    pub fn predict(&self, frame: &Frame, rows: &[usize]) -> Vec<f64> {
        let outputs = match self.loss {
            Loss::SquaredError => 1,
            Loss::Binary => 2,
            Loss::Multiclass(k) => k,
        };
        let mut out = vec![0.0; rows.len() * outputs];
        const CHUNK: usize = 4096;
        out.par_chunks_mut(CHUNK * outputs)
            .zip(rows.par_chunks(CHUNK))
            .for_each(|(out, rows)| {
                let mut row = vec![0.0f32; frame.features.len()];
                for (o, &r) in out.chunks_mut(outputs).zip(rows) {
                    for (x, feature) in row.iter_mut().zip(&frame.features) {
                        *x = match &feature.column {
                            Column::Numeric(v) => v[r] as f32,
                            Column::Categorical { codes, .. } => {
                                if codes[r] == MISSING {
                                    f32::NAN
                                } else {
                                    codes[r] as f32
                                }
                            }
                        };
                    }
                    let scores = self.raw_scores(&row);
                    match self.loss {
                        Loss::SquaredError => o[0] = scores[0],
                        Loss::Binary => {
                            let p = sigmoid(scores[0]);
                            o[0] = 1.0 - p;
                            o[1] = p;
                        }
                        Loss::Multiclass(_) => softmax(&scores, o),
                    }
                }
            });
        out
    }

    /// Each feature's share of the total split gain.
    pub fn feature_importances(&self) -> Vec<f64> {
        let mut gains = vec![0.0; self.features];
        for tree in self.trees.iter().flatten() {
            for node in &tree.nodes {
                if let Node::Split { feature, gain, .. } = node {
                    gains[*feature] += gain;
                }
            }
        }
        let total: f64 = gains.iter().sum();
        if total > 0.0 {
            gains.iter_mut().for_each(|g| *g /= total);
        }
        gains
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Feature;

    /// A small deterministic generator for the tests below.
    fn numbers(seed: u64) -> impl FnMut() -> u64 {
        let mut state = seed;
        move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            state >> 33
        }
    }

    #[test]
    fn histograms_equal_a_plain_count_on_every_path() {
        // 11 features (a group of 8 and one of 3), missing bins of different heights, the
        // root's in-order path and gathered nodes, small (serial) and large (parallel).
        let mut next = numbers(3);
        for n in [37, 120_000] {
            let features = 11;
            let thresholds: Vec<Vec<f32>> =
                (0..features).map(|f| vec![0.0; 1 + f * 23 % 254]).collect();
            let bins: Vec<Vec<u8>> = thresholds
                .iter()
                .map(|t| {
                    (0..n)
                        .map(|_| (next() % (t.len() as u64 + 2)) as u8)
                        .collect()
                })
                .collect();
            let binned = Binned::new(bins.clone(), thresholds);
            let gradients: Vec<GradHess> = (0..n)
                .map(|_| {
                    (
                        (next() % 1000) as f32 / 7.0 - 50.0,
                        (next() % 100) as f32 / 3.0,
                    )
                })
                .collect();
            let every: Vec<u32> = (0..n as u32).collect();
            let some: Vec<u32> = every.iter().copied().filter(|r| r % 3 != 1).collect();
            for (rows, in_order) in [(&every, true), (&every, false), (&some, false)] {
                let built = histogram(
                    &binned,
                    &gradients,
                    rows,
                    in_order,
                    &mut Vec::new(),
                    &mut Vec::new(),
                );
                for (f, column) in bins.iter().enumerate() {
                    let mut plain = vec![Bin::default(); binned.missing_bin(f) + 1];
                    for &r in rows.iter() {
                        let bin = &mut plain[usize::from(column[r as usize])];
                        bin.gradient += f64::from(gradients[r as usize].0);
                        bin.hessian += f64::from(gradients[r as usize].1);
                        bin.count += 1;
                    }
                    assert_eq!(built[f].len(), plain.len());
                    for (b, p) in built[f].iter().zip(&plain) {
                        assert_eq!(b.count, p.count, "n {n} feature {f}");
                        assert!((b.gradient - p.gradient).abs() < 1e-6 * p.gradient.abs().max(1.0));
                        assert!((b.hessian - p.hessian).abs() < 1e-6 * p.hessian.abs().max(1.0));
                    }
                }
            }
        }
    }

    #[test]
    fn leaf_values_reach_every_row_of_their_leaf_serial_and_parallel() {
        let mut next = numbers(5);
        for (n, outputs) in [(1000, 1), (3 * PARALLEL_ROWS + 11, 1), (300_000, 3)] {
            // Rows dealt to 7 leaves at random, each leaf's rows increasing, as partitions leave
            // them.
            let leaf_of: Vec<usize> = (0..n).map(|_| (next() % 7) as usize).collect();
            let mut order = Vec::new();
            let mut leaves = Vec::new();
            for leaf in 0..7 {
                let start = order.len();
                order.extend((0..n as u32).filter(|&r| leaf_of[r as usize] == leaf));
                leaves.push((leaf as f64 + 0.5, start, order.len()));
            }
            for k in 0..outputs {
                let mut raw = vec![1.0; n * outputs];
                add_leaf_values(&mut raw, outputs, k, &order, &leaves);
                for (r, scores) in raw.chunks(outputs).enumerate() {
                    for (j, &s) in scores.iter().enumerate() {
                        let expected = if j == k { 1.5 + leaf_of[r] as f64 } else { 1.0 };
                        assert_eq!(s, expected, "n {n} row {r} output {j}");
                    }
                }
            }
        }
    }

    #[test]
    fn partitions_are_stable_serial_and_parallel() {
        let mut next = numbers(9);
        for n in [0, 1, 1000, PARALLEL_ROWS - 1, 5 * PARALLEL_ROWS + 17] {
            let rows: Vec<u32> = (0..n as u32).map(|i| i * 3 + (next() % 3) as u32).collect();
            let side: Vec<bool> = (0..rows.last().map_or(0, |r| *r as usize + 1))
                .map(|_| next() % 5 < 2)
                .collect();
            let mut partitioned = rows.clone();
            let mut scratch = Vec::new();
            let left = partition(&mut partitioned, &mut scratch, |r| side[r as usize]);
            let expected: Vec<u32> = rows
                .iter()
                .copied()
                .filter(|&r| side[r as usize])
                .chain(rows.iter().copied().filter(|&r| !side[r as usize]))
                .collect();
            assert_eq!(partitioned, expected, "n {n}");
            assert_eq!(left, rows.iter().filter(|&&r| side[r as usize]).count());
        }
    }

    #[test]
    fn thresholds_separate_distinct_values_and_keep_f32_order() {
        let v = [1.0f32, 2.0, 2.0, 3.0, f32::NAN];
        let rows: Vec<usize> = (0..v.len()).collect();
        let t = bin_thresholds(&v, &rows, 255);
        assert_eq!(t, vec![1.5, 2.5]);
        assert_eq!(bin_of(1.0, &t, 3), 0);
        assert_eq!(bin_of(2.0, &t, 3), 1);
        assert_eq!(bin_of(3.0, &t, 3), 2);
        assert_eq!(bin_of(f32::NAN, &t, 3), 3);
        // Adjacent floats: the midpoint rounds to one of them and must stay below the upper.
        let (a, b) = (1.0f32, f32::from_bits(1.0f32.to_bits() + 1));
        let t = bin_thresholds(&[a, b], &[0, 1], 255);
        assert!(a <= t[0] && t[0] < b);
    }

    #[test]
    fn a_step_function_is_learned_with_missing_values_routed() {
        // y = 10 when x > 0.5, else 0; missing x behave like large ones. 100 distinct values
        // get a bin each.
        let n = 400;
        let x: Vec<f64> = (0..n)
            .map(|i| {
                if i % 10 == 0 {
                    f64::NAN
                } else {
                    (i % 100) as f64 / 100.0
                }
            })
            .collect();
        let y: Vec<f64> = x
            .iter()
            .map(|v| if v.is_nan() || *v > 0.5 { 10.0 } else { 0.0 })
            .collect();
        let frame = Frame {
            features: vec![Feature {
                name: "x".into(),
                column: Column::Numeric(x),
            }],
            target_name: "y".into(),
            target: Target::Values(y.clone()),
            rows: n,
        };
        let rows: Vec<usize> = (0..n).collect();
        let model = fit(&frame, &rows, &GbdtParams::default()).unwrap();
        let predicted = model.predict(&frame, &rows);
        let worst = predicted
            .iter()
            .zip(&y)
            .map(|(p, t)| (p - t).abs())
            .fold(0.0, f64::max);
        // 100 rounds at rate 0.1 close all but 0.9^100 of the gap.
        assert!(worst < 1e-3, "{worst}");
        assert_eq!(model.feature_importances(), vec![1.0]);
    }
}
