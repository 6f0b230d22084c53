//! Self-contained HTML and JSON reports (no scripts, no external files: one file to attach to
//! a CI run or a ticket), and the JSON shape of drift results.
use crate::drift::{ColumnDrift, DriftReport};
use crate::validate::{Outcome, ValidationResult};
use serde_json::{json, Value};
use std::fmt::Write as _;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:.4em .6em;\
text-align:left;vertical-align:top}th{background:#f4f4f4}.ok{color:#137333}.bad{color:#b3261e}\
code{font-size:.9em}.muted{color:#666}svg{display:block}";

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{t}</title><style>{STYLE}</style></head><body><h1>{t}</h1>{body}</body></html>\n",
        t = escape(title)
    )
}

/// A JSON number, or null when not finite (JSON has no NaN).
pub fn number(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        Value::Null
    }
}

/// The validation report as HTML.
pub fn validation_html(result: &ValidationResult, data: &str) -> String {
    let stats = result.statistics();
    let mut body = format!(
        "<p>Data <code>{}</code>, {} rows, suite <code>{}</code>: <b class=\"{}\">{}</b> — {} of {} expectations met.</p>",
        escape(data),
        result.rows,
        escape(&result.suite),
        if result.success { "ok" } else { "bad" },
        if result.success { "passed" } else { "failed" },
        stats["successful_expectations"],
        stats["evaluated_expectations"],
    );
    body.push_str(
        "<table><tr><th></th><th>Expectation</th><th>Arguments</th><th>Observed</th></tr>",
    );
    for r in &result.results {
        let observed = match r.outcome() {
            Outcome::Error(e) => format!("<span class=\"bad\">error: {}</span>", escape(e)),
            Outcome::Observed(v) => escape(&v.to_string()),
            Outcome::Unexpected {
                count,
                percent,
                examples,
            } => format!(
                "{}{}",
                Outcome::unexpected_summary(count, percent),
                examples
                    .map(|v| format!(
                        "<br><span class=\"muted\">e.g. {}</span>",
                        escape(&v.to_string())
                    ))
                    .unwrap_or_default()
            ),
            Outcome::Nothing => String::new(),
        };
        let _ = write!(
            body,
            "<tr><td class=\"{}\">{}</td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td></tr>",
            if r.success { "ok" } else { "bad" },
            if r.success { "✓" } else { "✗" },
            escape(&r.type_name),
            escape(&Value::Object(r.kwargs.clone()).to_string()),
            observed
        );
    }
    body.push_str("</table>");
    page(&format!("Validation: {}", result.suite), &body)
}

/// The drift report as JSON: a `columns` array and the dataset verdict.
pub fn drift_json(report: &DriftReport) -> Value {
    json!({
        "columns": report.columns.iter().map(|c| json!({
            "column": c.column,
            "kind": c.kind.name(),
            "method": c.method.map(|m| m.name()),
            "score": number(c.score),
            "threshold": number(c.threshold),
            "drifted": c.drifted,
            "reference_count": c.reference_count,
            "current_count": c.current_count,
        })).collect::<Vec<_>>(),
        "compared_columns": report.compared_columns,
        "drifted_columns": report.drifted_columns,
        "drift_share": report.share,
        "drift_share_threshold": report.share_threshold,
        "dataset_drift": report.dataset_drift,
        "reference_rows": report.reference_rows,
        "current_rows": report.current_rows,
    })
}

/// Reference and current shares as paired bars.
fn bars(c: &ColumnDrift) -> String {
    let d = &c.distribution;
    let n = d.reference.len();
    if n == 0 {
        return String::new();
    }
    let (w, h) = (360.0, 90.0);
    let max = d
        .reference
        .iter()
        .chain(&d.current)
        .copied()
        .fold(0.0f64, f64::max)
        .max(1e-12);
    let slot = w / n as f64;
    let mut svg = format!("<svg width=\"{w}\" height=\"{}\" role=\"img\">", h + 14.0);
    for i in 0..n {
        for (k, (share, colour)) in [(d.reference[i], "#9aa0a6"), (d.current[i], "#1a73e8")]
            .into_iter()
            .enumerate()
        {
            let bh = share / max * h;
            let _ = write!(
                svg,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\"><title>{}: {:.4}</title></rect>",
                i as f64 * slot + k as f64 * slot / 2.0,
                h - bh,
                (slot / 2.0 - 0.5).max(0.5),
                bh,
                if k == 0 { "reference" } else { "current" },
                share
            );
        }
    }
    let label = |s: String| escape(&s);
    let (left, right) = if !d.edges.is_empty() {
        (
            format!("{:.4}", d.edges[0]),
            format!("{:.4}", d.edges[d.edges.len() - 1]),
        )
    } else {
        (
            d.labels.first().cloned().unwrap_or_default(),
            d.labels.last().cloned().unwrap_or_default(),
        )
    };
    let _ = write!(
        svg,
        "<text x=\"0\" y=\"{}\" font-size=\"10\">{}</text><text x=\"{w}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{}</text></svg>",
        h + 12.0,
        label(left),
        h + 12.0,
        label(right)
    );
    svg
}

/// The drift report as HTML, each column's distributions drawn as SVG.
pub fn drift_html(report: &DriftReport, reference: &str, current: &str) -> String {
    let mut body = format!(
        "<p>Reference <code>{}</code> ({} rows) against current <code>{}</code> ({} rows).</p>\
         <p><b class=\"{}\">{}</b>: {} of {} columns drifted (share {:.3}, threshold {}). \
         <span class=\"muted\">Bars: grey reference, blue current.</span></p>",
        escape(reference),
        report.reference_rows,
        escape(current),
        report.current_rows,
        if report.dataset_drift { "bad" } else { "ok" },
        if report.dataset_drift {
            "Dataset drift detected"
        } else {
            "No dataset drift"
        },
        report.drifted_columns,
        report.compared_columns,
        report.share,
        report.share_threshold
    );
    body.push_str("<table><tr><th>Column</th><th>Type</th><th>Method</th><th>Score</th><th>Threshold</th><th>Drift</th><th>Distribution</th></tr>");
    for c in &report.columns {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
            escape(&c.column),
            c.kind.name(),
            c.method.map(|m| m.name()).unwrap_or("not compared"),
            if c.score.is_finite() { format!("{:.6}", c.score) } else { "—".into() },
            if c.threshold.is_finite() { c.threshold.to_string() } else { "—".into() },
            if c.drifted { "bad" } else { "ok" },
            if c.drifted { "drifted" } else { "no" },
            bars(c)
        );
    }
    body.push_str("</table>");
    page("Data drift", &body)
}
