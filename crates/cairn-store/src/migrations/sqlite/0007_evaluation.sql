-- MLflow 3's evaluation datasets (records keyed by their inputs) and registered scorers.
CREATE TABLE eval_datasets (
    dataset_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    digest TEXT NOT NULL,
    created_time BIGINT NOT NULL,
    last_update_time BIGINT NOT NULL,
    created_by TEXT,
    last_updated_by TEXT
);
CREATE INDEX eval_datasets_by_created ON eval_datasets (created_time DESC);
CREATE TABLE eval_dataset_tags (
    dataset_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (dataset_id, key)
);
CREATE TABLE eval_dataset_experiments (
    dataset_id TEXT NOT NULL,
    experiment_id BIGINT NOT NULL,
    PRIMARY KEY (dataset_id, experiment_id)
);
CREATE INDEX eval_dataset_experiments_by_experiment ON eval_dataset_experiments (experiment_id);
CREATE TABLE eval_dataset_records (
    record_id TEXT PRIMARY KEY,
    dataset_id TEXT NOT NULL,
    input_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_time BIGINT NOT NULL,
    last_update_time BIGINT NOT NULL,
    UNIQUE (dataset_id, input_key)
);
CREATE TABLE scorers (
    experiment_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    scorer_id TEXT NOT NULL,
    serialized TEXT NOT NULL,
    creation_time BIGINT NOT NULL,
    PRIMARY KEY (experiment_id, name, version)
);
CREATE TABLE issues (
    issue_id TEXT PRIMARY KEY,
    experiment_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    status TEXT NOT NULL,
    severity TEXT,
    root_causes TEXT NOT NULL,
    source_run_id TEXT,
    categories TEXT NOT NULL,
    created_by TEXT,
    created_timestamp BIGINT NOT NULL,
    last_updated_timestamp BIGINT NOT NULL
);
CREATE INDEX issues_by_experiment ON issues (experiment_id, created_timestamp DESC);
