//! `cairn serve FILE`: the Open Inference Protocol over REST with JSON tensors.
#![allow(clippy::unwrap_used)]

use cairn_test::onnx::{tiny_mlp_onnx, tiny_mlp_reference};
use cairn_test::TestServer;
use serde_json::{json, Value};
use std::process::Command;

fn serve() -> (TestServer, tempfile::TempDir) {
    serve_with(&[])
}

/// `cairn serve mlp.onnx --port 0` plus `extra` flags, on a temporary folder.
fn serve_with(extra: &[&str]) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mlp.onnx");
    std::fs::write(&file, tiny_mlp_onnx()).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.arg("serve")
        .arg(&file)
        .args(["--port", "0"])
        .args(extra)
        .env("CAIRN_HOME", dir.path().join("home"))
        .env("CAIRN_LOG", "warn");
    (TestServer::spawn(cmd, dir.path()), dir)
}

fn post(server: &TestServer, path: &str, body: &Value) -> (u16, Value) {
    server.http().post_json(path, body)
}

fn ureq_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
}

#[test]
fn health_and_metadata() {
    let (server, _dir) = serve();
    let http = server.http();
    assert_eq!(http.get("/v2/health/live"), (200, json!({"live": true})));
    assert_eq!(http.get("/v2/health/ready"), (200, json!({"ready": true})));
    assert_eq!(http.get("/v2").1["name"], "cairn");
    let (status, meta) = http.get("/v2/models/mlp");
    assert_eq!(status, 200);
    assert_eq!(meta["versions"], json!(["1"]));
    assert_eq!(
        meta["inputs"],
        json!([{"name": "x", "datatype": "FP32", "shape": [-1, 3]}, {"name": "offset", "datatype": "FP32", "shape": [-1, 2]}])
    );
    assert_eq!(meta["outputs"][0]["name"], "scores");
    assert_eq!(http.get("/v2/models/mlp/versions/1").0, 200);
    assert_eq!(
        http.get("/v2/models/mlp/ready").1,
        json!({"name": "mlp", "ready": true})
    );
    let (status, err) = http.get("/v2/models/nope");
    assert_eq!(status, 404);
    assert!(err["error"].as_str().unwrap().contains("nope"));
    assert_eq!(http.get("/v2/models/mlp/versions/9/ready").0, 404);
}

