//! The SQLite backend: one writer connection (SQLite allows one writer at a time; queueing in
//! process beats `database is locked`), a pool of readers, WAL so readers never block it.
use crate::db::{storage, tuple, Dialect, Row, Tx, Val};
use crate::pool::Pool;
use cairn_core::{Error, Result};
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/sqlite/0001_tracking.sql")),
    (2, include_str!("migrations/sqlite/0002_registry.sql")),
    (3, include_str!("migrations/sqlite/0003_datasets.sql")),
    (4, include_str!("migrations/sqlite/0004_validations.sql")),
    (5, include_str!("migrations/sqlite/0005_auth.sql")),
    (6, include_str!("migrations/sqlite/0006_traces.sql")),
    (7, include_str!("migrations/sqlite/0007_evaluation.sql")),
    (8, include_str!("migrations/sqlite/0008_monitoring.sql")),
    (9, include_str!("migrations/sqlite/0009_features.sql")),
    (
        10,
        include_str!("migrations/sqlite/0010_dataset_sources.sql"),
    ),
];
const READERS: usize = 4;

pub(crate) struct Sqlite {
    writer: Mutex<Connection>,
    readers: Pool<Connection>,
}

fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| {
        Error::Storage(format!(
            "cannot open SQLite database {}: {e}",
            path.display()
        ))
    })?;
    // NORMAL is durable against process crashes (kill -9) in WAL mode; only a power loss can
    // drop the last transactions, the trade MLflow's SQLite users already make.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA busy_timeout = 10000;
         PRAGMA case_sensitive_like = ON;
         PRAGMA cache_size = -32000;",
    )
    .map_err(storage)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl Sqlite {
    pub fn open(path: PathBuf) -> Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let mut writer = open_connection(&path)?;
        migrate(&mut writer)?;
        let reader_path = path.clone();
        Ok(Sqlite {
            writer: Mutex::new(writer),
            readers: Pool::new(READERS, Box::new(move || open_connection(&reader_path))),
        })
    }

    pub fn write<T>(&self, f: impl FnOnce(&mut dyn Tx) -> Result<T>) -> Result<T> {
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(storage)?;
        let out = f(&mut SqliteTx(&tx))?;
        tx.commit().map_err(storage)?;
        Ok(out)
    }

    pub fn read<T>(&self, f: impl FnOnce(&mut dyn Tx) -> Result<T>) -> Result<T> {
        let mut pooled = self.readers.get()?;
        let tx = pooled.conn().transaction().map_err(storage)?;
        let out = f(&mut SqliteTx(&tx))?;
        tx.commit().map_err(storage)?;
        Ok(out)
    }
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Exclusive)
        .map_err(storage)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS cairn_schema (version BIGINT NOT NULL)")
        .map_err(storage)?;
    let current: i64 = tx
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM cairn_schema",
            [],
            |r| r.get(0),
        )
        .map_err(storage)?;
    for (version, sql) in MIGRATIONS {
        if *version > current {
            tx.execute_batch(sql)
                .map_err(|e| Error::Storage(format!("migration {version}: {e}")))?;
            tx.execute("INSERT INTO cairn_schema (version) VALUES (?1)", [version])
                .map_err(storage)?;
        }
    }
    tx.commit().map_err(storage)
}

struct SqliteTx<'a>(&'a rusqlite::Transaction<'a>);

/// Binds without copying text (the hot path inserts thousands of rows per batch).
impl rusqlite::ToSql for Val {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Val::Null => ToSqlOutput::Owned(Value::Null),
            Val::Int(i) => ToSqlOutput::Owned(Value::Integer(*i)),
            Val::Real(f) => ToSqlOutput::Owned(Value::Real(*f)),
            Val::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Val::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

fn from_ref(v: ValueRef<'_>) -> Val {
    match v {
        ValueRef::Null => Val::Null,
        ValueRef::Integer(i) => Val::Int(i),
        ValueRef::Real(f) => Val::Real(f),
        ValueRef::Text(t) => Val::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Val::Blob(b.to_vec()),
    }
}

impl Tx for SqliteTx<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn exec(&mut self, sql: &str, args: &[Val]) -> Result<u64> {
        let mut stmt = self.0.prepare_cached(sql).map_err(storage)?;
        let n = stmt
            .execute(rusqlite::params_from_iter(args.iter()))
            .map_err(storage)?;
        Ok(n as u64)
    }

    fn query(&mut self, sql: &str, args: &[Val]) -> Result<Vec<Row>> {
        let mut stmt = self.0.prepare_cached(sql).map_err(storage)?;
        let width = stmt.column_count();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(args.iter()))
            .map_err(storage)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(storage)? {
            let mut vals = Vec::with_capacity(width);
            for i in 0..width {
                vals.push(from_ref(row.get_ref(i).map_err(storage)?));
            }
            out.push(vals);
        }
        Ok(out)
    }

    fn insert_many(&mut self, head: &str, width: usize, tail: &str, rows: &[Row]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let sql = format!("{head} {} {tail}", tuple(width));
        let mut stmt = self.0.prepare_cached(&sql).map_err(storage)?;
        for row in rows {
            stmt.execute(rusqlite::params_from_iter(row.iter()))
                .map_err(storage)?;
        }
        Ok(())
    }
}
