//! The PostgreSQL backend: a pool of connections, migrations under an advisory lock so several
//! Cairn replicas can start at once.
use crate::db::{numbered_placeholders, storage, tuple, Dialect, Row, Tx, Val};
use crate::pool::Pool;
use cairn_core::{Error, Result};
use postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use postgres::{Client, NoTls};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/postgres/0001_tracking.sql")),
    (2, include_str!("migrations/postgres/0002_registry.sql")),
    (3, include_str!("migrations/postgres/0003_datasets.sql")),
    (4, include_str!("migrations/postgres/0004_validations.sql")),
    (5, include_str!("migrations/postgres/0005_auth.sql")),
    (6, include_str!("migrations/postgres/0006_traces.sql")),
    (7, include_str!("migrations/postgres/0007_evaluation.sql")),
    (8, include_str!("migrations/postgres/0008_monitoring.sql")),
    (9, include_str!("migrations/postgres/0009_features.sql")),
    (
        10,
        include_str!("migrations/postgres/0010_dataset_sources.sql"),
    ),
];
const CONNECTIONS: usize = 16;
/// Arbitrary key for `pg_advisory_xact_lock`, so concurrent starts migrate once.
const MIGRATION_LOCK: i64 = 0x6361_6972_6e00;
/// PostgreSQL accepts at most 65535 bound values per statement.
const MAX_BINDS: usize = 60_000;

pub(crate) struct Postgres {
    pool: Pool<Client>,
}

fn connect(url: &str) -> Result<Client> {
    Client::connect(url, NoTls)
        .map_err(|e| Error::Storage(format!("cannot connect to PostgreSQL: {e}")))
}

impl Postgres {
    pub fn open(url: &str) -> Result<Self> {
        let mut client = connect(url)?;
        migrate(&mut client)?;
        let url = url.to_string();
        let pool = Pool::new(CONNECTIONS, Box::new(move || connect(&url)));
        Ok(Postgres { pool })
    }

    fn run<T>(&self, f: impl FnOnce(&mut dyn Tx) -> Result<T>) -> Result<T> {
        let mut pooled = self.pool.get()?;
        let result = (|| {
            let mut tx = pooled.conn().transaction().map_err(storage)?;
            let out = f(&mut PgTx(&mut tx))?;
            tx.commit().map_err(storage)?;
            Ok(out)
        })();
        if pooled.conn().is_closed() {
            pooled.mark_broken();
        }
        result
    }

    pub fn write<T>(&self, f: impl FnOnce(&mut dyn Tx) -> Result<T>) -> Result<T> {
        self.run(f)
    }

    pub fn read<T>(&self, f: impl FnOnce(&mut dyn Tx) -> Result<T>) -> Result<T> {
        self.run(f)
    }
}

fn migrate(client: &mut Client) -> Result<()> {
    let mut tx = client.transaction().map_err(storage)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(storage)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS cairn_schema (version BIGINT NOT NULL)")
        .map_err(storage)?;
    let current: i64 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM cairn_schema", &[])
        .map_err(storage)?
        .get(0);
    for (version, sql) in MIGRATIONS {
        if *version > current {
            tx.batch_execute(sql)
                .map_err(|e| Error::Storage(format!("migration {version}: {e}")))?;
            tx.execute("INSERT INTO cairn_schema (version) VALUES ($1)", &[version])
                .map_err(storage)?;
        }
    }
    tx.commit().map_err(storage)
}

/// Binds a [`Val`] to whatever type PostgreSQL inferred for the parameter.
impl ToSql for Val {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match (self, ty) {
            (Val::Null, _) => Ok(IsNull::Yes),
            (Val::Int(i), &Type::INT8) => i.to_sql(ty, out),
            (Val::Int(i), &Type::INT4) => (i32::try_from(*i)?).to_sql(ty, out),
            (Val::Int(i), &Type::FLOAT8) => (*i as f64).to_sql(ty, out),
            (Val::Real(f), &Type::FLOAT8) => f.to_sql(ty, out),
            (Val::Real(f), &Type::INT8) => (*f as i64).to_sql(ty, out),
            (Val::Text(s), &Type::INT8) => s.parse::<i64>()?.to_sql(ty, out),
            (Val::Text(s), &Type::FLOAT8) => s.parse::<f64>()?.to_sql(ty, out),
            (Val::Blob(b), _) => b.as_slice().to_sql(ty, out),
            (v, _) => v.text().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn read_row(row: &postgres::Row) -> Result<Row> {
    let mut vals = Vec::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        let v = match *col.type_() {
            Type::INT8 => row.try_get::<_, Option<i64>>(i).map(|v| v.map(Val::Int)),
            Type::INT4 => row
                .try_get::<_, Option<i32>>(i)
                .map(|v| v.map(|x| Val::Int(x.into()))),
            Type::INT2 => row
                .try_get::<_, Option<i16>>(i)
                .map(|v| v.map(|x| Val::Int(x.into()))),
            Type::BOOL => row
                .try_get::<_, Option<bool>>(i)
                .map(|v| v.map(|x| Val::Int(x.into()))),
            Type::FLOAT8 => row.try_get::<_, Option<f64>>(i).map(|v| v.map(Val::Real)),
            Type::FLOAT4 => row
                .try_get::<_, Option<f32>>(i)
                .map(|v| v.map(|x| Val::Real(x.into()))),
            Type::BYTEA => row
                .try_get::<_, Option<Vec<u8>>>(i)
                .map(|v| v.map(Val::Blob)),
            _ => row
                .try_get::<_, Option<String>>(i)
                .map(|v| v.map(Val::Text)),
        }
        .map_err(storage)?;
        vals.push(v.unwrap_or(Val::Null));
    }
    Ok(vals)
}

struct PgTx<'a, 'b>(&'a mut postgres::Transaction<'b>);

fn refs(args: &[Val]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter().map(|a| a as &(dyn ToSql + Sync)).collect()
}

impl Tx for PgTx<'_, '_> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn exec(&mut self, sql: &str, args: &[Val]) -> Result<u64> {
        self.0
            .execute(numbered_placeholders(sql).as_str(), &refs(args))
            .map_err(storage)
    }

    fn query(&mut self, sql: &str, args: &[Val]) -> Result<Vec<Row>> {
        let rows = self
            .0
            .query(numbered_placeholders(sql).as_str(), &refs(args))
            .map_err(storage)?;
        rows.iter().map(read_row).collect()
    }

    fn insert_many(&mut self, head: &str, width: usize, tail: &str, rows: &[Row]) -> Result<()> {
        let per_statement = (MAX_BINDS / width.max(1)).max(1);
        for chunk in rows.chunks(per_statement) {
            let one = tuple(width);
            let values = vec![one.as_str(); chunk.len()].join(", ");
            let sql = format!("{head} {values} {tail}");
            let args: Vec<Val> = chunk.iter().flatten().cloned().collect();
            self.exec(&sql, &args)?;
        }
        Ok(())
    }
}
