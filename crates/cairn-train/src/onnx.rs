//! Fitted models as ONNX graphs that `cairn serve` (and onnxruntime) run.
//!
//! Every model takes one input, `x: FP32[N, F]`: the frame's feature columns in order, numbers
//! as they are (NaN for missing) and categories as their code, the index of the value in the
//! sorted level list kept in the model's metadata (`cairn.features`). A classifier answers
//! `label: INT64[N]` (the class itself when classes are integers, else its index into
//! `cairn.classes`) and `probabilities: FP32[N, K]`; a regressor `variable: FP32[N, 1]`, the
//! names skl2onnx gives them.
//!
//! Trees become ONNX-ML `TreeEnsembleRegressor` raw scores (thresholds, leaf values and base
//! scores are the `f32`s the trees were grown with), followed by the same sigmoid or softmax
//! the trainer applies; the baseline is a tree ensemble with a single leaf. Linear models encode
//! the input as in training (mean imputation, standardisation, one-hot) with standard operators.
use crate::baseline::Baseline;
use crate::frame::{Column, Frame, Target};
use crate::gbdt::{Gbdt, Loss, Node, Tree};
use crate::linear::{Encoding, Linear};
use cairn_serving::build::{
    self, float_tensor, int64_tensor, int64_value_info, node, node_with, pb, value_info, Attr,
    ML_DOMAIN,
};
use serde_json::json;

/// The graph's input.
pub const INPUT: &str = "x";

/// What the model's metadata records about its inputs and outputs.
fn metadata(frame: &Frame, model: &str) -> Vec<(String, String)> {
    let features: Vec<serde_json::Value> = frame
        .features
        .iter()
        .map(|f| match &f.column {
            Column::Numeric(_) => json!({"name": f.name, "type": "number"}),
            Column::Categorical { levels, .. } => {
                json!({"name": f.name, "type": "category", "levels": levels})
            }
        })
        .collect();
    let mut out = vec![
        ("cairn.model".to_string(), model.to_string()),
        ("cairn.features".to_string(), json!(features).to_string()),
        ("cairn.target".to_string(), frame.target_name.clone()),
        (
            "cairn.task".to_string(),
            frame.target.task().as_str().to_string(),
        ),
    ];
    if let Target::Classes { classes, .. } = &frame.target {
        out.push(("cairn.classes".to_string(), json!(classes).to_string()));
    }
    out
}

/// The class values `label` gives: the classes as integers when they all are, else indices.
fn label_values(classes: &[String]) -> Vec<i64> {
    let parsed: Option<Vec<i64>> = classes.iter().map(|c| c.parse().ok()).collect();
    parsed.unwrap_or_else(|| (0..classes.len() as i64).collect())
}

/// Appends the nodes that turn raw `scores: [N, outputs]` into the outputs, and returns the
/// graph outputs.
fn head(
    target: &Target,
    scores: &str,
    nodes: &mut Vec<pb::NodeProto>,
    initializers: &mut Vec<pb::TensorProto>,
) -> Vec<pb::ValueInfoProto> {
    match target {
        Target::Values(_) => {
            nodes.push(node("Identity", &[scores], "variable"));
            vec![value_info("variable", &[None, Some(1)])]
        }
        Target::Classes { classes, .. } => {
            let k = classes.len() as i64;
            if k == 2 {
                nodes.push(node("Sigmoid", &[scores], "positive"));
                initializers.push(float_tensor("one", &[1], vec![1.0]));
                nodes.push(node("Sub", &["one", "positive"], "negative"));
                nodes.push(node_with(
                    "",
                    "Concat",
                    &["negative", "positive"],
                    &["probabilities"],
                    vec![("axis", Attr::Int(1))],
                ));
            } else {
                nodes.push(node_with(
                    "",
                    "Softmax",
                    &[scores],
                    &["probabilities"],
                    vec![("axis", Attr::Int(1))],
                ));
            }
            nodes.push(node_with(
                "",
                "ArgMax",
                &["probabilities"],
                &["class_index"],
                vec![("axis", Attr::Int(1)), ("keepdims", Attr::Int(0))],
            ));
            initializers.push(int64_tensor("class_values", &[k], label_values(classes)));
            nodes.push(node_with(
                "",
                "Gather",
                &["class_values", "class_index"],
                &["label"],
                vec![("axis", Attr::Int(0))],
            ));
            vec![
                int64_value_info("label", &[None]),
                value_info("probabilities", &[None, Some(k)]),
            ]
        }
    }
}

