//! The model registry on the same SQL store: [`RegistryStore`] for [`SqlStore`].
use crate::db::{Row, Tx, Val};
use crate::tracking::{compare, key_value_clause, limit_args, page, upsert_tags, SqlStore};
use cairn_core::model::*;
use cairn_core::search::{Entity, Op, Value};
use cairn_core::{
    Error, ModelVersionQuery, RegisteredModelQuery, RegistryStore, Result, VersionIdentity,
    VersionSelector, FEATURE_SERVICE_TAG,
};
use std::collections::HashMap;

const VERSION_COLUMNS: &str = "mv.name, mv.version, mv.creation_time, mv.last_updated_time, \
    mv.user_id, mv.current_stage, mv.description, mv.source, mv.storage_location, mv.run_id, \
    mv.run_link, mv.model_id, mv.status";

fn version_from(row: &Row) -> ModelVersion {
    ModelVersion {
        name: row[0].text(),
        version: row[1].int(),
        creation_time: row[2].int(),
        last_updated_time: row[3].int(),
        user_id: row[4].text(),
        current_stage: Stage::parse(&row[5].text()).unwrap_or(Stage::None),
        description: row[6].text(),
        source: row[7].text(),
        storage_location: row[8].text(),
        run_id: row[9].opt_text(),
        run_link: row[10].opt_text(),
        model_id: row[11].opt_text(),
        status: row[12].text(),
        tags: vec![],
        aliases: vec![],
    }
}

fn names_in(tx: &mut dyn Tx, sql: &str, names: &[String], tail: &str) -> Result<Vec<Row>> {
    crate::tracking::query_in(tx, sql, names, tail)
}

/// Fills tags and aliases of versions (two queries for the whole list).
fn load_versions(tx: &mut dyn Tx, rows: Vec<Row>) -> Result<Vec<ModelVersion>> {
    let mut versions: Vec<ModelVersion> = rows.iter().map(version_from).collect();
    if versions.is_empty() {
        return Ok(versions);
    }
    let mut names: Vec<String> = versions.iter().map(|v| v.name.clone()).collect();
    names.sort();
    names.dedup();
    let mut tags: HashMap<(String, i64), Vec<KeyValue>> = HashMap::new();
    let sql = "SELECT name, version, key, value FROM model_version_tags WHERE name IN ";
    for row in names_in(tx, sql, &names, " ORDER BY key")? {
        tags.entry((row[0].text(), row[1].int()))
            .or_default()
            .push(KeyValue::new(row[2].text(), row[3].text()));
    }
    let mut aliases: HashMap<(String, i64), Vec<String>> = HashMap::new();
    let sql = "SELECT name, version, alias FROM registered_model_aliases WHERE name IN ";
    for row in names_in(tx, sql, &names, " ORDER BY alias")? {
        aliases
            .entry((row[0].text(), row[1].int()))
            .or_default()
            .push(row[2].text());
    }
    for v in &mut versions {
        let key = (v.name.clone(), v.version);
        v.tags = tags.remove(&key).unwrap_or_default();
        v.aliases = aliases.remove(&key).unwrap_or_default();
    }
    Ok(versions)
}

