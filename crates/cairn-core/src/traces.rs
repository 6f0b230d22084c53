//! Traces, as MLflow 3's GenAI tracing keeps them: a trace's info (experiment, times, state,
//! previews, metadata, tags), its spans (logged as they end, through the OTLP endpoint), and
//! assessments (feedback and expectations) on it. The rules live here, over a [`TraceStore`];
//! span payloads and assessment values are opaque text (JSON the API layer reads and writes).
use crate::model::{KeyValue, LifecycleStage, Page};
use crate::search::{self, Comparison, OrderBy, Target};
use crate::store::TraceStore;
use crate::tracking::Tracking;
use crate::{now_millis, Error, Result};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The prefix of MLflow 3 trace ids (`tr-` and the 32 hex digits of the OpenTelemetry id).
pub const TRACE_ID_PREFIX: &str = "tr-";
/// The tag that says where a trace's spans are (`TRACKING_STORE` once spans were logged here).
pub const SPANS_LOCATION_TAG: &str = "mlflow.trace.spansLocation";
/// [`SPANS_LOCATION_TAG`]'s value for spans kept in the metadata store.
pub const SPANS_IN_TRACKING_STORE: &str = "TRACKING_STORE";
/// The tag naming where a trace's artifacts (attachments) go.
pub const ARTIFACT_LOCATION_TAG: &str = "mlflow.artifactLocation";
/// The metadata key naming the run a trace was made in.
pub const SOURCE_RUN_METADATA: &str = "mlflow.sourceRun";
/// The metadata `start_trace` adds: the client has sent the trace's final info.
pub const INFO_FINALIZED_METADATA: &str = "mlflow.trace.infoFinalized";
/// The tag holding a trace's name (searched as `name`).
pub const TRACE_NAME_TAG: &str = "mlflow.traceName";
/// The most characters a request or response preview keeps (MLflow's OSS limit).
pub const PREVIEW_MAX_CHARS: usize = 1000;
/// The most traces one call may link to a run.
pub const MAX_LINKED_TRACES: usize = 100;
/// The most traces one batch get names.
pub const MAX_BATCH_GET: usize = 1000;

const SEARCH_DEFAULT_MAX: u64 = 100;
const SEARCH_MAX: u64 = 50_000;
const MAX_TAG_KEY: usize = 250;
const MAX_TAG_VALUE: usize = 8000;

/// A trace's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceState {
    /// Not given.
    Unspecified,
    /// Finished without error.
    Ok,
    /// Finished with an error.
    Error,
    /// Spans are still arriving.
    InProgress,
}

impl TraceState {
    /// MLflow's name (`OK`, `ERROR`, `IN_PROGRESS`, `STATE_UNSPECIFIED`).
    pub fn as_str(self) -> &'static str {
        match self {
            TraceState::Unspecified => "STATE_UNSPECIFIED",
            TraceState::Ok => "OK",
            TraceState::Error => "ERROR",
            TraceState::InProgress => "IN_PROGRESS",
        }
    }

    /// Reads MLflow's name (also the v2 status names `UNSPECIFIED`, `TRACE_STATUS_UNSPECIFIED`).
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "OK" => TraceState::Ok,
            "ERROR" => TraceState::Error,
            "IN_PROGRESS" => TraceState::InProgress,
            "STATE_UNSPECIFIED" | "TRACE_STATUS_UNSPECIFIED" | "UNSPECIFIED" | "" => {
                TraceState::Unspecified
            }
            other => {
                return Err(Error::invalid(format!(
                    "Invalid trace state '{other}'. Valid values are ['OK', 'ERROR', \
                     'IN_PROGRESS', 'STATE_UNSPECIFIED']"
                )))
            }
        })
    }
}

/// An assessment's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssessmentKind {
    /// A judgement of the trace (`mlflow.log_feedback`).
    Feedback,
    /// What the trace should have produced (`mlflow.log_expectation`).
    Expectation,
}

impl AssessmentKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AssessmentKind::Feedback => "feedback",
            AssessmentKind::Expectation => "expectation",
        }
    }
    /// Reads the stored name.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "feedback" => Ok(AssessmentKind::Feedback),
            "expectation" => Ok(AssessmentKind::Expectation),
            other => Err(Error::Storage(format!("unknown assessment kind '{other}'"))),
        }
    }
}

