//! Evaluation datasets and scorers on the same SQL store: [`EvaluationStore`] for
//! [`SqlStore`].
use crate::db::{Dialect, Row, Tx, Val};
use crate::tracking::{
    compare, key_value_clause, limit_args, page, placeholders, query_in, SqlStore,
};
use cairn_core::evaluation::{
    DatasetQuery, DatasetRecord, EvaluationDataset, Issue, IssueQuery, MergeRecord, NewRecord,
    ScorerVersion,
};
use cairn_core::model::{KeyValue, Page};
use cairn_core::search::{Entity, Value};
use cairn_core::{Error, EvaluationStore, Result};

const DATASET_COLUMNS: &str = "d.dataset_id, d.name, d.digest, d.created_time, \
    d.last_update_time, d.created_by, d.last_updated_by";

fn exp_id(id: &str) -> Result<i64> {
    id.parse::<i64>()
        .map_err(|_| Error::invalid(format!("Invalid experiment ID '{id}'")))
}

fn load_datasets(tx: &mut dyn Tx, ids: &[String]) -> Result<Vec<EvaluationDataset>> {
    let mut out: Vec<EvaluationDataset> = Vec::with_capacity(ids.len());
    for row in query_in(
        tx,
        &format!("SELECT {DATASET_COLUMNS} FROM eval_datasets d WHERE d.dataset_id IN "),
        ids,
        "",
    )? {
        out.push(EvaluationDataset {
            dataset_id: row[0].text(),
            name: row[1].text(),
            digest: row[2].text(),
            created_time: row[3].int(),
            last_update_time: row[4].int(),
            created_by: row[5].opt_text(),
            last_updated_by: row[6].opt_text(),
            tags: Vec::new(),
            experiment_ids: Vec::new(),
            num_records: 0,
        });
    }
    let present: Vec<String> = out.iter().map(|d| d.dataset_id.clone()).collect();
    let find =
        |out: &mut Vec<EvaluationDataset>, id: &str| out.iter().position(|d| d.dataset_id == id);
    for row in query_in(
        tx,
        "SELECT dataset_id, key, value FROM eval_dataset_tags WHERE dataset_id IN ",
        &present,
        " ORDER BY key",
    )? {
        if let Some(i) = find(&mut out, &row[0].text()) {
            out[i]
                .tags
                .push(KeyValue::new(row[1].text(), row[2].text()));
        }
    }
    for row in query_in(
        tx,
        "SELECT dataset_id, experiment_id FROM eval_dataset_experiments WHERE dataset_id IN ",
        &present,
        " ORDER BY experiment_id",
    )? {
        if let Some(i) = find(&mut out, &row[0].text()) {
            out[i].experiment_ids.push(row[1].text());
        }
    }
    for row in query_in(
        tx,
        "SELECT dataset_id, COUNT(*) FROM eval_dataset_records WHERE dataset_id IN ",
        &present,
        " GROUP BY dataset_id",
    )? {
        if let Some(i) = find(&mut out, &row[0].text()) {
            out[i].num_records = row[1].int().max(0) as u64;
        }
    }
    // In the order asked.
    Ok(ids
        .iter()
        .filter_map(|id| out.iter().find(|d| &d.dataset_id == id).cloned())
        .collect())
}

fn upsert_tags(tx: &mut dyn Tx, dataset_id: &str, tags: &[KeyValue]) -> Result<()> {
    for tag in tags {
        if tag.value.is_empty() {
            tx.exec(
                "DELETE FROM eval_dataset_tags WHERE dataset_id = ? AND key = ?",
                &[dataset_id.into(), (&tag.key).into()],
            )?;
        } else {
            tx.exec(
                "INSERT INTO eval_dataset_tags (dataset_id, key, value) VALUES (?, ?, ?) \
                 ON CONFLICT (dataset_id, key) DO UPDATE SET value = excluded.value",
                &[dataset_id.into(), (&tag.key).into(), (&tag.value).into()],
            )?;
        }
    }
    Ok(())
}

fn touch(tx: &mut dyn Tx, dataset_id: &str, now: i64) -> Result<()> {
    tx.exec(
        "UPDATE eval_datasets SET last_update_time = ? WHERE dataset_id = ?",
        &[Val::Int(now), dataset_id.into()],
    )?;
    Ok(())
}

