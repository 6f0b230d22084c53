-- Live monitoring's shared state (training references, labels, alert rules and events) and
-- leases for periodic work, so several server replicas share one truth.
CREATE TABLE monitoring_references (
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    features TEXT NOT NULL,
    target TEXT,
    source TEXT NOT NULL,
    rows_count BIGINT NOT NULL,
    reference_values BLOB NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (model, version)
);
CREATE TABLE monitoring_labels (
    request_id TEXT NOT NULL,
    row_index BIGINT NOT NULL,
    label TEXT NOT NULL,
    timestamp_ms BIGINT NOT NULL,
    PRIMARY KEY (request_id, row_index)
);
CREATE INDEX monitoring_labels_by_time ON monitoring_labels (timestamp_ms);
CREATE TABLE monitoring_alert_rules (
    name TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE monitoring_alert_events (
    event_id INTEGER PRIMARY KEY AUTOINCREMENT,
    rule TEXT NOT NULL,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);
