//! HTTP behaviour of `cairn server`: MLflow's error codes and statuses for bad input, body
//! limits, artifact path safety and concurrent writers, on SQLite and (when configured)
//! PostgreSQL.
#![allow(clippy::unwrap_used)]

use cairn_test::{Http, TestServer};
use serde_json::{json, Value};
use std::path::Path;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_cairn"))
}

fn code(reply: &(u16, Value)) -> (u16, &str) {
    (reply.0, reply.1["error_code"].as_str().unwrap_or(""))
}

fn create_run(http: &Http) -> (String, String) {
    let (status, body) = http.post(
        "runs/create",
        &json!({"experiment_id": "0", "start_time": 1}),
    );
    assert_eq!(status, 200, "{body}");
    let info = &body["run"]["info"];
    (
        info["run_id"].as_str().unwrap().to_string(),
        info["artifact_uri"].as_str().unwrap().to_string(),
    )
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $( #[test] fn $name() { let s = cairn_test::TestServer::start(super::bin(), None); super::$name(&s.http()); } )*
        }
        mod on_postgres {
            $( #[test] fn $name() {
                if let Some(db) = cairn_test::PgDatabase::create(stringify!($name)) {
                    let s = cairn_test::TestServer::start(super::bin(), Some(&db.url));
                    super::$name(&s.http());
                    drop(s);
                }
            } )*
        }
    };
}

on_both_backends!(
    bad_filters_are_400_never_500,
    malformed_requests,
    validation_limits,
    wire_conventions,
    history_paging_over_http,
    artifact_round_trip_and_traversal,
    concurrent_writers_over_http,
    registry_over_http,
);

fn bad_filters_are_400_never_500(http: &Http) {
    for filter in [
        "metrics.acc > 0.9 OR params.lr = '1'",
        "metrics.acc > 'high'",
        "params.lr > 1",
        "weird.key = 'x'",
        "metrics.",
        "metrics.acc >",
        "params.x = 'unterminated",
        "attributes.nope = 'x'",
        "tags.x IN ('a')",
        "((((",
        "metrics.acc > 1 AND",
        "\u{0}",
    ] {
        let reply = http.post(
            "runs/search",
            &json!({"experiment_ids": ["0"], "filter": filter}),
        );
        assert_eq!(
            code(&reply),
            (400, "INVALID_PARAMETER_VALUE"),
            "{filter}: {}",
            reply.1
        );
    }
    let reply = http.post(
        "runs/search",
        &json!({"experiment_ids": ["0"], "order_by": ["metrics.acc SIDEWAYS"]}),
    );
    assert_eq!(code(&reply), (400, "INVALID_PARAMETER_VALUE"));
    let reply = http.post(
        "runs/search",
        &json!({"experiment_ids": ["0"], "page_token": "not-a-token"}),
    );
    assert_eq!(code(&reply), (400, "INVALID_PARAMETER_VALUE"));
    let reply = http.post(
        "runs/search",
        &json!({"experiment_ids": ["0"], "max_results": 50001}),
    );
    assert_eq!(code(&reply), (400, "INVALID_PARAMETER_VALUE"));
    let reply = http.post("experiments/search", &json!({"filter": "name = 1"}));
    assert_eq!(code(&reply), (400, "INVALID_PARAMETER_VALUE"));
}

