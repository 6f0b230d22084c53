//! Traces on the same SQL store: [`TraceStore`] for [`SqlStore`].
use crate::db::{Dialect, Row, Tx, Val};
use crate::tracking::{
    compare, key_value_clause, limit_args, page, placeholders, query_in, upsert_tags, SqlStore,
};
use cairn_core::model::{KeyValue, Page};
use cairn_core::search::{Comparison, Entity, Op, Value};
use cairn_core::traces::{
    Assessment, AssessmentKind, Span, SpanBatch, TraceInfo, TraceQuery, TraceSelection, TraceState,
    SOURCE_RUN_METADATA, TRACE_NAME_TAG,
};
use cairn_core::{Error, Result, TraceStore};
use std::collections::HashMap;

const INFO_COLUMNS: &str = "t.trace_id, t.experiment_id, t.request_time, t.execution_duration, \
    t.state, t.client_request_id, t.request_preview, t.response_preview";

const ASSESSMENT_COLUMNS: &str = "assessment_id, trace_id, name, kind, payload, source_type, \
    source_id, create_time, last_update_time, span_id, run_id, rationale, metadata, overrides, \
    valid";

fn exp_id(id: &str) -> Result<i64> {
    id.parse::<i64>()
        .map_err(|_| Error::invalid(format!("Invalid experiment ID '{id}'")))
}

fn info_from(row: &Row) -> TraceInfo {
    TraceInfo {
        trace_id: row[0].text(),
        experiment_id: row[1].text(),
        request_time: row[2].int(),
        execution_duration: row[3].opt_int(),
        state: TraceState::parse(&row[4].text()).unwrap_or(TraceState::Unspecified),
        client_request_id: row[5].opt_text(),
        request_preview: row[6].opt_text(),
        response_preview: row[7].opt_text(),
        metadata: Vec::new(),
        tags: Vec::new(),
        assessments: Vec::new(),
    }
}

fn assessment_from(row: &Row) -> Result<Assessment> {
    Ok(Assessment {
        assessment_id: row[0].text(),
        trace_id: row[1].text(),
        name: row[2].text(),
        kind: AssessmentKind::parse(&row[3].text())?,
        payload: row[4].text(),
        source_type: row[5].text(),
        source_id: row[6].text(),
        create_time: row[7].int(),
        last_update_time: row[8].int(),
        span_id: row[9].opt_text(),
        run_id: row[10].opt_text(),
        rationale: row[11].opt_text(),
        metadata: row[12].opt_text().filter(|m| !m.is_empty()),
        overrides: row[13].opt_text(),
        valid: row[14].int() != 0,
    })
}

fn span_from(row: &Row) -> Span {
    Span {
        trace_id: row[0].text(),
        span_id: row[1].text(),
        parent_span_id: row[2].opt_text(),
        name: row[3].text(),
        span_type: row[4].opt_text(),
        status: row[5].text(),
        start_time_ns: row[6].int(),
        end_time_ns: row[7].opt_int(),
        content: row[8].text(),
        inputs: None,
        outputs: None,
        resource_tags: Vec::new(),
    }
}

/// Loads the infos of `ids` with their metadata, tags and assessments, in the order of `ids`.
fn load_infos(tx: &mut dyn Tx, ids: &[String]) -> Result<Vec<TraceInfo>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut infos: HashMap<String, TraceInfo> = HashMap::with_capacity(ids.len());
    for row in query_in(
        tx,
        &format!("SELECT {INFO_COLUMNS} FROM trace_info t WHERE t.trace_id IN "),
        ids,
        "",
    )? {
        let info = info_from(&row);
        infos.insert(info.trace_id.clone(), info);
    }
    let present: Vec<String> = ids
        .iter()
        .filter(|id| infos.contains_key(*id))
        .cloned()
        .collect();
    for (table, is_tag) in [("trace_tags", true), ("trace_metadata", false)] {
        for row in query_in(
            tx,
            &format!("SELECT trace_id, key, value FROM {table} WHERE trace_id IN "),
            &present,
            " ORDER BY key",
        )? {
            if let Some(info) = infos.get_mut(&row[0].text()) {
                let kv = KeyValue {
                    key: row[1].text(),
                    value: row[2].text(),
                };
                if is_tag {
                    info.tags.push(kv);
                } else {
                    info.metadata.push(kv);
                }
            }
        }
    }
    for row in query_in(
        tx,
        &format!("SELECT {ASSESSMENT_COLUMNS} FROM assessments WHERE trace_id IN "),
        &present,
        " ORDER BY create_time, assessment_id",
    )? {
        let a = assessment_from(&row)?;
        if let Some(info) = infos.get_mut(&a.trace_id) {
            info.assessments.push(a);
        }
    }
    Ok(ids.iter().filter_map(|id| infos.remove(id)).collect())
}

