//! Trace analytics as MLflow 3.17 answers them (`traces/metrics`,
//! `traces/calculate-filter-correlation`): a metric of traces, spans or assessments, aggregated
//! (count, sum, average, min, max, percentiles with numpy's linear interpolation) and grouped by
//! dimensions and time buckets; and the normalised pointwise mutual information of two trace
//! filters. Payloads stay opaque here: a [`PayloadReader`] from the API layer reads the numbers
//! in them (token usage, span cost and model, an assessment's value).
use crate::model::KeyValue;
use crate::search::{self, Comparison, Entity, Op, Target, Value};
use crate::traces::{Assessment, Span, TraceInfo, TraceQuery, TRACE_NAME_TAG};
use crate::{Error, Result};
use std::collections::{BTreeMap, BTreeSet};

/// The most data points one query returns (MLflow's `MAX_RESULTS_QUERY_TRACE_METRICS`).
pub const MAX_RESULTS: u64 = 1000;
/// The dimension a time-bucketed query adds.
pub const TIME_BUCKET: &str = "time_bucket";
/// The metadata key of a trace's session.
pub const SESSION_METADATA: &str = "mlflow.trace.session";
/// The metadata key of a trace's token usage (a JSON object the reader parses).
pub const TOKEN_USAGE_METADATA: &str = "mlflow.trace.tokenUsage";

/// What a metric is computed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricView {
    /// One row per trace.
    Traces,
    /// One row per span.
    Spans,
    /// One row per valid assessment.
    Assessments,
}

impl MetricView {
    /// Reads MLflow's enum (name or number).
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "TRACES" | "1" => Ok(MetricView::Traces),
            "SPANS" | "2" => Ok(MetricView::Spans),
            "ASSESSMENTS" | "3" => Ok(MetricView::Assessments),
            other => Err(Error::invalid(format!(
                "Invalid value '{other}' for parameter 'view_type': must be one of TRACES, \
                 SPANS, ASSESSMENTS"
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            MetricView::Traces => "TRACES",
            MetricView::Spans => "SPANS",
            MetricView::Assessments => "ASSESSMENTS",
        }
    }
}

/// How values of a group are combined.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Aggregation {
    /// Number of values.
    Count,
    /// Their sum.
    Sum,
    /// Their mean.
    Avg,
    /// The smallest.
    Min,
    /// The largest.
    Max,
    /// The percentile (0-100), interpolated linearly between ranks.
    Percentile(f64),
}

impl Aggregation {
    /// Reads MLflow's `aggregation_type` (name or number) and `percentile_value`.
    pub fn parse(kind: &str, percentile: Option<f64>) -> Result<Self> {
        let aggregation = match kind {
            "COUNT" | "1" => Aggregation::Count,
            "SUM" | "2" => Aggregation::Sum,
            "AVG" | "3" => Aggregation::Avg,
            "PERCENTILE" | "4" => {
                let p = percentile.ok_or_else(|| {
                    Error::invalid("Percentile value is required for PERCENTILE aggregation")
                })?;
                if !(0.0..=100.0).contains(&p) {
                    return Err(Error::invalid(format!(
                        "Percentile value must be between 0 and 100, got {}",
                        python_float(p)
                    )));
                }
                return Ok(Aggregation::Percentile(p));
            }
            "MIN" | "5" => Aggregation::Min,
            "MAX" | "6" => Aggregation::Max,
            other => {
                return Err(Error::invalid(format!(
                    "Invalid value '{other}' for parameter 'aggregation_type'"
                )))
            }
        };
        if percentile.is_some() {
            return Err(Error::invalid(format!(
                "Percentile value is only allowed for PERCENTILE aggregation type, got {}",
                aggregation.type_name()
            )));
        }
        Ok(aggregation)
    }

