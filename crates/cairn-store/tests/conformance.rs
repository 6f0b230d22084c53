//! The store conformance suite: the same behaviour, through `cairn_core::Tracking`, on SQLite
//! (always) and on PostgreSQL (when CAIRN_TEST_POSTGRES_URL is set).
#![allow(clippy::unwrap_used)]

use cairn_core::model::*;
use cairn_core::tracking::{NewLoggedModel, NewRun};
use cairn_core::{Error, Tracking};
use cairn_store::SqlStore;
use cairn_test::PgDatabase;
use std::sync::Arc;

fn sqlite() -> (Tracking, tempfile::TempDir) {
    cairn_test::tally("sqlite");
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::open_sqlite(dir.path().join("cairn.db")).unwrap();
    (Tracking::new(Arc::new(store), "mlflow-artifacts:"), dir)
}

fn postgres(test: &str) -> Option<(Tracking, PgDatabase)> {
    let db = PgDatabase::create(test)?;
    let store = SqlStore::open(&db.url).unwrap();
    Some((Tracking::new(Arc::new(store), "mlflow-artifacts:"), db))
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $( #[test] fn $name() { let (t, _dir) = super::sqlite(); super::$name(&t); } )*
        }
        mod on_postgres {
            $( #[test] fn $name() {
                if let Some((t, _db)) = super::postgres(stringify!($name)) { super::$name(&t); }
            } )*
        }
    };
}

conformance!(
    default_experiment_exists,
    experiment_life_cycle,
    experiment_search_filters_order_and_pages,
    run_life_cycle_and_name_tag,
    params_are_immutable,
    latest_metric_follows_step_then_timestamp,
    special_float_values_round_trip,
    metric_history_pages,
    search_runs_filters,
    search_runs_order_and_pages,
    inputs_and_outputs,
    dataset_summaries_of_experiments,
    concurrent_writers_to_one_run,
    concurrent_creates_of_one_experiment_name,
    logged_models,
    reopening_keeps_everything,
    listings_for_pages,
);

fn metric(key: &str, value: f64, timestamp: i64, step: i64) -> Metric {
    Metric {
        key: key.into(),
        value,
        timestamp,
        step,
        model_id: None,
        dataset_name: None,
        dataset_digest: None,
        run_id: None,
    }
}

fn new_run(t: &Tracking, exp: &str, name: &str) -> String {
    t.create_run(NewRun {
        experiment_id: Some(exp.into()),
        run_name: Some(name.into()),
        ..Default::default()
    })
    .unwrap()
    .info
    .run_id
}

fn search(t: &Tracking, exp: &str, filter: &str, order: &[&str]) -> Vec<String> {
    let order: Vec<String> = order.iter().map(|s| s.to_string()).collect();
    t.search_runs(
        vec![exp.into()],
        filter,
        &order,
        ViewType::ActiveOnly,
        None,
        "",
    )
    .unwrap()
    .items
    .into_iter()
    .map(|r| r.info.run_name)
    .collect()
}

fn default_experiment_exists(t: &Tracking) {
    let exp = t.get_experiment("0").unwrap();
    assert_eq!(exp.name, "Default");
    assert_eq!(exp.artifact_location, "mlflow-artifacts:/0");
    let run = t.create_run(NewRun::default()).unwrap();
    assert_eq!(run.info.experiment_id, "0");
    assert_eq!(
        run.info.artifact_uri,
        format!("mlflow-artifacts:/0/{}/artifacts", run.info.run_id)
    );
}

