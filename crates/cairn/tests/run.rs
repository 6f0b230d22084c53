//! `cairn run` and `cairn rerun` wrapping a real Python script that uses the real MLflow client,
//! and a real notebook through papermill: everything the run records, checked on the server.
#![allow(clippy::unwrap_used)]
use cairn_test::{run_metric as metric, run_param as param, run_tag as tag, TestServer};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_cairn"))
}

fn python(test: &str) -> Option<PathBuf> {
    match std::env::var_os("CAIRN_TEST_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            cairn_test::skip(test, "CAIRN_TEST_PYTHON (a Python with mlflow) is not set");
            None
        }
    }
}

/// A training script: reads the versioned data, uses more than 150 MB, writes to both streams,
/// logs through the MLflow client into the run it was handed, exits with $TRAIN_EXIT.
const TRAIN_PY: &str = r#"
import csv, os, sys
import mlflow

alpha = float(sys.argv[1]) if len(sys.argv) > 1 else 0.5
with open("data/train.csv") as f:
    rows = list(csv.DictReader(f))
mean = sum(float(r["y"]) for r in rows) / len(rows)
ballast = bytearray(160 * 1024 * 1024)
for i in range(0, len(ballast), 4096):
    ballast[i] = 1
print(f"training with alpha {alpha} on {len(rows)} rows", flush=True)
print("a warning on stderr", file=sys.stderr, flush=True)
handed = os.environ["MLFLOW_RUN_ID"]  # start_run() removes it from the environment
with mlflow.start_run() as run:
    assert run.info.run_id == handed, "not the run cairn created"
    mlflow.log_param("alpha", alpha)
    mlflow.log_metric("mean_y", mean)
    mlflow.log_metric("score", mean * alpha)
sys.exit(int(os.environ.get("TRAIN_EXIT", "0")))
"#;

struct Project {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    dir: PathBuf,
}