fn upsert_metadata(tx: &mut dyn Tx, trace_id: &str, metadata: &[KeyValue]) -> Result<()> {
    upsert_tags(tx, "trace_metadata", "trace_id", trace_id.into(), metadata)
}

/// Inserts the trace unless it exists (then waits for its creator's commit on PostgreSQL);
/// `true` when this call created it.
fn insert_info(tx: &mut dyn Tx, info: &TraceInfo) -> Result<bool> {
    let inserted = tx.exec(
        "INSERT INTO trace_info (trace_id, experiment_id, request_time, execution_duration, \
         state, client_request_id, request_preview, response_preview) VALUES \
         (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (trace_id) DO NOTHING",
        &[
            (&info.trace_id).into(),
            Val::Int(exp_id(&info.experiment_id)?),
            Val::Int(info.request_time),
            info.execution_duration.into(),
            info.state.as_str().into(),
            info.client_request_id.as_ref().into(),
            info.request_preview.as_ref().into(),
            info.response_preview.as_ref().into(),
        ],
    )?;
    Ok(inserted > 0)
}

/// Takes the trace's row lock (PostgreSQL) and answers whether it exists.
fn lock_trace(tx: &mut dyn Tx, trace_id: &str) -> Result<bool> {
    let sql = match tx.dialect() {
        Dialect::Postgres => "SELECT trace_id FROM trace_info WHERE trace_id = ? FOR UPDATE",
        Dialect::Sqlite => "SELECT trace_id FROM trace_info WHERE trace_id = ?",
    };
    Ok(!tx.query(sql, &[trace_id.into()])?.is_empty())
}

fn put_assessment(tx: &mut dyn Tx, a: &Assessment) -> Result<()> {
    tx.exec(
        &format!(
            "INSERT INTO assessments ({ASSESSMENT_COLUMNS}) VALUES \
             (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (assessment_id) DO UPDATE \
             SET name = excluded.name, payload = excluded.payload, \
             source_type = excluded.source_type, source_id = excluded.source_id, \
             last_update_time = excluded.last_update_time, span_id = excluded.span_id, \
             run_id = excluded.run_id, rationale = excluded.rationale, \
             metadata = excluded.metadata, overrides = excluded.overrides, valid = excluded.valid"
        ),
        &[
            (&a.assessment_id).into(),
            (&a.trace_id).into(),
            (&a.name).into(),
            a.kind.as_str().into(),
            (&a.payload).into(),
            (&a.source_type).into(),
            (&a.source_id).into(),
            Val::Int(a.create_time),
            Val::Int(a.last_update_time),
            a.span_id.as_ref().into(),
            a.run_id.as_ref().into(),
            a.rationale.as_ref().into(),
            a.metadata.as_ref().into(),
            a.overrides.as_ref().into(),
            Val::Int(a.valid as i64),
        ],
    )?;
    Ok(())
}

fn attr_column(key: &str) -> &'static str {
    match key {
        "request_id" => "t.trace_id",
        "status" => "t.state",
        "client_request_id" => "t.client_request_id",
        "experiment_id" => "t.experiment_id",
        "execution_time_ms" => "t.execution_duration",
        "end_time_ms" => "(t.request_time + t.execution_duration)",
        _ => "t.request_time",
    }
}

