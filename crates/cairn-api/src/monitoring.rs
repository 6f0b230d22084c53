//! Live monitoring over HTTP: served predictions go to the prediction log (off the request
//! path), a periodic evaluation computes drift and labelled metrics of each monitored model
//! version over a recent window, exports them as Prometheus gauges and fires alert rules;
//! JSON endpoints under `/api/2.0/cairn/monitoring/` answer the same questions on demand.
use crate::metrics::escape;
use crate::{ApiError, Fields};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use cairn_quality::drift::{DriftOptions, DriftReport};
use cairn_quality::monitor::{
    now_ms, parse_duration, window_metrics, AlertEvent, AlertState, Label, Labels, LoggedTensor,
    MetricBucket, Monitor, Prediction, PredictionLog, Values, WindowDrift, DEFAULT_WINDOW_SECONDS,
};
use cairn_serving::{NamedTensor, TensorData};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Posts an alert to a webhook; the binary provides the HTTP client.
pub trait Notifier: Send + Sync {
    /// Posts `body` as JSON to `url`; returns the HTTP status or why it failed.
    fn post(&self, url: &str, body: &Value) -> Result<u16, String>;
}

/// What was last computed for one model version.
#[derive(Default)]
struct VersionGauges {
    predictions: u64,
    drift: Option<DriftReport>,
    metrics: Option<MetricBucket>,
}

/// Monitoring of a server: the log, the monitoring folder, the gauges and alert state.
pub struct Monitoring {
    monitor: Monitor,
    log: Option<PredictionLog>,
    window_seconds: u64,
    retention_seconds: u64,
    notifier: Option<Arc<dyn Notifier>>,
    gauges: Mutex<BTreeMap<(String, String), VersionGauges>>,
    alerts: Mutex<AlertState>,
    evaluations: AtomicU64,
    next_id: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn values_of(data: &TensorData) -> Values {
    match data {
        TensorData::Fp32(v) => Values::Float(v.iter().map(|x| f64::from(*x)).collect()),
        TensorData::Fp64(v) => Values::Float(v.clone()),
        TensorData::Int32(v) => Values::Int(v.iter().map(|x| i64::from(*x)).collect()),
        TensorData::Int64(v) => Values::Int(v.clone()),
        TensorData::Bool(v) => Values::Int(v.iter().map(|b| i64::from(*b)).collect()),
        TensorData::Bytes(v) => Values::Text(v.clone()),
    }
}

/// Tensors as the prediction log keeps them.
pub(crate) fn logged(tensors: &[NamedTensor]) -> Vec<LoggedTensor> {
    tensors
        .iter()
        .map(|t| LoggedTensor {
            name: t.name.clone(),
            shape: t.shape.clone(),
            values: values_of(&t.data),
        })
        .collect()
}

impl Monitoring {
    /// Monitoring on `monitor`'s folder; `log` is where served predictions go (none: not
    /// logged); gauges and alerts look back `window_seconds`; logged predictions older than
    /// `retention_seconds` are deleted.
    pub fn new(
        monitor: Monitor,
        log: Option<PredictionLog>,
        window_seconds: u64,
        retention_seconds: u64,
        notifier: Option<Arc<dyn Notifier>>,
    ) -> Monitoring {
        let alerts = AlertState::from_events(&monitor.alert_events().unwrap_or_default());
        Monitoring {
            monitor,
            log,
            window_seconds: window_seconds.max(1),
            retention_seconds: retention_seconds.max(1),
            notifier,
            gauges: Mutex::default(),
            alerts: Mutex::new(alerts),
            evaluations: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
        }
    }

    /// The id an answered request is logged under: the caller's (`given`, when not empty),
    /// or one unique to this server (start time and a counter). `None` when nothing is logged.
    pub fn request_id(&self, given: Option<&str>) -> Option<String> {
        static STARTED: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
        self.log.as_ref()?;
        Some(match given.filter(|id| !id.is_empty()) {
            Some(id) => id.to_owned(),
            None => {
                let started = *STARTED.get_or_init(now_ms);
                format!("{started:x}-{}", self.next_id.fetch_add(1, Relaxed))
            }
        })
    }

    /// Queues one answered request for the log; never blocks or fails the request.
    pub fn record(
        &self,
        request_id: String,
        model: &str,
        version: &str,
        latency: Duration,
        inputs: Vec<LoggedTensor>,
        outputs: &[NamedTensor],
    ) {
        if let Some(log) = &self.log {
            log.record(Prediction {
                request_id,
                model: model.to_owned(),
                version: version.to_owned(),
                timestamp_ms: now_ms(),
                latency_us: latency.as_micros().min(i64::MAX as u128) as i64,
                inputs,
                outputs: logged(outputs),
            });
        }
    }

