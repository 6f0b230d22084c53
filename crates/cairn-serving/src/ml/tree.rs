//! TreeEnsembleClassifier and TreeEnsembleRegressor (ai.onnx.ml v1 and v3 attributes).
//!
//! The trees are flattened at load into one array of 24-byte nodes (threshold, feature,
//! both children, mode) with tree-relative child ids made absolute, and leaf weights into a
//! second array, so a row walks each tree with plain indexing and no allocation. Rows are
//! converted to `f64` once, which compares exactly as onnxruntime does for `f32` and `f64`
//! inputs against `f32` or `f64` thresholds.

use std::sync::Arc;

use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::transform::{logistic, probit, PostTransform};
use super::Labels;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Leaf,
}

impl Mode {
    fn parse(name: &str) -> TractResult<Self> {
        Ok(match name {
            "BRANCH_LEQ" => Mode::Leq,
            "BRANCH_LT" => Mode::Lt,
            "BRANCH_GTE" => Mode::Gte,
            "BRANCH_GT" => Mode::Gt,
            "BRANCH_EQ" => Mode::Eq,
            "BRANCH_NEQ" => Mode::Neq,
            "LEAF" => Mode::Leaf,
            other => bail!("unsupported node mode '{other}'"),
        })
    }
}

/// One node. For a leaf, `feature..true_next` is its range in [`Forest::weights`].
#[derive(Debug, Clone, Copy)]
struct Node {
    threshold: f64,
    feature: u32,
    true_next: u32,
    false_next: u32,
    mode: Mode,
    missing_goes_true: bool,
}

