//! Live monitoring end to end: a registered model served by `cairn server`, its training
//! reference stored with `cairn monitor reference`, traffic sent over the Open Inference
//! Protocol; drift must show in the JSON endpoint, the Prometheus gauges and an alert posted to
//! a real webhook receiver; labels posted by request id must give accuracy; a burst larger
//! than the log's buffer must be answered in full.
#![allow(clippy::unwrap_used)]
use cairn_test::{Http, TestServer};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_cairn"))
}

/// Deterministic normal samples (xorshift + Box-Muller).
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-12), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
    fn rows(&mut self, n: usize, shift: f64) -> Vec<[f64; 4]> {
        (0..n)
            .map(|_| std::array::from_fn(|_| (self.normal() + shift) as f32 as f64))
            .collect()
    }
}

/// The label the served model (weights 1, 1, 0, 0; bias 0) predicts right.
fn truth(row: &[f64; 4]) -> i64 {
    i64::from(row[0] + row[1] > 0.0)
}

/// Registers the logistic regression as version 1 of `name`.
fn register(http: &Http, name: &str) {
    http.post("registered-models/create", &json!({"name": name}));
    let onnx = cairn_serving::build::logistic_regression_onnx(&[1.0, 1.0, 0.0, 0.0], 0.0);
    let source = http.run_with_model_file("model.onnx", &onnx);
    let (status, body) = http.post(
        "model-versions/create",
        &json!({"name": name, "source": source}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model_version"]["version"], "1");
}

/// Sends `rows` in requests of `per_request`; returns each request's id and rows.
fn send(
    http: &Http,
    name: &str,
    rows: &[[f64; 4]],
    per_request: usize,
) -> Vec<(String, Vec<[f64; 4]>)> {
    rows.chunks(per_request)
        .map(|chunk| {
            let flat: Vec<f64> = chunk.iter().flatten().copied().collect();
            let (status, body) = http.post_json(
                &format!("/v2/models/{name}/versions/1/infer"),
                &json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [chunk.len(), 4], "data": flat}]}),
            );
            assert_eq!(status, 200, "{body}");
            let id = body["id"].as_str().expect("every answer carries a request id");
            (id.to_owned(), chunk.to_vec())
        })
        .collect()
}

fn metrics_text(http: &Http) -> String {
    let (status, bytes) = http.get_bytes("/metrics");
    assert_eq!(status, 200);
    String::from_utf8(bytes).unwrap()
}