fn scorer_from(row: &Row) -> ScorerVersion {
    ScorerVersion {
        experiment_id: row[0].text(),
        name: row[1].text(),
        version: row[2].int(),
        scorer_id: row[3].text(),
        serialized: row[4].text(),
        creation_time: row[5].int(),
    }
}

const ISSUE_COLUMNS: &str = "issue_id, experiment_id, name, description, status, severity, \
    root_causes, source_run_id, categories, created_by, created_timestamp, last_updated_timestamp";

/// Lists of short texts (root causes, categories) in one column, split on a control
/// character no text a person types contains.
const LIST_SEPARATOR: char = '\u{1f}';

fn join_list(items: &[String]) -> String {
    items.join(&LIST_SEPARATOR.to_string())
}

fn split_list(text: &str) -> Vec<String> {
    if text.is_empty() {
        Vec::new()
    } else {
        text.split(LIST_SEPARATOR).map(str::to_string).collect()
    }
}

fn issue_from(row: &Row) -> Issue {
    Issue {
        issue_id: row[0].text(),
        experiment_id: row[1].text(),
        name: row[2].text(),
        description: row[3].text(),
        status: row[4].text(),
        severity: row[5].opt_text(),
        root_causes: split_list(&row[6].text()),
        source_run_id: row[7].opt_text(),
        categories: split_list(&row[8].text()),
        created_by: row[9].opt_text(),
        created_timestamp: row[10].int(),
        last_updated_timestamp: row[11].int(),
    }
}

const SCORER_COLUMNS: &str = "experiment_id, name, version, scorer_id, serialized, creation_time";

impl EvaluationStore for SqlStore {
    fn create_dataset(&self, d: &EvaluationDataset) -> Result<()> {
        let exps: Vec<i64> = d
            .experiment_ids
            .iter()
            .map(|e| exp_id(e))
            .collect::<Result<_>>()?;
        self.write(|tx| {
            tx.exec(
                "INSERT INTO eval_datasets (dataset_id, name, digest, created_time, \
                 last_update_time, created_by, last_updated_by) VALUES (?, ?, ?, ?, ?, ?, ?)",
                &[
                    (&d.dataset_id).into(),
                    (&d.name).into(),
                    (&d.digest).into(),
                    Val::Int(d.created_time),
                    Val::Int(d.last_update_time),
                    d.created_by.as_ref().into(),
                    d.last_updated_by.as_ref().into(),
                ],
            )?;
            upsert_tags(tx, &d.dataset_id, &d.tags)?;
            for e in &exps {
                tx.exec(
                    "INSERT INTO eval_dataset_experiments (dataset_id, experiment_id) VALUES (?, ?) \
                     ON CONFLICT DO NOTHING",
                    &[(&d.dataset_id).into(), Val::Int(*e)],
                )?;
            }
            Ok(())
        })
    }

    fn get_dataset(&self, dataset_id: &str) -> Result<Option<EvaluationDataset>> {
        self.read(|tx| {
            Ok(load_datasets(tx, &[dataset_id.to_string()])?
                .into_iter()
                .next())
        })
    }

    fn delete_dataset(&self, dataset_id: &str) -> Result<()> {
        self.write(|tx| {
            for table in [
                "eval_dataset_records",
                "eval_dataset_tags",
                "eval_dataset_experiments",
                "eval_datasets",
            ] {
                tx.exec(
                    &format!("DELETE FROM {table} WHERE dataset_id = ?"),
                    &[dataset_id.into()],
                )?;
            }
            Ok(())
        })
    }

