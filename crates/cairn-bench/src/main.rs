//! `cairn-bench tracking --url URL`: the tracking workload of `bench/tracking`, sent as plain
//! MLflow REST requests so Cairn and `mlflow server` get exactly the same traffic. Prints one
//! JSON object with the measurements. `cairn-bench ui-seed` fills a server with the data of
//! `bench/ui`.
#![allow(clippy::unwrap_used)] // a benchmark tool: a failed request should stop it loudly

use serde_json::{json, Value};
use std::time::{Duration, Instant};

struct Client {
    base: String,
    agent: ureq::Agent,
    /// `Authorization` for every request, from `CAIRN_BENCH_BASIC=user:password`.
    authorization: Option<String>,
}

impl Client {
    fn new(base: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(600)))
            .build()
            .new_agent();
        let authorization = std::env::var("CAIRN_BENCH_BASIC").ok().map(|creds| {
            use base64::Engine;
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(creds)
            )
        });
        Client {
            base: base.trim_end_matches('/').to_string(),
            agent,
            authorization,
        }
    }

    fn signed<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.authorization {
            Some(value) => request.header("authorization", value),
            None => request,
        }
    }

    /// POSTs `body` to any path; returns the status.
    fn post_status(&self, path: &str, body: &str) -> u16 {
        let resp = self
            .signed(self.agent.post(&format!("{}{path}", self.base)))
            .header("content-type", "application/json")
            .send(body.as_bytes())
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        resp.status().as_u16()
    }

    fn post(&self, path: &str, body: &str) -> Value {
        let mut resp = self
            .signed(
                self.agent
                    .post(&format!("{}/api/2.0/mlflow/{path}", self.base)),
            )
            .header("content-type", "application/json")
            .send(body.as_bytes())
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let text = resp
            .body_mut()
            .with_config()
            .limit(1 << 31)
            .read_to_string()
            .unwrap();
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// POSTs JSON to any path; the raw answer (timed to the last byte).
    fn post_text(&self, path: &str, body: &str) -> String {
        let mut resp = self
            .signed(self.agent.post(&format!("{}{path}", self.base)))
            .header("content-type", "application/json")
            .send(body.as_bytes())
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        resp.body_mut()
            .with_config()
            .limit(1 << 31)
            .read_to_string()
            .unwrap()
    }

    /// The raw body: timings stop when the last byte arrives, before any parsing.
    fn get_text(&self, path_and_query: &str) -> String {
        let mut resp = self
            .signed(self.agent.get(&format!("{}{path_and_query}", self.base)))
            .call()
            .unwrap_or_else(|e| panic!("GET {path_and_query}: {e}"));
        resp.body_mut()
            .with_config()
            .limit(1 << 31)
            .read_to_string()
            .unwrap()
    }
}

