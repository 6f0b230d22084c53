//! Test harness for Cairn: a real `cairn server` process on a temporary home, a small HTTP
//! client that returns status and JSON, and fresh PostgreSQL databases when
//! `CAIRN_TEST_POSTGRES_URL` is set (tests that need one say loudly when they skip).
#![deny(missing_docs)]
#![allow(clippy::unwrap_used)] // a harness: a failed setup should stop the test at once

pub mod onnx;
pub mod raw;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The environment variable naming an admin PostgreSQL URL for tests.
pub const POSTGRES_ENV: &str = "CAIRN_TEST_POSTGRES_URL";
/// The environment variable naming a Python with the pinned `mlflow` installed.
pub const PYTHON_ENV: &str = "CAIRN_TEST_PYTHON";

/// Prints a loud notice that a test was skipped, and why; with `CI` set, a missing service or
/// tool is a failure, never a silent skip (`cargo test` hides a passing test's output).
pub fn skip(test: &str, why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{test} cannot run under CI: {why}"
    );
    eprintln!("\n*** SKIPPED {test}: {why} ***\n");
}

/// Records that the current test (the thread `cargo test` names after it) ran on `backend`
/// (`sqlite`, `postgresql`) in the file named by `CAIRN_TEST_TALLY`, one line each, so CI can
/// say how many tests ran on each backend.
pub fn tally(backend: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("unnamed");
    use std::io::Write;
    let Some(path) = std::env::var_os("CAIRN_TEST_TALLY") else {
        return;
    };
    // O_APPEND writes of one short line are atomic, so parallel tests do not interleave.
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(format!("{backend} {test}\n").as_bytes());
    }
}

/// Runs `tests/interop/SCRIPT` with the Python in `CAIRN_TEST_PYTHON` against the server at
/// `url` (as `MLFLOW_TRACKING_URI`) and asserts it succeeded and printed `"ok": true`.
/// Skips loudly, returning without running, when `CAIRN_TEST_PYTHON` is unset.
pub fn run_interop_script(test: &str, script: &str, url: &str) {
    run_interop_script_with(test, script, url, &[]);
}

/// [`run_interop_script`] with extra environment variables (credentials, say).
pub fn run_interop_script_with(test: &str, script: &str, url: &str, env: &[(&str, &str)]) {
    let Ok(python) = std::env::var(PYTHON_ENV) else {
        skip(
            test,
            &format!("{PYTHON_ENV} is not set (a Python with tests/interop/requirements.txt)"),
        );
        return;
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/interop")
        .join(script);
    let out = Command::new(python)
        .arg(&path)
        .envs(env.iter().copied())
        .env("MLFLOW_TRACKING_URI", url)
        .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        .env("PYTHONWARNINGS", "ignore")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("\"ok\": true"), "{stdout}");
}

/// Runs `python` with `args` and `env`, asserts it succeeded, and returns the JSON object on
/// the last line of its output (what the interop scripts print when they pass).
pub fn python_json(python: &str, args: &[&std::ffi::OsStr], env: &[(&str, &str)]) -> Value {
    let out = Command::new(python)
        .args(args)
        .envs(env.iter().copied())
        .env("PYTHONWARNINGS", "ignore")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{args:?} failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("{args:?}: no JSON last line ({e}):\n{stdout}"))
}

/// The value of `key` in a `runs/get` run's `data.tags`.
pub fn run_tag(run: &Value, key: &str) -> Option<String> {
    run_entry(run, "tags", key).and_then(|v| v.as_str().map(String::from))
}

/// The latest value of metric `key` of a `runs/get` run.
pub fn run_metric(run: &Value, key: &str) -> Option<f64> {
    run_entry(run, "metrics", key).and_then(|v| v.as_f64())
}

/// The value of param `key` of a `runs/get` run.
pub fn run_param(run: &Value, key: &str) -> Option<String> {
    run_entry(run, "params", key).and_then(|v| v.as_str().map(String::from))
}

