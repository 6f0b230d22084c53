//! Evaluation datasets and scorers through `cairn_core::Evaluation`: the same behaviour on
//! SQLite (always) and PostgreSQL (when CAIRN_TEST_POSTGRES_URL is set).
#![allow(clippy::unwrap_used)]

use cairn_core::evaluation::NewRecord;
use cairn_core::model::KeyValue;
use cairn_core::{Error, Evaluation, Tracking};
use cairn_store::SqlStore;
use cairn_test::PgDatabase;
use std::sync::Arc;

struct Services {
    tracking: Tracking,
    evaluation: Evaluation,
}

fn services(store: SqlStore) -> Services {
    let store = Arc::new(store);
    let tracking = Tracking::new(store.clone(), "mlflow-artifacts:");
    Services {
        evaluation: Evaluation::new(store, tracking.clone()),
        tracking,
    }
}

fn sqlite() -> (Services, tempfile::TempDir) {
    cairn_test::tally("sqlite");
    let dir = tempfile::tempdir().unwrap();
    (
        services(SqlStore::open_sqlite(dir.path().join("cairn.db")).unwrap()),
        dir,
    )
}

fn postgres(test: &str) -> Option<(Services, PgDatabase)> {
    let db = PgDatabase::create(test)?;
    Some((services(SqlStore::open(&db.url).unwrap()), db))
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $( #[test] fn $name() { let (s, _dir) = super::sqlite(); super::$name(&s); } )*
        }
        mod on_postgres {
            $( #[test] fn $name() {
                if let Some((s, _db)) = super::postgres(stringify!($name)) { super::$name(&s); }
            } )*
        }
    };
}

conformance!(datasets_records_and_search, scorer_versions);

fn record(key: &str, payload: &str) -> NewRecord {
    NewRecord {
        input_key: key.into(),
        payload: payload.into(),
    }
}

/// Appends the new payload to the old one, so the test sees that a merge happened.
fn concat(old: &str, new: &str) -> String {
    format!("{old}+{new}")
}

