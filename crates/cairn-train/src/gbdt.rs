//! Histogram gradient-boosted trees, grown leaf-wise as scikit-learn's
//! `HistGradientBoostingClassifier/Regressor` and LightGBM grow them: features binned once into
//! at most 255 bins (plus one for missing values), per-node gradient histograms built for the
//! smaller child and subtracted from the parent for the larger, splits that learn where missing
//! values go, and leaves that never hold fewer than `min_samples_leaf` rows.
//!
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
    frame
        .features
        .iter()
        .map(|f| match &f.column {
            Column::Numeric(v) => v.iter().map(|&x| x as f32).collect(),
            Column::Categorical { codes, .. } => codes
                .iter()
                .map(|&c| if c == MISSING { f32::NAN } else { c as f32 })
                .collect(),
        })
        .collect()
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

#[derive(Debug, Clone, Copy, Default)]
struct Bin {
    gradient: f64,
    hessian: f64,
    count: u32,
}

/// Per feature, its bins (the missing bin last).
type Histogram = Vec<Vec<Bin>>;

struct Binned {
    /// Column-major bins of the training rows (row `i` is the i-th training row).
    bins: Vec<Vec<u8>>,
    thresholds: Vec<Vec<f32>>,
}

impl Binned {
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
    let values = feature_values(frame);
    let n = rows.len();
    if n == 0 {
        return Err(Error::invalid("no training rows"));
    }
    let thresholds: Vec<Vec<f32>> = values
        .par_iter()
        .map(|v| bin_thresholds(v, rows, params.max_bins))
        .collect();
    let bins: Vec<Vec<u8>> = values
        .par_iter()
        .zip(&thresholds)
        .map(|(v, t)| {
            let missing = (t.len() + 1) as u8;
            rows.iter().map(|&r| bin_of(v[r], t, missing)).collect()
        })
        .collect();
    let binned = Binned { bins, thresholds };

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
    let mut gradients = vec![0.0; n];
    let mut hessians = vec![0.0; n];
    let mut class_probabilities = match loss {
        Loss::Multiclass(_) => vec![0.0; n * outputs],
        _ => Vec::new(),
    };
    let mut trees = Vec::with_capacity(params.trees);
    let mut order: Vec<u32> = (0..n as u32).collect();
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
            gradients
                .par_iter_mut()
                .zip(hessians.par_iter_mut())
                .enumerate()
                .for_each(|(i, (g, h))| {
                    (*g, *h) = match loss {
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
                });
            let (tree, leaves) = grow(&binned, &gradients, &hessians, &mut order, params);
            for (value, start, end) in leaves {
                for &i in &order[start..end] {
                    raw[i as usize * outputs + k] += value;
                }
            }
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

/// Gradient histograms of the rows `order[start..end]`, one per feature, built in parallel.
fn histogram(
    binned: &Binned,
    gradients: &[f64],
    hessians: &[f64],
    rows: &[u32],
    every_row_in_order: bool,
) -> Histogram {
    // The root holds every row in order: read the columns and gradients straight through.
    if every_row_in_order {
        return binned
            .bins
            .par_iter()
            .enumerate()
            .map(|(f, column)| {
                let mut bins: Box<[Bin; 256]> = Box::new([Bin::default(); 256]);
                for ((&b, &g), &h) in column.iter().zip(gradients).zip(hessians) {
                    let bin = &mut bins[usize::from(b)];
                    bin.gradient += g;
                    bin.hessian += h;
                    bin.count += 1;
                }
                bins[..=binned.missing_bin(f)].to_vec()
            })
            .collect();
    }
    // Gather the node's gradients once, so each feature reads them in order.
    let ordered: Vec<(f64, f64)> = rows
        .iter()
        .map(|&r| (gradients[r as usize], hessians[r as usize]))
        .collect();
    let build = |(f, column): (usize, &Vec<u8>)| -> Vec<Bin> {
        // 256 bins indexed by a u8: no bounds check in the hot loop.
        let mut bins: Box<[Bin; 256]> = Box::new([Bin::default(); 256]);
        for (&r, &(g, h)) in rows.iter().zip(&ordered) {
            let b = &mut bins[usize::from(column[r as usize])];
            b.gradient += g;
            b.hessian += h;
            b.count += 1;
        }
        bins[..=binned.missing_bin(f)].to_vec()
    };
    if rows.len() * binned.bins.len() < PARALLEL_WORK {
        binned.bins.iter().enumerate().map(build).collect()
    } else {
        binned.bins.par_iter().enumerate().map(build).collect()
    }
}

/// Below this much work (rows x features) a node's histograms and split search stay on the
/// calling thread: handing tiny tasks to the pool costs more than they take.
const PARALLEL_WORK: usize = 100_000;

fn subtract(parent: &Histogram, child: &Histogram) -> Histogram {
    parent
        .iter()
        .zip(child)
        .map(|(p, c)| {
            p.iter()
                .zip(c)
                .map(|(a, b)| Bin {
                    gradient: a.gradient - b.gradient,
                    hessian: a.hessian - b.hessian,
                    count: a.count - b.count,
                })
                .collect()
        })
        .collect()
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

/// Grows one tree leaf-wise on the given gradients; returns it with each leaf's (value, start,
/// end) in `order`.
fn grow(
    binned: &Binned,
    gradients: &[f64],
    hessians: &[f64],
    order: &mut [u32],
    params: &GbdtParams,
) -> (Tree, Vec<(f64, usize, usize)>) {
    // Rows in their original order read the columns sequentially at the root.
    for (i, o) in order.iter_mut().enumerate() {
        *o = i as u32;
    }
    let n = order.len();
    let root_histogram = histogram(binned, gradients, hessians, order, true);
    let sums = root_histogram[0]
        .iter()
        .fold((0.0, 0.0), |(g, h), b| (g + b.gradient, h + b.hessian));
    let mut nodes = vec![Node::Leaf { value: 0.0 }];
    let mut scratch: Vec<u32> = Vec::new();
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
        let column = &binned.bins[split.feature];
        let missing_bin = binned.missing_bin(split.feature);
        let goes_left = |r: u32| {
            let b = column[r as usize] as usize;
            if b == missing_bin {
                split.missing_left
            } else {
                b <= split.bin
            }
        };
        // A stable partition: both children keep their rows in increasing order, so building
        // their histograms reads the bin columns forwards.
        let slice = &mut order[leaf.start..leaf.end];
        scratch.clear();
        let mut middle = 0;
        for i in 0..slice.len() {
            let r = slice[i];
            if goes_left(r) {
                slice[middle] = r;
                middle += 1;
            } else {
                scratch.push(r);
            }
        }
        slice[middle..].copy_from_slice(&scratch);
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
            let small = histogram(binned, gradients, hessians, left_rows, false);
            let large = subtract(&leaf.histogram, &small);
            (small, large)
        } else {
            let small = histogram(binned, gradients, hessians, right_rows, false);
            let large = subtract(&leaf.histogram, &small);
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
