//! The traces of an experiment (MLflow 3 tracing): a list searched with MLflow's trace filter
//! grammar (state, latency, tokens when the trace records them, previews), and a trace's page
//! with its span tree (timings drawn as bars, inputs, outputs, attributes and events of each
//! span), tags, metadata and assessments.
use crate::error::{check_experiment_id, PageError};
use crate::format;
use crate::layout::{document, filter_form, filter_status, kv_table, pre};
use crate::params::Params;
use crate::{blocking, Shared};
use axum::extract::{Path, RawQuery, State};
use axum::response::{Html, IntoResponse, Response};
use cairn_api::trace_analytics::attribute_value as any_value;
use cairn_core::traces::{Span, TraceInfo, TraceState};
use maud::{html, Markup};
use serde_json::Value;

const PAGE_SIZE: u64 = 50;

fn state_badge(state: TraceState) -> Markup {
    let class = match state {
        TraceState::Ok => "status finished",
        TraceState::Error => "status failed",
        TraceState::InProgress => "status running",
        TraceState::Unspecified => "status",
    };
    html! { span class=(class) { (state.as_str()) } }
}

fn meta<'a>(t: &'a TraceInfo, key: &str) -> Option<&'a str> {
    t.metadata
        .iter()
        .chain(t.tags.iter())
        .find(|kv| kv.key == key)
        .map(|kv| kv.value.as_str())
}

/// Total tokens, when the trace recorded its usage (MLflow's `mlflow.trace.tokenUsage`).
fn tokens(t: &TraceInfo) -> Option<i64> {
    let usage: Value = serde_json::from_str(meta(t, "mlflow.trace.tokenUsage")?).ok()?;
    usage.get("total_tokens").and_then(Value::as_i64)
}

fn cut(text: &str, chars: usize) -> String {
    if text.chars().count() > chars {
        let mut s: String = text.chars().take(chars).collect();
        s.push('…');
        s
    } else {
        text.to_string()
    }
}

/// `GET /experiments/{id}/traces?filter=...&page_token=...`.
pub async fn list(
    State(ui): State<Shared>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    check_experiment_id(&id)?;
    let p = Params::parse(raw.as_deref())?;
    let filter = p.get("filter").unwrap_or_default().to_string();
    let token = p.get("page_token").unwrap_or_default().to_string();
    let (experiment, found) = {
        let (ui, id, filter, token) = (ui.clone(), id.clone(), filter.clone(), token.clone());
        blocking(move || {
            let experiment = ui.state.tracking.get_experiment(&id)?;
            let found = ui.state.traces.search_traces(
                std::slice::from_ref(&id),
                &filter,
                &[],
                Some(PAGE_SIZE),
                &token,
            );
            Ok((experiment, found))
        })
        .await?
    };
    let base = format!("/experiments/{id}/traces");
    let error = found.as_ref().err().map(|e| e.to_string());
    let status = filter_status(error.as_deref());
    let title = format!("Traces of {}", experiment.name);
    let body = html! {
        h1 { (title) }
        p.meta {
            a href=(format!("/experiments/{id}")) { "Runs" } " · Traces · "
            a href=(format!("/experiments/{id}/evaluation-datasets")) { "Evaluation datasets" }
        }
        (filter_form("trace-search", &base, &filter, "trace.status = 'ERROR' and trace.execution_time_ms > 500", "Filter traces", error.as_deref()))
        @match &found {
            Err(_) => p.muted { "Fix the filter to see traces." },
            Ok(page) if page.items.is_empty() => p.muted {
                "No traces. Point MLflow's client here and call a function decorated with "
                code { "@mlflow.trace" } "."
            },
            Ok(page) => {
                table.grid #traces {
                    thead { tr {
                        th { "Trace" } th { "Name" } th { "State" } th { "Started" }
                        th.num { "Latency" } th.num { "Tokens" } th { "Request" } th { "Response" }
                    } }
                    tbody {
                        @for t in &page.items {
                            tr {
                                td { a href=(format!("{base}/{}", t.trace_id)) { code { (format::short(&t.trace_id)) } } }
                                td { (meta(t, "mlflow.traceName").unwrap_or("")) }
                                td { (state_badge(t.state)) }
                                td { (format::time(t.request_time)) }
                                td.num { (t.execution_duration.map(format::duration).unwrap_or_else(|| "-".into())) }
                                td.num { (tokens(t).map(|n| n.to_string()).unwrap_or_else(|| "-".into())) }
                                td.preview { (cut(t.request_preview.as_deref().unwrap_or(""), 80)) }
                                td.preview { (cut(t.response_preview.as_deref().unwrap_or(""), 80)) }
                            }
                        }
                    }
                }
                @if let Some(next) = page.next_offset {
                    p.pager {
                        a href=(format!("{base}?{}", format::query(&[("filter", &filter), ("page_token", &cairn_core::search::page_token(next))]))) { "Next page" }
                    }
                }
            }
        }
    };
    let crumbs = vec![
        ("Experiments".to_string(), "/experiments".to_string()),
        (experiment.name.clone(), format!("/experiments/{id}")),
    ];
    let html = document(&title, &crumbs, body).into_string();
    Ok((status, Html(html)).into_response())
}

