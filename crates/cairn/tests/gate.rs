//! `cairn gate` and `cairn promote` as a user runs them on a version `cairn train` registered:
//! the gate fails on each requirement alone and passes when all hold; promote refuses a version
//! that has not passed and records a forced one.
#![allow(clippy::unwrap_used)]
use cairn_test::TestServer;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_cairn"))
}

/// A churn-like table; `shift` moves tenure and monthly charges (for drift).
fn churn_csv(rows: usize, seed: u64, shift: f64) -> String {
    let mut state = seed;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut out = String::from("tenure,monthly,plan,churned\n");
    for i in 0..rows {
        let tenure = (next() * 60.0).floor() + shift * 30.0;
        let monthly = 20.0 + next() * 80.0 + shift * 60.0;
        let plan = ["basic", "plus", "pro"][i % 3];
        let risk = -0.08 * tenure
            + 0.03 * monthly
            + if plan == "basic" { 0.8 } else { 0.0 }
            + (next() - 0.5) * 1.5;
        let churned = if risk > 1.0 { "yes" } else { "no" };
        out.push_str(&format!("{tenure},{monthly:.2},{plan},{churned}\n"));
    }
    out
}

struct Project {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    dir: PathBuf,
}

impl Project {
    fn cairn(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .args(args)
            .current_dir(&self.dir)
            .env("CAIRN_HOME", &self.home)
            .env("CAIRN_LOG", "warn")
            .env_remove("MLFLOW_TRACKING_URI")
            .output()
            .unwrap()
    }

    fn gate(&self, policy: &str) -> (i32, String) {
        std::fs::write(self.dir.join("gate.yaml"), policy).unwrap();
        let out = self.cairn(&["gate", "models:/churn/1", "--policy", "gate.yaml"]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }
}

const SUITE: &str = "name: churn-data
expectations:
  - expect_table_row_count_to_be_between: {min_value: 100}
  - expect_column_values_to_not_be_null: {column: tenure}
";

/// A policy every requirement of which the trained model meets.
fn passing() -> String {
    "compare_to: baseline
metrics:
  test_accuracy: {threshold: 0.6, min_absolute_change: 0.05, greater_is_better: true}
  test_log_loss: {min_relative_change: 0.1, greater_is_better: false}
latency: {batch_size: 1, calls: 50, p50_ms: 1000, p99_ms: 1000}
max_model_size_mb: 5
max_memory_mb: 1000
data:
  suite: suite.yaml
  drift_against: recent.csv
"
    .to_string()
}

/// The rows of the gate's table that end with `result` (pass or FAIL).
fn rows<'a>(text: &'a str, result: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with("  ") && l.trim_end().ends_with(result))
        .collect()
}

