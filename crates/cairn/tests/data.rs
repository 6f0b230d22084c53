//! `cairn data`, `cairn repro` and `cairn lineage` as a user runs them: the binary, a project
//! folder and a home.
#![allow(clippy::unwrap_used)]
use cairn_test::onnx::tiny_mlp_onnx;
use cairn_test::TestServer;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_cairn"))
}

struct Env {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    proj: PathBuf,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        let proj = tmp.path().join("proj");
        std::fs::create_dir_all(proj.join(".git")).unwrap();
        Env {
            _tmp: tmp,
            home,
            proj,
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args)
            .current_dir(&self.proj)
            .env("CAIRN_HOME", &self.home)
            .env_remove("MLFLOW_TRACKING_URI")
            .env_remove("RUST_BACKTRACE");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "cairn {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

fn write_files(dir: &Path, count: usize, size: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..count {
        let mut bytes = vec![0u8; size];
        for (j, b) in bytes.iter_mut().enumerate() {
            *b = ((i * 7919 + j * 31) % 251) as u8;
        }
        // Every file distinct, so none is deduplicated.
        bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
        std::fs::write(dir.join(format!("f{i:05}.bin")), bytes).unwrap();
    }
}

#[test]
fn the_cli_adds_diffs_checks_out_and_explains_bad_input() {
    let e = Env::new();
    std::fs::write(e.proj.join("iris.csv"), "a,b\n1,2\n3,4\n").unwrap();
    let out = e.ok(&["data", "add", "iris.csv", "-m", "first cut"]);
    assert!(out.contains("added iris.csv as iris.csv@1"), "{out}");
    assert!(e.proj.join("iris.csv.cairn").is_file());
    assert_eq!(
        std::fs::read_to_string(e.proj.join(".gitignore")).unwrap(),
        "/iris.csv\n"
    );
    std::fs::write(e.proj.join("iris.csv"), "a,b\n1,2\n3,4\n5,6\n").unwrap();
    let status = e.ok(&["data", "status"]);
    assert!(
        status.contains("modified") && status.contains("iris.csv@1"),
        "{status}"
    );
    let diff = e.ok(&["data", "diff", "iris.csv@1"]);
    assert!(
        diff.contains("rows: 2 -> 3 (+1 added, -0 removed)"),
        "{diff}"
    );
    e.ok(&["data", "add", "iris.csv"]);
    let log = e.ok(&["data", "log", "iris.csv", "--json"]);
    let log: Value = serde_json::from_str(&log).unwrap();
    assert_eq!(log[0]["version"], 2);
    assert_eq!(log[1]["message"], "first cut");
    e.ok(&["data", "checkout", "iris.csv@1"]);
    assert_eq!(
        std::fs::read_to_string(e.proj.join("iris.csv")).unwrap(),
        "a,b\n1,2\n3,4\n"
    );
    let pointer = std::fs::read_to_string(e.proj.join("iris.csv.cairn")).unwrap();
    assert!(pointer.contains("version: 1"), "{pointer}");

    // Bad input: a message naming the problem, a non-zero exit, nothing changed.
    for (args, says) in [
        (
            vec!["data", "add", "../elsewhere.csv"],
            "outside the project root",
        ),
        (
            vec!["data", "add", "missing.csv"],
            "missing.csv does not exist",
        ),
        (
            vec!["data", "add", "/etc/hostname"],
            "outside the project root",
        ),
        (
            vec!["data", "checkout", "iris.csv@9"],
            "iris.csv@9 not found",
        ),
        (vec!["data", "checkout", "iris.csv@zero"], "positive number"),
        (
            vec!["data", "add", "iris.csv", "--name", "bad name"],
            "invalid dataset name",
        ),
        (vec!["data", "push"], "no default remote"),
        (vec!["lineage", "models:/nope/1"], "not found"),
        (vec!["repro"], "no cairn.yaml"),
    ] {
        let out = e.run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert_eq!(
        std::fs::read_to_string(e.proj.join("iris.csv")).unwrap(),
        "a,b\n1,2\n3,4\n"
    );
}

/// `cairn data add` killed part way leaves a store `verify` passes; the next add completes and
/// its version checks out byte for byte.
#[test]
fn kill_9_during_add_leaves_a_consistent_store() {
    let e = Env::new();
    write_files(&e.proj.join("big"), 1500, 128 << 10);
    // Aim the kill by what the add has done, not by a clock: once some objects but not all are
    // in the store, the add is mid-way whatever the machine's speed or page cache.
    let objects = e.home.join("data").join("objects");
    let stored = || -> usize {
        std::fs::read_dir(&objects)
            .map(|fans| {
                fans.flatten()
                    .filter_map(|fan| std::fs::read_dir(fan.path()).ok())
                    .map(|entries| entries.count())
                    .sum()
            })
            .unwrap_or(0)
    };
    let mut child = e.cmd(&["data", "add", "big"]).spawn().unwrap();
    let started = Instant::now();
    let mut seen = 0;
    while child.try_wait().unwrap().is_none() && started.elapsed().as_secs() < 120 {
        seen = stored();
        if seen >= 20 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let finished_first = child.try_wait().unwrap().is_some();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !finished_first,
        "the add finished before it could be killed ({seen} objects seen)"
    );
    let after_kill = stored();
    assert!(
        (20..1501).contains(&after_kill),
        "killed with {after_kill} of 1501 objects stored"
    );
    let verify = e.ok(&["data", "verify"]);
    assert!(verify.contains("intact"), "{verify}");

    let out = e.ok(&["data", "add", "big"]);
    assert!(out.contains("big@1"), "{out}");
    let before: Vec<Vec<u8>> = (0..1500)
        .step_by(97)
        .map(|i| std::fs::read(e.proj.join(format!("big/f{i:05}.bin"))).unwrap())
        .collect();
    std::fs::remove_dir_all(e.proj.join("big")).unwrap();
    e.ok(&["data", "checkout"]);
    let after: Vec<Vec<u8>> = (0..1500)
        .step_by(97)
        .map(|i| std::fs::read(e.proj.join(format!("big/f{i:05}.bin"))).unwrap())
        .collect();
    assert!(before == after);
    let verify = e.ok(&["data", "verify"]);
    assert!(verify.contains("1501 objects intact"), "{verify}");
}

#[test]
fn repro_exits_with_the_failed_commands_status_and_shows_its_output() {
    let e = Env::new();
    std::fs::write(
        e.proj.join("cairn.yaml"),
        "stages:\n  ok:\n    cmd: echo fine > ok.out\n    outs: [ok.out]\n  broken:\n    cmd: echo 'column x missing' >&2; exit 4\n    deps: [ok.out]\n    outs: [never.out]\n",
    )
    .unwrap();
    let out = e.run(&["repro"]);
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken | column x missing"), "{err}");
    assert!(err.contains("FAILED with exit status 4"), "{err}");
    assert_eq!(
        std::fs::read_to_string(e.proj.join("ok.out")).unwrap(),
        "fine\n"
    );
    let lock = std::fs::read_to_string(e.proj.join("cairn.lock")).unwrap();
    assert!(lock.contains("ok:") && !lock.contains("broken:"), "{lock}");
}

/// A model version served by Cairn, traced back to the exact dataset bytes it was trained on.
#[test]
fn lineage_runs_from_a_served_model_version_back_to_the_dataset_digest() {
    let e = Env::new();
    std::fs::write(e.proj.join("train.csv"), "x0,x1,x2,y\n1,2,3,0\n4,5,6,1\n").unwrap();
    e.ok(&["data", "add", "train.csv", "-m", "training rows"]);
    let pointer = std::fs::read_to_string(e.proj.join("train.csv.cairn")).unwrap();
    let digest = pointer
        .lines()
        .find_map(|l| l.strip_prefix("digest: "))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(digest.len(), 64);

    let server = TestServer::start_in(bin(), &e.home, None, &[]);
    let http = server.http();
    let (_, run) = http.post(
        "runs/create",
        &json!({"experiment_id": "0", "run_name": "train-1"}),
    );
    let run_id = run["run"]["info"]["run_id"].as_str().unwrap().to_string();
    let commit = "3f2a9c1d4e5b6a7f8091a2b3c4d5e6f708192a3b";
    http.post(
        "runs/set-tag",
        &json!({"run_id": run_id, "key": "mlflow.source.git.commit", "value": commit}),
    );
    let (status, body) = http.post(
        "runs/log-inputs",
        &json!({"run_id": run_id, "datasets": [{
            "tags": [{"key": "mlflow.data.context", "value": "training"}],
            "dataset": {"name": "train.csv", "digest": &digest[..32], "source_type": "cairn",
                        "source": "{\"uri\": \"cairn://train.csv@1\"}"}
        }]}),
    );
    assert_eq!(status, 200, "{body}");
    let root = run["run"]["info"]["artifact_uri"]
        .as_str()
        .unwrap()
        .trim_start_matches("mlflow-artifacts:/")
        .to_string();
    let put = http.put(
        &format!("/api/2.0/mlflow-artifacts/artifacts/{root}/model/model.onnx"),
        &tiny_mlp_onnx(),
    );
    assert_eq!(put.0, 200);
    http.post("registered-models/create", &json!({"name": "mlp"}));
    let (status, body) = http.post(
        "model-versions/create",
        &json!({"name": "mlp", "source": format!("runs:/{run_id}/model"), "run_id": run_id}),
    );
    assert_eq!(status, 200, "{body}");
    // The version is served.
    let (status, answer) = http.post_json(
        "/v2/models/mlp/versions/1/infer",
        &json!({"inputs": [
            {"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1.0, 2.0, 3.0]},
            {"name": "offset", "shape": [1, 2], "datatype": "FP32", "data": [0.0, 0.0]},
        ]}),
    );
    assert_eq!(status, 200, "{answer}");

    // The server's JSON API: version -> run -> input -> dataset version with the full digest.
    let (status, l) = http.get("/api/2.0/cairn/lineage/model-version?name=mlp&version=1");
    assert_eq!(status, 200, "{l}");
    assert_eq!(l["run"]["run_id"], run_id.as_str());
    assert_eq!(l["run"]["git_commit"], commit);
    let input = &l["run"]["inputs"][0];
    assert_eq!(input["context"], "training");
    assert_eq!(input["dataset_versions"][0]["digest"], digest.as_str());
    assert_eq!(input["dataset_versions"][0]["name"], "train.csv");
    assert_eq!(input["dataset_versions"][0]["version"], 1);
    let (status, _) = http.get("/api/2.0/cairn/lineage/model-version?name=mlp&version=7");
    assert_eq!(status, 404);

    // The CLI, through the server and on the home directly.
    let text = e.ok(&["lineage", "models:/mlp/1", "--tracking-uri", &server.url]);
    assert!(
        text.contains(&digest) && text.contains(commit) && text.contains("train.csv@1"),
        "{text}"
    );
    let back = e.ok(&["lineage", "--dataset", "train.csv@1", "--json"]);
    let back: Value = serde_json::from_str(&back).unwrap();
    assert_eq!(back["runs"][0]["run_id"], run_id.as_str());
    assert_eq!(back["model_versions"][0]["name"], "mlp");
    assert_eq!(back["model_versions"][0]["version"], "1");
    let (status, api) = http.get("/api/2.0/cairn/lineage/dataset?name=train.csv&version=1");
    assert_eq!(status, 200);
    assert_eq!(api, back);
}

/// The real mlflow client logs a Cairn dataset version's digest as a run input; lineage links.
#[test]
fn the_mlflow_client_links_runs_to_cairn_dataset_versions() {
    let e = Env::new();
    std::fs::write(e.proj.join("rows.csv"), "a,b\n1,2\n").unwrap();
    e.ok(&["data", "add", "rows.csv"]);
    let server = TestServer::start_in(bin(), &e.home, None, &[]);
    cairn_test::run_interop_script(
        "the_mlflow_client_links_runs_to_cairn_dataset_versions",
        "lineage_client_test.py",
        &server.url,
    );
}

/// `cairn validate` on the bytes of a dataset version records the result against it (shown by
/// `cairn lineage --dataset`); on changed bytes it records nothing and says why.
#[test]
fn validation_results_are_recorded_against_the_dataset_version() {
    let e = Env::new();
    std::fs::create_dir_all(e.proj.join("tables")).unwrap();
    std::fs::write(e.proj.join("tables/people.csv"), "a,b\n1,x\n2,y\n").unwrap();
    std::fs::write(e.proj.join("tables/other.csv"), "a\n5\n").unwrap();
    std::fs::write(
        e.proj.join("suite.yaml"),
        "name: people-suite\nexpectations:\n  - expect_column_values_to_not_be_null: {column: a}\n  - expect_column_max_to_be_between: {column: a, max_value: 1}\n",
    )
    .unwrap();
    e.ok(&["data", "add", "tables"]);
    let out = e.run(&["validate", "--suite", "suite.yaml", "tables/people.csv"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("recorded against dataset version tables@1"),
        "{text}"
    );
    let lineage = e.ok(&["lineage", "--dataset", "tables@1"]);
    assert!(
        lineage.contains(
            "validated people.csv against suite people-suite: FAILED (1 of 2 expectations met)"
        ),
        "{lineage}"
    );
    let json: Value =
        serde_json::from_str(&e.ok(&["lineage", "--dataset", "tables@1", "--json"])).unwrap();
    let recorded = &json["validations"][0];
    assert_eq!(
        recorded["result"]["statistics"]["evaluated_expectations"],
        2
    );
    assert_eq!(
        recorded["result"]["results"][1]["result"]["observed_value"],
        2
    );

    std::fs::write(e.proj.join("tables/other.csv"), "a\n6\n").unwrap();
    let out = e.run(&["validate", "--suite", "suite.yaml", "tables/people.csv"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not recorded against dataset version tables@1"),
        "{err}"
    );
    let json: Value =
        serde_json::from_str(&e.ok(&["lineage", "--dataset", "tables@1", "--json"])).unwrap();
    assert_eq!(json["validations"].as_array().unwrap().len(), 1);
}
