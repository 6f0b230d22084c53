//! Dataset versions and lineage queries: the same behaviour on SQLite (always) and PostgreSQL
//! (when CAIRN_TEST_POSTGRES_URL is set).
#![allow(clippy::unwrap_used)]

use cairn_core::lineage::{run_input_digest, Lineage};
use cairn_core::model::*;
use cairn_core::registry::NewModelVersion;
use cairn_core::tracking::NewRun;
use cairn_core::{DatasetStore, Registry, Tracking};
use cairn_store::SqlStore;
use cairn_test::PgDatabase;
use std::sync::Arc;

struct Services {
    store: Arc<SqlStore>,
    tracking: Tracking,
    registry: Registry,
    lineage: Lineage,
}

fn services(store: SqlStore) -> Services {
    let store = Arc::new(store);
    let tracking = Tracking::new(store.clone(), "mlflow-artifacts:");
    let registry = Registry::new(store.clone(), tracking.clone());
    Services {
        lineage: Lineage::new(registry.clone(), store.clone()),
        store,
        tracking,
        registry,
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

conformance!(
    sources_belong_to_an_existing_version_and_come_back_in_order,
    versions_are_numbered_per_name_and_only_when_bytes_change,
    concurrent_adds_get_distinct_numbers,
    lineage_links_model_versions_runs_and_dataset_versions,
    validations_belong_to_an_existing_version_newest_first,
);

fn validations_belong_to_an_existing_version_newest_first(s: &Services) {
    let (v, _) = s
        .store
        .record_dataset_version(&new_version("people", &hex('c')), 1000)
        .unwrap();
    let check = |path: &str, success: bool, at: i64| DatasetValidation {
        name: "people".into(),
        version: v.version,
        path: path.into(),
        suite: "people-suite".into(),
        success,
        evaluated: 5,
        successful: if success { 5 } else { 3 },
        result: format!("{{\"success\": {success}}}"),
        creation_time: at,
    };
    s.store
        .record_dataset_validation(&check("", false, 2000))
        .unwrap();
    s.store
        .record_dataset_validation(&check("", true, 3000))
        .unwrap();
    let got = s
        .store
        .list_dataset_validations("people", v.version)
        .unwrap();
    assert_eq!(got, vec![check("", true, 3000), check("", false, 2000)]);
    assert!(s
        .store
        .list_dataset_validations("people", 99)
        .unwrap()
        .is_empty());
    let mut unknown = check("", true, 4000);
    unknown.version = 99;
    assert!(matches!(
        s.store.record_dataset_validation(&unknown),
        Err(cairn_core::Error::NotFound(_))
    ));
    let lineage = s.lineage.of_dataset_version("people", v.version).unwrap();
    assert_eq!(lineage.validations.len(), 2);
    assert!(lineage.validations[0].success);
}

fn new_version(name: &str, digest: &str) -> NewDatasetVersion {
    NewDatasetVersion {
        name: name.into(),
        digest: digest.into(),
        kind: "file".into(),
        size: 10,
        files: 1,
        format: "csv".into(),
        path: format!("data/{name}"),
        message: String::new(),
        user_id: "alice".into(),
    }
}

fn hex(seed: char) -> String {
    std::iter::repeat_n(seed, 64).collect()
}

fn versions_are_numbered_per_name_and_only_when_bytes_change(s: &Services) {
    let d = &s.store;
    let (v1, created) = d
        .record_dataset_version(&new_version("iris", &hex('a')), 1)
        .unwrap();
    assert!(created);
    assert_eq!(v1.version, 1);
    let (same, created) = d
        .record_dataset_version(&new_version("iris", &hex('a')), 2)
        .unwrap();
    assert!(!created);
    assert_eq!(same, v1);
    let (v2, _) = d
        .record_dataset_version(&new_version("iris", &hex('b')), 3)
        .unwrap();
    assert_eq!(v2.version, 2);
    // Back to the first bytes: a new version (history is a sequence, not a set).
    let (v3, created) = d
        .record_dataset_version(&new_version("iris", &hex('a')), 4)
        .unwrap();
    assert!(created);
    assert_eq!(v3.version, 3);
    let (other, _) = d
        .record_dataset_version(&new_version("wine", &hex('a')), 5)
        .unwrap();
    assert_eq!(other.version, 1);

    let iris: Vec<i64> = d
        .list_dataset_versions(Some("iris"))
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(iris, vec![3, 2, 1]);
    assert_eq!(d.list_dataset_versions(None).unwrap().len(), 4);
    assert_eq!(
        d.get_dataset_version("iris", 2).unwrap().unwrap().digest,
        hex('b')
    );
    assert!(d.get_dataset_version("iris", 9).unwrap().is_none());
    let by_digest: Vec<(String, i64)> = d
        .dataset_versions_by_digest(&hex('a')[..32])
        .unwrap()
        .iter()
        .map(|v| (v.name.clone(), v.version))
        .collect();
    assert_eq!(
        by_digest,
        vec![("iris".into(), 1), ("iris".into(), 3), ("wine".into(), 1)]
    );
}

fn concurrent_adds_get_distinct_numbers(s: &Services) {
    let store = s.store.clone();
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            std::thread::spawn(move || {
                let digest = format!("{:064x}", i + 1);
                store
                    .record_dataset_version(&new_version("shared", &digest), i)
                    .unwrap()
                    .0
                    .version
            })
        })
        .collect();
    let mut numbers: Vec<i64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    numbers.sort();
    assert_eq!(numbers, (1..=8).collect::<Vec<_>>());
}

