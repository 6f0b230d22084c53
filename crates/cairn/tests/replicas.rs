//! Two `cairn server` replicas on one PostgreSQL database and one S3-compatible bucket (moto's),
//! as a team runs them behind a load balancer. The real MLflow client drives them alternately
//! (tests/interop/replicas_client_test.py); then labels posted to A count in B's accuracy, an
//! alert rule crossing fires exactly one event and one webhook across both, and a replica
//! killed with SIGKILL mid-traffic leaves the other answering with every acknowledged write
//! and taking over the periodic work.
#![allow(clippy::unwrap_used)]

use cairn_test::{skip, Http, PgDatabase, TestServer};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_cairn"))
}

/// Waits until `ready` holds, failing with `what` after a generous deadline.
fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `cairn monitor ...` on the shared store.
fn monitor_cli(home: &Path, backend: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(bin())
        .arg("monitor")
        .args(args)
        .args(["--backend-store-uri", backend])
        .env("CAIRN_HOME", home)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "cairn monitor {args:?}: {text}");
    text
}

fn evaluations(http: &Http) -> Option<f64> {
    let (status, _) = http.get("/health");
    if status != 200 {
        return None;
    }
    let (_, body) = http.get_bytes("/metrics");
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix("cairn_monitor_evaluations_total "))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn two_replicas_on_one_database_and_one_bucket_act_as_one_server() {
    let test = "two_replicas_on_one_database_and_one_bucket_act_as_one_server";
    let (Ok(python), Ok(bucket)) = (
        std::env::var(cairn_test::PYTHON_ENV),
        std::env::var("CAIRN_TEST_S3_URL"),
    ) else {
        skip(
            test,
            "needs CAIRN_TEST_PYTHON and CAIRN_TEST_S3_URL (with AWS_ENDPOINT_URL; .ci/run starts moto)",
        );
        return;
    };
    let Some(db) = PgDatabase::create(test) else {
        return;
    };
    cairn_test::tally("postgresql");
    let shared = format!(
        "{}/replicas-{}",
        bucket.trim_end_matches('/'),
        std::process::id()
    );
    let (artifacts, log) = (
        format!("{shared}/artifacts"),
        format!("{shared}/monitoring"),
    );
    let flags = [
        "--artifacts-destination",
        &artifacts,
        "--prediction-log-destination",
        &log,
        "--prediction-log-flush-secs",
        "0.05",
        "--monitor-interval-secs",
        "0.3",
    ];
    let (home_a, home_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = TestServer::start_in(bin(), home_a.path(), Some(&db.url), &flags);
    let mut b = TestServer::start_in(bin(), home_b.path(), Some(&db.url), &flags);
    let (http_a, http_b) = (a.http(), b.http());

    // The MLflow client, alternating between the replicas.
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/replicas_client_test.py");
    let client = cairn_test::python_json(
        &python,
        &[script.as_os_str()],
        &[
            ("URL_A", &a.url),
            ("URL_B", &b.url),
            ("MLFLOW_TRACKING_URI", &a.url),
            ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0"),
        ],
    );
    assert_eq!(client["ok"], true);

    // Monitoring state set up once, through the shared store.
    let reference = home_a.path().join("train.csv");
    let mut csv = String::from("x0,x1,x2,x3,y\n");
    for row in client["train"].as_array().unwrap() {
        let v: Vec<String> = row
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap().to_string())
            .collect();
        csv.push_str(&format!("{}\n", v.join(",")));
    }
    std::fs::write(&reference, csv).unwrap();
    monitor_cli(
        home_a.path(),
        &db.url,
        &[
            "reference",
            "models:/shared/1",
            reference.to_str().unwrap(),
            "--target",
            "y",
        ],
    );
    let (hook, received) = cairn_test::webhook_receiver();
    monitor_cli(
        home_b.path(),
        &db.url,
        &[
            "alert-add",
            "drift",
            "--model",
            "models:/shared/1",
            "--metric",
            "drift_share",
            "--above",
            "0.5",
            "--window",
            "1h",
            "--webhook",
            &hook,
        ],
    );

    // Shifted traffic through both replicas; labels for all of it posted to A only: the true
    // class is the predicted one for even rows of each request and the other for odd rows.
    let shifted = client["shifted"].as_array().unwrap();
    let predicted = client["predicted"].as_array().unwrap();
    let mut labels = Vec::new();
    for (i, chunk) in shifted.chunks(6).enumerate() {
        let flat: Vec<f64> = chunk
            .iter()
            .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
            .collect();
        let id = format!("traffic-{i}");
        let via = if i % 2 == 0 { &http_a } else { &http_b };
        let (status, answer) = via.post_json(
            "/v2/models/shared/versions/1/infer",
            &json!({"id": id, "inputs": [{"name": "X", "datatype": "FP32", "shape": [chunk.len(), 4], "data": flat}]}),
        );
        assert_eq!(status, 200, "{answer}");
        for row in 0..chunk.len() {
            let p = predicted[i * 6 + row].as_i64().unwrap();
            let truth = if row % 2 == 0 { p } else { 1 - p };
            labels.push(json!({"request_id": id, "row": row, "label": truth}));
        }
    }
    let (status, body) = http_a.post_json(
        "/api/2.0/cairn/monitoring/labels",
        &json!({"labels": labels}),
    );
    assert_eq!(status, 200, "{body}");
    // B's accuracy counts A's labels and A's predictions (the log and the labels are shared).
    let metrics = "/api/2.0/cairn/monitoring/metrics?name=shared&version=1&window=1h&bucket=1h";
    wait_for("B to see every labelled row", || {
        let (_, m) = http_b.get(metrics);
        m["buckets"][0]["labeled"] == 60
    });
    let (_, m) = http_b.get(metrics);
    // The client's three 8-row probes of version 1 (by number and by alias) count too.
    assert_eq!(m["buckets"][0]["predictions"], 60 + 3 * 8, "{m}");
    assert_eq!(m["buckets"][0]["accuracy"], 0.5, "{m}");

    // The drift rule crosses: one webhook call and one event across both replicas, however
    // many evaluations follow.
    wait_for("the webhook", || !received.lock().unwrap().is_empty());
    let (before_a, before_b) = (evaluations(&http_a).unwrap(), evaluations(&http_b).unwrap());
    wait_for("more evaluations", || {
        evaluations(&http_a).unwrap() + evaluations(&http_b).unwrap() >= before_a + before_b + 5.0
    });
    assert_eq!(
        received.lock().unwrap().len(),
        1,
        "{:?}",
        received.lock().unwrap()
    );
    for http in [&http_a, &http_b] {
        let (_, alerts) = http.get("/api/2.0/cairn/monitoring/alerts");
        let events = alerts["events"].as_array().unwrap();
        assert_eq!(events.len(), 1, "{alerts}");
        assert_eq!(events[0]["state"], "firing");
        // Both replicas, leader or not, say the rule fires and list the monitored version.
        let firing = &alerts["rules"][0]["firing"];
        assert_eq!(
            firing,
            &json!([{"model": "shared", "version": "1"}]),
            "{alerts}"
        );
        let (status, page) = http.get_bytes("/monitoring");
        let page = String::from_utf8_lossy(&page);
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("firing (1)"), "{page}");
        assert!(page.contains("/monitoring/shared/1"), "{page}");
    }
    // SIGKILL B mid-traffic: A keeps answering, and every write either acknowledged is there.
    let run_id = client["run_id"].as_str().unwrap();
    let mut acknowledged = Vec::new();
    for step in 100..400 {
        if step == 250 {
            b.kill9();
        }
        let via = if step % 2 == 0 { &http_a } else { &http_b };
        let body =
            json!({"run_id": run_id, "key": "after", "value": step, "timestamp": 1, "step": step});
        if let Some((200, _)) = via.try_post("runs/log-metric", &body) {
            acknowledged.push(step);
        }
    }
    assert!(
        acknowledged.iter().any(|s| s % 2 == 1),
        "B acknowledged nothing"
    );
    assert!(acknowledged
        .iter()
        .filter(|s| **s >= 250)
        .all(|s| s % 2 == 0));
    let (status, history) = http_a.get(&format!(
        "/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key=after&max_results=1000"
    ));
    assert_eq!(status, 200, "{history}");
    let mut stored: Vec<i64> = history["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["step"].as_i64().unwrap())
        .collect();
    stored.sort_unstable();
    assert_eq!(stored, acknowledged);
    let (status, _) = http_a.post_json(
        "/v2/models/shared/versions/1/infer",
        &json!({"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": [0.0, 0.0, 0.0, 0.0]}]}),
    );
    assert_eq!(status, 200);
    // A holds (or takes over) the evaluation lease once B's has expired.
    let after_kill = evaluations(&http_a).unwrap();
    wait_for("A to evaluate after B died", || {
        evaluations(&http_a).unwrap() >= after_kill + 3.0
    });
    assert_eq!(received.lock().unwrap().len(), 1, "the alert fired again");
}