fn graph(
    name: &str,
    frame: &Frame,
    nodes: Vec<pb::NodeProto>,
    initializers: Vec<pb::TensorProto>,
    outputs: Vec<pb::ValueInfoProto>,
) -> pb::GraphProto {
    pb::GraphProto {
        name: name.into(),
        node: nodes,
        initializer: initializers,
        input: vec![value_info(
            INPUT,
            &[None, Some(frame.features.len() as i64)],
        )],
        output: outputs,
        ..Default::default()
    }
}

/// The gradient-boosted trees (fitted on `frame`) as ONNX.
pub fn gbdt(model: &Gbdt, frame: &Frame) -> Vec<u8> {
    tree_model(model, frame, "gbdt")
}

/// The baseline as ONNX: trees with a single leaf each, all the answer in the base scores.
pub fn baseline(model: &Baseline, frame: &Frame) -> Vec<u8> {
    let (loss, base_scores) = match (model, &frame.target) {
        (Baseline::Mean(mean), _) => (Loss::SquaredError, vec![*mean]),
        (Baseline::Prior { probabilities }, _) if probabilities.len() == 2 => {
            let p = probabilities[1].clamp(1e-15, 1.0 - 1e-15);
            (Loss::Binary, vec![(p / (1.0 - p)).ln()])
        }
        (Baseline::Prior { probabilities }, _) => (
            Loss::Multiclass(probabilities.len()),
            // softmax(log p) = p; a class never seen gets a vanishing share.
            probabilities.iter().map(|p| p.max(1e-300).ln()).collect(),
        ),
    };
    let as_trees = Gbdt {
        loss,
        base_scores,
        trees: Vec::new(),
        features: frame.features.len(),
    };
    tree_model(&as_trees, frame, "baseline")
}

fn tree_model(model: &Gbdt, frame: &Frame, kind: &str) -> Vec<u8> {
    let outputs = model.base_scores.len();
    let single_leaf = Tree {
        nodes: vec![Node::Leaf { value: 0.0 }],
    };
    // An ensemble needs a tree per output; a model without rounds gets single leaves of 0.
    let rounds: Vec<Vec<&Tree>> = if model.trees.is_empty() {
        vec![(0..outputs).map(|_| &single_leaf).collect()]
    } else {
        model.trees.iter().map(|r| r.iter().collect()).collect()
    };
    let mut a = TreeAttributes::default();
    for (r, round) in rounds.iter().enumerate() {
        for (k, tree) in round.iter().enumerate() {
            a.add(tree, (r * outputs + k) as i64, k as i64);
        }
    }
    let mut nodes = vec![node_with(
        ML_DOMAIN,
        "TreeEnsembleRegressor",
        &[INPUT],
        &["scores"],
        vec![
            ("nodes_treeids", Attr::Ints(a.tree_ids)),
            ("nodes_nodeids", Attr::Ints(a.node_ids)),
            ("nodes_featureids", Attr::Ints(a.feature_ids)),
            ("nodes_modes", Attr::Texts(a.modes)),
            ("nodes_values", Attr::Floats(a.thresholds)),
            ("nodes_truenodeids", Attr::Ints(a.true_ids)),
            ("nodes_falsenodeids", Attr::Ints(a.false_ids)),
            (
                "nodes_missing_value_tracks_true",
                Attr::Ints(a.missing_true),
            ),
            ("target_treeids", Attr::Ints(a.leaf_tree_ids)),
            ("target_nodeids", Attr::Ints(a.leaf_node_ids)),
            ("target_ids", Attr::Ints(a.leaf_target_ids)),
            (
                "target_weights",
                Attr::Floats(a.leaf_values.iter().map(|v| *v as f32).collect()),
            ),
            ("n_targets", Attr::Int(outputs as i64)),
            (
                "base_values",
                Attr::Floats(model.base_scores.iter().map(|v| *v as f32).collect()),
            ),
            ("aggregate_function", Attr::Text("SUM".into())),
            ("post_transform", Attr::Text("NONE".into())),
        ],
    )];
    let mut initializers = Vec::new();
    let graph_outputs = head(&frame.target, "scores", &mut nodes, &mut initializers);
    build::model_bytes_with_ml(
        graph(kind, frame, nodes, initializers, graph_outputs),
        "cairn",
        &metadata(frame, kind),
    )
}