fn experiment_life_cycle(t: &Tracking) {
    let id = t
        .create_experiment("churn", None, vec![KeyValue::new("team", "a")])
        .unwrap();
    assert_ne!(id, "0");
    assert!(matches!(
        t.create_experiment("churn", None, vec![]),
        Err(Error::AlreadyExists(_))
    ));
    assert!(matches!(
        t.create_experiment("  ", None, vec![]),
        Err(Error::InvalidParameter(_))
    ));
    let exp = t.get_experiment_by_name("churn").unwrap();
    assert_eq!(
        (exp.experiment_id.as_str(), exp.artifact_location.as_str()),
        (id.as_str(), format!("mlflow-artifacts:/{id}").as_str())
    );
    assert_eq!(exp.tags, vec![KeyValue::new("team", "a")]);
    let custom = t
        .create_experiment("elsewhere", Some("s3://bucket/x".into()), vec![])
        .unwrap();
    assert_eq!(
        t.get_experiment(&custom).unwrap().artifact_location,
        "s3://bucket/x"
    );
    t.rename_experiment(&id, "churn-v2").unwrap();
    assert!(matches!(
        t.rename_experiment(&id, "elsewhere"),
        Err(Error::AlreadyExists(_))
    ));
    assert!(matches!(
        t.get_experiment_by_name("churn"),
        Err(Error::NotFound(_))
    ));
    t.set_experiment_tag(&id, "team", "b").unwrap();
    assert_eq!(
        t.get_experiment(&id).unwrap().tags,
        vec![KeyValue::new("team", "b")]
    );
    t.delete_experiment_tag(&id, "team").unwrap();
    assert!(matches!(
        t.delete_experiment_tag(&id, "team"),
        Err(Error::NotFound(_))
    ));
    let run = new_run(t, &id, "r");
    t.delete_experiment(&id).unwrap();
    assert_eq!(
        t.get_experiment(&id).unwrap().lifecycle_stage,
        LifecycleStage::Deleted
    );
    assert_eq!(
        t.get_run(&run).unwrap().info.lifecycle_stage,
        LifecycleStage::Deleted
    );
    assert!(matches!(
        t.create_run(NewRun {
            experiment_id: Some(id.clone()),
            ..Default::default()
        }),
        Err(Error::InvalidParameter(_))
    ));
    t.restore_experiment(&id).unwrap();
    assert_eq!(
        t.get_run(&run).unwrap().info.lifecycle_stage,
        LifecycleStage::Active
    );
    assert!(matches!(
        t.delete_experiment("0"),
        Err(Error::InvalidParameter(_))
    ));
    assert!(matches!(
        t.get_experiment("999999"),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        t.get_experiment("abc"),
        Err(Error::InvalidParameter(_))
    ));
}

fn experiment_search_filters_order_and_pages(t: &Tracking) {
    for name in ["alpha", "beta", "Gamma"] {
        let id = t.create_experiment(name, None, vec![]).unwrap();
        if name != "beta" {
            t.set_experiment_tag(&id, "kind", "greek").unwrap();
        }
    }
    let names = |filter: &str, order: &[&str], view: ViewType| -> Vec<String> {
        let order: Vec<String> = order.iter().map(|s| s.to_string()).collect();
        t.search_experiments(filter, &order, view, None, "")
            .unwrap()
            .items
            .into_iter()
            .map(|e| e.name)
            .collect()
    };
    assert_eq!(
        names("name LIKE '%a'", &["name ASC"], ViewType::All),
        vec!["Gamma", "alpha", "beta"]
    );
    assert_eq!(names("name ILIKE 'g%'", &[], ViewType::All), vec!["Gamma"]);
    assert_eq!(
        names("name LIKE 'g%'", &[], ViewType::All),
        Vec::<String>::new()
    );
    assert_eq!(
        names("tags.kind = 'greek'", &["name DESC"], ViewType::All),
        vec!["alpha", "Gamma"]
    );
    let beta = t.get_experiment_by_name("beta").unwrap().experiment_id;
    t.delete_experiment(&beta).unwrap();
    assert_eq!(
        names("", &["name ASC"], ViewType::DeletedOnly),
        vec!["beta"]
    );
    assert!(!names("", &[], ViewType::ActiveOnly).contains(&"beta".to_string()));
    let first = t
        .search_experiments("", &[], ViewType::All, Some(2), "")
        .unwrap();
    assert_eq!(first.items.len(), 2);
    let token = cairn_core::search::page_token(first.next_offset.unwrap());
    let second = t
        .search_experiments("", &[], ViewType::All, Some(2), &token)
        .unwrap();
    assert_eq!(second.items.len(), 2); // alpha, beta, Gamma and Default
    assert!(second.next_offset.is_none());
}