/// A span's payload, read once for the page.
struct SpanView {
    span: Span,
    depth: usize,
    content: Value,
}

/// An attribute of a stored span (protobuf JSON) as plain JSON.
fn attribute(content: &Value, key: &str) -> Option<Value> {
    content["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| any_value(&a["value"]))
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// Spans in tree order (each parent before its children, siblings by start time), with
/// depth; a span whose parent never arrived is shown as a root.
fn tree(spans: Vec<Span>) -> Vec<SpanView> {
    use std::collections::HashMap;
    let index: HashMap<&str, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id.as_str(), i))
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    let mut roots = Vec::new();
    for (i, s) in spans.iter().enumerate() {
        match s.parent_span_id.as_deref().and_then(|p| index.get(p)) {
            Some(&parent) if parent != i => children[parent].push(i),
            _ => roots.push(i),
        }
    }
    for list in &mut children {
        list.sort_by_key(|&j| spans[j].start_time_ns);
    }
    roots.sort_by_key(|&j| spans[j].start_time_ns);
    let mut order = Vec::with_capacity(spans.len());
    let mut placed = vec![false; spans.len()];
    let mut todo: Vec<(usize, usize)> = roots.into_iter().rev().map(|i| (i, 0)).collect();
    while let Some((i, depth)) = todo.pop() {
        if std::mem::replace(&mut placed[i], true) {
            continue;
        }
        order.push((i, depth));
        todo.extend(children[i].iter().rev().map(|&j| (j, depth + 1)));
    }
    let mut taken: Vec<Option<Span>> = spans.into_iter().map(Some).collect();
    order
        .into_iter()
        .filter_map(|(i, depth)| {
            let span = taken[i].take()?;
            let content = serde_json::from_str(&span.content).unwrap_or(Value::Null);
            Some(SpanView {
                span,
                depth,
                content,
            })
        })
        .collect()
}