/// The tree ensemble attributes, flattened over all trees.
#[derive(Default)]
struct TreeAttributes {
    tree_ids: Vec<i64>,
    node_ids: Vec<i64>,
    feature_ids: Vec<i64>,
    modes: Vec<String>,
    thresholds: Vec<f32>,
    true_ids: Vec<i64>,
    false_ids: Vec<i64>,
    missing_true: Vec<i64>,
    leaf_tree_ids: Vec<i64>,
    leaf_node_ids: Vec<i64>,
    leaf_target_ids: Vec<i64>,
    leaf_values: Vec<f64>,
}

impl TreeAttributes {
    fn add(&mut self, tree: &Tree, tree_id: i64, target: i64) {
        for (id, n) in tree.nodes.iter().enumerate() {
            self.tree_ids.push(tree_id);
            self.node_ids.push(id as i64);
            match n {
                Node::Split {
                    feature,
                    threshold,
                    missing_left,
                    left,
                    right,
                    ..
                } => {
                    self.feature_ids.push(*feature as i64);
                    self.modes.push("BRANCH_LEQ".into());
                    self.thresholds.push(*threshold);
                    self.true_ids.push(*left as i64);
                    self.false_ids.push(*right as i64);
                    self.missing_true.push(i64::from(*missing_left));
                }
                Node::Leaf { value } => {
                    self.feature_ids.push(0);
                    self.modes.push("LEAF".into());
                    self.thresholds.push(0.0);
                    self.true_ids.push(0);
                    self.false_ids.push(0);
                    self.missing_true.push(0);
                    self.leaf_tree_ids.push(tree_id);
                    self.leaf_node_ids.push(id as i64);
                    self.leaf_target_ids.push(target);
                    self.leaf_values.push(*value);
                }
            }
        }
    }
}