    fn type_name(self) -> &'static str {
        match self {
            Aggregation::Count => "COUNT",
            Aggregation::Sum => "SUM",
            Aggregation::Avg => "AVG",
            Aggregation::Min => "MIN",
            Aggregation::Max => "MAX",
            Aggregation::Percentile(_) => "PERCENTILE",
        }
    }

    /// The key of its value in a data point (`COUNT`, `AVG`, `P95.0`).
    pub fn label(self) -> String {
        match self {
            Aggregation::Percentile(p) => format!("P{}", python_float(p)),
            other => other.type_name().to_string(),
        }
    }

    /// The aggregate of `values`; `None` where SQL gives NULL (no values, except for a count).
    fn apply(self, values: &mut [f64]) -> Option<f64> {
        if values.is_empty() {
            return (self == Aggregation::Count).then_some(0.0);
        }
        Some(match self {
            Aggregation::Count => values.len() as f64,
            Aggregation::Sum => values.iter().sum(),
            Aggregation::Avg => values.iter().sum::<f64>() / values.len() as f64,
            Aggregation::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
            Aggregation::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            Aggregation::Percentile(p) => {
                values.sort_by(f64::total_cmp);
                let rank = p / 100.0 * (values.len() - 1) as f64;
                let (low, fraction) = (rank.floor() as usize, rank - rank.floor());
                let high = (low + 1).min(values.len() - 1);
                values[low] + (values[high] - values[low]) * fraction
            }
        })
    }
}

/// A float as Python's `str` writes it (`50.0`, `99.9`).
fn python_float(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e16 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

/// The numbers a payload holds, read by the layer that knows its format.
pub trait PayloadReader {
    /// `(key, count)` pairs of a trace's token usage metadata (`input_tokens`, ...).
    fn token_usage(&self, metadata_value: &str) -> Vec<(String, f64)>;
    /// A span's LLM facts from its payload.
    fn span_facts(&self, span_content: &str) -> SpanFacts;
    /// An assessment's value as MLflow aggregates it (booleans and yes/no as 1/0, finite
    /// numbers as themselves) and as JSON text (the `assessment_value` dimension).
    fn assessment_value(&self, payload: &str) -> (Option<f64>, Option<String>);
}

/// What a span's payload says about the model it called.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpanFacts {
    /// `mlflow.llm.model`.
    pub model_name: Option<String>,
    /// `mlflow.llm.provider`.
    pub model_provider: Option<String>,
    /// `mlflow.llm.cost`'s `input_cost`, `output_cost`, `total_cost`.
    pub costs: Vec<(String, f64)>,
}

/// A metrics query, as the client sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsRequest {
    /// Experiments (at least one).
    pub experiment_ids: Vec<String>,
    /// Over what.
    pub view: MetricView,
    /// Which metric (`trace_count`, `latency`, `span_count`, `assessment_value`, ...).
    pub metric_name: String,
    /// How (at least one).
    pub aggregations: Vec<Aggregation>,
    /// Grouped by.
    pub dimensions: Vec<String>,
    /// `view.entity[.key] = 'value'` clauses, AND-ed.
    pub filters: Vec<String>,
    /// Bucket width, seconds (needs start and end).
    pub time_interval_seconds: Option<i64>,
    /// Earliest time counted, ms (inclusive).
    pub start_time_ms: Option<i64>,
    /// Latest time counted, ms (inclusive).
    pub end_time_ms: Option<i64>,
    /// Most data points.
    pub max_results: u64,
}

/// One group's aggregates.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricDataPoint {
    /// The metric asked for.
    pub metric_name: String,
    /// The group: dimension name and value, time bucket first.
    pub dimensions: Vec<(String, String)>,
    /// Aggregate label and value, in the order asked.
    pub values: Vec<(String, f64)>,
}

