-- What a dataset version was made from (a training set: its feature definitions and the
-- source versions they read). Same text in both dialects.
CREATE TABLE dataset_sources (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    kind TEXT NOT NULL,
    reference TEXT NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (name, version, kind, reference),
    FOREIGN KEY (name, version) REFERENCES dataset_versions (name, version)
);
