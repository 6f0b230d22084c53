//! A fuzzer over every route `cairn server` registers: generated and mutated JSON bodies,
//! query strings, path segments and content types, for a bounded time (20 s by default;
//! `CAIRN_FUZZ_SECONDS` for longer runs, `CAIRN_FUZZ_SEED` to replay one). No answer may be a
//! 5xx, and the server must still answer at the end. The routes are read from the sources,
//! as the authorization table's test reads them, so a new route is fuzzed without a change here.
#![allow(clippy::unwrap_used)]

use cairn_test::onnx::tiny_mlp_onnx;
use cairn_test::{raw, TestServer};
use serde_json::{json, Map, Value};
use std::time::{Duration, Instant};

/// xorshift64*: small, seedable, good enough to pick inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// `(path, methods)` of every `.route(...)` in a source file.
fn routes_in(source: &str, prefixes: &[&str]) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find(".route(") {
        rest = &rest[at + 7..];
        let Some(open) = rest.find('"') else { break };
        if !rest[..open].trim().is_empty() {
            continue;
        }
        let after = &rest[open + 1..];
        let Some(close) = after.find('"') else { break };
        let path = &after[..close];
        // The method router: up to the next `.route(` or the end of the statement.
        let tail = &after[close..];
        let end = tail
            .find(".route(")
            .unwrap_or(tail.len())
            .min(tail.find(';').unwrap_or(tail.len()));
        let router = &tail[..end];
        for (name, method) in [
            ("get(", "GET"),
            ("post(", "POST"),
            ("put(", "PUT"),
            ("patch(", "PATCH"),
            ("delete(", "DELETE"),
        ] {
            if router.contains(name) {
                for prefix in prefixes {
                    out.push((format!("{prefix}{path}"), method));
                }
            }
        }
    }
    out
}

fn all_routes() -> Vec<(String, &'static str)> {
    let api = ["/api/2.0", "/ajax-api/2.0"];
    let mut routes = Vec::new();
    routes.extend(routes_in(
        include_str!("../../cairn-api/src/tracking.rs"),
        &api,
    ));
    routes.extend(routes_in(
        include_str!("../../cairn-api/src/registry.rs"),
        &api,
    ));
    routes.extend(routes_in(
        include_str!("../../cairn-api/src/lineage.rs"),
        &api,
    ));
    routes.extend(routes_in(
        include_str!("../../cairn-api/src/artifacts.rs"),
        &api,
    ));
    routes.extend(routes_in(
        include_str!("../../cairn-api/src/monitoring.rs"),
        &["/api/2.0/cairn/monitoring"],
    ));
    routes.extend(routes_in(
        include_str!("../../cairn-api/src/auth.rs"),
        &["/api"],
    ));
    routes.extend(routes_in(include_str!("../../cairn-api/src/lib.rs"), &[""]));
    routes.extend(routes_in(include_str!("../../cairn-api/src/oip.rs"), &[""]));
    routes.extend(routes_in(include_str!("../../cairn-ui/src/lib.rs"), &[""]));
    routes
}

const NASTY_STRINGS: &[&str] = &[
    "",
    " ",
    "0",
    "-1",
    "9223372036854775808",
    "1e309",
    "NaN",
    "../../etc/passwd",
    "..%2f..%2fetc",
    "%252e%252e/x",
    "a;b=c",
    "\u{0}",
    "ünïcødé ✓",
    "' OR 1=1 --",
    "metrics.x > 1 AND",
    "params.`a` = 'b'",
    "attributes.status IN ('A', 'B')",
    "mlflow-artifacts:/0/x",
    "runs:/abc/model",
    "file:///etc",
    "models:/m/1",
    "9s",
    "100000000000d",
    "m",
    "1",
    "0/run/artifacts/x.txt",
];

