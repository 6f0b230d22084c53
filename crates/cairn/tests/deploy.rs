//! The deployment files under `deploy/`: validated offline with Kubernetes' own schemas
//! (tests/interop/deploy_check.py, kubernetes-validate), and their container commands run
//! here as written: the KServe runtime's `cairn serve` on a model folder like `/mnt/models`,
//! and the Deployment's `cairn server` on PostgreSQL and a bucket with its admin password.
#![allow(clippy::unwrap_used)]

use cairn_test::{skip, PgDatabase, TestServer};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_cairn"))
}

fn root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The checked container args of the server and the runtime.
fn checked(test: &str) -> Option<Value> {
    let Ok(python) = std::env::var(cairn_test::PYTHON_ENV) else {
        skip(test, "CAIRN_TEST_PYTHON is not set");
        return None;
    };
    let script = root().join("tests/interop/deploy_check.py");
    let root = root();
    Some(cairn_test::python_json(
        &python,
        &[script.as_os_str(), root.as_os_str()],
        &[],
    ))
}

fn args_of(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_kserve_runtime_serves_a_model_folder_as_written() {
    let Some(checked) = checked("the_kserve_runtime_serves_a_model_folder_as_written") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("mnt-models");
    std::fs::create_dir_all(&models).unwrap();
    std::fs::write(
        models.join("model.onnx"),
        cairn_serving::build::logistic_regression_onnx(&[1.0, -1.0, 0.5, 0.0], 0.1),
    )
    .unwrap();
    std::fs::write(models.join("MLmodel"), "flavors: {onnx: {}}\n").unwrap();
    let args: Vec<String> = args_of(&checked["runtime_args"])
        .into_iter()
        .map(|a| match a.as_str() {
            "/mnt/models" => models.to_str().unwrap().to_owned(),
            "--port=8080" => "--port=0".to_owned(),
            _ => a.replace("{{.Name}}", "churn").replace(
                "/tmp/cairn-monitoring",
                tmp.path().join("log").to_str().unwrap(),
            ),
        })
        .collect();
    let mut cmd = Command::new(bin());
    cmd.args(&args).env("CAIRN_HOME", tmp.path().join("home"));
    let server = TestServer::spawn(cmd, tmp.path());
    let http = server.http();
    let ready = checked["runtime_ready"].as_str().unwrap();
    assert_eq!(http.get(ready).0, 200);
    let (status, meta) = http.get("/v2/models/churn");
    assert_eq!(status, 200, "{meta}");
    let (status, answer) = http.post_json(
        "/v2/models/churn/infer",
        &json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4], "data": [1, 0, 0, 0, 0, 1, 0, 0]}]}),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["model_name"], "churn");
}

#[test]
fn the_server_deployment_runs_on_a_database_and_a_bucket_as_written() {
    let test = "the_server_deployment_runs_on_a_database_and_a_bucket_as_written";
    let Some(checked) = checked(test) else {
        return;
    };
    let Ok(bucket) = std::env::var("CAIRN_TEST_S3_URL") else {
        skip(test, "CAIRN_TEST_S3_URL is not set (.ci/run starts moto)");
        return;
    };
    let Some(db) = PgDatabase::create(test) else {
        return;
    };
    cairn_test::tally("postgresql");
    let ours = format!(
        "{}/deploy-{}",
        bucket.trim_end_matches('/'),
        std::process::id()
    );
    let args: Vec<String> = args_of(&checked["server_args"])
        .into_iter()
        .map(|a| match a.as_str() {
            "--port=5000" => "--port=0".to_owned(),
            _ => a.replace("s3://my-team-bucket/cairn", &ours),
        })
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin());
    cmd.args(&args)
        .env("CAIRN_HOME", tmp.path())
        .env("CAIRN_BACKEND_STORE_URI", &db.url)
        .env("CAIRN_ADMIN_PASSWORD", "deploy-secret-1")
        .env("CAIRN_LOG", "warn");
    let server = TestServer::spawn(cmd, tmp.path());
    let anonymous = server.http();
    assert_eq!(anonymous.get("/health").0, 200);
    assert_eq!(
        anonymous
            .get("/api/2.0/mlflow/experiments/search?max_results=5")
            .0,
        401
    );
    let admin = anonymous.basic("admin", "deploy-secret-1");
    let (status, created) = admin.post("experiments/create", &json!({"name": "deployed"}));
    assert_eq!(status, 200, "{created}");
    // An artifact through the proxy lands in the bucket the Deployment names.
    let id = created["experiment_id"].as_str().unwrap();
    let (status, run) = admin.post("runs/create", &json!({"experiment_id": id}));
    assert_eq!(status, 200, "{run}");
    let run_id = run["run"]["info"]["run_id"].as_str().unwrap();
    let path = format!("/api/2.0/mlflow-artifacts/artifacts/{id}/{run_id}/artifacts/note.txt");
    assert_eq!(admin.put(&path, b"in the bucket").0, 200);
    let (status, bytes) = admin.get_bytes(&path);
    assert_eq!((status, bytes.as_slice()), (200, &b"in the bucket"[..]));
    assert!(!tmp.path().join("artifacts").exists());
}
