//! Live monitoring's state on the same SQL store: [`MonitoringStore`] for [`SqlStore`].
use crate::db::{tuple, Row, Val};
use crate::tracking::SqlStore;
use cairn_core::monitoring::{
    StoredAlertEvent, StoredAlertRule, StoredLabel, StoredReference, LABEL_LOOKUP_BATCH,
};
use cairn_core::{Error, MonitoringStore, Result};

/// Feature names are stored one per line (a name never holds a newline: it is a column name
/// the monitor read from a table header, and is refused otherwise).
fn features_text(features: &[String]) -> Result<String> {
    if features.iter().any(|f| f.contains('\n')) {
        return Err(Error::invalid("a feature name cannot contain a newline"));
    }
    Ok(features.join("\n"))
}

fn label_from(row: &Row) -> StoredLabel {
    StoredLabel {
        request_id: row[0].text(),
        row: row[1].int(),
        value: row[2].text(),
        timestamp_ms: row[3].int(),
    }
}

impl MonitoringStore for SqlStore {
    fn put_reference(&self, r: &StoredReference) -> Result<()> {
        let features = features_text(&r.features)?;
        self.write(|tx| {
            tx.exec(
                "INSERT INTO monitoring_references (model, version, features, target, source, \
                 rows_count, reference_values, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (model, version) DO UPDATE SET features = excluded.features, \
                 target = excluded.target, source = excluded.source, \
                 rows_count = excluded.rows_count, reference_values = excluded.reference_values, \
                 created_ms = excluded.created_ms",
                &[
                    (&r.model).into(),
                    (&r.version).into(),
                    features.into(),
                    r.target.clone().into(),
                    (&r.source).into(),
                    r.rows.into(),
                    Val::Blob(r.values.clone()),
                    r.created_ms.into(),
                ],
            )?;
            Ok(())
        })
    }

    fn get_reference(&self, model: &str, version: &str) -> Result<Option<StoredReference>> {
        let rows = self.read(|tx| {
            tx.query(
                "SELECT model, version, features, target, source, rows_count, reference_values, \
                 created_ms FROM monitoring_references WHERE model = ? AND version = ?",
                &[model.into(), version.into()],
            )
        })?;
        Ok(rows.into_iter().next().map(|mut row| {
            let values = std::mem::replace(&mut row[6], Val::Null).into_bytes();
            let features = row[2].text();
            StoredReference {
                model: row[0].text(),
                version: row[1].text(),
                features: if features.is_empty() {
                    Vec::new()
                } else {
                    features.split('\n').map(str::to_owned).collect()
                },
                target: row[3].opt_text(),
                source: row[4].text(),
                rows: row[5].int(),
                values,
                created_ms: row[7].int(),
            }
        }))
    }

    fn referenced_versions(&self) -> Result<Vec<(String, String)>> {
        let rows = self.read(|tx| {
            tx.query(
                "SELECT model, version FROM monitoring_references ORDER BY model, version",
                &[],
            )
        })?;
        Ok(rows.iter().map(|r| (r[0].text(), r[1].text())).collect())
    }

    fn record_labels(&self, labels: &[StoredLabel]) -> Result<()> {
        if labels.is_empty() {
            return Ok(());
        }
        // The newest label of a (request, row) given twice in one call wins, as it would over
        // two calls.
        let mut newest: std::collections::HashMap<(&str, i64), &StoredLabel> =
            std::collections::HashMap::with_capacity(labels.len());
        for l in labels {
            newest.insert((l.request_id.as_str(), l.row), l);
        }
        let rows: Vec<Row> = newest
            .values()
            .map(|l| {
                vec![
                    (&l.request_id).into(),
                    l.row.into(),
                    (&l.value).into(),
                    l.timestamp_ms.into(),
                ]
            })
            .collect();
        self.write(|tx| {
            tx.insert_many(
                "INSERT INTO monitoring_labels (request_id, row_index, label, timestamp_ms) VALUES",
                4,
                "ON CONFLICT (request_id, row_index) DO UPDATE SET label = excluded.label, \
                 timestamp_ms = excluded.timestamp_ms",
                &rows,
            )
        })
    }