    /// Writes the predictions queued so far. Blocks.
    pub fn flush(&self) {
        if let Some(log) = &self.log {
            log.flush();
        }
    }

    fn window(&self, seconds: u64) -> (i64, i64) {
        let to = now_ms() + 1;
        (to - (seconds as i64).saturating_mul(1000), to)
    }

    /// One evaluation: drift and metrics of every version with a reference over the
    /// window, the gauges updated, alert rules checked (firings recorded and posted). Blocks.
    pub fn evaluate(&self) {
        self.flush();
        if let Some(log) = &self.log {
            let failed = log
                .counters()
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            if let Some(e) = failed {
                tracing::error!(error = %e, "prediction log file not written");
            }
        }
        let (expired, _) = self.window(self.retention_seconds);
        if let Err(e) = self.monitor.prune_predictions(expired) {
            tracing::warn!(error = %e, "old predictions not deleted");
        }
        let versions = self.monitor.referenced_versions().unwrap_or_default();
        let (from, to) = self.window(self.window_seconds);
        let mut computed = BTreeMap::new();
        // Read once per evaluation, not once per version.
        let labels = if versions.is_empty() {
            Labels::default()
        } else {
            self.monitor.labels().unwrap_or_else(|e| {
                tracing::warn!(error = %e, "labels not read");
                Labels::default()
            })
        };
        for (model, version) in &versions {
            let window = match self.monitor.window(model, version, from, to) {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(model, version, error = %e, "prediction log not read");
                    continue;
                }
            };
            let predictions = window.rows;
            let drift = self
                .monitor
                .window_drift(model, version, &window, &DriftOptions::default())
                .ok()
                .map(|d| d.report);
            // A sampled window holds only some rows: metrics then stream every row again.
            let metrics = if window.rows > window.keys.len() as u64 {
                self.monitor
                    .metrics_with_labels(model, version, from, to, to - from, &labels)
            } else {
                window_metrics(&window, to - from, &labels)
            };
            let metrics = metrics
                .ok()
                .and_then(|b| b.into_iter().next())
                .filter(|b| b.labeled > 0);
            computed.insert(
                (model.clone(), version.clone()),
                VersionGauges {
                    predictions,
                    drift,
                    metrics,
                },
            );
        }
        let rules = match self.monitor.alert_rules() {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "alert rules not read");
                Vec::new()
            }
        };
        let mut events = Vec::new();
        for rule in &rules {
            for (model, version) in versions.iter().filter(|(m, v)| rule.watches(m, v)) {
                let default_window = rule.window_seconds == self.window_seconds;
                let (value, window) = match computed.get(&(model.clone(), version.clone())) {
                    Some(g) if default_window => (
                        rule.metric.value(g.drift.as_ref(), g.metrics.as_ref()),
                        (from, to),
                    ),
                    _ => {
                        let (f, t) = self.window(rule.window_seconds);
                        let value = if rule.metric.needs_labels() {
                            let m = self.monitor.metrics(model, version, f, t, t - f).ok();
                            rule.metric.value(None, m.as_ref().and_then(|b| b.first()))
                        } else {
                            let d = self
                                .monitor
                                .drift(model, version, f, t, &DriftOptions::default())
                                .ok();
                            rule.metric.value(d.as_ref().map(|d| &d.report), None)
                        };
                        (value, (f, t))
                    }
                };
                let Some(value) = value else { continue };
                let event = lock(&self.alerts).observe(rule, version, value, window);
                if let Some(mut event) = event {
                    if let (Some(url), Some(notifier)) = (&rule.webhook, &self.notifier) {
                        event.webhook = Some(match notifier.post(url, &event_json(&event)) {
                            Ok(status) => status.to_string(),
                            Err(e) => e,
                        });
                    }
                    events.push(event);
                }
            }
        }
        for event in &events {
            tracing::info!(
                alert = event.alert,
                state = event.state,
                model = event.model,
                version = event.version,
                value = event.value,
                "alert"
            );
            if let Err(e) = self.monitor.record_alert(event) {
                tracing::error!(error = %e, "alert not recorded");
            }
        }
        *lock(&self.gauges) = computed;
        self.evaluations.fetch_add(1, Relaxed);
    }

    /// Runs [`Monitoring::evaluate`] every `interval` on the blocking pool.
    pub fn spawn_evaluator(self: Arc<Self>, interval: Duration) {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let me = self.clone();
                if tokio::task::spawn_blocking(move || me.evaluate())
                    .await
                    .is_err()
                {
                    tracing::error!("monitoring evaluation failed");
                }
            }
        });
    }

    /// The gauges in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, lines: Vec<String>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for l in lines {
                let _ = writeln!(out, "{name}{l}");
            }
        };
        if let Some(log) = &self.log {
            let c = log.counters();
            for (name, help, value) in [
                ("cairn_prediction_log_records_total", "Predictions queued for the prediction log.", c.accepted.load(Relaxed)),
                ("cairn_prediction_log_dropped_total", "Predictions not logged because the log's buffer was full (the requests were answered).", c.dropped.load(Relaxed)),
                ("cairn_prediction_log_rows_written_total", "Rows written to the prediction log's Parquet files.", c.rows_written.load(Relaxed)),
                ("cairn_prediction_log_write_errors_total", "Prediction log files that could not be written.", c.write_errors.load(Relaxed)),
            ] {
                family(name, "counter", help, vec![format!(" {value}")]);
            }
        }
        family(
            "cairn_monitor_evaluations_total",
            "counter",
            "Monitoring evaluations run.",
            vec![format!(" {}", self.evaluations.load(Relaxed))],
        );
        let gauges = lock(&self.gauges);
        let label = |m: &str, v: &str| format!("model=\"{}\",version=\"{}\"", escape(m), escape(v));
        let per_version = |f: &dyn Fn(&VersionGauges) -> Option<f64>| -> Vec<String> {
            gauges
                .iter()
                .filter_map(|((m, v), g)| f(g).map(|x| format!("{{{}}} {x}", label(m, v))))
                .collect()
        };
        family(
            "cairn_monitor_window_predictions",
            "gauge",
            "Predictions logged in the monitoring window.",
            per_version(&|g| Some(g.predictions as f64)),
        );
        family(
            "cairn_drift_share",
            "gauge",
            "Share of drifted features in the monitoring window.",
            per_version(&|g| g.drift.as_ref().map(|d| d.share)),
        );
        family(
            "cairn_dataset_drift",
            "gauge",
            "1 when the share of drifted features reaches the dataset threshold.",
            per_version(&|g| {
                g.drift
                    .as_ref()
                    .map(|d| f64::from(u8::from(d.dataset_drift)))
            }),
        );
        let per_feature = |f: &dyn Fn(&cairn_quality::drift::ColumnDrift) -> f64| -> Vec<String> {
            gauges
                .iter()
                .flat_map(|((m, v), g)| {
                    g.drift
                        .iter()
                        .flat_map(|d| d.columns.iter())
                        .filter_map(|c| {
                            let method = c.method?;
                            Some(format!(
                                "{{{},feature=\"{}\",method=\"{}\"}} {}",
                                label(m, v),
                                escape(&c.column),
                                method.name(),
                                f(c)
                            ))
                        })
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        family(
            "cairn_feature_drift_score",
            "gauge",
            "Drift score of a feature (p-value for ks/chisquare/z, distance otherwise).",
            per_feature(&|c| c.score),
        );
        family(
            "cairn_feature_drifted",
            "gauge",
            "1 when the feature's drift test flags it.",
            per_feature(&|c| f64::from(u8::from(c.drifted))),
        );
        for (name, help, pick) in [
            (
                "cairn_model_accuracy",
                "Accuracy of labelled predictions in the window.",
                (|b: &MetricBucket| b.accuracy) as fn(&MetricBucket) -> Option<f64>,
            ),
            (
                "cairn_model_mae",
                "Mean absolute error of labelled predictions in the window.",
                |b: &MetricBucket| b.mae,
            ),
            (
                "cairn_model_rmse",
                "Root mean squared error of labelled predictions in the window.",
                |b: &MetricBucket| b.rmse,
            ),
        ] {
            family(
                name,
                "gauge",
                help,
                per_version(&|g| g.metrics.as_ref().and_then(pick)),
            );
        }
        let firing: Vec<String> = lock(&self.alerts)
            .states()
            .map(|((a, m, v), f)| {
                format!(
                    "{{alert=\"{}\",{}}} {}",
                    escape(a),
                    label(m, v),
                    u8::from(f)
                )
            })
            .collect();
        family(
            "cairn_alert_firing",
            "gauge",
            "1 while an alert rule is breached.",
            firing,
        );
        out
    }
}

fn event_json(e: &AlertEvent) -> Value {
    serde_json::to_value(e).unwrap_or(Value::Null)
}

/// A window's drift report as JSON: `cairn drift`'s report plus the model version and window.
pub fn window_drift_json(model: &str, version: &str, d: &WindowDrift) -> Value {
    let mut body = cairn_quality::report::drift_json(&d.report);
    body["model"] = json!(model);
    body["version"] = json!(version);
    body["window"] = json!({
        "seconds": (d.to_ms - d.from_ms) / 1000, "from_ms": d.from_ms, "to_ms": d.to_ms,
        // Past the sample size, drift is computed on a uniform sample of the rows.
        "rows": d.rows, "sampled_rows": d.rows.min(cairn_quality::monitor::WINDOW_SAMPLE_ROWS as u64),
    });
    body
}

fn quality_error(e: cairn_quality::Error) -> ApiError {
    match e {
        cairn_quality::Error::Invalid(m) if m.contains("has no training reference") => {
            ApiError::new(StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST", m)
        }
        cairn_quality::Error::Invalid(m) => ApiError::invalid(m),
        other => ApiError::internal(other.to_string()),
    }
}

/// Monitoring queries read whole windows of logged predictions: at most this many run at once,
/// so a burst of them cannot multiply the server's memory; the rest wait their turn.
const CONCURRENT_QUERIES: usize = 2;

async fn off_runtime<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    static QUERIES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(CONCURRENT_QUERIES);
    let _turn = QUERIES
        .acquire()
        .await
        .map_err(|_| ApiError::internal("monitoring queries are shut down"))?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("worker failed: {e}")))?
}