fn run_entry(run: &Value, kind: &str, key: &str) -> Option<Value> {
    run["data"][kind]
        .as_array()?
        .iter()
        .find(|e| e["key"] == key)
        .map(|e| e["value"].clone())
}

/// A `cairn server` child process.
pub struct TestServer {
    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub url: String,
    /// The home folder the server uses.
    pub home: PathBuf,
    child: Child,
    _tmp: Option<tempfile::TempDir>,
}

impl TestServer {
    /// Starts a server on a fresh temporary home with the given backend (SQLite by default).
    pub fn start(bin: &Path, backend: Option<&str>) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let mut server = Self::start_in(bin, tmp.path(), backend, &[]);
        server._tmp = Some(tmp);
        server
    }

    /// Starts a server on `home` with extra flags; waits until it listens.
    pub fn start_in(bin: &Path, home: &Path, backend: Option<&str>, extra: &[&str]) -> Self {
        if backend.is_none() {
            tally("sqlite");
        }
        let mut cmd = Command::new(bin);
        cmd.arg("server")
            .arg("--port")
            .arg("0")
            .env("CAIRN_HOME", home)
            .env("CAIRN_LOG", "warn");
        if let Some(b) = backend {
            cmd.arg("--backend-store-uri").arg(b);
        }
        cmd.args(extra);
        Self::spawn(cmd, home)
    }

    /// Runs any `cairn` command that prints `listening on http://...`, and waits for that line.
    pub fn spawn(mut cmd: Command, home: &Path) -> Self {
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                if let Some(url) = line.split("listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("the cairn process did not start listening within 30 s");
            }
        };
        TestServer {
            url,
            home: home.to_path_buf(),
            child,
            _tmp: None,
        }
    }

    /// The server's resident memory in KiB (Linux), if it can be read.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// An HTTP client for this server.
    pub fn http(&self) -> Http {
        Http::new(&self.url)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A blocking HTTP client that never treats a status as an error.
#[derive(Clone)]
pub struct Http {
    base: String,
    agent: ureq::Agent,
    /// The `Authorization` header sent with every request, if any.
    authorization: Option<String>,
}

/// Status and parsed JSON body (`Value::Null` when the body is not JSON).
pub type Reply = (u16, Value);

fn read(resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
    let mut resp = resp.unwrap();
    let status = resp.status().as_u16();
    let text = resp
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

impl Http {
    /// A client for `base`.
    pub fn new(base: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .new_agent();
        Http {
            base: base.trim_end_matches('/').to_string(),
            agent,
            authorization: None,
        }
    }

    /// This client signing in with HTTP Basic, as the MLflow client does.
    pub fn basic(&self, username: &str, password: &str) -> Self {
        use base64::Engine;
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        Http {
            authorization: Some(format!("Basic {encoded}")),
            ..self.clone()
        }
    }

    /// This client signing in with a bearer token.
    pub fn bearer(&self, token: &str) -> Self {
        Http {
            authorization: Some(format!("Bearer {token}")),
            ..self.clone()
        }
    }

    fn signed<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.authorization {
            Some(value) => request.header("authorization", value),
            None => request,
        }
    }

    /// `POST /api/2.0/mlflow/<path>` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Reply {
        self.post_raw(path, body.to_string().as_bytes())
    }

    /// Like [`Http::post`], but a transport failure (server gone) is `None` instead of a panic.
    pub fn try_post(&self, path: &str, body: &Value) -> Option<Reply> {
        let resp = self
            .signed(
                self.agent
                    .post(&format!("{}/api/2.0/mlflow/{path}", self.base)),
            )
            .header("content-type", "application/json")
            .send(body.to_string().as_bytes())
            .ok()?;
        Some(read(Ok(resp)))
    }

    /// `POST /api/2.0/mlflow/<path>` with raw bytes as body.
    pub fn post_raw(&self, path: &str, body: &[u8]) -> Reply {
        read(
            self.signed(
                self.agent
                    .post(&format!("{}/api/2.0/mlflow/{path}", self.base)),
            )
            .header("content-type", "application/json")
            .send(body),
        )
    }

    /// `POST <path>` (any path under the server root, e.g. `/v2/models/m/infer`) with JSON.
    pub fn post_json(&self, path: &str, body: &Value) -> Reply {
        read(
            self.signed(self.agent.post(&format!("{}{path}", self.base)))
                .header("content-type", "application/json")
                .send(body.to_string().as_bytes()),
        )
    }

    /// `GET <url path and query>` relative to the server root.
    pub fn get(&self, path_and_query: &str) -> Reply {
        read(
            self.signed(self.agent.get(&format!("{}{path_and_query}", self.base)))
                .call(),
        )
    }

    /// `GET` returning the raw body bytes.
    pub fn get_bytes(&self, path_and_query: &str) -> (u16, Vec<u8>) {
        let mut resp = self
            .signed(self.agent.get(&format!("{}{path_and_query}", self.base)))
            .call()
            .unwrap();
        let status = resp.status().as_u16();
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .unwrap_or_default();
        (status, bytes)
    }

    /// `PUT <path>` with raw bytes.
    pub fn put(&self, path: &str, body: &[u8]) -> Reply {
        read(
            self.signed(self.agent.put(&format!("{}{path}", self.base)))
                .send(body),
        )
    }

    /// A new run in the default experiment holding `file` under `model/` (through the artifact
    /// proxy); returns its `runs:/<id>/model` source for `model-versions/create`.
    pub fn run_with_model_file(&self, file: &str, bytes: &[u8]) -> String {
        self.run_in_with_model_file("0", file, bytes)
    }

    /// [`Http::run_with_model_file`] in experiment `experiment_id`.
    pub fn run_in_with_model_file(&self, experiment_id: &str, file: &str, bytes: &[u8]) -> String {
        let (status, run) = self.post(
            "runs/create",
            &serde_json::json!({"experiment_id": experiment_id}),
        );
        assert_eq!(status, 200, "runs/create: {run}");
        let info = &run["run"]["info"];
        let root = info["artifact_uri"]
            .as_str()
            .unwrap()
            .trim_start_matches("mlflow-artifacts:/")
            .to_string();
        let put = self.put(
            &format!("/api/2.0/mlflow-artifacts/artifacts/{root}/model/{file}"),
            bytes,
        );
        assert_eq!(put.0, 200, "{}", put.1);
        format!("runs:/{}/model", info["run_id"].as_str().unwrap())
    }

    /// `DELETE <path>`.
    pub fn delete(&self, path: &str) -> Reply {
        read(
            self.signed(self.agent.delete(&format!("{}{path}", self.base)))
                .call(),
        )
    }
}

