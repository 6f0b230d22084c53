//! Monitoring state and leases: the same behaviour on SQLite (always) and PostgreSQL (when
//! CAIRN_TEST_POSTGRES_URL is set), including two store handles on one database acting as two
//! server replicas.
#![allow(clippy::unwrap_used)]

use cairn_core::monitoring::{
    StoredAlertEvent, StoredAlertRule, StoredLabel, StoredReference, LABEL_LOOKUP_BATCH,
};
use cairn_core::MonitoringStore;
use cairn_store::SqlStore;
use cairn_test::PgDatabase;
use std::sync::Arc;

/// Two handles on one database, as two replicas would open it.
fn sqlite() -> ((SqlStore, SqlStore), tempfile::TempDir) {
    cairn_test::tally("sqlite");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cairn.db");
    let a = SqlStore::open_sqlite(file.clone()).unwrap();
    let b = SqlStore::open_sqlite(file.clone()).unwrap();
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
    references_round_trip_and_replace,
    labels_replace_find_by_request_and_prune,
    alert_rules_and_events,
    one_lease_holder_at_a_time,
);

fn reference(version: &str, values: Vec<u8>) -> StoredReference {
    StoredReference {
        model: "fraud".into(),
        version: version.into(),
        features: vec!["amount".into(), "country code".into()],
        target: Some("label".into()),
        source: "/data/train.csv".into(),
        rows: 1000,
        values,
        created_ms: 1_700_000_000_000,
    }
}

fn references_round_trip_and_replace(a: &SqlStore, b: &SqlStore) {
    assert_eq!(a.get_reference("fraud", "1").unwrap(), None);
    // Every byte value survives (the encoding is binary).
    let bytes: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    a.put_reference(&reference("1", bytes.clone())).unwrap();
    let mut other = reference("2", vec![1, 2, 3]);
    other.target = None;
    other.features = vec![];
    a.put_reference(&other).unwrap();
    assert_eq!(
        b.get_reference("fraud", "1").unwrap(),
        Some(reference("1", bytes))
    );
    assert_eq!(b.get_reference("fraud", "2").unwrap(), Some(other));
    a.put_reference(&reference("1", vec![9])).unwrap();
    assert_eq!(
        b.get_reference("fraud", "1").unwrap().unwrap().values,
        vec![9]
    );
    assert_eq!(
        b.referenced_versions().unwrap(),
        vec![("fraud".into(), "1".into()), ("fraud".into(), "2".into())]
    );
    let mut bad = reference("3", vec![]);
    bad.features = vec!["a\nb".into()];
    assert!(a.put_reference(&bad).is_err());
    assert_eq!(a.get_reference("fraud", "3").unwrap(), None);
}

fn label(request: &str, row: i64, value: &str, at: i64) -> StoredLabel {
    StoredLabel {
        request_id: request.into(),
        row,
        value: value.into(),
        timestamp_ms: at,
    }
}

fn sorted(mut labels: Vec<StoredLabel>) -> Vec<StoredLabel> {
    labels.sort_by(|x, y| (&x.request_id, x.row).cmp(&(&y.request_id, y.row)));
    labels
}

fn labels_replace_find_by_request_and_prune(a: &SqlStore, b: &SqlStore) {
    a.record_labels(&[
        label("r1", 0, "1", 100),
        label("r1", 1, "0", 100),
        label("r2", 0, "\"cat\"", 200),
        // The later of two labels for one row in one call wins.
        label("r3", 0, "1.5", 300),
        label("r3", 0, "2.5", 301),
    ])
    .unwrap();
    // Another replica relabels a row.
    b.record_labels(&[label("r1", 1, "1", 400)]).unwrap();
    let found = sorted(
        a.labels_for(&["r1".into(), "r3".into(), "missing".into()])
            .unwrap(),
    );
    assert_eq!(
        found,
        vec![
            label("r1", 0, "1", 100),
            label("r1", 1, "1", 400),
            label("r3", 0, "2.5", 301)
        ]
    );
    assert!(a.labels_for(&[]).unwrap().is_empty());
    let too_many: Vec<String> = (0..=LABEL_LOOKUP_BATCH).map(|i| format!("r{i}")).collect();
    assert!(a.labels_for(&too_many).is_err());
    // Retention deletes by the time a label was recorded.
    assert_eq!(b.prune_labels(250).unwrap(), 2);
    let left = sorted(
        a.labels_for(&["r1".into(), "r2".into(), "r3".into()])
            .unwrap(),
    );
    assert_eq!(
        left,
        vec![label("r1", 1, "1", 400), label("r3", 0, "2.5", 301)]
    );
    // Many at once (the insert is batched).
    let many: Vec<StoredLabel> = (0..2_000)
        .map(|i| label(&format!("bulk-{}", i / 4), i % 4, "0", 500))
        .collect();
    a.record_labels(&many).unwrap();
    let ids: Vec<String> = (0..LABEL_LOOKUP_BATCH)
        .map(|i| format!("bulk-{i}"))
        .collect();
    assert_eq!(b.labels_for(&ids).unwrap().len(), 2_000);
}