/// Fills tags, aliases and latest versions per stage of models (four queries for the list).
fn load_models(tx: &mut dyn Tx, rows: Vec<Row>) -> Result<Vec<RegisteredModel>> {
    let mut models: Vec<RegisteredModel> = rows
        .iter()
        .map(|row| RegisteredModel {
            name: row[0].text(),
            creation_time: row[1].int(),
            last_updated_time: row[2].int(),
            description: row[3].text(),
            latest_versions: vec![],
            tags: vec![],
            aliases: vec![],
        })
        .collect();
    if models.is_empty() {
        return Ok(models);
    }
    let names: Vec<String> = models.iter().map(|m| m.name.clone()).collect();
    let mut tags: HashMap<String, Vec<KeyValue>> = HashMap::new();
    for row in names_in(
        tx,
        "SELECT name, key, value FROM registered_model_tags WHERE name IN ",
        &names,
        " ORDER BY key",
    )? {
        tags.entry(row[0].text())
            .or_default()
            .push(KeyValue::new(row[1].text(), row[2].text()));
    }
    let mut aliases: HashMap<String, Vec<(String, i64)>> = HashMap::new();
    for row in names_in(
        tx,
        "SELECT name, alias, version FROM registered_model_aliases WHERE name IN ",
        &names,
        " ORDER BY alias",
    )? {
        aliases
            .entry(row[0].text())
            .or_default()
            .push((row[1].text(), row[2].int()));
    }
    let sql = format!(
        "SELECT {VERSION_COLUMNS} FROM model_versions mv WHERE mv.version = (SELECT MAX(v2.version) \
         FROM model_versions v2 WHERE v2.name = mv.name AND v2.current_stage = mv.current_stage) \
         AND mv.name IN "
    );
    let latest_rows = names_in(tx, &sql, &names, " ORDER BY mv.version")?;
    let latest = load_versions(tx, latest_rows)?;
    let mut by_name: HashMap<String, Vec<ModelVersion>> = HashMap::new();
    for v in latest {
        by_name.entry(v.name.clone()).or_default().push(v);
    }
    for m in &mut models {
        m.tags = tags.remove(&m.name).unwrap_or_default();
        m.aliases = aliases.remove(&m.name).unwrap_or_default();
        m.latest_versions = by_name.remove(&m.name).unwrap_or_default();
    }
    Ok(models)
}

fn model_exists(tx: &mut dyn Tx, name: &str) -> Result<bool> {
    Ok(!tx
        .query(
            "SELECT 1 FROM registered_models WHERE name = ?",
            &[name.into()],
        )?
        .is_empty())
}

fn touch_model(tx: &mut dyn Tx, name: &str, now: i64) -> Result<()> {
    tx.exec(
        "UPDATE registered_models SET last_updated_time = ? WHERE name = ?",
        &[now.into(), name.into()],
    )?;
    Ok(())
}

fn touch_version(tx: &mut dyn Tx, name: &str, version: i64, now: i64) -> Result<()> {
    tx.exec(
        "UPDATE model_versions SET last_updated_time = ? WHERE name = ? AND version = ?",
        &[now.into(), name.into(), version.into()],
    )?;
    Ok(())
}

fn order_clause(key: &str, versions: bool) -> &'static str {
    match (key, versions) {
        ("name", false) => "rm.name",
        ("creation_timestamp", false) => "rm.creation_time",
        ("last_updated_timestamp", false) => "rm.last_updated_time",
        ("name", true) => "mv.name",
        ("version_number", true) => "mv.version",
        ("creation_timestamp", true) => "mv.creation_time",
        ("run_id", true) => "mv.run_id",
        ("source_path", true) => "mv.source",
        ("current_stage", true) => "mv.current_stage",
        (_, true) => "mv.last_updated_time",
        (_, false) => "rm.last_updated_time",
    }
}

impl RegistryStore for SqlStore {
    fn create_registered_model(
        &self,
        name: &str,
        description: &str,
        tags: &[KeyValue],
        now: i64,
    ) -> Result<()> {
        self.write(|tx| {
            let taken =
                || Error::AlreadyExists(format!("Registered Model (name={name}) already exists."));
            if model_exists(tx, name)? {
                return Err(taken());
            }
            // Two replicas creating one name at once both pass the check; the key decides.
            let inserted = tx.exec(
                "INSERT INTO registered_models (name, creation_time, last_updated_time, description) \
                 VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                &[name.into(), now.into(), now.into(), description.into()],
            )?;
            if inserted == 0 {
                return Err(taken());
            }
            upsert_tags(tx, "registered_model_tags", "name", name.into(), tags)
        })
    }

    fn get_registered_model(&self, name: &str) -> Result<Option<RegisteredModel>> {
        self.read(|tx| {
            let rows = tx.query(
                "SELECT name, creation_time, last_updated_time, description FROM registered_models WHERE name = ?",
                &[name.into()],
            )?;
            Ok(load_models(tx, rows)?.pop())
        })
    }

    fn rename_registered_model(&self, name: &str, new_name: &str, now: i64) -> Result<()> {
        self.write(|tx| {
            if model_exists(tx, new_name)? {
                return Err(Error::AlreadyExists(format!(
                    "Registered Model (name={new_name}) already exists."
                )));
            }
            for table in [
                "registered_models",
                "registered_model_tags",
                "model_versions",
                "model_version_tags",
                "registered_model_aliases",
            ] {
                tx.exec(
                    &format!("UPDATE {table} SET name = ? WHERE name = ?"),
                    &[new_name.into(), name.into()],
                )?;
            }
            touch_model(tx, new_name, now)
        })
    }

