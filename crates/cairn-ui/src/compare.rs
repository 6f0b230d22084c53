//! Comparing runs: a diff table of params (rows that differ marked), their latest metrics,
//! parallel coordinates of params and metrics, and a scatter of any param or metric against
//! another, all drawn by the server.
use crate::charts::{self, MAX_RUNS};
use crate::experiments::Column;
use crate::format;
use crate::layout::{self, document};
use crate::params::Params;
use crate::{blocking, PageError, Shared};
use axum::extract::{RawQuery, State};
use axum::response::{Html, IntoResponse, Response};
use cairn_core::model::Run;
use maud::html;
use std::collections::BTreeSet;
use std::fmt::Write;

/// Rows of a comparison table at once (runs may hold thousands of keys).
const TABLE_ROWS: usize = 200;
/// Params and metrics the scatter's axis choosers list.
const AXIS_CHOICES: usize = 500;

/// Values of one axis: numbers when every present value parses, categories otherwise.
enum Axis {
    Numeric(f64, f64),
    Categories(Vec<String>),
}

fn axis_of(values: &[Option<String>]) -> Axis {
    let present: Vec<&String> = values.iter().flatten().collect();
    let numbers: Vec<f64> = present
        .iter()
        .filter_map(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite())
        .collect();
    if !present.is_empty() && numbers.len() == present.len() {
        let lo = numbers.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = numbers.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Axis::Numeric(lo, hi)
    } else {
        let set: BTreeSet<String> = present.into_iter().cloned().collect();
        Axis::Categories(set.into_iter().collect())
    }
}

/// Where a value sits on its axis, 0 (bottom) to 1 (top).
fn position(axis: &Axis, value: &str) -> Option<f64> {
    match axis {
        Axis::Numeric(lo, hi) => {
            let v: f64 = value.parse().ok()?;
            Some(if hi > lo { (v - lo) / (hi - lo) } else { 0.5 })
        }
        Axis::Categories(c) => {
            let i = c.iter().position(|x| x == value)?;
            Some(if c.len() > 1 {
                i as f64 / (c.len() - 1) as f64
            } else {
                0.5
            })
        }
    }
}

fn raw_value(column: &Column, run: &Run) -> Option<String> {
    match column.entity {
        "metrics" => run
            .metrics
            .iter()
            .find(|m| m.key == column.key)
            .filter(|m| m.value.is_finite())
            .map(|m| m.value.to_string()),
        _ => column.value(run),
    }
}