#[derive(Debug, Clone, Copy)]
struct Weight {
    target: u32,
    value: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

/// What a classifier needs beyond the trees.
#[derive(Debug, Clone)]
struct Classes {
    labels: Labels,
    /// Two classes and leaves that vote for one class id only (onnxruntime's "binary case").
    binary_case: bool,
    weights_all_positive: bool,
}

/// A whole ensemble, ready to evaluate.
#[derive(Debug)]
pub(crate) struct Forest {
    nodes: Vec<Node>,
    roots: Vec<u32>,
    weights: Vec<Weight>,
    n_targets: usize,
    /// Smallest number of features a row must have.
    n_features: usize,
    aggregate: Aggregate,
    base_values: Vec<f64>,
    post_transform: PostTransform,
    classes: Option<Classes>,
    /// Scores are summed in `f32` when the weights were given as floats, as onnxruntime
    /// does: ties (a forest's 0.5) then break the same way.
    f32_scores: bool,
}

fn ints(node: &NodeProto, name: &str) -> TractResult<Vec<i64>> {
    Ok(node
        .get_attr_opt_slice::<i64>(name)?
        .unwrap_or(&[])
        .to_vec())
}

/// A float attribute given as a list of floats or (v3) as a double tensor `NAME_as_tensor`.
fn floats(node: &NodeProto, name: &str) -> TractResult<Vec<f64>> {
    let as_tensor = format!("{name}_as_tensor");
    if let Some(proto) = node.get_attr_opt::<&tract_onnx::pb::TensorProto>(&as_tensor)? {
        let tensor = tract_onnx::tensor::load_tensor(
            &tract_onnx::data_resolver::MmapDataResolver,
            proto,
            None,
        )?;
        let tensor = tensor.cast_to::<f64>()?;
        return Ok(tensor
            .to_plain_array_view::<f64>()?
            .iter()
            .copied()
            .collect());
    }
    Ok(node
        .get_attr_opt_slice::<f32>(name)?
        .unwrap_or(&[])
        .iter()
        .map(|v| *v as f64)
        .collect())
}

fn index(v: i64, what: &str) -> TractResult<u32> {
    u32::try_from(v).map_err(|_| format_err!("{what} {v} is out of range"))
}

impl Forest {
    fn parse(node: &NodeProto, leaf_prefix: &str, classes: Option<Labels>) -> TractResult<Self> {
        let tree_ids = ints(node, "nodes_treeids")?;
        let node_ids = ints(node, "nodes_nodeids")?;
        let features = ints(node, "nodes_featureids")?;
        let trues = ints(node, "nodes_truenodeids")?;
        let falses = ints(node, "nodes_falsenodeids")?;
        let thresholds = floats(node, "nodes_values")?;
        let modes: Vec<String> = node.get_attr_opt_vec("nodes_modes")?.unwrap_or_default();
        let missing: Vec<i64> = ints(node, "nodes_missing_value_tracks_true")?;
        let n = tree_ids.len();
        if n == 0 {
            bail!("the ensemble has no nodes");
        }
        for (name, len) in [
            ("nodes_nodeids", node_ids.len()),
            ("nodes_featureids", features.len()),
            ("nodes_modes", modes.len()),
            ("nodes_values", thresholds.len()),
        ] {
            if len != n {
                bail!("attribute {name} has {len} values for {n} nodes");
            }
        }
        // Child ids are only read for branch nodes; some exporters leave them empty otherwise.
        if trues.len() != n || falses.len() != n {
            bail!("nodes_truenodeids and nodes_falsenodeids must have one value per node");
        }
        if !missing.is_empty() && missing.len() != n {
            bail!("nodes_missing_value_tracks_true must have one value per node");
        }

        // Absolute slot of every (tree, node) pair, trees in order of first appearance.
        let mut slot_of: HashMap<(i64, i64), u32> = HashMap::with_capacity(n);
        let mut roots_by_tree: Vec<(i64, u32)> = Vec::new();
        for i in 0..n {
            if slot_of
                .insert((tree_ids[i], node_ids[i]), i as u32)
                .is_some()
            {
                bail!(
                    "node {} of tree {} is defined twice",
                    node_ids[i],
                    tree_ids[i]
                );
            }
        }
        let mut nodes = Vec::with_capacity(n);
        let mut n_features = 0usize;
        for i in 0..n {
            let mode = Mode::parse(&modes[i])?;
            let tree = tree_ids[i];
            let child = |id: i64| {
                slot_of
                    .get(&(tree, id))
                    .copied()
                    .ok_or_else(|| format_err!("tree {tree} has no node {id}"))
            };
            let (true_next, false_next) = if mode == Mode::Leaf {
                (0, 0)
            } else {
                (child(trues[i])?, child(falses[i])?)
            };
            let feature = if mode == Mode::Leaf {
                0
            } else {
                let f = index(features[i], "feature id")?;
                n_features = n_features.max(f as usize + 1);
                f
            };
            nodes.push(Node {
                threshold: thresholds[i],
                feature,
                true_next,
                false_next,
                mode,
                missing_goes_true: missing.get(i).is_some_and(|m| *m != 0),
            });
        }
        // A tree's root is the node no other node of the tree points to.
        let mut pointed = vec![false; n];
        for node in &nodes {
            if node.mode != Mode::Leaf {
                pointed[node.true_next as usize] = true;
                pointed[node.false_next as usize] = true;
            }
        }
        for i in 0..n {
            if !pointed[i] {
                roots_by_tree.push((tree_ids[i], i as u32));
            }
        }
        roots_by_tree.sort_by_key(|(tree, _)| *tree);
        if roots_by_tree.windows(2).any(|w| w[0].0 == w[1].0) {
            bail!("a tree has more than one root");
        }

        // Leaf weights, grouped by leaf in declaration order.
        let leaf_trees = ints(node, &format!("{leaf_prefix}_treeids"))?;
        let leaf_nodes = ints(node, &format!("{leaf_prefix}_nodeids"))?;
        let leaf_targets = ints(node, &format!("{leaf_prefix}_ids"))?;
        let leaf_values = floats(node, &format!("{leaf_prefix}_weights"))?;
        let f32_scores = node
            .get_attr_opt::<&tract_onnx::pb::TensorProto>(&format!(
                "{leaf_prefix}_weights_as_tensor"
            ))?
            .is_none();
        let m = leaf_trees.len();
        if leaf_nodes.len() != m || leaf_targets.len() != m || leaf_values.len() != m {
            bail!("the {leaf_prefix}_* attributes must have the same length");
        }
        let n_targets = match &classes {
            Some(labels) => labels.len(),
            None => usize::try_from(node.get_attr_opt::<i64>("n_targets")?.unwrap_or(1))
                .map_err(|_| format_err!("n_targets must be positive"))?,
        };
        if n_targets == 0 {
            bail!("the ensemble has no targets or classes");
        }
        let mut per_leaf: Vec<Vec<Weight>> = vec![Vec::new(); n];
        for j in 0..m {
            let slot = *slot_of
                .get(&(leaf_trees[j], leaf_nodes[j]))
                .ok_or_else(|| {
                    format_err!(
                        "a weight names node {} of tree {}, which does not exist",
                        leaf_nodes[j],
                        leaf_trees[j]
                    )
                })?;
            let target = index(leaf_targets[j], "target id")?;
            if target as usize >= n_targets {
                bail!("target id {target} is beyond the {n_targets} targets or classes");
            }
            per_leaf[slot as usize].push(Weight {
                target,
                value: leaf_values[j],
            });
        }
        let mut weights = Vec::with_capacity(m);
        for (slot, node) in nodes.iter_mut().enumerate() {
            if node.mode == Mode::Leaf {
                node.feature = weights.len() as u32;
                weights.extend_from_slice(&per_leaf[slot]);
                node.true_next = weights.len() as u32;
            }
        }

        let aggregate = match node
            .get_attr_opt::<&str>("aggregate_function")?
            .unwrap_or("SUM")
        {
            "SUM" => Aggregate::Sum,
            "AVERAGE" => Aggregate::Average,
            "MIN" => Aggregate::Min,
            "MAX" => Aggregate::Max,
            other => bail!("unknown aggregate_function '{other}'"),
        };
        let post_transform = PostTransform::parse(node.get_attr_opt::<&str>("post_transform")?)?;
        let base_values = floats(node, "base_values")?;
        let classes = classes.map(|labels| {
            let mut voted: Vec<u32> = weights.iter().map(|w| w.target).collect();
            voted.sort_unstable();
            voted.dedup();
            Classes {
                binary_case: labels.len() == 2 && voted.len() == 1,
                weights_all_positive: weights.iter().all(|w| w.value >= 0.0),
                labels,
            }
        });
        Ok(Forest {
            nodes,
            roots: roots_by_tree.into_iter().map(|(_, root)| root).collect(),
            weights,
            n_targets,
            n_features,
            aggregate,
            base_values,
            post_transform,
            classes,
            f32_scores,
        })
    }