    fn update_registered_model(&self, name: &str, description: &str, now: i64) -> Result<()> {
        self.write(|tx| {
            tx.exec(
                "UPDATE registered_models SET description = ?, last_updated_time = ? WHERE name = ?",
                &[description.into(), now.into(), name.into()],
            )?;
            Ok(())
        })
    }

    fn delete_registered_model(&self, name: &str) -> Result<()> {
        self.write(|tx| {
            for table in [
                "registered_model_aliases",
                "model_version_tags",
                "model_versions",
                "registered_model_tags",
                "registered_models",
            ] {
                tx.exec(
                    &format!("DELETE FROM {table} WHERE name = ?"),
                    &[name.into()],
                )?;
            }
            Ok(())
        })
    }

    fn search_registered_models(&self, q: &RegisteredModelQuery) -> Result<Page<RegisteredModel>> {
        self.read(|tx| {
            let d = tx.dialect();
            let mut args: Vec<Val> = Vec::new();
            let mut sql = String::from(
                "SELECT rm.name, rm.creation_time, rm.last_updated_time, rm.description FROM registered_models rm WHERE 1 = 1",
            );
            for cmp in &q.filter {
                let clause = match cmp.entity {
                    // The MLflow client appends ``tag.`mlflow.prompt.is_prompt` != 'true'`` to
                    // hide prompts, so `!=` must also match models without the tag.
                    Entity::Tag if cmp.op == Op::Ne => {
                        args.push(Val::Text(cmp.key.clone()));
                        let c = compare(d, "kv.value", Op::Eq, &cmp.value, &mut args);
                        format!("rm.name NOT IN (SELECT kv.name FROM registered_model_tags kv WHERE kv.key = ? AND {c})")
                    }
                    Entity::Tag => key_value_clause(d, "registered_model_tags", "name", "rm.name", cmp, &mut args),
                    _ => compare(d, order_clause(&cmp.key, false), cmp.op, &cmp.value, &mut args),
                };
                sql.push_str(" AND ");
                sql.push_str(&clause);
            }
            let mut order: Vec<String> = Vec::new();
            for o in &q.order_by {
                if o.entity != Entity::Attribute {
                    return Err(Error::invalid(format!("Invalid order_by key for registered models: '{}'", o.key)));
                }
                order.push(format!("{} {}", order_clause(&o.key, false), if o.ascending { "ASC" } else { "DESC" }));
            }
            order.push("rm.name ASC".into());
            sql.push_str(&format!(" ORDER BY {} LIMIT ? OFFSET ?", order.join(", ")));
            args.extend(limit_args(q.offset, q.limit));
            let rows = tx.query(&sql, &args)?;
            let p = page(rows, q.offset, q.limit);
            Ok(Page { items: load_models(tx, p.items)?, next_offset: p.next_offset })
        })
    }

    fn set_registered_model_tag(&self, name: &str, tag: &KeyValue) -> Result<()> {
        self.write(|tx| {
            upsert_tags(
                tx,
                "registered_model_tags",
                "name",
                name.into(),
                std::slice::from_ref(tag),
            )
        })
    }

    fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<bool> {
        self.write(|tx| {
            Ok(tx.exec(
                "DELETE FROM registered_model_tags WHERE name = ? AND key = ?",
                &[name.into(), key.into()],
            )? > 0)
        })
    }

