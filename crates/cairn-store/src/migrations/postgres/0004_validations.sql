-- Results of `cairn validate` on Cairn dataset versions. Same text in both dialects.
CREATE TABLE dataset_validations (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    path TEXT NOT NULL,
    suite TEXT NOT NULL,
    success BIGINT NOT NULL,
    evaluated BIGINT NOT NULL,
    successful BIGINT NOT NULL,
    result TEXT NOT NULL,
    creation_time BIGINT NOT NULL,
    FOREIGN KEY (name, version) REFERENCES dataset_versions (name, version)
);
CREATE INDEX dataset_validations_by_version ON dataset_validations (name, version, creation_time);
