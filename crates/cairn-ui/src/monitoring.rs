//! Monitoring pages: per monitored model version, request counts and latency percentiles,
//! errors, drift per feature over consecutive windows, accuracy or error over time when labels
//! exist, and alert rules with the events they fired. The numbers are the monitoring API's
//! (`cairn_api::monitoring::Monitoring`), computed the same way.
use crate::charts;
use crate::format::{self, enc};
use crate::layout::document;
use crate::params::Params;
use crate::viewer::Viewer;
use crate::{blocking, PageError, Shared};
use axum::extract::{Path, RawQuery, State};
use axum::response::{Html, IntoResponse, Response};
use cairn_api::monitoring::Monitoring;
use cairn_core::auth::{Permission, ResourceType};
use cairn_monitor::parse_duration;
use maud::{html, Markup, PreEscaped};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// Windows of drift shown over time.
const DRIFT_STEPS: u64 = 6;

fn monitoring(ui: &Shared) -> Result<Arc<Monitoring>, PageError> {
    ui.serving.monitoring.clone().ok_or_else(|| {
        PageError::not_found("Monitoring is off on this server (--no-prediction-log).")
    })
}

fn api_error(e: cairn_api::ApiError) -> PageError {
    match e.status().as_u16() {
        404 => PageError::not_found(e.message().to_string()),
        400..=499 => PageError::bad_request(e.message().to_string()),
        _ => PageError::internal(e.message().to_string()),
    }
}

fn alerts_table(alerts: &Value, only: Option<(&str, &str)>) -> Markup {
    let empty = vec![];
    let rules = alerts["rules"].as_array().unwrap_or(&empty);
    let events = alerts["events"].as_array().unwrap_or(&empty);
    let matches = |v: &Value| {
        only.is_none_or(|(m, ver)| {
            v["model"].as_str() == Some(m)
                && (v["version"].is_null() || v["version"].as_str() == Some(ver))
        })
    };
    html! {
        h2 { "Alert rules" }
        @if rules.iter().filter(|r| matches(r)).count() == 0 { p.muted { "No alert rules." } } @else {
            table.grid #alert-rules {
                thead { tr { th { "Rule" } th { "Model" } th { "Metric" } th { "Condition" } th { "Window" } th { "Firing" } } }
                tbody { @for r in rules.iter().filter(|r| matches(r)) { tr {
                    td { (r["name"].as_str().unwrap_or("")) }
                    td { (r["model"].as_str().unwrap_or("")) " " (r["version"].as_str().unwrap_or("")) }
                    td { (r["metric"].as_str().unwrap_or("")) }
                    td { @if let Some(a) = r["above"].as_f64() { "above " (format::number(a)) } @if let Some(b) = r["below"].as_f64() { "below " (format::number(b)) } }
                    td { (r["window_seconds"].as_u64().map(|s| format::duration(s as i64 * 1000)).unwrap_or_default()) }
                    td { @let f = r["firing"].as_array().map(|f| f.len()).unwrap_or(0);
                        @if f > 0 { span.status.failed { "firing (" (f) ")" } } @else { span.status.finished { "ok" } } }
                } } }
            }
        }
        h2 { "Alert events" }
        @let shown: Vec<&Value> = events.iter().rev().filter(|e| matches(e)).take(100).collect();
        @if shown.is_empty() { p.muted { "No alert has fired." } } @else {
            table.grid #alert-events {
                thead { tr { th { "Time" } th { "Rule" } th { "State" } th { "Model" } th { "Value" } th { "Threshold" } } }
                tbody { @for e in shown { tr {
                    td { (e["timestamp_ms"].as_i64().map(format::time).unwrap_or_default()) }
                    td { (e["alert"].as_str().unwrap_or("")) }
                    td { (e["state"].as_str().unwrap_or("")) }
                    td { (e["model"].as_str().unwrap_or("")) " v" (e["version"].as_str().unwrap_or("")) }
                    td.num { (e["value"].as_f64().map(format::number).unwrap_or_default()) }
                    td.num { (e["condition"].as_str().unwrap_or("")) " " (e["threshold"].as_f64().map(format::number).unwrap_or_default()) }
                } } }
            }
        }
    }
}

