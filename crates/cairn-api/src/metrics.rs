//! Inference counters per model version, exported at `/metrics` in Prometheus' text format:
//! `cairn_inference_requests_total`, `cairn_inference_errors_total` (by status code) and the
//! `cairn_inference_duration_seconds` histogram, each labelled `model` and `version`.
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct VersionStats {
    requests: AtomicU64,
    /// Non-2xx answers by status code.
    errors: Mutex<BTreeMap<u16, u64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    sum_nanos: AtomicU64,
}

/// All counters of a server.
#[derive(Default)]
pub struct Metrics {
    versions: Mutex<BTreeMap<(String, String), Arc<VersionStats>>>,
}

pub(crate) fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One model version's counters as pages show them.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionSnapshot {
    /// Registered model (or served) name.
    pub model: String,
    /// Version as requests named it (number or alias resolved to a number).
    pub version: String,
    /// Requests answered.
    pub requests: u64,
    /// Of those, answered with a non-2xx status.
    pub errors: u64,
    /// Mean latency, seconds (0 without requests).
    pub mean_seconds: f64,
    /// Upper bounds of the histogram buckets holding the 50th, 95th and 99th percentiles
    /// (`None` without requests, or past the last bucket).
    pub quantiles: [Option<f64>; 3],
}

impl VersionStats {
    fn snapshot(&self, model: &str, version: &str) -> VersionSnapshot {
        let requests = self.requests.load(Relaxed);
        let errors = self
            .errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum();
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let quantile = |q: f64| {
            let rank = (q * requests as f64).ceil() as u64;
            let mut cumulative = 0;
            for (bound, count) in BUCKETS.iter().zip(&counts) {
                cumulative += count;
                if requests > 0 && cumulative >= rank.max(1) {
                    return Some(*bound);
                }
            }
            None
        };
        VersionSnapshot {
            model: model.to_string(),
            version: version.to_string(),
            requests,
            errors,
            mean_seconds: if requests == 0 {
                0.0
            } else {
                self.sum_nanos.load(Relaxed) as f64 / 1e9 / requests as f64
            },
            quantiles: [quantile(0.5), quantile(0.95), quantile(0.99)],
        }
    }
}

impl Metrics {
    /// Every model version's counters, ordered by model then version.
    pub fn snapshot(&self) -> Vec<VersionSnapshot> {
        self.versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|((model, version), stats)| stats.snapshot(model, version))
            .collect()
    }

    /// Counts one inference request that `model` `version` answered with `status`.
    pub fn record(&self, model: &str, version: &str, elapsed: Duration, status: u16) {
        let stats = {
            let mut versions = self.versions.lock().unwrap_or_else(|p| p.into_inner());
            versions
                .entry((model.to_string(), version.to_string()))
                .or_default()
                .clone()
        };
        stats.requests.fetch_add(1, Relaxed);
        if !(200..300).contains(&status) {
            *stats
                .errors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(status)
                .or_default() += 1;
        }
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            stats.buckets[i].fetch_add(1, Relaxed);
        }
        stats
            .sum_nanos
            .fetch_add(elapsed.as_nanos().min(u64::MAX as u128) as u64, Relaxed);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let versions: Vec<_> = self
            .versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut out = String::new();
        out.push_str("# HELP cairn_inference_requests_total Inference requests answered, by model version.\n");
        out.push_str("# TYPE cairn_inference_requests_total counter\n");
        for ((model, version), s) in &versions {
            let _ = writeln!(
                out,
                "cairn_inference_requests_total{{model=\"{}\",version=\"{}\"}} {}",
                escape(model),
                escape(version),
                s.requests.load(Relaxed)
            );
        }
        out.push_str("# HELP cairn_inference_errors_total Inference requests answered with an error, by status code.\n");
        out.push_str("# TYPE cairn_inference_errors_total counter\n");
        for ((model, version), s) in &versions {
            let errors = s.errors.lock().unwrap_or_else(|p| p.into_inner()).clone();
            for (code, n) in errors {
                let _ = writeln!(
                    out,
                    "cairn_inference_errors_total{{model=\"{}\",version=\"{}\",code=\"{code}\"}} {n}",
                    escape(model),
                    escape(version),
                );
            }
        }
        out.push_str("# HELP cairn_inference_duration_seconds Time from a request's arrival at its model to its answer.\n");
        out.push_str("# TYPE cairn_inference_duration_seconds histogram\n");
        for ((model, version), s) in &versions {
            let labels = format!(
                "model=\"{}\",version=\"{}\"",
                escape(model),
                escape(version)
            );
            let mut cumulative = 0;
            for (bound, count) in BUCKETS.iter().zip(&s.buckets) {
                cumulative += count.load(Relaxed);
                let _ = writeln!(
                    out,
                    "cairn_inference_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            let total = s.requests.load(Relaxed);
            let _ = writeln!(
                out,
                "cairn_inference_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {total}"
            );
            let _ = writeln!(
                out,
                "cairn_inference_duration_seconds_sum{{{labels}}} {}",
                s.sum_nanos.load(Relaxed) as f64 / 1e9
            );
            let _ = writeln!(
                out,
                "cairn_inference_duration_seconds_count{{{labels}}} {total}"
            );
        }
        out
    }
}

/// `GET /metrics`: inference counters, and the monitoring gauges when monitoring is on.
pub async fn handler(
    State((metrics, monitoring)): State<(Arc<Metrics>, Option<Arc<crate::monitoring::Monitoring>>)>,
) -> impl IntoResponse {
    let mut text = metrics.render();
    if let Some(m) = monitoring {
        // The alert states may be read from the metadata store: off the async workers.
        match tokio::task::spawn_blocking(move || m.render()).await {
            Ok(gauges) => text.push_str(&gauges),
            Err(e) => tracing::error!(error = %e, "monitoring gauges not rendered"),
        }
    }
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
}