    fn leaf(&self, root: u32, row: &[f64]) -> &Node {
        let mut node = &self.nodes[root as usize];
        loop {
            let go_true = match node.mode {
                Mode::Leaf => return node,
                mode => {
                    let x = row[node.feature as usize];
                    let t = node.threshold;
                    let hit = match mode {
                        Mode::Leq => x <= t,
                        Mode::Lt => x < t,
                        Mode::Gte => x >= t,
                        Mode::Gt => x > t,
                        Mode::Eq => x == t,
                        Mode::Neq => x != t,
                        Mode::Leaf => false,
                    };
                    hit || (node.missing_goes_true && x.is_nan())
                }
            };
            node = &self.nodes[if go_true {
                node.true_next
            } else {
                node.false_next
            } as usize];
        }
    }

    /// Aggregated raw scores of one row, with which targets received a vote.
    fn accumulate(&self, row: &[f64], scores: &mut [f64], voted: &mut [bool]) {
        scores.iter_mut().for_each(|s| *s = 0.0);
        voted.iter_mut().for_each(|v| *v = false);
        for &root in &self.roots {
            let leaf = self.leaf(root, row);
            for w in &self.weights[leaf.feature as usize..leaf.true_next as usize] {
                let (s, v) = (
                    &mut scores[w.target as usize],
                    &mut voted[w.target as usize],
                );
                match self.aggregate {
                    Aggregate::Sum | Aggregate::Average => *s = self.round(*s + w.value),
                    Aggregate::Min => {
                        if !*v || w.value < *s {
                            *s = w.value
                        }
                    }
                    Aggregate::Max => {
                        if !*v || w.value > *s {
                            *s = w.value
                        }
                    }
                }
                *v = true;
            }
        }
    }