/// `window` (like `1h`; default the server's window) as `(from_ms, to_ms)`.
fn window_of(m: &Monitoring, f: &Fields, name: &str) -> Result<(i64, i64), ApiError> {
    let seconds = match f.opt_str(name)? {
        Some(w) => parse_duration(&w).map_err(|e| ApiError::invalid(format!("{name}: {e}")))?,
        None => m.window_seconds,
    };
    Ok(m.window(seconds))
}

/// Longest model name or version the monitoring endpoints take (the registry's own limit).
const MAX_NAME_BYTES: usize = 256;
/// Most buckets one metrics answer holds.
const MAX_BUCKETS: i64 = 10_000;

/// The `name` and `version` fields, each non-empty and within [`MAX_NAME_BYTES`].
fn model_version(f: &Fields) -> Result<(String, String), ApiError> {
    let (name, version) = (f.non_empty("name")?, f.non_empty("version")?);
    for (field, value) in [("name", &name), ("version", &version)] {
        if value.len() > MAX_NAME_BYTES {
            return Err(ApiError::invalid(format!(
                "{field} is longer than the limit of {MAX_NAME_BYTES} bytes"
            )));
        }
    }
    Ok((name, version))
}

async fn drift(State(m): State<Arc<Monitoring>>, f: Fields) -> Result<Json<Value>, ApiError> {
    let (name, version) = model_version(&f)?;
    let (from, to) = window_of(&m, &f, "window")?;
    off_runtime(move || m.drift_json(&name, &version, from, to).map(Json)).await
}