    fn search_datasets(&self, q: &DatasetQuery) -> Result<Page<EvaluationDataset>> {
        self.read(|tx| {
            let d = tx.dialect();
            let mut args: Vec<Val> = Vec::new();
            let mut sql = String::from("SELECT d.dataset_id FROM eval_datasets d WHERE 1 = 1");
            if !q.experiment_ids.is_empty() {
                let exps: Vec<Val> = q
                    .experiment_ids
                    .iter()
                    .map(|e| exp_id(e).map(Val::Int))
                    .collect::<Result<_>>()?;
                sql.push_str(&format!(
                    " AND d.dataset_id IN (SELECT de.dataset_id FROM eval_dataset_experiments de \
                     WHERE de.experiment_id IN {})",
                    placeholders(exps.len())
                ));
                args.extend(exps);
            }
            for cmp in &q.filter {
                let clause = match cmp.entity {
                    Entity::Tag => key_value_clause(
                        d,
                        "eval_dataset_tags",
                        "dataset_id",
                        "d.dataset_id",
                        cmp,
                        &mut args,
                    ),
                    _ => {
                        let value = match &cmp.value {
                            Value::Num(n) => Value::Num(n.trunc()),
                            v => v.clone(),
                        };
                        compare(d, &format!("d.{}", cmp.key), cmp.op, &value, &mut args)
                    }
                };
                sql.push_str(" AND ");
                sql.push_str(&clause);
            }
            let mut order: Vec<String> = q
                .order_by
                .iter()
                .filter(|o| o.entity == Entity::Attribute)
                .map(|o| {
                    let col = match o.key.as_str() {
                        "name" => "d.name",
                        "last_update_time" => "d.last_update_time",
                        _ => "d.created_time",
                    };
                    format!("{col} {}", if o.ascending { "ASC" } else { "DESC" })
                })
                .collect();
            order.push("d.created_time DESC".into());
            order.push("d.dataset_id ASC".into());
            sql.push_str(&format!(" ORDER BY {} LIMIT ? OFFSET ?", order.join(", ")));
            args.extend(limit_args(q.offset, q.max_results));
            let ids: Vec<String> = tx.query(&sql, &args)?.iter().map(|r| r[0].text()).collect();
            let p = page(ids, q.offset, q.max_results);
            Ok(Page {
                items: load_datasets(tx, &p.items)?,
                next_offset: p.next_offset,
            })
        })
    }

    fn set_dataset_tags(&self, dataset_id: &str, tags: &[KeyValue], now: i64) -> Result<()> {
        self.write(|tx| {
            upsert_tags(tx, dataset_id, tags)?;
            touch(tx, dataset_id, now)
        })
    }

    fn delete_dataset_tag(&self, dataset_id: &str, key: &str, now: i64) -> Result<()> {
        self.write(|tx| {
            tx.exec(
                "DELETE FROM eval_dataset_tags WHERE dataset_id = ? AND key = ?",
                &[dataset_id.into(), key.into()],
            )?;
            touch(tx, dataset_id, now)
        })
    }

    fn set_dataset_experiments(
        &self,
        dataset_id: &str,
        experiment_ids: &[String],
        add: bool,
    ) -> Result<()> {
        let exps: Vec<i64> = experiment_ids
            .iter()
            .map(|e| exp_id(e))
            .collect::<Result<_>>()?;
        self.write(|tx| {
            for e in &exps {
                let sql = if add {
                    "INSERT INTO eval_dataset_experiments (dataset_id, experiment_id) VALUES (?, ?) \
                     ON CONFLICT DO NOTHING"
                } else {
                    "DELETE FROM eval_dataset_experiments WHERE dataset_id = ? AND experiment_id = ?"
                };
                tx.exec(sql, &[dataset_id.into(), Val::Int(*e)])?;
            }
            Ok(())
        })
    }

