//! scikit-learn models exported with skl2onnx and logged with `mlflow.onnx.log_model`,
//! registered in and served by `cairn server`, checked against scikit-learn's own predictions
//! and driven by the real `tritonclient[http]` (tests/interop/serving_client_test.py).
//! Needs CAIRN_TEST_PYTHON (a Python with tests/interop/requirements.txt); skipped loudly without.
#![allow(clippy::unwrap_used)]

use cairn_test::{skip, TestServer, PYTHON_ENV};
use std::path::Path;
use std::process::Command;

#[test]
fn sklearn_models_and_tritonclient_against_cairn_server() {
    let test = "sklearn_models_and_tritonclient_against_cairn_server";
    let Ok(python) = std::env::var(PYTHON_ENV) else {
        skip(
            test,
            &format!("{PYTHON_ENV} is not set (a Python with mlflow, skl2onnx and tritonclient)"),
        );
        return;
    };
    let server = TestServer::start(Path::new(env!("CARGO_BIN_EXE_cairn")), None);
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/serving_client_test.py");
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
        "serving client script failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("\"ok\": true"), "{stdout}");
}
