//! The web UI served by `cairn server`: pages checked over HTTP (status codes, CSRF, bad
//! input), then driven in a real headless Chromium by `tests/ui/ui.test.mjs` (playwright-core),
//! which saves a screenshot per check under `target/ui-screenshots/`.
#![allow(clippy::unwrap_used)]

use cairn_test::onnx::tiny_mlp_onnx;
use cairn_test::{skip, Http, TestServer};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A 1x1 PNG (a red pixel).
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53,
    0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x08, 0xd7, 0x63, 0xf8, 0xcf, 0xc0, 0x00,
    0x00, 0x03, 0x01, 0x01, 0x00, 0x18, 0xdd, 0x8d, 0xb0, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];

/// A small Parquet file: 120 rows of (id, label).
fn parquet_bytes() -> Vec<u8> {
    use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    use std::sync::Arc;
    let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..120));
    let labels: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..120).map(|i| format!("label-{i}")),
    ));
    let batch = RecordBatch::try_from_iter([("id", ids), ("label", labels)]).unwrap();
    let mut out = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    out
}

struct Fixture {
    value: Value,
    experiment_id: String,
    runs: Vec<String>,
}

fn ok(reply: (u16, Value)) -> Value {
    assert_eq!(reply.0, 200, "{}", reply.1);
    reply.1
}