fn malformed_requests(http: &Http) {
    let reply = http.post_raw("runs/create", b"{not json");
    assert_eq!(code(&reply), (400, "BAD_REQUEST"), "{}", reply.1);
    let reply = http.post_raw("runs/create", b"[1, 2]");
    assert_eq!(code(&reply), (400, "BAD_REQUEST"));
    let reply = http.post(
        "runs/log-metric",
        &json!({"key": "a", "value": 1, "timestamp": 1}),
    );
    assert_eq!(code(&reply), (400, "INVALID_PARAMETER_VALUE"));
    assert!(reply.1["message"].as_str().unwrap().contains("run_id"));
    let reply = http.post_raw("runs/log-batch", b"{\"run_id\": ");
    assert_eq!(code(&reply), (400, "BAD_REQUEST"));
    let (run_id, _) = create_run(http);
    for bad in [
        json!({"run_id": run_id, "metrics": "all of them"}),
        json!({"run_id": run_id, "metrics": [{"key": "m", "value": [1], "timestamp": 1}]}),
        json!({"run_id": run_id, "metrics": [{"key": "m", "value": 1, "timestamp": "noon"}]}),
        json!({"run_id": run_id, "metrics": [{"key": "m", "value": 1}]}),
        json!({"run_id": run_id, "params": [{"value": "no key"}]}),
        json!({"metrics": []}),
    ] {
        let reply = http.post("runs/log-batch", &bad);
        assert_eq!(
            code(&reply),
            (400, "INVALID_PARAMETER_VALUE"),
            "{bad}: {}",
            reply.1
        );
    }
    let reply = http.post("experiments/create", &json!({"name": ["a"]}));
    assert_eq!(code(&reply), (400, "INVALID_PARAMETER_VALUE"));
    let reply = http.post(
        "runs/create",
        &json!({"experiment_id": "0", "start_time": "yesterday"}),
    );
    assert_eq!(code(&reply), (400, "INVALID_PARAMETER_VALUE"));
    let reply = http.get("/api/2.0/mlflow/experiments/get?experiment_id=12345");
    assert_eq!(code(&reply), (404, "RESOURCE_DOES_NOT_EXIST"));
    let reply = http.get("/api/2.0/mlflow/experiments/get-by-name?experiment_name=nope");
    assert_eq!(code(&reply), (404, "RESOURCE_DOES_NOT_EXIST"));
    let reply = http.post("experiments/create", &json!({"name": "dup"}));
    assert_eq!(reply.0, 200);
    let reply = http.post("experiments/create", &json!({"name": "dup"}));
    assert_eq!(code(&reply), (400, "RESOURCE_ALREADY_EXISTS"));
    let reply = http.post("no/such/endpoint", &json!({}));
    assert_eq!(code(&reply), (404, "ENDPOINT_NOT_FOUND"));
    let reply = http.post(
        "runs/update",
        &json!({"run_id": "0".repeat(32), "status": "FINISHED"}),
    );
    assert_eq!(code(&reply), (404, "RESOURCE_DOES_NOT_EXIST"));
    let (run_id, _) = create_run(http);
    let reply = http.post("runs/update", &json!({"run_id": run_id, "status": "DONE"}));
    assert_eq!(code(&reply), (400, "INVALID_PARAMETER_VALUE"));
}

fn validation_limits(http: &Http) {
    let (run_id, _) = create_run(http);
    let metrics: Vec<Value> = (0..1001)
        .map(|i| json!({"key": "m", "value": i, "timestamp": 1, "step": i}))
        .collect();
    let reply = http.post(
        "runs/log-batch",
        &json!({"run_id": run_id, "metrics": metrics}),
    );
    assert_eq!(
        code(&reply),
        (400, "INVALID_PARAMETER_VALUE"),
        "{}",
        reply.1
    );
    let params: Vec<Value> = (0..101)
        .map(|i| json!({"key": format!("p{i}"), "value": "v"}))
        .collect();
    let reply = http.post(
        "runs/log-batch",
        &json!({"run_id": run_id, "params": params}),
    );
    assert_eq!(code(&reply), (400, "INVALID_PARAMETER_VALUE"));
    for key in ["../escape", "/abs", "bad$char", "", &"k".repeat(251)] {
        let reply = http.post(
            "runs/log-parameter",
            &json!({"run_id": run_id, "key": key, "value": "1"}),
        );
        assert_eq!(code(&reply), (400, "INVALID_PARAMETER_VALUE"), "{key:?}");
    }
    let reply = http.post(
        "runs/log-metric",
        &json!({"run_id": run_id, "key": "m", "value": "abc", "timestamp": 1}),
    );
    assert_eq!(code(&reply), (400, "INVALID_PARAMETER_VALUE"));
    let reply = http.post(
        "runs/log-metric",
        &json!({"run_id": run_id, "key": "m", "value": 1, "timestamp": -1}),
    );
    assert_eq!(code(&reply), (400, "INVALID_PARAMETER_VALUE"));
    // A batch over 1 MB is refused before it is parsed further.
    let big = "v".repeat(10_500);
    let tags: Vec<Value> = (0..100)
        .map(|i| json!({"key": format!("t{i}"), "value": big}))
        .collect();
    let reply = http.post("runs/log-batch", &json!({"run_id": run_id, "tags": tags}));
    assert_eq!(reply.0, 413, "{}", reply.1);
    // Nothing from the refused requests was stored.
    let (_, run) = http.get(&format!("/api/2.0/mlflow/runs/get?run_id={run_id}"));
    assert!(run["run"]["data"]["metrics"].is_null(), "{run}");
    assert!(run["run"]["data"]["params"].is_null());
}