fn value(rng: &mut Rng, depth: usize, known: &Known) -> Value {
    match rng.below(if depth > 2 { 6 } else { 9 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => json!(*rng.pick(&[
            0i64,
            1,
            -1,
            i64::MAX,
            i64::MIN,
            100_000,
            4_611_686_018_427_387_904
        ])),
        3 => json!(*rng.pick(&[0.5f64, -1e308, 1e39, f64::MIN_POSITIVE])),
        4 => Value::String(rng.pick(NASTY_STRINGS).to_string()),
        5 => Value::String(known.pick(rng)),
        6 => Value::String("x".repeat(*rng.pick(&[300usize, 5_000, 70_000]))),
        7 => Value::Array(
            (0..rng.below(4))
                .map(|_| value(rng, depth + 1, known))
                .collect(),
        ),
        _ => Value::Object(object(rng, depth + 1, known)),
    }
}

const FIELDS: &[&str] = &[
    "experiment_id",
    "experiment_ids",
    "run_id",
    "run_uuid",
    "run_ids",
    "name",
    "new_name",
    "version",
    "alias",
    "key",
    "value",
    "path",
    "filter",
    "filter_string",
    "order_by",
    "max_results",
    "page_token",
    "metrics",
    "params",
    "tags",
    "inputs",
    "outputs",
    "source",
    "stage",
    "description",
    "artifact_location",
    "timestamp",
    "step",
    "metric_key",
    "window",
    "bucket",
    "labels",
    "username",
    "password",
    "resource_type",
    "resource_id",
    "permission",
    "role_id",
    "role_permission_id",
    "is_admin",
    "datasets",
    "models",
    "model_id",
    "status",
    "end_time",
    "lifecycle_stage",
    "run_name",
    "parameters",
    "shape",
    "datatype",
    "data",
    "id",
    "expires_in_days",
];

fn object(rng: &mut Rng, depth: usize, known: &Known) -> Map<String, Value> {
    let mut map = Map::new();
    for _ in 0..rng.below(6) {
        let key = rng.pick(FIELDS).to_string();
        map.insert(key, value(rng, depth, known));
    }
    map
}

/// Ids of real things, so requests reach past "not found".
struct Known(Vec<String>);

impl Known {
    fn pick(&self, rng: &mut Rng) -> String {
        rng.pick(&self.0).clone()
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn concrete_path(rng: &mut Rng, route: &str, known: &Known) -> String {
    route
        .split('/')
        .map(|seg| {
            if seg.starts_with("{*") {
                encode(&match rng.below(3) {
                    0 => known.pick(rng),
                    1 => rng.pick(NASTY_STRINGS).to_string(),
                    _ => "0/x/artifacts/f.txt".to_string(),
                })
            } else if seg.starts_with('{') {
                let raw = match rng.below(3) {
                    0 => known.pick(rng),
                    1 => rng.pick(NASTY_STRINGS).to_string(),
                    _ => "1".to_string(),
                };
                encode(&raw).replace('/', "%2F")
            } else {
                seg.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// One request, raw, with the server's Host; the status, or `None` when the connection broke
/// (the server may close a connection it refuses, never crash).
fn send(addr: &str, method: &str, target: &str, content_type: &str, body: &[u8]) -> Option<u16> {
    let mut request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    let reply = raw::exchange(addr, &request, Duration::from_secs(120))?;
    Some(raw::status_and_body(&reply)?.0)
}

#[test]
fn every_route_survives_generated_and_mutated_input() {
    let seconds: u64 = std::env::var("CAIRN_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("CAIRN_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(7)
                | 1
        });
    eprintln!("fuzz seed {seed} (CAIRN_FUZZ_SEED={seed} replays it)");
    let home = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.args(["server", "--port", "0"])
        .env("CAIRN_HOME", home.path())
        // Thousands of refusals would each log a warning.
        .env("CAIRN_LOG", "error");
    cairn_test::tally("sqlite");
    let server = TestServer::spawn(cmd, home.path());
    let http = server.http();
    // Real things for requests to find.
    let (_, exp) = http.post("experiments/create", &json!({"name": "fuzzed"}));
    let exp = exp["experiment_id"].as_str().unwrap().to_string();
    assert_eq!(
        http.post("registered-models/create", &json!({"name": "m"}))
            .0,
        200
    );
    let source = http.run_in_with_model_file(&exp, "model.onnx", &tiny_mlp_onnx());
    assert_eq!(
        http.post(
            "model-versions/create",
            &json!({"name": "m", "source": source})
        )
        .0,
        200
    );
    let run_id = source
        .trim_start_matches("runs:/")
        .trim_end_matches("/model")
        .to_string();
    let known = Known(vec![
        exp.clone(),
        run_id.clone(),
        "m".into(),
        "1".into(),
        "0".into(),
    ]);
    let routes = all_routes();
    assert!(routes.len() > 100, "only {} routes found", routes.len());
    let addr = server.url.trim_start_matches("http://").to_string();
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut sent = 0usize;
    let mut failures = Vec::new();
    while Instant::now() < deadline && failures.len() < 10 {
        let (route, method) = rng.pick(&routes).clone();
        let path = concrete_path(&mut rng, &route, &known);
        let query = if rng.below(2) == 0 {
            let fields = object(&mut rng, 2, &known);
            let pairs: Vec<String> = fields
                .iter()
                .map(|(k, v)| {
                    let text = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    format!("{k}={}", encode(&text))
                })
                .collect();
            format!("?{}", pairs.join("&"))
        } else {
            String::new()
        };
        let body: Vec<u8> = match rng.below(6) {
            0 => Vec::new(),
            1 => b"{\"truncated\": ".to_vec(),
            2 => value(&mut rng, 0, &known).to_string().into_bytes(),
            3 => (0..rng.below(200)).map(|_| rng.next() as u8).collect(),
            _ => Value::Object(object(&mut rng, 0, &known))
                .to_string()
                .into_bytes(),
        };
        let content_type = *rng.pick(&[
            "application/json",
            "application/json",
            "application/json; charset=utf-8",
            "text/csv",
            "application/octet-stream",
        ]);
        let target = format!("{path}{query}");
        sent += 1;
        if let Some(status) = send(&addr, method, &target, content_type, &body) {
            if status >= 500 {
                failures.push(format!(
                    "{method} {target} ({content_type}, body {:?}) -> {status}",
                    String::from_utf8_lossy(&body[..body.len().min(300)])
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "seed {seed}: {} of {sent} requests answered 5xx:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(http.get("/health").0, 200, "the server stopped answering");
    eprintln!("fuzzed {sent} requests over {} routes", routes.len());
}
