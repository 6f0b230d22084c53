//! Drift numbers equal scipy's (ks_2samp, chisquare, wasserstein_distance, jensenshannon, numpy
//! histograms) on the same files within 1e-9, and the method chosen per column is Evidently's.
//! The reference numbers come from `tests/interop/drift_reference.py` run by the Python in
//! `CAIRN_TEST_PYTHON` (with scipy, installed by `.ci/run`); the test skips loudly without it.
#![allow(clippy::unwrap_used)]

use cairn_quality::drift::{compare, Dataset, DriftOptions, Method};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A small deterministic generator (SplitMix64), so every run tests the same data.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    fn pick<'a>(&mut self, items: &[&'a str], weights: &[f64]) -> &'a str {
        let total: f64 = weights.iter().sum();
        let mut x = self.uniform() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return items[i];
            }
            x -= w;
        }
        items[items.len() - 1]
    }
}

/// Writes a CSV with the standard set of test columns; `shift` moves every distribution.
fn write_table(path: &Path, rows: usize, shift: f64, seed: u64) {
    let mut rng = Rng(seed);
    let mut out = String::from(
        "small_shift,big_shift,same,with_gaps,rounded,three_labels,flag,few_ints,many_ints,category\n",
    );
    for i in 0..rows {
        let gap = if i % 37 == 5 {
            String::new()
        } else if i % 53 == 7 {
            "inf".into()
        } else {
            format!("{:.6}", rng.normal() * 2.0 + shift * 3.0)
        };
        let labels = ["a", "b", "c"];
        let w = [0.5, 0.3 + shift * 0.2, 0.2];
        let flag = if rng.uniform() < 0.3 + shift * 0.1 {
            "True"
        } else {
            "False"
        };
        let cats = ["red", "green", "blue", "grey"];
        writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{}",
            rng.normal() + shift * 0.15,
            rng.normal() * 3.0 + shift * 2.0,
            rng.normal(),
            gap,
            (rng.normal() + shift).round(),
            rng.pick(&labels, &w),
            flag,
            (rng.uniform() * 4.0 + shift).floor() as i64,
            (rng.uniform() * 200.0 + shift * 30.0).floor() as i64,
            rng.pick(&cats, &[0.4, 0.3, 0.2 + shift * 0.1, 0.1]),
        )
        .unwrap();
    }
    std::fs::write(path, out).unwrap();
}

const COLUMNS: [&str; 10] = [
    "small_shift",
    "big_shift",
    "same",
    "with_gaps",
    "rounded",
    "three_labels",
    "flag",
    "few_ints",
    "many_ints",
    "category",
];

struct Case {
    reference: PathBuf,
    current: PathBuf,
    forced: Option<Method>,
}

/// Pairs of tables covering every branch: exact KS with unequal and equal sizes, the
/// asymptotic KS at n <= 140 and n > 140 (current over 10,000 rows), references over 1,000
/// rows (Wasserstein, Jensen-Shannon), and PSI forced on two pairs.
fn make_cases(dir: &Path) -> Vec<Case> {
    let shapes = [
        (300usize, 400usize, 0.4f64),
        (500, 500, 0.2),
        (120, 12_000, 0.3),
        (800, 15_000, 0.05),
        (900, 11_000, 1.0),
        (5_000, 4_000, 0.3),
        (3_000, 3_000, 0.0),
    ];
    let mut cases = Vec::new();
    for (i, (r, c, shift)) in shapes.iter().enumerate() {
        let reference = dir.join(format!("ref{i}.csv"));
        let current = dir.join(format!("cur{i}.csv"));
        write_table(&reference, *r, 0.0, 1000 + i as u64);
        write_table(&current, *c, *shift, 2000 + i as u64);
        cases.push(Case {
            reference: reference.clone(),
            current: current.clone(),
            forced: None,
        });
        if i == 0 || i == 5 {
            cases.push(Case {
                reference,
                current,
                forced: Some(Method::Psi),
            });
        }
    }
    cases
}