fn axis_label(axis: &Axis, at: f64) -> String {
    match axis {
        Axis::Numeric(lo, hi) => format::number(lo + (hi - lo) * at),
        Axis::Categories(c) => {
            if c.is_empty() {
                String::new()
            } else {
                c[((c.len() - 1) as f64 * at).round() as usize].clone()
            }
        }
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Parallel coordinates: one vertical axis per column, one line per run.
fn parallel(runs: &[Run], columns: &[Column]) -> String {
    let (w, h, top, bottom) = (960.0, 360.0, 30.0, 30.0);
    if columns.len() < 2 {
        return String::new();
    }
    let gap = (w - 120.0) / (columns.len() - 1) as f64;
    let axes: Vec<Axis> = columns
        .iter()
        .map(|c| axis_of(&runs.iter().map(|r| raw_value(c, r)).collect::<Vec<_>>()))
        .collect();
    let mut svg = format!(
        "<svg class=\"chart\" id=\"parallel\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"parallel coordinates\">"
    );
    for (ri, run) in runs.iter().enumerate() {
        let mut pts = String::new();
        for (ci, (c, axis)) in columns.iter().zip(&axes).enumerate() {
            if let Some(at) = raw_value(c, run).and_then(|v| position(axis, &v)) {
                let _ = write!(
                    pts,
                    "{:.1},{:.1} ",
                    60.0 + ci as f64 * gap,
                    top + (1.0 - at) * (h - top - bottom)
                );
            }
        }
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" opacity=\"0.8\" points=\"{}\"><title>{}</title></polyline>",
            charts::color(ri),
            pts.trim_end(),
            esc(&run.info.run_name)
        );
    }
    for (ci, (c, axis)) in columns.iter().zip(&axes).enumerate() {
        let x = 60.0 + ci as f64 * gap;
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{top}\" y2=\"{}\" stroke=\"#333\"/>\
             <text x=\"{x:.1}\" y=\"16\" text-anchor=\"middle\" class=\"axis\">{}</text>\
             <text x=\"{:.1}\" y=\"{}\" class=\"tick\">{}</text><text x=\"{:.1}\" y=\"{}\" class=\"tick\">{}</text>",
            h - bottom,
            esc(&c.spec()),
            x + 4.0,
            top + 4.0,
            esc(&axis_label(axis, 1.0)),
            x + 4.0,
            h - bottom,
            esc(&axis_label(axis, 0.0)),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A scatter of `x` against `y`, one dot per run.
fn scatter(runs: &[Run], x: &Column, y: &Column) -> String {
    let (w, h, left, bottom) = (560.0, 400.0, 70.0, 40.0);
    let xs: Vec<Option<String>> = runs.iter().map(|r| raw_value(x, r)).collect();
    let ys: Vec<Option<String>> = runs.iter().map(|r| raw_value(y, r)).collect();
    let (ax, ay) = (axis_of(&xs), axis_of(&ys));
    let mut svg = format!(
        "<svg class=\"chart\" id=\"scatter\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"scatter\">\
         <rect x=\"{left}\" y=\"10\" width=\"{}\" height=\"{}\" fill=\"#fff\" stroke=\"#ccc\"/>",
        w - left - 10.0,
        h - bottom - 10.0
    );
    for (i, run) in runs.iter().enumerate() {
        let (Some(vx), Some(vy)) = (&xs[i], &ys[i]) else {
            continue;
        };
        let (Some(px), Some(py)) = (position(&ax, vx), position(&ay, vy)) else {
            continue;
        };
        let _ = write!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"5\" fill=\"{}\"><title>{}: {}, {}</title></circle>",
            left + 10.0 + px * (w - left - 30.0),
            h - bottom - 10.0 - py * (h - bottom - 30.0),
            charts::color(i),
            esc(&run.info.run_name),
            esc(vx),
            esc(vy)
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" class=\"axis\">{}</text>\
         <text x=\"14\" y=\"{}\" class=\"axis\" transform=\"rotate(-90 14 {})\" text-anchor=\"middle\">{}</text>\
         <text x=\"{left}\" y=\"{}\" class=\"tick\">{}</text><text x=\"{}\" y=\"{}\" class=\"tick\" text-anchor=\"end\">{}</text>\
         <text x=\"{}\" y=\"{}\" class=\"tick\" text-anchor=\"end\">{}</text><text x=\"{}\" y=\"20\" class=\"tick\" text-anchor=\"end\">{}</text></svg>",
        left + (w - left) / 2.0,
        h - 4.0,
        esc(&x.spec()),
        h / 2.0,
        h / 2.0,
        esc(&y.spec()),
        h - bottom + 14.0,
        esc(&axis_label(&ax, 0.0)),
        w - 10.0,
        h - bottom + 14.0,
        esc(&axis_label(&ax, 1.0)),
        left - 4.0,
        h - bottom - 10.0,
        esc(&axis_label(&ay, 0.0)),
        left - 4.0,
        esc(&axis_label(&ay, 1.0)),
    );
    svg
}

/// `GET /compare?run=..&run=..&x=params.KEY&y=metrics.KEY&diff=1`.
pub async fn page(
    State(ui): State<Shared>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let p = Params::parse(raw.as_deref())?;
    let ids = p.all("run");
    if ids.is_empty() {
        return Err(PageError::bad_request(
            "Choose runs to compare: select them in a runs table, or /compare?run=ID&run=ID",
        ));
    }
    if ids.len() > MAX_RUNS {
        return Err(PageError::bad_request(format!(
            "At most {MAX_RUNS} runs can be compared at once; {} were chosen.",
            ids.len()
        )));
    }
    let only_diff = p.get("diff").is_some();
    let x = p.get("x").map(Column::parse).transpose()?;
    let y = p.get("y").map(Column::parse).transpose()?;
    let tracking = ui.state.tracking.clone();
    let runs = blocking(move || {
        ids.iter()
            .map(|id| tracking.get_run(id).map_err(PageError::from))
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    let param_keys: BTreeSet<&str> = runs
        .iter()
        .flat_map(|r| r.params.iter().map(|p| p.key.as_str()))
        .collect();
    let metric_keys: BTreeSet<&str> = runs
        .iter()
        .flat_map(|r| r.metrics.iter().map(|m| m.key.as_str()))
        .collect();
    let param_rows: Vec<(&str, Vec<Option<String>>, bool)> = param_keys
        .iter()
        .map(|k| {
            let c = Column {
                entity: "params",
                key: k.to_string(),
            };
            let values: Vec<Option<String>> = runs.iter().map(|r| c.value(r)).collect();
            let differs = values.windows(2).any(|w| w[0] != w[1]);
            (*k, values, differs)
        })
        .filter(|(_, _, differs)| !only_diff || *differs)
        .collect();
    let columns: Vec<Column> = param_keys
        .iter()
        .map(|k| Column {
            entity: "params",
            key: k.to_string(),
        })
        .chain(metric_keys.iter().map(|k| Column {
            entity: "metrics",
            key: k.to_string(),
        }))
        .take(16)
        .collect();
    let all_columns: Vec<String> = param_keys
        .iter()
        .map(|k| format!("params.{k}"))
        .chain(metric_keys.iter().map(|k| format!("metrics.{k}")))
        .take(AXIS_CHOICES)
        .collect();
    let x = x.or_else(|| {
        param_keys.iter().next().map(|k| Column {
            entity: "params",
            key: k.to_string(),
        })
    });
    let y = y.or_else(|| {
        metric_keys.iter().next().map(|k| Column {
            entity: "metrics",
            key: k.to_string(),
        })
    });
    let run_query: String = runs
        .iter()
        .map(|r| format!("run={}", r.info.run_id))
        .collect::<Vec<_>>()
        .join("&");
    let body = html! {
        h1 { "Comparing " (runs.len()) " runs" }
        p {
            @if let Some(m) = metric_keys.iter().next() {
                a href={ "/chart?" (run_query) "&metric=" (format::enc(m)) } { "Chart their metrics" }
            }
        }
        h2 { "Parameters" }
        p { @if only_diff { a href={ "/compare?" (run_query) } { "Show all" } } @else { a href={ "/compare?" (run_query) "&diff=1" } { "Show only differences" } } }
        table.grid #param-diff {
            thead { tr { th { "Param" } @for r in &runs { th { a href={ "/runs/" (r.info.run_id) } { (r.info.run_name) } } } } }
            tbody { @for (k, values, differs) in param_rows.iter().take(TABLE_ROWS) {
                tr.differs[*differs] { th { (k) } @for v in values { td { (v.clone().unwrap_or_default()) } } }
            } }
        }
        h2 { "Metrics" }
        table.grid #metric-diff {
            thead { tr { th { "Metric" } @for r in &runs { th { (r.info.run_name) } } } }
            tbody { @for k in metric_keys.iter().take(TABLE_ROWS) {
                tr { th { (k) } @for r in &runs { td.num { (r.metrics.iter().find(|m| m.key == *k).map(|m| format::number(m.value)).unwrap_or_default()) } } }
            } }
        }
        @if metric_keys.len() > TABLE_ROWS { p.muted { "The first " (TABLE_ROWS) " of " (metric_keys.len()) " metrics are listed." } }
        h2 { "Parallel coordinates" }
        (layout::raw(parallel(&runs, &columns)))
        h2 { "Scatter" }
        form.search method="get" action="/compare" {
            @for r in &runs { input type="hidden" name="run" value=(r.info.run_id); }
            label { "x " select name="x" { @for c in &all_columns { option value=(c) selected[x.as_ref().is_some_and(|x| x.spec() == *c)] { (c) } } } }
            label { " y " select name="y" { @for c in &all_columns { option value=(c) selected[y.as_ref().is_some_and(|y| y.spec() == *c)] { (c) } } } }
            button { "Plot" }
        }
        @if let (Some(x), Some(y)) = (&x, &y) { (layout::raw(scatter(&runs, x, y))) }
    };
    Ok(Html(
        document(
            "Compare runs",
            &[("Experiments".into(), "/experiments".into())],
            body,
        )
        .into_string(),
    )
    .into_response())
}
