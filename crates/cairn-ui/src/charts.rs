//! Metric charts drawn by the server as SVG. Histories are downsampled into buckets along x
//! that keep each bucket's first, lowest, highest and last point, so no spike is lost however
//! long the history; the browser receives only those points (hover values come from the same
//! points), never the full history. Zoom narrows the range and asks the server again.
use crate::format::{self, enc};
use crate::layout::{self, document};
use crate::params::Params;
use crate::{blocking, PageError, Shared};
use axum::extract::{RawQuery, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{Html, IntoResponse, Response};
use cairn_core::model::Run;
use maud::html;
use serde_json::json;
use std::fmt::Write;

/// Runs one chart draws at most.
pub const MAX_RUNS: usize = 100;
/// Metric names the chart's chooser lists at once.
const METRIC_CHOICES: usize = 500;
/// Points sent for one chart, over all its series (keeps the page small).
const POINT_BUDGET: usize = 12_000;
const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 40.0;
const PALETTE: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// Reduces points sorted by x to at most `buckets` equal-width x buckets, each kept as its
/// first, lowest, highest and last point (in x order, without repeats). A spike survives.
pub fn downsample(points: &[(f64, f64)], buckets: usize) -> Vec<(f64, f64)> {
    if points.len() <= buckets.saturating_mul(4) || buckets == 0 {
        return points.to_vec();
    }
    let (x0, x1) = (points[0].0, points[points.len() - 1].0);
    let width = (x1 - x0) / buckets as f64;
    let mut out = Vec::with_capacity(buckets * 4);
    let mut start = 0;
    while start < points.len() {
        let bucket = if width > 0.0 {
            (((points[start].0 - x0) / width) as usize).min(buckets - 1)
        } else {
            0
        };
        let mut end = start + 1;
        while end < points.len() {
            let b = if width > 0.0 {
                (((points[end].0 - x0) / width) as usize).min(buckets - 1)
            } else {
                0
            };
            if b != bucket {
                break;
            }
            end += 1;
        }
        let slice = &points[start..end];
        let finite = |p: &&(f64, f64)| p.1.is_finite();
        let lo = slice
            .iter()
            .enumerate()
            .filter(|(_, p)| finite(p))
            .min_by(|a, b| a.1 .1.total_cmp(&b.1 .1))
            .map(|(i, _)| i);
        let hi = slice
            .iter()
            .enumerate()
            .filter(|(_, p)| finite(p))
            .max_by(|a, b| a.1 .1.total_cmp(&b.1 .1))
            .map(|(i, _)| i);
        let mut keep: Vec<usize> = vec![0, slice.len() - 1];
        keep.extend(lo);
        keep.extend(hi);
        keep.sort_unstable();
        keep.dedup();
        out.extend(keep.into_iter().map(|i| slice[i]));
        start = end;
    }
    out
}

/// TensorBoard's debiased exponential moving average; `weight` in [0, 1).
pub fn smooth(points: &[(f64, f64)], weight: f64) -> Vec<(f64, f64)> {
    if weight <= 0.0 {
        return points.to_vec();
    }
    let mut last = 0.0;
    let mut debias = 1.0;
    points
        .iter()
        .map(|&(x, y)| {
            if !y.is_finite() {
                return (x, y);
            }
            last = last * weight + (1.0 - weight) * y;
            debias *= weight;
            (x, last / (1.0 - debias))
        })
        .collect()
}

/// A small inline SVG of a history (no axes).
pub fn sparkline(points: &[(f64, f64)]) -> String {
    let (w, h) = (120.0, 24.0);
    let finite: Vec<&(f64, f64)> = points.iter().filter(|p| p.1.is_finite()).collect();
    if finite.len() < 2 {
        return String::new();
    }
    let (x0, x1) = (finite[0].0, finite[finite.len() - 1].0);
    let (y0, y1) = finite
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.1), b.max(p.1))
        });
    let sx = |x: f64| {
        if x1 > x0 {
            (x - x0) / (x1 - x0) * w
        } else {
            w / 2.0
        }
    };
    let sy = |y: f64| {
        if y1 > y0 {
            h - 2.0 - (y - y0) / (y1 - y0) * (h - 4.0)
        } else {
            h / 2.0
        }
    };
    let mut pts = String::new();
    for p in finite {
        let _ = write!(pts, "{:.1},{:.1} ", sx(p.0), sy(p.1));
    }
    format!(
        "<svg class=\"spark\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" \
         aria-label=\"history\"><polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.2\" \
         points=\"{}\"/></svg>",
        pts.trim_end()
    )
}