fn filter_clause(d: Dialect, cmp: &Comparison, args: &mut Vec<Val>) -> String {
    match (cmp.entity, cmp.key.as_str()) {
        (Entity::Tag, _) => key_value_clause(d, "trace_tags", "trace_id", "t.trace_id", cmp, args),
        (Entity::Metadata, _) => {
            key_value_clause(d, "trace_metadata", "trace_id", "t.trace_id", cmp, args)
        }
        (Entity::Span, key) => {
            let col = match key {
                "name" => "s.name",
                "type" => "s.span_type",
                "status" => "s.status",
                _ => "s.content",
            };
            let c = compare(d, col, cmp.op, &cmp.value, args);
            format!("t.trace_id IN (SELECT s.trace_id FROM spans s WHERE {c})")
        }
        (Entity::Feedback | Entity::Expectation, name) => assessment_clause(d, cmp, name, args),
        (_, "name") => {
            let named = Comparison {
                entity: Entity::Tag,
                key: TRACE_NAME_TAG.into(),
                op: cmp.op,
                value: cmp.value.clone(),
            };
            key_value_clause(d, "trace_tags", "trace_id", "t.trace_id", &named, args)
        }
        (_, "text") => {
            let c = compare(d, "s.content", cmp.op, &cmp.value, args);
            format!("t.trace_id IN (SELECT s.trace_id FROM spans s WHERE {c})")
        }
        (_, "run_id") => {
            // A trace belongs to a run when it was made in it (metadata) or linked to it.
            let positive = match cmp.op {
                Op::Ne => Op::Eq,
                Op::NotIn => Op::In,
                op => op,
            };
            let by_metadata = Comparison {
                entity: Entity::Metadata,
                key: SOURCE_RUN_METADATA.into(),
                op: positive,
                value: cmp.value.clone(),
            };
            let meta = key_value_clause(
                d,
                "trace_metadata",
                "trace_id",
                "t.trace_id",
                &by_metadata,
                args,
            );
            let linked = compare(d, "tr.run_id", positive, &cmp.value, args);
            let either = format!(
                "({meta} OR t.trace_id IN (SELECT tr.trace_id FROM trace_runs tr WHERE {linked}))"
            );
            if positive == cmp.op {
                either
            } else {
                format!("NOT {either}")
            }
        }
        (_, key) => {
            let value = match &cmp.value {
                Value::Num(n) => Value::Num(n.trunc()),
                v => v.clone(),
            };
            compare(d, attr_column(key), cmp.op, &value, args)
        }
    }
}

/// `feedback.<name>` / `expectation.<name>`: traces with a valid assessment of that kind
/// and name whose value compares. As MLflow: `=`/`!=`/`LIKE` test the value's JSON text (a
/// string also matches unquoted), `<`/`>` only numbers (not booleans), `IS NULL` no such
/// assessment at all.
fn assessment_clause(d: Dialect, cmp: &Comparison, name: &str, args: &mut Vec<Val>) -> String {
    let kind = if cmp.entity == Entity::Feedback {
        "feedback"
    } else {
        "expectation"
    };
    args.push(Val::Text(kind.into()));
    args.push(Val::Text(name.into()));
    let base = "SELECT 1 FROM assessments a WHERE a.trace_id = t.trace_id AND a.kind = ? \
                AND a.name = ? AND a.valid = 1";
    let (json_text, is_number, number) = match d {
        Dialect::Sqlite => (
            "(a.payload -> '$.value')",
            "json_type(a.payload, '$.value') IN ('integer', 'real')",
            "json_extract(a.payload, '$.value')",
        ),
        Dialect::Postgres => (
            "((a.payload::jsonb -> 'value')::text)",
            "jsonb_typeof(a.payload::jsonb -> 'value') = 'number'",
            "((a.payload::jsonb ->> 'value')::double precision)",
        ),
    };
    let condition = match (cmp.op, &cmp.value) {
        (Op::IsNull, _) => return format!("NOT EXISTS ({base})"),
        (Op::IsNotNull, _) => return format!("EXISTS ({base})"),
        (Op::Eq | Op::Ne, Value::Str(v)) => {
            args.push(Val::Text(v.clone()));
            args.push(Val::Text(json_string(v)));
            let either = format!("({json_text} = ? OR {json_text} = ?)");
            if cmp.op == Op::Ne {
                format!("NOT {either}")
            } else {
                either
            }
        }
        (Op::Gt | Op::Ge | Op::Lt | Op::Le, _) => {
            let c = compare(d, number, cmp.op, &cmp.value, args);
            format!("{is_number} AND {c}")
        }
        _ => compare(d, json_text, cmp.op, &cmp.value, args),
    };
    format!("EXISTS ({base} AND {condition})")
}