fn run_life_cycle_and_name_tag(t: &Tracking) {
    let run = t
        .create_run(NewRun {
            user_id: Some("ana".into()),
            start_time: Some(1000),
            tags: vec![KeyValue::new("mlflow.runName", "tagged")],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(run.info.run_name, "tagged");
    assert_eq!(run.info.status, RunStatus::Running);
    assert_eq!(
        (run.info.user_id.as_str(), run.info.start_time),
        ("ana", 1000)
    );
    let id = run.info.run_id.clone();
    let info = t
        .update_run(&id, Some(RunStatus::Finished), Some(2000), Some("renamed"))
        .unwrap();
    assert_eq!(
        (info.status, info.end_time, info.run_name.as_str()),
        (RunStatus::Finished, Some(2000), "renamed")
    );
    let run = t.get_run(&id).unwrap();
    assert!(run
        .tags
        .contains(&KeyValue::new("mlflow.runName", "renamed")));
    t.set_tag(&id, "mlflow.runName", "via-tag").unwrap();
    assert_eq!(t.get_run(&id).unwrap().info.run_name, "via-tag");
    let generated = t.create_run(NewRun::default()).unwrap();
    assert_eq!(generated.info.run_name.split('-').count(), 3);
    t.delete_run(&id).unwrap();
    assert!(matches!(
        t.log_param(&id, "a", "1"),
        Err(Error::InvalidParameter(_))
    ));
    t.restore_run(&id).unwrap();
    t.log_param(&id, "a", "1").unwrap();
    t.set_tag(&id, "t", "v").unwrap();
    t.delete_tag(&id, "t").unwrap();
    assert!(matches!(t.delete_tag(&id, "t"), Err(Error::NotFound(_))));
    assert!(matches!(
        t.get_run(&"f".repeat(32)),
        Err(Error::NotFound(_))
    ));
    let long = "x".repeat(9000);
    t.set_tag(&id, "long", &long).unwrap();
    let stored = t
        .get_run(&id)
        .unwrap()
        .tags
        .into_iter()
        .find(|k| k.key == "long")
        .unwrap();
    assert_eq!(stored.value.len(), 8000);
}

fn params_are_immutable(t: &Tracking) {
    let id = new_run(t, "0", "p");
    t.log_param(&id, "lr", "0.1").unwrap();
    t.log_param(&id, "lr", "0.1").unwrap(); // same value again is fine
    let err = t.log_param(&id, "lr", "0.2").unwrap_err();
    assert!(
        matches!(&err, Error::InvalidParameter(m) if m.contains("Changing param values is not allowed")),
        "{err}"
    );
    // A failing batch changes nothing.
    let err = t.log_batch(
        &id,
        vec![metric("m", 1.0, 1, 0)],
        vec![KeyValue::new("new", "1"), KeyValue::new("lr", "9")],
        vec![],
    );
    assert!(err.is_err());
    let run = t.get_run(&id).unwrap();
    assert_eq!(run.params, vec![KeyValue::new("lr", "0.1")]);
    assert!(run.metrics.is_empty());
    assert!(t
        .log_batch(
            &id,
            vec![],
            vec![KeyValue::new("d", "1"), KeyValue::new("d", "2")],
            vec![]
        )
        .is_err());
    let long = "v".repeat(7000);
    t.log_param(&id, "long", &long).unwrap();
    assert_eq!(
        t.get_run(&id)
            .unwrap()
            .params
            .iter()
            .find(|p| p.key == "long")
            .unwrap()
            .value
            .len(),
        6000
    );
}

fn latest_metric_follows_step_then_timestamp(t: &Tracking) {
    let id = new_run(t, "0", "m");
    t.log_metric(&id, metric("loss", 0.5, 100, 5)).unwrap();
    t.log_metric(&id, metric("loss", 0.9, 200, 1)).unwrap(); // older step, newer time: not latest
    t.log_metric(&id, metric("loss", 0.4, 50, 5)).unwrap(); // same step, older time: not latest
    t.log_metric(&id, metric("loss", 0.3, 100, 5)).unwrap(); // same step and time, higher value? no: lower
    let latest = t.get_run(&id).unwrap().metrics;
    assert_eq!(latest.len(), 1);
    assert_eq!(
        (latest[0].value, latest[0].step, latest[0].timestamp),
        (0.5, 5, 100)
    );
    t.log_batch(
        &id,
        vec![metric("loss", 0.2, 10, 7), metric("loss", 0.1, 5, 6)],
        vec![],
        vec![],
    )
    .unwrap();
    assert_eq!(t.get_run(&id).unwrap().metrics[0].value, 0.2);
    // Identical re-logs are idempotent.
    t.log_metric(&id, metric("loss", 0.2, 10, 7)).unwrap();
    assert_eq!(
        t.metric_history(&id, "loss", None, "").unwrap().items.len(),
        6
    );
}

fn special_float_values_round_trip(t: &Tracking) {
    let id = new_run(t, "0", "f");
    t.log_batch(
        &id,
        vec![
            metric("nan", f64::NAN, 1, 0),
            metric("inf", f64::INFINITY, 1, 0),
            metric("ninf", f64::NEG_INFINITY, 1, 0),
            metric("neg", -2.5, 1, 0),
        ],
        vec![],
        vec![],
    )
    .unwrap();
    let run = t.get_run(&id).unwrap();
    let get = |k: &str| run.metrics.iter().find(|m| m.key == k).unwrap().value;
    assert!(get("nan").is_nan());
    assert_eq!(get("inf"), f64::INFINITY);
    assert_eq!(get("ninf"), f64::NEG_INFINITY);
    assert_eq!(get("neg"), -2.5);
    assert!(t.metric_history(&id, "nan", None, "").unwrap().items[0]
        .value
        .is_nan());
}

fn metric_history_pages(t: &Tracking) {
    let id = new_run(t, "0", "h");
    let batch: Vec<Metric> = (0..1000)
        .map(|s| metric("x", s as f64, 1000 + s, s))
        .collect();
    t.log_batch(&id, batch, vec![], vec![]).unwrap();
    let all = t.metric_history(&id, "x", None, "").unwrap();
    assert_eq!(all.items.len(), 1000);
    assert!(all.next_offset.is_none());
    assert!(all.items.windows(2).all(|w| w[0].step < w[1].step));
    let mut seen = 0;
    let mut token = String::new();
    loop {
        let page = t.metric_history(&id, "x", Some(300), &token).unwrap();
        assert_eq!(page.items[0].step, seen as i64);
        seen += page.items.len();
        match page.next_offset {
            Some(o) => token = cairn_core::search::page_token(o),
            None => break,
        }
    }
    assert_eq!(seen, 1000);
    let sampled = t
        .metric_history_bulk_interval(
            std::slice::from_ref(&id),
            "x",
            Some(100),
            Some(199),
            Some(10),
        )
        .unwrap();
    assert_eq!(sampled.len(), 10);
    assert_eq!((sampled[0].step, sampled[9].step), (100, 199));
    assert_eq!(sampled[0].run_id.as_deref(), Some(id.as_str()));
}

fn search_runs_filters(t: &Tracking) {
    let exp = t.create_experiment("search", None, vec![]).unwrap();
    for (name, acc, lr, tag) in [
        ("a", 0.9, "0.1", Some("Prod")),
        ("b", 0.7, "0.01", None),
        ("c", 0.95, "0.1", Some("dev")),
    ] {
        let id = new_run(t, &exp, name);
        t.log_batch(
            &id,
            vec![metric("acc", acc, 1, 0)],
            vec![KeyValue::new("lr", lr)],
            vec![],
        )
        .unwrap();
        if let Some(tag) = tag {
            t.set_tag(&id, "env", tag).unwrap();
        }
    }
    let d = new_run(t, &exp, "d"); // no metrics, no params
    t.update_run(&d, Some(RunStatus::Failed), None, None)
        .unwrap();
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        sorted(search(t, &exp, "metrics.acc > 0.8", &[])),
        vec!["a", "c"]
    );
    assert_eq!(
        sorted(search(
            t,
            &exp,
            "metrics.acc >= 0.7 and params.lr = '0.1'",
            &[]
        )),
        vec!["a", "c"]
    );
    assert_eq!(
        sorted(search(t, &exp, "params.lr != '0.1'", &[])),
        vec!["b"]
    );
    assert_eq!(sorted(search(t, &exp, "params.lr IS NULL", &[])), vec!["d"]);
    assert_eq!(
        sorted(search(t, &exp, "tags.env IS NOT NULL", &[])),
        vec!["a", "c"]
    );
    assert_eq!(
        sorted(search(t, &exp, "tags.env LIKE 'p%'", &[])),
        Vec::<String>::new()
    );
    assert_eq!(
        sorted(search(t, &exp, "tags.env ILIKE 'p%'", &[])),
        vec!["a"]
    );
    assert_eq!(
        sorted(search(t, &exp, "attributes.status = 'FAILED'", &[])),
        vec!["d"]
    );
    assert_eq!(
        sorted(search(t, &exp, "run_name IN ('a', 'd')", &[])),
        vec!["a", "d"]
    );
    assert_eq!(
        sorted(search(t, &exp, "run_name NOT IN ('a', 'd')", &[])),
        vec!["b", "c"]
    );
    assert_eq!(
        sorted(search(t, &exp, "tags.`mlflow.runName` = 'c'", &[])),
        vec!["c"]
    );
    assert_eq!(
        search(t, &exp, "metrics.acc > 0.99", &[]),
        Vec::<String>::new()
    );
    assert_eq!(
        sorted(search(t, &exp, "attributes.start_time > 0", &[])).len(),
        4
    );
    for bad in [
        "metrics.acc > 'x'",
        "params.lr > '1'",
        "metrics.acc = 1 OR metrics.acc = 2",
        "bogus.x = 'a'",
    ] {
        let err = t
            .search_runs(vec![exp.clone()], bad, &[], ViewType::ActiveOnly, None, "")
            .unwrap_err();
        assert!(matches!(err, Error::InvalidParameter(_)), "{bad}: {err}");
    }
}

fn search_runs_order_and_pages(t: &Tracking) {
    let exp = t.create_experiment("order", None, vec![]).unwrap();
    for (i, acc) in [Some(0.5), None, Some(0.9), Some(0.7), Some(f64::NAN)]
        .iter()
        .enumerate()
    {
        let id = t
            .create_run(NewRun {
                experiment_id: Some(exp.clone()),
                run_name: Some(format!("r{i}")),
                start_time: Some(1000 + i as i64),
                ..Default::default()
            })
            .unwrap()
            .info
            .run_id;
        if let Some(acc) = acc {
            t.log_metric(&id, metric("acc", *acc, 1, 0)).unwrap();
        }
    }
    assert_eq!(
        search(t, &exp, "", &["metrics.acc DESC"]),
        vec!["r2", "r3", "r0", "r4", "r1"]
    );
    assert_eq!(
        search(t, &exp, "", &["metrics.acc ASC"]),
        vec!["r0", "r3", "r2", "r4", "r1"]
    );
    assert_eq!(search(t, &exp, "", &[]), vec!["r4", "r3", "r2", "r1", "r0"]);
    assert_eq!(
        search(t, &exp, "", &["attributes.start_time ASC"]),
        vec!["r0", "r1", "r2", "r3", "r4"]
    );
    let mut names = Vec::new();
    let mut token = String::new();
    loop {
        let page = t
            .search_runs(
                vec![exp.clone()],
                "",
                &[],
                ViewType::ActiveOnly,
                Some(2),
                &token,
            )
            .unwrap();
        names.extend(page.items.into_iter().map(|r| r.info.run_name));
        match page.next_offset {
            Some(o) => token = cairn_core::search::page_token(o),
            None => break,
        }
    }
    assert_eq!(names, vec!["r4", "r3", "r2", "r1", "r0"]);
    assert!(t
        .search_runs(
            vec![exp.clone()],
            "",
            &[],
            ViewType::ActiveOnly,
            None,
            "garbage"
        )
        .is_err());
}

fn dataset_summaries_of_experiments(t: &Tracking) {
    let input = |name: &str, digest: &str, context: Option<&str>| DatasetInput {
        tags: context
            .map(|c| vec![KeyValue::new("mlflow.data.context", c)])
            .unwrap_or_default(),
        dataset: Dataset {
            name: name.into(),
            digest: digest.into(),
            source_type: "local".into(),
            source: "{}".into(),
            schema: None,
            profile: None,
        },
    };
    let exp = t.create_experiment("with-datasets", None, vec![]).unwrap();
    let other = t.create_experiment("other", None, vec![]).unwrap();
    let a = new_run(t, &exp, "a");
    let b = new_run(t, &exp, "b");
    let c = new_run(t, &other, "c");
    t.log_inputs(&a, vec![input("train", "d1", Some("training"))], vec![])
        .unwrap();
    // The same dataset in another context, and one without a context.
    t.log_inputs(
        &b,
        vec![
            input("train", "d1", Some("evaluation")),
            input("holdout", "d2", None),
        ],
        vec![],
    )
    .unwrap();
    t.log_inputs(&c, vec![input("elsewhere", "d3", Some("training"))], vec![])
        .unwrap();
    let found = t.search_datasets(std::slice::from_ref(&exp)).unwrap();
    let seen: Vec<(&str, &str, Option<&str>)> = found
        .iter()
        .map(|d| {
            assert_eq!(d.experiment_id, exp);
            (d.name.as_str(), d.digest.as_str(), d.context.as_deref())
        })
        .collect();
    assert_eq!(seen.len(), 3, "{seen:?}");
    for want in [
        ("train", "d1", Some("training")),
        ("train", "d1", Some("evaluation")),
        ("holdout", "d2", None),
    ] {
        assert!(seen.contains(&want), "{want:?} not in {seen:?}");
    }
    assert_eq!(
        t.search_datasets(&[other.clone(), exp.clone()])
            .unwrap()
            .len(),
        4
    );
    assert!(t.search_datasets(&["987654".into()]).unwrap().is_empty());
    assert!(matches!(
        t.search_datasets(&[]),
        Err(Error::InvalidParameter(_))
    ));
    assert!(matches!(
        t.search_datasets(&["abc".into()]),
        Err(Error::InvalidParameter(_))
    ));
}

fn inputs_and_outputs(t: &Tracking) {
    let id = new_run(t, "0", "io");
    let input = DatasetInput {
        tags: vec![KeyValue::new("mlflow.data.context", "training")],
        dataset: Dataset {
            name: "iris".into(),
            digest: "abc123".into(),
            source_type: "local".into(),
            source: "{}".into(),
            schema: Some("{}".into()),
            profile: None,
        },
    };
    t.log_inputs(&id, vec![input.clone()], vec![]).unwrap();
    t.log_inputs(&id, vec![input.clone()], vec![]).unwrap(); // idempotent
    let run = t.get_run(&id).unwrap();
    assert_eq!(run.dataset_inputs, vec![input]);
    assert_eq!(search(t, "0", "datasets.name = 'iris'", &[]), vec!["io"]);
    assert_eq!(
        search(
            t,
            "0",
            "datasets.context = 'training' and datasets.digest IN ('abc123')",
            &[]
        ),
        vec!["io"]
    );
    let model = t
        .create_logged_model(NewLoggedModel {
            experiment_id: "0".into(),
            name: Some("m".into()),
            source_run_id: Some(id.clone()),
            ..Default::default()
        })
        .unwrap();
    t.log_outputs(
        &id,
        vec![ModelOutput {
            model_id: model.model_id.clone(),
            step: 3,
        }],
    )
    .unwrap();
    assert_eq!(
        t.get_run(&id).unwrap().model_outputs,
        vec![ModelOutput {
            model_id: model.model_id.clone(),
            step: 3
        }]
    );
    assert!(matches!(
        t.log_outputs(
            &id,
            vec![ModelOutput {
                model_id: "m-missing".into(),
                step: 0
            }]
        ),
        Err(Error::NotFound(_))
    ));
}

fn concurrent_writers_to_one_run(t: &Tracking) {
    let id = new_run(t, "0", "concurrent");
    std::thread::scope(|s| {
        for w in 0..8i64 {
            let (t, id) = (t.clone(), id.clone());
            s.spawn(move || {
                for b in 0..10i64 {
                    let batch: Vec<Metric> = (0..100)
                        .map(|i| metric(&format!("w{w}"), i as f64, b, b * 100 + i))
                        .collect();
                    t.log_batch(&id, batch, vec![], vec![]).unwrap();
                }
            });
        }
    });
    let run = t.get_run(&id).unwrap();
    assert_eq!(run.metrics.len(), 8);
    for w in 0..8 {
        assert_eq!(
            t.metric_history(&id, &format!("w{w}"), None, "")
                .unwrap()
                .items
                .len(),
            1000
        );
        assert_eq!(
            run.metrics
                .iter()
                .find(|m| m.key == format!("w{w}"))
                .unwrap()
                .step,
            999
        );
    }
    // Racing writers of one new param with different values: exactly one value wins.
    let results: Vec<bool> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (t, id) = (t.clone(), id.clone());
                s.spawn(move || t.log_param(&id, "race", &i.to_string()).is_ok())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.iter().filter(|ok| **ok).count(), 1, "{results:?}");
}