    fn round(&self, x: f64) -> f64 {
        if self.f32_scores {
            x as f32 as f64
        } else {
            x
        }
    }

    /// A regressor's outputs for one row.
    fn finish_regression(&self, scores: &mut [f64], voted: &[bool], out: &mut [f32]) {
        let with_base = self.base_values.len() == self.n_targets;
        for (t, s) in scores.iter_mut().enumerate() {
            if self.aggregate == Aggregate::Average {
                *s = self.round(*s / self.roots.len() as f64);
            }
            if matches!(self.aggregate, Aggregate::Min | Aggregate::Max) && !voted[t] {
                *s = 0.0;
            }
            if with_base {
                *s = self.round(*s + self.base_values[t]);
            }
        }
        for (o, s) in out.iter_mut().zip(scores.iter()) {
            *o = *s as f32;
        }
        if self.n_targets == 1 {
            // onnxruntime applies only PROBIT to a single target.
            if self.post_transform == PostTransform::Probit {
                out[0] = probit(out[0]);
            }
        } else {
            self.post_transform.apply(out);
        }
    }

    /// A classifier's label index and scores for one row (onnxruntime's rules, binary case
    /// included).
    fn finish_classification(
        &self,
        classes: &Classes,
        scores: &mut [f64],
        voted: &mut [bool],
        out: &mut [f32],
    ) -> usize {
        let base = &self.base_values;
        if self.n_targets > 2 {
            for (k, b) in base.iter().enumerate().take(self.n_targets) {
                scores[k] = self.round(scores[k] + b);
                voted[k] = true;
            }
            let mut best: Option<usize> = None;
            for k in 0..self.n_targets {
                if voted[k] && best.is_none_or(|b| scores[k] > scores[b]) {
                    best = Some(k);
                }
            }
            write_voted(out, scores, voted);
            self.post_transform.apply(out);
            return best.unwrap_or(0);
        }
        // Two classes.
        let mut second_class = SecondClass::None;
        let mut kept = 2;
        match base.len() {
            2 => {
                if voted[1] {
                    scores[1] = self.round(base[1] + scores[0]);
                    scores[0] = -scores[1];
                } else {
                    scores[1] = self.round(scores[1] + base[1]);
                    scores[0] = self.round(scores[0] + base[0]);
                }
            }
            1 => {
                scores[0] = self.round(scores[0] + base[0]);
                if !voted[1] {
                    kept = 1;
                }
            }
            0 => {
                second_class = SecondClass::MixedNegative;
                if !voted[1] {
                    kept = 1;
                }
            }
            _ => {}
        }
        let positive = if kept == 2 && voted[1] {
            scores[1]
        } else if voted[0] {
            scores[0]
        } else {
            0.0
        };
        let label = if classes.binary_case {
            let (cls, mode) = match (classes.weights_all_positive, positive) {
                (true, p) if p > 0.5 => (1, SecondClass::Complement),
                (true, _) => (0, SecondClass::Complement),
                (false, p) if p > 0.0 => (1, SecondClass::MixedPositive),
                (false, _) => (0, SecondClass::MixedNegative),
            };
            second_class = mode;
            cls
        } else {
            usize::from(positive > 0.0)
        };
        if kept == 2 {
            write_voted(out, scores, voted);
            self.post_transform.apply(out);
            return label;
        }
        let s = scores[0] as f32;
        if self.post_transform == PostTransform::Probit {
            out[0] = probit(s);
            out[1] = 0.0;
            return label;
        }
        (out[0], out[1]) = match second_class {
            SecondClass::Complement => {
                let p = if self.post_transform == PostTransform::Logistic {
                    logistic(s)
                } else {
                    s
                };
                (1.0 - p, p)
            }
            SecondClass::MixedPositive | SecondClass::MixedNegative => {
                if self.post_transform == PostTransform::Logistic {
                    (logistic(-s), logistic(s))
                } else {
                    (-s, s)
                }
            }
            SecondClass::None => (s, 0.0),
        };
        label
    }
}

/// Scores as written out: a class no tree voted for (and no base value set) counts as 0.
fn write_voted(out: &mut [f32], scores: &[f64], voted: &[bool]) {
    for ((o, s), v) in out.iter_mut().zip(scores).zip(voted) {
        *o = if *v { *s as f32 } else { 0.0 };
    }
}

/// How onnxruntime fills in the second column when the trees score only one class.
#[derive(Debug, Clone, Copy)]
enum SecondClass {
    None,
    Complement,
    MixedPositive,
    MixedNegative,
}

fn labels(node: &NodeProto) -> TractResult<Labels> {
    let ints = node.get_attr_opt_slice::<i64>("classlabels_int64s")?;
    let strings: Option<Vec<String>> = node.get_attr_opt_vec("classlabels_strings")?;
    match (ints, strings) {
        (Some(i), None) => Ok(Labels::Ints(i.to_vec())),
        (None, Some(s)) => Ok(Labels::Strings(s)),
        _ => bail!("exactly one of classlabels_int64s and classlabels_strings must be set"),
    }
}

pub(crate) fn classifier(
    _ctx: &tract_onnx::model::ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let labels = labels(node)?;
    let forest = Forest::parse(node, "class", Some(labels))?;
    Ok((expand(TreeEnsemble(Arc::new(forest))), vec![]))
}

pub(crate) fn regressor(
    _ctx: &tract_onnx::model::ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let forest = Forest::parse(node, "target", None)?;
    Ok((expand(TreeEnsemble(Arc::new(forest))), vec![]))
}

/// The operator, before and after typing: one node, classifier or regressor.
#[derive(Debug, Clone)]
pub(crate) struct TreeEnsemble(Arc<Forest>);

impl PartialEq for TreeEnsemble {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for TreeEnsemble {}

impl TreeEnsemble {
    fn label_type(&self) -> Option<DatumType> {
        self.0.classes.as_ref().map(|c| match c.labels {
            Labels::Ints(_) => DatumType::I64,
            Labels::Strings(_) => DatumType::String,
        })
    }

