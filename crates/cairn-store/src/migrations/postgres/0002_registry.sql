-- Model registry, PostgreSQL dialect. Keep in step with ../sqlite/0002_registry.sql.
CREATE TABLE registered_models (
    name TEXT PRIMARY KEY,
    creation_time BIGINT NOT NULL,
    last_updated_time BIGINT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    -- Highest version number ever given: numbers are never reused, even after a delete.
    last_version BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE registered_model_tags (
    name TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, key)
);

CREATE TABLE model_versions (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    creation_time BIGINT NOT NULL,
    last_updated_time BIGINT NOT NULL,
    user_id TEXT NOT NULL,
    current_stage TEXT NOT NULL,
    description TEXT NOT NULL,
    source TEXT NOT NULL,
    storage_location TEXT NOT NULL,
    run_id TEXT,
    run_link TEXT,
    model_id TEXT,
    status TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE INDEX model_versions_by_run ON model_versions (run_id);

CREATE TABLE model_version_tags (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, version, key)
);

CREATE TABLE registered_model_aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (name, alias)
);