fn logged_models(t: &Tracking) {
    let run = new_run(t, "0", "lm");
    let m = t
        .create_logged_model(NewLoggedModel {
            experiment_id: "0".into(),
            name: Some("forest".into()),
            model_type: Some("sklearn".into()),
            source_run_id: Some(run.clone()),
            params: vec![KeyValue::new("depth", "5")],
            tags: vec![KeyValue::new("team", "x")],
        })
        .unwrap();
    assert!(m.model_id.starts_with("m-"));
    assert_eq!(m.status, LoggedModelStatus::Pending);
    assert_eq!(
        m.artifact_uri,
        format!("mlflow-artifacts:/0/models/{}/artifacts", m.model_id)
    );
    let ready = t
        .finalize_logged_model(&m.model_id, LoggedModelStatus::Ready)
        .unwrap();
    assert_eq!(ready.status, LoggedModelStatus::Ready);
    t.set_logged_model_tags(
        &m.model_id,
        vec![KeyValue::new("team", "y"), KeyValue::new("k", "v")],
    )
    .unwrap();
    t.delete_logged_model_tag(&m.model_id, "k").unwrap();
    t.log_logged_model_params(&m.model_id, vec![KeyValue::new("trees", "100")])
        .unwrap();
    assert!(t
        .log_logged_model_params(&m.model_id, vec![KeyValue::new("depth", "6")])
        .is_err());
    let mut with_model = metric("acc", 0.8, 1, 0);
    with_model.model_id = Some(m.model_id.clone());
    t.log_metric(&run, with_model.clone()).unwrap();
    t.log_metric(&run, with_model).unwrap();
    let got = t.get_logged_model(&m.model_id).unwrap();
    assert_eq!(got.tags, vec![KeyValue::new("team", "y")]);
    assert_eq!(
        got.params,
        vec![KeyValue::new("depth", "5"), KeyValue::new("trees", "100")]
    );
    assert_eq!(got.metrics.len(), 1);
    assert_eq!(got.metrics[0].value, 0.8);
    let other = t
        .create_logged_model(NewLoggedModel {
            experiment_id: "0".into(),
            name: Some("other".into()),
            ..Default::default()
        })
        .unwrap();
    let found = t
        .search_logged_models(
            vec!["0".into()],
            "name = 'forest'",
            vec![],
            vec![],
            None,
            "",
        )
        .unwrap();
    assert_eq!(
        found
            .items
            .iter()
            .map(|m| m.model_id.clone())
            .collect::<Vec<_>>(),
        vec![m.model_id.clone()]
    );
    let found = t
        .search_logged_models(
            vec!["0".into()],
            "metrics.acc > 0.5 and params.depth = '5'",
            vec![],
            vec![],
            None,
            "",
        )
        .unwrap();
    assert_eq!(found.items.len(), 1);
    // MLflow's `datasets`: only metrics logged on the named datasets count.
    let mut on_eval = metric("f1", 0.7, 2, 0);
    on_eval.model_id = Some(m.model_id.clone());
    on_eval.dataset_name = Some("eval".into());
    on_eval.dataset_digest = Some("d1".into());
    t.log_metric(&run, on_eval).unwrap();
    let by_datasets = |filter: &str, datasets: &[(&str, Option<&str>)]| {
        let datasets = datasets
            .iter()
            .map(|(n, d)| (n.to_string(), d.map(str::to_string)))
            .collect();
        t.search_logged_models(vec!["0".into()], filter, datasets, vec![], None, "")
            .unwrap()
            .items
            .len()
    };
    assert_eq!(by_datasets("", &[("eval", None)]), 1);
    assert_eq!(by_datasets("", &[("eval", Some("d1"))]), 1);
    assert_eq!(by_datasets("", &[("eval", Some("d2"))]), 0);
    assert_eq!(by_datasets("", &[("train", None), ("eval", None)]), 1);
    assert_eq!(by_datasets("metrics.f1 > 0.5", &[("eval", Some("d1"))]), 1);
    assert_eq!(
        by_datasets("metrics.acc > 0.5", &[("eval", None)]),
        0,
        "acc was not on eval"
    );
    assert!(t
        .search_logged_models(
            vec!["0".into()],
            "",
            vec![(String::new(), None)],
            vec![],
            None,
            ""
        )
        .is_err());
    t.delete_logged_model(&other.model_id).unwrap();
    assert!(matches!(
        t.get_logged_model(&other.model_id),
        Err(Error::NotFound(_))
    ));
    assert_eq!(
        t.search_logged_models(vec!["0".into()], "", vec![], vec![], None, "")
            .unwrap()
            .items
            .len(),
        1
    );
}