fn wire_conventions(http: &Http) {
    let (run_id, _) = create_run(http);
    // int64 as strings, NaN as a string, run_uuid instead of run_id.
    let reply = http.post(
        "runs/log-metric",
        &json!({"run_uuid": run_id, "key": "m", "value": "NaN", "timestamp": "5", "step": "2"}),
    );
    assert_eq!(reply.0, 200, "{}", reply.1);
    let reply = http.post(
        "runs/log-metric",
        &json!({"run_id": run_id, "key": "inf", "value": "Infinity", "timestamp": 5}),
    );
    assert_eq!(reply.0, 200);
    let (status, body) = http.get(&format!("/api/2.0/mlflow/runs/get?run_id={run_id}"));
    assert_eq!(status, 200);
    let metrics = body["run"]["data"]["metrics"].as_array().unwrap();
    let m = metrics.iter().find(|m| m["key"] == "m").unwrap();
    assert_eq!(
        (
            m["value"].as_str(),
            m["timestamp"].as_i64(),
            m["step"].as_i64()
        ),
        (Some("NaN"), Some(5), Some(2))
    );
    assert_eq!(
        metrics.iter().find(|m| m["key"] == "inf").unwrap()["value"],
        "Infinity"
    );
    assert_eq!(body["run"]["info"]["run_uuid"], run_id);
    // GET search with repeated query keys.
    let (status, body) = http.get("/api/2.0/mlflow/experiments/search?max_results=5&view_type=ALL");
    assert_eq!(status, 200);
    assert_eq!(body["experiments"][0]["experiment_id"], "0");
    let (status, body) = http.get("/api/3.0/mlflow/server-info");
    assert_eq!(
        (status, body["store_type"].as_str()),
        (200, Some("SqlStore"))
    );
    // The UI's prefix serves the same API.
    let (status, _) = http.get("/ajax-api/2.0/mlflow/experiments/get?experiment_id=0");
    assert_eq!(status, 200);
}

fn history_paging_over_http(http: &Http) {
    let (run_id, _) = create_run(http);
    let metrics: Vec<Value> = (0..1000)
        .map(|i| json!({"key": "loss", "value": 1.0 / (i as f64 + 1.0), "timestamp": i, "step": i}))
        .collect();
    assert_eq!(
        http.post(
            "runs/log-batch",
            &json!({"run_id": run_id, "metrics": metrics})
        )
        .0,
        200
    );
    let (_, all) = http.get(&format!(
        "/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key=loss"
    ));
    assert_eq!(all["metrics"].as_array().unwrap().len(), 1000);
    let mut steps = Vec::new();
    let mut token = String::new();
    loop {
        let (status, page) = http.get(&format!(
            "/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key=loss&max_results=400&page_token={}",
            token.replace('=', "%3D")
        ));
        assert_eq!(status, 200, "{page}");
        steps.extend(
            page["metrics"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["step"].as_i64().unwrap()),
        );
        match page["next_page_token"].as_str() {
            Some(t) => token = t.to_string(),
            None => break,
        }
    }
    assert_eq!(steps, (0..1000).collect::<Vec<i64>>());
    let (status, body) = http.get(&format!(
        "/api/2.0/mlflow/metrics/get-history-bulk-interval?run_ids={run_id}&metric_key=loss&start_step=0&end_step=999&max_results=50"
    ));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["metrics"].as_array().unwrap().len(), 50);
}