/// `s` as a JSON string literal (what Python's `json.dumps` writes for it).
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{:04x}", unit));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn order_clause(q: &TraceQuery, args: &mut Vec<Val>) -> String {
    let mut order = Vec::new();
    let mut by_time = false;
    // Ties are broken by id in the direction of the time order, so one walk of the
    // (experiment, time, id) index answers the newest or oldest first without sorting.
    let mut tie = "DESC";
    for o in &q.order_by {
        let dir = if o.ascending { "ASC" } else { "DESC" };
        let col = match (o.entity, o.key.as_str()) {
            (Entity::Attribute, "name") | (Entity::Tag, _) => {
                let key = if o.entity == Entity::Tag {
                    o.key.clone()
                } else {
                    TRACE_NAME_TAG.to_string()
                };
                args.push(Val::Text(key));
                "(SELECT tg.value FROM trace_tags tg WHERE tg.trace_id = t.trace_id AND tg.key = ?)"
                    .to_string()
            }
            (Entity::Metadata, _) | (Entity::Attribute, "run_id") => {
                let key = if o.entity == Entity::Metadata {
                    o.key.clone()
                } else {
                    SOURCE_RUN_METADATA.to_string()
                };
                args.push(Val::Text(key));
                "(SELECT md.value FROM trace_metadata md WHERE md.trace_id = t.trace_id AND md.key = ?)"
                    .to_string()
            }
            (_, key) => {
                let col = attr_column(key);
                if col == "t.request_time" && !by_time {
                    by_time = true;
                    tie = dir;
                }
                col.to_string()
            }
        };
        order.push(format!("{col} {dir}"));
    }
    if !by_time {
        order.push("t.request_time DESC".into());
    }
    order.push(format!("t.trace_id {tie}"));
    order.join(", ")
}

fn delete_trace_rows(tx: &mut dyn Tx, ids: &[String]) -> Result<u64> {
    let mut deleted = 0;
    for chunk in ids.chunks(900) {
        let list = placeholders(chunk.len());
        let args: Vec<Val> = chunk.iter().map(Val::from).collect();
        for table in [
            "spans",
            "trace_tags",
            "trace_metadata",
            "assessments",
            "trace_runs",
        ] {
            tx.exec(
                &format!("DELETE FROM {table} WHERE trace_id IN {list}"),
                &args,
            )?;
        }
        deleted += tx.exec(
            &format!("DELETE FROM trace_info WHERE trace_id IN {list}"),
            &args,
        )?;
    }
    Ok(deleted)
}