impl Project {
    /// A git repository with the script committed, and `data/` versioned as `train-data`.
    fn new() -> Project {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        let dir = tmp.path().join("proj");
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("train.py"), TRAIN_PY).unwrap();
        std::fs::write(dir.join("data/train.csv"), "x,y\n1,1\n2,2\n3,6\n").unwrap();
        let p = Project {
            _tmp: tmp,
            home,
            dir,
        };
        p.git(&["init", "-q"]);
        p.git(&["add", "train.py"]);
        p.git(&["commit", "-q", "-m", "script"]);
        p.cairn_ok(&["data", "add", "data", "--name", "train-data"], &[]);
        p
    }

    fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    fn cairn(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = Command::new(bin());
        c.args(args)
            .current_dir(&self.dir)
            .env("CAIRN_HOME", &self.home)
            .env("CAIRN_LOG", "warn")
            .env_remove("MLFLOW_TRACKING_URI")
            .env_remove("MLFLOW_RUN_ID")
            .env_remove("MLFLOW_EXPERIMENT_NAME");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    fn cairn_ok(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = self.cairn(args, env);
        assert!(
            out.status.success(),
            "cairn {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// The run id `cairn run` reported on stderr.
fn recorded_run(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("cairn run: recorded run "))
        .or_else(|| {
            stderr
                .lines()
                .find_map(|l| l.strip_prefix("cairn rerun: recorded run "))
        })
        .map(|rest| rest.split_whitespace().next().unwrap().to_string())
        .unwrap_or_else(|| panic!("no run id in {stderr}"))
}

fn artifact(server: &TestServer, run: &Value, path: &str) -> String {
    let root = run["info"]["artifact_uri"]
        .as_str()
        .unwrap()
        .trim_start_matches("mlflow-artifacts:")
        .trim_start_matches('/')
        .to_string();
    let (status, body) = server.http().get_bytes(&format!(
        "/api/2.0/mlflow-artifacts/artifacts/{root}/{path}"
    ));
    assert_eq!(status, 200, "artifact {path}");
    String::from_utf8(body).unwrap()
}

fn get_run(server: &TestServer, run_id: &str) -> Value {
    let reply = server
        .http()
        .get(&format!("/api/2.0/mlflow/runs/get?run_id={run_id}"));
    assert_eq!(reply.0, 200, "{}", reply.1);
    reply.1["run"].clone()
}

#[test]
fn a_wrapped_script_is_recorded_and_rerun_on_its_dataset_version() {
    let Some(python) = python("a_wrapped_script_is_recorded_and_rerun_on_its_dataset_version")
    else {
        return;
    };
    let py = python.to_str().unwrap();
    let p = Project::new();
    let commit = p.git(&["rev-parse", "HEAD"]);

    let out = p.cairn(&["run", "-e", "wrapped", "--", py, "train.py", "0.5"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The command's output is shown live as well as recorded.
    assert!(
        stdout.contains("training with alpha 0.5 on 3 rows"),
        "{stdout}"
    );
    let run_id = recorded_run(&out);

    let server = TestServer::start_in(bin(), &p.home, None, &[]);
    let run = get_run(&server, &run_id);
    assert_eq!(run["info"]["status"], "FINISHED");
    let experiment = server
        .http()
        .get("/api/2.0/mlflow/experiments/get-by-name?experiment_name=wrapped");
    assert_eq!(
        run["info"]["experiment_id"],
        experiment.1["experiment"]["experiment_id"]
    );
    // What the script logged itself landed in the run Cairn made.
    assert_eq!(param(&run, "alpha").as_deref(), Some("0.5"));
    assert_eq!(metric(&run, "mean_y"), Some(3.0));
    assert_eq!(metric(&run, "score"), Some(1.5));
    // What Cairn recorded around it.
    assert_eq!(tag(&run, "mlflow.source.name").as_deref(), Some("train.py"));
    assert_eq!(tag(&run, "mlflow.source.type").as_deref(), Some("LOCAL"));
    assert_eq!(tag(&run, "mlflow.source.git.commit"), Some(commit.clone()));
    assert_eq!(tag(&run, "cairn.git.dirty").as_deref(), Some("false"));
    assert_eq!(
        tag(&run, "cairn.run.command"),
        Some(format!("{py} train.py 0.5"))
    );
    assert_eq!(tag(&run, "cairn.run.exit_code").as_deref(), Some("0"));
    assert!(tag(&run, "cairn.python.version").unwrap().starts_with("3."));
    let wall = metric(&run, "system/wall_time_seconds").unwrap();
    assert!(wall > 0.0 && wall < 600.0, "wall time {wall}");
    let peak = metric(&run, "system/peak_memory_megabytes").unwrap();
    assert!((160.0..2000.0).contains(&peak), "peak memory {peak} MB");
    assert!(artifact(&server, &run, "logs/stdout.txt").contains("training with alpha 0.5"));
    assert!(artifact(&server, &run, "logs/stderr.txt").contains("a warning on stderr"));
    let packages = artifact(&server, &run, "cairn/requirements.txt");
    assert!(
        packages.lines().any(|l| l == "mlflow==3.17.2"),
        "{packages}"
    );
    // The dataset version in the project is the run's input, so lineage reaches it.
    let inputs = run["inputs"]["dataset_inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 1, "{inputs:?}");
    assert_eq!(inputs[0]["dataset"]["name"], "train-data");
    assert!(inputs[0]["dataset"]["source"]
        .as_str()
        .unwrap()
        .contains("cairn://train-data@1"));
    drop(server);

    // The data moves on to a new version; the rerun checks out the one the run used.
    std::fs::write(p.dir.join("data/train.csv"), "x,y\n1,10\n2,20\n").unwrap();
    p.cairn_ok(&["data", "add", "data"], &[]);
    let out = p.cairn(&["rerun", &run_id], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("checked out train-data@1"), "{stderr}");
    assert!(
        stdout.contains("training with alpha 0.5 on 3 rows"),
        "{stdout}"
    );
    let line = |key: &str| {
        stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .unwrap_or_else(|| panic!("no {key} row in {stdout}"))
            .to_string()
    };
    assert!(line("mean_y").ends_with("+0.000000"), "{stdout}");
    assert!(line("score").ends_with("+0.000000"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(p.dir.join("data/train.csv")).unwrap(),
        "x,y\n1,1\n2,2\n3,6\n"
    );
    let rerun_id = recorded_run(&out);
    assert_ne!(rerun_id, run_id);
    let server = TestServer::start_in(bin(), &p.home, None, &[]);
    let rerun = get_run(&server, &rerun_id);
    assert_eq!(tag(&rerun, "cairn.rerun_of"), Some(run_id.clone()));
    assert_eq!(rerun["info"]["experiment_id"], run["info"]["experiment_id"]);
    assert_eq!(metric(&rerun, "mean_y"), Some(3.0));
    drop(server);

    // A failing command fails the run, and its exit code is cairn's.
    let out = p.cairn(&["run", "--", py, "train.py"], &[("TRAIN_EXIT", "3")]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let failed_id = recorded_run(&out);
    let server = TestServer::start_in(bin(), &p.home, None, &[]);
    let failed = get_run(&server, &failed_id);
    assert_eq!(failed["info"]["status"], "FAILED");
    assert_eq!(failed["info"]["experiment_id"], "0");
    assert_eq!(tag(&failed, "cairn.run.exit_code").as_deref(), Some("3"));
}

#[test]
fn a_run_on_a_named_server_and_bad_commands() {
    let Some(python) = python("a_run_on_a_named_server_and_bad_commands") else {
        return;
    };
    let p = Project::new();
    let server = TestServer::start_in(bin(), &p.home, None, &[]);
    let before = server
        .http()
        .post("runs/search", &json!({"experiment_ids": ["0"]}));
    assert_eq!(before.1["runs"].as_array().map_or(0, Vec::len), 0);
    // MLFLOW_TRACKING_URI names the server, as for the MLflow client.
    let out = p.cairn(
        &[
            "run",
            "--run-name",
            "named",
            "--",
            python.to_str().unwrap(),
            "train.py",
            "2",
        ],
        &[("MLFLOW_TRACKING_URI", &server.url)],
    );
    assert!(out.status.success(), "{out:?}");
    let run = get_run(&server, &recorded_run(&out));
    assert_eq!(run["info"]["run_name"], "named");
    assert_eq!(metric(&run, "score"), Some(6.0));

    // A command that does not exist and a notebook without papermill: clear errors, no run.
    let out = p.cairn(
        &["run", "--", "no-such-command-here"],
        &[("MLFLOW_TRACKING_URI", &server.url)],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("command not found: no-such-command-here"),
        "{out:?}"
    );
    std::fs::write(p.dir.join("nb.ipynb"), notebook()).unwrap();
    let out = p.cairn(
        &["run", "nb.ipynb", "-p", "alpha", "1"],
        &[
            ("MLFLOW_TRACKING_URI", &server.url),
            ("PATH", "/usr/bin:/bin"),
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs papermill"),
        "{out:?}"
    );
    let after = server
        .http()
        .post("runs/search", &json!({"experiment_ids": ["0"]}));
    assert_eq!(after.1["runs"].as_array().map_or(0, Vec::len), 1);

    // SIGTERM to cairn reaches the command; the run ends KILLED and cairn exits as it did.
    let mut running = Command::new(bin())
        .args(["run", "-e", "stopped", "--", "sleep", "120"])
        .current_dir(&p.dir)
        .env("CAIRN_HOME", &p.home)
        .env("MLFLOW_TRACKING_URI", &server.url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let stopped_run = loop {
        let experiment = server
            .http()
            .get("/api/2.0/mlflow/experiments/get-by-name?experiment_name=stopped");
        if let Some(id) = experiment.1["experiment"]["experiment_id"].as_str() {
            let runs = server
                .http()
                .post("runs/search", &json!({"experiment_ids": [id]}));
            // The run exists before the command starts; the record artifact is uploaded just
            // before it, so give the spawn a moment once the run shows.
            if let Some(run) = runs.1["runs"].as_array().and_then(|r| r.first()) {
                if run["data"]["tags"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t["key"] == "cairn.run.command"))
                {
                    break run["info"]["run_id"].as_str().unwrap().to_string();
                }
            }
        }
        assert!(std::time::Instant::now() < deadline, "the run never showed");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    // Wait for the command itself to be running under cairn.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let has_child = |pid: u32| {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|tasks| {
                tasks.flatten().any(|t| {
                    std::fs::read_to_string(t.path().join("children"))
                        .is_ok_and(|c| !c.trim().is_empty())
                })
            })
            .unwrap_or(false)
    };
    while !has_child(running.id()) {
        assert!(std::time::Instant::now() < deadline, "sleep never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let killed = Command::new("kill")
        .args(["-TERM", &running.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = running.wait().unwrap();
    assert_eq!(status.code(), Some(128 + 15), "{status:?}");
    let run = get_run(&server, &stopped_run);
    assert_eq!(run["info"]["status"], "KILLED");
    assert_eq!(tag(&run, "cairn.run.exit_code").as_deref(), Some("143"));
}

/// A notebook with a `parameters` cell, logging through the MLflow client.
fn notebook() -> String {
    let code = |tags: Value, source: &str| {
        json!({"cell_type": "code", "execution_count": null, "metadata": {"tags": tags},
               "outputs": [], "source": source})
    };
    json!({
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                     "language_info": {"name": "python"}},
        "cells": [
            code(json!(["parameters"]), "alpha = 0.1\nlabel = 'default'"),
            code(json!([]), "import mlflow\nwith mlflow.start_run():\n    mlflow.log_metric('double', alpha * 2)\nprint('notebook label', label)"),
        ]
    })
    .to_string()
}

#[test]
fn a_notebook_runs_through_papermill_with_its_parameters_recorded() {
    let Some(python) = python("a_notebook_runs_through_papermill_with_its_parameters_recorded")
    else {
        return;
    };
    let p = Project::new();
    std::fs::write(p.dir.join("analysis.ipynb"), notebook()).unwrap();
    let venv_bin = python.parent().unwrap();
    let path = format!(
        "{}:{}",
        venv_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = p.cairn(
        &[
            "run",
            "-e",
            "notebooks",
            "analysis.ipynb",
            "-p",
            "alpha",
            "0.25",
            "-p",
            "label",
            "tuned",
        ],
        &[("PATH", &path)],
    );
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let server = TestServer::start_in(bin(), &p.home, None, &[]);
    let run = get_run(&server, &recorded_run(&out));
    assert_eq!(run["info"]["status"], "FINISHED");
    assert_eq!(metric(&run, "double"), Some(0.5));
    assert_eq!(param(&run, "alpha").as_deref(), Some("0.25"));
    assert_eq!(param(&run, "label").as_deref(), Some("tuned"));
    assert_eq!(tag(&run, "mlflow.source.type").as_deref(), Some("NOTEBOOK"));
    assert_eq!(
        tag(&run, "mlflow.source.name").as_deref(),
        Some("analysis.ipynb")
    );
    let executed: Value =
        serde_json::from_str(&artifact(&server, &run, "notebook/analysis.ipynb")).unwrap();
    assert_eq!(
        executed["metadata"]["papermill"]["parameters"]["alpha"],
        0.25
    );
    assert!(executed.to_string().contains("notebook label tuned"));
    let packages = artifact(&server, &run, "cairn/requirements.txt");
    assert!(
        packages.lines().any(|l| l == "papermill==2.7.0"),
        "{packages}"
    );
}