/// `GET /monitoring`: monitored versions, serving counters and alerts.
pub async fn list(State(ui): State<Shared>, viewer: Viewer) -> Result<Response, PageError> {
    let m = monitoring(&ui)?;
    let snapshot = ui.serving.metrics.snapshot();
    let (snapshot, monitored, alerts) = blocking(move || {
        // Only the models the viewer may read (one check per model name).
        let mut verdicts: HashMap<String, bool> = HashMap::new();
        let mut readable = |model: &str| -> Result<bool, PageError> {
            if let Some(v) = verdicts.get(model) {
                return Ok(*v);
            }
            let v = viewer.may(ResourceType::RegisteredModel, model, Permission::Read)?;
            verdicts.insert(model.to_string(), v);
            Ok(v)
        };
        let mut kept_snapshot = Vec::new();
        for s in snapshot {
            if readable(&s.model)? {
                kept_snapshot.push(s);
            }
        }
        let mut kept_monitored = Vec::new();
        for entry in m.monitored().map_err(api_error)? {
            if readable(&entry.0)? {
                kept_monitored.push(entry);
            }
        }
        let mut alerts = m.alerts_json().map_err(api_error)?;
        for key in ["rules", "events"] {
            if let Some(items) = alerts.get_mut(key).and_then(Value::as_array_mut) {
                let mut kept = Vec::new();
                for item in std::mem::take(items) {
                    if readable(item["model"].as_str().unwrap_or_default())? {
                        kept.push(item);
                    }
                }
                *items = kept;
            }
        }
        Ok((kept_snapshot, kept_monitored, alerts))
    })
    .await?;
    let body = html! {
        h1 { "Monitoring" }
        h2 { "Served model versions" }
        @if snapshot.is_empty() && monitored.is_empty() { p.muted { "No model has answered a request since this server started, and none has a training reference." } } @else {
            table.grid #served {
                thead { tr { th { "Model" } th { "Version" } th.num { "Requests" } th.num { "Errors" } th.num { "Mean ms" } th { "p50 / p95 / p99 under" } th.num { "Predictions in window" } } }
                tbody {
                    @for s in &snapshot { tr {
                        td { a href={ "/monitoring/" (enc(&s.model)) "/" (enc(&s.version)) } { (s.model) } }
                        td { (s.version) }
                        td.num { (s.requests) }
                        td.num { (s.errors) }
                        td.num { (format::number(s.mean_seconds * 1000.0)) }
                        td { (s.quantiles.iter().map(|q| q.map(|q| format!("{} ms", format::number(q * 1000.0))).unwrap_or_else(|| "-".into())).collect::<Vec<_>>().join(" / ")) }
                        td.num { (monitored.iter().find(|(m, v, _)| *m == s.model && *v == s.version).and_then(|x| x.2).map(|n| n.to_string()).unwrap_or_else(|| "-".into())) }
                    } }
                    @for (model, version, n) in monitored.iter().filter(|(m, v, _)| !snapshot.iter().any(|s| s.model == *m && s.version == *v)) { tr {
                        td { a href={ "/monitoring/" (enc(model)) "/" (enc(version)) } { (model) } }
                        td { (version) } td.num { "0" } td.num {} td.num {} td {} td.num { (n.map(|n| n.to_string()).unwrap_or_else(|| "-".into())) }
                    } }
                }
            }
        }
        (alerts_table(&alerts, None))
    };
    Ok(Html(document("Monitoring", &[], body).into_string()).into_response())
}