    fn labels_for(&self, request_ids: &[String]) -> Result<Vec<StoredLabel>> {
        if request_ids.is_empty() {
            return Ok(Vec::new());
        }
        if request_ids.len() > LABEL_LOOKUP_BATCH {
            return Err(Error::invalid(format!(
                "at most {LABEL_LOOKUP_BATCH} request ids per label lookup"
            )));
        }
        let args: Vec<Val> = request_ids.iter().map(Val::from).collect();
        let rows = self.read(|tx| {
            tx.query(
                &format!(
                    "SELECT request_id, row_index, label, timestamp_ms FROM monitoring_labels \
                     WHERE request_id IN {}",
                    tuple(args.len())
                ),
                &args,
            )
        })?;
        Ok(rows.iter().map(label_from).collect())
    }

    fn prune_labels(&self, before_ms: i64) -> Result<u64> {
        self.write(|tx| {
            tx.exec(
                "DELETE FROM monitoring_labels WHERE timestamp_ms < ?",
                &[before_ms.into()],
            )
        })
    }

    fn put_alert_rule(&self, rule: &StoredAlertRule) -> Result<()> {
        self.write(|tx| {
            tx.exec(
                "INSERT INTO monitoring_alert_rules (name, body) VALUES (?, ?) \
                 ON CONFLICT (name) DO UPDATE SET body = excluded.body",
                &[(&rule.name).into(), (&rule.body).into()],
            )?;
            Ok(())
        })
    }

    fn alert_rules(&self) -> Result<Vec<StoredAlertRule>> {
        let rows = self.read(|tx| {
            tx.query(
                "SELECT name, body FROM monitoring_alert_rules ORDER BY name",
                &[],
            )
        })?;
        Ok(rows
            .iter()
            .map(|r| StoredAlertRule {
                name: r[0].text(),
                body: r[1].text(),
            })
            .collect())
    }

    fn record_alert_event(&self, e: &StoredAlertEvent) -> Result<i64> {
        self.write(|tx| {
            let rows = tx.query(
                "INSERT INTO monitoring_alert_events (rule, model, version, at_ms, body) \
                 VALUES (?, ?, ?, ?, ?) RETURNING event_id",
                &[
                    (&e.rule).into(),
                    (&e.model).into(),
                    (&e.version).into(),
                    e.at_ms.into(),
                    (&e.body).into(),
                ],
            )?;
            rows.first()
                .map(|r| r[0].int())
                .ok_or_else(|| Error::Storage("no id for a recorded alert event".into()))
        })
    }

    fn update_alert_event(&self, id: i64, body: &str) -> Result<bool> {
        self.write(|tx| {
            let changed = tx.exec(
                "UPDATE monitoring_alert_events SET body = ? WHERE event_id = ?",
                &[body.into(), id.into()],
            )?;
            Ok(changed > 0)
        })
    }

    fn alert_events(&self, limit: Option<usize>) -> Result<Vec<StoredAlertEvent>> {
        let limit = limit.map_or(i64::MAX, |n| n.min(i64::MAX as usize) as i64);
        let mut rows = self.read(|tx| {
            tx.query(
                "SELECT rule, model, version, at_ms, body FROM monitoring_alert_events \
                 ORDER BY event_id DESC LIMIT ?",
                &[limit.into()],
            )
        })?;
        rows.reverse();
        Ok(rows
            .iter()
            .map(|r| StoredAlertEvent {
                rule: r[0].text(),
                model: r[1].text(),
                version: r[2].text(),
                at_ms: r[3].int(),
                body: r[4].text(),
            })
            .collect())
    }

    fn try_lease(&self, name: &str, holder: &str, now_ms: i64, ttl_ms: i64) -> Result<bool> {
        let expires = now_ms.saturating_add(ttl_ms.max(1));
        self.write(|tx| {
            // One statement decides: the row is inserted, or taken over only when expired or
            // already ours (PostgreSQL locks the row for the update, SQLite has one writer).
            let changed = tx.exec(
                "INSERT INTO leases (name, holder, expires_ms) VALUES (?, ?, ?) \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
                 expires_ms = excluded.expires_ms \
                 WHERE leases.expires_ms <= ? OR leases.holder = excluded.holder",
                &[name.into(), holder.into(), expires.into(), now_ms.into()],
            )?;
            Ok(changed > 0)
        })
    }

    fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        self.write(|tx| {
            tx.exec(
                "DELETE FROM leases WHERE name = ? AND holder = ?",
                &[name.into(), holder.into()],
            )?;
            Ok(())
        })
    }
}