impl Monitoring {
    /// The window of `seconds` (the server's window when `None`) ending now, in ms.
    pub fn recent(&self, seconds: Option<u64>) -> (i64, i64) {
        self.window(seconds.unwrap_or(self.window_seconds))
    }

    /// Drift of a version's logged inputs in `[from, to)` against its training reference, as
    /// the drift endpoint answers it. Blocks (reads the log).
    pub fn drift_json(
        &self,
        name: &str,
        version: &str,
        from: i64,
        to: i64,
    ) -> Result<Value, ApiError> {
        self.flush();
        let d = self
            .monitor
            .drift(name, version, from, to, &DriftOptions::default())
            .map_err(quality_error)?;
        Ok(window_drift_json(name, version, &d))
    }

    /// Labelled metrics per bucket of `bucket_seconds`, as the metrics endpoint answers them.
    pub fn metrics_json(
        &self,
        name: &str,
        version: &str,
        from: i64,
        to: i64,
        bucket_seconds: u64,
    ) -> Result<Value, ApiError> {
        self.flush();
        let buckets = self
            .monitor
            .metrics(name, version, from, to, bucket_seconds as i64 * 1000)
            .map_err(quality_error)?;
        Ok(json!({
            "model": name, "version": version,
            "buckets": buckets.iter().map(bucket_json).collect::<Vec<_>>(),
        }))
    }