    fn upsert_records(
        &self,
        dataset_id: &str,
        records: &[NewRecord],
        merge: MergeRecord<'_>,
        now: i64,
        digest: &str,
        user: Option<String>,
    ) -> Result<(u64, u64)> {
        self.write(|tx| {
            // The dataset's row lock serialises concurrent merges into one dataset.
            let lock = match tx.dialect() {
                Dialect::Postgres => {
                    "SELECT dataset_id FROM eval_datasets WHERE dataset_id = ? FOR UPDATE"
                }
                Dialect::Sqlite => "SELECT dataset_id FROM eval_datasets WHERE dataset_id = ?",
            };
            tx.query(lock, &[dataset_id.into()])?;
            let (mut inserted, mut updated) = (0, 0);
            for r in records {
                let existing = tx.query(
                    "SELECT record_id, payload FROM eval_dataset_records WHERE dataset_id = ? \
                     AND input_key = ?",
                    &[dataset_id.into(), (&r.input_key).into()],
                )?;
                match existing.first() {
                    Some(row) => {
                        let merged = merge(&row[1].text(), &r.payload);
                        tx.exec(
                            "UPDATE eval_dataset_records SET payload = ?, last_update_time = ? \
                             WHERE record_id = ?",
                            &[merged.into(), Val::Int(now), row[0].clone()],
                        )?;
                        updated += 1;
                    }
                    None => {
                        tx.exec(
                            "INSERT INTO eval_dataset_records (record_id, dataset_id, input_key, \
                             payload, created_time, last_update_time) VALUES (?, ?, ?, ?, ?, ?)",
                            &[
                                format!("dr-{}", cairn_core::ids::new_run_id()).into(),
                                dataset_id.into(),
                                (&r.input_key).into(),
                                (&r.payload).into(),
                                Val::Int(now),
                                Val::Int(now),
                            ],
                        )?;
                        inserted += 1;
                    }
                }
            }
            tx.exec(
                "UPDATE eval_datasets SET digest = ?, last_update_time = ?, \
                 last_updated_by = COALESCE(?, last_updated_by) WHERE dataset_id = ?",
                &[digest.into(), Val::Int(now), user.into(), dataset_id.into()],
            )?;
            Ok((inserted, updated))
        })
    }

    fn get_records(
        &self,
        dataset_id: &str,
        max_results: u64,
        offset: u64,
    ) -> Result<Page<DatasetRecord>> {
        self.read(|tx| {
            let mut args: Vec<Val> = vec![dataset_id.into()];
            args.extend(limit_args(offset, max_results));
            let rows = tx.query(
                "SELECT record_id, input_key, payload, created_time, last_update_time FROM \
                 eval_dataset_records WHERE dataset_id = ? ORDER BY created_time, record_id \
                 LIMIT ? OFFSET ?",
                &args,
            )?;
            let records = rows
                .iter()
                .map(|r| DatasetRecord {
                    record_id: r[0].text(),
                    input_key: r[1].text(),
                    payload: r[2].text(),
                    created_time: r[3].int(),
                    last_update_time: r[4].int(),
                })
                .collect();
            Ok(page(records, offset, max_results))
        })
    }

    fn delete_records(&self, dataset_id: &str, record_ids: &[String], now: i64) -> Result<u64> {
        self.write(|tx| {
            let mut deleted = 0;
            for chunk in record_ids.chunks(900) {
                let mut args: Vec<Val> = vec![dataset_id.into()];
                args.extend(chunk.iter().map(Val::from));
                deleted += tx.exec(
                    &format!(
                        "DELETE FROM eval_dataset_records WHERE dataset_id = ? AND record_id IN {}",
                        placeholders(chunk.len())
                    ),
                    &args,
                )?;
            }
            touch(tx, dataset_id, now)?;
            Ok(deleted)
        })
    }

    fn register_scorer(
        &self,
        experiment_id: &str,
        name: &str,
        serialized: &str,
        new_id: &str,
        now: i64,
    ) -> Result<ScorerVersion> {
        let exp = exp_id(experiment_id)?;
        self.write(|tx| {
            let newest = tx.query(
                "SELECT version, scorer_id FROM scorers WHERE experiment_id = ? AND name = ? \
                 ORDER BY version DESC LIMIT 1",
                &[Val::Int(exp), name.into()],
            )?;
            let (version, scorer_id) = match newest.first() {
                Some(row) => (row[0].int() + 1, row[1].text()),
                None => (1, new_id.to_string()),
            };
            tx.exec(
                &format!("INSERT INTO scorers ({SCORER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"),
                &[
                    Val::Int(exp),
                    name.into(),
                    Val::Int(version),
                    (&scorer_id).into(),
                    serialized.into(),
                    Val::Int(now),
                ],
            )?;
            Ok(ScorerVersion {
                experiment_id: experiment_id.to_string(),
                name: name.to_string(),
                version,
                scorer_id,
                serialized: serialized.to_string(),
                creation_time: now,
            })
        })
    }