fn artifact_round_trip_and_traversal(http: &Http) {
    let (run_id, uri) = create_run(http);
    let root = uri.trim_start_matches("mlflow-artifacts:/");
    let base = format!("/api/2.0/mlflow-artifacts/artifacts/{root}");
    let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(http.put(&format!("{base}/model/big.bin"), &payload).0, 200);
    let (status, got) = http.get_bytes(&format!("{base}/model/big.bin"));
    assert_eq!(status, 200);
    assert!(got == payload, "downloaded bytes differ");
    let (_, listed) = http.get(&format!(
        "/api/2.0/mlflow-artifacts/artifacts?path={root}/model"
    ));
    assert_eq!(
        listed["files"],
        json!([{"path": "big.bin", "is_dir": false, "file_size": 3_000_000}])
    );
    let (_, listed) = http.get(&format!("/api/2.0/mlflow/artifacts/list?run_id={run_id}"));
    assert_eq!(listed["files"], json!([{"path": "model", "is_dir": true}]));
    assert_eq!(listed["root_uri"], uri);
    for evil in [
        "%2e%2e/%2e%2e/etc/passwd",
        "a/%2e%2e/%2e%2e/%2e%2e/x",
        "%2Fetc%2Fpasswd",
        "a%5C..%5Cb",
    ] {
        let reply = http.put(&format!("/api/2.0/mlflow-artifacts/artifacts/{evil}"), b"x");
        assert_eq!(code(&reply), (400, "INVALID_PARAMETER_VALUE"), "PUT {evil}");
        let reply = http.get(&format!("/api/2.0/mlflow-artifacts/artifacts/{evil}"));
        assert_eq!(reply.0, 400, "GET {evil}");
    }
    let reply = http.get("/api/2.0/mlflow-artifacts/artifacts?path=../..");
    assert_eq!(code(&reply), (400, "INVALID_PARAMETER_VALUE"));
    let reply = http.get(&format!("{base}/missing.txt"));
    assert_eq!(code(&reply), (404, "RESOURCE_DOES_NOT_EXIST"));
    assert_eq!(http.delete(&format!("{base}/model")).0, 200);
    assert_eq!(http.get(&format!("{base}/model/big.bin")).0, 404);
}

fn concurrent_writers_over_http(http: &Http) {
    let (run_id, _) = create_run(http);
    std::thread::scope(|s| {
        for w in 0..8 {
            let (http, run_id) = (http.clone(), run_id.clone());
            s.spawn(move || {
                for b in 0..5 {
                    let metrics: Vec<Value> = (0..200)
                        .map(|i| json!({"key": format!("w{w}"), "value": i, "timestamp": b, "step": b * 200 + i}))
                        .collect();
                    let reply = http.post("runs/log-batch", &json!({"run_id": run_id, "metrics": metrics, "params": [{"key": "shared", "value": "same"}]}));
                    assert_eq!(reply.0, 200, "{}", reply.1);
                }
            });
        }
    });
    for w in 0..8 {
        let (_, body) = http.get(&format!(
            "/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key=w{w}"
        ));
        assert_eq!(body["metrics"].as_array().unwrap().len(), 1000);
    }
}

