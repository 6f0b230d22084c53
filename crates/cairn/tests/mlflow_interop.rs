//! The real `mlflow` Python client (pinned in .ci/run) against `cairn server`, on SQLite and on
//! PostgreSQL. Needs CAIRN_TEST_PYTHON (a Python with mlflow installed); skipped loudly without.
#![allow(clippy::unwrap_used)]

use cairn_test::{run_interop_script, PgDatabase, TestServer};
use std::path::Path;

fn run_client_script(test: &str, backend: Option<&str>) {
    let server = TestServer::start(Path::new(env!("CARGO_BIN_EXE_cairn")), backend);
    run_interop_script(test, "mlflow_client_test.py", &server.url);
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

/// The same requests to Cairn and to a real `mlflow server` 3.17.2 (started by the script):
/// status, error code and class, fixed messages and the JSON shape must agree, except where
/// the script names a case Cairn refuses on purpose.
#[test]
fn answers_match_mlflow_server() {
    let server = TestServer::start(Path::new(env!("CARGO_BIN_EXE_cairn")), None);
    run_interop_script("answers_match_mlflow_server", "parity.py", &server.url);
}

/// MLflow 3 tracing through the real client: spans through the OTLP endpoint, search,
/// run links, assessments, deletion.
#[test]
fn tracing_client_against_sqlite() {
    let server = TestServer::start(Path::new(env!("CARGO_BIN_EXE_cairn")), None);
    run_interop_script(
        "tracing_client_against_sqlite",
        "tracing_client_test.py",
        &server.url,
    );
}

#[test]
fn tracing_client_against_postgres() {
    if let Some(db) = PgDatabase::create("tracing_client_against_postgres") {
        let server = TestServer::start(Path::new(env!("CARGO_BIN_EXE_cairn")), Some(&db.url));
        run_interop_script(
            "tracing_client_against_postgres",
            "tracing_client_test.py",
            &server.url,
        );
    }
}