fn reopening_keeps_everything(t: &Tracking) {
    // The store behind `t` is shared; a second service over the same store sees the same data.
    let id = new_run(t, "0", "persist");
    t.log_metric(&id, metric("a", 1.0, 1, 0)).unwrap();
    let again = Tracking::new(t.store().clone(), "mlflow-artifacts:");
    assert_eq!(again.get_run(&id).unwrap().metrics.len(), 1);
}

/// What the web UI lists: run counts and last activity per experiment, distinct keys searched
/// case-insensitively (LIKE's wildcards taken literally), and a metric's points.
fn listings_for_pages(t: &Tracking) {
    let a = t.create_experiment("pages-a", None, vec![]).unwrap();
    let b = t.create_experiment("pages-b", None, vec![]).unwrap();
    let empty = t.create_experiment("pages-empty", None, vec![]).unwrap();
    let r1 = new_run(t, &a, "one");
    let r2 = new_run(t, &a, "two");
    let r3 = new_run(t, &b, "three");
    t.log_batch(
        &r1,
        vec![
            metric("Val_Loss", 1.0, 10, 0),
            metric("val_loss", 0.5, 20, 1),
            metric("acc", 0.1, 10, 0),
        ],
        vec![KeyValue::new("lr", "0.1"), KeyValue::new("drop_rate", "x")],
        vec![KeyValue::new("team", "a")],
    )
    .unwrap();
    t.log_batch(&r2, vec![metric("acc", f64::NAN, 30, 3)], vec![], vec![])
        .unwrap();
    t.log_batch(&r3, vec![metric("other", 1.0, 10, 0)], vec![], vec![])
        .unwrap();
    t.update_run(
        &r2,
        Some(RunStatus::Finished),
        Some(9_999_999_999_999),
        None,
    )
    .unwrap();
    let act = t
        .experiment_activity(&[a.clone(), empty.clone(), b.clone()])
        .unwrap();
    assert_eq!(
        act.iter().map(|x| x.runs).collect::<Vec<_>>(),
        vec![2, 0, 1]
    );
    assert_eq!(
        act[0].last_activity,
        Some(9_999_999_999_999),
        "an end time counts"
    );
    assert_eq!(act[1].last_activity, None);
    t.delete_run(&r1).unwrap();
    assert_eq!(
        t.experiment_activity(std::slice::from_ref(&a)).unwrap()[0].runs,
        1,
        "deleted runs do not count"
    );
    t.restore_run(&r1).unwrap();

    let ab = vec![a.clone(), b.clone()];
    let keys = |kind, q: &str| t.run_keys(&ab, kind, q, 100).unwrap();
    assert_eq!(
        keys(RunKeyKind::Metric, ""),
        vec!["Val_Loss", "acc", "other", "val_loss"]
    );
    assert_eq!(
        keys(RunKeyKind::Metric, "LOSS"),
        vec!["Val_Loss", "val_loss"]
    );
    assert!(keys(RunKeyKind::Param, "%").is_empty(), "% is literal");
    assert_eq!(
        keys(RunKeyKind::Param, "_"),
        vec!["drop_rate"],
        "_ is literal"
    );
    assert_eq!(keys(RunKeyKind::Tag, "tea"), vec!["team"]);
    assert_eq!(
        t.run_keys(&ab, RunKeyKind::Metric, "", 2).unwrap().len(),
        2,
        "limited"
    );
    assert_eq!(
        t.run_keys(std::slice::from_ref(&b), RunKeyKind::Metric, "", 100)
            .unwrap(),
        vec!["other"]
    );
    assert!(t
        .run_keys(&["x".into()], RunKeyKind::Metric, "", 10)
        .is_err());

    let points = t
        .store()
        .metric_points(&r2, "acc", i64::MIN, i64::MAX)
        .unwrap();
    assert_eq!(points.len(), 1);
    assert!(points[0].value.is_nan() && points[0].step == 3 && points[0].timestamp == 30);
    let points = t.store().metric_points(&r1, "val_loss", 1, 1).unwrap();
    assert_eq!(
        points,
        vec![MetricPoint {
            step: 1,
            timestamp: 20,
            value: 0.5
        }]
    );
}

