//! [`SqlStore`]: the tracking store logic, written once over the [`Tx`] trait for both dialects.
use crate::db::{storage, tuple, Dialect, Row, Tx, Val};
use crate::postgres::Postgres;
use crate::sqlite::Sqlite;
use cairn_core::model::*;
use cairn_core::search::{Comparison, Entity, Op, Value};
use cairn_core::tracking::{param_change_error, RUN_NAME_TAG};
use cairn_core::{
    Error, ExperimentLocation, ExperimentQuery, LoggedModelQuery, Result, RunQuery, TrackingStore,
};
use std::collections::HashMap;
use std::path::PathBuf;

enum Backend {
    Sqlite(Sqlite),
    Postgres(Postgres),
}

/// The tracking store on SQLite or PostgreSQL.
pub struct SqlStore {
    backend: Backend,
}

/// Rows bound per `IN (...)` list, well under both engines' limits.
const IN_CHUNK: usize = 900;

impl SqlStore {
    /// Opens (creating and migrating if needed) the store a backend URI names.
    pub fn open(uri: &str) -> Result<Self> {
        if let Some(path) = uri.strip_prefix("sqlite:///") {
            return Self::open_sqlite(PathBuf::from(path));
        }
        if let Some(path) = uri.strip_prefix("sqlite://") {
            return Self::open_sqlite(PathBuf::from(path));
        }
        let scheme = uri.split("://").next().unwrap_or_default();
        // Accept SQLAlchemy-style `postgresql+psycopg2://` as MLflow users write it.
        if scheme == "postgresql" || scheme == "postgres" || scheme.starts_with("postgresql+") {
            let rest = &uri[scheme.len()..];
            return Ok(SqlStore {
                backend: Backend::Postgres(Postgres::open(&format!("postgresql{rest}"))?),
            });
        }
        Err(Error::invalid(format!(
            "Unsupported backend store URI '{uri}': use sqlite:///path/to/file.db or \
             postgresql://user@host:port/database"
        )))
    }

    /// Opens a SQLite database file.
    pub fn open_sqlite(path: PathBuf) -> Result<Self> {
        Ok(SqlStore {
            backend: Backend::Sqlite(Sqlite::open(path)?),
        })
    }

    pub(crate) fn write<T>(&self, f: impl FnOnce(&mut dyn Tx) -> Result<T>) -> Result<T> {
        match &self.backend {
            Backend::Sqlite(db) => db.write(f),
            Backend::Postgres(db) => db.write(f),
        }
    }

    pub(crate) fn read<T>(&self, f: impl FnOnce(&mut dyn Tx) -> Result<T>) -> Result<T> {
        match &self.backend {
            Backend::Sqlite(db) => db.read(f),
            Backend::Postgres(db) => db.read(f),
        }
    }
}

fn exp_id(id: &str) -> Result<i64> {
    id.parse::<i64>()
        .map_err(|_| Error::invalid(format!("Invalid experiment ID '{id}'")))
}

/// Escapes `%`, `_` and `\` so a user's text matches literally inside a LIKE pattern.
fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub(crate) fn placeholders(n: usize) -> String {
    tuple(n)
}

/// Runs `sql` (which ends in `IN `) once per chunk of `ids`, appending `(?, ...)` and `tail`.
pub(crate) fn query_in(tx: &mut dyn Tx, sql: &str, ids: &[String], tail: &str) -> Result<Vec<Row>> {
    query_in_after(tx, sql, &[], ids, tail)
}

/// Like [`query_in`], with `first` bound before the list.
fn query_in_after(
    tx: &mut dyn Tx,
    sql: &str,
    first: &[Val],
    ids: &[String],
    tail: &str,
) -> Result<Vec<Row>> {
    let mut out = Vec::new();
    for chunk in ids.chunks(IN_CHUNK) {
        let full = format!("{sql}{}{tail}", placeholders(chunk.len()));
        let mut args: Vec<Val> = first.to_vec();
        args.extend(chunk.iter().map(Val::from));
        out.extend(tx.query(&full, &args)?);
    }
    Ok(out)
}

fn metric_value_args(value: f64) -> (Val, Val) {
    if value.is_nan() {
        (Val::Real(0.0), Val::Int(1))
    } else {
        (Val::Real(value), Val::Int(0))
    }
}

fn metric_value(value: &Val, is_nan: &Val) -> f64 {
    if is_nan.int() != 0 {
        f64::NAN
    } else {
        value.real()
    }
}

/// Builds `col op ?` for a comparison, pushing its arguments.
pub(crate) fn compare(
    dialect: Dialect,
    col: &str,
    op: Op,
    value: &Value,
    args: &mut Vec<Val>,
) -> String {
    let single = |args: &mut Vec<Val>| match value {
        Value::Num(n) => args.push(Val::Real(*n)),
        Value::Str(s) => args.push(Val::Text(s.clone())),
        Value::List(_) | Value::None => args.push(Val::Null),
    };
    match op {
        Op::Eq | Op::Ne | Op::Gt | Op::Ge | Op::Lt | Op::Le | Op::Like => {
            single(args);
            format!("{col} {} ?", op.sql())
        }
        Op::ILike => {
            single(args);
            match dialect {
                Dialect::Sqlite => format!("lower({col}) LIKE lower(?)"),
                Dialect::Postgres => format!("{col} ILIKE ?"),
            }
        }
        Op::In | Op::NotIn => {
            let items = match value {
                Value::List(items) => items.clone(),
                _ => vec![],
            };
            if items.is_empty() {
                return if op == Op::In {
                    "1 = 0".into()
                } else {
                    "1 = 1".into()
                };
            }
            let n = items.len();
            args.extend(items.into_iter().map(Val::Text));
            format!("{col} {} {}", op.sql(), placeholders(n))
        }
        Op::IsNull => format!("{col} IS NULL"),
        Op::IsNotNull => format!("{col} IS NOT NULL"),
    }
}

/// `EXISTS` / `NOT EXISTS` over a key/value side table.
pub(crate) fn key_value_clause(
    dialect: Dialect,
    table: &str,
    owner_col: &str,
    owner: &str,
    cmp: &Comparison,
    args: &mut Vec<Val>,
) -> String {
    args.push(Val::Text(cmp.key.clone()));
    // `owner IN (SELECT ...)` lets the engine start from the (key, value) index instead of
    // probing every candidate row.
    let base = format!("SELECT kv.{owner_col} FROM {table} kv WHERE kv.key = ?");
    match cmp.op {
        Op::IsNull => format!("{owner} NOT IN ({base})"),
        Op::IsNotNull => format!("{owner} IN ({base})"),
        op => {
            let c = compare(dialect, "kv.value", op, &cmp.value, args);
            format!("{owner} IN ({base} AND {c})")
        }
    }
}

fn metric_clause(
    dialect: Dialect,
    table: &str,
    owner_col: &str,
    owner: &str,
    cmp: &Comparison,
    args: &mut Vec<Val>,
) -> String {
    args.push(Val::Text(cmp.key.clone()));
    let c = compare(dialect, "m.value", cmp.op, &cmp.value, args);
    format!(
        "{owner} IN (SELECT m.{owner_col} FROM {table} m WHERE m.key = ? AND m.is_nan = 0 AND {c})"
    )
}

