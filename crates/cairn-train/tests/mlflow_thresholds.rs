//! The gate's metric thresholds give MLflow's own verdict (`validate_evaluation_results`'s
//! rules, run by the real `mlflow` package) on every combination of settings and values.
#![allow(clippy::unwrap_used)]
use cairn_train::gate::{judge_metric, MetricThreshold};
use serde_json::{json, Value};
use std::path::Path;

#[test]
fn metric_thresholds_agree_with_mlflow() {
    let Ok(python) = std::env::var("CAIRN_TEST_PYTHON") else {
        cairn_test::skip(
            "metric_thresholds_agree_with_mlflow",
            "CAIRN_TEST_PYTHON (a Python with mlflow) is not set",
        );
        return;
    };
    let values = [
        None,
        Some(0.0),
        Some(-1.0),
        Some(0.5),
        Some(0.55),
        Some(0.6),
        Some(0.8),
        Some(1.0),
    ];
    let mut cases = Vec::new();
    let mut settings = Vec::new();
    for threshold in [None, Some(0.55)] {
        for absolute in [None, Some(0.05)] {
            for relative in [None, Some(0.1)] {
                if threshold.is_none() && absolute.is_none() && relative.is_none() {
                    continue;
                }
                for greater_is_better in [true, false] {
                    settings.push(MetricThreshold {
                        threshold,
                        min_absolute_change: absolute,
                        min_relative_change: relative,
                        greater_is_better,
                    });
                }
            }
        }
    }
    for t in &settings {
        for candidate in values {
            for baseline in values {
                cases.push((t.clone(), candidate, baseline));
            }
        }
    }
    let payload: Vec<Value> = cases
        .iter()
        .map(|(t, c, b)| {
            let mut threshold = json!({"greater_is_better": t.greater_is_better});
            if let Some(v) = t.threshold {
                threshold["threshold"] = json!(v);
            }
            if let Some(v) = t.min_absolute_change {
                threshold["min_absolute_change"] = json!(v);
            }
            if let Some(v) = t.min_relative_change {
                threshold["min_relative_change"] = json!(v);
            }
            json!({"threshold": threshold, "candidate": c, "baseline": b})
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cases.json");
    std::fs::write(&file, serde_json::to_string(&payload).unwrap()).unwrap();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/mlflow_thresholds.py");
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(&file)
        .env("PYTHONWARNINGS", "ignore")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let verdicts: Vec<bool> = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(verdicts.len(), cases.len());
    let mut disagreements = Vec::new();
    for ((t, c, b), expected) in cases.iter().zip(&verdicts) {
        let ours = judge_metric("m", t, *c, *b, "baseline")
            .iter()
            .all(|check| check.passed);
        if ours != *expected {
            disagreements.push(format!(
                "{t:?} candidate {c:?} baseline {b:?}: mlflow {expected}, cairn {ours}"
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {} cases differ:\n{}",
        disagreements.len(),
        cases.len(),
        disagreements.join("\n")
    );
}