/// Which aggregations and dimensions a metric allows (MLflow's `VIEW_TYPE_CONFIGS`).
fn metric_config(
    view: MetricView,
    metric: &str,
) -> Option<(&'static [&'static str], &'static [&'static str])> {
    const COUNT: &[&str] = &["COUNT"];
    const STATS: &[&str] = &["AVG", "MIN", "MAX", "PERCENTILE"];
    const SUMS: &[&str] = &["SUM", "AVG", "MIN", "MAX", "PERCENTILE"];
    Some(match (view, metric) {
        (MetricView::Traces, "trace_count") => (COUNT, &["trace_name", "trace_status"]),
        (MetricView::Traces, "session_count") => (COUNT, &[]),
        (MetricView::Traces, "latency") => (STATS, &["trace_name"]),
        (
            MetricView::Traces,
            "input_tokens"
            | "output_tokens"
            | "total_tokens"
            | "cache_read_input_tokens"
            | "cache_creation_input_tokens",
        ) => (SUMS, &["trace_name"]),
        (MetricView::Spans, "span_count") => (
            COUNT,
            &[
                "span_name",
                "span_type",
                "span_status",
                "span_model_name",
                "span_model_provider",
            ],
        ),
        (MetricView::Spans, "latency") => (STATS, &["span_name", "span_status"]),
        (MetricView::Spans, "input_cost" | "output_cost" | "total_cost") => {
            (SUMS, &["span_model_name", "span_model_provider"])
        }
        (MetricView::Assessments, "assessment_count") => {
            (COUNT, &["assessment_name", "assessment_value"])
        }
        (MetricView::Assessments, "assessment_value") => (STATS, &["assessment_name"]),
        _ => return None,
    })
}

const METRICS_OF: [(MetricView, &[&str]); 3] = [
    (
        MetricView::Traces,
        &[
            "trace_count",
            "session_count",
            "latency",
            "input_tokens",
            "output_tokens",
            "total_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
        ],
    ),
    (
        MetricView::Spans,
        &[
            "span_count",
            "latency",
            "input_cost",
            "output_cost",
            "total_cost",
        ],
    ),
    (
        MetricView::Assessments,
        &["assessment_count", "assessment_value"],
    ),
];

/// Python's `repr` of a list of strings.
fn py_list<S: AsRef<str>>(items: &[S]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("'{}'", s.as_ref())).collect();
    format!("[{}]", quoted.join(", "))
}

