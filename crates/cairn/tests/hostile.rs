//! Hostile input against a real `cairn server`: MLflow's CVE vectors (traversal in every
//! encoding, local sources, `;` parameters, odd names), cross-site requests and foreign
//! hosts, input that used to reach a 500, oversized and stalled uploads, and model files that
//! used to panic or exhaust the loader. Each answer must be a 4xx that changes nothing.
#![allow(clippy::unwrap_used)]

use cairn_test::onnx::{
    constant_of_shape_bomb_onnx, doubling_onnx, string_raw_initializer_onnx, tiny_mlp_onnx,
};
use cairn_test::{raw, TestServer};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_cairn"))
}

fn addr(server: &TestServer) -> String {
    server.url.trim_start_matches("http://").to_string()
}

/// Sends `request` as written (no client normalises it) and returns status and body.
fn raw(server: &TestServer, request: &[u8]) -> (u16, String) {
    let reply = raw::exchange(&addr(server), request, Duration::from_secs(60))
        .expect("connect to the server");
    parse_reply(&reply)
}

fn parse_reply(reply: &[u8]) -> (u16, String) {
    raw::status_and_body(reply)
        .unwrap_or_else(|| panic!("no HTTP status in {:?}", String::from_utf8_lossy(reply)))
}

/// A request with the server's own Host and `Connection: close`.
fn request(
    server: &TestServer,
    method: &str,
    target: &str,
    headers: &[&str],
    body: &[u8],
) -> (u16, String) {
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        addr(server),
        body.len()
    );
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    raw(server, &bytes)
}

const CANARY: &str = "CANARY-SECRET-7f3a";
const PAYLOAD: &[u8] = b"PWNED-BY-THE-CORPUS";

/// Every file under `dir` whose contents hold `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p)
                .map(|b| b.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
            {
                found.push(p);
            }
        }
    }
    found
}

