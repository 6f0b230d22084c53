//! Registry conformance: the same behaviour on SQLite (always) and PostgreSQL (when
//! CAIRN_TEST_POSTGRES_URL is set).
#![allow(clippy::unwrap_used)]

use cairn_core::model::*;
use cairn_core::registry::NewModelVersion;
use cairn_core::tracking::{NewLoggedModel, NewRun};
use cairn_core::{Error, Registry, Tracking, VersionSelector};
use cairn_store::SqlStore;
use cairn_test::PgDatabase;
use std::sync::Arc;

fn service(store: SqlStore) -> Registry {
    let store = Arc::new(store);
    Registry::new(store.clone(), Tracking::new(store, "mlflow-artifacts:"))
}

fn sqlite() -> (Registry, tempfile::TempDir) {
    cairn_test::tally("sqlite");
    let dir = tempfile::tempdir().unwrap();
    (
        service(SqlStore::open_sqlite(dir.path().join("cairn.db")).unwrap()),
        dir,
    )
}

fn postgres(test: &str) -> Option<(Registry, PgDatabase)> {
    let db = PgDatabase::create(test)?;
    Some((service(SqlStore::open(&db.url).unwrap()), db))
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $( #[test] fn $name() { let (r, _dir) = super::sqlite(); super::$name(&r); } )*
        }
        mod on_postgres {
            $( #[test] fn $name() {
                if let Some((r, _db)) = super::postgres(stringify!($name)) { super::$name(&r); }
            } )*
        }
    };
}

conformance!(
    models_and_versions,
    sources_resolve_to_storage,
    stages_and_latest_versions,
    aliases,
    search_and_tags,
    concurrent_registrations_get_distinct_versions,
    concurrent_creates_of_one_model_name,
    rename_and_delete,
);

fn version(r: &Registry, name: &str, source: &str) -> ModelVersion {
    r.create_version(NewModelVersion {
        name: name.into(),
        source: source.into(),
        ..Default::default()
    })
    .unwrap()
}

fn models_and_versions(r: &Registry) {
    let m = r
        .create_model(
            "churn",
            Some("predicts churn"),
            vec![KeyValue::new("team", "a")],
        )
        .unwrap();
    assert_eq!(
        (m.name.as_str(), m.description.as_str()),
        ("churn", "predicts churn")
    );
    assert!(matches!(
        r.create_model("churn", None, vec![]),
        Err(Error::AlreadyExists(_))
    ));
    assert!(matches!(
        r.create_model("a/b", None, vec![]),
        Err(Error::InvalidParameter(_))
    ));
    assert!(matches!(r.get_model("nope"), Err(Error::NotFound(_))));
    let v1 = version(r, "churn", "s3://bucket/model");
    let v2 = version(r, "churn", "s3://bucket/model2");
    assert_eq!((v1.version, v2.version), (1, 2));
    assert_eq!(v1.current_stage, Stage::None);
    assert_eq!(v1.status, "READY");
    assert_eq!(r.download_uri("churn", 2).unwrap(), "s3://bucket/model2");
    r.update_version("churn", 1, "first").unwrap();
    assert_eq!(r.get_version("churn", 1).unwrap().description, "first");
    assert!(matches!(r.get_version("churn", 9), Err(Error::NotFound(_))));
    assert!(matches!(
        r.create_version(NewModelVersion {
            name: "missing".into(),
            source: "s3://bucket/x".into(),
            ..Default::default()
        }),
        Err(Error::NotFound(_))
    ));
    r.delete_version("churn", 2).unwrap();
    // Numbers are never reused after a delete.
    assert_eq!(version(r, "churn", "s3://x").version, 3);
}

fn sources_resolve_to_storage(r: &Registry) {
    // The tracking side lives in the same store.
    // The tracking side lives in the same store.
    let tracking = r.tracking().clone();
    let run = tracking.create_run(NewRun::default()).unwrap();
    r.create_model("m", None, vec![]).unwrap();
    let v = version(r, "m", &format!("runs:/{}/model", run.info.run_id));
    assert_eq!(
        v.storage_location,
        format!("{}/model", run.info.artifact_uri)
    );
    assert_eq!(v.run_id.as_deref(), Some(run.info.run_id.as_str()));
    let logged = tracking
        .create_logged_model(NewLoggedModel {
            experiment_id: "0".into(),
            name: Some("lm".into()),
            ..Default::default()
        })
        .unwrap();
    let v = version(r, "m", &format!("models:/{}", logged.model_id));
    assert_eq!(r.download_uri("m", v.version).unwrap(), logged.artifact_uri);
    let missing = r.create_version(NewModelVersion {
        name: "m".into(),
        source: format!("runs:/{}/x", "0".repeat(32)),
        ..Default::default()
    });
    assert!(matches!(missing, Err(Error::NotFound(_))));
}

