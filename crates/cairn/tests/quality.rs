//! `cairn validate`, `cairn suite suggest` and `cairn drift` as a user runs them: exit
//! statuses, report files, stored references and errors that name the problem.
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Output};

fn cairn(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .current_dir(dir)
        .env("CAIRN_HOME", dir.join("home"))
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A table of `rows` rows: a numeric column shifted by `shift`, a label column whose mix moves
/// with `shift`, and an id.
fn write_table(path: &Path, rows: usize, shift: f64) {
    let mut out = String::from("id,amount,plan\n");
    for i in 0..rows {
        // A deterministic spread of values in [0, 100).
        let base = ((i * 7919) % 1000) as f64 / 10.0;
        let plan = if (i as f64 / rows as f64) < 0.5 + shift / 200.0 {
            "basic"
        } else if i % 3 == 0 {
            "pro"
        } else {
            "team"
        };
        writeln!(out, "{i},{:.2},{plan}", base + shift).unwrap();
    }
    std::fs::write(path, out).unwrap();
}

#[test]
fn validate_exits_by_result_and_writes_reports() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_table(&d.join("good.csv"), 500, 0.0);
    std::fs::write(
        d.join("suite.yaml"),
        "name: orders\nexpectations:\n  - expect_column_values_to_be_between: {column: amount, min_value: 0, max_value: 100}\n  - expect_column_values_to_be_in_set: {column: plan, value_set: [basic, pro, team]}\n  - expect_column_values_to_be_unique: {column: id}\n",
    )
    .unwrap();
    let ok = cairn(
        d,
        &[
            "validate",
            "--suite",
            "suite.yaml",
            "good.csv",
            "--json",
            "r.json",
            "--html",
            "r.html",
        ],
    );
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert!(text(&ok).contains("passed: 3 of 3"), "{}", text(&ok));
    let json: Value = serde_json::from_slice(&std::fs::read(d.join("r.json")).unwrap()).unwrap();
    assert_eq!(json["statistics"]["successful_expectations"], 3);
    assert_eq!(json["results"][0]["result"]["element_count"], 500);
    let html = std::fs::read_to_string(d.join("r.html")).unwrap();
    assert!(html.contains("expect_column_values_to_be_unique") && !html.contains("<script"));

    // Out-of-range amounts make the suite fail: exit status 1 and the bad values named.
    write_table(&d.join("bad.csv"), 500, 50.0);
    let bad = cairn(d, &["validate", "--suite", "suite.yaml", "bad.csv"]);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    assert!(
        text(&bad).contains("FAIL expect_column_values_to_be_between [amount]"),
        "{}",
        text(&bad)
    );
    assert!(text(&bad).contains("FAILED: 2 of 3"), "{}", text(&bad));
}

#[test]
fn bad_suites_and_inputs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_table(&d.join("t.csv"), 10, 0.0);
    std::fs::write(
        d.join("typo.yaml"),
        "expectations:\n  - expect_column_values_to_be_betwen: {column: amount, min_value: 0}\n",
    )
    .unwrap();
    let o = cairn(d, &["validate", "--suite", "typo.yaml", "t.csv"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("typo.yaml") && text(&o).contains("expect_column_values_to_be_betwen"),
        "{}",
        text(&o)
    );
    std::fs::write(d.join("s.yaml"), "expectations: []\n").unwrap();
    let o = cairn(d, &["validate", "--suite", "s.yaml", "missing.csv"]);
    assert!(
        !o.status.success() && text(&o).contains("missing.csv"),
        "{}",
        text(&o)
    );
    let o = cairn(d, &["validate", "--suite", "s.yaml", "s.yaml"]);
    assert!(
        !o.status.success() && text(&o).contains("not a table"),
        "{}",
        text(&o)
    );
    let o = cairn(
        d,
        &[
            "drift",
            "--reference",
            "t.csv",
            "--current",
            "t.csv",
            "--method",
            "amount=nope",
        ],
    );
    assert!(
        !o.status.success() && text(&o).contains("unknown drift method"),
        "{}",
        text(&o)
    );
    let o = cairn(
        d,
        &[
            "drift",
            "--reference",
            "t.csv",
            "--current",
            "t.csv",
            "--method",
            "plan=ks",
        ],
    );
    assert!(
        !o.status.success() && text(&o).contains("needs a numerical column"),
        "{}",
        text(&o)
    );
    let o = cairn(
        d,
        &[
            "drift",
            "--reference",
            "t.csv",
            "--current",
            "t.csv",
            "-o",
            "x.txt",
        ],
    );
    assert!(
        !o.status.success() && text(&o).contains(".json or .html"),
        "{}",
        text(&o)
    );
}

#[test]
fn suggested_suite_passes_on_its_data_and_catches_changes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_table(&d.join("good.csv"), 400, 0.0);
    let o = cairn(d, &["suite", "suggest", "good.csv", "-o", "suite.yaml"]);
    assert!(o.status.success(), "{}", text(&o));
    let suite = std::fs::read_to_string(d.join("suite.yaml")).unwrap();
    assert!(
        suite.contains("expect_column_values_to_be_unique"),
        "{suite}"
    );
    assert!(
        suite.contains("expect_column_values_to_be_in_set"),
        "{suite}"
    );
    let o = cairn(d, &["validate", "--suite", "suite.yaml", "good.csv"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    write_table(&d.join("shifted.csv"), 400, 30.0);
    let o = cairn(d, &["validate", "--suite", "suite.yaml", "shifted.csv"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}

#[test]
fn drift_reports_and_stored_references_agree() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_table(&d.join("ref.csv"), 3000, 0.0);
    write_table(&d.join("same.csv"), 2000, 0.0);
    write_table(&d.join("moved.csv"), 2000, 40.0);

    let o = cairn(
        d,
        &["drift", "--reference", "ref.csv", "--current", "same.csv"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("no dataset drift"), "{}", text(&o));

    let o = cairn(
        d,
        &[
            "drift",
            "--reference",
            "ref.csv",
            "--current",
            "moved.csv",
            "-o",
            "a.json",
            "--fail-on-drift",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let a: Value = serde_json::from_slice(&std::fs::read(d.join("a.json")).unwrap()).unwrap();
    assert_eq!(a["dataset_drift"], true);
    let amount = a["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["column"] == "amount")
        .unwrap();
    assert_eq!(amount["method"], "wasserstein");
    assert_eq!(amount["drifted"], true);
    assert_eq!(amount["threshold"], 0.1);

    // The stored reference gives the same numbers without the original file.
    let o = cairn(
        d,
        &[
            "drift",
            "--reference",
            "ref.csv",
            "--save-reference",
            "ref.cairnref",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    std::fs::remove_file(d.join("ref.csv")).unwrap();
    let o = cairn(
        d,
        &[
            "drift",
            "--reference",
            "ref.cairnref",
            "--current",
            "moved.csv",
            "-o",
            "b.json",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let b: Value = serde_json::from_slice(&std::fs::read(d.join("b.json")).unwrap()).unwrap();
    assert_eq!(a["columns"], b["columns"]);

    let o = cairn(
        d,
        &[
            "drift",
            "--reference",
            "ref.cairnref",
            "--current",
            "moved.csv",
            "-o",
            "r.html",
            "--method",
            "psi",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let html = std::fs::read_to_string(d.join("r.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("psi") && !html.contains("<script"));
}
