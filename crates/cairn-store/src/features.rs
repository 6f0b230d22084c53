//! The feature store's state on the same SQL store: [`FeatureRegistryStore`] and
//! [`OnlineStore`] for [`SqlStore`].
use crate::db::{Row, Val};
use crate::tracking::SqlStore;
use cairn_core::features::{OnlineRow, StoredDefinitions};
use cairn_core::{FeatureRegistryStore, OnlineStore, Result};

/// Rows per statement when reading or writing online values (bound parameters stay well
/// under SQLite's and PostgreSQL's limits).
const ONLINE_BATCH: usize = 500;

impl FeatureRegistryStore for SqlStore {
    fn put_definitions(
        &self,
        project: &str,
        text: &str,
        digest: &str,
        created_ms: i64,
    ) -> Result<(i64, bool)> {
        self.write(|tx| {
            let latest = tx.query(
                "SELECT version, digest FROM feature_definitions WHERE project = ? \
                 ORDER BY version DESC LIMIT 1",
                &[project.into()],
            )?;
            if let Some(row) = latest.first() {
                if row[1].text() == digest {
                    return Ok((row[0].int(), false));
                }
            }
            let version = latest.first().map_or(1, |r| r[0].int() + 1);
            tx.exec(
                "INSERT INTO feature_definitions (project, version, definitions, digest, \
                 created_ms) VALUES (?, ?, ?, ?, ?)",
                &[
                    project.into(),
                    version.into(),
                    text.into(),
                    digest.into(),
                    created_ms.into(),
                ],
            )?;
            Ok((version, true))
        })
    }

    fn definitions(
        &self,
        project: &str,
        version: Option<i64>,
    ) -> Result<Option<StoredDefinitions>> {
        let rows = self.read(|tx| match version {
            Some(v) => tx.query(
                "SELECT project, version, definitions, digest, created_ms FROM \
                 feature_definitions WHERE project = ? AND version = ?",
                &[project.into(), v.into()],
            ),
            None => tx.query(
                "SELECT project, version, definitions, digest, created_ms FROM \
                 feature_definitions WHERE project = ? ORDER BY version DESC LIMIT 1",
                &[project.into()],
            ),
        })?;
        Ok(rows.first().map(|r| StoredDefinitions {
            project: r[0].text(),
            version: r[1].int(),
            text: r[2].text(),
            digest: r[3].text(),
            created_ms: r[4].int(),
        }))
    }
}

impl OnlineStore for SqlStore {
    fn write_online(&self, project: &str, view: &str, rows: &[OnlineRow]) -> Result<()> {
        for chunk in rows.chunks(ONLINE_BATCH) {
            let values: Vec<Row> = chunk
                .iter()
                .map(|r| {
                    vec![
                        project.into(),
                        view.into(),
                        (&r.entity_key).into(),
                        (&r.values).into(),
                        r.event_ms.into(),
                        r.created_ms.into(),
                    ]
                })
                .collect();
            // A later (event, created) time wins; the same row written again changes nothing.
            self.write(|tx| {
                tx.insert_many(
                    "INSERT INTO online_features (project, view_name, entity_key, \
                     feature_values, event_ms, created_ms) VALUES",
                    6,
                    "ON CONFLICT (project, view_name, entity_key) DO UPDATE SET \
                     feature_values = excluded.feature_values, event_ms = excluded.event_ms, \
                     created_ms = excluded.created_ms WHERE excluded.event_ms > \
                     online_features.event_ms OR (excluded.event_ms = online_features.event_ms \
                     AND excluded.created_ms >= online_features.created_ms)",
                    &values,
                )
            })?;
        }
        Ok(())
    }

    fn read_online(
        &self,
        project: &str,
        view: &str,
        keys: &[String],
    ) -> Result<Vec<Option<OnlineRow>>> {
        let mut found = std::collections::HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(ONLINE_BATCH) {
            let mut args: Vec<Val> = vec![project.into(), view.into()];
            args.extend(chunk.iter().map(Val::from));
            let marks = vec!["?"; chunk.len()].join(", ");
            let rows = self.read(|tx| {
                tx.query(
                    &format!(
                        "SELECT entity_key, feature_values, event_ms, created_ms FROM \
                         online_features WHERE project = ? AND view_name = ? AND entity_key IN \
                         ({marks})"
                    ),
                    &args,
                )
            })?;
            for r in rows {
                found.insert(
                    r[0].text(),
                    OnlineRow {
                        entity_key: r[0].text(),
                        values: r[1].text(),
                        event_ms: r[2].int(),
                        created_ms: r[3].int(),
                    },
                );
            }
        }
        Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
    }
}