fn stages_and_latest_versions(r: &Registry) {
    r.create_model("s", None, vec![]).unwrap();
    for _ in 0..3 {
        version(r, "s", "s3://bucket/x");
    }
    r.transition_stage("s", 1, Stage::Production, false)
        .unwrap();
    r.transition_stage("s", 2, Stage::Staging, false).unwrap();
    let latest: Vec<(i64, Stage)> = r
        .latest_versions("s", &[])
        .unwrap()
        .iter()
        .map(|v| (v.version, v.current_stage))
        .collect();
    assert_eq!(
        latest,
        vec![
            (1, Stage::Production),
            (2, Stage::Staging),
            (3, Stage::None)
        ]
    );
    let prod: Vec<i64> = r
        .latest_versions("s", &["production".into()])
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(prod, vec![1]);
    r.transition_stage("s", 3, Stage::Production, true).unwrap();
    assert_eq!(
        r.get_version("s", 1).unwrap().current_stage,
        Stage::Archived
    );
    assert_eq!(
        r.get_version("s", 3).unwrap().current_stage,
        Stage::Production
    );
    assert!(r.latest_versions("s", &["Prod".into()]).is_err());
}

fn aliases(r: &Registry) {
    r.create_model("a", None, vec![]).unwrap();
    version(r, "a", "s3://bucket/x");
    version(r, "a", "s3://bucket/y");
    r.set_alias("a", "champion", 1).unwrap();
    assert_eq!(r.version_by_alias("a", "champion").unwrap().version, 1);
    r.set_alias("a", "champion", 2).unwrap();
    let v = r.version_by_alias("a", "champion").unwrap();
    assert_eq!(
        (v.version, v.aliases.clone()),
        (2, vec!["champion".to_string()])
    );
    assert_eq!(
        r.get_model("a").unwrap().aliases,
        vec![("champion".to_string(), 2)]
    );
    assert!(matches!(
        r.set_alias("a", "latest", 1),
        Err(Error::InvalidParameter(_))
    ));
    assert!(matches!(r.set_alias("a", "x", 7), Err(Error::NotFound(_))));
    // The one-query identity serving checks per request agrees with the full lookups.
    let identity = |which: VersionSelector| {
        r.version_identity("a", &which)
            .unwrap()
            .map(|i| (i.number, i.created_ms, i.feature_service))
    };
    let second = r.get_version("a", 2).unwrap();
    assert_eq!(
        identity(VersionSelector::Alias("champion".into())),
        Some((2, second.creation_time, None))
    );
    assert_eq!(
        identity(VersionSelector::Number(1)).map(|(n, _, _)| n),
        Some(1)
    );
    assert_eq!(
        identity(VersionSelector::Newest),
        Some((2, second.creation_time, None))
    );
    // The feature-service binding comes with the identity, through every selector.
    r.set_version_tag("a", 2, cairn_core::FEATURE_SERVICE_TAG, "scoring")
        .unwrap();
    r.set_version_tag("a", 2, "other", "x").unwrap();
    for which in [
        VersionSelector::Alias("champion".into()),
        VersionSelector::Number(2),
        VersionSelector::Newest,
    ] {
        assert_eq!(
            identity(which),
            Some((2, second.creation_time, Some("scoring".to_string())))
        );
    }
    assert_eq!(identity(VersionSelector::Number(1)).unwrap().2, None);
    assert_eq!(identity(VersionSelector::Number(9)), None);
    assert_eq!(identity(VersionSelector::Alias("nobody".into())), None);
    assert_eq!(
        r.version_identity("missing", &VersionSelector::Newest)
            .unwrap(),
        None
    );
    r.delete_version("a", 2).unwrap();
    assert_eq!(identity(VersionSelector::Alias("champion".into())), None);
    assert_eq!(
        identity(VersionSelector::Newest).map(|(n, _, _)| n),
        Some(1)
    );
    assert!(matches!(
        r.version_by_alias("a", "champion"),
        Err(Error::NotFound(_))
    ));
    r.set_alias("a", "old", 1).unwrap();
    r.delete_alias("a", "old").unwrap();
    assert!(matches!(
        r.delete_alias("a", "old"),
        Err(Error::NotFound(_))
    ));
}