/// The x-axis of a chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XAxis {
    /// Training step.
    Step,
    /// Wall-clock time of each value.
    Time,
    /// Seconds since the run's first value.
    Relative,
}

/// A chart request read from the URL.
pub struct ChartSpec {
    runs: Vec<String>,
    metric: String,
    x: XAxis,
    log: bool,
    smoothing: f64,
    from: Option<f64>,
    to: Option<f64>,
}

impl ChartSpec {
    fn parse(p: &Params) -> Result<ChartSpec, PageError> {
        let runs = p.all("run");
        if runs.is_empty() {
            return Err(PageError::bad_request(
                "Choose runs to chart: /chart?run=RUN_ID&run=...&metric=KEY",
            ));
        }
        if runs.len() > MAX_RUNS {
            return Err(PageError::bad_request(format!(
                "A chart draws at most {MAX_RUNS} runs; {} were chosen.",
                runs.len()
            )));
        }
        let x = match p.choice("x", &["step", "time", "relative"])? {
            "time" => XAxis::Time,
            "relative" => XAxis::Relative,
            _ => XAxis::Step,
        };
        let smoothing = p.float("smooth")?.unwrap_or(0.0);
        if !(0.0..1.0).contains(&smoothing) {
            return Err(PageError::bad_request(
                "The parameter 'smooth' must be at least 0 and below 1.",
            ));
        }
        let (from, to) = (p.float("from")?, p.float("to")?);
        if let (Some(a), Some(b)) = (from, to) {
            if a >= b {
                return Err(PageError::bad_request("'from' must be below 'to'."));
            }
        }
        Ok(ChartSpec {
            runs,
            metric: p.str("metric").to_string(),
            x,
            log: p
                .get("log")
                .is_some_and(|v| v == "1" || v == "on" || v == "true"),
            smoothing,
            from,
            to,
        })
    }

    fn url(&self, base: &str, from: Option<f64>, to: Option<f64>) -> String {
        let mut q: Vec<String> = self
            .runs
            .iter()
            .map(|r| format!("run={}", enc(r)))
            .collect();
        q.push(format!("metric={}", enc(&self.metric)));
        match self.x {
            XAxis::Step => {}
            XAxis::Time => q.push("x=time".into()),
            XAxis::Relative => q.push("x=relative".into()),
        }
        if self.log {
            q.push("log=1".into());
        }
        if self.smoothing > 0.0 {
            q.push(format!("smooth={}", self.smoothing));
        }
        if let Some(f) = from {
            q.push(format!("from={f}"));
        }
        if let Some(t) = to {
            q.push(format!("to={t}"));
        }
        format!("{base}?{}", q.join("&"))
    }
}

/// One run's downsampled series.
pub struct Series {
    run_id: String,
    name: String,
    points: Vec<(f64, f64)>,
    /// Points in range before downsampling.
    total: usize,
}

struct Chart {
    runs: Vec<Run>,
    metrics: Vec<String>,
    series: Vec<Series>,
}

fn load(ui: &Shared, spec: &ChartSpec) -> Result<Chart, PageError> {
    let tracking = &ui.state.tracking;
    let mut runs = Vec::new();
    for id in &spec.runs {
        runs.push(tracking.get_run(id)?);
    }
    let mut metrics: Vec<String> = runs
        .iter()
        .flat_map(|r| r.metrics.iter().map(|m| m.key.clone()))
        .collect();
    metrics.sort();
    metrics.dedup();
    // Runs may log thousands of keys: the chooser lists the first ones and the current one.
    metrics.truncate(METRIC_CHOICES);
    if !spec.metric.is_empty() && !metrics.contains(&spec.metric) {
        metrics.push(spec.metric.clone());
    }
    if spec.metric.is_empty() {
        return Ok(Chart {
            runs,
            metrics,
            series: vec![],
        });
    }
    let per_run = (POINT_BUDGET / runs.len().max(1)).clamp(40, 2000);
    let buckets = per_run / 4;
    // Histories are read and reduced on every core: a chart may cover millions of values.
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, runs.len().max(1));
    let chunk = runs.len().div_ceil(threads).max(1);
    let read: Vec<Result<Series, PageError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = runs
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|run| series_of(ui, spec, run, buckets))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|_| vec![Err(PageError::internal("a chart reader panicked"))])
            })
            .collect()
    });
    let series = read.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok(Chart {
        runs,
        metrics,
        series,
    })
}