impl TraceStore for SqlStore {
    fn log_spans(&self, batches: &[SpanBatch]) -> Result<()> {
        self.write(|tx| {
            for batch in batches {
                let info = &batch.info;
                // Concurrent exports of one trace: one creates it, the others merge into it.
                if !insert_info(tx, info)? && lock_trace(tx, &info.trace_id)? {
                    // Earliest start, latest end (kept as a duration from the new start).
                    let existing = tx.query(
                        "SELECT request_time, execution_duration, state, request_preview, \
                         response_preview FROM trace_info WHERE trace_id = ?",
                        &[(&info.trace_id).into()],
                    )?;
                    let Some(row) = existing.first() else {
                        continue;
                    };
                    let old_start = row[0].int();
                    let old_end = row[1].opt_int().map(|d| old_start + d);
                    let start = old_start.min(info.request_time);
                    let new_end = info.execution_duration.map(|d| info.request_time + d);
                    let end = match (old_end, new_end) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        (a, b) => a.or(b),
                    };
                    let old_state = TraceState::parse(&row[2].text()).unwrap_or(TraceState::Unspecified);
                    let state = if batch.has_root
                        && matches!(old_state, TraceState::InProgress | TraceState::Unspecified)
                    {
                        info.state
                    } else {
                        old_state
                    };
                    tx.exec(
                        "UPDATE trace_info SET request_time = ?, execution_duration = ?, state = ?, \
                         request_preview = COALESCE(request_preview, ?), \
                         response_preview = COALESCE(response_preview, ?) WHERE trace_id = ?",
                        &[
                            Val::Int(start),
                            end.map(|e| (e - start).max(0)).into(),
                            state.as_str().into(),
                            info.request_preview.as_ref().into(),
                            info.response_preview.as_ref().into(),
                            (&info.trace_id).into(),
                        ],
                    )?;
                }
                upsert_tags(tx, "trace_tags", "trace_id", (&info.trace_id).into(), &info.tags)?;
                let rows: Vec<Row> = batch
                    .spans
                    .iter()
                    .map(|s| {
                        vec![
                            (&s.trace_id).into(),
                            (&s.span_id).into(),
                            s.parent_span_id.as_ref().into(),
                            (&s.name).into(),
                            s.span_type.as_ref().into(),
                            (&s.status).into(),
                            Val::Int(s.start_time_ns),
                            s.end_time_ns.into(),
                            (&s.content).into(),
                        ]
                    })
                    .collect();
                tx.insert_many(
                    "INSERT INTO spans (trace_id, span_id, parent_span_id, name, span_type, status, \
                     start_time_ns, end_time_ns, content) VALUES",
                    9,
                    "ON CONFLICT (trace_id, span_id) DO UPDATE SET parent_span_id = \
                     excluded.parent_span_id, name = excluded.name, span_type = excluded.span_type, \
                     status = excluded.status, start_time_ns = excluded.start_time_ns, \
                     end_time_ns = excluded.end_time_ns, content = excluded.content",
                    &rows,
                )?;
            }
            Ok(())
        })
    }

    fn start_trace(&self, info: &TraceInfo) -> Result<()> {
        self.write(|tx| {
            if !insert_info(tx, info)? && lock_trace(tx, &info.trace_id)? {
                tx.exec(
                    "UPDATE trace_info SET experiment_id = ?, request_time = ?, \
                     execution_duration = ?, state = ?, client_request_id = ?, \
                     request_preview = COALESCE(?, request_preview), \
                     response_preview = COALESCE(?, response_preview) WHERE trace_id = ?",
                    &[
                        Val::Int(exp_id(&info.experiment_id)?),
                        Val::Int(info.request_time),
                        info.execution_duration.into(),
                        info.state.as_str().into(),
                        info.client_request_id.as_ref().into(),
                        info.request_preview.as_ref().into(),
                        info.response_preview.as_ref().into(),
                        (&info.trace_id).into(),
                    ],
                )?;
            }
            upsert_tags(
                tx,
                "trace_tags",
                "trace_id",
                (&info.trace_id).into(),
                &info.tags,
            )?;
            upsert_metadata(tx, &info.trace_id, &info.metadata)?;
            for a in &info.assessments {
                put_assessment(tx, a)?;
            }
            Ok(())
        })
    }

    fn get_trace_infos(&self, trace_ids: &[String]) -> Result<Vec<TraceInfo>> {
        self.read(|tx| load_infos(tx, trace_ids))
    }

    fn get_spans(&self, trace_id: &str) -> Result<Vec<Span>> {
        self.read(|tx| {
            Ok(tx
                .query(
                    "SELECT trace_id, span_id, parent_span_id, name, span_type, status, \
                     start_time_ns, end_time_ns, content FROM spans WHERE trace_id = ? \
                     ORDER BY start_time_ns, span_id",
                    &[trace_id.into()],
                )?
                .iter()
                .map(span_from)
                .collect())
        })
    }

    fn search_traces(&self, q: &TraceQuery) -> Result<Page<TraceInfo>> {
        self.read(|tx| {
            let d = tx.dialect();
            let mut args: Vec<Val> = Vec::new();
            let exps: Vec<Val> = q
                .experiment_ids
                .iter()
                .map(|e| exp_id(e).map(Val::Int))
                .collect::<Result<_>>()?;
            let mut sql = format!(
                "SELECT t.trace_id FROM trace_info t WHERE t.experiment_id IN {}",
                placeholders(exps.len())
            );
            args.extend(exps);
            for cmp in &q.filter {
                sql.push_str(" AND ");
                sql.push_str(&filter_clause(d, cmp, &mut args));
            }
            let order = order_clause(q, &mut args);
            sql.push_str(&format!(" ORDER BY {order} LIMIT ? OFFSET ?"));
            args.extend(limit_args(q.offset, q.max_results));
            let ids: Vec<String> = tx.query(&sql, &args)?.iter().map(|r| r[0].text()).collect();
            let p = page(ids, q.offset, q.max_results);
            Ok(Page {
                items: load_infos(tx, &p.items)?,
                next_offset: p.next_offset,
            })
        })
    }

    fn set_trace_tag(&self, trace_id: &str, tag: &KeyValue) -> Result<bool> {
        self.write(|tx| {
            if !lock_trace(tx, trace_id)? {
                return Ok(false);
            }
            upsert_tags(
                tx,
                "trace_tags",
                "trace_id",
                trace_id.into(),
                std::slice::from_ref(tag),
            )?;
            Ok(true)
        })
    }

    fn delete_trace_tag(&self, trace_id: &str, key: &str) -> Result<bool> {
        self.write(|tx| {
            Ok(tx.exec(
                "DELETE FROM trace_tags WHERE trace_id = ? AND key = ?",
                &[trace_id.into(), key.into()],
            )? > 0)
        })
    }

    fn delete_traces(&self, experiment_id: &str, selection: &TraceSelection) -> Result<u64> {
        let exp = exp_id(experiment_id)?;
        self.write(|tx| {
            let ids: Vec<String> = match selection {
                TraceSelection::Ids(ids) => query_in(
                    tx,
                    &format!(
                        "SELECT trace_id FROM trace_info WHERE experiment_id = {exp} AND trace_id IN "
                    ),
                    ids,
                    "",
                )?
                .iter()
                .map(|r| r[0].text())
                .collect(),
                TraceSelection::Older {
                    max_timestamp_millis,
                    max_traces,
                } => {
                    let limit = max_traces.map(|n| n.min(i64::MAX as u64) as i64).unwrap_or(-1);
                    let limit_sql = if limit < 0 { String::new() } else { format!(" LIMIT {limit}") };
                    tx.query(
                        &format!(
                            "SELECT trace_id FROM trace_info WHERE experiment_id = ? AND \
                             request_time <= ? ORDER BY request_time, trace_id{limit_sql}"
                        ),
                        &[Val::Int(exp), Val::Int(*max_timestamp_millis)],
                    )?
                    .iter()
                    .map(|r| r[0].text())
                    .collect()
                }
            };
            delete_trace_rows(tx, &ids)
        })
    }

    fn link_traces_to_run(&self, trace_ids: &[String], run_id: &str) -> Result<()> {
        self.write(|tx| {
            let rows: Vec<Row> = trace_ids
                .iter()
                .map(|id| vec![id.into(), run_id.into()])
                .collect();
            tx.insert_many(
                "INSERT INTO trace_runs (trace_id, run_id) VALUES",
                2,
                "ON CONFLICT (trace_id, run_id) DO NOTHING",
                &rows,
            )
        })
    }

    fn put_assessment(&self, assessment: &Assessment) -> Result<()> {
        self.write(|tx| put_assessment(tx, assessment))
    }

    fn get_assessment(&self, trace_id: &str, assessment_id: &str) -> Result<Option<Assessment>> {
        self.read(|tx| {
            tx.query(
                &format!(
                    "SELECT {ASSESSMENT_COLUMNS} FROM assessments WHERE trace_id = ? AND \
                     assessment_id = ?"
                ),
                &[trace_id.into(), assessment_id.into()],
            )?
            .first()
            .map(assessment_from)
            .transpose()
        })
    }

    fn delete_assessment(&self, trace_id: &str, assessment_id: &str) -> Result<bool> {
        self.write(|tx| {
            Ok(tx.exec(
                "DELETE FROM assessments WHERE trace_id = ? AND assessment_id = ?",
                &[trace_id.into(), assessment_id.into()],
            )? > 0)
        })
    }
}