/// A parsed metrics filter clause.
#[derive(Debug, Clone, PartialEq)]
enum MetricFilter {
    /// Narrows the traces searched.
    Trace(Comparison),
    /// `span.name|status|type = 'v'`.
    Span(&'static str, String),
    /// `assessment.name|type = 'v'`.
    Assessment(&'static str, String),
}

/// Splits `s` at the first top-level `=` into (identifier, quoted value).
fn parse_metric_filter(s: &str, view: MetricView) -> Result<MetricFilter> {
    let text = s.trim();
    let Some((ident, value)) = text.split_once('=') else {
        return Err(Error::invalid(format!(
            "Invalid filter: '{s}'. Expected one filter clause."
        )));
    };
    let (ident, value) = (ident.trim(), value.trim());
    for op in ["!", "<", ">"] {
        if ident.ends_with(op) {
            return Err(Error::invalid(format!(
                "Invalid comparator: '{op}=', only '=' operator is supported"
            )));
        }
    }
    let unquote = |v: &str| -> Option<String> {
        let q = v.chars().next()?;
        (matches!(q, '\'' | '"') && v.len() >= 2 && v.ends_with(q))
            .then(|| v[1..v.len() - 1].to_string())
    };
    let value = unquote(value).ok_or_else(|| {
        Error::invalid(format!(
            "Expected a quoted string value for {} value (e.g. 'my-value'). Got value {value}",
            ident.split('.').nth(1).unwrap_or(ident)
        ))
    })?;
    let trim_ticks = |v: &str| v.trim_matches('`').to_string();
    let parts: Vec<&str> = ident.splitn(3, '.').collect();
    let bad_identifier = || {
        Error::invalid(format!(
            "Invalid identifier '{ident}'. Columns should be specified as 'trace.<key>', \
             'span.<key>', 'assessment.<key>'."
        ))
    };
    if parts.len() < 2 {
        return Err(bad_identifier());
    }
    let view_type = trim_ticks(parts[0]);
    let entity = parts[1];
    let key = parts
        .get(2)
        .map(|k| trim_ticks(unquote(k).as_deref().unwrap_or(k)));
    let entities: &[(&str, bool)] = match view_type.as_str() {
        "trace" => &[("status", false), ("tag", true), ("metadata", true)],
        "span" => &[("name", false), ("status", false), ("type", false)],
        "assessment" => &[("name", false), ("type", false)],
        _ => {
            return Err(Error::invalid(format!(
                "Invalid view type '{view_type}'. Valid values are dict_keys(['trace', 'span', \
                 'assessment'])"
            )))
        }
    };
    let Some((_, needs_key)) = entities.iter().find(|(e, _)| *e == entity) else {
        let names: Vec<&str> = entities.iter().map(|(e, _)| *e).collect();
        return Err(Error::invalid(format!(
            "Invalid entity '{entity}' specified for view type '{view_type}'. Valid entities are {}",
            py_list(&names)
        )));
    };
    match (needs_key, &key) {
        (true, None) => {
            return Err(Error::invalid(format!(
                "Filtering by {entity} requires a key, e.g. '{view_type}.{entity}.<key> = <value>'"
            )))
        }
        (false, Some(_)) => {
            return Err(Error::invalid(format!(
                "Filtering by {entity} does not require a key, use '{view_type}.{entity}' instead"
            )))
        }
        _ => {}
    }
    let eq = |entity: Entity, key: &str, value: String| Comparison {
        entity,
        key: key.to_string(),
        op: Op::Eq,
        value: Value::Str(value),
    };
    Ok(match (view_type.as_str(), entity) {
        ("trace", "status") => MetricFilter::Trace(eq(Entity::Attribute, "status", value)),
        ("trace", "tag") => {
            let key = key.unwrap_or_default();
            if key == TRACE_NAME_TAG {
                MetricFilter::Trace(eq(Entity::Attribute, "name", value))
            } else {
                MetricFilter::Trace(eq(Entity::Tag, &key, value))
            }
        }
        ("trace", _) => {
            let key = key.unwrap_or_default();
            if key == crate::traces::SOURCE_RUN_METADATA {
                // The source run in metadata, or linked afterwards: as the search's `run_id`.
                MetricFilter::Trace(eq(Entity::Attribute, "run_id", value))
            } else {
                MetricFilter::Trace(eq(Entity::Metadata, &key, value))
            }
        }
        ("span", e) => {
            if view != MetricView::Spans {
                return Err(Error::invalid(format!(
                    "Filtering by span is only supported for SPANS view type, got {}",
                    view.name()
                )));
            }
            MetricFilter::Span(
                match e {
                    "name" => "name",
                    "status" => "status",
                    _ => "type",
                },
                value,
            )
        }
        (_, e) => {
            if view != MetricView::Assessments {
                return Err(Error::invalid(format!(
                    "Filtering by assessment is only supported for ASSESSMENTS view type, got {}",
                    view.name()
                )));
            }
            MetricFilter::Assessment(if e == "name" { "name" } else { "type" }, value)
        }
    })
}

/// Checks a request the way MLflow does, in its order.
fn validate(request: &MetricsRequest) -> Result<()> {
    let Some((aggregations, dimensions)) = metric_config(request.view, &request.metric_name) else {
        let names = METRICS_OF
            .iter()
            .find(|(v, _)| *v == request.view)
            .map(|(_, m)| py_list(m))
            .unwrap_or_default();
        return Err(Error::invalid(format!(
            "metric_name must be one of {names}, got '{}'",
            request.metric_name
        )));
    };
    let asked: BTreeSet<&str> = request.aggregations.iter().map(|a| a.type_name()).collect();
    let invalid: Vec<&str> = asked
        .iter()
        .copied()
        .filter(|a| !aggregations.contains(a))
        .collect();
    if !invalid.is_empty() {
        let mut supported = aggregations.to_vec();
        supported.sort_unstable();
        return Err(Error::invalid(format!(
            "Found invalid aggregation_type(s): {}. Supported aggregation types: {}",
            py_list(&invalid),
            py_list(&supported)
        )));
    }
    let invalid: BTreeSet<&str> = request
        .dimensions
        .iter()
        .map(String::as_str)
        .filter(|d| !dimensions.contains(d))
        .collect();
    if !invalid.is_empty() {
        let invalid: Vec<&str> = invalid.into_iter().collect();
        let mut supported = dimensions.to_vec();
        supported.sort_unstable();
        return Err(Error::invalid(format!(
            "Found invalid dimension(s): {}. Supported dimensions: {}",
            py_list(&invalid),
            py_list(&supported)
        )));
    }
    if request.time_interval_seconds.is_some_and(|s| s != 0)
        && (request.start_time_ms.is_none() || request.end_time_ms.is_none())
    {
        return Err(Error::invalid(
            "start_time_ms and end_time_ms are required if time_interval_seconds is set",
        ));
    }
    if request.time_interval_seconds.is_some_and(|s| s < 0) {
        return Err(Error::invalid("time_interval_seconds must be positive"));
    }
    Ok(())
}

/// The trace search that selects the traces a request reads (and its in-memory filters).
pub(crate) struct Plan {
    /// Trace-level comparisons for the store.
    pub query: TraceQuery,
    span_filters: Vec<(&'static str, String)>,
    assessment_filters: Vec<(&'static str, String)>,
    /// Whether spans must be read.
    pub needs_spans: bool,
}

/// Plans `request`: validated, filters parsed, the time range on the trace search where
/// MLflow applies it to the trace's timestamp.
pub(crate) fn plan(request: &MetricsRequest) -> Result<Plan> {
    validate(request)?;
    let mut filter = Vec::new();
    let mut span_filters = Vec::new();
    let mut assessment_filters = Vec::new();
    for f in &request.filters {
        match parse_metric_filter(f, request.view)? {
            MetricFilter::Trace(c) => filter.push(c),
            MetricFilter::Span(k, v) => span_filters.push((k, v)),
            MetricFilter::Assessment(k, v) => assessment_filters.push((k, v)),
        }
    }
    // Span costs are timed by the span's start; everything else by its trace's.
    if !span_costs(request) {
        let bound = |op, ms: i64| Comparison {
            entity: Entity::Attribute,
            key: "timestamp_ms".into(),
            op,
            value: Value::Num(ms as f64),
        };
        if let Some(start) = request.start_time_ms {
            filter.push(bound(Op::Ge, start));
        }
        if let Some(end) = request.end_time_ms {
            filter.push(bound(Op::Le, end));
        }
    }
    Ok(Plan {
        query: TraceQuery {
            experiment_ids: request.experiment_ids.clone(),
            filter,
            order_by: vec![],
            max_results: 0,
            offset: 0,
        },
        span_filters,
        assessment_filters,
        needs_spans: request.view == MetricView::Spans,
    })
}

fn span_costs(request: &MetricsRequest) -> bool {
    request.view == MetricView::Spans
        && matches!(
            request.metric_name.as_str(),
            "input_cost" | "output_cost" | "total_cost"
        )
}

fn value_of(items: &[KeyValue], key: &str) -> Option<String> {
    items
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| kv.value.clone())
}

/// A group key part: the time bucket sorts as a number, dimensions as text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum GroupPart {
    Bucket(i64),
    Text(String),
}

/// Groups and aggregates rows as they are fed in.
pub(crate) struct Aggregator<'a> {
    request: &'a MetricsRequest,
    plan_spans: Vec<(&'static str, String)>,
    plan_assessments: Vec<(&'static str, String)>,
    reader: &'a dyn PayloadReader,
    groups: BTreeMap<Vec<GroupPart>, Vec<f64>>,
    sessions: BTreeMap<Vec<GroupPart>, BTreeSet<String>>,
}

impl<'a> Aggregator<'a> {
    pub(crate) fn new(
        request: &'a MetricsRequest,
        plan: &Plan,
        reader: &'a dyn PayloadReader,
    ) -> Self {
        Aggregator {
            request,
            plan_spans: plan.span_filters.clone(),
            plan_assessments: plan.assessment_filters.clone(),
            reader,
            groups: BTreeMap::new(),
            sessions: BTreeMap::new(),
        }
    }

    fn bucket(&self, at_ms: i64) -> Option<GroupPart> {
        let width = self.request.time_interval_seconds.filter(|s| *s > 0)? * 1000;
        Some(GroupPart::Bucket(at_ms.div_euclid(width) * width))
    }

    /// The group of a row, or `None` when a dimension is missing (MLflow drops those rows).
    fn group(
        &self,
        at_ms: i64,
        dimension: impl Fn(&str) -> Option<String>,
    ) -> Option<Vec<GroupPart>> {
        let mut key = Vec::with_capacity(self.request.dimensions.len() + 1);
        if let Some(b) = self.bucket(at_ms) {
            key.push(b);
        }
        for d in &self.request.dimensions {
            key.push(GroupPart::Text(dimension(d)?));
        }
        Some(key)
    }

    fn push(&mut self, key: Option<Vec<GroupPart>>, value: Option<f64>) {
        if let (Some(key), Some(value)) = (key, value) {
            self.groups.entry(key).or_default().push(value);
        }
    }

    /// Feeds one trace (with its spans when the view needs them).
    pub(crate) fn add(&mut self, info: &TraceInfo, spans: &[Span]) {
        match self.request.view {
            MetricView::Traces => self.add_trace(info),
            MetricView::Spans => {
                for span in spans {
                    self.add_span(info, span);
                }
            }
            MetricView::Assessments => {
                for a in info.assessments.iter().filter(|a| a.valid) {
                    self.add_assessment(info, a);
                }
            }
        }
    }

    fn add_trace(&mut self, info: &TraceInfo) {
        let name = value_of(&info.tags, TRACE_NAME_TAG);
        let key = self.group(info.request_time, |d| match d {
            "trace_name" => name.clone(),
            _ => Some(info.state.as_str().to_string()),
        });
        let metric = self.request.metric_name.as_str();
        match metric {
            "trace_count" => self.push(key, Some(1.0)),
            "session_count" => {
                if let (Some(key), Some(session)) =
                    (key, value_of(&info.metadata, SESSION_METADATA))
                {
                    self.sessions.entry(key).or_default().insert(session);
                }
            }
            "latency" => self.push(key, info.execution_duration.map(|d| d as f64)),
            tokens => {
                let usage = value_of(&info.metadata, TOKEN_USAGE_METADATA)
                    .map(|u| self.reader.token_usage(&u))
                    .unwrap_or_default();
                let value = usage.iter().find(|(k, _)| k == tokens).map(|(_, v)| *v);
                self.push(key, value);
            }
        }
    }

    fn add_span(&mut self, info: &TraceInfo, span: &Span) {
        let facts = self.reader.span_facts(&span.content);
        for (field, wanted) in &self.plan_spans {
            let actual = match *field {
                "name" => Some(span.name.as_str()),
                "status" => Some(span.status.as_str()),
                _ => span.span_type.as_deref(),
            };
            if actual != Some(wanted.as_str()) {
                return;
            }
        }
        let costs = span_costs(self.request);
        let start_ms = span.start_time_ns.div_euclid(1_000_000);
        if costs {
            if let Some(start) = self.request.start_time_ms {
                if start_ms < start {
                    return;
                }
            }
            if let Some(end) = self.request.end_time_ms {
                if start_ms > end {
                    return;
                }
            }
        }
        let at = if costs { start_ms } else { info.request_time };
        let key = self.group(at, |d| match d {
            "span_name" => Some(span.name.clone()),
            "span_type" => span.span_type.clone(),
            "span_status" => Some(span.status.clone()),
            "span_model_name" => facts.model_name.clone(),
            _ => facts.model_provider.clone(),
        });
        let value = match self.request.metric_name.as_str() {
            "span_count" => Some(1.0),
            "latency" => span
                .end_time_ns
                .map(|end| ((end - span.start_time_ns).div_euclid(1_000_000)) as f64),
            cost => facts.costs.iter().find(|(k, _)| k == cost).map(|(_, v)| *v),
        };
        self.push(key, value);
    }

    fn add_assessment(&mut self, info: &TraceInfo, a: &Assessment) {
        for (field, wanted) in &self.plan_assessments {
            let actual = match *field {
                "name" => a.name.as_str(),
                _ => a.kind.as_str(),
            };
            if actual != wanted {
                return;
            }
        }
        let (aggregate, text) = self.reader.assessment_value(&a.payload);
        let key = self.group(info.request_time, |d| match d {
            "assessment_name" => Some(a.name.clone()),
            _ => text.clone(),
        });
        let value = match self.request.metric_name.as_str() {
            "assessment_count" => Some(1.0),
            _ => aggregate,
        };
        self.push(key, value);
    }

    /// The data points, ordered by group (time bucket first), at most `max_results`.
    pub(crate) fn finish(mut self) -> Vec<MetricDataPoint> {
        let request = self.request;
        if request.metric_name == "session_count" && request.view == MetricView::Traces {
            for (key, sessions) in std::mem::take(&mut self.sessions) {
                self.groups.insert(key, vec![1.0; sessions.len()]);
            }
        }
        // Without groups, SQL answers one row even over nothing (a count of 0).
        if self.groups.is_empty()
            && request.dimensions.is_empty()
            && request.time_interval_seconds.is_none_or(|s| s == 0)
        {
            self.groups.insert(vec![], vec![]);
        }
        let mut names: Vec<String> = Vec::new();
        if request.time_interval_seconds.is_some_and(|s| s > 0) {
            names.push(TIME_BUCKET.to_string());
        }
        names.extend(request.dimensions.iter().cloned());
        let mut points = Vec::new();
        for (key, mut values) in self.groups {
            if points.len() as u64 >= request.max_results {
                break;
            }
            let aggregates: Vec<(String, f64)> = request
                .aggregations
                .iter()
                .filter_map(|a| a.apply(&mut values).map(|v| (a.label(), v)))
                .collect();
            if aggregates.is_empty() {
                continue;
            }
            let dimensions = names
                .iter()
                .zip(key)
                .map(|(name, part)| {
                    let value = match part {
                        GroupPart::Bucket(ms) => iso_utc(ms),
                        GroupPart::Text(t) => t,
                    };
                    (name.clone(), value)
                })
                .collect();
            points.push(MetricDataPoint {
                metric_name: request.metric_name.clone(),
                dimensions,
                values: aggregates,
            });
        }
        points
    }
}

/// `ms` as Python's `datetime.isoformat()` writes a UTC time (`2026-11-30T23:00:00+00:00`).
fn iso_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let micros = ms.rem_euclid(1000) * 1000;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = crate::dates::civil_from_days(days);
    let time = format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60);
    let fraction = if micros > 0 {
        format!(".{micros:06}")
    } else {
        String::new()
    };
    format!("{year:04}-{month:02}-{day:02}T{time}{fraction}+00:00")
}

/// The counts behind a filter correlation and its normalised PMI.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterCorrelation {
    /// NPMI with the -1 rule for filters that never co-occur; NaN when undefined.
    pub npmi: f64,
    /// NPMI with Jeffreys smoothing (0.5 per cell).
    pub npmi_smoothed: f64,
    /// Traces matching the first filter (and the base).
    pub filter1_count: u64,
    /// Traces matching the second filter (and the base).
    pub filter2_count: u64,
    /// Traces matching both.
    pub joint_count: u64,
    /// Traces matching the base filter (or all of the experiments').
    pub total_count: u64,
}