/// `GET /monitoring/{name}/{version}?window=1h`.
pub async fn version(
    State(ui): State<Shared>,
    Path((name, version)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let p = Params::parse(raw.as_deref())?;
    let window = match p.get("window") {
        Some(w) => {
            Some(parse_duration(w).map_err(|e| PageError::bad_request(format!("window: {e}")))?)
        }
        None => None,
    };
    let m = monitoring(&ui)?;
    let snapshot = ui
        .serving
        .metrics
        .snapshot()
        .into_iter()
        .find(|s| s.model == name && s.version == version);
    let (drift_now, over_time, metrics, alerts, seconds, window_ms) = {
        let (name, version) = (name.clone(), version.clone());
        blocking(move || {
            let (from, to) = m.recent(window);
            let seconds = ((to - from) / 1000).max(1) as u64;
            let drift_now = match m.drift_json(&name, &version, from, to) {
                Ok(d) => Ok(d),
                Err(e) if e.status().as_u16() < 500 => Err(e.message().to_string()),
                Err(e) => return Err(api_error(e)),
            };
            let step = ((to - from) / DRIFT_STEPS as i64).max(1000);
            let mut over_time = Vec::new();
            if drift_now.is_ok() {
                for i in 0..DRIFT_STEPS as i64 {
                    let (a, b) = (from + i * step, from + (i + 1) * step);
                    // A window without predictions has no drift: an empty cell.
                    over_time.push((a, b, m.drift_json(&name, &version, a, b).ok()));
                }
            }
            let metrics = m
                .metrics_json(&name, &version, from, to, (seconds / DRIFT_STEPS).max(1))
                .ok();
            Ok((
                drift_now,
                over_time,
                metrics,
                m.alerts_json().map_err(api_error)?,
                seconds,
                (from as f64, to as f64),
            ))
        })
        .await?
    };
    let empty = vec![];
    let buckets = metrics
        .as_ref()
        .and_then(|m| m["buckets"].as_array())
        .cloned()
        .unwrap_or_default();
    let charts = MonitoringCharts::new(&drift_now, &over_time, &buckets, window_ms);
    let body = html! {
        h1 { (name) " version " (version) }
        p.meta { "Window: the last " (format::duration(seconds as i64 * 1000)) ". "
            a href={ "/models/" (enc(&name)) "/versions/" (enc(&version)) } { "Model version" } }
        form.search method="get" {
            label { "Window " input name="window" value=(p.str("window")) placeholder="1h"; }
            button { "Show" }
        }
        h2 { "Requests" }
        @match &snapshot {
            Some(s) => p #requests { (s.requests) " requests, " (s.errors) " errors, mean " (format::number(s.mean_seconds * 1000.0)) " ms, p95 under "
                (s.quantiles[1].map(|q| format!("{} ms", format::number(q * 1000.0))).unwrap_or_else(|| "-".into())) " (since this server started)" },
            None => p.muted { "No requests since this server started." },
        }
        figure.chart-box { (PreEscaped(charts.requests)) figcaption { "Logged predictions per bucket in the window." } }
        h2 { "Drift" }
        @match &drift_now {
            Err(why) => p.muted { (why) },
            Ok(d) => {
                figure.chart-box { (PreEscaped(charts.drift)) figcaption { "Drift score per feature, window by window (hover a point for its value)." } }
                p #drift-summary {
                    @if d["dataset_drift"].as_bool() == Some(true) { span.status.failed { "Dataset drift" } } @else { span.status.finished { "No dataset drift" } }
                    " · " (d["drifted_columns"]) " of " (d["compared_columns"]) " features drifted (share "
                    (d["drift_share"].as_f64().map(format::number).unwrap_or_default()) ") · " (d["current_rows"]) " rows in the window"
                }
                table.grid #drift {
                    thead { tr { th { "Feature" } th { "Method" } th.num { "Score" } th.num { "Threshold" } th { "Drifted" }
                        @for (a, _, _) in &over_time { th.num { (format::time(*a)[11..16].to_string()) } } } }
                    tbody { @for c in d["columns"].as_array().unwrap_or(&empty) { tr {
                        @let col = c["column"].as_str().unwrap_or("");
                        td { (col) }
                        td { (c["method"].as_str().unwrap_or("-")) }
                        td.num { (c["score"].as_f64().map(format::number).unwrap_or_default()) }
                        td.num { (c["threshold"].as_f64().map(format::number).unwrap_or_default()) }
                        td { @if c["drifted"].as_bool() == Some(true) { span.status.failed { "yes" } } @else { "no" } }
                        @for (_, _, w) in &over_time {
                            @let cell = w.as_ref().and_then(|w| w["columns"].as_array()).and_then(|cs| cs.iter().find(|x| x["column"].as_str() == Some(col)));
                            td.num.drifted[cell.is_some_and(|x| x["drifted"].as_bool() == Some(true))] {
                                (cell.and_then(|x| x["score"].as_f64()).map(format::number).unwrap_or_default())
                            }
                        }
                    } } }
                }
            }
        }
        h2 { "Labelled metrics" }
        @if buckets.iter().all(|b| b["labeled"].as_u64().unwrap_or(0) == 0) { p.muted { "No labels in this window." } } @else {
            figure.chart-box { (PreEscaped(charts.labelled)) figcaption { "Accuracy (classification) or error (regression) over labelled predictions, per bucket." } }
            table.grid #label-metrics {
                thead { tr { th { "From" } th.num { "Predictions" } th.num { "Labelled" } th.num { "Accuracy" } th.num { "MAE" } th.num { "RMSE" } } }
                tbody { @for b in &buckets { tr {
                    td { (b["from_ms"].as_i64().map(format::time).unwrap_or_default()) }
                    td.num { (b["predictions"]) }
                    td.num { (b["labeled"]) }
                    td.num { (b["accuracy"].as_f64().map(format::number).unwrap_or_default()) }
                    td.num { (b["mae"].as_f64().map(format::number).unwrap_or_default()) }
                    td.num { (b["rmse"].as_f64().map(format::number).unwrap_or_default()) }
                } } }
            }
        }
        (alerts_table(&alerts, Some((&name, &version))))
    };
    Ok(Html(
        document(
            &format!("Monitoring {name} v{version}"),
            &[("Monitoring".into(), "/monitoring".into())],
            body,
        )
        .into_string(),
    )
    .into_response())
}

