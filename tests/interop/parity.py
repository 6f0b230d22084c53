"""Answer parity with `mlflow server` 3.17.2: the same requests to Cairn and to a real MLflow
server started here, compared side by side (status, error_code, error_class, sqlstate, the
message where MLflow's is fixed text, and the JSON shape of successful answers).

Run by crates/cairn/tests/mlflow_interop.rs with MLFLOW_TRACKING_URI pointing at a fresh
Cairn server. Prints one line per difference and exits non-zero if any; prints
{"ok": true, ...} when every case matches (or differs only where the case says Cairn is
deliberately stricter, and why).
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mlflow(work):
    port = free_port()
    log = open(os.path.join(work, "mlflow.log"), "w")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "mlflow", "server",
            "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", f"sqlite:///{work}/mlflow.db",
            "--artifacts-destination", f"{work}/artifacts",
            "--workers", "1",
        ],
        stdout=log, stderr=subprocess.STDOUT, cwd=work,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 240
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"mlflow server exited: {open(log.name).read()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("mlflow server did not start in 240 s")


def call(base, method, path, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    try:
        return status, json.loads(text), text
    except ValueError:
        return status, None, text


def merge(a, b):
    """The union of two shapes (the keys either has), for the items of one list."""
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: merge(a[k], b[k]) if k in a and k in b else a.get(k, b.get(k))
                for k in sorted(set(a) | set(b))}
    if isinstance(a, list) and isinstance(b, list):
        return [merge(a[0], b[0])] if a and b else a or b
    return a if a == b else f"{a}|{b}"


def shape(v):
    """A JSON value's shape: keys and value kinds; a list's items merged into one shape, so
    the order of items does not matter."""
    if isinstance(v, dict):
        return {k: shape(x) for k, x in sorted(v.items())}
    if isinstance(v, list):
        shapes = [shape(x) for x in v]
        if not shapes:
            return []
        out = shapes[0]
        for x in shapes[1:]:
            out = merge(out, x)
        return [out]
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if v is None:
        return "null"
    return "str"


def setup(base):
    """The same starting state on each server; returns the ids to fill into cases."""
    _, exp, _ = call(base, "POST", "/api/2.0/mlflow/experiments/create", {"name": "parity"})
    exp = exp["experiment_id"]
    _, run, _ = call(base, "POST", "/api/2.0/mlflow/runs/create",
                     {"experiment_id": exp, "run_name": "r", "start_time": 1700000000000})
    run = run["run"]["info"]["run_id"]
    call(base, "POST", "/api/2.0/mlflow/runs/log-batch", {
        "run_id": run,
        "metrics": [{"key": "loss", "value": 0.5, "timestamp": 1700000000000, "step": s}
                    for s in range(3)],
        "params": [{"key": "lr", "value": "0.1"}],
        "tags": [{"key": "team", "value": "ml"}],
    })
    call(base, "POST", "/api/2.0/mlflow/runs/log-inputs", {"run_id": run, "datasets": [
        {"dataset": {"name": "train", "digest": "abc123", "source_type": "local",
                     "source": "train.csv"},
         "tags": [{"key": "mlflow.data.context", "value": "training"}]},
        {"dataset": {"name": "holdout", "digest": "def456", "source_type": "local",
                     "source": "holdout.csv"}},
    ]})
    call(base, "POST", "/api/2.0/mlflow/registered-models/create", {"name": "parity-model"})
    # A trace: its spans through OTLP (JSON), then its info as the client sends it.
    status, _, text = call(base, "POST", "/v1/traces", OTLP_SPANS,
                           {"x-mlflow-experiment-id": exp})
    assert status == 200, (base, status, text)
    status, _, text = call(base, "POST", "/api/3.0/mlflow/traces", {"trace": {"trace_info": {
        "trace_id": TRACE, "trace_location": {"type": "MLFLOW_EXPERIMENT",
                                              "mlflow_experiment": {"experiment_id": exp}},
        "request_time": "2025-04-15T08:49:18.699Z", "execution_duration": "0.250s",
        "state": "OK", "request_preview": "{\"q\": 1}", "response_preview": "2",
        "trace_metadata": {"mlflow.sourceRun": run}, "tags": {"team": "ml"}}}})
    assert status == 200, (base, status, text)
    return {"exp": exp, "run": run, "trace": TRACE, "mexp": setup_metrics(base)}


def setup_metrics(base):
    """An experiment of three traces with names, sessions, token usage, an LLM span with its
    model and cost, and feedback: what trace metrics and filter correlation read."""
    _, exp, _ = call(base, "POST", "/api/2.0/mlflow/experiments/create",
                     {"name": "parity-metrics"})
    exp = exp["experiment_id"]
    status, _, text = call(base, "POST", "/v1/traces", METRIC_SPANS,
                           {"x-mlflow-experiment-id": exp})
    assert status == 200, (base, status, text)
    usage = lambda i, o: json.dumps({"input_tokens": i, "output_tokens": o,
                                     "total_tokens": i + o})
    traces = [
        (METRIC_TRACES[0], "2025-04-15T08:49:18.699Z", "0.250s", "OK", "answer", "s1",
         usage(10, 5)),
        (METRIC_TRACES[1], "2025-04-15T09:10:00Z", "1.500s", "ERROR", "answer", "s1",
         usage(20, 7)),
        (METRIC_TRACES[2], "2025-04-15T10:30:00.250Z", "0.750s", "OK", "search", "s2", None),
    ]
    for trace, at, took, state, name, session, tokens in traces:
        metadata = {"mlflow.trace.session": session}
        if tokens:
            metadata["mlflow.trace.tokenUsage"] = tokens
        status, _, text = call(base, "POST", "/api/3.0/mlflow/traces", {"trace": {"trace_info": {
            "trace_id": trace, "trace_location": {"type": "MLFLOW_EXPERIMENT",
                                                  "mlflow_experiment": {"experiment_id": exp}},
            "request_time": at, "execution_duration": took, "state": state,
            "trace_metadata": metadata, "tags": {"mlflow.traceName": name}}}})
        assert status == 200, (base, status, text)
    for trace, name, value in [(METRIC_TRACES[0], "relevance", 0.5),
                               (METRIC_TRACES[1], "relevance", 1.0),
                               (METRIC_TRACES[0], "correct", True),
                               (METRIC_TRACES[2], "correct", "no")]:
        status, _, text = call(base, "POST", f"/api/3.0/mlflow/traces/{trace}/assessments",
                               {"assessment": {"assessment_name": name, "trace_id": trace,
                                               "source": {"source_type": "HUMAN",
                                                          "source_id": "ann"},
                                               "feedback": {"value": value}}})
        assert status == 200, (base, status, text)
    status, _, text = call(base, "POST", f"/api/3.0/mlflow/traces/{METRIC_TRACES[0]}/assessments",
                           {"assessment": {"assessment_name": "answer",
                                           "trace_id": METRIC_TRACES[0],
                                           "source": {"source_type": "HUMAN", "source_id": "ann"},
                                           "expectation": {"value": "42"}}})
    assert status == 200, (base, status, text)
    return exp


METRIC_TRACES = ["tr-" + c * 32 for c in "bcd"]
METRIC_SPANS = {"resourceSpans": [{"scopeSpans": [{"spans": [
    {"traceId": "b" * 32, "spanId": "00000000000000c1", "name": "root",
     "startTimeUnixNano": "1744706958699000000", "endTimeUnixNano": "1744706958949000000",
     "attributes": [{"key": "mlflow.spanType", "value": {"stringValue": "CHAIN"}}],
     "status": {"code": 1}},
    {"traceId": "b" * 32, "spanId": "00000000000000c2", "parentSpanId": "00000000000000c1",
     "name": "llm", "startTimeUnixNano": "1744706958700000000",
     "endTimeUnixNano": "1744706958830000000", "status": {"code": 2},
     "attributes": [
         {"key": "mlflow.spanType", "value": {"stringValue": "LLM"}},
         {"key": "mlflow.llm.model", "value": {"stringValue": "\"gpt-4o\""}},
         {"key": "mlflow.llm.provider", "value": {"stringValue": "\"openai\""}},
         {"key": "mlflow.llm.cost", "value": {"stringValue":
             "{\"input_cost\": 0.25, \"output_cost\": 0.5, \"total_cost\": 0.75}"}}]}]}]}]}


def metrics(exp, view, metric, aggregations, **more):
    """A `traces/metrics` body."""
    return {"experiment_ids": [exp], "view_type": view, "metric_name": metric,
            "aggregations": [{"aggregation_type": a} if isinstance(a, str) else
                             {"aggregation_type": "PERCENTILE", "percentile_value": a}
                             for a in aggregations], **more}


def trace_search(exp, filter_string):
    """A v3 trace search body over one experiment."""
    return {"locations": [{"type": "MLFLOW_EXPERIMENT",
                           "mlflow_experiment": {"experiment_id": exp}}],
            "filter": filter_string}


METRICS = "/api/3.0/mlflow/traces/metrics"
CORRELATION = "/api/3.0/mlflow/traces/calculate-filter-correlation"


TRACE = "tr-" + "5a" * 16
OTLP_SPANS = {"resourceSpans": [{"resource": {"attributes": [
    {"key": "service.name", "value": {"stringValue": "parity"}}]},
    "scopeSpans": [{"spans": [
        {"traceId": "5a" * 16, "spanId": "00000000000000a1", "name": "root",
         "startTimeUnixNano": "1744706958699000000", "endTimeUnixNano": "1744706958949000000",
         "attributes": [{"key": "mlflow.spanInputs", "value": {"stringValue": "{\"q\": 1}"}},
                        {"key": "mlflow.spanType", "value": {"stringValue": "\"CHAIN\""}}],
         "status": {"code": 1}},
        {"traceId": "5a" * 16, "spanId": "00000000000000b1", "parentSpanId": "00000000000000a1",
         "name": "child", "startTimeUnixNano": "1744706958700000000",
         "endTimeUnixNano": "1744706958800000000", "status": {"code": 1}}]}]}]}


def fill(value, ids):
    if isinstance(value, str):
        try:
            return value.format(**ids)
        except (KeyError, ValueError, IndexError):
            return value  # JSON text inside a body, not a template
    if isinstance(value, dict):
        return {k: fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, ids) for v in value]
    return value


# (label, method, path, body, compare the message too, deliberately different: why)
CASES = [
    ("version", "GET", "/version", None, True, None),
    ("server info", "GET", "/api/3.0/mlflow/server-info", None, False, None),
    ("experiment name is a number", "POST", "/api/2.0/mlflow/experiments/create",
     {"name": 123}, True, None),
    ("experiment name is a bool", "POST", "/api/2.0/mlflow/experiments/create",
     {"name": True}, True, None),
    ("experiment name is a list", "POST", "/api/2.0/mlflow/experiments/create",
     {"name": ["a"]}, False, None),
    ("experiment name missing", "POST", "/api/2.0/mlflow/experiments/create", {}, True, None),
    ("experiment exists", "POST", "/api/2.0/mlflow/experiments/create",
     {"name": "parity"}, False, None),
    ("unknown experiment", "GET", "/api/2.0/mlflow/experiments/get?experiment_id=987654",
     None, True, None),
    ("experiment by name", "GET", "/api/2.0/mlflow/experiments/get-by-name?experiment_name=parity",
     None, False, None),
    ("experiment id is a number", "POST", "/api/2.0/mlflow/runs/create",
     {"experiment_id": 1}, True, None),
    ("log-batch run_id is a number", "POST", "/api/2.0/mlflow/runs/log-batch",
     {"run_id": 12, "metrics": []}, True, None),
    ("log-batch metrics is a string", "POST", "/api/2.0/mlflow/runs/log-batch",
     {"run_id": "{run}", "metrics": "zzz"}, True, None),
    ("log-batch to an unknown run", "POST", "/api/2.0/mlflow/runs/log-batch",
     {"run_id": "0123456789abcdef0123456789abcdef", "metrics": []}, True, None),
    ("unknown run", "GET", "/api/2.0/mlflow/runs/get?run_id=0123456789abcdef0123456789abcdef",
     None, True, None),
    ("run", "GET", "/api/2.0/mlflow/runs/get?run_id={run}", None, False, None),
    ("tag value is a number", "POST", "/api/2.0/mlflow/runs/set-tag",
     {"run_id": "{run}", "key": "k", "value": 5}, True, None),
    ("param value is a bool", "POST", "/api/2.0/mlflow/runs/log-parameter",
     {"run_id": "{run}", "key": "k", "value": True}, True, None),
    ("metric value is text", "POST", "/api/2.0/mlflow/runs/log-metric",
     {"run_id": "{run}", "key": "k", "value": "x", "timestamp": 1}, True, None),
    ("metric timestamp is text", "POST", "/api/2.0/mlflow/runs/log-metric",
     {"run_id": "{run}", "key": "k", "value": 1, "timestamp": "noon"}, True, None),
    ("max_results is text", "POST", "/api/2.0/mlflow/runs/search",
     {"experiment_ids": ["{exp}"], "max_results": "abc"}, True, None),
    ("run search", "POST", "/api/2.0/mlflow/runs/search",
     {"experiment_ids": ["{exp}"]}, False, None),
    ("metric history", "GET", "/api/2.0/mlflow/metrics/get-history?run_id={run}&metric_key=loss",
     None, False, None),
    ("metric history in bulk", "GET",
     "/ajax-api/2.0/mlflow/metrics/get-history-bulk?run_id={run}&run_id=0123456789abcdef0123456789abcdef&metric_key=loss",
     None, False, None),
    ("bulk history without a key", "GET",
     "/ajax-api/2.0/mlflow/metrics/get-history-bulk?run_id={run}", None, True, None),
    ("bulk history without runs", "GET",
     "/ajax-api/2.0/mlflow/metrics/get-history-bulk?metric_key=loss", None, True, None),
    ("datasets of an experiment", "POST", "/ajax-api/2.0/mlflow/experiments/search-datasets",
     {"experiment_ids": ["{exp}"]}, False, None),
    ("datasets of no experiment", "POST", "/ajax-api/2.0/mlflow/experiments/search-datasets",
     {}, True, None),
    ("datasets of a bad experiment id", "POST",
     "/ajax-api/2.0/mlflow/experiments/search-datasets", {"experiment_ids": ["abc"]}, True, None),
    ("model exists", "POST", "/api/2.0/mlflow/registered-models/create",
     {"name": "parity-model"}, False, None),
    ("unknown model", "GET", "/api/2.0/mlflow/registered-models/get?name=nope",
     None, False, None),
    ("version of an unknown run", "POST", "/api/2.0/mlflow/model-versions/create",
     {"name": "parity-model", "source": "s3://bucket/m",
      "run_id": "0123456789abcdef0123456789abcdef"}, False, None),
    ("version without a run", "POST", "/api/2.0/mlflow/model-versions/create",
     {"name": "parity-model", "source": "s3://bucket/m2"}, False, None),
    ("model search", "GET", "/api/2.0/mlflow/registered-models/search", None, False, None),
    ("trace info", "GET", "/api/3.0/mlflow/traces/{trace}", None, False, None),
    ("trace info v2", "GET", "/api/2.0/mlflow/traces/{trace}/info", None, False, None),
    ("trace with spans", "GET", "/api/3.0/mlflow/traces/get?trace_id={trace}", None, False,
     None),
    ("trace as traces.json", "GET", "/ajax-api/3.0/mlflow/get-trace-artifact?request_id={trace}",
     None, False, None),
    ("traces.json without an id", "GET", "/ajax-api/3.0/mlflow/get-trace-artifact", None, True,
     None),
    ("traces.json of an unknown trace", "GET",
     "/ajax-api/2.0/mlflow/get-trace-artifact?request_id=tr-00000000000000000000000000000000",
     None, False, None),
    ("unknown trace", "GET", "/api/3.0/mlflow/traces/tr-00000000000000000000000000000000",
     None, False, None),
    ("trace search", "POST", "/api/3.0/mlflow/traces/search",
     {"locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": "{exp}"}}],
      "filter": "trace.status = 'OK'"}, False, None),
    ("trace search by run", "POST", "/api/3.0/mlflow/traces/search",
     {"locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": "{exp}"}}],
      "filter": "attribute.run_id = '{run}'"}, False, None),
    ("trace search, bad filter", "POST", "/api/3.0/mlflow/traces/search",
     {"locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": "{exp}"}}],
      "filter": "trace.status >= 'OK'"}, False, None),
    ("trace search v2", "GET", "/api/2.0/mlflow/traces?experiment_ids={exp}", None, False, None),
    ("trace search, nothing found", "POST", "/api/3.0/mlflow/traces/search",
     {"locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": "{exp}"}}],
      "filter": "tag.nobody = 'x'"}, False, None),
    ("tag on an unknown trace", "PATCH",
     "/api/2.0/mlflow/traces/tr-00000000000000000000000000000000/tags",
     {"key": "k", "value": "v"}, False,
     "MLflow answers 400 BAD_REQUEST carrying the database's raw integrity error (SQL text "
     "and all); Cairn answers 404 RESOURCE_DOES_NOT_EXIST naming the trace"),
    ("trace tag", "PATCH", "/api/2.0/mlflow/traces/{trace}/tags", {"key": "k", "value": "v"},
     False, None),
    ("delete traces without a selection", "POST", "/api/2.0/mlflow/traces/delete-traces",
     {"experiment_id": "{exp}"}, True, None),
    ("delete traces with both selections", "POST", "/api/2.0/mlflow/traces/delete-traces",
     {"experiment_id": "{exp}", "max_timestamp_millis": 1, "request_ids": ["tr-1"]}, True,
     None),
    ("feedback", "POST", "/api/3.0/mlflow/traces/{trace}/assessments",
     {"assessment": {"assessment_name": "relevance", "trace_id": "{trace}",
                     "source": {"source_type": "HUMAN", "source_id": "ann"},
                     "feedback": {"value": 0.5}, "rationale": "ok"}}, False, None),
    ("unknown assessment", "GET", "/api/3.0/mlflow/traces/{trace}/assessments/a-0000", None,
     False, None),
    ("link to an unknown run", "POST", "/api/2.0/mlflow/traces/link-to-run",
     {"trace_ids": ["{trace}"], "run_id": "0123456789abcdef0123456789abcdef"}, False, None),
    ("spans without an experiment header", "POST", "/v1/traces", OTLP_SPANS, False, None),
    ("evaluation dataset", "POST", "/api/3.0/mlflow/datasets/create",
     {"name": "qa", "experiment_ids": ["{exp}"], "tags": "{\"team\": \"ml\"}"}, False, None),
    ("unknown evaluation dataset", "GET", "/api/3.0/mlflow/datasets/d-0000", None, False, None),
    ("records of an unknown dataset", "POST", "/api/3.0/mlflow/datasets/d-0000/records",
     {"records": "[]"}, False, None),
    ("dataset search", "POST", "/api/3.0/mlflow/datasets/search",
     {"experiment_ids": ["{exp}"], "filter_string": "name = 'qa'"}, False, None),
    ("unknown scorer", "GET", "/api/3.0/mlflow/scorers/get?experiment_id={exp}&name=nope", None,
     False, None),
    ("scorers of an experiment", "GET", "/api/3.0/mlflow/scorers/list?experiment_id={exp}",
     None, False, None),
    ("scorer with code", "POST", "/api/3.0/mlflow/scorers/register",
     {"experiment_id": "{exp}", "name": "mine",
      "serialized_scorer": "{\"name\": \"mine\", \"call_source\": \"return True\"}"},
     True, None),
    ("issue", "POST", "/api/3.0/mlflow/issues",
     {"experiment_id": "{exp}", "name": "slow", "description": "p99 over 2 s",
      "status": "pending", "categories": ["latency"]}, False, None),
    ("unknown issue", "GET", "/api/3.0/mlflow/issues/iss-0000", None, False, None),
    ("issue search, bad filter", "POST", "/api/3.0/mlflow/issues/search",
     {"experiment_id": "{exp}", "filter_string": "name = 'slow'"}, False, None),
    # Trace analytics: the answers themselves must be equal ("exact").
    ("trace count by status", "POST", METRICS,
     metrics("{mexp}", "TRACES", "trace_count", ["COUNT"], dimensions=["trace_status"]),
     "exact", None),
    ("trace latency by name", "POST", METRICS,
     metrics("{mexp}", "TRACES", "latency", ["AVG", "MIN", "MAX", 50, 90.5],
             dimensions=["trace_name"]), "exact", None),
    ("tokens", "POST", METRICS,
     metrics("{mexp}", "TRACES", "total_tokens", ["SUM", "AVG", 50]), "exact", None),
    ("sessions", "POST", METRICS,
     metrics("{mexp}", "TRACES", "session_count", ["COUNT"]), "exact", None),
    ("traces per hour", "POST", METRICS,
     metrics("{mexp}", "TRACES", "trace_count", ["COUNT"], time_interval_seconds=3600,
             start_time_ms=1744700000000, end_time_ms=1744720000000), "exact", None),
    ("traces in a window, filtered", "POST", METRICS,
     metrics("{mexp}", "TRACES", "trace_count", ["COUNT"], start_time_ms=1744706958699,
             end_time_ms=1744711200000, filters=["trace.status = 'OK'"]), "exact", None),
    ("traces by name tag", "POST", METRICS,
     metrics("{mexp}", "TRACES", "latency", ["MAX"],
             filters=["trace.tag.mlflow.traceName = 'answer'"]), "exact", None),
    ("nothing to count", "POST", METRICS,
     metrics("{mexp}", "TRACES", "trace_count", ["COUNT"], filters=["trace.status = 'nope'"]),
     "exact", None),
    ("nothing to average", "POST", METRICS,
     metrics("{mexp}", "TRACES", "latency", ["AVG"], filters=["trace.status = 'nope'"]),
     "exact", None),
    ("spans by name and type", "POST", METRICS,
     metrics("{mexp}", "SPANS", "span_count", ["COUNT"], dimensions=["span_name", "span_type"]),
     "exact", None),
    ("span latency of LLM spans", "POST", METRICS,
     metrics("{mexp}", "SPANS", "latency", ["AVG", "MAX"], dimensions=["span_status"],
             filters=["span.type = 'LLM'"]), "exact", None),
    ("span cost by model", "POST", METRICS,
     metrics("{mexp}", "SPANS", "total_cost", ["SUM"],
             dimensions=["span_model_name", "span_model_provider"]), "exact", None),
    ("assessments by name and value", "POST", METRICS,
     metrics("{mexp}", "ASSESSMENTS", "assessment_count", ["COUNT"],
             dimensions=["assessment_name", "assessment_value"]), "exact", None),
    ("assessment values", "POST", METRICS,
     metrics("{mexp}", "ASSESSMENTS", "assessment_value", ["AVG", "MIN", 50],
             dimensions=["assessment_name"], filters=["assessment.type = 'feedback'"]),
     "exact", None),
    ("unknown metric", "POST", METRICS,
     metrics("{mexp}", "TRACES", "cost", ["COUNT"]), True, None),
    ("aggregation a metric lacks", "POST", METRICS,
     metrics("{mexp}", "TRACES", "trace_count", ["AVG", "SUM"]), True, None),
    ("dimension a metric lacks", "POST", METRICS,
     metrics("{mexp}", "TRACES", "latency", ["AVG"], dimensions=["span_name"]), True, None),
    ("buckets without a window", "POST", METRICS,
     metrics("{mexp}", "TRACES", "trace_count", ["COUNT"], time_interval_seconds=60), True,
     None),
    ("span filter on traces", "POST", METRICS,
     metrics("{mexp}", "TRACES", "trace_count", ["COUNT"], filters=["span.name = 'llm'"]),
     True, None),
    ("filter with a key it lacks", "POST", METRICS,
     metrics("{mexp}", "TRACES", "trace_count", ["COUNT"], filters=["trace.tag = 'x'"]),
     True, None),
    ("feedback above a number", "POST", "/api/3.0/mlflow/traces/search",
     trace_search("{mexp}", "feedback.relevance > 0.6"), "trace_ids", None),
    ("feedback equal to a text", "POST", "/api/3.0/mlflow/traces/search",
     trace_search("{mexp}", "feedback.correct = 'no'"), "trace_ids", None),
    ("feedback equal to a boolean", "POST", "/api/3.0/mlflow/traces/search",
     trace_search("{mexp}", "feedback.correct = 'true'"), "trace_ids", None),
    ("feedback not equal", "POST", "/api/3.0/mlflow/traces/search",
     trace_search("{mexp}", "feedback.correct != 'no'"), "trace_ids", None),
    ("feedback pattern", "POST", "/api/3.0/mlflow/traces/search",
     trace_search("{mexp}", "feedback.relevance LIKE '0.%'"), "trace_ids", None),
    ("no such feedback", "POST", "/api/3.0/mlflow/traces/search",
     trace_search("{mexp}", "feedback.relevance IS NULL"), "trace_ids", None),
    ("some expectation", "POST", "/api/3.0/mlflow/traces/search",
     trace_search("{mexp}", "expectation.answer IS NOT NULL AND trace.status = 'OK'"),
     "trace_ids", None),
    ("feedback ordered against text", "POST", "/api/3.0/mlflow/traces/search",
     trace_search("{mexp}", "feedback.relevance > 'high'"), False, None),
    ("filter correlation", "POST", CORRELATION,
     {"experiment_ids": ["{mexp}"], "filter_string1": "trace.status = 'OK'",
      "filter_string2": "tag.`mlflow.traceName` = 'answer'"}, "exact", None),
    ("filter correlation on a base", "POST", CORRELATION,
     {"experiment_ids": ["{mexp}"], "filter_string1": "trace.status = 'ERROR'",
      "filter_string2": "trace.execution_time_ms > 1000",
      "base_filter": "trace.timestamp_ms > 1744706958699"}, "exact", None),
    ("filter correlation, one never matches", "POST", CORRELATION,
     {"experiment_ids": ["{mexp}"], "filter_string1": "trace.status = 'IN_PROGRESS'",
      "filter_string2": "trace.status = 'OK'"}, "exact", None),
    ("filter correlation, bad filter", "POST", CORRELATION,
     {"experiment_ids": ["{mexp}"], "filter_string1": "trace.status >= 'OK'",
      "filter_string2": "trace.status = 'OK'"}, False, None),
    ("relative artifact location", "POST", "/api/2.0/mlflow/experiments/create",
     {"name": "local-place", "artifact_location": "relative/dir"}, False,
     "a path on the server's own disk: MLflow stores it (the CVE-2023-1177 family of file "
     "reads); Cairn refuses it with 400 INVALID_PARAMETER_VALUE"),
]


def compare(label, a, b, same_message):
    """Differences between Cairn's answer `a` and MLflow's `b`."""
    (sa, ja, ta), (sb, jb, tb) = a, b
    out = []
    if sa != sb:
        out.append(f"status {sa} vs MLflow {sb}")
    if ja is None or jb is None:
        if jb is None and ja is None and same_message and ta.strip() != tb.strip():
            out.append(f"text {ta!r} vs MLflow {tb!r}")
        return out
    if sb >= 400:
        for key in ("error_code", "error_class", "sqlstate"):
            if ja.get(key) != jb.get(key):
                out.append(f"{key} {ja.get(key)!r} vs MLflow {jb.get(key)!r}")
        if same_message is True and ja.get("message") != jb.get("message"):
            out.append(f"message {ja.get('message')!r} vs MLflow {jb.get('message')!r}")
    elif same_message == "trace_ids":
        found = lambda j: sorted(t["trace_id"] for t in j.get("traces", []))
        if found(ja) != found(jb):
            out.append(f"traces {found(ja)} vs MLflow {found(jb)}")
    elif same_message == "exact":
        if ja != jb:
            out.append(f"answer {json.dumps(ja)} vs MLflow {json.dumps(jb)}")
    elif shape(ja) != shape(jb):
        out.append(f"shape {json.dumps(shape(ja))} vs MLflow {json.dumps(shape(jb))}")
    return out


def main():
    cairn = os.environ["MLFLOW_TRACKING_URI"].rstrip("/")
    work = tempfile.mkdtemp(prefix="cairn-parity-")
    # A running `mlflow server` of a fresh store may be given (while developing), else one
    # is started here.
    given = os.environ.get("CAIRN_PARITY_MLFLOW_URL")
    proc, mlflow_url = (None, given.rstrip("/")) if given else start_mlflow(work)
    try:
        ids = {"cairn": setup(cairn), "mlflow": setup(mlflow_url)}
        failures, deliberate = [], []
        for label, method, path, body, same_message, why in CASES:
            answers = {}
            for side, base in (("cairn", cairn), ("mlflow", mlflow_url)):
                answers[side] = call(base, method, fill(path, ids[side]),
                                     None if body is None else fill(body, ids[side]))
            diffs = compare(label, answers["cairn"], answers["mlflow"], same_message)
            if why is not None:
                # Stricter on purpose: Cairn must refuse, with a 4xx naming the problem.
                status = answers["cairn"][0]
                if not 400 <= status < 500:
                    failures.append(f"{label}: expected Cairn to refuse ({why}); got {status}")
                deliberate.append(label)
                continue
            for d in diffs:
                failures.append(f"{label}: {d}")
        for f in failures:
            print(f"DIFF {f}")
        if failures:
            sys.exit(1)
        print(json.dumps({"ok": True, "cases": len(CASES), "deliberate": deliberate}))
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