impl FilterCorrelation {
    /// MLflow's `calculate_npmi_from_counts`.
    pub fn from_counts(joint: u64, filter1: u64, filter2: u64, total: u64) -> Self {
        let nan = f64::NAN;
        let (npmi, npmi_smoothed) = if total == 0 || filter1 == 0 || filter2 == 0 {
            (nan, nan)
        } else {
            let (j, f1, f2, t) = (
                joint as i128,
                filter1 as i128,
                filter2 as i128,
                total as i128,
            );
            let (n11, n10, n01, n00) = (j, f1 - j, f2 - j, t - f1 - f2 + j);
            if n11.min(n10).min(n01).min(n00) < 0 {
                (nan, nan)
            } else {
                let cells = [n11 as f64, n10 as f64, n01 as f64, n00 as f64];
                let plain = if joint == 0 {
                    -1.0
                } else {
                    npmi_core(cells, 0.0)
                };
                (plain, npmi_core(cells, 0.5))
            }
        };
        FilterCorrelation {
            npmi,
            npmi_smoothed,
            filter1_count: filter1,
            filter2_count: filter2,
            joint_count: joint,
            total_count: total,
        }
    }
}

fn npmi_core([n11, n10, n01, n00]: [f64; 4], smoothing: f64) -> f64 {
    let (a, b, c, d) = (
        n11 + smoothing,
        n10 + smoothing,
        n01 + smoothing,
        n00 + smoothing,
    );
    let n = a + b + c + d;
    let (n1, n2) = (a + b, a + c);
    if n1 <= 0.0 || n2 <= 0.0 || a <= 0.0 {
        return f64::NAN;
    }
    if n10 == 0.0 && n01 == 0.0 && n00 == 0.0 {
        return 1.0;
    }
    let pmi = (a.ln() + n.ln()) - (n1.ln() + n2.ln());
    let denominator = -(a.ln() - n.ln());
    (pmi / denominator).clamp(-1.0, 1.0)
}

