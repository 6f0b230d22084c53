//! Dataset versions on the same SQL store: [`DatasetStore`] for [`SqlStore`].
use crate::db::Row;
use crate::tracking::SqlStore;
use cairn_core::model::{DatasetSource, DatasetValidation, DatasetVersion, NewDatasetVersion};
use cairn_core::{DatasetStore, Error, Result};

const COLUMNS: &str = "name, version, digest, kind, size, files, format, path, message, user_id, \
    creation_time";

fn version_from(row: &Row) -> DatasetVersion {
    DatasetVersion {
        name: row[0].text(),
        version: row[1].int(),
        digest: row[2].text(),
        kind: row[3].text(),
        size: row[4].int(),
        files: row[5].int(),
        format: row[6].text(),
        path: row[7].text(),
        message: row[8].text(),
        user_id: row[9].text(),
        creation_time: row[10].int(),
    }
}

impl DatasetStore for SqlStore {
    fn record_dataset_version(
        &self,
        new: &NewDatasetVersion,
        now: i64,
    ) -> Result<(DatasetVersion, bool)> {
        self.write(|tx| {
            tx.exec(
                "INSERT INTO dataset_names (name, last_version) VALUES (?, 0) ON CONFLICT DO NOTHING",
                &[(&new.name).into()],
            )?;
            // A no-op update takes the row lock on PostgreSQL, so concurrent adds of one name
            // get consecutive numbers; SQLite has a single writer anyway.
            tx.exec(
                "UPDATE dataset_names SET last_version = last_version WHERE name = ?",
                &[(&new.name).into()],
            )?;
            let newest = tx.query(
                &format!(
                    "SELECT {COLUMNS} FROM dataset_versions WHERE name = ? \
                     ORDER BY version DESC LIMIT 1"
                ),
                &[(&new.name).into()],
            )?;
            if let Some(row) = newest.first() {
                let newest = version_from(row);
                if newest.digest == new.digest {
                    return Ok((newest, false));
                }
            }
            tx.exec(
                "UPDATE dataset_names SET last_version = last_version + 1 WHERE name = ?",
                &[(&new.name).into()],
            )?;
            let number = tx.query(
                "SELECT last_version FROM dataset_names WHERE name = ?",
                &[(&new.name).into()],
            )?;
            let version = number.first().map(|r| r[0].int()).unwrap_or(1);
            let created = DatasetVersion {
                name: new.name.clone(),
                version,
                digest: new.digest.clone(),
                kind: new.kind.clone(),
                size: new.size,
                files: new.files,
                format: new.format.clone(),
                path: new.path.clone(),
                message: new.message.clone(),
                user_id: new.user_id.clone(),
                creation_time: now,
            };
            tx.exec(
                &format!(
                    "INSERT INTO dataset_versions ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                &[
                    (&created.name).into(),
                    created.version.into(),
                    (&created.digest).into(),
                    (&created.kind).into(),
                    created.size.into(),
                    created.files.into(),
                    (&created.format).into(),
                    (&created.path).into(),
                    (&created.message).into(),
                    (&created.user_id).into(),
                    created.creation_time.into(),
                ],
            )?;
            Ok((created, true))
        })
    }

    fn get_dataset_version(&self, name: &str, version: i64) -> Result<Option<DatasetVersion>> {
        self.read(|tx| {
            let rows = tx.query(
                &format!("SELECT {COLUMNS} FROM dataset_versions WHERE name = ? AND version = ?"),
                &[name.into(), version.into()],
            )?;
            Ok(rows.first().map(version_from))
        })
    }

    fn list_dataset_versions(&self, name: Option<&str>) -> Result<Vec<DatasetVersion>> {
        self.read(|tx| {
            let rows = match name {
                Some(name) => tx.query(
                    &format!(
                        "SELECT {COLUMNS} FROM dataset_versions WHERE name = ? \
                         ORDER BY version DESC"
                    ),
                    &[name.into()],
                )?,
                None => tx.query(
                    &format!(
                        "SELECT {COLUMNS} FROM dataset_versions \
                         ORDER BY name, version DESC"
                    ),
                    &[],
                )?,
            };
            Ok(rows.iter().map(version_from).collect())
        })
    }