/// One run's history of the chart's metric on the chart's x-axis, smoothed and downsampled.
fn series_of(
    ui: &Shared,
    spec: &ChartSpec,
    run: &Run,
    buckets: usize,
) -> Result<Series, PageError> {
    let (start, end) = match spec.x {
        XAxis::Step => (
            spec.from.map(|f| f.ceil() as i64).unwrap_or(i64::MIN),
            spec.to.map(|t| t.floor() as i64).unwrap_or(i64::MAX),
        ),
        _ => (i64::MIN, i64::MAX),
    };
    let history =
        ui.state
            .tracking
            .store()
            .metric_points(&run.info.run_id, &spec.metric, start, end)?;
    let first_time = history.iter().map(|m| m.timestamp).min().unwrap_or(0);
    let mut points: Vec<(f64, f64)> = history
        .iter()
        .map(|m| {
            let x = match spec.x {
                XAxis::Step => m.step as f64,
                XAxis::Time => m.timestamp as f64,
                XAxis::Relative => (m.timestamp - first_time) as f64 / 1000.0,
            };
            (x, m.value)
        })
        .collect();
    if spec.x != XAxis::Step {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        points.retain(|p| spec.from.is_none_or(|f| p.0 >= f) && spec.to.is_none_or(|t| p.0 <= t));
    }
    if spec.log {
        points.retain(|p| p.1 > 0.0);
    }
    let smoothed = smooth(&points, spec.smoothing);
    Ok(Series {
        run_id: run.info.run_id.clone(),
        name: run.info.run_name.clone(),
        total: smoothed.len(),
        points: downsample(&smoothed, buckets),
    })
}

fn nice_ticks(lo: f64, hi: f64, count: usize) -> Vec<f64> {
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return vec![lo];
    }
    let raw = (hi - lo) / count as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 && out.len() < 50 {
        out.push(t);
        t += step;
    }
    out
}

/// Text safe inside an XML attribute or element.
fn escape_attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Color of the i-th series.
pub fn color(i: usize) -> String {
    if i < PALETTE.len() {
        PALETTE[i].to_string()
    } else {
        format!("hsl({}, 65%, 45%)", (i * 137) % 360)
    }
}

/// Draws the series as an SVG chart with axes; the scale goes in data attributes so the
/// page's script can map the pointer back to data.
fn draw(series: &[Series], spec: &ChartSpec) -> String {
    let all = series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|p| p.1.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for p in all {
        x0 = x0.min(p.0);
        x1 = x1.max(p.0);
        y0 = y0.min(p.1);
        y1 = y1.max(p.1);
    }
    if !x0.is_finite() {
        return "<p class=\"muted\">No values of this metric in range.</p>".into();
    }
    if let Some(f) = spec.from {
        x0 = f;
    }
    if let Some(t) = spec.to {
        x1 = t;
    }
    let tr = |y: f64| if spec.log { y.log10() } else { y };
    let (ty0, mut ty1) = (tr(y0), tr(y1));
    if ty1 <= ty0 {
        ty1 = ty0 + 1.0;
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let (pw, ph) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let sx = |x: f64| LEFT + (x - x0) / (x1 - x0) * pw;
    let sy = |y: f64| TOP + ph - (tr(y) - ty0) / (ty1 - ty0) * ph;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg class=\"chart\" id=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         role=\"img\" aria-label=\"{}\" data-x0=\"{x0}\" data-x1=\"{x1}\" data-y0=\"{ty0}\" data-y1=\"{ty1}\" \
         data-log=\"{}\" data-left=\"{LEFT}\" data-top=\"{TOP}\" data-pw=\"{pw}\" data-ph=\"{ph}\" data-xaxis=\"{}\">",
        escape_attr(&spec.metric),
        u8::from(spec.log),
        match spec.x {
            XAxis::Step => "step",
            XAxis::Time => "time",
            XAxis::Relative => "relative",
        }
    );
    let _ = write!(svg, "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{pw}\" height=\"{ph}\" fill=\"#fff\" stroke=\"#ccc\"/>");
    for t in nice_ticks(ty0, ty1, 6) {
        let y = TOP + ph - (t - ty0) / (ty1 - ty0) * ph;
        let label = if spec.log {
            format::number(10f64.powf(t))
        } else {
            format::number(t)
        };
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" class=\"tick\">{label}</text>",
            LEFT + pw,
            LEFT - 6.0,
            y + 4.0
        );
    }
    for t in nice_ticks(x0, x1, 8) {
        let x = sx(t);
        let label = match spec.x {
            XAxis::Time => format::time(t as i64)[11..].to_string(),
            _ => format::number(t),
        };
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{}\" stroke=\"#eee\"/>\
             <text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\" class=\"tick\">{label}</text>",
            TOP + ph,
            TOP + ph + 16.0
        );
    }
    let x_label = match spec.x {
        XAxis::Step => "step",
        XAxis::Time => "wall time (UTC)",
        XAxis::Relative => "seconds since the run's first value",
    };
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" class=\"axis\">{x_label}</text>",
        LEFT + pw / 2.0,
        HEIGHT - 4.0
    );
    for (i, s) in series.iter().enumerate() {
        let mut pts = String::new();
        for p in s.points.iter().filter(|p| p.1.is_finite()) {
            let _ = write!(pts, "{:.1},{:.1} ", sx(p.0), sy(p.1));
        }
        let _ = write!(
            svg,
            "<polyline class=\"series\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>",
            color(i),
            pts.trim_end()
        );
    }
    svg.push_str("<line class=\"cursor\" x1=\"0\" x2=\"0\" y1=\"0\" y2=\"0\" stroke=\"#555\" visibility=\"hidden\"/>");
    svg.push_str("<rect class=\"zoom\" x=\"0\" y=\"0\" width=\"0\" height=\"0\" fill=\"rgba(31,119,180,0.15)\" visibility=\"hidden\"/>");
    svg.push_str("</svg>");
    svg
}

