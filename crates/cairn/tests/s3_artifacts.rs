//! `cairn server --artifacts-destination s3://...` against a real S3-compatible server (moto's,
//! started by `.ci/run` at `AWS_ENDPOINT_URL` with the bucket of `CAIRN_TEST_S3_URL`), driven
//! by the real MLflow client (tests/interop/s3_artifacts_client_test.py): artifacts and an ONNX
//! model logged through the proxy land in the bucket, come back byte-identical, and the
//! registered model is served from there.

#![allow(clippy::unwrap_used)]

use cairn_test::{run_interop_script_with, skip, TestServer};
use std::path::Path;

#[test]
fn the_mlflow_client_logs_to_a_bucket_through_the_proxy_and_models_serve_from_it() {
    let test = "the_mlflow_client_logs_to_a_bucket_through_the_proxy_and_models_serve_from_it";
    let Ok(base) = std::env::var("CAIRN_TEST_S3_URL") else {
        skip(
            test,
            "set CAIRN_TEST_S3_URL (s3://bucket/prefix) and AWS_ENDPOINT_URL; .ci/run starts moto's server",
        );
        return;
    };
    let bucket_url = format!(
        "{}/server-artifacts-{}",
        base.trim_end_matches('/'),
        std::process::id()
    );
    let home = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(
        Path::new(env!("CARGO_BIN_EXE_cairn")),
        home.path(),
        None,
        &["--artifacts-destination", &bucket_url],
    );
    run_interop_script_with(
        test,
        "s3_artifacts_client_test.py",
        &server.url,
        &[("CAIRN_BUCKET_URL", &bucket_url)],
    );
    // Nothing went to a local folder instead.
    assert!(!home.path().join("artifacts").exists());
    assert!(!home.path().join("s3:").exists());
}