/// The `cairn` binary's allocator, so `cairn-bench train` measures the trainer as `cairn train`
/// runs it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn experiment(c: &Client, name: &str) -> String {
    let body = json!({"name": format!("{name}-{}-{}", now_ms(), std::process::id())}).to_string();
    c.post("experiments/create", &body)["experiment_id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn run(c: &Client, exp: &str) -> String {
    let body = json!({"experiment_id": exp, "start_time": now_ms()}).to_string();
    c.post("runs/create", &body)["run"]["info"]["run_id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// (a) log-batch throughput: `clients` threads, each logging 1000-metric batches to its own run.
fn log_batch_throughput(c: &Client, url: &str, clients: usize, seconds: f64) -> Value {
    let exp = experiment(c, "bench-logbatch");
    let runs: Vec<String> = (0..clients).map(|_| run(c, &exp)).collect();
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let batches: usize = std::thread::scope(|s| {
        let handles: Vec<_> = runs
            .iter()
            .map(|run_id| {
                s.spawn(move || {
                    let client = Client::new(url);
                    let mut sent = 0usize;
                    while Instant::now() < deadline {
                        let ts = now_ms();
                        let metrics: Vec<Value> = (0..1000)
                            .map(|i| json!({"key": format!("m{}", i % 10), "value": (i as f64) * 0.001, "timestamp": ts, "step": sent * 100 + i / 10}))
                            .collect();
                        client.post("runs/log-batch", &json!({"run_id": run_id, "metrics": metrics}).to_string());
                        sent += 1;
                    }
                    sent
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let elapsed = started.elapsed().as_secs_f64();
    json!({"batches": batches, "seconds": elapsed, "metrics_per_second": (batches * 1000) as f64 / elapsed})
}

/// (b) search over `runs` runs with 20 metrics and 10 params each.
/// With `analyze` (a PostgreSQL URL), runs `ANALYZE` there after loading, as autovacuum would
/// in time (it is off on some machines, and a planner without statistics picks nested loops).
fn search_latency(
    c: &Client,
    url: &str,
    runs: usize,
    repeats: usize,
    analyze: Option<&str>,
) -> Value {
    let exp = experiment(c, "bench-search");
    let load_started = Instant::now();
    std::thread::scope(|s| {
        for w in 0..8 {
            let exp = exp.clone();
            s.spawn(move || {
                let client = Client::new(url);
                for i in (w..runs).step_by(8) {
                    let run_id = run(&client, &exp);
                    let ts = now_ms();
                    let metrics: Vec<Value> = (0..20)
                        .map(|m| json!({"key": format!("metric_{m}"), "value": ((i * 31 + m * 17) % 1000) as f64 / 1000.0, "timestamp": ts, "step": 0}))
                        .collect();
                    let params: Vec<Value> = (0..10)
                        .map(|p| json!({"key": format!("param_{p}"), "value": format!("v{}", (i + p) % 5)}))
                        .collect();
                    client.post("runs/log-batch", &json!({"run_id": run_id, "metrics": metrics, "params": params}).to_string());
                }
            });
        }
    });
    let load_seconds = load_started.elapsed().as_secs_f64();
    if let Some(db) = analyze {
        let status = std::process::Command::new("psql")
            .args([db, "-q", "-c", "ANALYZE"])
            .status()
            .expect("psql runs");
        assert!(status.success(), "ANALYZE failed");
    }
    let body = json!({
        "experiment_ids": [exp],
        "filter": "metrics.metric_0 > 0.5 and params.param_0 = 'v1'",
        "order_by": ["metrics.metric_1 DESC"],
        "max_results": 100,
    })
    .to_string();
    let mut times = Vec::new();
    let mut found = 0;
    for _ in 0..repeats {
        let t = Instant::now();
        let reply = c.post("runs/search", &body);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        found = reply["runs"].as_array().map(|r| r.len()).unwrap_or(0);
    }
    json!({"runs": runs, "load_seconds": load_seconds, "runs_returned": found, "median_ms": median(times.clone()), "all_ms": times})
}

/// (c) get-history of one metric with `steps` steps.
fn history_latency(c: &Client, steps: usize, repeats: usize) -> Value {
    let exp = experiment(c, "bench-history");
    let run_id = run(c, &exp);
    for chunk in 0..steps.div_ceil(1000) {
        let ts = now_ms();
        let metrics: Vec<Value> = (chunk * 1000..((chunk + 1) * 1000).min(steps))
            .map(|s| json!({"key": "loss", "value": 1.0 / (s as f64 + 1.0), "timestamp": ts, "step": s}))
            .collect();
        c.post(
            "runs/log-batch",
            &json!({"run_id": run_id, "metrics": metrics}).to_string(),
        );
    }
    let mut times = Vec::new();
    let mut returned = 0;
    for _ in 0..repeats {
        let t = Instant::now();
        let text = c.get_text(&format!(
            "/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key=loss"
        ));
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        let reply: Value = serde_json::from_str(&text).unwrap();
        returned = reply["metrics"].as_array().map(|m| m.len()).unwrap_or(0);
    }
    json!({"steps": steps, "returned": returned, "median_ms": median(times.clone()), "all_ms": times})
}

/// `ui-seed`: one experiment of `runs` runs named `run-00000`... (start times one second
/// apart, so the newest is last), each with `metrics` metrics of `steps` steps (only the
/// newest `history_runs` runs log every step, the others the last one) and `params` params, sent by 8 clients as plain MLflow requests; plus, with `long_steps > 0`, one run
/// holding a metric of that many steps, and with `wide_keys > 0`, an experiment whose one
/// run has that many metric keys. Prints the ids as JSON.
fn ui_seed(c: &Client, url: &str, a: &[String]) -> Value {
    let runs: usize = arg(a, "--runs", "10000").parse().unwrap();
    let metrics: usize = arg(a, "--metrics", "20").parse().unwrap();
    let steps: usize = arg(a, "--steps", "100").parse().unwrap();
    // Only the newest runs get every step; older ones log each metric's last step alone (the
    // same latest values), which keeps a peer's ingest time bounded.
    let history_runs: usize = arg(a, "--history-runs", &runs.to_string()).parse().unwrap();
    let params: usize = arg(a, "--params", "10").parse().unwrap();
    let long_steps: usize = arg(a, "--long-steps", "0").parse().unwrap();
    let wide_keys: usize = arg(a, "--wide-keys", "0").parse().unwrap();
    let name = arg(a, "--name", "ui-bench");
    let base_time = 1_700_000_000_000i64;
    let exp = c.post("experiments/create", &json!({"name": name}).to_string())["experiment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let started = Instant::now();
    let mut ids: Vec<(usize, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|w| {
                let exp = exp.clone();
                s.spawn(move || {
                    let client = Client::new(url);
                    let mut made = Vec::new();
                    for i in (w..runs).step_by(8) {
                        let start = base_time + i as i64 * 1000;
                        let reply = client.post(
                            "runs/create",
                            &json!({"experiment_id": exp, "run_name": format!("run-{i:05}"), "start_time": start}).to_string(),
                        );
                        let run_id = reply["run"]["info"]["run_id"].as_str().unwrap().to_string();
                        let mut points: Vec<Value> = Vec::with_capacity(metrics * steps);
                        let first_step = if i + history_runs >= runs { 0 } else { steps.saturating_sub(1) };
                        for m in 0..metrics {
                            for step in first_step..steps {
                                let v = (1.0 + ((i * 7 + m * 13) % 100) as f64 / 100.0) / (1.0 + step as f64 * 0.05);
                                points.push(json!({"key": format!("metric_{m:02}"), "value": v, "timestamp": start + step as i64, "step": step}));
                            }
                        }
                        let param_values: Vec<Value> = (0..params)
                            .map(|p| json!({"key": format!("param_{p}"), "value": format!("v{}", (i + p) % 5)}))
                            .collect();
                        let mut first = true;
                        for chunk in points.chunks(1000 - params) {
                            let body = if first {
                                json!({"run_id": run_id, "metrics": chunk, "params": param_values})
                            } else {
                                json!({"run_id": run_id, "metrics": chunk})
                            };
                            first = false;
                            client.post("runs/log-batch", &body.to_string());
                        }
                        client.post(
                            "runs/update",
                            &json!({"run_id": run_id, "status": "FINISHED", "end_time": start + 60_000}).to_string(),
                        );
                        made.push((i, run_id));
                    }
                    made
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    ids.sort();
    let mut out = json!({
        "experiment_id": exp,
        "run_ids": ids.iter().map(|(_, id)| id.clone()).collect::<Vec<_>>(),
        "seconds": started.elapsed().as_secs_f64(),
    });
    if long_steps > 0 {
        let run_id = run(c, &exp);
        for chunk in 0..long_steps.div_ceil(1000) {
            let metrics: Vec<Value> = (chunk * 1000..((chunk + 1) * 1000).min(long_steps))
                .map(|s| json!({"key": "long_loss", "value": 1.0 / (s as f64 + 1.0) + if s % 9973 == 0 { 5.0 } else { 0.0 }, "timestamp": base_time + s as i64, "step": s}))
                .collect();
            c.post(
                "runs/log-batch",
                &json!({"run_id": run_id, "metrics": metrics}).to_string(),
            );
        }
        out["long_run_id"] = json!(run_id);
    }
    if wide_keys > 0 {
        let wide = c.post(
            "experiments/create",
            &json!({"name": format!("{name}-wide")}).to_string(),
        )["experiment_id"]
            .as_str()
            .unwrap()
            .to_string();
        let run_id = c.post(
            "runs/create",
            &json!({"experiment_id": wide, "run_name": "wide-run", "start_time": base_time})
                .to_string(),
        )["run"]["info"]["run_id"]
            .as_str()
            .unwrap()
            .to_string();
        let keys: Vec<Value> = (0..wide_keys)
            .map(|k| json!({"key": format!("wide_metric_{k:05}"), "value": k as f64, "timestamp": base_time, "step": 0}))
            .collect();
        for chunk in keys.chunks(1000) {
            c.post(
                "runs/log-batch",
                &json!({"run_id": run_id, "metrics": chunk}).to_string(),
            );
        }
        out["wide_experiment_id"] = json!(wide);
        out["wide_run_id"] = json!(run_id);
    }
    out
}

/// `clients` threads POST the JSON in `--body` to `--path` for `seconds`: requests per second.
fn post_throughput(url: &str, path: &str, body: &str, clients: usize, seconds: f64) -> Value {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let sent: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(move || {
                    let client = Client::new(url);
                    let mut sent = 0usize;
                    while Instant::now() < deadline {
                        let status = client.post_status(path, body);
                        assert_eq!(status, 200, "POST {path} answered {status}");
                        sent += 1;
                    }
                    sent
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let elapsed = started.elapsed().as_secs_f64();
    json!({"requests": sent, "seconds": elapsed, "requests_per_second": sent as f64 / elapsed})
}

/// One OTLP export of `traces` traces with `spans_per_trace` spans each (a root and its
/// children), shaped as MLflow's client sends them: JSON inputs and outputs, a span type.
/// Every tenth trace fails.
fn otlp_batch(first_trace: u64, traces: u64, spans_per_trace: u64) -> Vec<u8> {
    use cairn_api::otlp::*;
    let text = |s: String| {
        Some(AnyValue {
            kind: Some(any_value::Kind::StringValue(s)),
        })
    };
    let attr = |k: &str, v: String| KeyValue {
        key: k.into(),
        value: text(v),
    };
    let start = now_ms() as u64 * 1_000_000;
    let mut spans = Vec::new();
    for t in first_trace..first_trace + traces {
        let trace_id = [t.to_be_bytes(), 0xC0FFEEu64.to_be_bytes()].concat();
        for s in 0..spans_per_trace {
            let root = s == 0;
            let begin = start + s * 1_000_000;
            spans.push(OtelSpan {
                trace_id: trace_id.clone(),
                span_id: (t * 1000 + s + 1).to_be_bytes().to_vec(),
                parent_span_id: if root {
                    Vec::new()
                } else {
                    (t * 1000 + 1).to_be_bytes().to_vec()
                },
                name: if root {
                    "answer".into()
                } else {
                    format!("step_{s}")
                },
                start_time_unix_nano: begin,
                end_time_unix_nano: begin
                    + (if root { spans_per_trace + 1 } else { 1 }) * 1_000_000
                    + (t % 1000) * 1_000_000,
                attributes: vec![
                    attr(
                        "mlflow.spanType",
                        if root {
                            "\"CHAIN\"".into()
                        } else {
                            "\"LLM\"".into()
                        },
                    ),
                    attr(
                        "mlflow.spanInputs",
                        format!("{{\"question\": \"what is item {t} made of, step {s}?\"}}"),
                    ),
                    attr(
                        "mlflow.spanOutputs",
                        format!("\"stones and more stones, {t}\""),
                    ),
                ],
                status: Some(Status {
                    message: String::new(),
                    code: if root && t % 10 == 0 { 2 } else { 1 },
                }),
                ..Default::default()
            });
        }
    }
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    prost::Message::encode_to_vec(&request)
}

/// Exports one batch; `false` when the server refused it or the connection failed (a peer
/// under load may answer 500 now and then: such a batch is not counted).
fn post_spans(agent: &ureq::Agent, url: &str, exp: &str, body: &[u8]) -> bool {
    match agent
        .post(&format!("{url}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .header("x-mlflow-experiment-id", exp)
        .send(body)
    {
        Ok(resp) => resp.status().as_u16() == 200,
        Err(e) => {
            eprintln!("POST /v1/traces: {e}");
            false
        }
    }
}

/// (e) span ingestion through the OTLP endpoint: `clients` threads, each exporting batches
/// of 10 traces x 10 spans; (f) `traces/search` over `traces` stored traces.
fn traces_workload(
    c: &Client,
    url: &str,
    clients: usize,
    seconds: f64,
    traces: u64,
    repeats: usize,
) -> Value {
    let agent = || {
        ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(600)))
            .build()
            .new_agent()
    };
    let exp = experiment(c, "bench-spans");
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let batches: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients as u64)
            .map(|w| {
                let exp = exp.clone();
                s.spawn(move || {
                    let a = agent();
                    let (mut sent, mut tried) = (0u64, 0u64);
                    while Instant::now() < deadline {
                        let body = otlp_batch((w << 40) + tried * 10, 10, 10);
                        tried += 1;
                        if post_spans(&a, url, &exp, &body) {
                            sent += 1;
                        }
                    }
                    sent
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let ingest = json!({"batches": batches, "seconds": elapsed, "spans_per_second": (batches * 100) as f64 / elapsed});

    let exp = experiment(c, "bench-trace-search");
    let load_started = Instant::now();
    std::thread::scope(|s| {
        for w in 0..8u64 {
            let exp = exp.clone();
            s.spawn(move || {
                let a = agent();
                let mut t = w * 100;
                while t < traces {
                    post_spans(
                        &a,
                        url,
                        &exp,
                        &otlp_batch((1 << 50) + t + 1, 100.min(traces - t), 1),
                    );
                    t += 800;
                }
            });
        }
    });
    let load_seconds = load_started.elapsed().as_secs_f64();
    let body = json!({
        "locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": exp}}],
        "filter": "trace.status = 'ERROR' AND trace.execution_time_ms > 500",
        "order_by": ["timestamp_ms DESC"],
        "max_results": 100,
    })
    .to_string();
    let mut times = Vec::new();
    let mut found = 0;
    for _ in 0..repeats {
        let t = Instant::now();
        let text = c.post_text("/api/3.0/mlflow/traces/search", &body);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        let reply: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        found = reply["traces"].as_array().map(|r| r.len()).unwrap_or(0);
    }
    json!({
        "ingest": ingest,
        "search": {"traces": traces, "load_seconds": load_seconds, "traces_returned": found,
                   "median_ms": median(times.clone()), "all_ms": times},
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = arg(&args, "--url", "http://127.0.0.1:5000");
    if args.get(1).map(String::as_str) == Some("post") {
        let body = std::fs::read_to_string(arg(&args, "--body", "body.json")).unwrap();
        let path = arg(&args, "--path", "/v2/models/m/infer");
        let clients: usize = arg(&args, "--clients", "8").parse().unwrap();
        let seconds: f64 = arg(&args, "--seconds", "10").parse().unwrap();
        println!("{}", post_throughput(&url, &path, &body, clients, seconds));
        return;
    }
    if args.get(1).map(String::as_str) == Some("traces") {
        let seconds: f64 = arg(&args, "--seconds", "20").parse().unwrap();
        let traces: u64 = arg(&args, "--traces", "100000").parse().unwrap();
        let repeats: usize = arg(&args, "--repeats", "11").parse().unwrap();
        let c = Client::new(&url);
        println!("{}", traces_workload(&c, &url, 8, seconds, traces, repeats));
        return;
    }
    if args.get(1).map(String::as_str) == Some("train") {
        println!("{}", train_bench(&args));
        return;
    }
    if args.get(1).map(String::as_str) == Some("wine-csv") {
        // The quickstart's real data (red wine quality, as linfa-datasets ships it), for
        // bench/train to give the peers the same rows.
        let data = linfa_datasets::winequality();
        let mut csv: Vec<String> = vec![data
            .feature_names()
            .iter()
            .map(|n| n.to_string())
            .chain(["quality".to_string()])
            .collect::<Vec<_>>()
            .join(",")];
        for (row, quality) in data.records().rows().into_iter().zip(data.targets()) {
            let mut cells: Vec<String> = row.iter().map(|v| v.to_string()).collect();
            cells.push(quality.to_string());
            csv.push(cells.join(","));
        }
        println!("{}", csv.join("\n"));
        return;
    }
    if args.get(1).map(String::as_str) == Some("ui-seed") {
        println!("{}", ui_seed(&Client::new(&url), &url, &args));
        return;
    }
    if args.get(1).map(String::as_str) != Some("tracking") {
        eprintln!(
            "       cairn-bench traces --url URL [--seconds 20] [--traces 100000] [--repeats 11]"
        );
        eprintln!("       cairn-bench post --url URL --path PATH --body FILE [--clients 8] [--seconds 10]");
        eprintln!("usage: cairn-bench tracking --url URL [--part a|b|c|all] [--seconds 10] [--runs 10000] [--steps 100000] [--analyze-postgres URL]");
        eprintln!("       cairn-bench train --data FILE --target COLUMN --train-rows N [--trees 100] [--max-leaf-nodes 31] [--min-samples-leaf 20] [--learning-rate 0.1]");
        eprintln!("       cairn-bench wine-csv (the quickstart's wine data as CSV, on stdout)");
        eprintln!("       cairn-bench ui-seed --url URL [--name N] [--runs 10000] [--metrics 20] [--steps 100] [--history-runs RUNS] [--params 10] [--long-steps 0] [--wide-keys 0]");
        std::process::exit(2);
    }
    let part = arg(&args, "--part", "all");
    let seconds: f64 = arg(&args, "--seconds", "10").parse().unwrap();
    let runs: usize = arg(&args, "--runs", "10000").parse().unwrap();
    let steps: usize = arg(&args, "--steps", "100000").parse().unwrap();
    let repeats: usize = arg(&args, "--repeats", "11").parse().unwrap();
    let c = Client::new(&url);
    let mut out = serde_json::Map::new();
    if part == "a" || part == "all" {
        out.insert(
            "log_batch".into(),
            log_batch_throughput(
                &c,
                &url,
                arg(&args, "--clients", "8").parse().unwrap(),
                seconds,
            ),
        );
    }
    if part == "b" || part == "all" {
        let analyze = args
            .iter()
            .position(|a| a == "--analyze-postgres")
            .and_then(|i| args.get(i + 1))
            .map(String::as_str);
        out.insert(
            "search".into(),
            search_latency(&c, &url, runs, repeats, analyze),
        );
    }
    if part == "c" || part == "all" {
        out.insert("history".into(), history_latency(&c, steps, repeats));
    }
    println!("{}", Value::Object(out));
}

/// `cairn-bench train`: Cairn's boosted trees on the first `--train-rows` rows of a table, scored
/// on the rest: load, fit and predict times and the test metric, as JSON (bench/train).
fn train_bench(args: &[String]) -> Value {
    use cairn_train::frame::{load, Target};
    use cairn_train::gbdt::{fit, GbdtParams};
    let data = arg(args, "--data", "train.parquet");
    let target = arg(args, "--target", "y");
    let train_rows: usize = arg(args, "--train-rows", "0").parse().unwrap();
    let params = GbdtParams {
        trees: arg(args, "--trees", "100").parse().unwrap(),
        max_leaf_nodes: arg(args, "--max-leaf-nodes", "31").parse().unwrap(),
        min_samples_leaf: arg(args, "--min-samples-leaf", "20").parse().unwrap(),
        learning_rate: arg(args, "--learning-rate", "0.1").parse().unwrap(),
        ..GbdtParams::default()
    };
    let started = Instant::now();
    let frame = load(std::path::Path::new(&data), &target, None, &[]).unwrap();
    let load_s = started.elapsed().as_secs_f64();
    let train: Vec<usize> = (0..train_rows.min(frame.rows)).collect();
    let test: Vec<usize> = (train_rows.min(frame.rows)..frame.rows).collect();
    let started = Instant::now();
    let model = fit(&frame, &train, &params).unwrap();
    let fit_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let predicted = model.predict(&frame, &test);
    let predict_s = started.elapsed().as_secs_f64();
    let scores = cairn_train::train::score(&frame, &test, &predicted, "test_");
    let mut out = serde_json::json!({"load_s": load_s, "fit_s": fit_s, "predict_s": predict_s,
        "rows": frame.rows, "features": frame.features.len()});
    for (k, v) in scores {
        out[k] = serde_json::json!(v);
    }
    if let Target::Classes { classes, .. } = &frame.target {
        out["classes"] = serde_json::json!(classes.len());
    }
    out
}
