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
use cairn_monitor::{
    now_ms, parse_duration, AlertEvent, Label, Live, MetricBucket, TensorRef, ValuesRef,
    VersionGauges, WindowDrift, DEFAULT_WINDOW_SECONDS,
};
use cairn_quality::drift::DriftOptions;
use cairn_serving::{NamedTensor, TensorData};
use serde_json::{json, Value};
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

/// Monitoring of a server, as the API serves it: [`Live`] (the log, the evaluation under a
/// lease, alert state) plus the wire: gauges in Prometheus' format and the JSON endpoints.
pub struct Monitoring {
    live: Arc<Live>,
}

/// Filler for unused slots of [`Monitoring::record`]'s arrays.
const EMPTY: TensorRef<'static> = TensorRef {
    name: "",
    shape: &[],
    values: ValuesRef::F64(&[]),
};

/// A served tensor as the prediction log borrows it (no copy, no widening here).
fn tensor_ref(t: &NamedTensor) -> TensorRef<'_> {
    TensorRef {
        name: &t.name,
        shape: &t.shape,
        values: match &t.data {
            TensorData::Fp32(v) => ValuesRef::F32(v),
            TensorData::Fp64(v) => ValuesRef::F64(v),
            TensorData::Int32(v) => ValuesRef::I32(v),
            TensorData::Int64(v) => ValuesRef::I64(v),
            TensorData::Bool(v) => ValuesRef::Bool(v),
            TensorData::Bytes(v) => ValuesRef::Text(v),
        },
    }
}

impl Monitoring {
    /// Serves `live`.
    pub fn new(live: Live) -> Monitoring {
        Monitoring {
            live: Arc::new(live),
        }
    }

    /// The live monitoring underneath.
    pub fn live(&self) -> &Arc<Live> {
        &self.live
    }

    /// The id an answered request is logged under (see [`Live::request_id`]).
    pub fn request_id(&self, given: Option<&str>) -> Option<String> {
        self.live.request_id(given)
    }

    /// Stages one answered request for the log; never blocks on the writer or fails the
    /// request.
    pub fn record(
        &self,
        request_id: &str,
        model: &str,
        version: &str,
        latency: Duration,
        inputs: &[NamedTensor],
        outputs: &[NamedTensor],
    ) {
        if self.live.log().is_none() {
            return;
        }
        // Most models take one tensor and answer one or two: no allocation for those.
        const INLINE: usize = 4;
        if inputs.len() <= INLINE && outputs.len() <= INLINE {
            let (mut ins, mut outs) = ([EMPTY; INLINE], [EMPTY; INLINE]);
            for (slot, t) in ins.iter_mut().zip(inputs) {
                *slot = tensor_ref(t);
            }
            for (slot, t) in outs.iter_mut().zip(outputs) {
                *slot = tensor_ref(t);
            }
            self.live.record(
                request_id,
                model,
                version,
                latency,
                &ins[..inputs.len()],
                &outs[..outputs.len()],
            );
        } else {
            let ins: Vec<TensorRef> = inputs.iter().map(tensor_ref).collect();
            let outs: Vec<TensorRef> = outputs.iter().map(tensor_ref).collect();
            self.live
                .record(request_id, model, version, latency, &ins, &outs);
        }
    }

    /// Writes the predictions queued so far. Blocks.
    pub fn flush(&self) {
        self.live.flush();
    }

    /// One evaluation, when this replica holds the lease (see [`Live::evaluate`]). Blocks.
    pub fn evaluate(&self) -> bool {
        self.live.evaluate()
    }

    /// Runs evaluations periodically on a thread of their own.
    pub fn spawn_evaluator(self: Arc<Self>) {
        self.live.clone().spawn_evaluator();
    }

