//! A minimal client of Cairn's MLflow-compatible REST API, for the quickstart and `cairn run`.
use anyhow::{anyhow, Context};
use serde_json::Value;
use std::path::Path;

pub struct Client {
    base: String,
    agent: ureq::Agent,
    /// An `Authorization` header value, from the MLflow client's variables.
    authorization: Option<String>,
}

/// The `Authorization` header the MLflow client would send: `MLFLOW_TRACKING_TOKEN` as a
/// bearer token, else `MLFLOW_TRACKING_USERNAME` and `MLFLOW_TRACKING_PASSWORD` as basic auth.
fn authorization_from_env() -> Option<String> {
    use base64::Engine;
    if let Ok(token) = std::env::var("MLFLOW_TRACKING_TOKEN") {
        return Some(format!("Bearer {token}"));
    }
    let user = std::env::var("MLFLOW_TRACKING_USERNAME").ok()?;
    let password = std::env::var("MLFLOW_TRACKING_PASSWORD").unwrap_or_default();
    let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    Some(format!("Basic {pair}"))
}

/// `text` percent-encoded for a URL query value.
pub fn encode_query(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The latest value of each metric of a run (as `runs/get` answers it).
pub fn latest_metrics(run: &Value) -> std::collections::BTreeMap<String, f64> {
    run["data"]["metrics"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .filter_map(|m| Some((m["key"].as_str()?.to_string(), m["value"].as_f64()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Registers `runs:/RUN/model` as a new version of `name` (created when missing); returns the
/// version.
pub fn register_run_model(client: &Client, name: &str, run_id: &str) -> anyhow::Result<String> {
    if let Err(e) = client.post(
        "registered-models/create",
        &serde_json::json!({"name": name}),
    ) {
        // A model registered before gets a new version.
        if !e.to_string().contains("RESOURCE_ALREADY_EXISTS") {
            return Err(e);
        }
    }
    let created = client.post(
        "model-versions/create",
        &serde_json::json!({"name": name, "source": format!("runs:/{run_id}/model"), "run_id": run_id}),
    )?;
    created["model_version"]["version"]
        .as_str()
        .map(String::from)
        .context("model-versions/create gave no version")
}

/// The run id and the artifact proxy path of a `runs/create` answer.
pub fn created_run(created: &Value) -> anyhow::Result<(String, String)> {
    let run_id = created["run"]["info"]["run_id"]
        .as_str()
        .context("runs/create gave no run id")?
        .to_string();
    let root = proxied_root(
        created["run"]["info"]["artifact_uri"]
            .as_str()
            .unwrap_or_default(),
    );
    Ok((run_id, root))
}

/// The path under the artifact proxy of a run's `artifact_uri` (`mlflow-artifacts:/1/abc/artifacts`
/// → `1/abc/artifacts`).
pub fn proxied_root(artifact_uri: &str) -> String {
    artifact_uri
        .strip_prefix("mlflow-artifacts:")
        .unwrap_or(artifact_uri)
        .trim_start_matches('/')
        .to_string()
}

impl Client {
    pub fn new(base: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        Client {
            base: base.trim_end_matches('/').to_string(),
            agent,
            authorization: None,
        }
    }

    /// A client that authenticates as the MLflow client would, from `MLFLOW_TRACKING_*`.
    pub fn from_env(base: &str) -> Self {
        Client {
            authorization: authorization_from_env(),
            ..Client::new(base)
        }
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn with_auth<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.authorization {
            Some(value) => request.header("authorization", value),
            None => request,
        }
    }

    fn check(mut resp: ureq::http::Response<ureq::Body>, what: &str) -> anyhow::Result<Value> {
        let status = resp.status();
        let text = resp
            .body_mut()
            .read_to_string()
            .with_context(|| format!("{what}: reading body"))?;
        if !status.is_success() {
            return Err(anyhow!("{what}: HTTP {status}: {text}"));
        }
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).with_context(|| format!("{what}: invalid JSON"))
    }

    pub fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let resp = self
            .with_auth(
                self.agent
                    .post(&format!("{}/api/2.0/mlflow/{path}", self.base)),
            )
            .header("content-type", "application/json")
            .send(body.to_string())
            .with_context(|| format!("POST {path}"))?;
        Self::check(resp, path)
    }

    /// POSTs JSON to `path` under the base URL (not the MLflow API), answering the status
    /// and the body (JSON, or the text as a string).
    pub fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let mut resp = self
            .with_auth(self.agent.post(&format!("{}{path}", self.base)))
            .header("content-type", "application/json")
            .send(body.to_string())
            .with_context(|| format!("POST {path}"))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .with_context(|| format!("POST {path}: reading body"))?;
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, value))
    }

    pub fn put_artifact(&self, path: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let resp = self
            .with_auth(self.agent.put(&format!(
                "{}/api/2.0/mlflow-artifacts/artifacts/{path}",
                self.base
            )))
            .send(bytes)
            .with_context(|| format!("PUT {path}"))?;
        Self::check(resp, path).map(|_| ())
    }

    /// POST to any path of the server (`/v2/...`).
    pub fn post_path(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let resp = self
            .with_auth(self.agent.post(&format!("{}{path}", self.base)))
            .header("content-type", "application/json")
            .send(body.to_string())
            .with_context(|| format!("POST {path}"))?;
        Self::check(resp, path)
    }

    /// GET a JSON answer from any path of the server.
    pub fn get(&self, path_and_query: &str) -> anyhow::Result<Value> {
        let resp = self
            .with_auth(self.agent.get(&format!("{}{path_and_query}", self.base)))
            .call()
            .with_context(|| format!("GET {path_and_query}"))?;
        Self::check(resp, path_and_query)
    }

    /// Downloads an artifact through the server's proxy.
    pub fn get_artifact(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        let mut resp = self
            .with_auth(self.agent.get(&format!(
                "{}/api/2.0/mlflow-artifacts/artifacts/{path}",
                self.base
            )))
            .call()
            .with_context(|| format!("GET {path}"))?;
        if !resp.status().is_success() {
            return Err(anyhow!("GET {path}: HTTP {}", resp.status()));
        }
        resp.body_mut()
            .with_config()
            .limit(1 << 32)
            .read_to_vec()
            .with_context(|| format!("GET {path}: reading body"))
    }

    /// Uploads a file through the server's proxy, streaming it from disk.
    pub fn put_artifact_file(&self, path: &str, file: &Path) -> anyhow::Result<()> {
        let mut reader =
            std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
        let resp = self
            .with_auth(self.agent.put(&format!(
                "{}/api/2.0/mlflow-artifacts/artifacts/{path}",
                self.base
            )))
            .send(ureq::SendBody::from_reader(&mut reader))
            .with_context(|| format!("PUT {path}"))?;
        Self::check(resp, path).map(|_| ())
    }
}
