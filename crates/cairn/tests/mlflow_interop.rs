//! The real `mlflow` Python client (pinned in .ci/run) against `cairn server`, on SQLite and on
//! PostgreSQL. Needs CAIRN_TEST_PYTHON (a Python with mlflow installed); skipped loudly without.
#![allow(clippy::unwrap_used)]

use cairn_test::{skip, PgDatabase, TestServer, PYTHON_ENV};
use std::path::Path;
use std::process::Command;

fn run_client_script(test: &str, backend: Option<&str>) {
    let Ok(python) = std::env::var(PYTHON_ENV) else {
        skip(
            test,
            &format!("{PYTHON_ENV} is not set (a Python with the pinned mlflow client)"),
        );
        return;
    };
    let server = TestServer::start(Path::new(env!("CARGO_BIN_EXE_cairn")), backend);
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/mlflow_client_test.py");
    let out = Command::new(python)
        .arg(&script)
        .env("MLFLOW_TRACKING_URI", &server.url)
        .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        .env("PYTHONWARNINGS", "ignore")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "mlflow client script failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("\"ok\": true"), "{stdout}");
}

#[test]
fn mlflow_client_against_sqlite() {
    run_client_script("mlflow_client_against_sqlite", None);
}

#[test]
fn mlflow_client_against_postgres() {
    if let Some(db) = PgDatabase::create("mlflow_client_against_postgres") {
        run_client_script("mlflow_client_against_postgres", Some(&db.url));
    }
}