/// The linear model (fitted on `frame`) as ONNX.
pub fn linear(model: &Linear, frame: &Frame) -> Vec<u8> {
    let mut nodes = Vec::new();
    let mut initializers = Vec::new();
    let outputs = model.weights.len();
    // Encoded blocks: all numeric columns first, then each category's one-hot columns; the
    // weight rows are gathered in that order.
    let mut numeric = Vec::new();
    let mut categorical = Vec::new();
    let mut offset = 0;
    for (column, encoding) in model.encoder.encodings.iter().enumerate() {
        match encoding {
            Encoding::Standardized { mean, scale } => {
                numeric.push((column, offset, *mean, *scale));
                offset += 1;
            }
            Encoding::OneHot { levels } => {
                categorical.push((column, offset, *levels));
                offset += levels;
            }
        }
    }
    let mut blocks: Vec<String> = Vec::new();
    let mut order: Vec<usize> = Vec::new();
    if !numeric.is_empty() {
        let fn_ = numeric.len() as i64;
        initializers.push(int64_tensor(
            "numeric_columns",
            &[fn_],
            numeric.iter().map(|n| n.0 as i64).collect(),
        ));
        initializers.push(float_tensor(
            "means",
            &[fn_],
            numeric.iter().map(|n| n.2 as f32).collect(),
        ));
        initializers.push(float_tensor(
            "scales",
            &[fn_],
            numeric.iter().map(|n| n.3 as f32).collect(),
        ));
        nodes.push(node_with(
            "",
            "Gather",
            &[INPUT, "numeric_columns"],
            &["numbers"],
            vec![("axis", Attr::Int(1))],
        ));
        nodes.push(node("IsNaN", &["numbers"], "gaps"));
        nodes.push(node_with(
            "",
            "Where",
            &["gaps", "means", "numbers"],
            &["imputed"],
            vec![],
        ));
        nodes.push(node("Sub", &["imputed", "means"], "centred"));
        nodes.push(node("Div", &["centred", "scales"], "standardized"));
        blocks.push("standardized".into());
        order.extend(numeric.iter().map(|n| n.1));
    }
    for (column, start, levels) in &categorical {
        let (index, code, equal, onehot, range) = (
            format!("column_{column}"),
            format!("code_{column}"),
            format!("equal_{column}"),
            format!("onehot_{column}"),
            format!("levels_{column}"),
        );
        initializers.push(int64_tensor(&index, &[1], vec![*column as i64]));
        initializers.push(float_tensor(
            &range,
            &[*levels as i64],
            (0..*levels).map(|l| l as f32).collect(),
        ));
        nodes.push(node_with(
            "",
            "Gather",
            &[INPUT, &index],
            &[&code],
            vec![("axis", Attr::Int(1))],
        ));
        nodes.push(node("Equal", &[&code, &range], &equal));
        nodes.push(node_with(
            "",
            "Cast",
            &[&equal],
            &[&onehot],
            vec![("to", Attr::Int(1))],
        ));
        blocks.push(onehot);
        order.extend(*start..*start + *levels);
    }
    let block_refs: Vec<&str> = blocks.iter().map(String::as_str).collect();
    nodes.push(node_with(
        "",
        "Concat",
        &block_refs,
        &["encoded"],
        vec![("axis", Attr::Int(1))],
    ));
    let width = order.len() as i64;
    let mut weights = Vec::with_capacity(order.len() * outputs);
    for &feature in &order {
        for w in &model.weights {
            weights.push(w[feature] as f32);
        }
    }
    initializers.push(float_tensor("weights", &[width, outputs as i64], weights));
    initializers.push(float_tensor(
        "intercepts",
        &[outputs as i64],
        model.intercepts.iter().map(|b| *b as f32).collect(),
    ));
    nodes.push(node(
        "Gemm",
        &["encoded", "weights", "intercepts"],
        "scores",
    ));
    let graph_outputs = head(&frame.target, "scores", &mut nodes, &mut initializers);
    build::model_bytes_with_ml(
        graph("linear", frame, nodes, initializers, graph_outputs),
        "cairn",
        &metadata(frame, "linear"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Feature, MISSING};
    use crate::gbdt::{self, GbdtParams};
    use crate::linear::{fit_logistic, fit_ridge};
    use cairn_serving::{NamedTensor, OnnxModel, TensorData};

    /// Two numeric columns (one with gaps) and a category (with gaps), and a target per task.
    fn frame(task: &str) -> Frame {
        let n = 300;
        let a: Vec<f64> = (0..n)
            .map(|i| ((i * 37) % 101) as f64 / 10.0 - 5.0)
            .collect();
        let b: Vec<f64> = (0..n)
            .map(|i| {
                if i % 11 == 0 {
                    f64::NAN
                } else {
                    ((i * 13) % 29) as f64
                }
            })
            .collect();
        let codes: Vec<u32> = (0..n)
            .map(|i| if i % 17 == 0 { MISSING } else { (i % 3) as u32 })
            .collect();
        let signal: Vec<f64> = (0..n)
            .map(|i| {
                let bi = if b[i].is_nan() { 14.0 } else { b[i] };
                a[i] * 0.8 - bi * 0.1
                    + f64::from(codes[i].min(3)) * 0.3
                    + ((i * 7) % 5) as f64 * 0.2
            })
            .collect();
        let target = match task {
            "regression" => Target::Values(signal),
            "binary" => Target::Classes {
                codes: signal.iter().map(|s| u32::from(*s > 0.0)).collect(),
                classes: vec!["0".into(), "1".into()],
            },
            _ => Target::Classes {
                codes: signal
                    .iter()
                    .map(|s| (((s + 6.0) / 4.0).floor().clamp(0.0, 2.0)) as u32)
                    .collect(),
                classes: vec!["high".into(), "low".into(), "mid".into()],
            },
        };
        Frame {
            features: vec![
                Feature {
                    name: "a".into(),
                    column: Column::Numeric(a),
                },
                Feature {
                    name: "color".into(),
                    column: Column::Categorical {
                        codes,
                        levels: vec!["blue".into(), "green".into(), "red".into()],
                    },
                },
                Feature {
                    name: "b".into(),
                    column: Column::Numeric(b),
                },
            ],
            target_name: "y".into(),
            target,
            rows: n,
        }
    }

    /// Runs the model on every row of the frame (plus an unseen category code); returns the
    /// probabilities or values and the labels.
    fn serve(bytes: &[u8], frame: &Frame) -> (Vec<f64>, Vec<i64>) {
        let model = OnnxModel::from_bytes(bytes).unwrap();
        let x = crate::gbdt::feature_values(frame);
        let mut data = Vec::with_capacity(frame.rows * x.len());
        for r in 0..frame.rows {
            for column in &x {
                data.push(column[r]);
            }
        }
        let out = model
            .infer(vec![NamedTensor {
                name: INPUT.into(),
                shape: vec![frame.rows, x.len()],
                data: TensorData::Fp32(data),
            }])
            .unwrap();
        let mut values = Vec::new();
        let mut labels = Vec::new();
        for t in out {
            match (t.name.as_str(), t.data) {
                ("probabilities" | "variable", TensorData::Fp32(v)) => {
                    values = v.into_iter().map(f64::from).collect()
                }
                ("label", TensorData::Int64(v)) => labels = v,
                (name, data) => panic!("unexpected output {name}: {data:?}"),
            }
        }
        (values, labels)
    }

    fn assert_close(served: &[f64], trained: &[f64]) {
        assert_eq!(served.len(), trained.len());
        for (i, (s, t)) in served.iter().zip(trained).enumerate() {
            assert!(
                (s - t).abs() <= 1e-5 * t.abs().max(1.0),
                "value {i}: served {s}, trained {t}"
            );
        }
    }

    fn argmax_labels(probabilities: &[f64], k: usize, values: &[i64]) -> Vec<i64> {
        probabilities
            .chunks(k)
            .map(|row| {
                let mut best = 0;
                for (i, p) in row.iter().enumerate() {
                    if *p > row[best] {
                        best = i;
                    }
                }
                values[best]
            })
            .collect()
    }

    #[test]
    fn served_trees_answer_as_trained() {
        for task in ["binary", "multiclass", "regression"] {
            let f = frame(task);
            let rows: Vec<usize> = (0..f.rows).collect();
            let params = GbdtParams {
                trees: 30,
                min_samples_leaf: 5,
                ..GbdtParams::default()
            };
            let model = gbdt::fit(&f, &rows, &params).unwrap();
            let trained = model.predict(&f, &rows);
            let (served, labels) = serve(&gbdt(&model, &f), &f);
            assert_close(&served, &trained);
            if let Target::Classes { classes, .. } = &f.target {
                let values = label_values(classes);
                assert_eq!(
                    labels,
                    argmax_labels(&trained, classes.len(), &values),
                    "{task}"
                );
            }
        }
    }

    #[test]
    fn served_linear_models_answer_as_trained() {
        for task in ["binary", "multiclass", "regression"] {
            let f = frame(task);
            let rows: Vec<usize> = (0..f.rows).collect();
            let (model, trained) = match task {
                "regression" => {
                    let m = fit_ridge(&f, &rows, 1.0).unwrap();
                    let p = m.predict_values(&f, &rows);
                    (m, p)
                }
                _ => {
                    let m = fit_logistic(&f, &rows, 1.0).unwrap();
                    let p = m.predict_proba(&f, &rows);
                    (m, p)
                }
            };
            let (served, labels) = serve(&linear(&model, &f), &f);
            assert_close(&served, &trained);
            if let Target::Classes { classes, .. } = &f.target {
                assert_eq!(labels.len(), f.rows, "{task}");
                // Class labels are integers: the label is the class itself.
                if task == "binary" {
                    assert!(labels.iter().all(|l| *l == 0 || *l == 1));
                } else {
                    assert_eq!(label_values(classes), vec![0, 1, 2]);
                }
            }
        }
    }

    #[test]
    fn the_served_baseline_answers_the_priors_or_the_mean() {
        for task in ["binary", "multiclass", "regression"] {
            let f = frame(task);
            let rows: Vec<usize> = (0..f.rows).collect();
            let model = Baseline::fit(&f.target, &rows);
            let (served, _) = serve(&baseline(&model, &f), &f);
            let expected: Vec<f64> = match &model {
                Baseline::Mean(m) => vec![*m; f.rows],
                Baseline::Prior { probabilities } => (0..f.rows)
                    .flat_map(|_| probabilities.iter().copied())
                    .collect(),
            };
            assert_close(&served, &expected);
        }
    }
}