const RUN_COLUMNS: &str = "r.run_uuid, r.experiment_id, r.name, r.user_id, r.status, \
                           r.start_time, r.end_time, r.lifecycle_stage, r.artifact_uri";

fn run_info_from(row: &Row) -> RunInfo {
    RunInfo {
        run_id: row[0].text(),
        experiment_id: row[1].text(),
        run_name: row[2].text(),
        user_id: row[3].text(),
        status: RunStatus::parse(&row[4].text()).unwrap_or(RunStatus::Running),
        start_time: row[5].int(),
        end_time: row[6].opt_int(),
        lifecycle_stage: LifecycleStage::parse(&row[7].text()),
        artifact_uri: row[8].text(),
    }
}

fn run_attr_column(key: &str) -> &'static str {
    match key {
        "run_id" => "r.run_uuid",
        "run_name" => "r.name",
        "status" => "r.status",
        "user_id" => "r.user_id",
        "artifact_uri" => "r.artifact_uri",
        "lifecycle_stage" => "r.lifecycle_stage",
        "end_time" => "r.end_time",
        _ => "r.start_time",
    }
}

fn load_runs(tx: &mut dyn Tx, ids: &[String]) -> Result<Vec<Run>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let mut runs: HashMap<String, Run> = HashMap::with_capacity(ids.len());
    for row in query_in(
        tx,
        &format!("SELECT {RUN_COLUMNS} FROM runs r WHERE r.run_uuid IN "),
        ids,
        "",
    )? {
        let info = run_info_from(&row);
        runs.insert(
            info.run_id.clone(),
            Run {
                info,
                metrics: vec![],
                params: vec![],
                tags: vec![],
                dataset_inputs: vec![],
                model_inputs: vec![],
                model_outputs: vec![],
            },
        );
    }
    let sql = "SELECT run_uuid, key, value, is_nan, timestamp, step FROM latest_metrics WHERE run_uuid IN ";
    for row in query_in(tx, sql, ids, " ORDER BY key")? {
        if let Some(run) = runs.get_mut(&row[0].text()) {
            run.metrics.push(Metric {
                key: row[1].text(),
                value: metric_value(&row[2], &row[3]),
                timestamp: row[4].int(),
                step: row[5].int(),
                model_id: None,
                dataset_name: None,
                dataset_digest: None,
                run_id: None,
            });
        }
    }
    for (table, is_param) in [("params", true), ("tags", false)] {
        let sql = format!("SELECT run_uuid, key, value FROM {table} WHERE run_uuid IN ");
        for row in query_in(tx, &sql, ids, " ORDER BY key")? {
            if let Some(run) = runs.get_mut(&row[0].text()) {
                let kv = KeyValue::new(row[1].text(), row[2].text());
                if is_param {
                    run.params.push(kv);
                } else {
                    run.tags.push(kv);
                }
            }
        }
    }
    let sql = "SELECT i.run_uuid, d.dataset_uuid, d.name, d.digest, d.source_type, d.source, \
               d.schema, d.profile FROM run_inputs i JOIN datasets d ON d.dataset_uuid = \
               i.dataset_uuid WHERE i.run_uuid IN ";
    let inputs = query_in(tx, sql, ids, " ORDER BY d.name, d.digest")?;
    if !inputs.is_empty() {
        let mut input_tags: HashMap<(String, String), Vec<KeyValue>> = HashMap::new();
        let sql = "SELECT run_uuid, dataset_uuid, key, value FROM input_tags WHERE run_uuid IN ";
        for row in query_in(tx, sql, ids, " ORDER BY key")? {
            input_tags
                .entry((row[0].text(), row[1].text()))
                .or_default()
                .push(KeyValue::new(row[2].text(), row[3].text()));
        }
        for row in inputs {
            if let Some(run) = runs.get_mut(&row[0].text()) {
                run.dataset_inputs.push(DatasetInput {
                    tags: input_tags
                        .remove(&(row[0].text(), row[1].text()))
                        .unwrap_or_default(),
                    dataset: Dataset {
                        name: row[2].text(),
                        digest: row[3].text(),
                        source_type: row[4].text(),
                        source: row[5].text(),
                        schema: row[6].opt_text(),
                        profile: row[7].opt_text(),
                    },
                });
            }
        }
    }
    let sql = "SELECT run_uuid, model_id FROM run_model_inputs WHERE run_uuid IN ";
    for row in query_in(tx, sql, ids, " ORDER BY model_id")? {
        if let Some(run) = runs.get_mut(&row[0].text()) {
            run.model_inputs.push(row[1].text());
        }
    }
    let sql = "SELECT run_uuid, model_id, step FROM run_model_outputs WHERE run_uuid IN ";
    for row in query_in(tx, sql, ids, " ORDER BY step, model_id")? {
        if let Some(run) = runs.get_mut(&row[0].text()) {
            run.model_outputs.push(ModelOutput {
                model_id: row[1].text(),
                step: row[2].int(),
            });
        }
    }
    Ok(ids.iter().filter_map(|id| runs.remove(id)).collect())
}

const EXPERIMENT_COLUMNS: &str =
    "e.experiment_id, e.name, e.artifact_location, e.lifecycle_stage, e.creation_time, e.last_update_time";

fn load_experiments(tx: &mut dyn Tx, rows: Vec<Row>) -> Result<Vec<Experiment>> {
    let mut out: Vec<Experiment> = rows
        .iter()
        .map(|row| Experiment {
            experiment_id: row[0].text(),
            name: row[1].text(),
            artifact_location: row[2].text(),
            lifecycle_stage: LifecycleStage::parse(&row[3].text()),
            creation_time: row[4].int(),
            last_update_time: row[5].int(),
            tags: vec![],
        })
        .collect();
    if out.is_empty() {
        return Ok(out);
    }
    let ids: Vec<String> = out.iter().map(|e| e.experiment_id.clone()).collect();
    let int_ids: Vec<Val> = ids
        .iter()
        .map(|i| Val::Int(i.parse().unwrap_or(-1)))
        .collect();
    let mut tags: HashMap<String, Vec<KeyValue>> = HashMap::new();
    for chunk in int_ids.chunks(IN_CHUNK) {
        let sql = format!(
            "SELECT experiment_id, key, value FROM experiment_tags WHERE experiment_id IN {} ORDER BY key",
            placeholders(chunk.len())
        );
        for row in tx.query(&sql, chunk)? {
            tags.entry(row[0].text())
                .or_default()
                .push(KeyValue::new(row[1].text(), row[2].text()));
        }
    }
    for e in &mut out {
        e.tags = tags.remove(&e.experiment_id).unwrap_or_default();
    }
    Ok(out)
}

pub(crate) fn page<T>(mut items: Vec<T>, offset: u64, limit: u64) -> Page<T> {
    let more = items.len() as u64 > limit;
    if more {
        items.truncate(limit as usize);
    }
    Page {
        next_offset: more.then(|| offset + limit),
        items,
    }
}

