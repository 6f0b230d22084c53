//! The feature store's state: applied definitions and online values, the same behaviour on
//! SQLite (always) and PostgreSQL (when CAIRN_TEST_POSTGRES_URL is set), with two handles on
//! one database as two server replicas.
#![allow(clippy::unwrap_used)]

use cairn_core::features::OnlineRow;
use cairn_core::{FeatureRegistryStore, OnlineStore};
use cairn_store::SqlStore;
use cairn_test::PgDatabase;

fn sqlite() -> ((SqlStore, SqlStore), tempfile::TempDir) {
    cairn_test::tally("sqlite");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cairn.db");
    let a = SqlStore::open_sqlite(file.clone()).unwrap();
    let b = SqlStore::open_sqlite(file).unwrap();
    ((a, b), dir)
}

fn postgres(test: &str) -> Option<((SqlStore, SqlStore), PgDatabase)> {
    let db = PgDatabase::create(test)?;
    let a = SqlStore::open(&db.url).unwrap();
    let b = SqlStore::open(&db.url).unwrap();
    Some(((a, b), db))
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $( #[test] fn $name() { let ((a, b), _dir) = super::sqlite(); super::$name(&a, &b); } )*
        }
        mod on_postgres {
            $( #[test] fn $name() {
                if let Some(((a, b), _db)) = super::postgres(stringify!($name)) { super::$name(&a, &b); }
            } )*
        }
    };
}

both_backends!(
    definitions_are_versioned_per_project,
    online_rows_keep_the_latest_per_entity,
);

fn definitions_are_versioned_per_project(a: &SqlStore, b: &SqlStore) {
    assert_eq!(a.definitions("drivers", None).unwrap(), None);
    assert_eq!(
        a.put_definitions("drivers", "v: 1", "d1", 10).unwrap(),
        (1, true)
    );
    // The same digest again adds nothing, from either replica.
    assert_eq!(
        b.put_definitions("drivers", "v: 1", "d1", 11).unwrap(),
        (1, false)
    );
    assert_eq!(
        b.put_definitions("drivers", "v: 2", "d2", 12).unwrap(),
        (2, true)
    );
    assert_eq!(
        a.put_definitions("riders", "r", "r1", 13).unwrap(),
        (1, true)
    );
    let latest = a.definitions("drivers", None).unwrap().unwrap();
    assert_eq!(
        (latest.version, latest.text.as_str(), latest.created_ms),
        (2, "v: 2", 12)
    );
    let first = b.definitions("drivers", Some(1)).unwrap().unwrap();
    assert_eq!((first.text.as_str(), first.digest.as_str()), ("v: 1", "d1"));
    assert_eq!(a.definitions("drivers", Some(3)).unwrap(), None);
}

fn row(key: &str, values: &str, event_ms: i64, created_ms: i64) -> OnlineRow {
    OnlineRow {
        entity_key: key.into(),
        values: values.into(),
        event_ms,
        created_ms,
    }
}

fn online_rows_keep_the_latest_per_entity(a: &SqlStore, b: &SqlStore) {
    online_conformance(a, b, "");
}

/// Redis (when CAIRN_TEST_REDIS_URL is set; CI sets it): the same online behaviour, two
/// clients as two processes, under projects of this run's own.
#[test]
fn redis_online_rows_keep_the_latest_per_entity() {
    let Ok(url) = std::env::var("CAIRN_TEST_REDIS_URL") else {
        cairn_test::skip(
            "redis_online_rows_keep_the_latest_per_entity",
            "CAIRN_TEST_REDIS_URL is not set",
        );
        return;
    };
    cairn_test::tally("redis");
    let a = cairn_store::RedisOnlineStore::open(&url).unwrap();
    let b = cairn_store::RedisOnlineStore::open(&url).unwrap();
    let run = format!(
        "t{}-{}-",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    online_conformance(&a, &b, &run);
    // A bad URL is refused with the reason.
    let err = cairn_store::RedisOnlineStore::open("http://localhost")
        .err()
        .unwrap();
    assert!(err.to_string().contains("not a redis:// URL"), "{err}");
}

fn online_conformance(a: &dyn OnlineStore, b: &dyn OnlineStore, prefix: &str) {
    let p = &format!("{prefix}p");
    let q = &format!("{prefix}q");
    let big = &format!("{prefix}big");
    a.write_online(
        p,
        "v",
        &[row("1", "old", 100, 100), row("2", "two", 100, 100)],
    )
    .unwrap();
    // Newer event wins; an older one written later (a re-run over the past) does not.
    b.write_online(p, "v", &[row("1", "new", 200, 150)])
        .unwrap();
    a.write_online(p, "v", &[row("1", "older", 150, 900)])
        .unwrap();
    // Same event time: the later created wins; writing the same row again changes nothing.
    b.write_online(p, "v", &[row("2", "two-fixed", 100, 120)])
        .unwrap();
    b.write_online(p, "v", &[row("2", "two-fixed", 100, 120)])
        .unwrap();
    a.write_online(p, "v", &[row("2", "two-stale", 100, 110)])
        .unwrap();
    // Other views and projects are apart.
    a.write_online(p, "w", &[row("1", "w1", 1, 1)]).unwrap();
    a.write_online(q, "v", &[row("1", "q1", 1, 1)]).unwrap();
    let keys: Vec<String> = ["2", "1", "3"].iter().map(|s| s.to_string()).collect();
    let got = b.read_online(p, "v", &keys).unwrap();
    assert_eq!(
        got,
        vec![
            Some(row("2", "two-fixed", 100, 120)),
            Some(row("1", "new", 200, 150)),
            None
        ]
    );
    assert_eq!(
        a.read_online(p, "w", &keys[1..2]).unwrap()[0]
            .as_ref()
            .unwrap()
            .values,
        "w1"
    );
    // Many keys at once (more than one statement's worth).
    let many: Vec<OnlineRow> = (0..1200)
        .map(|i| row(&i.to_string(), &format!("v{i}"), 1, 1))
        .collect();
    a.write_online(big, "v", &many).unwrap();
    let keys: Vec<String> = (0..1300).map(|i| i.to_string()).collect();
    let got = b.read_online(big, "v", &keys).unwrap();
    assert_eq!(got.iter().filter(|r| r.is_some()).count(), 1200);
    assert_eq!(got[1199].as_ref().unwrap().values, "v1199");
    assert!(got[1200].is_none());
}