#[test]
fn infer_matches_the_reference_and_selects_outputs() {
    let (server, _dir) = serve();
    let x = [0.5f32, -1.0, 2.0, 1.5, 0.25, -0.75];
    let offset = [0.1f32, 0.2, -0.3, 0.4];
    let body = json!({
        "id": "req-7",
        "inputs": [
            {"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]]},
            {"name": "offset", "shape": [2, 2], "datatype": "FP32", "data": offset},
        ],
    });
    let (status, answer) = post(&server, "/v2/models/mlp/infer", &body);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (
            answer["model_name"].as_str(),
            answer["model_version"].as_str(),
            answer["id"].as_str()
        ),
        (Some("mlp"), Some("1"), Some("req-7"))
    );
    let (scores, hidden) = tiny_mlp_reference(&x, &offset);
    let out = answer["outputs"].as_array().unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(
        (out[0]["name"].as_str(), out[0]["datatype"].as_str()),
        (Some("scores"), Some("FP32"))
    );
    assert_eq!(out[0]["shape"], json!([2, 2]));
    let got: Vec<f32> = out[0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert!(
        got.iter().zip(&scores).all(|(g, w)| (g - w).abs() < 1e-5),
        "{got:?} vs {scores:?}"
    );
    assert_eq!(out[1]["shape"], json!([2, 4]));
    assert_eq!(out[1]["data"].as_array().unwrap().len(), hidden.len());

    let mut only_hidden = body.clone();
    only_hidden["outputs"] = json!([{"name": "hidden"}]);
    let (status, answer) = post(&server, "/v2/models/mlp/versions/1/infer", &only_hidden);
    assert_eq!(status, 200);
    let names: Vec<&str> = answer["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["hidden"]);
}

#[test]
fn bad_requests_get_400_naming_the_problem() {
    let (server, _dir) = serve();
    let input = |name: &str, shape: Value, datatype: &str, data: Value| json!({"name": name, "shape": shape, "datatype": datatype, "data": data});
    let offset = input("offset", json!([1, 2]), "FP32", json!([0, 0]));
    for (body, expect) in [
        (
            json!({"inputs": [input("x", json!([1, 3]), "FP32", json!([1, 2]))]}),
            "2 input(s)",
        ),
        (
            json!({"inputs": [input("x", json!([1, 4]), "FP32", json!([1, 2, 3, 4])), offset.clone()]}),
            "shape",
        ),
        (
            json!({"inputs": [input("x", json!([1, 3]), "FP32", json!([1, "a", 3])), offset.clone()]}),
            "'x' value 1",
        ),
        (
            json!({"inputs": [input("x", json!([1, 3]), "INT64", json!([1, 2, 3])), offset.clone()]}),
            "FP32",
        ),
        (
            json!({"inputs": [input("x", json!([1, 3]), "FP16", json!([1, 2, 3])), offset.clone()]}),
            "FP16",
        ),
        (
            json!({"inputs": [input("x", json!([1, 3]), "FP32", json!([1, 2, 3])), offset.clone()], "outputs": [{"name": "nope"}]}),
            "no output 'nope'",
        ),
        (json!({"nothing": true}), "inputs"),
    ] {
        let (status, answer) = post(&server, "/v2/models/mlp/infer", &body);
        assert_eq!(status, 400, "{body}: {answer}");
        let msg = answer["error"].as_str().unwrap();
        assert!(msg.contains(expect), "{msg} should mention {expect}");
    }
    let (status, _) = post(&server, "/v2/models/other/infer", &json!({"inputs": []}));
    assert_eq!(status, 404);
    // The server keeps serving.
    let ok = json!({"inputs": [input("x", json!([1, 3]), "FP32", json!([1, 2, 3])), offset]});
    assert_eq!(post(&server, "/v2/models/mlp/infer", &ok).0, 200);
}

#[test]
fn a_model_that_cannot_load_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.onnx");
    std::fs::write(&file, b"not onnx").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("serve")
        .arg(&file)
        .args(["--port", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot serve") && err.contains("broken.onnx"),
        "{err}"
    );
}

/// Registers `tiny_mlp` (or, without a model, a README) as a new version of `name`; returns the
/// version.
fn register_version(http: &cairn_test::Http, name: &str, with_model: bool) -> String {
    let source = if with_model {
        http.run_with_model_file("model.onnx", &tiny_mlp_onnx())
    } else {
        http.run_with_model_file("README.txt", b"no model here")
    };
    let (status, body) = http.post(
        "model-versions/create",
        &json!({"name": name, "source": source}),
    );
    assert_eq!(status, 200, "{body}");
    body["model_version"]["version"]
        .as_str()
        .unwrap()
        .to_string()
}

fn infer_body() -> Value {
    json!({"inputs": [
        {"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1.0, 2.0, 3.0]},
        {"name": "offset", "shape": [1, 2], "datatype": "FP32", "data": [0.0, 0.0]},
    ]})
}

#[test]
fn registered_versions_are_served_by_number_alias_and_latest() {
    let server = TestServer::start(std::path::Path::new(env!("CARGO_BIN_EXE_cairn")), None);
    let http = server.http();
    assert_eq!(
        http.post("registered-models/create", &json!({"name": "mlp"}))
            .0,
        200
    );
    assert_eq!(register_version(&http, "mlp", true), "1");
    assert_eq!(register_version(&http, "mlp", true), "2");
    assert_eq!(register_version(&http, "mlp", false), "3");
    http.post(
        "registered-models/alias",
        &json!({"name": "mlp", "alias": "champion", "version": "1"}),
    );

    let answered_by = |path: &str| {
        let (status, answer) = post(&server, path, &infer_body());
        assert_eq!(status, 200, "{path}: {answer}");
        answer["model_version"].as_str().unwrap().to_string()
    };
    assert_eq!(answered_by("/v2/models/mlp/versions/1/infer"), "1");
    assert_eq!(answered_by("/v2/models/mlp/versions/2/infer"), "2");
    assert_eq!(answered_by("/v2/models/mlp/versions/champion/infer"), "1");
    let (status, meta) = server.http().get("/v2/models/mlp/versions/champion");
    assert_eq!((status, meta["versions"].clone()), (200, json!(["1"])));
    // Version 3 has no ONNX file: refused with a reason, not a crash.
    let (status, answer) = post(&server, "/v2/models/mlp/versions/3/infer", &infer_body());
    assert_eq!(status, 422, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("no .onnx file"));
    assert_eq!(
        post(&server, "/v2/models/mlp/versions/9/infer", &infer_body()).0,
        404
    );
    assert_eq!(post(&server, "/v2/models/nope/infer", &infer_body()).0, 404);
    assert_eq!(
        post(
            &server,
            "/v2/models/mlp/versions/ghost/infer",
            &infer_body()
        )
        .0,
        404
    );
}

#[test]
fn moving_an_alias_under_load_drops_no_request() {
    let server = TestServer::start(std::path::Path::new(env!("CARGO_BIN_EXE_cairn")), None);
    let http = server.http();
    http.post("registered-models/create", &json!({"name": "mlp"}));
    register_version(&http, "mlp", true);
    register_version(&http, "mlp", true);
    http.post(
        "registered-models/alias",
        &json!({"name": "mlp", "alias": "live", "version": "1"}),
    );
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (seen, errors) = std::thread::scope(|s| {
        let clients: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let (mut seen, mut errors) = (Vec::new(), 0);
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let (status, answer) =
                            post(&server, "/v2/models/mlp/versions/live/infer", &infer_body());
                        if status == 200 {
                            seen.push(answer["model_version"].as_str().unwrap().to_string());
                        } else {
                            errors += 1;
                        }
                    }
                    (seen, errors)
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(300));
        let moved = http.post(
            "registered-models/alias",
            &json!({"name": "mlp", "alias": "live", "version": "2"}),
        );
        assert_eq!(moved.0, 200);
        std::thread::sleep(std::time::Duration::from_millis(300));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        clients.into_iter().map(|c| c.join().unwrap()).fold(
            (Vec::new(), 0),
            |(mut all, e), (seen, errors)| {
                all.extend(seen);
                (all, e + errors)
            },
        )
    });
    assert_eq!(errors, 0);
    assert!(
        seen.iter().any(|v| v == "1") && seen.iter().any(|v| v == "2"),
        "answers never switched"
    );
    // Once moved, every later answer comes from the new version.
    assert_eq!(
        post(&server, "/v2/models/mlp/versions/live/infer", &infer_body()).1["model_version"],
        "2"
    );
}

#[test]
fn oversized_infer_bodies_get_413() {
    let (server, _dir) = serve_with(&["--max-request-bytes", "2000"]);
    let rows = 200;
    let body = json!({"inputs": [
        {"name": "x", "shape": [rows, 3], "datatype": "FP32", "data": vec![1.5; rows * 3]},
        {"name": "offset", "shape": [rows, 2], "datatype": "FP32", "data": vec![0.0; rows * 2]},
    ]});
    let (status, answer) = post(&server, "/v2/models/mlp/infer", &body);
    assert_eq!(status, 413, "{answer}");
    assert_eq!(post(&server, "/v2/models/mlp/infer", &infer_body()).0, 200);
}

fn mlp_inputs(rows: &[[f32; 3]], offsets: &[[f32; 2]]) -> Value {
    json!({"inputs": [
        {"name": "x", "shape": [rows.len(), 3], "datatype": "FP32", "data": rows},
        {"name": "offset", "shape": [offsets.len(), 2], "datatype": "FP32", "data": offsets},
    ]})
}

fn scores_of(answer: &Value) -> Vec<f32> {
    answer["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn mlflow_scoring_protocol() {
    let (server, _dir) = serve();
    let http = server.http();
    assert_eq!(http.get_bytes("/ping").0, 200);
    assert_eq!(http.get_bytes("/health").0, 200);
    // As MLflow's scoring server: the MLflow release whose protocol it speaks.
    assert_eq!(http.get_bytes("/version").1, b"3.17.2");
    let x = [[0.5f32, -1.0, 2.0], [1.5, 0.25, -0.75]];
    let offset = [[0.1f32, 0.2], [-0.3, 0.4]];
    let (scores, _) = tiny_mlp_reference(x.as_flattened(), offset.as_flattened());
    // Named tensors: one entry per output, nested as the tensor.
    let (status, answer) = post(
        &server,
        "/invocations",
        &json!({"inputs": {"x": x, "offset": offset}}),
    );
    assert_eq!(status, 200, "{answer}");
    let got: Vec<f32> = answer["predictions"]["scores"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
        })
        .collect();
    assert!(got.iter().zip(&scores).all(|(g, w)| (g - w).abs() < 1e-5));
    assert_eq!(answer["predictions"]["hidden"].as_array().unwrap().len(), 2);
    // Records of tensors ("instances"): the same numbers.
    let (status, answer) = post(
        &server,
        "/invocations",
        &json!({"instances": [{"x": x[0], "offset": offset[0]}, {"x": x[1], "offset": offset[1]}]}),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["predictions"]["scores"][1].as_array().unwrap().len(),
        2
    );
    // Bad bodies: MLflow-style errors naming the problem.
    let (status, err) = post(&server, "/invocations", &json!({"rows": []}));
    assert_eq!(status, 400);
    assert_eq!(err["error_code"], "BAD_REQUEST");
    assert!(err["message"].as_str().unwrap().contains("dataframe_split"));
    let (status, err) = post(
        &server,
        "/invocations",
        &json!({"inputs": {"x": x, "offset": offset, "extra": [1]}}),
    );
    assert_eq!(status, 400);
    assert!(err["message"].as_str().unwrap().contains("extra"), "{err}");
    let (status, err) = post(
        &server,
        "/invocations",
        &json!({"dataframe_split": {"columns": ["x", "offset"], "data": [[1.0, 2.0]]}}),
    );
    assert_eq!(status, 400, "{err}");
    // Metrics saw them, by model version.
    let (status, text) = http.get_bytes("/metrics");
    assert_eq!(status, 200);
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("cairn_inference_requests_total{model=\"mlp\",version=\"1\"} 5"),
        "{text}"
    );
    assert!(
        text.contains("cairn_inference_errors_total{model=\"mlp\",version=\"1\",code=\"400\"} 3"),
        "{text}"
    );
    assert!(text.contains("cairn_inference_duration_seconds_count{model=\"mlp\",version=\"1\"} 5"));
}