    fn name(&self) -> &'static str {
        if self.0.classes.is_some() {
            "TreeEnsembleClassifier"
        } else {
            "TreeEnsembleRegressor"
        }
    }

    fn run<T: Copy>(
        &self,
        x: &[T],
        rows: usize,
        width: usize,
        to_f64: impl Fn(T) -> f64,
    ) -> TractResult<TVec<TValue>> {
        let forest = &*self.0;
        let n = forest.n_targets;
        let mut scores = vec![0.0f64; n];
        let mut voted = vec![false; n];
        let mut row = vec![0.0f64; width];
        let mut out = vec![0.0f32; rows * n];
        let mut label_ix = Vec::with_capacity(rows);
        for r in 0..rows {
            for (dst, src) in row.iter_mut().zip(&x[r * width..(r + 1) * width]) {
                *dst = to_f64(*src);
            }
            forest.accumulate(&row, &mut scores, &mut voted);
            let dst = &mut out[r * n..(r + 1) * n];
            match &forest.classes {
                Some(classes) => label_ix.push(forest.finish_classification(
                    classes,
                    &mut scores,
                    &mut voted,
                    dst,
                )),
                None => forest.finish_regression(&mut scores, &voted, dst),
            }
        }
        let scores = Tensor::from_shape(&[rows, n], &out)?.into_tvalue();
        Ok(match &forest.classes {
            None => tvec!(scores),
            Some(classes) => {
                let labels = match &classes.labels {
                    Labels::Ints(l) => {
                        let v: Vec<i64> = label_ix.iter().map(|i| l[*i]).collect();
                        Tensor::from_shape(&[rows], &v)?
                    }
                    Labels::Strings(l) => {
                        let v: Vec<String> = label_ix.iter().map(|i| l[*i].clone()).collect();
                        Tensor::from(tract_ndarray::Array1::from_vec(v).into_dyn())
                    }
                };
                tvec!(labels.into_tvalue(), scores)
            }
        })
    }
}

impl Expansion for TreeEnsemble {
    fn name(&self) -> StaticName {
        TreeEnsemble::name(self).into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(if self.0.classes.is_some() { 2 } else { 1 })
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, self.nboutputs()?)?;
        s.equals(&inputs[0].rank, 2)?;
        let scores = &outputs[outputs.len() - 1];
        s.equals(&scores.datum_type, DatumType::F32)?;
        s.equals(&scores.rank, 2)?;
        s.equals(&scores.shape[0], &inputs[0].shape[0])?;
        s.equals(&scores.shape[1], self.0.n_targets.to_dim())?;
        if let Some(dt) = self.label_type() {
            s.equals(&outputs[0].datum_type, dt)?;
            s.equals(&outputs[0].rank, 1)?;
            s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        }
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.clone(), inputs)
    }
}