/// The value of the first sample of `series` (name and labels, exactly as exported).
fn gauge(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Polls `/metrics` until `check` passes (the evaluator runs every 200 ms).
fn wait_for(http: &Http, what: &str, check: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    loop {
        let text = metrics_text(http);
        if check(&text) {
            return text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn cairn(home: &Path, args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(bin())
        .args(args)
        .env("CAIRN_HOME", home)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn write_reference(path: &PathBuf, rows: &[[f64; 4]]) {
    let mut text = String::from("x0,x1,x2,x3,y\n");
    for r in rows {
        text.push_str(&format!(
            "{},{},{},{},{}\n",
            r[0],
            r[1],
            r[2],
            r[3],
            truth(r)
        ));
    }
    std::fs::write(path, text).unwrap();
}

const MONITORED: &str = "model=\"monitored\",version=\"1\"";

#[test]
fn shifted_traffic_is_flagged_in_the_endpoint_the_gauges_and_a_webhook() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let server = TestServer::start_in(
        bin(),
        &home,
        None,
        &[
            "--monitor-interval-secs",
            "0.2",
            "--prediction-log-flush-secs",
            "0.05",
        ],
    );
    let http = server.http();
    register(&http, "monitored");
    let mut rng = Rng(0x5eed);
    let reference = tmp.path().join("train.csv");
    write_reference(&reference, &rng.rows(500, 0.0));
    let (code, out) = cairn(
        &home,
        &[
            "monitor",
            "reference",
            "models:/monitored/1",
            reference.to_str().unwrap(),
            "--target",
            "y",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("features x0, x1, x2, x3, target y"), "{out}");
    let (hook, received) = cairn_test::webhook_receiver();
    let (code, out) = cairn(
        &home,
        &[
            "monitor",
            "alert-add",
            "drift",
            "--model",
            "models:/monitored",
            "--metric",
            "drift_share",
            "--above",
            "0.5",
            "--webhook",
            &hook,
        ],
    );
    assert_eq!(code, 0, "{out}");

    // Traffic like the training data: no drift.
    let normal = send(&http, "monitored", &rng.rows(200, 0.0), 10);
    let text = wait_for(&http, "200 logged predictions", |t| {
        gauge(
            t,
            &format!("cairn_monitor_window_predictions{{{MONITORED}}}"),
        ) == Some(200.0)
            && gauge(t, &format!("cairn_drift_share{{{MONITORED}}}")).is_some()
    });
    assert_eq!(
        gauge(&text, &format!("cairn_dataset_drift{{{MONITORED}}}")),
        Some(0.0),
        "{text}"
    );
    assert!(gauge(&text, &format!("cairn_drift_share{{{MONITORED}}}")).unwrap() < 0.5);
    let (status, body) =
        http.get("/api/2.0/cairn/monitoring/drift?name=monitored&version=1&window=1h");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["dataset_drift"], false, "{body}");
    assert_eq!(body["columns"].as_array().unwrap().len(), 4, "{body}");
    assert_eq!(body["columns"][0]["method"], "ks", "{body}");
    assert!(received.lock().unwrap().is_empty());

    // Every feature shifted by two standard deviations, five times as much traffic.
    let shifted = send(&http, "monitored", &rng.rows(1000, 2.0), 20);
    let text = wait_for(&http, "dataset drift", |t| {
        gauge(t, &format!("cairn_dataset_drift{{{MONITORED}}}")) == Some(1.0)
    });
    assert_eq!(
        gauge(&text, &format!("cairn_drift_share{{{MONITORED}}}")),
        Some(1.0),
        "{text}"
    );
    let x0 = gauge(
        &text,
        &format!("cairn_feature_drift_score{{{MONITORED},feature=\"x0\",method=\"ks\"}}"),
    )
    .unwrap();
    assert!(x0 < 1e-10, "KS p-value of a 2-sigma shift: {x0}");
    assert_eq!(
        gauge(
            &text,
            &format!("cairn_alert_firing{{alert=\"drift\",{MONITORED}}}")
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        gauge(&text, "cairn_prediction_log_records_total"),
        Some(70.0)
    );
    assert_eq!(
        gauge(&text, "cairn_prediction_log_dropped_total"),
        Some(0.0)
    );
    let started = Instant::now();
    while received.lock().unwrap().is_empty() && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    {
        let posts = received.lock().unwrap();
        assert_eq!(posts.len(), 1, "fires once per crossing: {posts:?}");
        assert_eq!(posts[0]["alert"], "drift");
        assert_eq!(posts[0]["state"], "firing");
        assert_eq!(posts[0]["model"], "monitored");
        assert_eq!(posts[0]["version"], "1");
        assert!(posts[0]["value"].as_f64().unwrap() > 0.5, "{posts:?}");
    }
    // The webhook's answer is written into the event by the webhook thread, after the post.
    let started = Instant::now();
    let out = loop {
        let (code, out) = cairn(&home, &["monitor", "alerts"]);
        assert_eq!(code, 0, "{out}");
        if out.contains("webhook: 200") || started.elapsed() > Duration::from_secs(30) {
            break out;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        out.contains("drift FIRING  models:/monitored/1  drift_share=")
            && out.contains("(above 0.5), webhook: 200"),
        "{out}"
    );
    let (code, out) = cairn(
        &home,
        &["monitor", "drift", "models:/monitored/1", "--fail-on-drift"],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("1200 predictions") && out.contains("dataset drift detected: 4 of 4"),
        "{out}"
    );

    // Ground truth by request id: right on the normal traffic, all "0" on the shifted.
    let mut labels = Vec::new();
    let (mut right, mut total) = (0, 0);
    for (id, rows) in &normal {
        for (row, x) in rows.iter().enumerate() {
            labels.push(json!({"request_id": id, "row": row, "label": truth(x)}));
            right += 1;
            total += 1;
        }
    }
    for (id, rows) in &shifted {
        for (row, x) in rows.iter().enumerate() {
            labels.push(json!({"request_id": id, "row": row, "label": 0}));
            right += usize::from(x[0] + x[1] <= 0.0);
            total += 1;
        }
    }
    let (status, body) = http.post_json(
        "/api/2.0/cairn/monitoring/labels",
        &json!({"labels": labels}),
    );
    assert_eq!((status, &body["recorded"]), (200, &json!(1200)), "{body}");
    let expected = right as f64 / total as f64;
    let (status, body) =
        http.get("/api/2.0/cairn/monitoring/metrics?name=monitored&version=1&window=1h&bucket=1h");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["buckets"][0]["labeled"], 1200, "{body}");
    assert!(
        (body["buckets"][0]["accuracy"].as_f64().unwrap() - expected).abs() < 1e-12,
        "{body}"
    );
    wait_for(&http, "the accuracy gauge", |t| {
        gauge(t, &format!("cairn_model_accuracy{{{MONITORED}}}"))
            .is_some_and(|a| (a - expected).abs() < 1e-12)
    });

    // Bad requests are named and change nothing.
    for (path, code, says) in [
        (
            "/api/2.0/cairn/monitoring/drift?name=unknown&version=1",
            404,
            "no training reference",
        ),
        (
            "/api/2.0/cairn/monitoring/drift?name=monitored&version=1&window=5x",
            400,
            "not a duration",
        ),
        (
            "/api/2.0/cairn/monitoring/drift?name=monitored",
            400,
            "version",
        ),
    ] {
        let (status, body) = http.get(path);
        assert_eq!(status, code, "{path}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(says),
            "{path}: {body}"
        );
    }
    for bad in [
        json!({"labels": [{"row": 0, "label": 1}]}),
        json!({"labels": [{"request_id": "x"}]}),
        json!({}),
    ] {
        let (status, body) = http.post_json("/api/2.0/cairn/monitoring/labels", &bad);
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error_code"], "INVALID_PARAMETER_VALUE");
    }
    let (_, body) =
        http.get("/api/2.0/cairn/monitoring/metrics?name=monitored&version=1&window=1h&bucket=1h");
    assert_eq!(body["buckets"][0]["labeled"], 1200, "{body}");
    let (code, out) = cairn(
        &home,
        &[
            "monitor",
            "alert-add",
            "x",
            "--model",
            "models:/monitored",
            "--metric",
            "latency",
            "--above",
            "1",
        ],
    );
    assert_ne!(code, 0);
    assert!(out.contains("unknown alert metric"), "{out}");
}

#[test]
fn a_burst_larger_than_the_log_buffer_is_answered_in_full_and_every_record_accounted_for() {
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(
        bin(),
        tmp.path(),
        None,
        &[
            "--prediction-log-buffer",
            "2",
            "--prediction-log-flush-secs",
            "0.05",
        ],
    );
    let http = server.http();
    register(&http, "burst");
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let http = http.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(t + 1);
                send(&http, "burst", &rng.rows(25, 0.0), 1).len()
            })
        })
        .collect();
    let answered: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(answered, 400);
    let text = wait_for(&http, "the log to drain", |t| {
        let accepted = gauge(t, "cairn_prediction_log_records_total").unwrap_or(-1.0);
        gauge(t, "cairn_prediction_log_rows_written_total") == Some(accepted)
    });
    let accepted = gauge(&text, "cairn_prediction_log_records_total").unwrap();
    let dropped = gauge(&text, "cairn_prediction_log_dropped_total").unwrap();
    eprintln!("burst: {accepted} logged, {dropped} dropped");
    assert_eq!(accepted + dropped, 400.0, "{text}");
    assert_eq!(
        gauge(
            &text,
            "cairn_inference_requests_total{model=\"burst\",version=\"1\"}"
        ),
        Some(400.0)
    );
}

/// `cairn serve FILE` logs MLflow scoring requests (`/invocations`) as well: the answer carries
/// `x-request-id`, and `cairn monitor drift` sees the logged rows against the reference.
#[test]
fn cairn_serve_logs_scoring_requests_for_monitoring() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let model = tmp.path().join("lr.onnx");
    std::fs::write(
        &model,
        cairn_serving::build::logistic_regression_onnx(&[1.0, 1.0, 0.0, 0.0], 0.0),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(bin());
    cmd.args([
        "serve",
        model.to_str().unwrap(),
        "--port",
        "0",
        "--prediction-log-flush-secs",
        "0.05",
    ])
    .env("CAIRN_HOME", &home)
    .env("CAIRN_LOG", "warn");
    let server = TestServer::spawn(cmd, &home);
    let mut rng = Rng(7);
    let reference = tmp.path().join("train.csv");
    write_reference(&reference, &rng.rows(300, 0.0));
    let (code, out) = cairn(
        &home,
        &[
            "monitor",
            "reference",
            "models:/lr/1",
            reference.to_str().unwrap(),
            "--target",
            "y",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let rows = rng.rows(400, 3.0);
    let mut ids = std::collections::HashSet::new();
    for chunk in rows.chunks(40) {
        let body = json!({"dataframe_split": {"columns": ["x0", "x1", "x2", "x3"],
                                             "data": chunk.iter().map(|r| r.to_vec()).collect::<Vec<_>>()}});
        let response = agent
            .post(&format!("{}/invocations", server.url))
            .header("content-type", "application/json")
            .send(body.to_string())
            .unwrap();
        assert_eq!(response.status(), 200);
        let id = response
            .headers()
            .get("x-request-id")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        ids.insert(id);
    }
    assert_eq!(ids.len(), 10, "one id per request");
    let started = Instant::now();
    loop {
        let (code, out) = cairn(
            &home,
            &["monitor", "drift", "models:/lr/1", "--fail-on-drift"],
        );
        if out.contains("400 predictions") {
            assert_eq!(code, 1, "{out}");
            assert!(out.contains("dataset drift detected: 4 of 4"), "{out}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{out}");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(server);
    duckdb_reads_the_log(&home.join("monitoring"), &ids);
}

/// DuckDB (the Python package, pinned in tests/interop/requirements.txt) reads the log's
/// Parquet files with their Hive partitions and no Cairn code: the rows, the partition
/// columns and the logged features all come back.
fn duckdb_reads_the_log(log_root: &std::path::Path, ids: &std::collections::HashSet<String>) {
    let Ok(python) = std::env::var(cairn_test::PYTHON_ENV) else {
        cairn_test::skip("duckdb_reads_the_log", "CAIRN_TEST_PYTHON is not set");
        return;
    };
    let script = r#"
import json, sys, duckdb
files = sys.argv[1] + "/predictions/**/*.parquet"
con = duckdb.connect()
rows = con.execute(
    "SELECT model, version, count(*), count(DISTINCT _request_id), min(\"x[0]\"), max(hour) "
    "FROM read_parquet(?, hive_partitioning = true, union_by_name = true) GROUP BY ALL",
    [files],
).fetchall()
columns = [d[0] for d in con.execute(
    "SELECT * FROM read_parquet(?, hive_partitioning = true, union_by_name = true) LIMIT 1", [files]
).description]
ids = [r[0] for r in con.execute(
    "SELECT DISTINCT _request_id FROM read_parquet(?, hive_partitioning = true)", [files]
).fetchall()]
print(json.dumps({"rows": [list(map(str, r)) for r in rows], "columns": columns, "ids": ids}))
"#;
    let answer = cairn_test::python_json(
        &python,
        &["-c".as_ref(), script.as_ref(), log_root.as_os_str()],
        &[],
    );
    let rows = answer["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{answer}");
    assert_eq!(rows[0][0], "lr");
    assert_eq!(rows[0][1], "1");
    assert_eq!(rows[0][2], "400");
    assert_eq!(rows[0][3], "10");
    let columns: Vec<&str> = answer["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for wanted in [
        "_request_id",
        "_row",
        "_timestamp_ms",
        "_latency_us",
        "x[0]",
        "x[3]",
        "_output:probability",
        "model",
        "version",
        "date",
        "hour",
    ] {
        assert!(columns.contains(&wanted), "{wanted} not in {columns:?}");
    }
    let read: std::collections::HashSet<String> = answer["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(&read, ids);
}