/// The points the page's script reads for hover values (the same points the SVG draws).
fn series_json(series: &[Series]) -> String {
    let v: Vec<_> = series
        .iter()
        .enumerate()
        .map(|(i, s)| {
            json!({
                "name": s.name,
                "run": s.run_id,
                "color": color(i),
                "points": s.points.iter().filter(|p| p.1.is_finite()).map(|p| [p.0, p.1]).collect::<Vec<_>>(),
            })
        })
        .collect();
    // `</` cannot close the script element it sits in.
    serde_json::to_string(&v)
        .unwrap_or_else(|_| "[]".into())
        .replace("</", "<\\/")
}

/// `GET /chart?run=..&metric=..&x=step|time|relative&log=1&smooth=0.6&from=&to=`.
pub async fn page(
    State(ui): State<Shared>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let p = Params::parse(raw.as_deref())?;
    let spec = ChartSpec::parse(&p)?;
    let (chart, spec) = {
        let ui = ui.clone();
        blocking(move || Ok((load(&ui, &spec)?, spec))).await?
    };
    let zoomed = spec.from.is_some() || spec.to.is_some();
    let body = html! {
        h1 { "Chart" @if !spec.metric.is_empty() { ": " (spec.metric) } }
        form.search #chart-form method="get" action="/chart" {
            @for r in &spec.runs { input type="hidden" name="run" value=(r); }
            label { "Metric " select name="metric" {
                @for m in &chart.metrics { option value=(m) selected[*m == spec.metric] { (m) } }
            } }
            label { " x " select name="x" {
                option value="step" selected[spec.x == XAxis::Step] { "step" }
                option value="time" selected[spec.x == XAxis::Time] { "wall time" }
                option value="relative" selected[spec.x == XAxis::Relative] { "relative time" }
            } }
            label { " " input type="checkbox" name="log" value="1" checked[spec.log]; " log scale" }
            label { " smoothing " input type="number" name="smooth" min="0" max="0.99" step="0.05" value=(spec.smoothing); }
            button { "Draw" }
            @if zoomed { " " a href=(spec.url("/chart", None, None)) { "Reset zoom" } }
        }
        @if spec.metric.is_empty() {
            p.muted { "Choose a metric." }
        } @else {
            figure.chart-box {
                (layout::raw(draw(&chart.series, &spec)))
                div.tooltip hidden {}
            }
            script type="application/json" #chart-data { (maud::PreEscaped(series_json(&chart.series))) }
            p.muted {
                "Drag across the chart to zoom. Each series keeps the first, lowest, highest and last value of every bucket: "
                (chart.series.iter().map(|s| s.points.len()).sum::<usize>()) " points drawn of "
                (chart.series.iter().map(|s| s.total).sum::<usize>()) "."
            }
            ul.legend {
                @for (i, s) in chart.series.iter().enumerate() {
                    li { span.swatch style={ "background:" (color(i)) } {} " "
                        a href={ "/runs/" (s.run_id) } { (s.name) } }
                }
            }
        }
        @if chart.runs.len() > 1 {
            p { a href={ "/compare?" (chart.runs.iter().map(|r| format!("run={}", r.info.run_id)).collect::<Vec<_>>().join("&")) } { "Compare these runs" } }
        }
    };
    Ok(Html(
        document(
            "Chart",
            &[("Experiments".into(), "/experiments".into())],
            body,
        )
        .into_string(),
    )
    .into_response())
}

