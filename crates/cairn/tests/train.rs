//! `cairn train` as a user runs it: a table or a dataset version in, one run per model out, the
//! best registered and served, and bad input refused before anything is recorded.
#![allow(clippy::unwrap_used)]
use cairn_test::{run_metric as metric, run_tag as tag, TestServer};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_cairn"))
}

struct Project {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    dir: PathBuf,
}

impl Project {
    fn new() -> Project {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        let dir = tmp.path().join("proj");
        std::fs::create_dir_all(dir.join(".git")).unwrap();
        Project {
            _tmp: tmp,
            home,
            dir,
        }
    }

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

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cairn(args);
        assert!(
            out.status.success(),
            "cairn {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// A churn-like table: numbers (one with gaps), a category, an identifier to drop, a yes/no
/// target that depends on them.
fn churn_csv(rows: usize) -> String {
    let mut state = 7u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut out = String::from("customer,tenure,monthly,plan,churned\n");
    for i in 0..rows {
        let tenure = (next() * 60.0).floor();
        let monthly = 20.0 + next() * 80.0;
        let plan = ["basic", "plus", "pro"][i % 3];
        let risk = -0.08 * tenure
            + 0.03 * monthly
            + if plan == "basic" { 0.8 } else { 0.0 }
            + (next() - 0.5) * 1.5;
        let churned = if risk > 1.0 { "yes" } else { "no" };
        let monthly_text = if i % 13 == 0 {
            String::new()
        } else {
            format!("{monthly:.2}")
        };
        out.push_str(&format!(
            "c{i:05},{tenure},{monthly_text},{plan},{churned}\n"
        ));
    }
    out
}

fn runs(server: &TestServer, experiment: &str) -> Vec<Value> {
    let e = server.http().get(&format!(
        "/api/2.0/mlflow/experiments/get-by-name?experiment_name={experiment}"
    ));
    let id = e.1["experiment"]["experiment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = server.http().post(
        "runs/search",
        &json!({"experiment_ids": [id], "max_results": 100}),
    );
    r.1["runs"].as_array().cloned().unwrap_or_default()
}

fn artifact(server: &TestServer, run: &Value, path: &str) -> (u16, Vec<u8>) {
    let root = run["info"]["artifact_uri"]
        .as_str()
        .unwrap()
        .trim_start_matches("mlflow-artifacts:")
        .trim_start_matches('/')
        .to_string();
    server.http().get_bytes(&format!(
        "/api/2.0/mlflow-artifacts/artifacts/{root}/{path}"
    ))
}

#[test]
fn three_models_are_logged_and_the_best_serves_its_test_score() {
    let p = Project::new();
    std::fs::write(p.dir.join("churn.csv"), churn_csv(1500)).unwrap();
    let out = p.ok(&[
        "train",
        "--data",
        "churn.csv",
        "--target",
        "churned",
        "--drop",
        "customer",
        "-e",
        "churn",
        "--register",
        "churn",
    ]);
    assert!(
        out.contains("1500 rows (900 train, 300 validation, 300 test, seed 42)"),
        "{out}"
    );
    assert!(out.contains("Registered "), "{out}");

    let server = TestServer::start_in(bin(), &p.home, None, &[]);
    let all = runs(&server, "churn");
    assert_eq!(all.len(), 3);
    let by_model = |m: &str| {
        all.iter()
            .find(|r| tag(r, "cairn.train.model").as_deref() == Some(m))
            .unwrap()
            .clone()
    };
    let (baseline, linear, gbdt) = (by_model("baseline"), by_model("linear"), by_model("gbdt"));
    // The baseline predicts the majority class: its accuracy is that class's share.
    let base_accuracy = metric(&baseline, "test_accuracy").unwrap();
    assert!((0.5..0.9).contains(&base_accuracy), "{base_accuracy}");
    assert_eq!(metric(&baseline, "test_roc_auc"), Some(0.5));
    for model in [&linear, &gbdt] {
        let accuracy = metric(model, "test_accuracy").unwrap();
        assert!(
            accuracy > base_accuracy + 0.05,
            "{accuracy} vs {base_accuracy}"
        );
        let lift = metric(model, "test_accuracy_lift").unwrap();
        assert!((lift - (accuracy - base_accuracy)).abs() < 1e-12);
        for path in [
            "model/model.onnx",
            "model/MLmodel",
            "confusion_matrix.svg",
            "feature_importances.json",
        ] {
            assert_eq!(artifact(&server, model, path).0, 200, "{path}");
        }
        let importances: Value =
            serde_json::from_slice(&artifact(&server, model, "feature_importances.json").1)
                .unwrap();
        let total: f64 = importances
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_f64().unwrap())
            .sum();
        assert!((total - 1.0).abs() < 1e-9, "{importances}");
        assert!(
            importances.get("customer").is_none(),
            "dropped column used: {importances}"
        );
        let inputs = model["inputs"]["dataset_inputs"].as_array().unwrap();
        assert_eq!(inputs[0]["dataset"]["name"], "churn.csv");
    }
    let params: Vec<(String, String)> = gbdt["data"]["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["key"].as_str().unwrap().into(),
                p["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    for (k, v) in [
        ("trees", "100"),
        ("max_leaf_nodes", "31"),
        ("seed", "42"),
        ("task", "classification"),
    ] {
        assert!(
            params.contains(&(k.to_string(), v.to_string())),
            "{k}: {params:?}"
        );
    }

    // The registered version is the run tagged best; served, it scores the test rows as logged.
    let best = all
        .iter()
        .find(|r| tag(r, "cairn.train.best").as_deref() == Some("true"))
        .unwrap();
    let version = server
        .http()
        .get("/api/2.0/mlflow/model-versions/get?name=churn&version=1");
    assert_eq!(version.1["model_version"]["run_id"], best["info"]["run_id"]);
    let text = churn_csv(1500);
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let split = cairn_train::split::split(rows.len(), 42, 0.2, 0.2);
    let plan_code = |p: &str| {
        ["basic", "plus", "pro"]
            .iter()
            .position(|x| *x == p)
            .unwrap() as f64
    };
    let mut x = Vec::new();
    for &r in &split.test {
        let row = &rows[r];
        x.push(row[1].parse::<f64>().unwrap());
        x.push(row[2].parse::<f64>().unwrap_or(f64::NAN));
        x.push(plan_code(row[3]));
    }
    // JSON has no NaN, so the rows with a gap are left out of the served check.
    let (mut right, mut counted) = (0usize, 0usize);
    for (i, &r) in split.test.iter().enumerate() {
        let features = &x[i * 3..i * 3 + 3];
        if features.iter().any(|v| v.is_nan()) {
            continue;
        }
        let answer = server.http().post_json(
            "/v2/models/churn/versions/1/infer",
            &json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": features}]}),
        );
        assert_eq!(answer.0, 200, "{}", answer.1);
        let outputs = answer.1["outputs"].as_array().unwrap();
        let label = outputs.iter().find(|o| o["name"] == "label").unwrap()["data"][0]
            .as_i64()
            .unwrap();
        // Classes are sorted ["no", "yes"]: label is the index.
        let truth = i64::from(rows[r][4] == "yes");
        right += usize::from(label == truth);
        counted += 1;
    }
    let served_accuracy = right as f64 / counted as f64;
    let logged = metric(best, "test_accuracy").unwrap();
    // The rows with gaps are left out of the served check, so the two agree closely, not exactly.
    assert!(
        (served_accuracy - logged).abs() < 0.05,
        "served {served_accuracy}, logged {logged}"
    );
}

#[test]
fn a_dataset_version_is_trained_on_and_named_as_the_input() {
    let p = Project::new();
    std::fs::create_dir_all(p.dir.join("data")).unwrap();
    std::fs::write(p.dir.join("data/churn.csv"), churn_csv(400)).unwrap();
    p.ok(&["data", "add", "data", "--name", "churn-data"]);
    let out = p.ok(&[
        "train",
        "--data",
        "churn-data@1:churn.csv",
        "--target",
        "churned",
        "--drop",
        "customer",
        "--model",
        "linear",
    ]);
    assert!(
        out.contains("Training on churn-data@1:churn.csv: 400 rows"),
        "{out}"
    );
    let server = TestServer::start_in(bin(), &p.home, None, &[]);
    let all = runs(&server, "cairn-train");
    assert_eq!(all.len(), 1);
    let input = &all[0]["inputs"]["dataset_inputs"][0]["dataset"];
    assert_eq!(input["name"], "churn-data");
    assert_eq!(input["source_type"], "cairn");
    assert!(input["source"]
        .as_str()
        .unwrap()
        .contains("cairn://churn-data@1"));
    // Lineage from the dataset version forward reaches the run.
    let lineage = p.ok(&["lineage", "--dataset", "churn-data@1"]);
    assert!(
        lineage.contains(all[0]["info"]["run_id"].as_str().unwrap()),
        "{lineage}"
    );
}

#[test]
fn bad_input_is_refused_before_anything_is_recorded() {
    let p = Project::new();
    std::fs::write(p.dir.join("churn.csv"), churn_csv(200)).unwrap();
    std::fs::write(p.dir.join("empty.csv"), "a,b,y\n").unwrap();
    std::fs::write(p.dir.join("constant.csv"), "a,y\n1,5\n2,5\n3,5\n").unwrap();
    let mut ids = String::from("id,x,y\n");
    for i in 0..100_000 {
        ids.push_str(&format!("user-{i},{},{}\n", i % 7, i % 2));
    }
    std::fs::write(p.dir.join("ids.csv"), ids).unwrap();
    for (args, expected) in [
        (
            vec!["--data", "churn.csv", "--target", "label"],
            "no column named \"label\"",
        ),
        (vec!["--data", "empty.csv", "--target", "y"], "no rows"),
        (vec!["--data", "constant.csv", "--target", "y"], "constant"),
        (
            vec!["--data", "ids.csv", "--target", "y"],
            "\"id\" has 100000 distinct text values",
        ),
        (
            vec!["--data", "missing.csv", "--target", "y"],
            "no such file",
        ),
        (
            vec!["--data", "nope@3", "--target", "y"],
            "nope@3 not found",
        ),
        (
            vec![
                "--data",
                "churn.csv",
                "--target",
                "churned",
                "--model",
                "forest",
            ],
            "--model forest",
        ),
        (
            vec![
                "--data",
                "churn.csv",
                "--target",
                "churned",
                "--task",
                "ranking",
            ],
            "--task ranking",
        ),
    ] {
        let mut all = vec!["train"];
        all.extend(args.iter().copied());
        let out = p.cairn(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    // Nothing was recorded: no experiment, no run.
    let server = TestServer::start_in(bin(), &p.home, None, &[]);
    let e = server
        .http()
        .get("/api/2.0/mlflow/experiments/get-by-name?experiment_name=cairn-train");
    assert_eq!(e.0, 404, "{}", e.1);
}
