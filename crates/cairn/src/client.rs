//! A minimal client of Cairn's MLflow-compatible REST API, for the quickstart.
use anyhow::{anyhow, Context};
use serde_json::Value;

pub struct Client {
    base: String,
    agent: ureq::Agent,
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
            .agent
            .post(&format!("{}/api/2.0/mlflow/{path}", self.base))
            .header("content-type", "application/json")
            .send(body.to_string())
            .with_context(|| format!("POST {path}"))?;
        Self::check(resp, path)
    }

    pub fn put_artifact(&self, path: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let resp = self
            .agent
            .put(&format!(
                "{}/api/2.0/mlflow-artifacts/artifacts/{path}",
                self.base
            ))
            .send(bytes)
            .with_context(|| format!("PUT {path}"))?;
        Self::check(resp, path).map(|_| ())
    }

    /// POST to any path of the server (`/v2/...`).
    pub fn post_path(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let resp = self
            .agent
            .post(&format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .send(body.to_string())
            .with_context(|| format!("POST {path}"))?;
        Self::check(resp, path)
    }

    /// GET a JSON answer from any path of the server.
    pub fn get(&self, path_and_query: &str) -> anyhow::Result<Value> {
        let resp = self
            .agent
            .get(&format!("{}{path_and_query}", self.base))
            .call()
            .with_context(|| format!("GET {path_and_query}"))?;
        Self::check(resp, path_and_query)
    }

    /// Downloads an artifact through the server's proxy.
    pub fn get_artifact(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        let mut resp = self
            .agent
            .get(&format!(
                "{}/api/2.0/mlflow-artifacts/artifacts/{path}",
                self.base
            ))
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
}