    /// Alert rules (with where they fire) and every event, as the alerts endpoint answers.
    pub fn alerts_json(&self) -> Result<Value, ApiError> {
        let rules = self.monitor.alert_rules().map_err(quality_error)?;
        let events = self.monitor.alert_events().map_err(quality_error)?;
        let firing: Vec<(String, String, String)> = lock(&self.alerts)
            .states()
            .filter(|(_, f)| *f)
            .map(|(k, _)| k.clone())
            .collect();
        Ok(json!({
            "rules": rules.iter().map(|r| json!({
                "name": r.name, "model": r.model, "version": r.version, "metric": r.metric.name(),
                "above": r.above, "below": r.below, "window_seconds": r.window_seconds,
                "webhook": r.webhook,
                "firing": firing.iter().filter(|(a, _, _)| a == &r.name)
                    .map(|(_, model, version)| json!({"model": model, "version": version}))
                    .collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "events": events.iter().map(event_json).collect::<Vec<_>>(),
        }))
    }

    /// A version's training reference (its features in the model's order, and the file it
    /// was read from), if one was set.
    pub fn reference(
        &self,
        model: &str,
        version: &str,
    ) -> Result<Option<cairn_quality::monitor::Reference>, ApiError> {
        self.monitor
            .reference(model, version)
            .map_err(quality_error)
    }

    /// The model versions the last evaluation looked at, with their logged predictions in
    /// the window.
    pub fn monitored(&self) -> Vec<(String, String, u64)> {
        lock(&self.gauges)
            .iter()
            .map(|((m, v), g)| (m.clone(), v.clone(), g.predictions))
            .collect()
    }
}

/// One metrics bucket as JSON.
pub fn bucket_json(b: &MetricBucket) -> Value {
    json!({"from_ms": b.from_ms, "to_ms": b.to_ms, "predictions": b.predictions,
           "labeled": b.labeled, "accuracy": b.accuracy, "mae": b.mae, "rmse": b.rmse})
}

async fn metrics(State(m): State<Arc<Monitoring>>, f: Fields) -> Result<Json<Value>, ApiError> {
    let (name, version) = model_version(&f)?;
    let (from, to) = window_of(&m, &f, "window")?;
    let bucket = match f.opt_str("bucket")? {
        Some(b) => parse_duration(&b).map_err(|e| ApiError::invalid(format!("bucket: {e}")))?,
        None => DEFAULT_WINDOW_SECONDS.min(((to - from) / 1000).max(1) as u64),
    };
    let buckets = (to - from) / 1000 / (bucket as i64).max(1);
    if buckets > MAX_BUCKETS {
        return Err(ApiError::invalid(format!(
            "bucket: the window would hold {buckets} buckets, more than the limit of {MAX_BUCKETS}; choose a longer bucket"
        )));
    }
    off_runtime(move || m.metrics_json(&name, &version, from, to, bucket).map(Json)).await
}

async fn labels(State(m): State<Arc<Monitoring>>, f: Fields) -> Result<Json<Value>, ApiError> {
    let now = now_ms();
    let mut labels = Vec::new();
    for (i, item) in f.objects("labels")?.into_iter().enumerate() {
        let request_id = item
            .non_empty("request_id")
            .map_err(|_| ApiError::invalid(format!("labels[{i}] has no request_id")))?;
        let row = item.opt_i64("row")?.unwrap_or(0);
        if row < 0 {
            return Err(ApiError::invalid(format!(
                "labels[{i}]: row must be 0 or more"
            )));
        }
        let label = item
            .map_get("label")
            .filter(|v| v.is_number() || v.is_string() || v.is_boolean())
            .ok_or_else(|| {
                ApiError::invalid(format!("labels[{i}] needs a label (a number or text)"))
            })?
            .clone();
        labels.push(Label {
            request_id,
            row,
            label,
            timestamp_ms: now,
        });
    }
    if labels.is_empty() {
        return Err(ApiError::invalid("'labels' is missing or empty"));
    }
    let count = labels.len();
    off_runtime(move || {
        m.monitor
            .record_labels(&labels)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(Json(json!({ "recorded": count })))
    })
    .await
}

async fn alerts(State(m): State<Arc<Monitoring>>) -> Result<Json<Value>, ApiError> {
    off_runtime(move || m.alerts_json().map(Json)).await
}

/// The monitoring endpoints, under `/api/2.0/cairn/monitoring/`.
pub fn routes(monitoring: Arc<Monitoring>) -> Router {
    let api = Router::new()
        .route("/drift", get(drift))
        .route("/metrics", get(metrics))
        .route("/labels", post(labels))
        .route("/alerts", get(alerts))
        .with_state(monitoring);
    Router::new()
        .nest("/api/2.0/cairn/monitoring", api.clone())
        .nest("/ajax-api/2.0/cairn/monitoring", api)
}