/// An experiment with three runs (params, metric histories with a spike, a tag, artifacts),
/// a dataset version recorded with `cairn data add` and logged as the first run's input, and
/// a registered ONNX model with two versions made by that run.
/// Runs `cairn ARGS` in `dir` on the server's home; panics with its stderr if it fails.
fn cairn_cli(server: &TestServer, dir: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .current_dir(dir)
        .env("CAIRN_HOME", &server.home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cairn {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn seed(server: &TestServer) -> Fixture {
    let http = server.http();
    let data_dir = server.home.join("project");
    std::fs::create_dir_all(&data_dir).unwrap();
    // `cairn data add train.csv` in the project, on the server's home.
    let data_add = |contents: &str| {
        std::fs::write(data_dir.join("train.csv"), contents).unwrap();
        cairn_cli(server, &data_dir, &["data", "add", "train.csv"]);
    };
    data_add("a,b,c\n1,2,3\n4,5,6\n");
    let pointer = std::fs::read_to_string(data_dir.join("train.csv.cairn")).unwrap();
    // A second version: one row removed, two added, for the diff page.
    data_add("a,b,c\n1,2,3\n7,8,9\n10,11,12\n");
    let digest = pointer
        .lines()
        .find_map(|l| l.strip_prefix("digest: "))
        .unwrap()
        .trim()
        .to_string();

    let exp = ok(http.post("experiments/create", &json!({"name": "ui-demo"})))["experiment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut runs = Vec::new();
    for (i, optimizer) in ["adam", "sgd", "adam"].iter().enumerate() {
        let run = ok(http.post(
            "runs/create",
            &json!({"experiment_id": exp, "run_name": format!("run-{i}"), "start_time": 1_700_000_000_000i64 + i as i64 * 1000}),
        ));
        let id = run["run"]["info"]["run_id"].as_str().unwrap().to_string();
        let metrics: Vec<Value> = (0..200)
            .map(|step| {
                let mut loss = 2.0 / (1.0 + step as f64 * 0.05) + i as f64 * 0.1;
                if step == 137 && i == 0 {
                    loss = 50.0; // a spike the chart must keep
                }
                json!({"key": "loss", "value": loss, "timestamp": 1_700_000_000_000i64 + step * 1000, "step": step})
            })
            .chain((0..5).map(|step| json!({"key": "accuracy", "value": 0.5 + 0.1 * step as f64 + 0.01 * i as f64, "timestamp": 1_700_000_000_000i64 + step * 1000, "step": step})))
            .collect();
        ok(http.post(
            "runs/log-batch",
            &json!({
                "run_id": id,
                "metrics": metrics,
                "params": [{"key": "optimizer", "value": optimizer}, {"key": "lr", "value": format!("0.0{}", i + 1)}],
                "tags": [{"key": "note", "value": "seeded by the UI test"}],
            }),
        ));
        ok(http.post("runs/update", &json!({"run_id": id, "status": "FINISHED", "end_time": 1_700_000_300_000i64 + i as i64})));
        runs.push(id);
    }
    // Artifacts of the first run, through the proxy.
    let root = format!("{exp}/{}/artifacts", runs[0]);
    for (name, bytes) in [
        ("table.csv", b"sepal,petal\n5.1,1.4\n4.9,1.3\n".to_vec()),
        ("notes.txt", b"hello from the run\n".to_vec()),
        (
            "report.html",
            b"<html><body><h1>Report</h1><script>document.title='x'</script></body></html>"
                .to_vec(),
        ),
        ("plot.png", PNG.to_vec()),
        ("predictions.parquet", parquet_bytes()),
        ("model/model.onnx", tiny_mlp_onnx()),
    ] {
        let put = http.put(
            &format!("/api/2.0/mlflow-artifacts/artifacts/{root}/{name}"),
            &bytes,
        );
        assert_eq!(put.0, 200, "{}", put.1);
    }
    ok(http.post(
        "runs/log-inputs",
        &json!({"run_id": runs[0], "datasets": [{
            "dataset": {"name": "train.csv", "digest": &digest[..32], "source_type": "local", "source": "train.csv"},
            "tags": [{"key": "mlflow.data.context", "value": "training"}],
        }]}),
    ));
    ok(http.post("registered-models/create", &json!({"name": "ui-model"})));
    for _ in 0..2 {
        ok(http.post(
            "model-versions/create",
            &json!({"name": "ui-model", "source": format!("runs:/{}/model", runs[0]), "run_id": runs[0]}),
        ));
    }
    ok(http.post(
        "registered-models/alias",
        &json!({"name": "ui-model", "alias": "champion", "version": "1"}),
    ));
    // A passing gate on version 1 (metric thresholds on its run), then a promotion, both by
    // the CLI as a user runs them: the version page shows the table and the promotion.
    std::fs::write(
        data_dir.join("gate.yaml"),
        "metrics:\n  accuracy: {threshold: 0.8, greater_is_better: true}\n  loss: {threshold: 0.5, greater_is_better: false}\n",
    )
    .unwrap();
    cairn_cli(
        server,
        &data_dir,
        &[
            "gate",
            "models:/ui-model/1",
            "--policy",
            "gate.yaml",
            "--tracking-uri",
            &server.url,
        ],
    );
    cairn_cli(
        server,
        &data_dir,
        &[
            "promote",
            "models:/ui-model/1",
            "--alias",
            "production",
            "--tracking-uri",
            &server.url,
        ],
    );
    let trace = seed_trace(server, &exp);
    seed_monitoring(server);
    let dataset = seed_evaluation_dataset(server, &exp);
    let value = json!({
        "trace_id": trace,
        "evaluation_dataset": dataset,
        "experiment_id": exp,
        "experiment_name": "ui-demo",
        "runs": runs,
        "adam_runs": 2,
        "model": "ui-model",
        "dataset_name": "train.csv",
        "dataset_digest": digest,
    });
    Fixture {
        value,
        experiment_id: exp,
        runs,
    }
}

/// A training set recorded by `cairn features get-historical --dataset ui-training` from a
/// feature view whose source is the dataset version `stats.parquet@1`.
fn seed_training_set(server: &TestServer) {
    use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
    use std::sync::Arc;
    let dir = server.home.join("features");
    std::fs::create_dir_all(dir.join(".git")).unwrap();
    let write = |name: &str, batch: RecordBatch| {
        let file = std::fs::File::create(dir.join(name)).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    };
    let at = 1_793_491_200_000_000i64; // 2026-11-01T00:00:00Z
    let times = |n: usize, t: i64| {
        Arc::new(TimestampMicrosecondArray::from(vec![t; n]).with_timezone("UTC")) as ArrayRef
    };
    write(
        "stats.parquet",
        RecordBatch::try_from_iter([
            (
                "driver_id",
                Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef,
            ),
            ("event_timestamp", times(3, at)),
            (
                "conv_rate",
                Arc::new(Float64Array::from(vec![0.1, 0.2, 0.3])) as ArrayRef,
            ),
        ])
        .unwrap(),
    );
    write(
        "entities.parquet",
        RecordBatch::try_from_iter([
            (
                "driver_id",
                Arc::new(Int64Array::from(vec![1, 3])) as ArrayRef,
            ),
            ("event_timestamp", times(2, at + 3_600_000_000)),
        ])
        .unwrap(),
    );
    cairn_cli(server, &dir, &["data", "add", "stats.parquet"]);
    std::fs::write(
        dir.join("features.yaml"),
        "project: ui\nentities:\n  - {name: driver, join_keys: [driver_id]}\nsources:\n  - {name: stats, dataset: stats.parquet@1, timestamp_field: event_timestamp}\nfeature_views:\n  - {name: driver_stats, entities: [driver], source: stats, schema: [{name: conv_rate, dtype: Float64}]}\n",
    )
    .unwrap();
    cairn_cli(server, &dir, &["features", "apply"]);
    cairn_cli(
        server,
        &dir,
        &[
            "features",
            "get-historical",
            "--entities",
            "entities.parquet",
            "--features",
            "driver_stats:conv_rate",
            "-o",
            "training.parquet",
            "--dataset",
            "ui-training",
        ],
    );
}

/// An evaluation dataset of the experiment with two records, as MLflow's client makes one
/// (create, then merge records). Returns its id.
fn seed_evaluation_dataset(server: &TestServer, exp: &str) -> String {
    let http = server.http();
    let made = http.post_json(
        "/api/3.0/mlflow/datasets/create",
        &json!({"name": "qa-golden", "experiment_ids": [exp], "tags": "{\"team\": \"search\"}"}),
    );
    assert_eq!(made.0, 200, "{}", made.1);
    let id = made.1["dataset"]["dataset_id"]
        .as_str()
        .unwrap()
        .to_string();
    let records = json!([
        {"inputs": {"question": "What is a cairn?"},
         "expectations": {"answer": "A pile of stones marking a path"},
         "source": {"source_type": "HUMAN", "source_data": {"user": "ann"}}},
        {"inputs": {"question": "Who builds them?"},
         "expectations": {"answer": "Walkers"}},
    ]);
    let merged = http.post_json(
        &format!("/api/3.0/mlflow/datasets/{id}/records"),
        &json!({"records": records.to_string()}),
    );
    assert_eq!(merged.0, 200, "{}", merged.1);
    id
}

/// A training reference for `ui-model` version 1, forty answered requests (the second half
/// shifted away from the reference) and a label for each of their rows; waits until the
/// monitoring API counts them, so the monitoring page has drift, request and accuracy charts.
fn seed_monitoring(server: &TestServer) {
    let reference = server.home.join("reference.csv");
    let mut csv = String::from("x[0],x[1],x[2],offset[0],offset[1]\n");
    for i in 0..200 {
        let v = (i % 20) as f64 / 10.0;
        csv.push_str(&format!("{v},{},{},0,0\n", 1.0 - v, v / 2.0));
    }
    std::fs::write(&reference, csv).unwrap();
    cairn_cli(
        server,
        &server.home,
        &[
            "monitor",
            "reference",
            "models:/ui-model/1",
            reference.to_str().unwrap(),
        ],
    );
    let http = server.http();
    let mut labels = Vec::new();
    for r in 0..40 {
        let shift = if r < 20 { 0.0 } else { 5.0 };
        let x: Vec<f64> = (0..5)
            .flat_map(|row| {
                let v = ((r + row) % 20) as f64 / 10.0 + shift;
                [v, 1.0 - v, v / 2.0]
            })
            .collect();
        let id = format!("ui-request-{r}");
        let reply = http.post_json(
            "/v2/models/ui-model/versions/1/infer",
            &json!({"id": id, "inputs": [
                {"name": "x", "shape": [5, 3], "datatype": "FP32", "data": x},
                {"name": "offset", "shape": [5, 2], "datatype": "FP32", "data": vec![0.0; 10]},
            ]}),
        );
        assert_eq!(reply.0, 200, "{}", reply.1);
        labels.extend(
            (0..5).map(|row| json!({"request_id": id, "row": row, "label": (r + row) % 2})),
        );
    }
    let reply = http.post_json(
        "/api/2.0/cairn/monitoring/labels",
        &json!({ "labels": labels }),
    );
    assert_eq!(reply.0, 200, "{}", reply.1);
    // The prediction log is written in batches: wait (generously) until all rows are readable.
    let started = std::time::Instant::now();
    loop {
        let (status, drift) =
            http.get("/api/2.0/cairn/monitoring/drift?name=ui-model&version=1&window=1h");
        if status == 200 && drift["current_rows"].as_u64() == Some(200) {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "the logged predictions never showed: {status} {drift}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A trace of three spans (a retriever and an LLM call under a chain; the LLM call failed),
/// sent as an OpenTelemetry exporter sends it, then named and given feedback as MLflow's
/// client does. Returns its id.
fn seed_trace(server: &TestServer, exp: &str) -> String {
    let hex = "7e".repeat(16);
    let span = |id: &str,
                parent: Option<&str>,
                name: &str,
                kind: &str,
                start_ms: u64,
                end_ms: u64,
                error: bool| {
        let mut s = json!({
            "traceId": hex, "spanId": id, "name": name,
            "startTimeUnixNano": (1_700_000_100_000u64 + start_ms) * 1_000_000,
            "endTimeUnixNano": (1_700_000_100_000u64 + end_ms) * 1_000_000,
            "attributes": [
                {"key": "mlflow.spanType", "value": {"stringValue": format!("\"{kind}\"")}},
                {"key": "mlflow.spanInputs", "value": {"stringValue": format!("{{\"question\": \"where is {name}\"}}")}},
                {"key": "mlflow.spanOutputs", "value": {"stringValue": format!("\"{name} done\"")}},
            ],
            "status": {"code": if error { 2 } else { 1 }},
        });
        if let Some(p) = parent {
            s["parentSpanId"] = json!(p);
        }
        if error {
            s["events"] = json!([{"name": "exception", "timeUnixNano": "1700000100500000000",
                "attributes": [{"key": "exception.message", "value": {"stringValue": "model timed out"}}]}]);
        }
        s
    };
    let body = json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        span("00000000000000a1", None, "answer", "CHAIN", 0, 900, false),
        span("00000000000000b1", Some("00000000000000a1"), "retrieve", "RETRIEVER", 10, 200, false),
        span("00000000000000c1", Some("00000000000000a1"), "generate", "LLM", 220, 880, true),
    ]}]}]});
    let resp = agent()
        .post(&format!("{}/v1/traces", server.url))
        .header("content-type", "application/json")
        .header("x-mlflow-experiment-id", exp)
        .send(body.to_string().as_bytes())
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let id = format!("tr-{hex}");
    let http = server.http();
    let tagged = agent()
        .patch(&format!("{}/api/2.0/mlflow/traces/{id}/tags", server.url))
        .header("content-type", "application/json")
        .send(
            json!({"key": "mlflow.traceName", "value": "answer"})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
    assert_eq!(tagged.status().as_u16(), 200);
    let feedback = http.post_json(
        &format!("/api/3.0/mlflow/traces/{id}/assessments"),
        &json!({"assessment": {"assessment_name": "relevance", "trace_id": id,
            "source": {"source_type": "HUMAN", "source_id": "ann"},
            "feedback": {"value": 0.75}, "rationale": "on topic"}}),
    );
    assert_eq!(feedback.0, 200, "{}", feedback.1);
    id
}

/// A client that reports every status and follows no redirect.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .new_agent()
}