/// Feedback or an expectation on a trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// `a-` and 32 hex digits.
    pub assessment_id: String,
    /// The trace it is about.
    pub trace_id: String,
    /// What is assessed (`relevance`, `expected_answer`).
    pub name: String,
    /// Feedback or expectation.
    pub kind: AssessmentKind,
    /// The `feedback` or `expectation` object as the client sent it (JSON text).
    pub payload: String,
    /// `HUMAN`, `LLM_JUDGE` or `CODE`.
    pub source_type: String,
    /// Who or what assessed.
    pub source_id: String,
    /// Created, ms.
    pub create_time: i64,
    /// Last changed, ms.
    pub last_update_time: i64,
    /// The span it is about, if one.
    pub span_id: Option<String>,
    /// The run it was made in, if one.
    pub run_id: Option<String>,
    /// Why.
    pub rationale: Option<String>,
    /// Free-form metadata (a JSON object's text; opaque here).
    pub metadata: Option<String>,
    /// The assessment this one replaces, if any.
    pub overrides: Option<String>,
    /// False once another assessment overrides it.
    pub valid: bool,
}

/// A trace's info: everything but its spans.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceInfo {
    /// `tr-` and 32 hex digits.
    pub trace_id: String,
    /// The experiment it belongs to.
    pub experiment_id: String,
    /// When the request started, ms.
    pub request_time: i64,
    /// How long it took, ms (absent while in progress).
    pub execution_duration: Option<i64>,
    /// Its state.
    pub state: TraceState,
    /// The client's own id for the request.
    pub client_request_id: Option<String>,
    /// The request, shortened.
    pub request_preview: Option<String>,
    /// The response, shortened.
    pub response_preview: Option<String>,
    /// Request metadata (immutable facts: source run, user, session).
    pub metadata: Vec<KeyValue>,
    /// Tags (mutable).
    pub tags: Vec<KeyValue>,
    /// Feedback and expectations.
    pub assessments: Vec<Assessment>,
}

/// One span as stored: the columns searches need and the payload the API gives back.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// The MLflow trace id.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// The parent's id; `None` for the root span.
    pub parent_span_id: Option<String>,
    /// Its name.
    pub name: String,
    /// MLflow's span type (`LLM`, `CHAIN`, ...), if given.
    pub span_type: Option<String>,
    /// `OK`, `ERROR` or `UNSET`.
    pub status: String,
    /// Start, ns since the epoch.
    pub start_time_ns: i64,
    /// End, ns since the epoch; `None` while open.
    pub end_time_ns: Option<i64>,
    /// The span as the API hands it back (opaque here).
    pub content: String,
    /// The root span's inputs as JSON text, for the trace's request preview.
    pub inputs: Option<String>,
    /// The root span's outputs as JSON text, for the response preview.
    pub outputs: Option<String>,
    /// Tags its trace gets from the resource that made it (`service.name`, ...).
    pub resource_tags: Vec<KeyValue>,
}

/// The spans of one trace in a `log_spans` batch, with the info the trace gets if the store
/// has none yet (the store merges into an existing one: earliest start, latest end, the
/// root's state while the trace is in progress, previews where missing).
#[derive(Debug, Clone, PartialEq)]
pub struct SpanBatch {
    /// The trace as these spans describe it.
    pub info: TraceInfo,
    /// Whether the root span is among them (its state then counts).
    pub has_root: bool,
    /// The spans.
    pub spans: Vec<Span>,
}

/// A trace search, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceQuery {
    /// Experiments searched (at least one).
    pub experiment_ids: Vec<String>,
    /// AND-ed comparisons.
    pub filter: Vec<Comparison>,
    /// Ordering; newest first when empty.
    pub order_by: Vec<OrderBy>,
    /// Page size.
    pub max_results: u64,
    /// Rows skipped.
    pub offset: u64,
}

/// Which traces `delete_traces` removes.
#[derive(Debug, Clone, PartialEq)]
pub enum TraceSelection {
    /// These ids (of the experiment).
    Ids(Vec<String>),
    /// The oldest, up to `max_traces`, started at or before `max_timestamp_millis`.
    Older {
        /// Latest request time deleted, ms.
        max_timestamp_millis: i64,
        /// At most this many (oldest first); all when `None`.
        max_traces: Option<u64>,
    },
}