/// The monitoring page's SVG charts, drawn from the numbers its tables show.
struct MonitoringCharts {
    requests: String,
    drift: String,
    labelled: String,
}

impl MonitoringCharts {
    fn new(
        drift_now: &Result<Value, String>,
        over_time: &[(i64, i64, Option<Value>)],
        buckets: &[Value],
        window_ms: (f64, f64),
    ) -> Self {
        let at = |b: &Value| b["from_ms"].as_f64().unwrap_or(f64::NAN);
        let requests = charts::time_chart(
            "requests-chart",
            "predictions per bucket",
            &[charts::TimeSeries {
                name: "predictions".into(),
                points: buckets
                    .iter()
                    .map(|b| (at(b), b["predictions"].as_f64().unwrap_or(0.0)))
                    .collect(),
            }],
            None,
            Some(window_ms),
        );
        let columns: Vec<(String, Option<f64>)> = match drift_now {
            Ok(d) => d["columns"]
                .as_array()
                .map(|cs| {
                    cs.iter()
                        .filter_map(|c| {
                            Some((c["column"].as_str()?.to_string(), c["threshold"].as_f64()))
                        })
                        .collect()
                })
                .unwrap_or_default(),
            Err(_) => vec![],
        };
        let drift_series: Vec<charts::TimeSeries> = columns
            .iter()
            .map(|(column, _)| charts::TimeSeries {
                name: column.clone(),
                points: over_time
                    .iter()
                    .map(|(from, _, window)| {
                        let score = window
                            .as_ref()
                            .and_then(|w| w["columns"].as_array())
                            .and_then(|cs| cs.iter().find(|c| c["column"].as_str() == Some(column)))
                            .and_then(|c| c["score"].as_f64());
                        (*from as f64, score.unwrap_or(f64::NAN))
                    })
                    .collect(),
            })
            .collect();
        // One dashed threshold when every feature is judged against the same one.
        let threshold = match columns.first() {
            Some((_, t)) if columns.iter().all(|(_, u)| u == t) => *t,
            _ => None,
        };
        let drift = if drift_series.is_empty() {
            String::new()
        } else {
            charts::time_chart(
                "drift-chart",
                "drift score",
                &drift_series,
                threshold,
                Some(window_ms),
            )
        };
        let labelled_series: Vec<charts::TimeSeries> = ["accuracy", "mae", "rmse"]
            .iter()
            .filter(|key| buckets.iter().any(|b| b[**key].is_number()))
            .map(|key| charts::TimeSeries {
                name: match *key {
                    "accuracy" => "accuracy",
                    "mae" => "MAE",
                    _ => "RMSE",
                }
                .to_string(),
                points: buckets
                    .iter()
                    .map(|b| (at(b), b[*key].as_f64().unwrap_or(f64::NAN)))
                    .collect(),
            })
            .collect();
        let labelled = charts::time_chart(
            "labelled-chart",
            "labelled metric per bucket",
            &labelled_series,
            None,
            Some(window_ms),
        );
        MonitoringCharts {
            requests,
            drift,
            labelled,
        }
    }
}
