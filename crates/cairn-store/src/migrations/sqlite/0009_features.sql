-- The feature store: applied definitions (one row per project and version) and the online
-- store (the latest values of each entity per feature view; values are the features crate's
-- encoding).
CREATE TABLE feature_definitions (
    project TEXT NOT NULL,
    version BIGINT NOT NULL,
    definitions TEXT NOT NULL,
    digest TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (project, version)
);
CREATE TABLE online_features (
    project TEXT NOT NULL,
    view_name TEXT NOT NULL,
    entity_key TEXT NOT NULL,
    feature_values TEXT NOT NULL,
    event_ms BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (project, view_name, entity_key)
);