fn lineage_links_model_versions_runs_and_dataset_versions(s: &Services) {
    let digest = hex('c');
    s.store
        .record_dataset_version(&new_version("train.csv", &digest), 1)
        .unwrap();
    let run = s
        .tracking
        .create_run(NewRun {
            run_name: Some("fit".into()),
            tags: vec![KeyValue::new("mlflow.source.git.commit", "abc123")],
            ..Default::default()
        })
        .unwrap();
    let run_id = run.info.run_id.clone();
    let input = |name: &str, digest: &str| DatasetInput {
        tags: vec![KeyValue::new("mlflow.data.context", "training")],
        dataset: Dataset {
            name: name.into(),
            digest: digest.into(),
            source_type: "cairn".into(),
            source: "{}".into(),
            schema: None,
            profile: None,
        },
    };
    s.tracking
        .log_inputs(
            &run_id,
            vec![
                input("train.csv", run_input_digest(&digest)),
                // An MLflow-computed digest of other data: listed, linked to nothing.
                input("eval", "1f2e3d4c"),
            ],
            vec![],
        )
        .unwrap();
    // A run with an unrelated short digest that is not a prefix of ours.
    let other = s.tracking.create_run(NewRun::default()).unwrap();
    s.tracking
        .log_inputs(&other.info.run_id, vec![input("x", "cccccccd")], vec![])
        .unwrap();
    s.registry.create_model("clf", None, vec![]).unwrap();
    let v = s
        .registry
        .create_version(NewModelVersion {
            name: "clf".into(),
            source: format!("runs:/{run_id}/model"),
            run_id: Some(run_id.clone()),
            ..Default::default()
        })
        .unwrap();
    s.registry.set_alias("clf", "champion", v.version).unwrap();

    for version in ["1", "champion"] {
        let l = s.lineage.of_model_version("clf", version).unwrap();
        let run = l.run.unwrap();
        assert_eq!(run.run_id, run_id);
        assert_eq!(run.git_commit.as_deref(), Some("abc123"));
        assert_eq!(run.inputs.len(), 2);
        let train = run.inputs.iter().find(|i| i.name == "train.csv").unwrap();
        assert_eq!(train.context.as_deref(), Some("training"));
        assert_eq!(train.versions.len(), 1);
        assert_eq!(train.versions[0].digest, digest);
        assert!(run
            .inputs
            .iter()
            .find(|i| i.name == "eval")
            .unwrap()
            .versions
            .is_empty());
    }
    let back = s.lineage.of_dataset_version("train.csv", 1).unwrap();
    assert_eq!(
        back.runs.len(),
        1,
        "only the run that logged a prefix of the digest"
    );
    assert_eq!(back.runs[0].run_id, run_id);
    assert_eq!(back.model_versions.len(), 1);
    assert_eq!(back.model_versions[0].name, "clf");
    assert!(s.lineage.of_dataset_version("train.csv", 2).is_err());
    assert!(s.lineage.of_model_version("clf", "7").is_err());
}

fn sources_belong_to_an_existing_version_and_come_back_in_order(s: &Services) {
    let (v, _) = s
        .store
        .record_dataset_version(&new_version("train", &hex('a')), 1)
        .unwrap();
    let source = |kind: &str, reference: &str, digest: char| DatasetSource {
        kind: kind.into(),
        reference: reference.into(),
        digest: hex(digest),
    };
    assert!(matches!(
        s.store
            .record_dataset_sources("train", 9, &[source("dataset", "stats@1", 'b')]),
        Err(cairn_core::Error::NotFound(_))
    ));
    assert!(s
        .store
        .dataset_sources("train", v.version)
        .unwrap()
        .is_empty());
    s.store
        .record_dataset_sources(
            "train",
            v.version,
            &[
                source("features", "rides@2", 'c'),
                source("dataset", "stats@1", 'b'),
            ],
        )
        .unwrap();
    // Recording one again replaces it; others stay.
    s.store
        .record_dataset_sources("train", v.version, &[source("dataset", "stats@1", 'd')])
        .unwrap();
    assert_eq!(
        s.store.dataset_sources("train", v.version).unwrap(),
        vec![
            source("dataset", "stats@1", 'd'),
            source("features", "rides@2", 'c'),
        ]
    );
    let lineage = s.lineage.of_dataset_version("train", v.version).unwrap();
    assert_eq!(lineage.sources.len(), 2);
}
