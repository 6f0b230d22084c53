//! The linear models agree with scikit-learn's on the same rows: the same encoding, the same
//! objective, solved to a tight tolerance on both sides.
#![allow(clippy::unwrap_used)]
use cairn_train::frame::{load, Target, Task};
use cairn_train::linear::{fit_logistic, fit_ridge};
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
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/sklearn_linear.py")
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
        let signal = 1.5 * a - 0.2 * b + shift + (next() - 0.5) * 2.0 + 1.0;
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

fn compare(test: &str, classes: usize) {
    let Some(python) = python(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.csv");
    std::fs::write(&path, table(400, classes)).unwrap();
    let task = if classes == 0 {
        Task::Regression
    } else {
        Task::Classification
    };
    let frame = load(&path, "y", Some(task), &[]).unwrap();
    let rows: Vec<usize> = (0..frame.rows).collect();
    let reference = cairn_test::python_json(
        &python,
        &[
            script().as_os_str(),
            path.as_os_str(),
            "y".as_ref(),
            task.as_str().as_ref(),
        ],
        &[],
    );
    match &frame.target {
        Target::Classes {
            classes: labels, ..
        } => {
            let expected: Vec<String> = reference["classes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_string())
                .collect();
            assert_eq!(labels, &expected);
            let model = fit_logistic(&frame, &rows, 1.0).unwrap();
            let ours = model.predict_proba(&frame, &rows);
            let theirs: Vec<f64> = reference["probabilities"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
                .collect();
            assert_eq!(ours.len(), theirs.len());
            let worst = ours
                .iter()
                .zip(&theirs)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(worst < 1e-5, "largest probability difference {worst}");
        }
        Target::Values(_) => {
            let model = fit_ridge(&frame, &rows, 1.0).unwrap();
            let ours = model.predict_values(&frame, &rows);
            let theirs: Vec<f64> = reference["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let worst = ours
                .iter()
                .zip(&theirs)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(worst < 1e-9, "largest prediction difference {worst}");
        }
    }
}

#[test]
fn binary_logistic_regression_matches_scikit_learn() {
    compare("binary_logistic_regression_matches_scikit_learn", 2);
}

#[test]
fn multinomial_logistic_regression_matches_scikit_learn() {
    compare("multinomial_logistic_regression_matches_scikit_learn", 4);
}

#[test]
fn ridge_regression_matches_scikit_learn() {
    compare("ridge_regression_matches_scikit_learn", 0);
}