    fn create_model_version(&self, v: &ModelVersion) -> Result<i64> {
        self.write(|tx| {
            // The UPDATE takes the model's row lock (PostgreSQL) or runs under SQLite's single
            // writer, so two registrations can never be handed the same number.
            let rows = tx.query(
                "UPDATE registered_models SET last_version = last_version + 1, last_updated_time = ? \
                 WHERE name = ? RETURNING last_version",
                &[v.creation_time.into(), (&v.name).into()],
            )?;
            let number = rows
                .first()
                .map(|r| r[0].int())
                .ok_or_else(|| Error::not_found(format!("Registered Model with name={} not found", v.name)))?;
            tx.exec(
                "INSERT INTO model_versions (name, version, creation_time, last_updated_time, user_id, \
                 current_stage, description, source, storage_location, run_id, run_link, model_id, status) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                &[
                    (&v.name).into(),
                    number.into(),
                    v.creation_time.into(),
                    v.last_updated_time.into(),
                    (&v.user_id).into(),
                    v.current_stage.as_str().into(),
                    (&v.description).into(),
                    (&v.source).into(),
                    (&v.storage_location).into(),
                    v.run_id.clone().into(),
                    v.run_link.clone().into(),
                    v.model_id.clone().into(),
                    (&v.status).into(),
                ],
            )?;
            let rows: Vec<Row> = crate::tracking::dedupe_last(&v.tags)
                .into_iter()
                .map(|t| vec![(&v.name).into(), number.into(), (&t.key).into(), (&t.value).into()])
                .collect();
            tx.insert_many(
                "INSERT INTO model_version_tags (name, version, key, value) VALUES",
                4,
                "ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value",
                &rows,
            )?;
            Ok(number)
        })
    }

    fn get_model_version(&self, name: &str, version: i64) -> Result<Option<ModelVersion>> {
        self.read(|tx| {
            let rows = tx.query(
                &format!("SELECT {VERSION_COLUMNS} FROM model_versions mv WHERE mv.name = ? AND mv.version = ?"),
                &[name.into(), version.into()],
            )?;
            Ok(load_versions(tx, rows)?.pop())
        })
    }

    fn update_model_version(
        &self,
        name: &str,
        version: i64,
        description: &str,
        now: i64,
    ) -> Result<()> {
        self.write(|tx| {
            tx.exec(
                "UPDATE model_versions SET description = ?, last_updated_time = ? WHERE name = ? AND version = ?",
                &[description.into(), now.into(), name.into(), version.into()],
            )?;
            Ok(())
        })
    }

    fn transition_stage(
        &self,
        name: &str,
        version: i64,
        stage: Stage,
        archive_others: bool,
        now: i64,
    ) -> Result<()> {
        self.write(|tx| {
            if archive_others {
                tx.exec(
                    "UPDATE model_versions SET current_stage = 'Archived', last_updated_time = ? \
                     WHERE name = ? AND current_stage = ? AND version != ?",
                    &[now.into(), name.into(), stage.as_str().into(), version.into()],
                )?;
            }
            tx.exec(
                "UPDATE model_versions SET current_stage = ?, last_updated_time = ? WHERE name = ? AND version = ?",
                &[stage.as_str().into(), now.into(), name.into(), version.into()],
            )?;
            touch_model(tx, name, now)
        })
    }

    fn delete_model_version(&self, name: &str, version: i64) -> Result<()> {
        self.write(|tx| {
            for table in [
                "registered_model_aliases",
                "model_version_tags",
                "model_versions",
            ] {
                tx.exec(
                    &format!("DELETE FROM {table} WHERE name = ? AND version = ?"),
                    &[name.into(), version.into()],
                )?;
            }
            Ok(())
        })
    }

    fn search_model_versions(&self, q: &ModelVersionQuery) -> Result<Page<ModelVersion>> {
        self.read(|tx| {
            let d = tx.dialect();
            let mut args: Vec<Val> = Vec::new();
            let mut sql = format!("SELECT {VERSION_COLUMNS} FROM model_versions mv WHERE 1 = 1");
            for cmp in &q.filter {
                let clause = match cmp.entity {
                    Entity::Tag => {
                        args.push(Val::Text(cmp.key.clone()));
                        let base = "SELECT 1 FROM model_version_tags kv WHERE kv.name = mv.name AND kv.version = mv.version AND kv.key = ?";
                        match cmp.op {
                            Op::IsNull => format!("NOT EXISTS ({base})"),
                            Op::IsNotNull => format!("EXISTS ({base})"),
                            Op::Ne => format!(
                                "NOT EXISTS ({base} AND {})",
                                compare(d, "kv.value", Op::Eq, &cmp.value, &mut args)
                            ),
                            op => format!("EXISTS ({base} AND {})", compare(d, "kv.value", op, &cmp.value, &mut args)),
                        }
                    }
                    _ => {
                        let value = match (&cmp.value, cmp.key.as_str()) {
                            (Value::Num(n), "version_number") => Value::Num(n.trunc()),
                            (v, _) => v.clone(),
                        };
                        compare(d, order_clause(&cmp.key, true), cmp.op, &value, &mut args)
                    }
                };
                sql.push_str(" AND ");
                sql.push_str(&clause);
            }
            let mut order: Vec<String> = Vec::new();
            for o in &q.order_by {
                if o.entity != Entity::Attribute {
                    return Err(Error::invalid(format!("Invalid order_by key for model versions: '{}'", o.key)));
                }
                order.push(format!("{} {}", order_clause(&o.key, true), if o.ascending { "ASC" } else { "DESC" }));
            }
            order.push("mv.name ASC".into());
            order.push("mv.version DESC".into());
            sql.push_str(&format!(" ORDER BY {} LIMIT ? OFFSET ?", order.join(", ")));
            args.extend(limit_args(q.offset, q.limit));
            let rows = tx.query(&sql, &args)?;
            let p = page(rows, q.offset, q.limit);
            Ok(Page { items: load_versions(tx, p.items)?, next_offset: p.next_offset })
        })
    }

    fn set_model_version_tag(&self, name: &str, version: i64, tag: &KeyValue) -> Result<()> {
        self.write(|tx| {
            tx.exec(
                "INSERT INTO model_version_tags (name, version, key, value) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value",
                &[
                    name.into(),
                    version.into(),
                    (&tag.key).into(),
                    (&tag.value).into(),
                ],
            )?;
            Ok(())
        })
    }

    fn delete_model_version_tag(&self, name: &str, version: i64, key: &str) -> Result<bool> {
        self.write(|tx| {
            Ok(tx.exec(
                "DELETE FROM model_version_tags WHERE name = ? AND version = ? AND key = ?",
                &[name.into(), version.into(), key.into()],
            )? > 0)
        })
    }

    fn set_alias(&self, name: &str, alias: &str, version: i64, now: i64) -> Result<()> {
        self.write(|tx| {
            tx.exec(
                "INSERT INTO registered_model_aliases (name, alias, version) VALUES (?, ?, ?) \
                 ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version",
                &[name.into(), alias.into(), version.into()],
            )?;
            touch_version(tx, name, version, now)?;
            touch_model(tx, name, now)
        })
    }

    fn delete_alias(&self, name: &str, alias: &str) -> Result<bool> {
        self.write(|tx| {
            Ok(tx.exec(
                "DELETE FROM registered_model_aliases WHERE name = ? AND alias = ?",
                &[name.into(), alias.into()],
            )? > 0)
        })
    }

    fn get_alias(&self, name: &str, alias: &str) -> Result<Option<i64>> {
        self.read(|tx| {
            let rows = tx.query(
                "SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?",
                &[name.into(), alias.into()],
            )?;
            Ok(rows.first().map(|r| r[0].int()))
        })
    }

    fn version_identity(
        &self,
        name: &str,
        which: &VersionSelector,
    ) -> Result<Option<VersionIdentity>> {
        // The binding tag comes with the identity: one indexed lookup more, no second query.
        const SELECT: &str = "SELECT mv.version, mv.creation_time, t.value FROM model_versions mv \
             LEFT JOIN model_version_tags t \
             ON t.name = mv.name AND t.version = mv.version AND t.key = ?";
        let tag = Val::from(FEATURE_SERVICE_TAG);
        let (sql, args): (String, Vec<Val>) = match which {
            VersionSelector::Number(n) => (
                format!("{SELECT} WHERE mv.name = ? AND mv.version = ?"),
                vec![tag, name.into(), (*n).into()],
            ),
            VersionSelector::Alias(alias) => (
                format!(
                    "{SELECT} JOIN registered_model_aliases a \
                     ON mv.name = a.name AND mv.version = a.version \
                     WHERE a.name = ? AND a.alias = ?"
                ),
                vec![tag, name.into(), alias.into()],
            ),
            VersionSelector::Newest => (
                format!("{SELECT} WHERE mv.name = ? ORDER BY mv.version DESC LIMIT 1"),
                vec![tag, name.into()],
            ),
        };
        let rows = self.read(|tx| tx.query(&sql, &args))?;
        Ok(rows.first().map(|r| VersionIdentity {
            number: r[0].int(),
            created_ms: r[1].int(),
            feature_service: r[2].opt_text(),
        }))
    }
}
