"""MLflow 3's tracing through the real client against `cairn server`: spans exported through the
OTLP endpoint (the client checks the server's version first), traces searched by status, tag
and run, linked to a run, assessed with feedback and expectations, and deleted."""
import json
import os
import urllib.request

# Synchronous export: every trace is on the server when the traced call returns.
os.environ["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = "false"

import mlflow  # noqa: E402
from mlflow.entities import AssessmentSource, AssessmentSourceType  # noqa: E402

URI = os.environ["MLFLOW_TRACKING_URI"]
client = mlflow.MlflowClient()


def get(path):
    with urllib.request.urlopen(URI + path) as r:
        return json.load(r)


# The client gates span logging on the server's MLflow version.
with urllib.request.urlopen(URI + "/version") as r:
    assert r.read().decode().startswith("3."), "version gate"

experiment_id = mlflow.set_experiment("tracing-interop").experiment_id


@mlflow.trace(span_type="CHAIN")
def answer(question):
    with mlflow.start_span(name="retrieve", span_type="RETRIEVER") as span:
        span.set_inputs({"query": question})
        docs = ["cairn", "stones"]
        span.set_outputs(docs)
    with mlflow.start_span(name="generate", span_type="LLM") as span:
        span.set_inputs({"docs": docs})
        span.set_attribute("model", "tiny")
        reply = f"{question} -> {len(docs)} docs"
        span.set_outputs(reply)
    mlflow.update_current_trace(tags={"team": "search"})
    return reply


@mlflow.trace
def broken(x):
    with mlflow.start_span(name="inner"):
        raise ValueError(f"bad input {x}")


assert answer("what is a cairn") == "what is a cairn -> 2 docs"
ok_id = mlflow.get_last_active_trace_id()
try:
    broken(7)
except ValueError:
    pass
error_id = mlflow.get_last_active_trace_id()
with mlflow.start_run() as run:
    answer("inside a run")
    run_trace_id = mlflow.get_last_active_trace_id()

# Spans were stored through the OTLP endpoint: the server says so, and gives them back.
trace = client.get_trace(ok_id)
assert trace.info.tags.get("mlflow.trace.spansLocation") == "TRACKING_STORE", trace.info.tags
assert trace.info.state.value == "OK", trace.info.state
names = sorted(s.name for s in trace.data.spans)
assert names == ["answer", "generate", "retrieve"], names
by_name = {s.name: s for s in trace.data.spans}
root = by_name["answer"]
assert root.parent_id is None
assert by_name["retrieve"].parent_id == root.span_id
assert by_name["generate"].parent_id == root.span_id
assert by_name["retrieve"].inputs == {"query": "what is a cairn"}, by_name["retrieve"].inputs
assert by_name["retrieve"].outputs == ["cairn", "stones"]
assert by_name["generate"].attributes["model"] == "tiny"
assert by_name["generate"].span_type == "LLM"
assert root.inputs == {"question": "what is a cairn"}, root.inputs
assert "what is a cairn" in trace.info.request_preview, trace.info.request_preview
assert trace.info.tags["team"] == "search"
assert trace.info.execution_time_ms is not None and trace.info.execution_time_ms >= 0

# The exception is an ERROR state and an exception event on the span that raised it.
failed = client.get_trace(error_id)
assert failed.info.state.value == "ERROR", failed.info.state
inner = next(s for s in failed.data.spans if s.name == "inner")
assert inner.status.status_code.value == "ERROR", inner.status
assert any(e.name == "exception" for e in inner.events), inner.events
assert "bad input 7" in json.dumps([e.attributes for e in inner.events])

# Search by status, tag, run and text; ordering and paging.
ids = lambda traces: sorted(t.info.trace_id for t in traces)  # noqa: E731
by_status = mlflow.search_traces(
    locations=[experiment_id], filter_string="trace.status = 'ERROR'", return_type="list"
)
assert ids(by_status) == [error_id], ids(by_status)
by_tag = mlflow.search_traces(
    locations=[experiment_id], filter_string="tag.team = 'search'", return_type="list"
)
assert ids(by_tag) == sorted([ok_id, run_trace_id]), ids(by_tag)
by_run = mlflow.search_traces(
    locations=[experiment_id], run_id=run.info.run_id, return_type="list"
)
assert ids(by_run) == [run_trace_id], ids(by_run)
frame = mlflow.search_traces(locations=[experiment_id])
assert len(frame) == 3, frame
newest_first = client.search_traces(locations=[experiment_id], order_by=["timestamp_ms DESC"])
assert newest_first[0].info.trace_id == run_trace_id
page = client.search_traces(locations=[experiment_id], max_results=2)
assert len(page) == 2 and page.token, page
rest = client.search_traces(locations=[experiment_id], max_results=2, page_token=page.token)
assert len(rest) == 1 and not rest.token
assert ids(list(page) + list(rest)) == sorted([ok_id, error_id, run_trace_id])
by_span = client.search_traces(
    locations=[experiment_id], filter_string="span.name = 'inner'", include_spans=False
)
assert [t.info.trace_id for t in by_span] == [error_id]
try:
    client.search_traces(locations=[experiment_id], filter_string="trace.status >= 'OK'")
    raise AssertionError("a bad filter was accepted")
except mlflow.exceptions.MlflowException as e:
    assert e.error_code == "INVALID_PARAMETER_VALUE", e.error_code

# Linking a trace made outside any run to a run.
with mlflow.start_run() as other_run:
    pass
client.link_traces_to_run([ok_id], other_run.info.run_id)
linked = mlflow.search_traces(
    locations=[experiment_id], run_id=other_run.info.run_id, return_type="list"
)
assert ids(linked) == [ok_id], ids(linked)

# Tags set and deleted.
mlflow.set_trace_tag(ok_id, "reviewed", "yes")
assert client.get_trace(ok_id).info.tags["reviewed"] == "yes"
mlflow.delete_trace_tag(ok_id, "reviewed")
assert "reviewed" not in client.get_trace(ok_id).info.tags

# Assessments: feedback and an expectation, read back, updated, overridden, deleted.
human = AssessmentSource(source_type=AssessmentSourceType.HUMAN, source_id="ann@example.com")
feedback = mlflow.log_feedback(
    trace_id=ok_id, name="relevance", value=0.75, source=human, rationale="mostly on topic"
)
expectation = mlflow.log_expectation(
    trace_id=ok_id, name="expected_answer", value={"answer": "a pile of stones"}, source=human
)
got = mlflow.get_assessment(ok_id, feedback.assessment_id)
assert got.value == 0.75 and got.rationale == "mostly on topic", got
assert got.source.source_id == "ann@example.com"
assessed = client.get_trace(ok_id).info.assessments
by_aname = {a.name: a for a in assessed}
assert by_aname["relevance"].value == 0.75, assessed
assert by_aname["expected_answer"].value == {"answer": "a pile of stones"}, assessed
updated = mlflow.update_assessment(
    ok_id, feedback.assessment_id, mlflow.entities.Feedback(name="relevance", value=0.9)
)
assert mlflow.get_assessment(ok_id, feedback.assessment_id).value == 0.9, updated
override = mlflow.override_feedback(
    trace_id=ok_id, assessment_id=feedback.assessment_id, value=1.0, rationale="checked by hand"
)
assert mlflow.get_assessment(ok_id, feedback.assessment_id).valid is False
assert mlflow.get_assessment(ok_id, override.assessment_id).value == 1.0
# The trace as MLflow's UI downloads it (traces.json): MLflow's span dictionaries.
with urllib.request.urlopen(
    f"{mlflow.get_tracking_uri()}/ajax-api/3.0/mlflow/get-trace-artifact?request_id={ok_id}"
) as r:
    assert "traces.json" in r.headers["Content-Disposition"]
    dumped = json.loads(r.read())
names = sorted(sp["name"] for sp in dumped["spans"])
assert names == ["answer", "generate", "retrieve"], names
root = next(sp for sp in dumped["spans"] if sp["name"] == "answer")
assert root["parent_span_id"] is None and root["status"]["code"] == "STATUS_CODE_OK", root
assert root["attributes"]["mlflow.spanType"] == '"CHAIN"', root["attributes"]
from mlflow.entities import Span as MlflowSpan
assert MlflowSpan.from_dict(root).span_type == "CHAIN"

# Assessment filters in search: only valid assessments count (the overridden 0.9 does not).
by_feedback = client.search_traces(locations=[experiment_id],
                                   filter_string="feedback.relevance >= 1")
assert ids(by_feedback) == [ok_id], ids(by_feedback)
assert ids(client.search_traces(locations=[experiment_id],
                                filter_string="feedback.relevance < 0.95")) == []
assert ok_id in ids(client.search_traces(locations=[experiment_id],
                                         filter_string="expectation.expected_answer IS NOT NULL"))
assert ok_id not in ids(client.search_traces(locations=[experiment_id],
                                             filter_string="feedback.relevance IS NULL"))

# Trace analytics as the UI and TracingClient ask for them.
from mlflow.entities.trace_metrics import AggregationType, MetricAggregation, MetricViewType
from mlflow.tracing.client import TracingClient

tracing = TracingClient()
points = tracing.store.query_trace_metrics(
    experiment_ids=[experiment_id], view_type=MetricViewType.TRACES, metric_name="trace_count",
    aggregations=[MetricAggregation(AggregationType.COUNT)], dimensions=["trace_status"])
by_state = {p.dimensions["trace_status"]: p.values["COUNT"] for p in points}
assert by_state.get("ERROR") == 1 and sum(by_state.values()) == 3, by_state
latency = tracing.store.query_trace_metrics(
    experiment_ids=[experiment_id], view_type=MetricViewType.SPANS, metric_name="latency",
    aggregations=[MetricAggregation(AggregationType.MAX),
                  MetricAggregation(AggregationType.PERCENTILE, percentile_value=50.0)],
    dimensions=["span_name"])
assert {p.dimensions["span_name"] for p in latency} >= {"answer", "broken"}, latency
assert all(p.values["MAX"] >= p.values["P50.0"] >= 0 for p in latency), latency
scores = tracing.store.query_trace_metrics(
    experiment_ids=[experiment_id], view_type=MetricViewType.ASSESSMENTS,
    metric_name="assessment_value", aggregations=[MetricAggregation(AggregationType.AVG)],
    dimensions=["assessment_name"], filters=["assessment.type = 'feedback'"])
assert [(p.dimensions, p.values) for p in scores] == [
    ({"assessment_name": "relevance"}, {"AVG": 1.0})], scores
apart = tracing.calculate_trace_filter_correlation(
    experiment_ids=[experiment_id], filter_string1="trace.status = 'ERROR'",
    filter_string2="trace.status = 'OK'")
assert (apart.joint_count, apart.total_count, apart.npmi) == (0, 3, -1.0), apart
together = tracing.calculate_trace_filter_correlation(
    experiment_ids=[experiment_id], filter_string1="feedback.relevance >= 1",
    filter_string2="trace.status = 'OK'")
assert together.joint_count == 1 and together.npmi > 0, together

mlflow.delete_assessment(ok_id, expectation.assessment_id)
left = {a.name for a in client.get_trace(ok_id).info.assessments}
assert "expected_answer" not in left, left

# Deleting traces by id and by age.
assert client.delete_traces(experiment_id, trace_ids=[error_id]) == 1
remaining = ids(client.search_traces(locations=[experiment_id]))
assert error_id not in remaining and len(remaining) == 2, remaining
try:
    client.get_trace(error_id)
    raise AssertionError("a deleted trace was returned")
except mlflow.exceptions.MlflowException as e:
    assert e.error_code == "RESOURCE_DOES_NOT_EXIST", e.error_code
newest = max(t.info.request_time for t in client.search_traces(locations=[experiment_id]))
assert client.delete_traces(experiment_id, max_timestamp_millis=newest, max_traces=1) == 1
assert len(client.search_traces(locations=[experiment_id])) == 1

# Evaluation datasets: created in the experiment, records merged (the same inputs update),
# read back as a DataFrame, searched, tagged, deleted.
from mlflow.genai.datasets import create_dataset, delete_dataset, get_dataset, search_datasets  # noqa: E402

ds = create_dataset(name="qa", experiment_id=[experiment_id], tags={"team": "search"})
ds.merge_records([
    {"inputs": {"question": "what is a cairn"}, "expectations": {"answer": "a pile of stones"}},
    {"inputs": {"question": "why build one"}, "expectations": {"answer": "to mark a path"},
     "tags": {"difficulty": "easy"}},
])
ds.merge_records([
    {"inputs": {"question": "what is a cairn"}, "expectations": {"answer": "stacked stones"}},
])
frame = get_dataset(dataset_id=ds.dataset_id).to_df()
assert len(frame) == 2, frame
answers = {r["inputs"]["question"]: r["expectations"]["answer"] for _, r in frame.iterrows()}
assert answers == {"what is a cairn": "stacked stones", "why build one": "to mark a path"}, answers
assert get_dataset(dataset_id=ds.dataset_id).tags["team"] == "search"
found = search_datasets(experiment_ids=[experiment_id])
assert [d.dataset_id for d in found] == [ds.dataset_id], found
assert search_datasets(experiment_ids=[experiment_id], filter_string="name = 'other'") == []
delete_dataset(dataset_id=ds.dataset_id)
assert search_datasets(experiment_ids=[experiment_id]) == []

# Scorers: a built-in judge registered twice (two versions), listed, fetched, deleted; a
# scorer carrying its own code is refused, as `mlflow server` refuses it.
from mlflow.genai.scorers import RelevanceToQuery, delete_scorer, get_scorer, list_scorers, scorer  # noqa: E402

RelevanceToQuery().register(name="relevance", experiment_id=experiment_id)
RelevanceToQuery().register(name="relevance", experiment_id=experiment_id)
listed = list_scorers(experiment_id=experiment_id)
assert [s.name for s in listed] == ["relevance"], listed
assert get_scorer(name="relevance", experiment_id=experiment_id).name == "relevance"
versions = client._tracking_client.store.list_scorer_versions(experiment_id, "relevance")
assert [v.scorer_version for v in versions] == [1, 2], versions


@scorer
def short(outputs) -> bool:
    return len(str(outputs)) < 100


try:
    short.register(name="short", experiment_id=experiment_id)
    raise AssertionError("a scorer with code was registered")
except mlflow.exceptions.MlflowException as e:
    assert e.error_code == "INVALID_PARAMETER_VALUE", e.error_code
delete_scorer(name="relevance", experiment_id=experiment_id, version="all")
assert list_scorers(experiment_id=experiment_id) == []

# Issues found while evaluating: created, read, updated, searched (the client's calls
# that `mlflow.genai` uses: TracingClient and its store).
from mlflow.entities.issue import IssueSeverity, IssueStatus  # noqa: E402
from mlflow.tracing.client import TracingClient  # noqa: E402

tc = TracingClient()
issue = tc._create_issue(
    experiment_id=experiment_id, name="off-topic answers", description="drifts to geology",
    severity=IssueSeverity.MEDIUM, root_causes=["retriever returns rocks"],
    source_run_id=run.info.run_id, categories=["relevance"],
)
assert issue.issue_id.startswith("iss-") and issue.status == IssueStatus.PENDING, issue
got = tc._get_issue(issue.issue_id)
assert got.root_causes == ["retriever returns rocks"] and got.categories == ["relevance"], got
tc._create_issue(experiment_id=experiment_id, name="slow", description="p99 over 2 s")
tc.store.update_issue(issue.issue_id, status=IssueStatus.RESOLVED, severity=IssueSeverity.LOW)
resolved = tc.store.search_issues(experiment_id=experiment_id, filter_string="status = 'resolved'")
assert [i.issue_id for i in resolved] == [issue.issue_id], resolved
assert resolved[0].severity == IssueSeverity.LOW
assert len(tc.store.search_issues(experiment_id=experiment_id)) == 2

print(json.dumps({"ok": True}))