#[test]
fn mlflow_cve_vectors_are_refused_and_nothing_outside_the_root_is_touched() {
    let home = tempfile::tempdir().unwrap();
    let canary = home.path().join("canary.txt");
    std::fs::write(&canary, CANARY).unwrap();
    let server = TestServer::start_in(bin(), home.path(), None, &[]);
    let http = server.http();
    let rss_at_start = server.rss_kib();
    let long = "x".repeat(300);
    let vectors = [
        "../canary.txt",
        "../../canary.txt",
        "..%2fcanary.txt",
        "%2e%2e/canary.txt",
        "%2E%2E%2Fcanary.txt",
        "%252e%252e/canary.txt",
        "%252e%252e%252fcanary.txt",
        "a/..;/..;/canary.txt",
        "..;/canary.txt",
        "..%5ccanary.txt",
        "a%5c..%5c..%5ccanary.txt",
        "a/%2e%2e/%2e%2e/canary.txt",
        "%2fetc%2fpasswd",
        "/etc/passwd",
        "a%00b",
        "a/%00/b",
        long.as_str(),
    ];
    let prefix = "/api/2.0/mlflow-artifacts/artifacts";
    for v in vectors {
        for method in ["PUT", "GET", "DELETE"] {
            let (status, body) = request(&server, method, &format!("{prefix}/{v}"), &[], PAYLOAD);
            assert!(
                (400..500).contains(&status),
                "{method} {v}: {status} {body}"
            );
            assert!(!body.contains(CANARY), "{method} {v} leaked the canary");
            assert!(
                !body.contains(&home.path().display().to_string()),
                "{method} {v} showed a host path: {body}"
            );
        }
        let (status, body) = request(&server, "GET", &format!("{prefix}?path={v}"), &[], b"");
        assert!((400..500).contains(&status), "list {v}: {status} {body}");
    }
    // Model-version sources that name the server's disk (CVE-2023-1177, -2356, -2780,
    // CVE-2024-3573) and experiment locations there are refused; names that are paths too.
    assert_eq!(
        http.post("registered-models/create", &json!({"name": "victim"}))
            .0,
        200
    );
    for source in [
        "/etc/passwd",
        "file:///etc/passwd",
        "file:/etc",
        "../../../etc",
        "etc/passwd",
        "mlflow-artifacts:/../../canary.txt",
        "mlflow-artifacts:/%2e%2e/%2e%2e/canary.txt",
        "mlflow-artifacts:/%252e%252e/canary.txt",
        "mlflow-artifacts:/a/..%5c..%5ccanary.txt",
        "http://127.0.0.1/api/2.0/mlflow-artifacts/artifacts/../../x",
    ] {
        let (status, body) = http.post(
            "model-versions/create",
            &json!({"name": "victim", "source": source}),
        );
        assert_eq!(
            (status, body["error_code"].as_str()),
            (400, Some("INVALID_PARAMETER_VALUE")),
            "{source}: {body}"
        );
    }
    let (_, versions) =
        http.get("/api/2.0/mlflow/model-versions/search?filter=name%3D%27victim%27");
    assert!(
        versions["model_versions"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "{versions}"
    );
    for location in ["file:///etc", "/etc", "relative/dir", "s3://b/../../x"] {
        let (status, body) = http.post(
            "experiments/create",
            &json!({"name": format!("exp-{location}"), "artifact_location": location}),
        );
        assert_eq!(status, 400, "{location}: {body}");
    }
    for name in [".", "..", "..\\..\\x", "../x", "a/b"] {
        let (status, body) = http.post("registered-models/create", &json!({"name": name}));
        assert_eq!(status, 400, "{name}: {body}");
    }
    assert_eq!(std::fs::read_to_string(&canary).unwrap(), CANARY);
    let written = files_holding(home.path(), PAYLOAD);
    assert!(written.is_empty(), "the corpus wrote {written:?}");
    // The corpus leaves the server's memory where it was, give or take 64 MiB.
    if let (Some(start), Some(end)) = (rss_at_start, server.rss_kib()) {
        assert!(
            end < start + 64 * 1024,
            "resident memory grew from {start} KiB to {end} KiB over the corpus"
        );
    }
}

#[test]
fn cross_site_requests_and_foreign_hosts_are_refused() {
    let server = TestServer::start(bin(), None);
    let http = server.http();
    let (_, created) = http.post("experiments/create", &json!({"name": "keep"}));
    let id = created["experiment_id"].as_str().unwrap().to_string();
    let delete = json!({"experiment_id": id}).to_string();
    let target = "/api/2.0/mlflow/experiments/delete";
    let json_type = "Content-Type: application/json";
    for (headers, want) in [
        (vec![json_type, "Origin: http://evil.example"], 403),
        (vec![json_type, "Origin: null"], 403),
        (vec![json_type, "Sec-Fetch-Site: cross-site"], 403),
        (vec!["Content-Type: text/plain"], 400),
        (vec!["Content-Type: application/x-www-form-urlencoded"], 400),
        (vec!["Content-Type: multipart/form-data; boundary=x"], 400),
    ] {
        let (status, body) = request(&server, "POST", target, &headers, delete.as_bytes());
        assert_eq!(status, want, "{headers:?}: {body}");
    }
    let (_, got) = http.get(&format!(
        "/api/2.0/mlflow/experiments/get?experiment_id={id}"
    ));
    assert_eq!(got["experiment"]["lifecycle_stage"], "active", "{got}");
    // DNS rebinding: a foreign name in Host is refused, even for reads.
    let evil = format!(
        "GET /api/2.0/mlflow/experiments/search HTTP/1.1\r\nHost: evil.example:{}\r\nConnection: close\r\n\r\n",
        addr(&server).rsplit(':').next().unwrap()
    );
    assert_eq!(raw(&server, evil.as_bytes()).0, 403);
    let local = "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    assert_eq!(raw(&server, local.as_bytes()).0, 200);
    // The server's own pages (same origin) and plain clients (no Origin) still work.
    let same_origin = format!("Origin: {}", server.url);
    let (status, body) = request(
        &server,
        "POST",
        target,
        &[json_type, &same_origin, "Sec-Fetch-Site: same-origin"],
        delete.as_bytes(),
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn input_that_used_to_reach_a_500_gets_a_4xx_naming_the_limit() {
    let home = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(bin(), home.path(), None, &[]);
    let http = server.http();
    let huge_filter = vec!["metrics.a > 1"; 10_000].join(" AND ");
    let (status, body) = http.post(
        "runs/search",
        &json!({"experiment_ids": ["0"], "filter": huge_filter}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("limit"),
        "{body}"
    );
    let monitoring = "/api/2.0/cairn/monitoring/metrics?name=m&version=1";
    let (status, body) = http.get(&format!("{monitoring}&window=9223372036854775808s"));
    assert_eq!(status, 400, "{body}");
    let (status, body) = http.get(&format!("{monitoring}&window=3650d&bucket=1s"));
    assert_eq!(status, 400, "{body}");
    let long_name = "n".repeat(10_000);
    let (status, body) = http.get(&format!(
        "/api/2.0/cairn/monitoring/drift?name={long_name}&version=1"
    ));
    assert_eq!(status, 400, "{body}");
    assert!(!body
        .to_string()
        .contains(&home.path().display().to_string()));
    // An artifact path through a file, and a component longer than a file name may be.
    let prefix = "/api/2.0/mlflow-artifacts/artifacts";
    assert_eq!(http.put(&format!("{prefix}/t/file.txt"), b"x").0, 200);
    for (method, path) in [
        ("PUT", format!("{prefix}/t/file.txt/child")),
        ("GET", format!("{prefix}/t/file.txt/child")),
        ("GET", format!("{prefix}?path=t/file.txt/child")),
        ("DELETE", format!("{prefix}/t/file.txt/child")),
        ("PUT", format!("{prefix}/t/{}", "y".repeat(256))),
    ] {
        let (status, body) = request(&server, method, &path, &[], b"z");
        assert_eq!(status, 400, "{method} {path}: {body}");
        assert!(!body.contains(&home.path().display().to_string()), "{body}");
    }
    // Downloads never let a browser guess a type.
    let resp = raw(
        &server,
        format!(
            "GET {prefix}/t/file.txt HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            addr(&server)
        )
        .as_bytes(),
    );
    assert_eq!(resp.0, 200);
    let mut stream = TcpStream::connect(addr(&server)).unwrap();
    write!(
        stream,
        "GET {prefix}/t/file.txt HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        addr(&server)
    )
    .unwrap();
    let mut head = String::new();
    stream.read_to_string(&mut head).unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("x-content-type-options: nosniff"),
        "{head}"
    );
    // A body shorter than its Content-Length is the client's fault: 400, not 413.
    let mut stream = TcpStream::connect(addr(&server)).unwrap();
    write!(
        stream,
        "POST /api/2.0/mlflow/experiments/create HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":",
        addr(&server)
    )
    .unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    if !reply.is_empty() {
        assert_eq!(parse_reply(&reply).0, 400);
    }
    // Malformed JSON, query strings and page tokens.
    for (target, body) in [
        ("/api/2.0/mlflow/experiments/create", "{\"name\": "),
        ("/api/2.0/mlflow/experiments/create", "[1,2]"),
        (
            "/api/2.0/mlflow/runs/search",
            "{\"experiment_ids\": [\"0\"], \"page_token\": \"%%%garbage\"}",
        ),
        (
            "/api/2.0/mlflow/runs/search",
            "{\"experiment_ids\": [\"0\"], \"filter\": \"metrics.\\u0000 >\"}",
        ),
    ] {
        let (status, reply) = request(
            &server,
            "POST",
            target,
            &["Content-Type: application/json"],
            body.as_bytes(),
        );
        assert_eq!(status, 400, "{target} {body}: {reply}");
    }
    let (status, _) = request(
        &server,
        "GET",
        "/api/2.0/mlflow/experiments/search?max_results=%ZZ&&=",
        &[],
        b"",
    );
    assert_eq!(status, 400);
}

#[test]
fn artifact_uploads_over_the_limit_get_413_and_leave_no_file() {
    let home = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(bin(), home.path(), None, &["--max-artifact-bytes", "1000"]);
    let prefix = "/api/2.0/mlflow-artifacts/artifacts/big";
    let (status, body) = request(
        &server,
        "PUT",
        &format!("{prefix}/declared.bin"),
        &[],
        &[7u8; 5000],
    );
    assert_eq!(status, 413, "{body}");
    // Chunked: no length up front, so the limit is found while streaming.
    let mut chunked = format!(
        "PUT {prefix}/streamed.bin HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n",
        addr(&server)
    )
    .into_bytes();
    for _ in 0..5 {
        chunked.extend_from_slice(b"3e8\r\n");
        chunked.extend_from_slice(&[7u8; 1000]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (status, body) = raw(&server, &chunked);
    assert_eq!(status, 413, "{body}");
    let (status, listed) = server
        .http()
        .get("/api/2.0/mlflow-artifacts/artifacts?path=big");
    assert_eq!(status, 200);
    assert!(
        listed["files"].as_array().is_none_or(Vec::is_empty),
        "{listed}"
    );
    assert!(files_holding(home.path(), &[7u8; 1000]).is_empty());
    assert_eq!(
        server
            .http()
            .put(&format!("{prefix}/small.bin"), &[1u8; 500])
            .0,
        200
    );
}

#[test]
fn stalled_clients_cannot_hold_the_server() {
    let home = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(
        bin(),
        home.path(),
        None,
        &[
            "--max-connections",
            "4",
            "--header-read-timeout-secs",
            "1",
            "--body-idle-timeout-secs",
            "1",
        ],
    );
    // Four connections stalled mid-headers take every slot...
    let stalled: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = TcpStream::connect(addr(&server)).unwrap();
            s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
                .unwrap();
            s
        })
        .collect();
    // ...until the header deadline closes them, and a normal request gets through.
    let started = Instant::now();
    let mut answered = false;
    while started.elapsed() < Duration::from_secs(60) {
        let mut s = TcpStream::connect(addr(&server)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut reply = Vec::new();
        let _ = s.read_to_end(&mut reply);
        if reply.starts_with(b"HTTP/1.1 200") {
            answered = true;
            break;
        }
    }
    assert!(
        answered,
        "the server never answered past the stalled clients"
    );
    drop(stalled);
    // A body that stops mid-way is answered (400) once the idle deadline passes.
    let mut s = TcpStream::connect(addr(&server)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "POST /api/2.0/mlflow/experiments/create HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":"
    )
    .unwrap();
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    assert_eq!(
        parse_reply(&reply).0,
        400,
        "{}",
        String::from_utf8_lossy(&reply)
    );
}

fn infer_x(http: &cairn_test::Http, path: &str, x: Value) -> (u16, Value) {
    http.post_json(
        path,
        &json!({"inputs": [
            {"name": "x", "shape": [1, 3], "datatype": "FP32", "data": x},
            {"name": "offset", "shape": [1, 2], "datatype": "FP32", "data": [0.0, 0.0]},
        ]}),
    )
}

/// Creates model `name` with `onnx` as its version 1.
fn register(http: &cairn_test::Http, name: &str, onnx: &[u8]) {
    assert_eq!(
        http.post("registered-models/create", &json!({"name": name}))
            .0,
        200
    );
    let source = http.run_with_model_file("model.onnx", onnx);
    let (status, body) = http.post(
        "model-versions/create",
        &json!({"name": name, "source": source}),
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn models_are_served_by_identity_and_hostile_graphs_are_refused_whole() {
    let server = TestServer::start(bin(), None);
    let http = server.http();
    register(&http, "m", &tiny_mlp_onnx());
    let (status, body) = infer_x(
        &http,
        "/v2/models/m/versions/1/infer",
        json!([1.0, 2.0, 3.0]),
    );
    assert_eq!(status, 200, "{body}");
    // FP32 out of range and a shape whose element count overflows are the client's fault.
    let (status, body) = infer_x(
        &http,
        "/v2/models/m/versions/1/infer",
        json!([1e39, 2.0, 3.0]),
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = http.post_json(
        "/v2/models/m/versions/1/infer",
        &json!({"inputs": [{"name": "x", "shape": [4611686018427387904u64, 4], "datatype": "FP32", "data": [1.0]}]}),
    );
    assert_eq!(status, 400, "{body}");
    // Deleted and created again, version 1 is a different graph and must answer as one.
    assert_eq!(
        http.delete("/api/2.0/mlflow/registered-models/delete?name=m")
            .0,
        200
    );
    register(&http, "m", &doubling_onnx());
    let (status, body) = http.post_json(
        "/v2/models/m/versions/1/infer",
        &json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1.0, 2.0, 3.0]}]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outputs"][0]["data"], json!([2.0, 4.0, 6.0]), "{body}");
    // Graphs that exhausted memory or panicked the loader are refused, and no version stays.
    assert_eq!(
        http.post("registered-models/create", &json!({"name": "hostile"}))
            .0,
        200
    );
    for (what, bytes) in [
        ("ConstantOfShape bomb", constant_of_shape_bomb_onnx()),
        ("STRING raw initializer", string_raw_initializer_onnx()),
        ("not ONNX at all", b"\x08\x01garbage".to_vec()),
    ] {
        let source = http.run_with_model_file("model.onnx", &bytes);
        let (status, body) = http.post(
            "model-versions/create",
            &json!({"name": "hostile", "source": source}),
        );
        assert_eq!(status, 400, "{what}: {body}");
    }
    let (_, model) = http.get("/api/2.0/mlflow/registered-models/get?name=hostile");
    assert!(
        model["registered_model"]["latest_versions"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "{model}"
    );
    assert_eq!(http.get("/health").0, 200);
}

/// Runs `cairn server ARGS` expecting it to refuse to start; returns its stderr.
fn refused_start(home: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(bin())
        .arg("server")
        .args(["--port", "0"])
        .args(args)
        .env("CAIRN_HOME", home)
        .current_dir(home)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} started: {stderr}");
    stderr
}

#[test]
fn start_up_refuses_what_it_cannot_honour_and_never_prints_a_password() {
    let home = tempfile::tempdir().unwrap();
    // A bucket that cannot be reached is refused at start, not at the first upload.
    let out = std::process::Command::new(bin())
        .args([
            "server",
            "--port",
            "0",
            "--artifacts-destination",
            "s3://bucket/prefix",
        ])
        .env("CAIRN_HOME", home.path())
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .current_dir(home.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "started on an unreachable bucket: {err}"
    );
    assert!(
        err.contains("s3://bucket/prefix") && err.contains("cannot be listed"),
        "{err}"
    );
    assert!(
        !home.path().join("s3:").exists(),
        "a local folder s3: was made"
    );
    for (dest, scheme) in [("gs://bucket/p", "gs:"), ("hdfs://nn/x", "hdfs:")] {
        let err = refused_start(home.path(), &["--artifacts-destination", dest]);
        assert!(
            err.contains(scheme) && err.contains("not supported"),
            "{err}"
        );
        let folder = home.path().join(scheme);
        assert!(
            !folder.exists(),
            "a local folder {} was made",
            folder.display()
        );
    }
    let err = refused_start(
        home.path(),
        &[
            "--backend-store-uri",
            "postgresql://cairn:hunter2-secret@127.0.0.1:1/db",
        ],
    );
    assert!(!err.contains("hunter2-secret"), "{err}");
    assert!(err.contains("127.0.0.1:1/db"), "{err}");
    let err = refused_start(
        home.path(),
        &[
            "--backend-store-uri",
            "postgresql://127.0.0.1:1/db?user=x&password=hunter2-secret",
        ],
    );
    assert!(!err.contains("hunter2-secret"), "{err}");
    let err = refused_start(home.path(), &["--host", "0.0.0.0"]);
    assert!(err.contains("--no-auth"), "{err}");
}