fn alert_rules_and_events(a: &SqlStore, b: &SqlStore) {
    assert!(a.alert_rules().unwrap().is_empty());
    let rule = |name: &str, body: &str| StoredAlertRule {
        name: name.into(),
        body: body.into(),
    };
    a.put_alert_rule(&rule("drift", "{\"threshold\":0.5}"))
        .unwrap();
    a.put_alert_rule(&rule("accuracy", "{\"threshold\":0.9}"))
        .unwrap();
    b.put_alert_rule(&rule("drift", "{\"threshold\":0.7}"))
        .unwrap();
    assert_eq!(
        a.alert_rules().unwrap(),
        vec![
            rule("accuracy", "{\"threshold\":0.9}"),
            rule("drift", "{\"threshold\":0.7}")
        ]
    );
    let event = |n: i64| StoredAlertEvent {
        rule: "drift".into(),
        model: "fraud".into(),
        version: "1".into(),
        at_ms: 1000 + n,
        body: format!("{{\"n\":{n}}}"),
    };
    for n in 0..5 {
        if n % 2 == 0 { a } else { b }
            .record_alert_event(&event(n))
            .unwrap();
    }
    assert_eq!(
        a.alert_events(None).unwrap(),
        (0..5).map(event).collect::<Vec<_>>()
    );
    assert_eq!(b.alert_events(Some(2)).unwrap(), vec![event(3), event(4)]);
    // A webhook's answer arrives later and is written into its event.
    let id = a.record_alert_event(&event(5)).unwrap();
    assert!(b.update_alert_event(id, "{\"webhook\":\"200\"}").unwrap());
    assert!(!b.update_alert_event(id + 1000, "{}").unwrap());
    assert_eq!(
        a.alert_events(Some(1)).unwrap()[0].body,
        "{\"webhook\":\"200\"}"
    );
}

fn one_lease_holder_at_a_time(a: &SqlStore, b: &SqlStore) {
    let now = 1_000_000;
    assert!(a.try_lease("evaluate", "replica-a", now, 10_000).unwrap());
    // Held: the other replica is refused, the holder renews.
    assert!(!b
        .try_lease("evaluate", "replica-b", now + 5_000, 10_000)
        .unwrap());
    assert!(a
        .try_lease("evaluate", "replica-a", now + 5_000, 10_000)
        .unwrap());
    assert!(!b
        .try_lease("evaluate", "replica-b", now + 14_000, 10_000)
        .unwrap());
    // Leases are independent by name.
    assert!(b.try_lease("compact", "replica-b", now, 10_000).unwrap());
    // Expired (the holder died): taken over.
    assert!(b
        .try_lease("evaluate", "replica-b", now + 15_000, 10_000)
        .unwrap());
    assert!(!a
        .try_lease("evaluate", "replica-a", now + 16_000, 10_000)
        .unwrap());
    // Released early: free at once; only the holder can release.
    a.release_lease("evaluate", "replica-a").unwrap();
    assert!(!a
        .try_lease("evaluate", "replica-a", now + 16_000, 10_000)
        .unwrap());
    b.release_lease("evaluate", "replica-b").unwrap();
    assert!(a
        .try_lease("evaluate", "replica-a", now + 16_000, 10_000)
        .unwrap());

    // Racing replicas: of many simultaneous takers of a free lease, exactly one wins.
    let stores: [Arc<&SqlStore>; 2] = [Arc::new(a), Arc::new(b)];
    let winners = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for i in 0..8 {
            let store = stores[i % 2].clone();
            let winners = &winners;
            scope.spawn(move || {
                if store
                    .try_lease("race", &format!("replica-{i}"), now, 60_000)
                    .unwrap()
                {
                    winners.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
    });
    assert_eq!(winners.into_inner(), 1);
}