#[test]
fn oversized_json_body_is_413_and_server_keeps_serving() {
    let home = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(bin(), home.path(), None, &["--max-request-bytes", "10000"]);
    let http = server.http();
    let name = "x".repeat(20_000);
    let reply = http.post("experiments/create", &json!({"name": name}));
    assert_eq!(reply.0, 413, "{}", reply.1);
    assert_eq!(reply.1["error_code"], "REQUEST_LIMIT_EXCEEDED");
    assert_eq!(
        http.post("experiments/create", &json!({"name": "small"})).0,
        200
    );
}

/// A body that arrives after its headers, sent to an endpoint that answers without reading
/// it (unknown path, here): the server still reads it, so the keep-alive connection carries
/// the client's next request (pooled clients failed with "peer disconnected" otherwise).
#[test]
fn a_late_body_to_an_unknown_endpoint_keeps_the_connection_usable() {
    use std::io::{BufRead, BufReader, Read, Write};
    let server = TestServer::start(bin(), None);
    let address = server.url.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let body = b"{\"name\": \"late\"}";
    write!(
        stream,
        "POST /api/2.0/mlflow/no/such/endpoint HTTP/1.1\r\nHost: {address}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.flush().unwrap();
    // The headers go out alone; the body follows in its own segment.
    std::thread::sleep(std::time::Duration::from_millis(200));
    stream.write_all(body).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let read_reply = |reader: &mut BufReader<std::net::TcpStream>| -> (String, String) {
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        let mut length = 0usize;
        let mut close = false;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            close |= lower.starts_with("connection: close");
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        let mut text = vec![0; length];
        reader.read_exact(&mut text).unwrap();
        assert!(!close, "the server closed the connection: {status}");
        (status, String::from_utf8_lossy(&text).into_owned())
    };
    let (status, text) = read_reply(&mut reader);
    assert!(status.contains(" 404 "), "{status}");
    assert!(text.contains("ENDPOINT_NOT_FOUND"), "{text}");
    write!(
        stream,
        "GET /api/2.0/mlflow/experiments/get?experiment_id=0 HTTP/1.1\r\nHost: {address}\r\n\r\n"
    )
    .unwrap();
    let (status, text) = read_reply(&mut reader);
    assert!(status.contains(" 200 "), "{status} {text}");
    assert!(text.contains("Default"), "{text}");
}

#[test]
fn symlinks_in_the_artifact_folder_are_not_followed() {
    let home = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "secret").unwrap();
    let server = TestServer::start_in(bin(), home.path(), None, &[]);
    std::os::unix::fs::symlink(outside.path(), home.path().join("artifacts").join("link")).unwrap();
    let http = server.http();
    let reply = http.get("/api/2.0/mlflow-artifacts/artifacts/link/secret.txt");
    assert_eq!(code(&reply), (400, "INVALID_PARAMETER_VALUE"));
    let reply = http.put("/api/2.0/mlflow-artifacts/artifacts/link/planted.txt", b"x");
    assert_eq!(reply.0, 400);
    assert!(!outside.path().join("planted.txt").exists());
}

#[test]
fn postgres_backend_refuses_unreachable_server_with_a_clear_error() {
    let home = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin())
        .args([
            "server",
            "--port",
            "0",
            "--backend-store-uri",
            "postgresql://nobody@127.0.0.1:1/none",
        ])
        .env("CAIRN_HOME", home.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot open backend store") && err.contains("PostgreSQL"),
        "{err}"
    );
    let out = std::process::Command::new(bin())
        .args([
            "server",
            "--port",
            "0",
            "--backend-store-uri",
            "mysql://x/y",
        ])
        .env("CAIRN_HOME", home.path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("Unsupported backend store URI"));
}