#[test]
fn sqlite_file_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/cairn.db");
    let id = {
        let t = Tracking::new(
            Arc::new(SqlStore::open_sqlite(path.clone()).unwrap()),
            "mlflow-artifacts:",
        );
        let id = new_run(&t, "0", "r");
        t.log_param(&id, "k", "v").unwrap();
        id
    };
    let t = Tracking::new(
        Arc::new(SqlStore::open(&format!("sqlite:///{}", path.display())).unwrap()),
        "mlflow-artifacts:",
    );
    assert_eq!(
        t.get_run(&id).unwrap().params,
        vec![KeyValue::new("k", "v")]
    );
    assert!(SqlStore::open("mysql://x").is_err());
}

/// Replicas creating one experiment name at once: one wins, every other is told the name is
/// taken (never a storage error: on PostgreSQL both pass the existence check).
fn concurrent_creates_of_one_experiment_name(t: &Tracking) {
    for round in 0..5 {
        let name = format!("race-{round}");
        let outcomes: Vec<Result<String, Error>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| t.create_experiment(&name, None, vec![])))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let won = outcomes.iter().filter(|o| o.is_ok()).count();
        assert_eq!(won, 1, "{outcomes:?}");
        assert!(
            outcomes
                .iter()
                .all(|o| o.is_ok() || matches!(o, Err(Error::AlreadyExists(_)))),
            "{outcomes:?}"
        );
    }
}