/// `GET` a page: status and body text.
fn page(server: &TestServer, path: &str) -> (u16, String) {
    let agent = agent();
    let mut resp = agent.get(&format!("{}{path}", server.url)).call().unwrap();
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap_or_default())
}

/// `POST` a form with a cookie; status and `Location`.
fn post_form(server: &TestServer, path: &str, cookie: Option<&str>, body: &str) -> (u16, String) {
    let agent = agent();
    let mut req = agent
        .post(&format!("{}{path}", server.url))
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let resp = req.send(body.as_bytes()).unwrap();
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (resp.status().as_u16(), location)
}

#[test]
fn pages_answer_with_the_right_status_and_content() {
    let server = TestServer::start(Path::new(env!("CARGO_BIN_EXE_cairn")), None);
    let fx = seed(&server);
    let exp = &fx.experiment_id;

    let (status, body) = page(&server, "/");
    assert_eq!(status, 200);
    assert!(
        body.contains("ui-demo") && body.contains("<table"),
        "{body}"
    );

    let (status, body) = page(
        &server,
        &format!("/experiments/{exp}?filter=params.optimizer%20%3D%20%27sgd%27"),
    );
    assert_eq!(status, 200);
    assert!(
        body.contains("run-1") && !body.contains(">run-0<"),
        "filtered runs"
    );

    let (status, body) = page(
        &server,
        &format!("/experiments/{exp}?filter=metrics.loss%20%3C%3C%20x"),
    );
    assert_eq!(status, 400, "a bad filter is a 400");
    assert!(
        body.contains("filter-error"),
        "the error is shown next to the box"
    );

    assert_eq!(
        page(&server, &format!("/experiments/{exp}?offset=abc")).0,
        400
    );
    assert_eq!(page(&server, "/experiments/987654").0, 404);
    assert_eq!(page(&server, "/experiments/not-a-number").0, 404);
    assert_eq!(
        page(
            &server,
            &format!("/experiments/{exp}/runs/{}", "f".repeat(32))
        )
        .0,
        404
    );
    assert_eq!(page(&server, "/models/nope").0, 404);
    assert_eq!(page(&server, "/nowhere").0, 404);
    let (status, body) = page(&server, "/api/2.0/mlflow/nowhere");
    assert_eq!(status, 404);
    assert!(
        body.contains("ENDPOINT_NOT_FOUND"),
        "API paths keep JSON 404s: {body}"
    );
    assert_eq!(page(&server, "/chart?run=x&smooth=2&metric=loss").0, 400);

    // Artifact paths never leave the run's root.
    let run0 = &fx.runs[0];
    for bad in [
        "..%2F..%2Fcairn.db",
        "%2Fetc%2Fpasswd",
        "model%2F..%2F..%2F..",
    ] {
        let (status, _) = page(
            &server,
            &format!("/experiments/{exp}/runs/{run0}/artifact-raw?path={bad}"),
        );
        assert!(status == 400 || status == 404, "{bad}: {status}");
    }
    let (status, body) = page(
        &server,
        &format!("/experiments/{exp}/runs/{run0}/artifacts?path=model%2Fmodel.onnx"),
    );
    assert_eq!(status, 200);
    assert!(
        body.contains("offset") && body.contains("scores"),
        "ONNX inputs and outputs shown"
    );

    let (status, body) = page(
        &server,
        &format!("/experiments/{exp}/runs/{run0}/artifacts?path=predictions.parquet"),
    );
    assert_eq!(status, 200);
    assert!(
        body.contains("<th>label</th>") && body.contains("label-49") && !body.contains("label-50"),
        "first 50 rows"
    );
    let (status, body) = page(
        &server,
        &format!("/experiments/{exp}/runs/{run0}/artifacts?path=report.html"),
    );
    assert_eq!(status, 200);
    assert!(
        body.contains("<iframe class=\"report\" sandbox=\"\""),
        "HTML reports are sandboxed"
    );
    let raw = agent()
        .get(&format!(
            "{}/experiments/{exp}/runs/{run0}/artifact-raw?path=report.html",
            server.url
        ))
        .call()
        .unwrap();
    assert_eq!(
        raw.headers().get("content-security-policy").unwrap(),
        "sandbox"
    );

    // The chart keeps the spike at step 137 however it is downsampled.
    let (status, body) = page(&server, &format!("/chart?run={run0}&metric=loss"));
    assert_eq!(status, 200);
    assert!(
        body.contains("[137.0,50.0]"),
        "spike kept in the chart's points"
    );

    // Grouping by a param with a metric's min/mean/max.
    let (status, body) = page(
        &server,
        &format!("/experiments/{exp}?group=params.optimizer&agg=metrics.accuracy"),
    );
    assert_eq!(status, 200);
    assert!(body.contains("id=\"groups\"") && body.contains("adam") && body.contains("sgd"));

    // Forms need the CSRF token of the browser's cookie; without it nothing changes.
    let (status, _) = post_form(
        &server,
        "/models/ui-model/edit",
        None,
        "action=set_alias&alias=champion&version=2",
    );
    assert_eq!(status, 403);
    let (status, _) = post_form(
        &server,
        "/models/ui-model/edit",
        Some(&format!("cairn_csrf={}", "a".repeat(32))),
        &format!(
            "csrf={}&action=set_alias&alias=champion&version=2",
            "b".repeat(32)
        ),
    );
    assert_eq!(status, 403);
    let alias = server
        .http()
        .get("/api/2.0/mlflow/registered-models/alias?name=ui-model&alias=champion");
    assert_eq!(alias.1["model_version"]["version"], "1", "unchanged");
    let token = "c".repeat(32);
    let (status, location) = post_form(
        &server,
        "/models/ui-model/edit",
        Some(&format!("cairn_csrf={token}")),
        &format!("csrf={token}&action=set_alias&alias=champion&version=2"),
    );
    assert_eq!((status, location.as_str()), (303, "/models/ui-model"));
    let alias = server
        .http()
        .get("/api/2.0/mlflow/registered-models/alias?name=ui-model&alias=champion");
    assert_eq!(
        alias.1["model_version"]["version"], "2",
        "moved through the same service"
    );
    let (status, _) = post_form(
        &server,
        &format!("/experiments/{exp}/edit"),
        Some(&format!("cairn_csrf={token}")),
        &format!("csrf={token}&action=rename&name="),
    );
    assert_eq!(status, 400, "an empty name is refused");

    // The diff of two dataset versions, by rows.
    let (status, body) = page(&server, "/datasets/train.csv/diff/1/2");
    assert_eq!(status, 200, "{body}");
    let row = body.split("<tbody>").nth(1).unwrap();
    assert!(row.contains("modified"), "{row}");
    assert!(
        row.contains("<td class=\"num\">2</td><td class=\"num\">1</td>"),
        "2 rows added, 1 removed: {row}"
    );
    assert_eq!(page(&server, "/datasets/train.csv/diff/1/9").0, 404);

    // A run with many metric keys: the run page lists 100 and finds the others.
    let run2 = &fx.runs[2];
    let wide: Vec<Value> = (0..300)
        .map(|k| json!({"key": format!("wide_{k:03}"), "value": k, "timestamp": 1_700_000_000_000i64, "step": 0}))
        .collect();
    ok(server
        .http()
        .post("runs/log-batch", &json!({"run_id": run2, "metrics": wide})));
    let (status, body) = page(&server, &format!("/experiments/{exp}/runs/{run2}"));
    assert_eq!(status, 200);
    assert!(
        body.contains("302 of 302 metrics match; the first 100 are shown"),
        "capped"
    );
    assert_eq!(body.matches(">chart</a>").count(), 100);
    let (_, body) = page(
        &server,
        &format!("/experiments/{exp}/runs/{run2}?metrics=wide_29"),
    );
    assert!(body.contains("10 of 302 metrics match"), "found by name");
    assert!(body.contains("<td>wide_299</td>"));

    // Odd input anywhere is a 4xx page, never a 500.
    let odd = [
        format!("/experiments/{exp}?view=bogus"),
        format!("/experiments/{exp}?size=0"),
        format!("/experiments/{exp}?size=99999999999999999999"),
        format!("/experiments/{exp}?col=bogus"),
        format!("/experiments/{exp}?col=metrics."),
        format!("/experiments/{exp}?group=nothing"),
        format!("/experiments/{exp}?order=bogus%20sideways"),
        format!("/experiments/{exp}?filter=%ZZ"),
        format!("/experiments/{exp}?filter=tags.%60unclosed"),
        "/runs".into(),
        "/runs?experiments=1,x".into(),
        format!("/experiments/{exp}/columns?q=%25%5F%5C"),
        "/chart".into(),
        "/chart?run=nope&metric=loss".into(),
        format!("/chart?run={run0}&metric=loss&x=sideways"),
        format!("/chart?run={run0}&metric=loss&from=5&to=1"),
        format!("/chart?run={run0}&metric=loss&smooth=NaN"),
        format!("/chart?run={run0}&metric=missing"),
        format!("/chart.svg?run={run0}"),
        "/compare".into(),
        "/compare?run=nope".into(),
        format!("/compare?run={run0}&x=bogus"),
        "/models/ui-model/versions/0".into(),
        "/models/ui-model/versions/abc".into(),
        "/models/ui-model/versions/99/playground".into(),
        "/datasets/train.csv/abc".into(),
        "/datasets/train.csv/99".into(),
        "/monitoring/ui-model/1?window=forever".into(),
        "/monitoring/nope/1".into(),
        format!("/experiments/{exp}/runs/{run0}/artifacts?path=missing.txt"),
        format!("/experiments/{exp}/runs/{run0}/artifacts?path=%00"),
        "/ui-api/keys?experiments=x".into(),
        "/ui-api/keys?kind=bogus".into(),
        format!("/experiments/{exp}/evaluation-datasets?filter=name%20%3E%3E"),
        format!("/experiments/{exp}/evaluation-datasets?page_token=%%%"),
        format!("/experiments/{exp}/evaluation-datasets/d-0000"),
        "/experiments/0/evaluation-datasets/d-0000?page_token=zzz".into(),
        "/experiments/x/evaluation-datasets".into(),
    ];
    for path in &odd {
        let (status, body) = page(&server, path);
        assert!(
            (200..500).contains(&status),
            "{path}: {status} {}",
            &body[..body.len().min(300)]
        );
    }

    // An evaluation dataset is reached only through an experiment it belongs to.
    let ds = fx.value["evaluation_dataset"].as_str().unwrap();
    let (status, body) = page(
        &server,
        &format!("/experiments/{exp}/evaluation-datasets/{ds}"),
    );
    assert_eq!(status, 200);
    assert!(body.contains("Walkers"), "{body}");
    let (status, _) = page(&server, &format!("/experiments/0/evaluation-datasets/{ds}"));
    assert_eq!(status, 404, "another experiment's path does not reach it");

    // The column chooser's key listing copes with many keys by searching and capping.
    let keys = server
        .http()
        .get(&format!("/ui-api/keys?experiments={exp}&kind=metric&q=los"));
    assert_eq!(keys.1["keys"], json!(["metrics.loss"]));
}