/// A PostgreSQL database made for one test and dropped after it.
pub struct PgDatabase {
    /// URL of the new database.
    pub url: String,
    admin_url: String,
    name: String,
}

impl PgDatabase {
    /// Creates a fresh database, or returns `None` (after a loud notice) when
    /// `CAIRN_TEST_POSTGRES_URL` is unset.
    pub fn create(test: &str) -> Option<Self> {
        let Ok(admin_url) = std::env::var(POSTGRES_ENV) else {
            skip(
                test,
                &format!("{POSTGRES_ENV} is not set, so the PostgreSQL variant did not run"),
            );
            return None;
        };
        tally("postgresql");
        let name = format!("cairn_test_{}", rand::random::<u64>());
        let mut client = postgres::Client::connect(&admin_url, postgres::NoTls).unwrap();
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        let url = match admin_url.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("{POSTGRES_ENV} must end in /database"),
        };
        Some(PgDatabase {
            url,
            admin_url,
            name,
        })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.admin_url, postgres::NoTls) {
            let _ = client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// A webhook receiver on loopback: its URL, and every JSON body POSTed to it; answers 200.
pub fn webhook_receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let store = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok() {
                if let Ok(v) = serde_json::from_slice(&body) {
                    store.lock().unwrap().push(v);
                }
            }
            let _ = reader
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, received)
}