#[test]
fn the_gate_fails_on_each_requirement_alone_and_promote_follows_it() {
    let tmp = tempfile::tempdir().unwrap();
    let p = Project {
        home: tmp.path().join("home"),
        dir: tmp.path().join("proj"),
        _tmp: tmp,
    };
    std::fs::create_dir_all(&p.dir).unwrap();
    std::fs::write(p.dir.join("churn.csv"), churn_csv(1500, 7, 0.0)).unwrap();
    std::fs::write(p.dir.join("recent.csv"), churn_csv(600, 99, 0.0)).unwrap();
    std::fs::write(p.dir.join("shifted.csv"), churn_csv(600, 99, 1.0)).unwrap();
    std::fs::write(p.dir.join("suite.yaml"), SUITE).unwrap();
    let out = p.cairn(&[
        "train",
        "--data",
        "churn.csv",
        "--target",
        "churned",
        "-e",
        "churn",
        "--register",
        "churn",
    ]);
    assert!(out.status.success(), "{out:?}");

    // Before any gate, promote refuses.
    let out = p.cairn(&["promote", "models:/churn/1", "--alias", "champion"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("has not passed a gate"));

    let (code, text) = p.gate(&passing());
    assert_eq!(code, 0, "{text}");
    assert!(rows(&text, "FAIL").is_empty(), "{text}");
    // Nine requirements: accuracy threshold and absolute change, log loss relative change,
    // p50, p99, size, memory, suite, drift.
    assert_eq!(rows(&text, "pass").len(), 9, "{text}");
    assert!(text.contains("passed all 9 requirements"), "{text}");

    // Each requirement failing alone fails the gate, and only that row fails.
    let cases = [
        (
            "threshold: 0.6",
            "threshold: 0.9999",
            "metric test_accuracy ",
        ),
        (
            "min_absolute_change: 0.05",
            "min_absolute_change: 0.9",
            "metric test_accuracy vs",
        ),
        (
            "min_relative_change: 0.1",
            "min_relative_change: 0.99",
            "metric test_log_loss vs",
        ),
        ("p50_ms: 1000", "p50_ms: 0.000001", "p50 latency"),
        ("p99_ms: 1000", "p99_ms: 0.000001", "p99 latency"),
        (
            "max_model_size_mb: 5",
            "max_model_size_mb: 0.000001",
            "model file size",
        ),
        (
            "max_memory_mb: 1000",
            "max_memory_mb: 0.000001",
            "peak memory",
        ),
        (
            "suite: suite.yaml",
            "suite: strict.yaml",
            "training data meets suite",
        ),
        (
            "drift_against: recent.csv",
            "drift_against: shifted.csv",
            "no drift",
        ),
    ];
    std::fs::write(
        p.dir.join("strict.yaml"),
        SUITE.replace("{min_value: 100}", "{min_value: 100000}"),
    )
    .unwrap();
    for (from, to, failing) in cases {
        let policy = passing().replace(from, to);
        assert_ne!(policy, passing(), "{from}");
        let (code, text) = p.gate(&policy);
        assert_eq!(code, 1, "{to}: {text}");
        let failed = rows(&text, "FAIL");
        assert_eq!(failed.len(), 1, "{to}: {text}");
        assert!(failed[0].trim_start().starts_with(failing), "{to}: {text}");
    }
    // A metric the run never logged fails too.
    let log_loss = "  test_log_loss: {min_relative_change: 0.1, greater_is_better: false}\n";
    let (code, text) = p.gate(&passing().replace(
        log_loss,
        &format!("{log_loss}  test_nonexistent: {{threshold: 1, greater_is_better: true}}\n"),
    ));
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("metric test_nonexistent") && text.contains("missing"),
        "{text}"
    );

    // The last gate failed: promote refuses, --force needs a reason, and a forced move is recorded.
    let out = p.cairn(&["promote", "models:/churn/1", "--alias", "champion"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has failed a gate"),
        "{out:?}"
    );
    let out = p.cairn(&[
        "promote",
        "models:/churn/1",
        "--alias",
        "champion",
        "--force",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force needs --reason"));
    let out = p.cairn(&[
        "promote",
        "models:/churn/1",
        "--alias",
        "champion",
        "--force",
        "--reason",
        "hotfix for the outage",
    ]);
    assert!(out.status.success(), "{out:?}");

    let server = TestServer::start_in(bin(), &p.home, None, &[]);
    let alias = server
        .http()
        .get("/api/2.0/mlflow/registered-models/alias?name=churn&alias=champion");
    assert_eq!(alias.1["model_version"]["version"], "1");
    let tags = &alias.1["model_version"]["tags"];
    let tag = |k: &str| {
        tags.as_array()
            .unwrap()
            .iter()
            .find(|t| t["key"] == k)
            .map(|t| t["value"].as_str().unwrap().to_string())
    };
    assert_eq!(tag("cairn.gate.status").as_deref(), Some("failed"));
    assert_eq!(tag("cairn.promote.forced").as_deref(), Some("true"));
    assert_eq!(
        tag("cairn.promote.reason").as_deref(),
        Some("hotfix for the outage")
    );
    let result: serde_json::Value =
        serde_json::from_str(&tag("cairn.gate.result").unwrap()).unwrap();
    assert_eq!(result["passed"], false);
    assert!(result["checks"].as_array().unwrap().len() >= 9);
    drop(server);

    // A passing gate lets promote move the alias without force.
    let (code, text) = p.gate(&passing());
    assert_eq!(code, 0, "{text}");
    let out = p.cairn(&["promote", "models:/churn/1", "--alias", "production"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("gate passed"));
}

/// `rows` of a churn table as the served model takes them: `x: FP32[N, 3]` with the plan as
/// its level's code (basic, plus, pro sorted).
fn served_rows(csv: &str) -> (usize, Vec<f64>) {
    let mut data = Vec::new();
    let mut rows = 0;
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let plan = ["basic", "plus", "pro"]
            .iter()
            .position(|p| *p == f[2])
            .unwrap();
        data.extend([f[0].parse().unwrap(), f[1].parse().unwrap(), plan as f64]);
        rows += 1;
    }
    (rows, data)
}

#[test]
fn the_gate_compares_the_training_data_with_the_served_traffic() {
    let tmp = tempfile::tempdir().unwrap();
    let p = Project {
        home: tmp.path().join("home"),
        dir: tmp.path().join("proj"),
        _tmp: tmp,
    };
    std::fs::create_dir_all(&p.dir).unwrap();
    std::fs::write(p.dir.join("churn.csv"), churn_csv(1500, 7, 0.0)).unwrap();
    let out = p.cairn(&[
        "train",
        "--data",
        "churn.csv",
        "--target",
        "churned",
        "--model",
        "gbdt",
        "-e",
        "churn",
        "--register",
        "churn",
    ]);
    assert!(out.status.success(), "{out:?}");
    let server = TestServer::start_in(bin(), &p.home, None, &[]);
    let http = server.http();
    let send = |csv: &str| {
        let (rows, data) = served_rows(csv);
        for chunk in data.chunks(3 * 50) {
            let body = serde_json::json!({"inputs": [
                {"name": "x", "shape": [chunk.len() / 3, 3], "datatype": "FP32", "data": chunk}]});
            let (status, reply) = http.post_json("/v2/models/churn/versions/1/infer", &body);
            assert_eq!(status, 200, "{reply}");
        }
        rows
    };
    // The gate as run against the server, until its drift row has counted `rows` predictions
    // (the server writes its log in batches).
    let gate_until = |policy: &str, rows: usize| -> (i32, String) {
        std::fs::write(p.dir.join("served.yaml"), policy).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let out = p.cairn(&[
                "gate",
                "models:/churn/1",
                "--policy",
                "served.yaml",
                "--tracking-uri",
                &server.url,
            ]);
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if text.contains(&format!(" {rows} predictions")) {
                return (out.status.code().unwrap_or(-1), text);
            }
            assert!(std::time::Instant::now() < deadline, "{text}");
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    };
    let policy = "data:\n  drift_against: served\n  served_window: 1h\n";

    // Nothing served yet: the requirement cannot be measured, so it fails.
    std::fs::write(p.dir.join("served.yaml"), policy).unwrap();
    let out = p.cairn(&[
        "gate",
        "models:/churn/1",
        "--policy",
        "served.yaml",
        "--tracking-uri",
        &server.url,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(text.contains("no predictions logged"), "{text}");

    // Traffic like the training data passes; the plan codes are read back as plan levels.
    let normal = send(&churn_csv(400, 99, 0.0));
    let (code, text) = gate_until(policy, normal);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("0 of 3 columns drifted, 400 predictions"),
        "{text}"
    );
    // Three times as much shifted traffic drifts tenure and monthly charges: it fails.
    let shifted = send(&churn_csv(1200, 5, 1.0));
    let (code, text) = gate_until(policy, normal + shifted);
    assert_eq!(code, 1, "{text}");
    let failed = rows(&text, "FAIL");
    assert_eq!(failed.len(), 1, "{text}");
    assert!(
        failed[0].contains("what version 1 served in 1h") && failed[0].contains("2 of 3 columns"),
        "{text}"
    );

    // The traffic of the version an alias names is read through the alias.
    let out = p.cairn(&[
        "promote",
        "models:/churn/1",
        "--alias",
        "champion",
        "--force",
        "--reason",
        "test",
        "--tracking-uri",
        &server.url,
    ]);
    assert!(out.status.success(), "{out:?}");
    let (code, text) = gate_until(
        &policy.replace("served\n", "served:champion\n"),
        normal + shifted,
    );
    assert_eq!(code, 1, "{text}");

    // Bad policies are refused before anything is measured or recorded.
    for (bad, says) in [
        (
            policy.replace("served\n", "served:nobody\n"),
            "served:nobody",
        ),
        (policy.replace("1h", "an hour"), "served_window"),
        (
            "data:\n  drift_against: recent.csv\n  served_window: 1h\n".to_string(),
            "served_window is only for drift_against: served",
        ),
    ] {
        std::fs::write(p.dir.join("served.yaml"), &bad).unwrap();
        let out = p.cairn(&[
            "gate",
            "models:/churn/1",
            "--policy",
            "served.yaml",
            "--tracking-uri",
            &server.url,
        ]);
        assert!(!out.status.success(), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{bad}: {err}");
    }
}