/// `GET /experiments/{id}/traces/{trace_id}`.
pub async fn page(
    State(ui): State<Shared>,
    Path((id, trace_id)): Path<(String, String)>,
) -> Result<Response, PageError> {
    check_experiment_id(&id)?;
    let (experiment, info, spans) = {
        let (ui, id, trace_id) = (ui.clone(), id.clone(), trace_id.clone());
        blocking(move || {
            let experiment = ui.state.tracking.get_experiment(&id)?;
            let (info, spans) = ui.state.traces.get_trace(&trace_id)?;
            Ok((experiment, info, spans))
        })
        .await?
    };
    // A reader of this experiment reaches only its traces.
    if info.experiment_id != id {
        return Err(PageError::not_found(format!(
            "No trace '{trace_id}' in experiment {id}."
        )));
    }
    let views = tree(spans);
    let start = views
        .iter()
        .map(|v| v.span.start_time_ns)
        .min()
        .unwrap_or(0);
    let end = views
        .iter()
        .map(|v| v.span.end_time_ns.unwrap_or(v.span.start_time_ns))
        .max()
        .unwrap_or(start);
    let total = (end - start).max(1) as f64;
    let title = meta(&info, "mlflow.traceName")
        .map(|n| format!("Trace {n}"))
        .unwrap_or_else(|| format!("Trace {}", format::short(&info.trace_id)));
    let tags: Vec<(String, String)> = info
        .tags
        .iter()
        .map(|t| (t.key.clone(), t.value.clone()))
        .collect();
    let metadata: Vec<(String, String)> = info
        .metadata
        .iter()
        .map(|t| (t.key.clone(), t.value.clone()))
        .collect();
    let body = html! {
        h1 { (title) " " (state_badge(info.state)) }
        p.meta {
            code { (info.trace_id) } " · started " (format::time(info.request_time))
            " · latency " (info.execution_duration.map(format::duration).unwrap_or_else(|| "-".into()))
            " · " (views.len()) " spans"
            @if let Some(n) = tokens(&info) { " · " (n) " tokens" }
        }
        h2 { "Spans" }
        @if views.is_empty() {
            p.muted { "No spans have arrived for this trace." }
        } @else {
            table #spans {
                thead { tr { th { "Span" } th { "Type" } th { "Status" } th.num { "Start" } th.num { "Duration" } th.timeline { "Timeline" } } }
                tbody {
                    @for v in &views {
                        @let s = &v.span;
                        @let offset = (s.start_time_ns - start) as f64;
                        @let length = (s.end_time_ns.unwrap_or(s.start_time_ns) - s.start_time_ns).max(0) as f64;
                        tr.span data-depth=(v.depth) {
                            td style=(format!("padding-left: {}px", 8 + v.depth * 18)) {
                                details.span-detail {
                                    summary { (s.name) }
                                    @if let Some(i) = attribute(&v.content, "mlflow.spanInputs") { h4 { "Inputs" } (pre(&pretty(&i))) }
                                    @if let Some(o) = attribute(&v.content, "mlflow.spanOutputs") { h4 { "Outputs" } (pre(&pretty(&o))) }
                                    @if let Some(events) = v.content["events"].as_array() {
                                        h4 { "Events" }
                                        @for e in events {
                                            p { b { (e["name"].as_str().unwrap_or("")) } }
                                            @if let Some(attrs) = e["attributes"].as_array() {
                                                @for a in attrs {
                                                    p.muted { (a["key"].as_str().unwrap_or("")) }
                                                    (pre(&any_value(&a["value"]).as_str().map(str::to_string).unwrap_or_else(|| pretty(&any_value(&a["value"])))))
                                                }
                                            }
                                        }
                                    }
                                    @let others: Vec<(String, String)> = v.content["attributes"].as_array().map(|attrs| attrs.iter()
                                        .filter_map(|a| {
                                            let key = a["key"].as_str()?;
                                            (!matches!(key, "mlflow.spanInputs" | "mlflow.spanOutputs" | "mlflow.traceRequestId")).then(|| {
                                                let value = any_value(&a["value"]);
                                                (key.to_string(), value.as_str().map(str::to_string).unwrap_or_else(|| value.to_string()))
                                            })
                                        }).collect()).unwrap_or_default();
                                    h4 { "Attributes" }
                                    (kv_table(&others, "No other attributes."))
                                }
                            }
                            td { (s.span_type.as_deref().unwrap_or("")) }
                            td { span class=(format!("status {}", match s.status.as_str() { "ERROR" => "failed", "OK" => "finished", _ => "" })) { (s.status) } }
                            td.num { (format::duration(((s.start_time_ns - start) / 1_000_000).max(0))) }
                            td.num { (s.end_time_ns.map(|e| format::duration(((e - s.start_time_ns) / 1_000_000).max(0))).unwrap_or_else(|| "open".into())) }
                            td.timeline {
                                div.track {
                                    div class=(if s.status == "ERROR" { "bar error" } else { "bar" })
                                        style=(format!("left: {:.2}%; width: {:.2}%", offset / total * 100.0, (length / total * 100.0).max(0.5))) {}
                                }
                            }
                        }
                    }
                }
            }
        }
        @if !info.assessments.is_empty() {
            h2 { "Assessments" }
            table.grid #assessments {
                thead { tr { th { "Name" } th { "Kind" } th { "Value" } th { "Source" } th { "Rationale" } th { "Valid" } } }
                tbody {
                    @for a in &info.assessments {
                        @let payload: Value = serde_json::from_str(&a.payload).unwrap_or(Value::Null);
                        tr {
                            td { (a.name) }
                            td { (a.kind.as_str()) }
                            td { code { (payload.get("value").map(|v| v.to_string()).unwrap_or_default()) } }
                            td { (a.source_type) " " span.muted { (a.source_id) } }
                            td { (a.rationale.as_deref().unwrap_or("")) }
                            td { (if a.valid { "yes" } else { "overridden" }) }
                        }
                    }
                }
            }
        }
        section.columns2 {
            div { h2 { "Tags" } (kv_table(&tags, "No tags.")) }
            div { h2 { "Metadata" } (kv_table(&metadata, "No metadata.")) }
        }
        @if let Some(r) = &info.request_preview { h2 { "Request" } (pre(r)) }
        @if let Some(r) = &info.response_preview { h2 { "Response" } (pre(r)) }
    };
    let crumbs = vec![
        ("Experiments".to_string(), "/experiments".to_string()),
        (experiment.name.clone(), format!("/experiments/{id}")),
        ("Traces".to_string(), format!("/experiments/{id}/traces")),
    ];
    Ok(Html(document(&title, &crumbs, body).into_string()).into_response())
}