    fn list_scorers(&self, experiment_id: &str, name: Option<&str>) -> Result<Vec<ScorerVersion>> {
        let exp = exp_id(experiment_id)?;
        self.read(|tx| {
            let rows = match name {
                Some(n) => tx.query(
                    &format!(
                        "SELECT {SCORER_COLUMNS} FROM scorers WHERE experiment_id = ? AND name = ? \
                         ORDER BY version"
                    ),
                    &[Val::Int(exp), n.into()],
                )?,
                None => tx.query(
                    &format!(
                        "SELECT {SCORER_COLUMNS} FROM scorers s WHERE experiment_id = ? AND \
                         version = (SELECT MAX(version) FROM scorers m WHERE \
                         m.experiment_id = s.experiment_id AND m.name = s.name) ORDER BY name"
                    ),
                    &[Val::Int(exp)],
                )?,
            };
            Ok(rows.iter().map(scorer_from).collect())
        })
    }

    fn delete_scorer(&self, experiment_id: &str, name: &str, version: Option<i64>) -> Result<u64> {
        let exp = exp_id(experiment_id)?;
        self.write(|tx| match version {
            Some(v) => tx.exec(
                "DELETE FROM scorers WHERE experiment_id = ? AND name = ? AND version = ?",
                &[Val::Int(exp), name.into(), Val::Int(v)],
            ),
            None => tx.exec(
                "DELETE FROM scorers WHERE experiment_id = ? AND name = ?",
                &[Val::Int(exp), name.into()],
            ),
        })
    }

    fn create_issue(&self, i: &Issue) -> Result<()> {
        let exp = exp_id(&i.experiment_id)?;
        self.write(|tx| {
            tx.exec(
                &format!(
                    "INSERT INTO issues ({ISSUE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                &[
                    (&i.issue_id).into(),
                    Val::Int(exp),
                    (&i.name).into(),
                    (&i.description).into(),
                    (&i.status).into(),
                    i.severity.as_ref().into(),
                    join_list(&i.root_causes).into(),
                    i.source_run_id.as_ref().into(),
                    join_list(&i.categories).into(),
                    i.created_by.as_ref().into(),
                    Val::Int(i.created_timestamp),
                    Val::Int(i.last_updated_timestamp),
                ],
            )?;
            Ok(())
        })
    }

    fn get_issue(&self, issue_id: &str) -> Result<Option<Issue>> {
        self.read(|tx| {
            Ok(tx
                .query(
                    &format!("SELECT {ISSUE_COLUMNS} FROM issues WHERE issue_id = ?"),
                    &[issue_id.into()],
                )?
                .first()
                .map(issue_from))
        })
    }

    fn update_issue(&self, i: &Issue) -> Result<()> {
        self.write(|tx| {
            tx.exec(
                "UPDATE issues SET name = ?, description = ?, status = ?, severity = ?, \
                 last_updated_timestamp = ? WHERE issue_id = ?",
                &[
                    (&i.name).into(),
                    (&i.description).into(),
                    (&i.status).into(),
                    i.severity.as_ref().into(),
                    Val::Int(i.last_updated_timestamp),
                    (&i.issue_id).into(),
                ],
            )?;
            Ok(())
        })
    }

    fn search_issues(&self, q: &IssueQuery) -> Result<Page<Issue>> {
        self.read(|tx| {
            let d = tx.dialect();
            let mut args: Vec<Val> = Vec::new();
            let mut sql = format!("SELECT {ISSUE_COLUMNS} FROM issues WHERE 1 = 1");
            if let Some(e) = &q.experiment_id {
                sql.push_str(" AND experiment_id = ?");
                args.push(Val::Int(exp_id(e)?));
            }
            for cmp in &q.filter {
                sql.push_str(" AND ");
                sql.push_str(&compare(d, &cmp.key, cmp.op, &cmp.value, &mut args));
            }
            sql.push_str(" ORDER BY created_timestamp DESC, issue_id LIMIT ? OFFSET ?");
            args.extend(limit_args(q.offset, q.max_results));
            let rows: Vec<Issue> = tx.query(&sql, &args)?.iter().map(issue_from).collect();
            Ok(page(rows, q.offset, q.max_results))
        })
    }
}