/// `GET /chart.svg?...`: the chart alone, for embedding.
pub async fn svg(State(ui): State<Shared>, RawQuery(raw): RawQuery) -> Result<Response, PageError> {
    let p = Params::parse(raw.as_deref())?;
    let spec = ChartSpec::parse(&p)?;
    if spec.metric.is_empty() {
        return Err(PageError::bad_request("Name the metric: metric=KEY"));
    }
    let svg = blocking(move || {
        let chart = load(&ui, &spec)?;
        Ok(draw(&chart.series, &spec))
    })
    .await?;
    Ok(([(CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}

/// Ticks at round times (whole seconds, minutes, hours or days) between `x0` and `x1` (ms),
/// about `count` of them.
fn time_ticks(x0: f64, x1: f64, count: usize) -> Vec<f64> {
    const STEPS_MS: [f64; 17] = [
        1e3, 2e3, 5e3, 1e4, 1.5e4, 3e4, 6e4, 1.2e5, 3e5, 6e5, 9e5, 1.8e6, 3.6e6, 7.2e6, 1.08e7,
        2.16e7, 4.32e7,
    ];
    let raw = (x1 - x0) / count.max(1) as f64;
    let step = STEPS_MS
        .iter()
        .copied()
        .find(|s| *s >= raw)
        .unwrap_or_else(|| (raw / 8.64e7).ceil() * 8.64e7);
    let mut t = (x0 / step).ceil() * step;
    let mut out = Vec::new();
    while t <= x1 && out.len() < 50 {
        out.push(t);
        t += step;
    }
    out
}

/// One line of a [`time_chart`]: a name and its `(time_ms, value)` points; a NaN value is a
/// window without data and breaks the line.
pub struct TimeSeries {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

const SMALL_WIDTH: f64 = 720.0;
const SMALL_HEIGHT: f64 = 220.0;

/// A small SVG line chart over wall time, readable without script: every point carries a
/// `<title>` (the browser shows it on hover) and `threshold`, when given, is drawn dashed.
pub fn time_chart(
    id: &str,
    label: &str,
    series: &[TimeSeries],
    threshold: Option<f64>,
    span_ms: Option<(f64, f64)>,
) -> String {
    let finite = || {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|p| p.0.is_finite() && p.1.is_finite())
    };
    let (mut x0, mut x1) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY);
    for p in finite() {
        x0 = x0.min(p.0);
        x1 = x1.max(p.0);
        y0 = y0.min(p.1);
        y1 = y1.max(p.1);
    }
    if !x0.is_finite() {
        return format!(
            "<p class=\"muted\" id=\"{}\">No values in this window.</p>",
            escape_attr(id)
        );
    }
    if let Some(t) = threshold.filter(|t| t.is_finite()) {
        y0 = y0.min(t);
        y1 = y1.max(t);
    }
    // Scores and rates start at zero; a flat line sits in the middle.
    if y0 > 0.0 {
        y0 = 0.0;
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    // The window shown, when given, so a lone point sits where it happened.
    if let Some((from, to)) = span_ms.filter(|(a, b)| a < b) {
        x0 = x0.min(from);
        x1 = x1.max(to);
    }
    if x1 <= x0 {
        x0 -= 30_000.0;
        x1 += 30_000.0;
    }
    // Tick labels as fine as the span needs.
    let tick_text = |t: f64| {
        let text = format::time(t as i64);
        match x1 - x0 {
            w if w < 600_000.0 => text[11..].to_string(),
            w if w < 2.0 * 86_400_000.0 => text[11..16].to_string(),
            _ => text[5..16].to_string(),
        }
    };
    let (pw, ph) = (SMALL_WIDTH - LEFT - RIGHT, SMALL_HEIGHT - TOP - BOTTOM);
    let sx = |x: f64| LEFT + (x - x0) / (x1 - x0) * pw;
    let sy = |y: f64| TOP + ph - (y - y0) / (y1 - y0) * ph;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg class=\"chart small\" id=\"{}\" viewBox=\"0 0 {SMALL_WIDTH} {SMALL_HEIGHT}\" width=\"{SMALL_WIDTH}\" \
         height=\"{SMALL_HEIGHT}\" role=\"img\" aria-label=\"{}\">\
         <rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{pw}\" height=\"{ph}\" fill=\"#fff\" stroke=\"#ccc\"/>",
        escape_attr(id),
        escape_attr(label)
    );
    for t in nice_ticks(y0, y1, 4) {
        let y = sy(t);
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" class=\"tick\">{}</text>",
            LEFT + pw,
            LEFT - 6.0,
            y + 4.0,
            format::number(t)
        );
    }
    for t in time_ticks(x0, x1, 6) {
        let x = sx(t);
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{}\" stroke=\"#eee\"/>\
             <text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\" class=\"tick\">{}</text>",
            TOP + ph,
            TOP + ph + 16.0,
            tick_text(t)
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" class=\"axis\">{} (UTC)</text>",
        LEFT + pw / 2.0,
        SMALL_HEIGHT - 4.0,
        escape_attr(label)
    );
    if let Some(t) = threshold.filter(|t| t.is_finite()) {
        let y = sy(t);
        let _ = write!(
            svg,
            "<line class=\"threshold\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#d62728\" \
             stroke-dasharray=\"5 4\"><title>threshold {}</title></line>",
            LEFT + pw,
            format::number(t)
        );
    }
    for (i, s) in series.iter().enumerate() {
        let stroke = color(i);
        // Consecutive finite points form one line; a gap (NaN) starts the next.
        for run in s.points.split(|p| !p.1.is_finite()) {
            if run.len() > 1 {
                let pts: Vec<String> = run
                    .iter()
                    .map(|p| format!("{:.1},{:.1}", sx(p.0), sy(p.1)))
                    .collect();
                let _ = write!(
                    svg,
                    "<polyline class=\"series\" fill=\"none\" stroke=\"{stroke}\" stroke-width=\"1.5\" points=\"{}\"/>",
                    pts.join(" ")
                );
            }
        }
        for p in s.points.iter().filter(|p| p.1.is_finite()) {
            let _ = write!(
                svg,
                "<circle class=\"point\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{stroke}\"><title>{} at {}: {}</title></circle>",
                sx(p.0),
                sy(p.1),
                escape_attr(&s.name),
                format::time(p.0 as i64),
                format::number(p.1)
            );
        }
    }
    svg.push_str("</svg>");
    if series.len() > 1 {
        svg.push_str("<ul class=\"legend\">");
        for (i, s) in series.iter().enumerate() {
            let _ = write!(
                svg,
                "<li><span class=\"swatch\" style=\"background:{}\"></span>{}</li>",
                color(i),
                escape_attr(&s.name)
            );
        }
        svg.push_str("</ul>");
    }
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_ticks_fall_on_round_times() {
        // 23:00:00 to 23:50:00 UTC on a day: ten-minute ticks.
        let day = 1_764_460_800_000.0;
        let ticks = time_ticks(day + 82_800_000.0, day + 85_800_000.0, 6);
        assert_eq!(ticks.len(), 6);
        assert!(ticks.iter().all(|t| t % 600_000.0 == 0.0), "{ticks:?}");
        assert_eq!(
            time_ticks(0.0, 4_000.0, 4),
            vec![0.0, 1_000.0, 2_000.0, 3_000.0, 4_000.0]
        );
    }

    #[test]
    fn downsampling_keeps_a_spike_and_the_ends() {
        let mut points: Vec<(f64, f64)> = (0..10_000).map(|i| (i as f64, 1.0)).collect();
        points[4_321].1 = 99.0;
        points[7_000].1 = -5.0;
        let kept = downsample(&points, 50);
        assert!(kept.len() <= 200, "{}", kept.len());
        assert!(kept.contains(&(4_321.0, 99.0)));
        assert!(kept.contains(&(7_000.0, -5.0)));
        assert_eq!(kept.first(), Some(&(0.0, 1.0)));
        assert_eq!(kept.last(), Some(&(9_999.0, 1.0)));
        assert!(kept.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn short_histories_are_untouched() {
        let points = vec![(0.0, 1.0), (1.0, 2.0)];
        assert_eq!(downsample(&points, 10), points);
    }

    #[test]
    fn smoothing_is_debiased() {
        let s = smooth(&[(0.0, 10.0), (1.0, 10.0)], 0.9);
        assert!((s[0].1 - 10.0).abs() < 1e-9 && (s[1].1 - 10.0).abs() < 1e-9);
    }
}