/// Runs `tests/interop/<script>` on the cases in `spec` (written to `dir`); returns stdout.
fn run_script(python: &str, script: &str, spec: &[Value], dir: &Path) -> Vec<u8> {
    let spec_path = dir.join(format!("{script}.cases.json"));
    std::fs::write(&spec_path, serde_json::to_vec(spec).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/interop")
        .join(script);
    let out = Command::new(python)
        .arg(&script)
        .arg(&spec_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn drift_scores_equal_scipys_and_methods_follow_evidentlys_rule() {
    let Ok(python) = std::env::var("CAIRN_TEST_PYTHON") else {
        // Under CI a missing service is a failure, never a silent skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "CAIRN_TEST_PYTHON must be set in CI"
        );
        eprintln!(
            "\n*** SKIPPED drift_scores_equal_scipy: CAIRN_TEST_PYTHON is not set (a Python with scipy) ***\n"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cases = make_cases(dir.path());
    let spec: Vec<Value> = cases
        .iter()
        .map(|c| {
            let methods: serde_json::Map<String, Value> = COLUMNS
                .iter()
                .map(|col| {
                    let m = c
                        .forced
                        .map(|m| Value::from(m.name()))
                        .unwrap_or(Value::Null);
                    (col.to_string(), m)
                })
                .collect();
            serde_json::json!({
                "reference": c.reference, "current": c.current, "methods": methods
            })
        })
        .collect();
    let expected: Vec<HashMap<String, Value>> = serde_json::from_slice(&run_script(
        &python,
        "drift_reference.py",
        &spec,
        dir.path(),
    ))
    .unwrap();

    let mut methods_seen = std::collections::HashSet::new();
    for (case, want) in cases.iter().zip(&expected) {
        let reference = Dataset::read(&case.reference).unwrap();
        let current = Dataset::read(&case.current).unwrap();
        let options = DriftOptions {
            method: case.forced,
            ..Default::default()
        };
        let report = compare(&reference, &current, &options).unwrap();
        for col in &report.columns {
            let w = &want[&col.column];
            let label = format!(
                "{} vs {} column {}",
                case.reference.display(),
                case.current.display(),
                col.column
            );
            assert_eq!(
                col.kind.name(),
                w["kind"].as_str().unwrap(),
                "{label}: kind"
            );
            let got = col.method.map(Method::name);
            assert_eq!(got, w["method"].as_str(), "{label}: method");
            if case.forced.is_none() {
                assert_eq!(got, w["default_method"].as_str(), "{label}: default method");
            }
            if let Some(m) = col.method {
                methods_seen.insert(m);
                let expected = w["score"].as_f64().unwrap();
                assert!(
                    (col.score - expected).abs() <= 1e-9,
                    "{label}: {} score {} != scipy {}",
                    m.name(),
                    col.score,
                    expected
                );
                assert_eq!(col.threshold, m.default_threshold());
            }
        }
    }
    assert_eq!(
        methods_seen.len(),
        Method::ALL.len(),
        "every method is exercised: {methods_seen:?}"
    );
}

/// Evidently itself (`DataDriftPreset`, run by `CAIRN_TEST_EVIDENTLY_PYTHON`, a venv with
/// evidently and pandas<3 that `.ci/run` makes): the same method and threshold for every
/// column, the same scores, and the same drifted-column count and share, with the default
/// options and with a forced method, threshold and drift share.
#[test]
fn methods_thresholds_and_dataset_drift_equal_evidentlys() {
    let Ok(python) = std::env::var("CAIRN_TEST_EVIDENTLY_PYTHON") else {
        // Under CI a missing service is a failure, never a silent skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "CAIRN_TEST_EVIDENTLY_PYTHON must be set in CI"
        );
        eprintln!(
            "\n*** SKIPPED methods_thresholds_and_dataset_drift_equal_evidentlys: CAIRN_TEST_EVIDENTLY_PYTHON is not set (a Python with evidently) ***\n"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut runs: Vec<(Case, DriftOptions)> = make_cases(dir.path())
        .into_iter()
        .map(|c| {
            let options = DriftOptions {
                method: c.forced,
                ..Default::default()
            };
            (c, options)
        })
        .collect();
    // Options Evidently takes too: a threshold for every column, a dataset drift share.
    for (i, (method, threshold, share)) in [
        (Some(Method::JensenShannon), Some(0.02), Some(0.3)),
        (None, None, Some(0.2)),
    ]
    .into_iter()
    .enumerate()
    {
        let reference = dir.path().join(format!("ref{i}.csv"));
        let current = dir.path().join(format!("cur{i}.csv"));
        runs.push((
            Case {
                reference,
                current,
                forced: method,
            },
            DriftOptions {
                method,
                threshold,
                drift_share: share,
                ..Default::default()
            },
        ));
    }
    let spec: Vec<Value> = runs
        .iter()
        .map(|(c, o)| {
            serde_json::json!({
                "reference": c.reference, "current": c.current,
                "method": o.method.map(Method::name), "threshold": o.threshold,
                "drift_share": o.drift_share,
            })
        })
        .collect();
    let expected: Vec<Value> = serde_json::from_slice(&run_script(
        &python,
        "drift_evidently.py",
        &spec,
        dir.path(),
    ))
    .unwrap();
    for ((case, options), want) in runs.iter().zip(&expected) {
        let reference = Dataset::read(&case.reference).unwrap();
        let current = Dataset::read(&case.current).unwrap();
        let report = compare(&reference, &current, options).unwrap();
        let label = format!(
            "{} vs {} with {options:?}",
            case.reference.display(),
            case.current.display()
        );
        let theirs = want["columns"].as_object().unwrap();
        let compared: Vec<_> = report
            .columns
            .iter()
            .filter(|c| c.method.is_some())
            .collect();
        assert_eq!(compared.len(), theirs.len(), "{label}: columns compared");
        for col in compared {
            let w = &theirs[&col.column];
            let name = &col.column;
            assert_eq!(
                col.method.map(Method::name),
                w["method"].as_str(),
                "{label} {name}: method"
            );
            assert_eq!(
                Some(col.threshold),
                w["threshold"].as_f64(),
                "{label} {name}: threshold"
            );
            let score = w["score"].as_f64().unwrap();
            assert!(
                (col.score - score).abs() <= 1e-9,
                "{label} {name}: score {} != Evidently's {score}",
                col.score
            );
        }
        assert_eq!(
            report.drifted_columns as f64,
            want["drifted_count"].as_f64().unwrap(),
            "{label}: drifted columns"
        );
        assert!(
            (report.share - want["share"].as_f64().unwrap()).abs() < 1e-12,
            "{label}: share"
        );
    }
}
