//! The linear models agree with scikit-learn's on the same rows: the same encoding, the same
//! objective, solved to a tight tolerance on both sides.
#![allow(clippy::unwrap_used)]
use cairn_train::frame::{load, Frame, Target, Task};
use cairn_train::gbdt::{self, GbdtParams};
use cairn_train::linear::{fit_logistic, fit_ridge};
use cairn_train::metrics;
use cairn_train::{baseline::Baseline, onnx};
use std::path::Path;

fn python(test: &str) -> Option<String> {
    match std::env::var("CAIRN_TEST_PYTHON") {
        Ok(p) => Some(p),
        Err(_) => {
            cairn_test::skip(
                test,
                "CAIRN_TEST_PYTHON (a Python with scikit-learn) is not set",
            );
            None
        }
    }
}

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/sklearn_reference.py")
}

/// A deterministic table: two numeric columns (one with gaps), one categorical, and a target
/// made from them with noise, as classes (`classes` > 0) or values.
fn table(rows: usize, classes: usize) -> String {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut out = String::from("a,b,color,y\n");
    for i in 0..rows {
        let a = next() * 4.0 - 2.0;
        let b = next() * 10.0;
        let color = ["red", "green", "blue"][i % 3];
        let shift = match color {
            "red" => 0.5,
            "green" => -0.3,
            _ => 0.0,
        };
        // A little non-linearity, so trees have something to find that lines do not.
        let signal = 1.5 * a - 0.2 * b + shift + (a * b).sin() + (next() - 0.5) * 2.0 + 1.0;
        let b_text = if i % 7 == 0 {
            String::new()
        } else {
            format!("{b:.6}")
        };
        let y = if classes == 0 {
            format!("{signal:.6}")
        } else {
            let level = ((signal + 3.0) / 6.0 * classes as f64).floor() as i64;
            format!("c{}", level.clamp(0, classes as i64 - 1))
        };
        out.push_str(&format!("{a:.6},{b_text},{color},{y}\n"));
    }
    out
}

enum Kind {
    Linear,
    Gbdt,
}