#[test]
fn sigterm_shuts_down_gracefully_and_data_persists() {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(bin());
    cmd.args(["server", "--port", "0"])
        .env("CAIRN_HOME", home.path())
        .env("CAIRN_LOG", "warn");
    let mut child = cmd.stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let url = line
        .split("listening on ")
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    let http = Http::new(&url);
    let (status, body) = http.post("experiments/create", &json!({"name": "kept"}));
    assert_eq!(status, 200, "{body}");
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status}");
    let server = TestServer::start_in(bin(), home.path(), None, &[]);
    let (status, _) = server
        .http()
        .get("/api/2.0/mlflow/experiments/get-by-name?experiment_name=kept");
    assert_eq!(status, 200);
}

fn registry_over_http(http: &Http) {
    let reply = http.post(
        "registered-models/create",
        &json!({"name": "fraud", "tags": [{"key": "team", "value": "risk"}]}),
    );
    assert_eq!(reply.0, 200, "{}", reply.1);
    assert_eq!(reply.1["registered_model"]["name"], "fraud");
    let reply = http.post("registered-models/create", &json!({"name": "fraud"}));
    assert_eq!(code(&reply), (400, "RESOURCE_ALREADY_EXISTS"));
    let reply = http.post("registered-models/create", &json!({"name": "a:b"}));
    assert_eq!(code(&reply), (400, "INVALID_PARAMETER_VALUE"));
    let reply = http.post(
        "model-versions/create",
        &json!({"name": "fraud", "source": "s3://b/m"}),
    );
    assert_eq!(reply.0, 200, "{}", reply.1);
    assert_eq!(
        (
            reply.1["model_version"]["version"].as_str(),
            reply.1["model_version"]["current_stage"].as_str()
        ),
        (Some("1"), Some("None"))
    );
    let reply = http.post(
        "model-versions/create",
        &json!({"name": "nope", "source": "s3://b/m"}),
    );
    assert_eq!(code(&reply), (404, "RESOURCE_DOES_NOT_EXIST"));
    let reply = http.get("/api/2.0/mlflow/model-versions/get?name=fraud&version=abc");
    assert_eq!(code(&reply), (400, "INVALID_PARAMETER_VALUE"));
    let reply = http.get("/api/2.0/mlflow/model-versions/get-download-uri?name=fraud&version=1");
    assert_eq!(reply.1["artifact_uri"], "s3://b/m");
    let reply = http.post(
        "registered-models/alias",
        &json!({"name": "fraud", "alias": "v2", "version": "1"}),
    );
    assert_eq!(code(&reply), (400, "INVALID_PARAMETER_VALUE"));
    assert_eq!(
        http.post(
            "registered-models/alias",
            &json!({"name": "fraud", "alias": "champion", "version": "1"})
        )
        .0,
        200
    );
    let reply = http.get("/api/2.0/mlflow/registered-models/alias?name=fraud&alias=champion");
    assert_eq!(reply.1["model_version"]["aliases"], json!(["champion"]));
    let reply = http.post(
        "model-versions/transition-stage",
        &json!({"name": "fraud", "version": "1", "stage": "Prod"}),
    );
    assert_eq!(code(&reply), (400, "INVALID_PARAMETER_VALUE"));
    let reply = http.post("model-versions/transition-stage", &json!({"name": "fraud", "version": "1", "stage": "staging", "archive_existing_versions": false}));
    assert_eq!(reply.1["model_version"]["current_stage"], "Staging");
    let reply = http.get("/api/2.0/mlflow/registered-models/search?filter=name%20%3D%20%27fraud%27%20AND%20tag.%60mlflow.prompt.is_prompt%60%20!%3D%20%27true%27");
    assert_eq!(reply.0, 200, "{}", reply.1);
    let models = reply.1["registered_models"].as_array().unwrap();
    assert_eq!(models.len(), 1);
    assert_eq!(
        models[0]["aliases"],
        json!([{"alias": "champion", "version": "1"}])
    );
    assert_eq!(models[0]["latest_versions"][0]["current_stage"], "Staging");
    let reply = http.get("/api/2.0/mlflow/registered-models/search?filter=name%20%3D%3D%3D%20x");
    assert_eq!(code(&reply), (400, "INVALID_PARAMETER_VALUE"));
}