pub(crate) fn limit_args(offset: u64, limit: u64) -> [Val; 2] {
    let fetch = limit.saturating_add(1).min(i64::MAX as u64);
    [
        Val::Int(fetch as i64),
        Val::Int(offset.min(i64::MAX as u64) as i64),
    ]
}

pub(crate) fn dedupe_last(kvs: &[KeyValue]) -> Vec<&KeyValue> {
    let mut last: HashMap<&str, usize> = HashMap::new();
    for (i, kv) in kvs.iter().enumerate() {
        last.insert(&kv.key, i);
    }
    kvs.iter()
        .enumerate()
        .filter(|(i, kv)| last[kv.key.as_str()] == *i)
        .map(|(_, kv)| kv)
        .collect()
}

/// Inserts params for an owner, refusing any that would change an existing value.
fn insert_params(
    tx: &mut dyn Tx,
    table: &str,
    owner_col: &str,
    owner: &str,
    params: &[KeyValue],
) -> Result<()> {
    if params.is_empty() {
        return Ok(());
    }
    let check = |tx: &mut dyn Tx| -> Result<()> {
        let keys: Vec<String> = params.iter().map(|p| p.key.clone()).collect();
        let sql = format!("SELECT key, value FROM {table} WHERE {owner_col} = ? AND key IN ");
        for row in query_in_after(tx, &sql, &[owner.into()], &keys, "")? {
            let key = row[0].text();
            let old = row[1].text();
            if let Some(p) = params.iter().find(|p| p.key == key && p.value != old) {
                return Err(param_change_error(owner, &key, &old, &p.value));
            }
        }
        Ok(())
    };
    check(tx)?;
    let rows: Vec<Row> = params
        .iter()
        .map(|p| vec![Val::from(owner), Val::from(&p.key), Val::from(&p.value)])
        .collect();
    tx.insert_many(
        &format!("INSERT INTO {table} ({owner_col}, key, value) VALUES"),
        3,
        "ON CONFLICT DO NOTHING",
        &rows,
    )?;
    // A concurrent writer may have inserted the same key first (PostgreSQL, read committed).
    check(tx)
}

pub(crate) fn upsert_tags(
    tx: &mut dyn Tx,
    table: &str,
    owner_col: &str,
    owner: Val,
    tags: &[KeyValue],
) -> Result<()> {
    let rows: Vec<Row> = dedupe_last(tags)
        .into_iter()
        .map(|t| vec![owner.clone(), Val::from(&t.key), Val::from(&t.value)])
        .collect();
    tx.insert_many(
        &format!("INSERT INTO {table} ({owner_col}, key, value) VALUES"),
        3,
        &format!("ON CONFLICT ({owner_col}, key) DO UPDATE SET value = excluded.value"),
        &rows,
    )
}

const LOGGED_MODEL_COLUMNS: &str = "lm.model_id, lm.experiment_id, lm.name, lm.artifact_location, \
    lm.creation_timestamp, lm.last_updated_timestamp, lm.status, lm.status_message, lm.model_type, \
    lm.source_run_id, lm.lifecycle_stage";

fn load_logged_models(tx: &mut dyn Tx, rows: Vec<Row>) -> Result<Vec<LoggedModel>> {
    let mut models: Vec<LoggedModel> = rows
        .iter()
        .map(|row| LoggedModel {
            model_id: row[0].text(),
            experiment_id: row[1].text(),
            name: row[2].text(),
            artifact_uri: row[3].text(),
            creation_time: row[4].int(),
            last_updated_time: row[5].int(),
            status: LoggedModelStatus::parse(&row[6].text()).unwrap_or(LoggedModelStatus::Pending),
            status_message: row[7].opt_text(),
            model_type: row[8].opt_text(),
            source_run_id: row[9].opt_text(),
            lifecycle_stage: LifecycleStage::parse(&row[10].text()),
            tags: vec![],
            params: vec![],
            metrics: vec![],
        })
        .collect();
    if models.is_empty() {
        return Ok(models);
    }
    let ids: Vec<String> = models.iter().map(|m| m.model_id.clone()).collect();
    let mut tags: HashMap<String, Vec<KeyValue>> = HashMap::new();
    let mut params: HashMap<String, Vec<KeyValue>> = HashMap::new();
    for (table, target) in [
        ("logged_model_tags", &mut tags),
        ("logged_model_params", &mut params),
    ] {
        let sql = format!("SELECT model_id, key, value FROM {table} WHERE model_id IN ");
        for row in query_in(tx, &sql, &ids, " ORDER BY key")? {
            target
                .entry(row[0].text())
                .or_default()
                .push(KeyValue::new(row[1].text(), row[2].text()));
        }
    }
    let mut metrics: HashMap<String, Vec<Metric>> = HashMap::new();
    let sql = "SELECT model_id, key, value, is_nan, timestamp, step, run_uuid, dataset_name, \
               dataset_digest FROM logged_model_metrics WHERE model_id IN ";
    for row in query_in(tx, sql, &ids, " ORDER BY key, step, timestamp")? {
        metrics.entry(row[0].text()).or_default().push(Metric {
            key: row[1].text(),
            value: metric_value(&row[2], &row[3]),
            timestamp: row[4].int(),
            step: row[5].int(),
            model_id: Some(row[0].text()),
            run_id: row[6].opt_text(),
            dataset_name: row[7].opt_text(),
            dataset_digest: row[8].opt_text(),
        });
    }
    for m in &mut models {
        m.tags = tags.remove(&m.model_id).unwrap_or_default();
        m.params = params.remove(&m.model_id).unwrap_or_default();
        // Keep the latest value per key, as a run's data does.
        let mut latest: Vec<Metric> = Vec::new();
        for metric in metrics.remove(&m.model_id).unwrap_or_default() {
            match latest.last_mut() {
                Some(last) if last.key == metric.key => *last = metric,
                _ => latest.push(metric),
            }
        }
        m.metrics = latest;
    }
    Ok(models)
}

fn not_found_run(run_id: &str) -> Error {
    Error::not_found(format!("Run with id={run_id} not found"))
}

impl TrackingStore for SqlStore {
    fn create_experiment(
        &self,
        name: &str,
        location: ExperimentLocation,
        tags: &[KeyValue],
        now: i64,
    ) -> Result<String> {
        self.write(|tx| {
            let taken = || {
                Error::AlreadyExists(format!(
                    "Experiment(name={name}) already exists. Error: an experiment with this name \
                     exists (it may be deleted: restore it or pick another name)."
                ))
            };
            if !tx
                .query("SELECT 1 FROM experiments WHERE name = ?", &[name.into()])?
                .is_empty()
            {
                return Err(taken());
            }
            let given = match &location {
                ExperimentLocation::Given(l) => l.clone(),
                ExperimentLocation::UnderRoot(_) => String::new(),
            };
            // A concurrent create of the same name on PostgreSQL passes the check above too;
            // the unique constraint then decides, and the loser is told the name is taken.
            let rows = tx.query(
                "INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time, \
                 last_update_time) VALUES (?, ?, 'active', ?, ?) ON CONFLICT (name) DO NOTHING \
                 RETURNING experiment_id",
                &[name.into(), given.into(), now.into(), now.into()],
            )?;
            let id = rows.first().map(|r| r[0].int()).ok_or_else(taken)?;
            if let ExperimentLocation::UnderRoot(root) = location {
                tx.exec(
                    "UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?",
                    &[format!("{root}/{id}").into(), id.into()],
                )?;
            }
            upsert_tags(tx, "experiment_tags", "experiment_id", Val::Int(id), tags)?;
            Ok(id.to_string())
        })
    }