    fn dataset_versions_by_digest(&self, prefix: &str) -> Result<Vec<DatasetVersion>> {
        self.read(|tx| {
            let rows = tx.query(
                &format!(
                    "SELECT {COLUMNS} FROM dataset_versions \
                     WHERE substr(digest, 1, ?) = ? ORDER BY creation_time, name, version"
                ),
                &[(prefix.len() as i64).into(), prefix.into()],
            )?;
            Ok(rows.iter().map(version_from).collect())
        })
    }

    fn record_dataset_validation(&self, v: &DatasetValidation) -> Result<()> {
        self.write(|tx| {
            let exists = tx.query(
                "SELECT 1 FROM dataset_versions WHERE name = ? AND version = ?",
                &[(&v.name).into(), v.version.into()],
            )?;
            if exists.is_empty() {
                return Err(Error::not_found(format!(
                    "Dataset version {}@{} not found",
                    v.name, v.version
                )));
            }
            tx.exec(
                &format!(
                    "INSERT INTO dataset_validations ({VALIDATION_COLUMNS}) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                &[
                    (&v.name).into(),
                    v.version.into(),
                    (&v.path).into(),
                    (&v.suite).into(),
                    i64::from(v.success).into(),
                    v.evaluated.into(),
                    v.successful.into(),
                    (&v.result).into(),
                    v.creation_time.into(),
                ],
            )?;
            Ok(())
        })
    }

    fn list_dataset_validations(&self, name: &str, version: i64) -> Result<Vec<DatasetValidation>> {
        self.read(|tx| {
            let rows = tx.query(
                &format!(
                    "SELECT {VALIDATION_COLUMNS} FROM dataset_validations \
                     WHERE name = ? AND version = ? ORDER BY creation_time DESC, path, suite"
                ),
                &[name.into(), version.into()],
            )?;
            Ok(rows
                .iter()
                .map(|row| DatasetValidation {
                    name: row[0].text(),
                    version: row[1].int(),
                    path: row[2].text(),
                    suite: row[3].text(),
                    success: row[4].int() != 0,
                    evaluated: row[5].int(),
                    successful: row[6].int(),
                    result: row[7].text(),
                    creation_time: row[8].int(),
                })
                .collect())
        })
    }

    fn record_dataset_sources(
        &self,
        name: &str,
        version: i64,
        sources: &[DatasetSource],
    ) -> Result<()> {
        self.write(|tx| {
            let exists = tx.query(
                "SELECT 1 FROM dataset_versions WHERE name = ? AND version = ?",
                &[name.into(), version.into()],
            )?;
            if exists.is_empty() {
                return Err(Error::not_found(format!(
                    "Dataset version {name}@{version} not found"
                )));
            }
            for source in sources {
                tx.exec(
                    "DELETE FROM dataset_sources \
                     WHERE name = ? AND version = ? AND kind = ? AND reference = ?",
                    &[
                        name.into(),
                        version.into(),
                        (&source.kind).into(),
                        (&source.reference).into(),
                    ],
                )?;
                tx.exec(
                    "INSERT INTO dataset_sources (name, version, kind, reference, digest) \
                     VALUES (?, ?, ?, ?, ?)",
                    &[
                        name.into(),
                        version.into(),
                        (&source.kind).into(),
                        (&source.reference).into(),
                        (&source.digest).into(),
                    ],
                )?;
            }
            Ok(())
        })
    }

    fn dataset_sources(&self, name: &str, version: i64) -> Result<Vec<DatasetSource>> {
        self.read(|tx| {
            let rows = tx.query(
                "SELECT kind, reference, digest FROM dataset_sources \
                 WHERE name = ? AND version = ? ORDER BY kind, reference",
                &[name.into(), version.into()],
            )?;
            Ok(rows
                .iter()
                .map(|row| DatasetSource {
                    kind: row[0].text(),
                    reference: row[1].text(),
                    digest: row[2].text(),
                })
                .collect())
        })
    }
}

const VALIDATION_COLUMNS: &str =
    "name, version, path, suite, success, evaluated, successful, result, creation_time";