/// Logs a run with the real MLflow client and returns the `View run ... at: URL` link it
/// printed (checked to name that run); `None`, loudly, without `CAIRN_TEST_PYTHON`.
fn mlflow_printed_link(server: &TestServer) -> Option<String> {
    let Ok(python) = std::env::var(cairn_test::PYTHON_ENV) else {
        assert!(
            std::env::var("CI").is_err(),
            "CAIRN_TEST_PYTHON must be set in CI"
        );
        skip(
            "the_ui_works_in_a_real_browser (MLflow's printed link)",
            "CAIRN_TEST_PYTHON is not set",
        );
        return None;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/ui_link.py");
    let out = Command::new(python)
        .arg(&script)
        .env("MLFLOW_TRACKING_URI", &server.url)
        .env("PYTHONWARNINGS", "ignore")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let ids: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let printed = format!("{stdout}\n{stderr}");
    let link = printed
        .lines()
        .find_map(|l| l.split("View run linked-by-mlflow at: ").nth(1))
        .unwrap_or_else(|| panic!("the client printed no run link:\n{printed}"))
        .trim()
        .to_string();
    let expected = format!(
        "/#/experiments/{}/runs/{}",
        ids["experiment_id"].as_str().unwrap(),
        ids["run_id"].as_str().unwrap()
    );
    assert!(
        link.ends_with(&expected),
        "{link} should end with {expected}"
    );
    Some(link)
}

/// Where a browser test runs from: Debian's chromium (`CAIRN_TEST_CHROMIUM`) and
/// `tests/ui/node_modules` (`npm ci` in `tests/ui`), which `.ci/run` provides. `None` (a loud
/// skip, a failure in CI) without them.
fn browser_setup(test: &str) -> Option<(String, PathBuf, PathBuf)> {
    let Ok(chromium) = std::env::var("CAIRN_TEST_CHROMIUM") else {
        assert!(
            std::env::var("CI").is_err(),
            "CAIRN_TEST_CHROMIUM must be set in CI"
        );
        skip(
            test,
            "CAIRN_TEST_CHROMIUM is not set (Debian's chromium, and `npm ci` in tests/ui)",
        );
        return None;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    assert!(
        root.join("tests/ui/node_modules/playwright-core").exists(),
        "run `npm ci` in tests/ui first"
    );
    let shots: PathBuf = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"))
        .join("ui-screenshots");
    Some((chromium, root, shots))
}

/// Runs one of `tests/ui/`'s scripts with `env`; fails unless it prints `done`.
fn run_browser_script(script: &Path, env: &[(&str, String)], done: &str) {
    let out = Command::new("node")
        .arg(script)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser test failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains(done), "{stdout}");
}

#[test]
fn the_ui_works_in_a_real_browser() {
    let Some((chromium, root, shots)) = browser_setup("the_ui_works_in_a_real_browser") else {
        return;
    };
    let server = TestServer::start(Path::new(env!("CARGO_BIN_EXE_cairn")), None);
    let fx = seed(&server);
    seed_training_set(&server);
    // The link the real MLflow client prints after a run, when a Python with mlflow is there.
    let mut fixture = fx.value.clone();
    if let Some(link) = mlflow_printed_link(&server) {
        fixture["mlflow_link"] = json!(link);
    }
    // The playground answers through the server's own OIP endpoint.
    let check = Http::new(&server.url).get("/v2/models/ui-model/versions/1");
    assert_eq!(check.0, 200, "{}", check.1);
    run_browser_script(
        &root.join("tests/ui/ui.test.mjs"),
        &[
            ("CAIRN_URL", server.url.clone()),
            ("CAIRN_UI_FIXTURE", fixture.to_string()),
            ("CAIRN_CHROMIUM", chromium),
            ("CAIRN_SCREENSHOTS", shots.display().to_string()),
        ],
        "ui: all checks passed",
    );
}

/// `cairn server --auth`: a user signs in through the form, sees only what they may read,
/// renames, tags, deletes and restores their experiment, is refused another's, signs out.
#[test]
fn signing_in_works_in_a_real_browser() {
    let Some((chromium, root, shots)) = browser_setup("signing_in_works_in_a_real_browser") else {
        return;
    };
    const ADMIN_PASSWORD: &str = "admin-password-for-the-ui-test";
    const PASSWORD: &str = "carol-password-for-the-ui-test";
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.args(["server", "--port", "0", "--auth"])
        .args(["--default-permission", "NO_PERMISSIONS"])
        .env("CAIRN_HOME", home.path())
        .env("CAIRN_LOG", "warn")
        .env("CAIRN_ADMIN_PASSWORD", ADMIN_PASSWORD);
    let server = TestServer::spawn(cmd, home.path());
    let admin = server.http().basic("admin", ADMIN_PASSWORD);
    for user in ["carol", "dave"] {
        let made = admin.post_json(
            "/api/2.0/mlflow/users/create",
            &json!({"username": user, "password": PASSWORD}),
        );
        assert_eq!(made.0, 200, "{}", made.1);
    }
    let carol = server.http().basic("carol", PASSWORD);
    let dave = server.http().basic("dave", PASSWORD);
    let own_id = ok(carol.post("experiments/create", &json!({"name": "carols-churn"})))
        ["experiment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let others_id = ok(dave.post("experiments/create", &json!({"name": "others-secret"})))
        ["experiment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let fixture = json!({
        "user": "carol",
        "password": PASSWORD,
        "own": "carols-churn",
        "own_id": own_id,
        "others_id": others_id,
    });
    run_browser_script(
        &root.join("tests/ui/login.test.mjs"),
        &[
            ("CAIRN_URL", server.url.clone()),
            ("CAIRN_LOGIN_FIXTURE", fixture.to_string()),
            ("CAIRN_CHROMIUM", chromium),
            ("CAIRN_SCREENSHOTS", shots.display().to_string()),
        ],
        "login: all checks passed",
    );
    // What the browser did reached the store, as carol.
    let (_, exp) = carol.get(&format!(
        "/api/2.0/mlflow/experiments/get?experiment_id={own_id}"
    ));
    assert_eq!(exp["experiment"]["name"], "carols-churn-renamed");
    assert_eq!(exp["experiment"]["lifecycle_stage"], "active");
}