/// Fields of an assessment an update may change (MLflow's `update_mask`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AssessmentUpdate {
    /// New name.
    pub name: Option<String>,
    /// New payload (must keep the kind).
    pub payload: Option<(AssessmentKind, String)>,
    /// New rationale.
    pub rationale: Option<String>,
    /// New metadata (replaces; JSON text).
    pub metadata: Option<String>,
}

fn hex_id() -> String {
    crate::ids::new_run_id()
}

/// Checks an id is `tr-` and hex digits (and nothing that could climb a path).
pub fn validate_trace_id(id: &str) -> Result<()> {
    let ok = id.strip_prefix(TRACE_ID_PREFIX).is_some_and(|hex| {
        !hex.is_empty() && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
    });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "Invalid trace ID '{id}': expected 'tr-' followed by hexadecimal digits"
        )))
    }
}

/// The MLflow trace id of an OpenTelemetry trace id (16 bytes).
pub fn trace_id_from_otel(bytes: &[u8]) -> String {
    let mut id = String::with_capacity(3 + 2 * bytes.len());
    id.push_str(TRACE_ID_PREFIX);
    for b in bytes {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

/// A preview: the first [`PREVIEW_MAX_CHARS`] characters, with `...` when cut.
pub fn preview(text: &str) -> String {
    match text.char_indices().nth(PREVIEW_MAX_CHARS - 3) {
        Some((cut, _)) if text.chars().count() > PREVIEW_MAX_CHARS => {
            format!("{}...", &text[..cut])
        }
        _ => text.to_string(),
    }
}

fn validate_tag(key: &str, value: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_TAG_KEY {
        return Err(Error::invalid(format!(
            "Invalid trace tag key '{key}': it must be 1 to {MAX_TAG_KEY} characters"
        )));
    }
    if value.len() > MAX_TAG_VALUE {
        return Err(Error::invalid(format!(
            "Trace tag '{key}' has a value of {} characters; the limit is {MAX_TAG_VALUE}",
            value.len()
        )));
    }
    Ok(())
}

fn not_found(trace_id: &str) -> Error {
    Error::not_found(format!("Trace with ID '{trace_id}' not found."))
}

/// Traces with MLflow 3.17's rules over any [`TraceStore`].
#[derive(Clone)]
pub struct Traces {
    store: Arc<dyn TraceStore>,
    tracking: Tracking,
}

impl Traces {
    /// A service over `store`; `tracking` answers which experiments and runs exist.
    pub fn new(store: Arc<dyn TraceStore>, tracking: Tracking) -> Self {
        Traces { store, tracking }
    }

    fn active_experiment_location(&self, experiment_id: &str) -> Result<String> {
        let exp = self.tracking.get_experiment(experiment_id)?;
        if exp.lifecycle_stage != LifecycleStage::Active {
            return Err(Error::invalid(format!(
                "The experiment {experiment_id} must be in the 'active' state. Current state \
                 is deleted."
            )));
        }
        Ok(exp.artifact_location)
    }

    fn artifact_tag(location: &str, trace_id: &str) -> KeyValue {
        KeyValue {
            key: ARTIFACT_LOCATION_TAG.into(),
            value: format!(
                "{}/traces/{trace_id}/artifacts",
                location.trim_end_matches('/')
            ),
        }
    }

    /// Stores spans arriving for `experiment_id` (the OTLP endpoint), creating traces that do
    /// not exist yet. One transaction for the whole batch.
    pub fn log_spans(&self, experiment_id: &str, spans: Vec<Span>) -> Result<usize> {
        if spans.is_empty() {
            return Ok(0);
        }
        let location = self.active_experiment_location(experiment_id)?;
        let mut by_trace: BTreeMap<String, Vec<Span>> = BTreeMap::new();
        for span in spans {
            validate_trace_id(&span.trace_id)?;
            by_trace
                .entry(span.trace_id.clone())
                .or_default()
                .push(span);
        }
        let mut count = 0;
        let batches: Vec<SpanBatch> = by_trace
            .into_iter()
            .map(|(trace_id, spans)| {
                count += spans.len();
                let start_ms = spans.iter().map(|s| s.start_time_ns).min().unwrap_or(0) / 1_000_000;
                let end_ms = spans
                    .iter()
                    .filter_map(|s| s.end_time_ns)
                    .max()
                    .map(|ns| ns / 1_000_000);
                let root = spans.iter().find(|s| s.parent_span_id.is_none());
                let state = match root {
                    Some(r) if r.status == "ERROR" => TraceState::Error,
                    Some(_) => TraceState::Ok,
                    None => TraceState::InProgress,
                };
                let mut tags = vec![
                    Self::artifact_tag(&location, &trace_id),
                    KeyValue {
                        key: SPANS_LOCATION_TAG.into(),
                        value: SPANS_IN_TRACKING_STORE.into(),
                    },
                ];
                for span in &spans {
                    merge(&mut tags, span.resource_tags.clone());
                }
                SpanBatch {
                    has_root: root.is_some(),
                    info: TraceInfo {
                        tags,
                        trace_id,
                        experiment_id: experiment_id.to_string(),
                        request_time: start_ms,
                        execution_duration: end_ms.map(|end| (end - start_ms).max(0)),
                        state,
                        client_request_id: None,
                        request_preview: root.and_then(|r| r.inputs.as_deref()).map(preview),
                        response_preview: root.and_then(|r| r.outputs.as_deref()).map(preview),
                        metadata: Vec::new(),
                        assessments: Vec::new(),
                    },
                    spans,
                }
            })
            .collect();
        self.store.log_spans(&batches)?;
        Ok(count)
    }

    /// Creates a trace, or completes the one its spans created (MLflow's StartTraceV3: the
    /// client sends the finished trace's info after its spans).
    pub fn start_trace(&self, mut info: TraceInfo) -> Result<TraceInfo> {
        validate_trace_id(&info.trace_id)?;
        let location = self.active_experiment_location(&info.experiment_id)?;
        for tag in &info.tags {
            validate_tag(&tag.key, &tag.value)?;
        }
        info.tags.retain(|t| t.key != ARTIFACT_LOCATION_TAG);
        info.tags
            .push(Self::artifact_tag(&location, &info.trace_id));
        merge(
            &mut info.metadata,
            vec![KeyValue::new(INFO_FINALIZED_METADATA, "true")],
        );
        info.request_preview = info.request_preview.as_deref().map(preview);
        info.response_preview = info.response_preview.as_deref().map(preview);
        let now = now_millis();
        for a in &mut info.assessments {
            a.trace_id = info.trace_id.clone();
            if a.assessment_id.is_empty() {
                a.assessment_id = format!("a-{}", hex_id());
            }
            if a.create_time == 0 {
                a.create_time = now;
            }
            if a.last_update_time == 0 {
                a.last_update_time = a.create_time;
            }
        }
        self.store.start_trace(&info)?;
        self.get_trace_info(&info.trace_id)
    }

    /// MLflow 2's StartTrace: a new in-progress trace with a generated id.
    pub fn start_trace_v2(
        &self,
        experiment_id: &str,
        timestamp_ms: i64,
        metadata: Vec<KeyValue>,
        tags: Vec<KeyValue>,
    ) -> Result<TraceInfo> {
        self.start_trace(TraceInfo {
            trace_id: format!("{TRACE_ID_PREFIX}{}", hex_id()),
            experiment_id: experiment_id.to_string(),
            request_time: timestamp_ms,
            execution_duration: None,
            state: TraceState::InProgress,
            client_request_id: None,
            request_preview: None,
            response_preview: None,
            metadata,
            tags,
            assessments: Vec::new(),
        })
    }

    /// MLflow 2's EndTrace: the end time, final state and more metadata and tags.
    pub fn end_trace_v2(
        &self,
        trace_id: &str,
        timestamp_ms: i64,
        state: TraceState,
        metadata: Vec<KeyValue>,
        tags: Vec<KeyValue>,
    ) -> Result<TraceInfo> {
        let mut info = self.get_trace_info(trace_id)?;
        for tag in &tags {
            validate_tag(&tag.key, &tag.value)?;
        }
        info.execution_duration = Some((timestamp_ms - info.request_time).max(0));
        info.state = state;
        merge(&mut info.metadata, metadata);
        merge(&mut info.tags, tags);
        info.assessments.clear();
        self.store.start_trace(&info)?;
        self.get_trace_info(trace_id)
    }

    /// One trace's info.
    pub fn get_trace_info(&self, trace_id: &str) -> Result<TraceInfo> {
        self.store
            .get_trace_infos(&[trace_id.to_string()])?
            .into_iter()
            .next()
            .ok_or_else(|| not_found(trace_id))
    }

    /// Several traces' infos, in the order asked; unknown ids are left out.
    pub fn get_trace_infos(&self, trace_ids: &[String]) -> Result<Vec<TraceInfo>> {
        if trace_ids.len() > MAX_BATCH_GET {
            return Err(Error::invalid(format!(
                "At most {MAX_BATCH_GET} trace IDs may be requested at once; got {}",
                trace_ids.len()
            )));
        }
        let found = self.store.get_trace_infos(trace_ids)?;
        let mut by_id: BTreeMap<String, TraceInfo> =
            found.into_iter().map(|t| (t.trace_id.clone(), t)).collect();
        Ok(trace_ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }

    /// A trace with its spans (ordered by start time).
    pub fn get_trace(&self, trace_id: &str) -> Result<(TraceInfo, Vec<Span>)> {
        let info = self.get_trace_info(trace_id)?;
        let spans = self.store.get_spans(trace_id)?;
        Ok((info, spans))
    }

    /// Searches traces of `experiment_ids` with MLflow's trace filter grammar.
    pub fn search_traces(
        &self,
        experiment_ids: &[String],
        filter: &str,
        order_by: &[String],
        max_results: Option<u64>,
        page_token: &str,
    ) -> Result<Page<TraceInfo>> {
        if experiment_ids.is_empty() {
            return Err(Error::invalid(
                "At least one experiment (location) must be specified to search traces",
            ));
        }
        for id in experiment_ids {
            if id.parse::<i64>().is_err() {
                return Err(Error::invalid(format!("Invalid experiment ID '{id}'")));
            }
        }
        let max_results = match max_results {
            None | Some(0) => SEARCH_DEFAULT_MAX,
            Some(n) if n > SEARCH_MAX => {
                return Err(Error::invalid(format!(
                    "Invalid value {n} for parameter 'max_results' supplied. It must be at \
                     most {SEARCH_MAX}."
                )))
            }
            Some(n) => n,
        };
        let query = TraceQuery {
            experiment_ids: experiment_ids.to_vec(),
            filter: search::parse_filter(filter, Target::Traces)?,
            order_by: order_by
                .iter()
                .filter(|c| !c.trim().is_empty())
                .map(|c| search::parse_order_by(c, Target::Traces))
                .collect::<Result<_>>()?,
            max_results,
            offset: search::parse_page_token(page_token)?,
        };
        self.store.search_traces(&query)
    }

    /// Calls `each` with every trace `query` selects (its paging fields are ignored).
    fn each_trace(
        &self,
        query: &TraceQuery,
        mut each: impl FnMut(&TraceInfo) -> Result<()>,
    ) -> Result<()> {
        const PAGE: u64 = 10_000;
        let mut query = query.clone();
        query.max_results = PAGE;
        query.offset = 0;
        loop {
            let page = self.store.search_traces(&query)?;
            for info in &page.items {
                each(info)?;
            }
            match page.next_offset {
                Some(next) if !page.items.is_empty() => query.offset = next,
                _ => return Ok(()),
            }
        }
    }

    fn check_experiment_ids(experiment_ids: &[String]) -> Result<()> {
        if experiment_ids.is_empty() {
            return Err(Error::invalid(
                "Missing value for required parameter 'experiment_ids'.",
            ));
        }
        for id in experiment_ids {
            if id.parse::<i64>().is_err() {
                return Err(Error::invalid(format!("Invalid experiment ID '{id}'")));
            }
        }
        Ok(())
    }

    /// A metric of the traces, spans or assessments of some experiments, aggregated and
    /// grouped as MLflow's `traces/metrics` answers; `reader` reads the payloads.
    pub fn query_metrics(
        &self,
        request: &crate::trace_metrics::MetricsRequest,
        reader: &dyn crate::trace_metrics::PayloadReader,
    ) -> Result<Vec<crate::trace_metrics::MetricDataPoint>> {
        Self::check_experiment_ids(&request.experiment_ids)?;
        if request.aggregations.is_empty() {
            return Err(Error::invalid(
                "Missing value for required parameter 'aggregations'.",
            ));
        }
        let plan = crate::trace_metrics::plan(request)?;
        let mut aggregator = crate::trace_metrics::Aggregator::new(request, &plan, reader);
        self.each_trace(&plan.query, |info| {
            let spans = if plan.needs_spans {
                self.store.get_spans(&info.trace_id)?
            } else {
                Vec::new()
            };
            aggregator.add(info, &spans);
            Ok(())
        })?;
        Ok(aggregator.finish())
    }

    /// How two trace filters go together over the experiments' traces (or those matching
    /// `base_filter`): counts and normalised pointwise mutual information.
    pub fn filter_correlation(
        &self,
        experiment_ids: &[String],
        filter1: &str,
        filter2: &str,
        base_filter: Option<&str>,
    ) -> Result<crate::trace_metrics::FilterCorrelation> {
        Self::check_experiment_ids(experiment_ids)?;
        let base = crate::trace_metrics::trace_filter(base_filter.unwrap_or(""))?;
        let first = crate::trace_metrics::trace_filter(filter1)?;
        let second = crate::trace_metrics::trace_filter(filter2)?;
        let count = |parts: &[&[Comparison]]| -> Result<u64> {
            let query = TraceQuery {
                experiment_ids: experiment_ids.to_vec(),
                filter: parts.iter().flat_map(|p| p.iter().cloned()).collect(),
                order_by: vec![],
                max_results: 0,
                offset: 0,
            };
            let mut n = 0u64;
            self.each_trace(&query, |_| {
                n += 1;
                Ok(())
            })?;
            Ok(n)
        };
        let total = count(&[&base])?;
        let n1 = count(&[&base, &first])?;
        let n2 = count(&[&base, &second])?;
        let joint = count(&[&base, &first, &second])?;
        Ok(crate::trace_metrics::FilterCorrelation::from_counts(
            joint, n1, n2, total,
        ))
    }

    /// Sets a tag on a trace.
    pub fn set_tag(&self, trace_id: &str, key: &str, value: &str) -> Result<()> {
        validate_tag(key, value)?;
        let tag = KeyValue {
            key: key.into(),
            value: value.into(),
        };
        if self.store.set_trace_tag(trace_id, &tag)? {
            Ok(())
        } else {
            Err(not_found(trace_id))
        }
    }

    /// Deletes a tag from a trace.
    pub fn delete_tag(&self, trace_id: &str, key: &str) -> Result<()> {
        self.get_trace_info(trace_id)?;
        if self.store.delete_trace_tag(trace_id, key)? {
            Ok(())
        } else {
            Err(Error::not_found(format!(
                "No trace tag with key '{key}' for trace with ID '{trace_id}'"
            )))
        }
    }

    /// Deletes traces of an experiment, by id or by age; answers how many went.
    pub fn delete_traces(&self, experiment_id: &str, selection: TraceSelection) -> Result<u64> {
        if experiment_id.parse::<i64>().is_err() {
            return Err(Error::invalid(format!(
                "Invalid experiment ID '{experiment_id}'"
            )));
        }
        if let TraceSelection::Older {
            max_traces: Some(0),
            ..
        } = selection
        {
            return Err(Error::invalid(
                "Invalid value 0 for parameter 'max_traces' supplied: it must be positive",
            ));
        }
        self.store.delete_traces(experiment_id, &selection)
    }

    /// Links traces to a run (they then show in `search_traces(run_id=...)`). As in
    /// `mlflow server`, the run is not looked up (a trace may be linked before its run
    /// reaches this store).
    pub fn link_traces_to_run(&self, trace_ids: &[String], run_id: &str) -> Result<()> {
        if trace_ids.len() > MAX_LINKED_TRACES {
            return Err(Error::invalid(format!(
                "Cannot link more than {MAX_LINKED_TRACES} traces to a run in a single \
                 request. Provided {} traces.",
                trace_ids.len()
            )));
        }
        if run_id.is_empty() {
            return Err(Error::invalid(
                "A run ID is required to link traces to a run",
            ));
        }
        let found = self.store.get_trace_infos(trace_ids)?;
        if let Some(missing) = trace_ids
            .iter()
            .find(|id| !found.iter().any(|t| &t.trace_id == *id))
        {
            return Err(not_found(missing));
        }
        self.store.link_traces_to_run(trace_ids, run_id)
    }

    /// Records an assessment; a new one that `overrides` another marks that one invalid.
    pub fn create_assessment(&self, mut a: Assessment) -> Result<Assessment> {
        self.get_trace_info(&a.trace_id)?;
        if a.name.is_empty() {
            return Err(Error::invalid("An assessment must have a name"));
        }
        let now = now_millis();
        a.assessment_id = format!("a-{}", hex_id());
        if a.create_time == 0 {
            a.create_time = now;
        }
        a.last_update_time = a.create_time.max(now);
        a.valid = true;
        if let Some(old) = &a.overrides {
            let mut previous = self.get_assessment(&a.trace_id, old)?;
            previous.valid = false;
            self.store.put_assessment(&previous)?;
        }
        self.store.put_assessment(&a)?;
        Ok(a)
    }

    /// One assessment.
    pub fn get_assessment(&self, trace_id: &str, assessment_id: &str) -> Result<Assessment> {
        self.store
            .get_assessment(trace_id, assessment_id)?
            .ok_or_else(|| {
                Error::not_found(format!(
                    "Assessment with ID '{assessment_id}' not found for trace '{trace_id}'"
                ))
            })
    }

    /// Changes an assessment's name, value, rationale or metadata.
    pub fn update_assessment(
        &self,
        trace_id: &str,
        assessment_id: &str,
        update: AssessmentUpdate,
    ) -> Result<Assessment> {
        let mut a = self.get_assessment(trace_id, assessment_id)?;
        if let Some(name) = update.name {
            a.name = name;
        }
        if let Some((kind, payload)) = update.payload {
            if kind != a.kind {
                return Err(Error::invalid(format!(
                    "Cannot change an assessment from {} to {}",
                    a.kind.as_str(),
                    kind.as_str()
                )));
            }
            a.payload = payload;
        }
        if let Some(r) = update.rationale {
            a.rationale = Some(r);
        }
        if let Some(m) = update.metadata {
            a.metadata = Some(m);
        }
        a.last_update_time = now_millis();
        self.store.put_assessment(&a)?;
        Ok(a)
    }

    /// Deletes an assessment; one it overrode becomes valid again.
    pub fn delete_assessment(&self, trace_id: &str, assessment_id: &str) -> Result<()> {
        let a = self.get_assessment(trace_id, assessment_id)?;
        self.store.delete_assessment(trace_id, assessment_id)?;
        if let Some(old) = a.overrides {
            if let Some(mut previous) = self.store.get_assessment(trace_id, &old)? {
                previous.valid = true;
                self.store.put_assessment(&previous)?;
            }
        }
        Ok(())
    }
}

/// Adds `more` to `into`, a later value replacing an earlier one of the same key.
fn merge(into: &mut Vec<KeyValue>, more: Vec<KeyValue>) {
    for kv in more {
        match into.iter_mut().find(|t| t.key == kv.key) {
            Some(t) => t.value = kv.value,
            None => into.push(kv),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_are_checked() {
        assert!(validate_trace_id("tr-0123abcd").is_ok());
        for bad in ["", "tr-", "0123", "tr-../x", "tr-zz", "tr-12/34"] {
            assert!(validate_trace_id(bad).is_err(), "{bad}");
        }
        assert_eq!(trace_id_from_otel(&[0xab, 0x01]), "tr-ab01".to_string());
    }

    #[test]
    fn previews_are_cut_on_characters() {
        assert_eq!(preview("short"), "short");
        let long = "é".repeat(1500);
        let p = preview(&long);
        assert_eq!(p.chars().count(), PREVIEW_MAX_CHARS);
        assert!(p.ends_with("..."));
    }

    #[test]
    fn states_parse_both_spellings() {
        assert_eq!(TraceState::parse("OK").ok(), Some(TraceState::Ok));
        assert_eq!(
            TraceState::parse("TRACE_STATUS_UNSPECIFIED").ok(),
            Some(TraceState::Unspecified)
        );
        assert!(TraceState::parse("DONE").is_err());
    }
}
