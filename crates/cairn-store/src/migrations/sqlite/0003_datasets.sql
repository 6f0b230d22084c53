-- Cairn dataset versions. Same text in both dialects; keep them in step.
CREATE TABLE dataset_names (
    name TEXT PRIMARY KEY,
    -- Highest version number given; numbers are never reused.
    last_version BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE dataset_versions (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    digest TEXT NOT NULL,
    kind TEXT NOT NULL,
    size BIGINT NOT NULL,
    files BIGINT NOT NULL,
    format TEXT NOT NULL,
    path TEXT NOT NULL,
    message TEXT NOT NULL,
    user_id TEXT NOT NULL,
    creation_time BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE INDEX dataset_versions_by_digest ON dataset_versions (digest);
