//! scikit-learn models exported with skl2onnx and logged with `mlflow.onnx.log_model`,
//! registered in and served by `cairn server`, checked against scikit-learn's own predictions
//! and driven by the real `tritonclient[http]` (tests/interop/serving_client_test.py).
//! Needs CAIRN_TEST_PYTHON (a Python with tests/interop/requirements.txt); skipped loudly without.

use cairn_test::{run_interop_script, TestServer};
use std::path::Path;

#[test]
fn sklearn_models_and_tritonclient_against_cairn_server() {
    let test = "sklearn_models_and_tritonclient_against_cairn_server";
    let server = TestServer::start(Path::new(env!("CARGO_BIN_EXE_cairn")), None);
    run_interop_script(test, "serving_client_test.py", &server.url);
}