    fn get_experiment(&self, id: &str) -> Result<Option<Experiment>> {
        let id = exp_id(id)?;
        self.read(|tx| {
            let rows = tx.query(
                &format!(
                    "SELECT {EXPERIMENT_COLUMNS} FROM experiments e WHERE e.experiment_id = ?"
                ),
                &[id.into()],
            )?;
            Ok(load_experiments(tx, rows)?.pop())
        })
    }

    fn get_experiment_by_name(&self, name: &str) -> Result<Option<Experiment>> {
        self.read(|tx| {
            let rows = tx.query(
                &format!("SELECT {EXPERIMENT_COLUMNS} FROM experiments e WHERE e.name = ?"),
                &[name.into()],
            )?;
            Ok(load_experiments(tx, rows)?.pop())
        })
    }

    fn search_experiments(&self, q: &ExperimentQuery) -> Result<Page<Experiment>> {
        self.read(|tx| {
            let d = tx.dialect();
            let mut args: Vec<Val> = q.view.stages().iter().map(|s| Val::from(*s)).collect();
            let mut sql = format!(
                "SELECT {EXPERIMENT_COLUMNS} FROM experiments e WHERE e.lifecycle_stage IN {}",
                placeholders(args.len())
            );
            for cmp in &q.filter {
                let clause = match cmp.entity {
                    Entity::Tag => key_value_clause(
                        d,
                        "experiment_tags",
                        "experiment_id",
                        "e.experiment_id",
                        cmp,
                        &mut args,
                    ),
                    _ => {
                        let col = match cmp.key.as_str() {
                            "name" => "e.name",
                            "creation_time" => "e.creation_time",
                            "last_update_time" => "e.last_update_time",
                            _ => "CAST(e.experiment_id AS TEXT)",
                        };
                        compare(d, col, cmp.op, &cmp.value, &mut args)
                    }
                };
                sql.push_str(" AND ");
                sql.push_str(&clause);
            }
            let mut order = Vec::new();
            for o in &q.order_by {
                let col = match (o.entity, o.key.as_str()) {
                    (Entity::Attribute, "name") => "e.name",
                    (Entity::Attribute, "creation_time") => "e.creation_time",
                    (Entity::Attribute, "last_update_time") => "e.last_update_time",
                    (Entity::Attribute, "experiment_id") => "e.experiment_id",
                    _ => {
                        return Err(Error::invalid(format!(
                            "Invalid order_by entity for experiments: '{}'",
                            o.key
                        )))
                    }
                };
                order.push(format!(
                    "{col} {}",
                    if o.ascending { "ASC" } else { "DESC" }
                ));
            }
            if order.is_empty() {
                order.push("e.creation_time DESC".into());
            }
            order.push("e.experiment_id ASC".into());
            sql.push_str(&format!(" ORDER BY {} LIMIT ? OFFSET ?", order.join(", ")));
            args.extend(limit_args(q.offset, q.limit));
            let rows = tx.query(&sql, &args)?;
            let items = load_experiments(tx, rows)?;
            Ok(page(items, q.offset, q.limit))
        })
    }

    fn rename_experiment(&self, id: &str, new_name: &str, now: i64) -> Result<()> {
        let id = exp_id(id)?;
        self.write(|tx| {
            let taken = tx.query(
                "SELECT 1 FROM experiments WHERE name = ? AND experiment_id != ?",
                &[new_name.into(), id.into()],
            )?;
            if !taken.is_empty() {
                return Err(Error::AlreadyExists(format!(
                    "Experiment(name={new_name}) already exists."
                )));
            }
            tx.exec(
                "UPDATE experiments SET name = ?, last_update_time = ? WHERE experiment_id = ?",
                &[new_name.into(), now.into(), id.into()],
            )?;
            Ok(())
        })
    }

    fn set_experiment_stage(&self, id: &str, stage: LifecycleStage, now: i64) -> Result<()> {
        let id = exp_id(id)?;
        self.write(|tx| {
            tx.exec(
                "UPDATE experiments SET lifecycle_stage = ?, last_update_time = ? WHERE experiment_id = ?",
                &[stage.as_str().into(), now.into(), id.into()],
            )?;
            let deleted_time = (stage == LifecycleStage::Deleted).then_some(now);
            tx.exec(
                "UPDATE runs SET lifecycle_stage = ?, deleted_time = ? WHERE experiment_id = ?",
                &[stage.as_str().into(), deleted_time.into(), id.into()],
            )?;
            Ok(())
        })
    }

    fn set_experiment_tag(&self, id: &str, tag: &KeyValue) -> Result<()> {
        let id = exp_id(id)?;
        self.write(|tx| {
            upsert_tags(
                tx,
                "experiment_tags",
                "experiment_id",
                Val::Int(id),
                std::slice::from_ref(tag),
            )
        })
    }

    fn delete_experiment_tag(&self, id: &str, key: &str) -> Result<bool> {
        let id = exp_id(id)?;
        self.write(|tx| {
            Ok(tx.exec(
                "DELETE FROM experiment_tags WHERE experiment_id = ? AND key = ?",
                &[id.into(), key.into()],
            )? > 0)
        })
    }