    fn window(&self, seconds: u64) -> (i64, i64) {
        self.live.recent(Some(seconds))
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
        if let Some(log) = self.live.log() {
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
            vec![format!(" {}", self.live.evaluations())],
        );
        let gauges = self.live.gauges();
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
        let states = self.live.alert_states().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "alert states not read for the metrics page");
            Vec::new()
        });
        let firing: Vec<String> = states
            .into_iter()
            .map(|((a, m, v), f)| {
                format!(
                    "{{alert=\"{}\",{}}} {}",
                    escape(&a),
                    label(&m, &v),
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

fn store_error(e: cairn_monitor::Error) -> ApiError {
    match e {
        cairn_monitor::Error::Invalid(m) if m.contains("has no training reference") => {
            ApiError::new(StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST", m)
        }
        cairn_monitor::Error::Invalid(m) => ApiError::invalid(m),
        cairn_monitor::Error::Store(e) => ApiError::from(e),
        other => ApiError::internal(other.to_string()),
    }
}

/// A window's drift report as JSON: `cairn drift`'s report plus the model version and window.
pub fn window_drift_json(model: &str, version: &str, d: &WindowDrift) -> Value {
    let mut body = cairn_quality::report::drift_json(&d.report);
    body["model"] = json!(model);
    body["version"] = json!(version);
    body["window"] = json!({
        "seconds": (d.to_ms - d.from_ms) / 1000, "from_ms": d.from_ms, "to_ms": d.to_ms,
        // Past the sample size, drift is computed on a uniform sample of the rows.
        "rows": d.rows, "sampled_rows": d.rows.min(cairn_monitor::WINDOW_SAMPLE_ROWS as u64),
    });
    body
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
        None => m.live.window_seconds(),
    };
    Ok(m.window(seconds))
}

/// Most alert events the alerts endpoint answers with (the newest).
const MAX_EVENTS: usize = 1_000;

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
        self.live.recent(seconds)
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
            .live
            .monitor()
            .drift(name, version, from, to, &DriftOptions::default())
            .map_err(store_error)?;
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
            .live
            .monitor()
            .metrics(name, version, from, to, bucket_seconds as i64 * 1000)
            .map_err(store_error)?;
        Ok(json!({
            "model": name, "version": version,
            "buckets": buckets.iter().map(bucket_json).collect::<Vec<_>>(),
        }))
    }

    /// Alert rules (with where they fire) and every event, as the alerts endpoint answers.
    pub fn alerts_json(&self) -> Result<Value, ApiError> {
        let monitor = self.live.monitor();
        let rules = monitor.alert_rules().map_err(store_error)?;
        let events = monitor
            .alert_events(Some(MAX_EVENTS))
            .map_err(store_error)?;
        let firing: Vec<(String, String, String)> = self
            .live
            .alert_states()
            .map_err(store_error)?
            .into_iter()
            .filter(|(_, f)| *f)
            .map(|(k, _)| k)
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
    ) -> Result<Option<cairn_monitor::Reference>, ApiError> {
        self.live
            .monitor()
            .reference(model, version)
            .map_err(store_error)
    }

    /// The monitored model versions (those with a training reference, and those this
    /// replica's last evaluation looked at), with their logged predictions in the window where
    /// this replica evaluated them. Read from the store, so every replica lists the same
    /// versions; the counts come from the replica that leads the evaluation.
    pub fn monitored(&self) -> Result<Vec<(String, String, Option<u64>)>, ApiError> {
        let gauges = self.live.gauges();
        let mut monitored: Vec<(String, String, Option<u64>)> = gauges
            .iter()
            .map(|((m, v), g)| (m.clone(), v.clone(), Some(g.predictions)))
            .collect();
        for (model, version) in self
            .live
            .monitor()
            .referenced_versions()
            .map_err(store_error)?
        {
            if !gauges.contains_key(&(model.clone(), version.clone())) {
                monitored.push((model, version, None));
            }
        }
        monitored.sort();
        Ok(monitored)
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
        m.live
            .monitor()
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