fn datasets_records_and_search(s: &Services) {
    let exp = s.tracking.create_experiment("eval", None, vec![]).unwrap();
    let other = s.tracking.create_experiment("other", None, vec![]).unwrap();
    let d = s
        .evaluation
        .create_dataset(
            "qa",
            vec![exp.clone()],
            vec![KeyValue::new("team", "ml")],
            Some("ann".into()),
        )
        .unwrap();
    assert!(d.dataset_id.starts_with("d-"));
    assert_eq!(d.experiment_ids, vec![exp.clone()]);
    assert_eq!(d.created_by.as_deref(), Some("ann"));
    let (ins, upd) = s
        .evaluation
        .upsert_records(
            &d.dataset_id,
            vec![record("a", "1"), record("b", "2")],
            &concat,
            None,
        )
        .unwrap();
    assert_eq!((ins, upd), (2, 0));
    let (ins, upd) = s
        .evaluation
        .upsert_records(
            &d.dataset_id,
            vec![record("a", "3"), record("c", "4")],
            &concat,
            None,
        )
        .unwrap();
    assert_eq!((ins, upd), (1, 1));
    let page = s
        .evaluation
        .get_records(&d.dataset_id, Some(10), "")
        .unwrap();
    let mut payloads: Vec<String> = page.items.iter().map(|r| r.payload.clone()).collect();
    payloads.sort();
    assert_eq!(payloads, ["1+3", "2", "4"]);
    let first = s
        .evaluation
        .get_records(&d.dataset_id, Some(2), "")
        .unwrap();
    assert_eq!(first.items.len(), 2);
    assert_eq!(first.next_offset, Some(2));
    let got = s.evaluation.get_dataset(&d.dataset_id).unwrap();
    assert_eq!(got.num_records, 3);
    assert_ne!(got.digest, d.digest, "the digest follows the records");
    let removed = s
        .evaluation
        .delete_records(&d.dataset_id, &[page.items[0].record_id.clone()])
        .unwrap();
    assert_eq!(removed, 1);

    // Tags, experiments, search.
    s.evaluation
        .set_dataset_tags(
            &d.dataset_id,
            vec![KeyValue::new("stage", "gold"), KeyValue::new("team", "")],
        )
        .unwrap();
    let got = s.evaluation.get_dataset(&d.dataset_id).unwrap();
    assert_eq!(got.tags, vec![KeyValue::new("stage", "gold")]);
    let second = s
        .evaluation
        .create_dataset("chat", vec![other.clone()], vec![], None)
        .unwrap();
    let names = |exps: Vec<String>, filter: &str| -> Vec<String> {
        s.evaluation
            .search_datasets(exps, filter, &["name ASC".into()], None, "")
            .unwrap()
            .items
            .into_iter()
            .map(|d| d.name)
            .collect()
    };
    assert_eq!(names(vec![], ""), ["chat", "qa"]);
    assert_eq!(names(vec![exp.clone()], ""), ["qa"]);
    assert_eq!(names(vec![], "name LIKE 'c%'"), ["chat"]);
    assert_eq!(names(vec![], "tags.stage = 'gold'"), ["qa"]);
    assert_eq!(
        names(vec![], &format!("created_time >= {}", d.created_time)).len(),
        2
    );
    assert!(matches!(
        s.evaluation
            .search_datasets(vec![], "digest = 'x'", &[], None, ""),
        Err(Error::InvalidParameter(_))
    ));
    s.evaluation
        .set_dataset_experiments(&second.dataset_id, std::slice::from_ref(&exp), true)
        .unwrap();
    assert_eq!(names(vec![exp.clone()], ""), ["chat", "qa"]);
    assert!(matches!(
        s.evaluation
            .set_dataset_experiments(&second.dataset_id, &["999".into()], true),
        Err(Error::NotFound(_))
    ));

    s.evaluation.delete_dataset(&d.dataset_id).unwrap();
    assert!(matches!(
        s.evaluation.get_dataset(&d.dataset_id),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        s.evaluation.get_records(&d.dataset_id, None, ""),
        Err(Error::NotFound(_))
    ));
}

fn scorer_versions(s: &Services) {
    let exp = s
        .tracking
        .create_experiment("scorers", None, vec![])
        .unwrap();
    let v1 = s
        .evaluation
        .register_scorer(&exp, "relevance", "{\"v\": 1}")
        .unwrap();
    let v2 = s
        .evaluation
        .register_scorer(&exp, "relevance", "{\"v\": 2}")
        .unwrap();
    s.evaluation.register_scorer(&exp, "safety", "{}").unwrap();
    assert_eq!((v1.version, v2.version), (1, 2));
    assert_eq!(
        v1.scorer_id, v2.scorer_id,
        "one id for every version of a name"
    );
    let newest: Vec<(String, i64)> = s
        .evaluation
        .list_scorers(&exp)
        .unwrap()
        .into_iter()
        .map(|v| (v.name, v.version))
        .collect();
    assert_eq!(newest, [("relevance".into(), 2), ("safety".into(), 1)]);
    assert_eq!(
        s.evaluation
            .get_scorer(&exp, "relevance", Some(1))
            .unwrap()
            .serialized,
        "{\"v\": 1}"
    );
    assert_eq!(
        s.evaluation
            .get_scorer(&exp, "relevance", None)
            .unwrap()
            .version,
        2
    );
    s.evaluation
        .delete_scorer(&exp, "relevance", Some(2))
        .unwrap();
    assert_eq!(
        s.evaluation
            .get_scorer(&exp, "relevance", None)
            .unwrap()
            .version,
        1
    );
    s.evaluation.delete_scorer(&exp, "relevance", None).unwrap();
    assert!(matches!(
        s.evaluation.get_scorer(&exp, "relevance", None),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        s.evaluation.delete_scorer(&exp, "relevance", None),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        s.evaluation.register_scorer("999", "x", "{}"),
        Err(Error::NotFound(_))
    ));
}
