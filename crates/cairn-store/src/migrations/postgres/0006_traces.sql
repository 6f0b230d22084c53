-- Traces (MLflow 3 tracing): infos, request metadata, tags, spans, assessments, run links.
CREATE TABLE trace_info (
    trace_id TEXT PRIMARY KEY,
    experiment_id BIGINT NOT NULL,
    request_time BIGINT NOT NULL,
    execution_duration BIGINT,
    state TEXT NOT NULL,
    client_request_id TEXT,
    request_preview TEXT,
    response_preview TEXT
);
-- Covers the columns trace filters test most (state, duration), so a search walking newest
-- first never reads the table for rows it skips.
CREATE INDEX trace_info_by_experiment_time ON trace_info (experiment_id, request_time, trace_id, state, execution_duration);
CREATE TABLE trace_tags (
    trace_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (trace_id, key)
);
CREATE INDEX trace_tags_by_key ON trace_tags (key, value);
CREATE TABLE trace_metadata (
    trace_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (trace_id, key)
);
CREATE INDEX trace_metadata_by_key ON trace_metadata (key, value);
CREATE TABLE spans (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_span_id TEXT,
    name TEXT NOT NULL,
    span_type TEXT,
    status TEXT NOT NULL,
    start_time_ns BIGINT NOT NULL,
    end_time_ns BIGINT,
    content TEXT NOT NULL,
    PRIMARY KEY (trace_id, span_id)
);
CREATE TABLE assessments (
    assessment_id TEXT PRIMARY KEY,
    trace_id TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    source_type TEXT NOT NULL,
    source_id TEXT NOT NULL,
    create_time BIGINT NOT NULL,
    last_update_time BIGINT NOT NULL,
    span_id TEXT,
    run_id TEXT,
    rationale TEXT,
    metadata TEXT,
    overrides TEXT,
    valid BIGINT NOT NULL
);
CREATE INDEX assessments_by_trace ON assessments (trace_id);
CREATE TABLE trace_runs (
    trace_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    PRIMARY KEY (trace_id, run_id)
);
CREATE INDEX trace_runs_by_run ON trace_runs (run_id);