#[test]
fn dynamic_batching_answers_every_request_with_its_own_rows() {
    let (server, _dir) = serve_with(&["--max-batch-size", "32", "--max-batch-delay-ms", "20"]);
    let threads: Vec<_> = (0..12)
        .map(|i| {
            let url = server.url.clone();
            std::thread::spawn(move || {
                let rows = 1 + i % 3;
                let x: Vec<[f32; 3]> = (0..rows)
                    .map(|r| [i as f32, r as f32 * 0.5, -1.0])
                    .collect();
                let offset: Vec<[f32; 2]> = (0..rows).map(|r| [r as f32, i as f32 * 0.1]).collect();
                let mut resp = ureq_agent()
                    .post(&format!("{url}/v2/models/mlp/infer"))
                    .send(mlp_inputs(&x, &offset).to_string().as_bytes())
                    .unwrap();
                assert_eq!(resp.status().as_u16(), 200);
                let answer: Value =
                    serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
                let (want, _) = tiny_mlp_reference(x.as_flattened(), offset.as_flattened());
                let got = scores_of(&answer);
                assert_eq!(answer["outputs"][0]["shape"], json!([rows, 2]));
                assert!(
                    got.iter().zip(&want).all(|(g, w)| (g - w).abs() < 1e-5),
                    "{got:?} {want:?}"
                );
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn a_full_queue_answers_503_and_the_server_recovers() {
    // One admitted request at a time; it waits 400 ms for a batch to fill.
    let (server, _dir) = serve_with(&[
        "--max-batch-size",
        "8",
        "--max-batch-delay-ms",
        "400",
        "--max-queue",
        "1",
    ]);
    let body = mlp_inputs(&[[1.0, 2.0, 3.0]], &[[0.0, 0.0]]);
    let url = server.url.clone();
    let first_body = body.clone();
    let first = std::thread::spawn(move || {
        ureq_agent()
            .post(&format!("{url}/v2/models/mlp/infer"))
            .send(first_body.to_string().as_bytes())
            .unwrap()
            .status()
            .as_u16()
    });
    std::thread::sleep(std::time::Duration::from_millis(150));
    let (status, err) = post(&server, "/v2/models/mlp/infer", &body);
    assert_eq!(status, 503, "{err}");
    assert!(err["error"].as_str().unwrap().contains("retry"), "{err}");
    assert_eq!(first.join().unwrap(), 200);
    let (status, _) = post(&server, "/v2/models/mlp/infer", &body);
    assert_eq!(status, 200);
}

#[test]
fn serve_models_uris_from_the_local_home_and_from_a_server() {
    let server = TestServer::start(std::path::Path::new(env!("CARGO_BIN_EXE_cairn")), None);
    let http = server.http();
    http.post("registered-models/create", &json!({"name": "mlp"}));
    assert_eq!(register_version(&http, "mlp", true), "1");
    assert_eq!(register_version(&http, "mlp", true), "2");
    http.post(
        "registered-models/alias",
        &json!({"name": "mlp", "alias": "champion", "version": "1"}),
    );
    let serve = |uri: &str, remote: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
        cmd.args(["serve", uri, "--port", "0"])
            .env("CAIRN_HOME", &server.home)
            .env("CAIRN_LOG", "warn");
        if remote {
            cmd.args(["--tracking-uri", &server.url]);
        }
        TestServer::spawn(cmd, &server.home)
    };
    for (uri, remote, version) in [
        ("models:/mlp@champion", false, "1"),
        ("models:/mlp/2", false, "2"),
        ("models:/mlp", true, "2"),
        ("models:/mlp@champion", true, "1"),
    ] {
        let served = serve(uri, remote);
        let (status, answer) = post(&served, "/v2/models/mlp/infer", &infer_body());
        assert_eq!(status, 200, "{uri}: {answer}");
        assert_eq!(answer["model_version"], version, "{uri} (remote: {remote})");
    }
    // An unknown model is refused at start, naming it.
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["serve", "models:/nope@champion", "--port", "0"])
        .env("CAIRN_HOME", &server.home)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}

#[test]
fn registration_stores_the_signature_and_refuses_a_graph_that_cannot_load() {
    let server = TestServer::start(std::path::Path::new(env!("CARGO_BIN_EXE_cairn")), None);
    let http = server.http();
    http.post("registered-models/create", &json!({"name": "mlp"}));
    assert_eq!(register_version(&http, "mlp", true), "1");
    let (_, v) = http.get("/api/2.0/mlflow/model-versions/get?name=mlp&version=1");
    let tags = v["model_version"]["tags"].as_array().unwrap();
    let signature = tags
        .iter()
        .find(|t| t["key"] == "cairn.signature")
        .expect("signature tag");
    let signature: Value = serde_json::from_str(signature["value"].as_str().unwrap()).unwrap();
    assert_eq!(
        signature["inputs"][0],
        json!({"name": "x", "datatype": "FP32", "shape": [-1, 3]})
    );
    assert_eq!(signature["outputs"][1]["name"], "hidden");

    // A file named .onnx that is no graph: refused, and no version is left behind.
    let source = http.run_with_model_file("model.onnx", b"not a graph");
    let (status, err) = http.post(
        "model-versions/create",
        &json!({"name": "mlp", "source": source}),
    );
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error_code"], "INVALID_PARAMETER_VALUE");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("cannot be served"),
        "{err}"
    );
    let (_, found) =
        http.get("/api/2.0/mlflow/model-versions/search?filter=name%20%3D%20%27mlp%27");
    assert_eq!(
        found["model_versions"].as_array().unwrap().len(),
        1,
        "{found}"
    );
}

#[test]
fn serve_shows_its_models_playground() {
    let (server, _dir) = serve();
    let agent = ureq_agent();
    let mut resp = agent.get(&format!("{}/", server.url)).call().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let page = resp.body_mut().read_to_string().unwrap();
    assert!(
        page.contains("data-endpoint=\"/v2/models/mlp/versions/1/infer\""),
        "{page}"
    );
    // One field per value of a row: x is [-1, 3], offset [-1, 2].
    assert_eq!(page.matches("data-index=").count(), 5, "{page}");
    let body = json!({"inputs": [
        {"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [0.5, -1.0, 2.0]},
        {"name": "offset", "shape": [1, 2], "datatype": "FP32", "data": [0.1, 0.2]},
    ]});
    let (status, answer) = post(&server, "/v2/models/mlp/versions/1/infer", &body);
    assert_eq!(status, 200, "the playground's endpoint answers: {answer}");
    let js = agent
        .get(&format!("{}/static/cairn.js", server.url))
        .call()
        .unwrap();
    assert_eq!(js.status().as_u16(), 200);
}