impl Op for TreeEnsemble {
    fn name(&self) -> StaticName {
        TreeEnsemble::name(self).into()
    }

    op_as_typed_op!();
}

impl EvalOp for TreeEnsemble {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let (rows, width) = match input.shape() {
            [rows, width] => (*rows, *width),
            other => bail!(
                "{} takes a [N, F] input, got {other:?}",
                TreeEnsemble::name(self)
            ),
        };
        if width < self.0.n_features {
            bail!(
                "the input has {width} features, the trees read feature {}",
                self.0.n_features - 1
            );
        }
        fn flat<T: Datum + Copy>(t: &Tensor) -> TractResult<Vec<T>> {
            Ok(t.to_plain_array_view::<T>()?.iter().copied().collect())
        }
        match input.datum_type() {
            DatumType::F32 => self.run(&flat::<f32>(&input)?, rows, width, f64::from),
            DatumType::F64 => self.run(&flat::<f64>(&input)?, rows, width, |v| v),
            DatumType::I64 => self.run(&flat::<i64>(&input)?, rows, width, |v| v as f64),
            DatumType::I32 => self.run(&flat::<i32>(&input)?, rows, width, f64::from),
            other => bail!("{} does not take {other:?} input", TreeEnsemble::name(self)),
        }
    }
}

impl TypedOp for TreeEnsemble {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let input = inputs[0];
        if input.rank() != 2 {
            bail!("{} takes a [N, F] input", TreeEnsemble::name(self));
        }
        if let Ok(width) = input.shape[1].to_usize() {
            if width < self.0.n_features {
                bail!(
                    "the input has {width} features, the trees read feature {}",
                    self.0.n_features - 1
                );
            }
        }
        let rows = input.shape[0].clone();
        let scores = f32::fact([rows.clone(), self.0.n_targets.to_dim()]);
        Ok(match self.label_type() {
            None => tvec!(scores),
            Some(dt) => tvec!(dt.fact([rows]), scores),
        })
    }

    as_op!();
}