/// Fits Cairn's and scikit-learn's model on the first 75% of the rows; returns both sides'
/// predictions (probabilities row-major, or values) for every row, with the frame.
fn both(python: &str, classes: usize, kind: &Kind) -> (Frame, Vec<f64>, Vec<f64>, usize) {
    let rows = 2000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.csv");
    std::fs::write(&path, table(rows, classes)).unwrap();
    let task = if classes == 0 {
        Task::Regression
    } else {
        Task::Classification
    };
    let frame = load(&path, "y", Some(task), &[]).unwrap();
    let train = rows * 3 / 4;
    let train_rows: Vec<usize> = (0..train).collect();
    let all: Vec<usize> = (0..rows).collect();
    let name = match kind {
        Kind::Linear => "linear",
        Kind::Gbdt => "gbdt",
    };
    let reference = cairn_test::python_json(
        python,
        &[
            script().as_os_str(),
            path.as_os_str(),
            "y".as_ref(),
            task.as_str().as_ref(),
            name.as_ref(),
            train.to_string().as_ref(),
        ],
        &[],
    );
    let ours = match (kind, &frame.target) {
        (Kind::Linear, Target::Classes { .. }) => fit_logistic(&frame, &train_rows, 1.0)
            .unwrap()
            .predict_proba(&frame, &all),
        (Kind::Linear, Target::Values(_)) => fit_ridge(&frame, &train_rows, 1.0)
            .unwrap()
            .predict_values(&frame, &all),
        (Kind::Gbdt, _) => gbdt::fit(&frame, &train_rows, &GbdtParams::default())
            .unwrap()
            .predict(&frame, &all),
    };
    let theirs: Vec<f64> = if let Target::Classes {
        classes: labels, ..
    } = &frame.target
    {
        let expected: Vec<String> = reference["classes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        assert_eq!(labels, &expected);
        reference["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
            .collect()
    } else {
        reference["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    assert_eq!(ours.len(), theirs.len());
    (frame, ours, theirs, train)
}

fn largest_difference(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Test-row metrics of class probabilities: (accuracy, ROC AUC, log loss).
fn class_scores(frame: &Frame, probabilities: &[f64], train: usize) -> (f64, f64, f64) {
    let Target::Classes { codes, classes } = &frame.target else {
        unreachable!()
    };
    let k = classes.len();
    let truth = &codes[train..];
    let p = &probabilities[train * k..];
    let predicted: Vec<u32> = p
        .chunks(k)
        .map(|row| {
            (0..k)
                .max_by(|&a, &b| row[a].total_cmp(&row[b]).then(b.cmp(&a)))
                .unwrap() as u32
        })
        .collect();
    (
        metrics::accuracy(truth, &predicted),
        metrics::roc_auc(truth, p, k),
        metrics::log_loss(truth, p, k),
    )
}

#[test]
fn binary_logistic_regression_matches_scikit_learn() {
    let Some(python) = python("binary_logistic_regression_matches_scikit_learn") else {
        return;
    };
    let (_, ours, theirs, _) = both(&python, 2, &Kind::Linear);
    let worst = largest_difference(&ours, &theirs);
    assert!(worst < 1e-5, "largest probability difference {worst}");
}

#[test]
fn multinomial_logistic_regression_matches_scikit_learn() {
    let Some(python) = python("multinomial_logistic_regression_matches_scikit_learn") else {
        return;
    };
    let (_, ours, theirs, _) = both(&python, 4, &Kind::Linear);
    let worst = largest_difference(&ours, &theirs);
    assert!(worst < 1e-5, "largest probability difference {worst}");
}

#[test]
fn ridge_regression_matches_scikit_learn() {
    let Some(python) = python("ridge_regression_matches_scikit_learn") else {
        return;
    };
    let (_, ours, theirs, _) = both(&python, 0, &Kind::Linear);
    let worst = largest_difference(&ours, &theirs);
    assert!(worst < 1e-9, "largest prediction difference {worst}");
}

/// Boosted trees are not solved to one optimum: binning and tie-breaking differ in details, so
/// the two agree on held-out scores, not row by row.
#[test]
fn boosted_trees_score_as_scikit_learn_s_on_held_out_rows() {
    let Some(python) = python("boosted_trees_score_as_scikit_learn_s_on_held_out_rows") else {
        return;
    };
    for classes in [2, 3] {
        let (frame, ours, theirs, train) = both(&python, classes, &Kind::Gbdt);
        let (our_accuracy, our_auc, our_loss) = class_scores(&frame, &ours, train);
        let (their_accuracy, their_auc, their_loss) = class_scores(&frame, &theirs, train);
        let line = format!(
            "{classes} classes: accuracy {our_accuracy:.4} vs {their_accuracy:.4}, AUC {our_auc:.4} vs {their_auc:.4}, log loss {our_loss:.4} vs {their_loss:.4}"
        );
        eprintln!("{line}");
        assert!((our_accuracy - their_accuracy).abs() <= 0.02, "{line}");
        assert!((our_auc - their_auc).abs() <= 0.01, "{line}");
        assert!(our_loss <= their_loss * 1.05, "{line}");
    }
    let (frame, ours, theirs, train) = both(&python, 0, &Kind::Gbdt);
    let Target::Values(truth) = &frame.target else {
        unreachable!()
    };
    let our_rmse = metrics::rmse(&truth[train..], &ours[train..]);
    let their_rmse = metrics::rmse(&truth[train..], &theirs[train..]);
    let line = format!("regression: RMSE {our_rmse:.4} vs {their_rmse:.4}");
    eprintln!("{line}");
    assert!(our_rmse <= their_rmse * 1.03, "{line}");
    // Both fit the signal, far better than the mean.
    let mean = truth[..train].iter().sum::<f64>() / train as f64;
    let baseline = metrics::rmse(&truth[train..], &vec![mean; truth.len() - train]);
    assert!(our_rmse < baseline * 0.6, "{line}, baseline {baseline:.4}");
}

/// Every exported model is valid ONNX (onnx's checker) and onnxruntime answers with the
/// trainer's own predictions.
#[test]
fn exported_models_run_in_onnxruntime_as_trained() {
    let Some(python) = python("exported_models_run_in_onnxruntime_as_trained") else {
        return;
    };
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/onnxruntime_predict.py");
    for classes in [2, 3, 0] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, table(600, classes)).unwrap();
        let task = if classes == 0 {
            Task::Regression
        } else {
            Task::Classification
        };
        let frame = load(&path, "y", Some(task), &[]).unwrap();
        let rows: Vec<usize> = (0..frame.rows).collect();
        let columns = gbdt::feature_values(&frame);
        let mut x = Vec::new();
        for r in 0..frame.rows {
            for c in &columns {
                x.extend_from_slice(&c[r].to_le_bytes());
            }
        }
        let x_path = dir.path().join("x.bin");
        std::fs::write(&x_path, x).unwrap();
        let trees = gbdt::fit(
            &frame,
            &rows,
            &GbdtParams {
                trees: 20,
                ..GbdtParams::default()
            },
        )
        .unwrap();
        let base = Baseline::fit(&frame.target, &rows);
        let (line, line_predictions) = match task {
            Task::Classification => {
                let m = fit_logistic(&frame, &rows, 1.0).unwrap();
                let p = m.predict_proba(&frame, &rows);
                (onnx::linear(&m, &frame), p)
            }
            Task::Regression => {
                let m = fit_ridge(&frame, &rows, 1.0).unwrap();
                let p = m.predict_values(&frame, &rows);
                (onnx::linear(&m, &frame), p)
            }
        };
        let base_predictions: Vec<f64> = match &base {
            Baseline::Mean(m) => vec![*m; frame.rows],
            Baseline::Prior { probabilities } => (0..frame.rows)
                .flat_map(|_| probabilities.iter().copied())
                .collect(),
        };
        for (name, bytes, trained) in [
            (
                "gbdt",
                onnx::gbdt(&trees, &frame),
                trees.predict(&frame, &rows),
            ),
            ("linear", line, line_predictions),
            ("baseline", onnx::baseline(&base, &frame), base_predictions),
        ] {
            let model_path = dir.path().join(format!("{name}.onnx"));
            std::fs::write(&model_path, bytes).unwrap();
            let out = cairn_test::python_json(
                &python,
                &[
                    script.as_os_str(),
                    model_path.as_os_str(),
                    x_path.as_os_str(),
                    frame.rows.to_string().as_ref(),
                    columns.len().to_string().as_ref(),
                ],
                &[],
            );
            let key = if classes == 0 {
                "variable"
            } else {
                "probabilities"
            };
            let served: Vec<f64> = out[key]
                .as_array()
                .unwrap_or_else(|| panic!("{name}: no {key} in {out}"))
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert_eq!(served.len(), trained.len(), "{name}");
            for (i, (s, t)) in served.iter().zip(&trained).enumerate() {
                assert!(
                    (s - t).abs() <= 1e-5 * t.abs().max(1.0),
                    "{name}, {classes} classes, value {i}: onnxruntime {s}, trained {t}"
                );
            }
            if classes > 0 {
                assert_eq!(out["label"].as_array().unwrap().len(), frame.rows, "{name}");
            }
        }
    }
}