/// The comparisons of a trace filter string (empty for none).
pub(crate) fn trace_filter(filter: &str) -> Result<Vec<Comparison>> {
    search::parse_filter(filter, Target::Traces)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let mut v = vec![10.0, 20.0, 30.0, 40.0];
        assert_eq!(Aggregation::Percentile(50.0).apply(&mut v), Some(25.0));
        assert_eq!(Aggregation::Percentile(90.0).apply(&mut v), Some(37.0));
        assert_eq!(Aggregation::Percentile(0.0).apply(&mut v), Some(10.0));
        assert_eq!(Aggregation::Percentile(100.0).apply(&mut v), Some(40.0));
        assert_eq!(Aggregation::Count.apply(&mut []), Some(0.0));
        assert_eq!(Aggregation::Avg.apply(&mut []), None);
        assert_eq!(Aggregation::Percentile(95.0).label(), "P95.0");
        assert_eq!(Aggregation::Percentile(99.9).label(), "P99.9");
    }

    #[test]
    fn npmi_matches_mlflow() {
        // Values from MLflow 3.17's calculate_npmi_from_counts.
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        let r = FilterCorrelation::from_counts(10, 20, 15, 100);
        assert!(close(r.npmi, 0.5228787452803378), "{}", r.npmi);
        assert!(
            close(r.npmi_smoothed, 0.5098689991831412),
            "{}",
            r.npmi_smoothed
        );
        let r = FilterCorrelation::from_counts(3, 4, 5, 10);
        assert!(close(r.npmi, 0.33677264689975395), "{}", r.npmi);
        assert!(
            close(r.npmi_smoothed, 0.2730787340224989),
            "{}",
            r.npmi_smoothed
        );
        let never = FilterCorrelation::from_counts(0, 5, 5, 20);
        assert_eq!(never.npmi, -1.0);
        assert!(close(never.npmi_smoothed, -0.31330979162112166));
        let always = FilterCorrelation::from_counts(7, 7, 7, 7);
        assert_eq!((always.npmi, always.npmi_smoothed), (1.0, 1.0));
        assert!(FilterCorrelation::from_counts(0, 0, 5, 20).npmi.is_nan());
    }

    #[test]
    fn buckets_print_as_python_isoformat() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(iso_utc(1_764_543_600_000), "2025-11-30T23:00:00+00:00");
        assert_eq!(iso_utc(951_782_400_500), "2000-02-29T00:00:00.500000+00:00");
    }

    #[test]
    fn filters_follow_mlflows_grammar() {
        assert!(matches!(
            parse_metric_filter("trace.status = 'OK'", MetricView::Traces),
            Ok(MetricFilter::Trace(_))
        ));
        assert!(matches!(
            parse_metric_filter("span.name = 'llm'", MetricView::Spans),
            Ok(MetricFilter::Span("name", _))
        ));
        let e = parse_metric_filter("span.name = 'llm'", MetricView::Traces).unwrap_err();
        assert!(e.to_string().contains("only supported for SPANS"), "{e}");
        let e = parse_metric_filter("trace.tag = 'x'", MetricView::Traces).unwrap_err();
        assert!(e.to_string().contains("requires a key"), "{e}");
        let e = parse_metric_filter("trace.status != 'OK'", MetricView::Traces).unwrap_err();
        assert!(e.to_string().contains("only '=' operator"), "{e}");
        let e = parse_metric_filter("trace.status = OK", MetricView::Traces).unwrap_err();
        assert!(e.to_string().contains("quoted string"), "{e}");
    }
}