fn search_and_tags(r: &Registry) {
    for name in ["alpha", "beta", "Gamma"] {
        r.create_model(name, None, vec![]).unwrap();
        version(r, name, &format!("s3://{name}"));
    }
    r.set_model_tag("beta", "mlflow.prompt.is_prompt", "true")
        .unwrap();
    r.set_version_tag("alpha", 1, "validated", "yes").unwrap();
    let names = |filter: &str| -> Vec<String> {
        r.search_models(filter, &[], None, "")
            .unwrap()
            .items
            .into_iter()
            .map(|m| m.name)
            .collect()
    };
    assert_eq!(names(""), vec!["Gamma", "alpha", "beta"]);
    assert_eq!(names("name LIKE '%a'"), vec!["Gamma", "alpha", "beta"]);
    assert_eq!(names("name ILIKE 'g%'"), vec!["Gamma"]);
    assert_eq!(
        names("name = 'x' AND tag.`mlflow.prompt.is_prompt` != 'true'"),
        Vec::<String>::new()
    );
    // `!=` on a tag also matches models without it (the client's prompt filter relies on it).
    assert_eq!(
        names("tags.`mlflow.prompt.is_prompt` != 'true'"),
        vec!["Gamma", "alpha"]
    );
    assert_eq!(
        names("name = 'alpha' AND tag.`mlflow.prompt.is_prompt` != 'true'"),
        vec!["alpha"]
    );
    assert_eq!(
        names("tags.`mlflow.prompt.is_prompt` = 'true'"),
        vec!["beta"]
    );
    let page = r
        .search_models("", &["name DESC".into()], Some(2), "")
        .unwrap();
    assert_eq!(
        page.items
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>(),
        vec!["beta", "alpha"]
    );
    assert!(page.next_offset.is_some());
    let versions: Vec<String> = r
        .search_versions("tags.validated = 'yes'", &[], None, "")
        .unwrap()
        .items
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(versions, vec!["alpha"]);
    let versions = r
        .search_versions(
            "name IN ('alpha', 'beta') and version_number >= 1",
            &[],
            None,
            "",
        )
        .unwrap();
    assert_eq!(versions.items.len(), 2);
    assert!(r.search_models("metrics.x > 1", &[], None, "").is_err());
    r.delete_version_tag("alpha", 1, "validated").unwrap();
    assert!(r.get_version("alpha", 1).unwrap().tags.is_empty());
    r.delete_model_tag("beta", "mlflow.prompt.is_prompt")
        .unwrap();
    assert!(r.get_model("beta").unwrap().tags.is_empty());
}

fn concurrent_registrations_get_distinct_versions(r: &Registry) {
    r.create_model("c", None, vec![]).unwrap();
    let mut got: Vec<i64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let r = r.clone();
                s.spawn(move || {
                    (0..5)
                        .map(|_| version(&r, "c", "s3://bucket/x").version)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    got.sort();
    assert_eq!(got, (1..=40).collect::<Vec<i64>>());
}

fn rename_and_delete(r: &Registry) {
    r.create_model("old", None, vec![KeyValue::new("k", "v")])
        .unwrap();
    version(r, "old", "s3://bucket/x");
    r.set_alias("old", "prod", 1).unwrap();
    r.create_model("taken", None, vec![]).unwrap();
    assert!(matches!(
        r.rename_model("old", "taken"),
        Err(Error::AlreadyExists(_))
    ));
    let renamed = r.rename_model("old", "new").unwrap();
    assert_eq!(renamed.tags, vec![KeyValue::new("k", "v")]);
    assert_eq!(r.version_by_alias("new", "prod").unwrap().name, "new");
    assert!(matches!(r.get_model("old"), Err(Error::NotFound(_))));
    r.delete_model("new").unwrap();
    assert!(matches!(r.get_version("new", 1), Err(Error::NotFound(_))));
    r.create_model("new", None, vec![]).unwrap();
    assert!(r.get_model("new").unwrap().aliases.is_empty());
}

/// Replicas creating one registered model at once: one wins, the others get AlreadyExists.
fn concurrent_creates_of_one_model_name(r: &Registry) {
    for round in 0..5 {
        let name = format!("race-{round}");
        let outcomes: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| r.create_model(&name, None, vec![])))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1);
        assert!(
            outcomes
                .iter()
                .all(|o| o.is_ok() || matches!(o, Err(Error::AlreadyExists(_)))),
            "{outcomes:?}"
        );
    }
}