    fn create_run(&self, info: &RunInfo, tags: &[KeyValue]) -> Result<()> {
        let exp = exp_id(&info.experiment_id)?;
        self.write(|tx| {
            tx.exec(
                "INSERT INTO runs (run_uuid, experiment_id, name, user_id, status, start_time, \
                 end_time, lifecycle_stage, artifact_uri) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                &[
                    (&info.run_id).into(),
                    exp.into(),
                    (&info.run_name).into(),
                    (&info.user_id).into(),
                    info.status.as_str().into(),
                    info.start_time.into(),
                    info.end_time.into(),
                    info.lifecycle_stage.as_str().into(),
                    (&info.artifact_uri).into(),
                ],
            )?;
            upsert_tags(tx, "tags", "run_uuid", Val::from(&info.run_id), tags)
        })
    }

    fn get_run(&self, run_id: &str) -> Result<Option<Run>> {
        self.read(|tx| Ok(load_runs(tx, &[run_id.to_string()])?.pop()))
    }

    fn get_run_info(&self, run_id: &str) -> Result<Option<RunInfo>> {
        self.read(|tx| {
            let rows = tx.query(
                &format!("SELECT {RUN_COLUMNS} FROM runs r WHERE r.run_uuid = ?"),
                &[run_id.into()],
            )?;
            Ok(rows.first().map(run_info_from))
        })
    }

    fn update_run(
        &self,
        run_id: &str,
        status: Option<RunStatus>,
        end_time: Option<i64>,
        run_name: Option<&str>,
    ) -> Result<()> {
        self.write(|tx| {
            let n = tx.exec(
                "UPDATE runs SET status = COALESCE(?, status), end_time = COALESCE(?, end_time), \
                 name = COALESCE(?, name) WHERE run_uuid = ?",
                &[
                    status.map(|s| s.as_str()).into(),
                    end_time.into(),
                    run_name.into(),
                    run_id.into(),
                ],
            )?;
            if n == 0 {
                return Err(not_found_run(run_id));
            }
            if let Some(name) = run_name {
                upsert_tags(
                    tx,
                    "tags",
                    "run_uuid",
                    run_id.into(),
                    &[KeyValue::new(RUN_NAME_TAG, name)],
                )?;
            }
            Ok(())
        })
    }

    fn set_run_stage(&self, run_id: &str, stage: LifecycleStage, now: i64) -> Result<()> {
        self.write(|tx| {
            let deleted_time = (stage == LifecycleStage::Deleted).then_some(now);
            let n = tx.exec(
                "UPDATE runs SET lifecycle_stage = ?, deleted_time = ? WHERE run_uuid = ?",
                &[stage.as_str().into(), deleted_time.into(), run_id.into()],
            )?;
            if n == 0 {
                return Err(not_found_run(run_id));
            }
            Ok(())
        })
    }

    fn log_batch(
        &self,
        run_id: &str,
        metrics: &[Metric],
        params: &[KeyValue],
        tags: &[KeyValue],
    ) -> Result<()> {
        self.write(|tx| {
            insert_params(tx, "params", "run_uuid", run_id, params)?;
            if !tags.is_empty() {
                upsert_tags(tx, "tags", "run_uuid", run_id.into(), tags)?;
            }
            if metrics.is_empty() {
                return Ok(());
            }
            let mut rows = Vec::with_capacity(metrics.len());
            let mut model_rows = Vec::new();
            // The newest observation per key within this batch: (step, timestamp, value).
            let mut newest: HashMap<&str, &Metric> = HashMap::new();
            for m in metrics {
                let (value, is_nan) = metric_value_args(m.value);
                rows.push(vec![
                    run_id.into(),
                    (&m.key).into(),
                    m.step.into(),
                    m.timestamp.into(),
                    value.clone(),
                    is_nan.clone(),
                    m.model_id.clone().into(),
                    m.dataset_name.clone().into(),
                    m.dataset_digest.clone().into(),
                ]);
                if let Some(model_id) = &m.model_id {
                    model_rows.push(vec![
                        model_id.into(),
                        (&m.key).into(),
                        m.step.into(),
                        m.timestamp.into(),
                        value,
                        is_nan,
                        run_id.into(),
                        m.dataset_name.clone().into(),
                        m.dataset_digest.clone().into(),
                    ]);
                }
                let rank = |x: &Metric| (x.step, x.timestamp, if x.value.is_nan() { 0.0 } else { x.value });
                match newest.get(m.key.as_str()) {
                    Some(old) if rank(old) >= rank(m) => {}
                    _ => {
                        newest.insert(&m.key, m);
                    }
                }
            }
            tx.insert_many(
                "INSERT INTO metrics (run_uuid, key, step, timestamp, value, is_nan, model_id, \
                 dataset_name, dataset_digest) VALUES",
                9,
                "ON CONFLICT DO NOTHING",
                &rows,
            )?;
            tx.insert_many(
                "INSERT INTO logged_model_metrics (model_id, key, step, timestamp, value, is_nan, \
                 run_uuid, dataset_name, dataset_digest) VALUES",
                9,
                "ON CONFLICT DO NOTHING",
                &model_rows,
            )?;
            let latest: Vec<Row> = newest
                .values()
                .map(|m| {
                    let (value, is_nan) = metric_value_args(m.value);
                    vec![run_id.into(), (&m.key).into(), m.step.into(), m.timestamp.into(), value, is_nan]
                })
                .collect();
            tx.insert_many(
                "INSERT INTO latest_metrics (run_uuid, key, step, timestamp, value, is_nan) VALUES",
                6,
                "ON CONFLICT (run_uuid, key) DO UPDATE SET step = excluded.step, \
                 timestamp = excluded.timestamp, value = excluded.value, is_nan = excluded.is_nan \
                 WHERE excluded.step > latest_metrics.step \
                 OR (excluded.step = latest_metrics.step AND excluded.timestamp > latest_metrics.timestamp) \
                 OR (excluded.step = latest_metrics.step AND excluded.timestamp = latest_metrics.timestamp \
                     AND excluded.value > latest_metrics.value)",
                &latest,
            )
        })
    }

    fn delete_run_tag(&self, run_id: &str, key: &str) -> Result<bool> {
        self.write(|tx| {
            Ok(tx.exec(
                "DELETE FROM tags WHERE run_uuid = ? AND key = ?",
                &[run_id.into(), key.into()],
            )? > 0)
        })
    }

    fn metric_history(
        &self,
        run_id: &str,
        key: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Page<Metric>> {
        self.read(|tx| {
            let mut args: Vec<Val> = vec![run_id.into(), key.into()];
            args.extend(limit_args(offset, limit));
            let rows = tx.query(
                "SELECT key, value, is_nan, timestamp, step, model_id, dataset_name, dataset_digest \
                 FROM metrics WHERE run_uuid = ? AND key = ? ORDER BY step, timestamp, value \
                 LIMIT ? OFFSET ?",
                &args,
            )?;
            Ok(page(rows.iter().map(history_metric).collect(), offset, limit))
        })
    }

    fn metric_history_in_steps(
        &self,
        run_id: &str,
        key: &str,
        start: i64,
        end: i64,
    ) -> Result<Vec<Metric>> {
        self.read(|tx| {
            let rows = tx.query(
                "SELECT key, value, is_nan, timestamp, step, model_id, dataset_name, dataset_digest \
                 FROM metrics WHERE run_uuid = ? AND key = ? AND step >= ? AND step <= ? \
                 ORDER BY step, timestamp, value",
                &[run_id.into(), key.into(), start.into(), end.into()],
            )?;
            Ok(rows.iter().map(history_metric).collect())
        })
    }

    fn metric_points(
        &self,
        run_id: &str,
        key: &str,
        start: i64,
        end: i64,
    ) -> Result<Vec<MetricPoint>> {
        self.read(|tx| {
            let rows = tx.query(
                "SELECT step, timestamp, value, is_nan FROM metrics \
                 WHERE run_uuid = ? AND key = ? AND step >= ? AND step <= ? \
                 ORDER BY step, timestamp, value",
                &[run_id.into(), key.into(), start.into(), end.into()],
            )?;
            Ok(rows
                .iter()
                .map(|r| MetricPoint {
                    step: r[0].int(),
                    timestamp: r[1].int(),
                    value: metric_value(&r[2], &r[3]),
                })
                .collect())
        })
    }

    fn log_inputs(
        &self,
        run_id: &str,
        datasets: &[DatasetInput],
        model_ids: &[String],
    ) -> Result<()> {
        self.write(|tx| {
            let exp = tx.query("SELECT experiment_id FROM runs WHERE run_uuid = ?", &[run_id.into()])?;
            let exp = exp.first().map(|r| r[0].int()).ok_or_else(|| not_found_run(run_id))?;
            for input in datasets {
                let d = &input.dataset;
                tx.exec(
                    "INSERT INTO datasets (dataset_uuid, experiment_id, name, digest, source_type, \
                     source, schema, profile) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    &[
                        cairn_core::ids::new_run_id().into(),
                        exp.into(),
                        (&d.name).into(),
                        (&d.digest).into(),
                        (&d.source_type).into(),
                        (&d.source).into(),
                        d.schema.clone().into(),
                        d.profile.clone().into(),
                    ],
                )?;
                let found = tx.query(
                    "SELECT dataset_uuid FROM datasets WHERE experiment_id = ? AND name = ? AND digest = ?",
                    &[exp.into(), (&d.name).into(), (&d.digest).into()],
                )?;
                let dataset_uuid = found.first().map(|r| r[0].text()).ok_or_else(|| storage("dataset vanished"))?;
                tx.exec(
                    "INSERT INTO run_inputs (run_uuid, dataset_uuid) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    &[run_id.into(), (&dataset_uuid).into()],
                )?;
                let rows: Vec<Row> = dedupe_last(&input.tags)
                    .into_iter()
                    .map(|t| vec![run_id.into(), (&dataset_uuid).into(), (&t.key).into(), (&t.value).into()])
                    .collect();
                tx.insert_many(
                    "INSERT INTO input_tags (run_uuid, dataset_uuid, key, value) VALUES",
                    4,
                    "ON CONFLICT (run_uuid, dataset_uuid, key) DO UPDATE SET value = excluded.value",
                    &rows,
                )?;
            }
            let rows: Vec<Row> = model_ids.iter().map(|m| vec![run_id.into(), m.into()]).collect();
            tx.insert_many("INSERT INTO run_model_inputs (run_uuid, model_id) VALUES", 2, "ON CONFLICT DO NOTHING", &rows)
        })
    }

    fn log_outputs(&self, run_id: &str, outputs: &[ModelOutput]) -> Result<()> {
        self.write(|tx| {
            let rows: Vec<Row> = outputs
                .iter()
                .map(|o| vec![run_id.into(), (&o.model_id).into(), o.step.into()])
                .collect();
            tx.insert_many(
                "INSERT INTO run_model_outputs (run_uuid, model_id, step) VALUES",
                3,
                "ON CONFLICT (run_uuid, model_id) DO UPDATE SET step = excluded.step",
                &rows,
            )
        })
    }

    fn search_runs(&self, q: &RunQuery) -> Result<Page<Run>> {
        self.read(|tx| {
            let d = tx.dialect();
            let mut args: Vec<Val> = Vec::new();
            let mut sql = String::from("SELECT r.run_uuid FROM runs r");
            let mut order = Vec::new();
            let mut orders_by_start_time = false;
            for (i, o) in q.order_by.iter().enumerate() {
                let dir = if o.ascending { "ASC" } else { "DESC" };
                let table = match o.entity {
                    Entity::Metric => "latest_metrics",
                    Entity::Param => "params",
                    Entity::Tag => "tags",
                    // Metadata and spans are trace entities: the parser never gives them here.
                    Entity::Attribute
                    | Entity::Dataset
                    | Entity::Metadata
                    | Entity::Span
                    | Entity::Feedback
                    | Entity::Expectation => {
                        let col = run_attr_column(&o.key);
                        orders_by_start_time |= col == "r.start_time";
                        order.push(format!("{col} {dir}"));
                        continue;
                    }
                };
                sql.push_str(&format!(
                    " LEFT JOIN {table} o{i} ON o{i}.run_uuid = r.run_uuid AND o{i}.key = ?"
                ));
                args.push(Val::from(&o.key));
                if o.entity == Entity::Metric {
                    order.push(format!(
                        "CASE WHEN o{i}.is_nan = 1 THEN 1 WHEN o{i}.value IS NULL THEN 2 ELSE 0 END"
                    ));
                } else {
                    order.push(format!("CASE WHEN o{i}.value IS NULL THEN 1 ELSE 0 END"));
                }
                order.push(format!("o{i}.value {dir}"));
            }
            let exps: Vec<Val> = q
                .experiment_ids
                .iter()
                .map(|e| exp_id(e).map(Val::Int))
                .collect::<Result<_>>()?;
            sql.push_str(&format!(" WHERE r.experiment_id IN {}", placeholders(exps.len())));
            args.extend(exps);
            let stages = q.view.stages();
            sql.push_str(&format!(" AND r.lifecycle_stage IN {}", placeholders(stages.len())));
            args.extend(stages.iter().map(|s| Val::from(*s)));
            for cmp in &q.filter {
                let clause = match cmp.entity {
                    Entity::Metric => metric_clause(d, "latest_metrics", "run_uuid", "r.run_uuid", cmp, &mut args),
                    Entity::Param => key_value_clause(d, "params", "run_uuid", "r.run_uuid", cmp, &mut args),
                    Entity::Tag => key_value_clause(d, "tags", "run_uuid", "r.run_uuid", cmp, &mut args),
                    Entity::Attribute
                    | Entity::Metadata
                    | Entity::Span
                    | Entity::Feedback
                    | Entity::Expectation => {
                        let value = match (&cmp.value, cmp.key.as_str()) {
                            (Value::Num(n), "start_time" | "end_time") => Value::Num(n.trunc()),
                            (v, _) => v.clone(),
                        };
                        compare(d, run_attr_column(&cmp.key), cmp.op, &value, &mut args)
                    }
                    Entity::Dataset if cmp.key == "context" => {
                        let c = compare(d, "it.value", cmp.op, &cmp.value, &mut args);
                        format!(
                            "EXISTS (SELECT 1 FROM input_tags it WHERE it.run_uuid = r.run_uuid \
                             AND it.key = 'mlflow.data.context' AND {c})"
                        )
                    }
                    Entity::Dataset => {
                        let col = if cmp.key == "digest" { "ds.digest" } else { "ds.name" };
                        let c = compare(d, col, cmp.op, &cmp.value, &mut args);
                        format!(
                            "EXISTS (SELECT 1 FROM run_inputs ri JOIN datasets ds ON \
                             ds.dataset_uuid = ri.dataset_uuid WHERE ri.run_uuid = r.run_uuid AND {c})"
                        )
                    }
                };
                sql.push_str(" AND ");
                sql.push_str(&clause);
            }
            if !orders_by_start_time {
                order.push("r.start_time DESC".into());
            }
            order.push("r.run_uuid ASC".into());
            sql.push_str(&format!(" ORDER BY {} LIMIT ? OFFSET ?", order.join(", ")));
            args.extend(limit_args(q.offset, q.limit));
            let ids: Vec<String> = tx.query(&sql, &args)?.iter().map(|r| r[0].text()).collect();
            let p = page(ids, q.offset, q.limit);
            Ok(Page { items: load_runs(tx, &p.items)?, next_offset: p.next_offset })
        })
    }

    fn create_logged_model(&self, m: &LoggedModel) -> Result<()> {
        let exp = exp_id(&m.experiment_id)?;
        self.write(|tx| {
            tx.exec(
                "INSERT INTO logged_models (model_id, experiment_id, name, artifact_location, \
                 creation_timestamp, last_updated_timestamp, status, status_message, model_type, \
                 source_run_id, lifecycle_stage) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                &[
                    (&m.model_id).into(),
                    exp.into(),
                    (&m.name).into(),
                    (&m.artifact_uri).into(),
                    m.creation_time.into(),
                    m.last_updated_time.into(),
                    m.status.as_str().into(),
                    m.status_message.clone().into(),
                    m.model_type.clone().into(),
                    m.source_run_id.clone().into(),
                    m.lifecycle_stage.as_str().into(),
                ],
            )?;
            upsert_tags(
                tx,
                "logged_model_tags",
                "model_id",
                Val::from(&m.model_id),
                &m.tags,
            )?;
            insert_params(
                tx,
                "logged_model_params",
                "model_id",
                &m.model_id,
                &m.params,
            )
        })
    }

    fn get_logged_model(&self, model_id: &str) -> Result<Option<LoggedModel>> {
        self.read(|tx| {
            let rows = tx.query(
                &format!(
                    "SELECT {LOGGED_MODEL_COLUMNS} FROM logged_models lm WHERE lm.model_id = ?"
                ),
                &[model_id.into()],
            )?;
            Ok(load_logged_models(tx, rows)?.pop())
        })
    }

    fn set_logged_model_status(
        &self,
        model_id: &str,
        status: LoggedModelStatus,
        message: Option<&str>,
        now: i64,
    ) -> Result<()> {
        self.write(|tx| {
            tx.exec(
                "UPDATE logged_models SET status = ?, status_message = ?, last_updated_timestamp = ? \
                 WHERE model_id = ?",
                &[status.as_str().into(), message.into(), now.into(), model_id.into()],
            )?;
            Ok(())
        })
    }

    fn set_logged_model_tags(&self, model_id: &str, tags: &[KeyValue], now: i64) -> Result<()> {
        self.write(|tx| {
            upsert_tags(tx, "logged_model_tags", "model_id", model_id.into(), tags)?;
            tx.exec(
                "UPDATE logged_models SET last_updated_timestamp = ? WHERE model_id = ?",
                &[now.into(), model_id.into()],
            )?;
            Ok(())
        })
    }

    fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<bool> {
        self.write(|tx| {
            Ok(tx.exec(
                "DELETE FROM logged_model_tags WHERE model_id = ? AND key = ?",
                &[model_id.into(), key.into()],
            )? > 0)
        })
    }

    fn log_logged_model_params(&self, model_id: &str, params: &[KeyValue], now: i64) -> Result<()> {
        self.write(|tx| {
            insert_params(tx, "logged_model_params", "model_id", model_id, params)?;
            tx.exec(
                "UPDATE logged_models SET last_updated_timestamp = ? WHERE model_id = ?",
                &[now.into(), model_id.into()],
            )?;
            Ok(())
        })
    }

    fn delete_logged_model(&self, model_id: &str, now: i64) -> Result<()> {
        self.write(|tx| {
            tx.exec(
                "UPDATE logged_models SET lifecycle_stage = 'deleted', last_updated_timestamp = ? \
                 WHERE model_id = ?",
                &[now.into(), model_id.into()],
            )?;
            Ok(())
        })
    }

    fn runs_with_input_digest(&self, digest: &str) -> Result<Vec<String>> {
        self.read(|tx| {
            let rows = tx.query(
                "SELECT DISTINCT r.run_uuid, r.start_time FROM runs r \
                 JOIN run_inputs i ON i.run_uuid = r.run_uuid \
                 JOIN datasets d ON d.dataset_uuid = i.dataset_uuid \
                 WHERE length(d.digest) >= 8 AND substr(?, 1, length(d.digest)) = lower(d.digest) \
                 ORDER BY r.start_time, r.run_uuid",
                &[digest.into()],
            )?;
            Ok(rows.iter().map(|r| r[0].text()).collect())
        })
    }

    fn experiment_activity(&self, experiment_ids: &[String]) -> Result<Vec<ExperimentActivity>> {
        let exps: Vec<Val> = experiment_ids
            .iter()
            .map(|e| exp_id(e).map(Val::Int))
            .collect::<Result<_>>()?;
        self.read(|tx| {
            let rows = tx.query(
                &format!(
                    "SELECT experiment_id, COUNT(*), MAX(COALESCE(end_time, start_time)), \
                     MAX(start_time) FROM runs WHERE lifecycle_stage = 'active' \
                     AND experiment_id IN {} GROUP BY experiment_id",
                    placeholders(exps.len())
                ),
                &exps,
            )?;
            Ok(rows
                .iter()
                .map(|r| ExperimentActivity {
                    experiment_id: r[0].int().to_string(),
                    runs: r[1].int().max(0) as u64,
                    last_activity: match (r[2].opt_int(), r[3].opt_int()) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        (a, b) => a.or(b),
                    },
                })
                .collect())
        })
    }

    fn dataset_summaries(
        &self,
        experiment_ids: &[String],
        limit: u64,
    ) -> Result<Vec<DatasetSummary>> {
        let mut params: Vec<Val> = experiment_ids
            .iter()
            .map(|e| exp_id(e).map(Val::Int))
            .collect::<Result<_>>()?;
        if params.is_empty() {
            return Ok(vec![]);
        }
        params.push(Val::Int(i64::try_from(limit).unwrap_or(i64::MAX)));
        self.read(|tx| {
            // The context tag is joined from the left: an input without one is listed too.
            let rows = tx.query(
                &format!(
                    "SELECT DISTINCT d.experiment_id, d.name, d.digest, t.value FROM datasets d \
                     JOIN run_inputs i ON i.dataset_uuid = d.dataset_uuid \
                     LEFT JOIN input_tags t ON t.run_uuid = i.run_uuid \
                     AND t.dataset_uuid = i.dataset_uuid AND t.key = 'mlflow.data.context' \
                     WHERE d.experiment_id IN {} \
                     ORDER BY d.experiment_id, d.name, d.digest, t.value LIMIT ?",
                    placeholders(params.len() - 1)
                ),
                &params,
            )?;
            Ok(rows
                .iter()
                .map(|r| DatasetSummary {
                    experiment_id: r[0].int().to_string(),
                    name: r[1].text(),
                    digest: r[2].text(),
                    context: r[3].opt_text(),
                })
                .collect())
        })
    }

    fn run_keys(
        &self,
        experiment_ids: &[String],
        kind: RunKeyKind,
        contains: &str,
        limit: u64,
    ) -> Result<Vec<String>> {
        let table = match kind {
            RunKeyKind::Metric => "latest_metrics",
            RunKeyKind::Param => "params",
            RunKeyKind::Tag => "tags",
        };
        let mut args: Vec<Val> = experiment_ids
            .iter()
            .map(|e| exp_id(e).map(Val::Int))
            .collect::<Result<_>>()?;
        self.read(|tx| {
            let mut sql = format!(
                "SELECT DISTINCT k.key FROM {table} k JOIN runs r ON r.run_uuid = k.run_uuid \
                 WHERE r.experiment_id IN {} AND r.lifecycle_stage = 'active'",
                placeholders(args.len())
            );
            if !contains.is_empty() {
                let pattern = format!("%{}%", like_escape(contains));
                sql.push_str(match tx.dialect() {
                    Dialect::Sqlite => " AND lower(k.key) LIKE lower(?) ESCAPE '\\'",
                    Dialect::Postgres => " AND k.key ILIKE ? ESCAPE '\\'",
                });
                args.push(Val::from(&pattern));
            }
            sql.push_str(" ORDER BY k.key LIMIT ?");
            args.push(Val::Int(limit.min(i64::MAX as u64) as i64));
            Ok(tx.query(&sql, &args)?.iter().map(|r| r[0].text()).collect())
        })
    }

    fn search_logged_models(&self, q: &LoggedModelQuery) -> Result<Page<LoggedModel>> {
        self.read(|tx| {
            let d = tx.dialect();
            let mut args: Vec<Val> = Vec::new();
            let mut sql = format!("SELECT {LOGGED_MODEL_COLUMNS} FROM logged_models lm");
            let mut order = Vec::new();
            for (i, o) in q.order_by.iter().enumerate() {
                let dir = if o.ascending { "ASC" } else { "DESC" };
                match o.entity {
                    Entity::Metric => {
                        sql.push_str(&format!(
                            " LEFT JOIN (SELECT model_id, key, MAX(value) AS value FROM \
                             logged_model_metrics GROUP BY model_id, key) o{i} ON \
                             o{i}.model_id = lm.model_id AND o{i}.key = ?"
                        ));
                        args.push(Val::from(&o.key));
                        order.push(format!(
                            "CASE WHEN o{i}.value IS NULL THEN 1 ELSE 0 END, o{i}.value {dir}"
                        ));
                    }
                    Entity::Attribute => order.push(format!("{} {dir}", model_attr_column(&o.key))),
                    _ => {
                        return Err(Error::invalid(format!(
                            "Invalid order_by field for logged models: '{}'",
                            o.key
                        )))
                    }
                }
            }
            sql.push_str(" WHERE lm.lifecycle_stage = 'active'");
            if !q.experiment_ids.is_empty() {
                let exps: Vec<Val> = q
                    .experiment_ids
                    .iter()
                    .map(|e| exp_id(e).map(Val::Int))
                    .collect::<Result<_>>()?;
                sql.push_str(&format!(
                    " AND lm.experiment_id IN {}",
                    placeholders(exps.len())
                ));
                args.extend(exps);
            }
            // MLflow's `datasets`: metrics count only when logged on one of them.
            let on_datasets = |args: &mut Vec<Val>| -> String {
                let parts: Vec<String> = q
                    .datasets
                    .iter()
                    .map(|(name, digest)| {
                        args.push(Val::Text(name.clone()));
                        match digest {
                            Some(digest) => {
                                args.push(Val::Text(digest.clone()));
                                "(m.dataset_name = ? AND m.dataset_digest = ?)".to_string()
                            }
                            None => "m.dataset_name = ?".to_string(),
                        }
                    })
                    .collect();
                format!("({})", parts.join(" OR "))
            };
            let has_metric_clause = q.filter.iter().any(|c| c.entity == Entity::Metric);
            if !q.datasets.is_empty() && !has_metric_clause {
                let any = on_datasets(&mut args);
                sql.push_str(&format!(
                    " AND lm.model_id IN (SELECT m.model_id FROM logged_model_metrics m WHERE {any})"
                ));
            }
            for cmp in &q.filter {
                let clause = match cmp.entity {
                    Entity::Metric if !q.datasets.is_empty() => {
                        args.push(Val::Text(cmp.key.clone()));
                        let c = compare(d, "m.value", cmp.op, &cmp.value, &mut args);
                        let any = on_datasets(&mut args);
                        format!(
                            "lm.model_id IN (SELECT m.model_id FROM logged_model_metrics m \
                             WHERE m.key = ? AND m.is_nan = 0 AND {c} AND {any})"
                        )
                    }
                    Entity::Metric => metric_clause(
                        d,
                        "logged_model_metrics",
                        "model_id",
                        "lm.model_id",
                        cmp,
                        &mut args,
                    ),
                    Entity::Param => key_value_clause(
                        d,
                        "logged_model_params",
                        "model_id",
                        "lm.model_id",
                        cmp,
                        &mut args,
                    ),
                    Entity::Tag => key_value_clause(
                        d,
                        "logged_model_tags",
                        "model_id",
                        "lm.model_id",
                        cmp,
                        &mut args,
                    ),
                    Entity::Attribute
                    | Entity::Dataset
                    | Entity::Metadata
                    | Entity::Span
                    | Entity::Feedback
                    | Entity::Expectation => {
                        let col = model_attr_column(&cmp.key);
                        let col = if col == "lm.experiment_id" {
                            "CAST(lm.experiment_id AS TEXT)"
                        } else {
                            col
                        };
                        compare(d, col, cmp.op, &cmp.value, &mut args)
                    }
                };
                sql.push_str(" AND ");
                sql.push_str(&clause);
            }
            order.push("lm.creation_timestamp DESC".into());
            order.push("lm.model_id ASC".into());
            sql.push_str(&format!(" ORDER BY {} LIMIT ? OFFSET ?", order.join(", ")));
            args.extend(limit_args(q.offset, q.limit));
            let rows = tx.query(&sql, &args)?;
            let p = page(rows, q.offset, q.limit);
            Ok(Page {
                items: load_logged_models(tx, p.items)?,
                next_offset: p.next_offset,
            })
        })
    }
}

fn model_attr_column(key: &str) -> &'static str {
    match key {
        "name" => "lm.name",
        "model_id" => "lm.model_id",
        "status" => "lm.status",
        "source_run_id" => "lm.source_run_id",
        "model_type" => "lm.model_type",
        "experiment_id" => "lm.experiment_id",
        "last_updated_timestamp" => "lm.last_updated_timestamp",
        _ => "lm.creation_timestamp",
    }
}

fn history_metric(row: &Row) -> Metric {
    Metric {
        key: row[0].text(),
        value: metric_value(&row[1], &row[2]),
        timestamp: row[3].int(),
        step: row[4].int(),
        model_id: row[5].opt_text(),
        dataset_name: row[6].opt_text(),
        dataset_digest: row[7].opt_text(),
        run_id: None,
    }
}
