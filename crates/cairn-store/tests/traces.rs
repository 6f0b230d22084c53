//! Traces, spans and assessments through `cairn_core::Traces`: the same behaviour on SQLite
//! (always) and PostgreSQL (when CAIRN_TEST_POSTGRES_URL is set).
#![allow(clippy::unwrap_used)]

use cairn_core::model::KeyValue;
use cairn_core::traces::*;
use cairn_core::tracking::NewRun;
use cairn_core::{Error, Tracking};
use cairn_store::SqlStore;
use cairn_test::PgDatabase;
use std::sync::Arc;

struct Services {
    tracking: Tracking,
    traces: Traces,
}

fn services(store: SqlStore) -> Services {
    let store = Arc::new(store);
    let tracking = Tracking::new(store.clone(), "mlflow-artifacts:");
    Services {
        traces: Traces::new(store, tracking.clone()),
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

conformance!(
    spans_create_a_trace_and_start_trace_completes_it,
    search_filters_order_and_pages,
    deleting_traces_by_id_and_by_age,
    assessments_life_cycle,
    assessment_filters_in_search,
    concurrent_span_writers_to_one_trace,
);

const MS: i64 = 1_000_000;

fn tid(n: u8) -> String {
    format!("tr-{}", format!("{n:02x}").repeat(16))
}

fn span(
    trace: &str,
    id: &str,
    parent: Option<&str>,
    name: &str,
    start_ms: i64,
    end_ms: i64,
) -> Span {
    Span {
        trace_id: trace.into(),
        span_id: id.into(),
        parent_span_id: parent.map(str::to_string),
        name: name.into(),
        span_type: Some(if parent.is_none() { "CHAIN" } else { "LLM" }.into()),
        status: "OK".into(),
        start_time_ns: start_ms * MS,
        end_time_ns: Some(end_ms * MS),
        content: format!("{{\"name\": \"{name}\", \"text\": \"hello {name}\"}}"),
        inputs: parent.is_none().then(|| format!("{{\"q\": \"{name}\"}}")),
        outputs: parent.is_none().then(|| "\"done\"".to_string()),
        resource_tags: vec![KeyValue::new("service.name", "tests")],
    }
}

fn experiment(s: &Services, name: &str) -> String {
    s.tracking.create_experiment(name, None, vec![]).unwrap()
}

fn tag(info: &TraceInfo, key: &str) -> Option<String> {
    info.tags
        .iter()
        .find(|t| t.key == key)
        .map(|t| t.value.clone())
}

fn spans_create_a_trace_and_start_trace_completes_it(s: &Services) {
    let exp = experiment(s, "spans");
    let t = tid(1);
    // A child ends first: the trace exists, in progress.
    s.traces
        .log_spans(
            &exp,
            vec![span(
                &t,
                "00000000000000b1",
                Some("00000000000000a1"),
                "child",
                1_010,
                1_020,
            )],
        )
        .unwrap();
    let info = s.traces.get_trace_info(&t).unwrap();
    assert_eq!(info.state, TraceState::InProgress);
    assert_eq!(info.request_time, 1_010);
    assert_eq!(
        tag(&info, SPANS_LOCATION_TAG).as_deref(),
        Some(SPANS_IN_TRACKING_STORE)
    );
    assert_eq!(
        tag(&info, ARTIFACT_LOCATION_TAG).unwrap(),
        format!("mlflow-artifacts:/{exp}/traces/{t}/artifacts")
    );
    // The root ends: earliest start, latest end, its state, previews.
    s.traces
        .log_spans(
            &exp,
            vec![span(&t, "00000000000000a1", None, "root", 1_000, 1_050)],
        )
        .unwrap();
    let info = s.traces.get_trace_info(&t).unwrap();
    assert_eq!(info.state, TraceState::Ok);
    assert_eq!(
        (info.request_time, info.execution_duration),
        (1_000, Some(50))
    );
    assert_eq!(info.request_preview.as_deref(), Some("{\"q\": \"root\"}"));
    assert_eq!(info.response_preview.as_deref(), Some("\"done\""));
    // The client's start_trace after the spans completes the info, keeping what spans set.
    let mut sent = info.clone();
    sent.client_request_id = Some("req-1".into());
    sent.metadata = vec![KeyValue::new("mlflow.sourceRun", "abc")];
    sent.tags = vec![KeyValue::new("team", "search")];
    sent.request_preview = None;
    let stored = s.traces.start_trace(sent).unwrap();
    assert_eq!(stored.client_request_id.as_deref(), Some("req-1"));
    assert_eq!(stored.request_preview.as_deref(), Some("{\"q\": \"root\"}"));
    assert_eq!(tag(&stored, "team").as_deref(), Some("search"));
    assert_eq!(
        tag(&stored, SPANS_LOCATION_TAG).as_deref(),
        Some(SPANS_IN_TRACKING_STORE)
    );
    assert_eq!(
        stored.metadata,
        vec![
            KeyValue::new("mlflow.sourceRun", "abc"),
            KeyValue::new(INFO_FINALIZED_METADATA, "true")
        ]
    );
    // Spans come back by start time; logging one again replaces it.
    let (_, spans) = s.traces.get_trace(&t).unwrap();
    assert_eq!(
        spans.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["root", "child"]
    );
    let mut again = span(
        &t,
        "00000000000000b1",
        Some("00000000000000a1"),
        "child",
        1_010,
        1_030,
    );
    again.status = "ERROR".into();
    s.traces.log_spans(&exp, vec![again]).unwrap();
    let (info, spans) = s.traces.get_trace(&t).unwrap();
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[1].status, "ERROR");
    assert_eq!(
        info.state,
        TraceState::Ok,
        "a child's error does not change a finished trace"
    );
    // Unknown experiments and deleted ones are refused; bad ids too.
    assert!(matches!(
        s.traces
            .log_spans("424242", vec![span(&tid(2), "01", None, "x", 1, 2)]),
        Err(Error::NotFound(_))
    ));
    s.tracking.delete_experiment(&exp).unwrap();
    assert!(matches!(
        s.traces
            .log_spans(&exp, vec![span(&tid(3), "01", None, "x", 1, 2)]),
        Err(Error::InvalidParameter(_))
    ));
    assert!(matches!(
        s.traces.get_trace_info("tr-ffff"),
        Err(Error::NotFound(_))
    ));
    let mut bad = span("tr-../etc", "01", None, "x", 1, 2);
    bad.trace_id = "tr-../etc".into();
    assert!(matches!(
        s.traces.log_spans("0", vec![bad]),
        Err(Error::InvalidParameter(_))
    ));
}

fn search_ids(s: &Services, exps: &[&str], filter: &str, order: &[&str]) -> Vec<String> {
    let exps: Vec<String> = exps.iter().map(|e| e.to_string()).collect();
    let order: Vec<String> = order.iter().map(|o| o.to_string()).collect();
    s.traces
        .search_traces(&exps, filter, &order, Some(1000), "")
        .unwrap()
        .items
        .into_iter()
        .map(|t| t.trace_id)
        .collect()
}

fn search_filters_order_and_pages(s: &Services) {
    let exp = experiment(s, "search");
    let other = experiment(s, "other");
    let run = s
        .tracking
        .create_run(NewRun {
            experiment_id: Some(exp.clone()),
            ..Default::default()
        })
        .unwrap()
        .info
        .run_id;
    // Traces 1..=5 in `exp` at 1000, 2000, ... ms, durations 10, 20, ...; 6 in `other`.
    for n in 1..=5u8 {
        let t = tid(n);
        let start = n as i64 * 1000;
        let mut root = span(
            &t,
            "00000000000000a1",
            None,
            &format!("root{n}"),
            start,
            start + n as i64 * 10,
        );
        if n == 2 {
            root.status = "ERROR".into();
        }
        let child = span(
            &t,
            "00000000000000b1",
            Some("00000000000000a1"),
            if n == 3 { "retrieve" } else { "generate" },
            start,
            start + 1,
        );
        s.traces.log_spans(&exp, vec![root, child]).unwrap();
    }
    s.traces
        .log_spans(
            &other,
            vec![span(&tid(6), "00000000000000a1", None, "root6", 6000, 6010)],
        )
        .unwrap();
    s.traces.set_tag(&tid(1), "team", "search").unwrap();
    s.traces.set_tag(&tid(4), "team", "ranking").unwrap();
    s.traces.set_tag(&tid(5), TRACE_NAME_TAG, "answer").unwrap();
    let mut with_run = s.traces.get_trace_info(&tid(3)).unwrap();
    with_run.metadata = vec![KeyValue::new(SOURCE_RUN_METADATA, &run)];
    s.traces.start_trace(with_run).unwrap();
    s.traces.link_traces_to_run(&[tid(4)], &run).unwrap();
    s.traces.link_traces_to_run(&[tid(4)], &run).unwrap();

    let all = search_ids(s, &[&exp], "", &[]);
    assert_eq!(
        all,
        [tid(5), tid(4), tid(3), tid(2), tid(1)],
        "newest first by default"
    );
    assert_eq!(search_ids(s, &[&exp, &other], "", &[]).len(), 6);
    assert_eq!(
        search_ids(s, &[&exp], "trace.status = 'ERROR'", &[]),
        [tid(2)]
    );
    assert_eq!(search_ids(s, &[&exp], "status != 'ERROR'", &[]).len(), 4);
    assert_eq!(search_ids(s, &[&exp], "tag.team = 'search'", &[]), [tid(1)]);
    assert_eq!(
        search_ids(s, &[&exp], "tags.team LIKE '%an%'", &[]),
        [tid(4)]
    );
    assert_eq!(search_ids(s, &[&exp], "tag.team IS NULL", &[]).len(), 3);
    assert_eq!(search_ids(s, &[&exp], "name = 'answer'", &[]), [tid(5)]);
    assert_eq!(
        search_ids(
            s,
            &[&exp],
            &format!("metadata.`{SOURCE_RUN_METADATA}` = '{run}'"),
            &[]
        ),
        [tid(3)]
    );
    assert_eq!(
        search_ids(
            s,
            &[&exp],
            &format!("attribute.run_id = '{run}'"),
            &["timestamp ASC"]
        ),
        [tid(3), tid(4)],
        "made in the run or linked to it"
    );
    assert_eq!(
        search_ids(s, &[&exp], &format!("run_id != '{run}'"), &[]).len(),
        3
    );
    assert_eq!(
        search_ids(s, &[&exp], "span.name = 'retrieve'", &[]),
        [tid(3)]
    );
    assert_eq!(search_ids(s, &[&exp], "span.type = 'CHAIN'", &[]).len(), 5);
    assert_eq!(
        search_ids(s, &[&exp], "span.content LIKE '%hello root2%'", &[]),
        [tid(2)]
    );
    assert_eq!(
        search_ids(s, &[&exp], "trace.text LIKE '%root4%'", &[]),
        [tid(4)]
    );
    assert_eq!(
        search_ids(s, &[&exp], "timestamp_ms > 3000", &["timestamp_ms ASC"]),
        [tid(4), tid(5)]
    );
    assert_eq!(
        search_ids(
            s,
            &[&exp],
            "trace.execution_time_ms <= 20",
            &["timestamp_ms ASC"]
        ),
        [tid(1), tid(2)]
    );
    assert_eq!(
        search_ids(
            s,
            &[&exp],
            &format!("request_id IN ('{}', '{}')", tid(1), tid(6)),
            &[]
        ),
        [tid(1)]
    );
    assert_eq!(
        search_ids(s, &[&exp], "", &["execution_time_ms ASC"]),
        [tid(1), tid(2), tid(3), tid(4), tid(5)]
    );
    // Pages.
    let first = s
        .traces
        .search_traces(std::slice::from_ref(&exp), "", &[], Some(2), "")
        .unwrap();
    assert_eq!(first.items.len(), 2);
    let token = cairn_core::search::page_token(first.next_offset.unwrap());
    let second = s
        .traces
        .search_traces(std::slice::from_ref(&exp), "", &[], Some(2), &token)
        .unwrap();
    assert_eq!(second.items[0].trace_id, tid(3));
    // Bad searches are 400s.
    for bad in [
        "trace.status >= 'OK'",
        "metric.x > 1",
        "span.content = 'x'",
        "trace.text = 'x'",
        "span.kind = 'x'",
        "tag.team > 'a'",
        "timestamp_ms = 'x'",
        "status RLIKE 'x'",
    ] {
        let r = s
            .traces
            .search_traces(std::slice::from_ref(&exp), bad, &[], None, "");
        assert!(matches!(r, Err(Error::InvalidParameter(_))), "{bad}: {r:?}");
    }
    assert!(matches!(
        s.traces.search_traces(&[], "", &[], None, ""),
        Err(Error::InvalidParameter(_))
    ));
    assert!(matches!(
        s.traces.search_traces(&["x".into()], "", &[], None, ""),
        Err(Error::InvalidParameter(_))
    ));
}

fn deleting_traces_by_id_and_by_age(s: &Services) {
    let exp = experiment(s, "delete");
    let other = experiment(s, "keep");
    for n in 1..=4u8 {
        let start = n as i64 * 1000;
        s.traces
            .log_spans(
                &exp,
                vec![span(
                    &tid(n),
                    "00000000000000a1",
                    None,
                    "r",
                    start,
                    start + 5,
                )],
            )
            .unwrap();
    }
    s.traces
        .log_spans(
            &other,
            vec![span(&tid(9), "00000000000000a1", None, "r", 500, 505)],
        )
        .unwrap();
    s.traces.set_tag(&tid(1), "k", "v").unwrap();
    // Ids of another experiment are not deleted through this one.
    assert_eq!(
        s.traces
            .delete_traces(&exp, TraceSelection::Ids(vec![tid(1), tid(9)]))
            .unwrap(),
        1
    );
    assert!(matches!(
        s.traces.get_trace_info(&tid(1)),
        Err(Error::NotFound(_))
    ));
    assert!(s.traces.get_trace_info(&tid(9)).is_ok());
    // The oldest first, bounded by count and time.
    let older = |max_timestamp_millis, max_traces| TraceSelection::Older {
        max_timestamp_millis,
        max_traces,
    };
    assert_eq!(
        s.traces
            .delete_traces(&exp, older(10_000, Some(1)))
            .unwrap(),
        1
    );
    assert!(matches!(
        s.traces.get_trace_info(&tid(2)),
        Err(Error::NotFound(_))
    ));
    assert_eq!(s.traces.delete_traces(&exp, older(3_000, None)).unwrap(), 1);
    assert_eq!(search_ids(s, &[&exp], "", &[]), [tid(4)]);
    assert!(s.traces.get_trace(&tid(4)).unwrap().1.len() == 1);
    assert!(matches!(
        s.traces.delete_traces(&exp, older(10_000, Some(0))),
        Err(Error::InvalidParameter(_))
    ));
}

fn feedback(trace: &str, value: &str) -> Assessment {
    Assessment {
        assessment_id: String::new(),
        trace_id: trace.into(),
        name: "relevance".into(),
        kind: AssessmentKind::Feedback,
        payload: format!("{{\"value\": {value}}}"),
        source_type: "HUMAN".into(),
        source_id: "ann".into(),
        create_time: 0,
        last_update_time: 0,
        span_id: None,
        run_id: None,
        rationale: Some("on topic".into()),
        metadata: None,
        overrides: None,
        valid: true,
    }
}

/// `feedback.<name>` / `expectation.<name>` as MLflow reads them: the value's JSON text for
/// `=`, `!=` and `LIKE` (text also unquoted), numbers only for `<`/`>`, only valid ones.
fn assessment_filters_in_search(s: &Services) {
    let exp = experiment(s, "assessed");
    for n in 1..=4u8 {
        let t = tid(n);
        let start = n as i64 * 1000;
        s.traces
            .log_spans(
                &exp,
                vec![span(&t, "00000000000000a1", None, "r", start, start + 5)],
            )
            .unwrap();
    }
    let add = |n: u8, name: &str, value: &str| {
        let mut a = feedback(&tid(n), value);
        a.name = name.into();
        s.traces.create_assessment(a).unwrap()
    };
    add(1, "relevance", "0.5");
    let replaced = add(2, "relevance", "0.2");
    let mut over = feedback(&tid(2), "1.0");
    over.overrides = Some(replaced.assessment_id.clone());
    s.traces.create_assessment(over).unwrap();
    add(1, "correct", "true");
    add(3, "correct", "\"no\"");
    add(4, "correct", "\"it's \\\"fine\\\"\"");
    let mut expected = feedback(&tid(4), "\"42\"");
    expected.kind = AssessmentKind::Expectation;
    expected.name = "answer".into();
    s.traces.create_assessment(expected).unwrap();
    let found = |filter: &str| {
        let mut ids = search_ids(s, &[&exp], filter, &[]);
        ids.sort();
        ids
    };
    assert_eq!(
        found("feedback.relevance > 0.6"),
        [tid(2)],
        "the override counts"
    );
    assert_eq!(
        found("feedback.relevance < 0.3"),
        Vec::<String>::new(),
        "not the replaced one"
    );
    assert_eq!(found("feedback.relevance >= 0.5"), [tid(1), tid(2)]);
    assert_eq!(found("feedback.correct = 'no'"), [tid(3)]);
    assert_eq!(found("feedback.correct = '\"no\"'"), [tid(3)]);
    assert_eq!(found("feedback.correct = 'true'"), [tid(1)]);
    assert_eq!(found("feedback.correct = 'it''s \"fine\"'"), [tid(4)]);
    assert_eq!(found("feedback.correct != 'no'"), [tid(1), tid(4)]);
    assert_eq!(found("feedback.correct LIKE '%n%'"), [tid(3), tid(4)]);
    assert_eq!(
        found("feedback.correct > 0"),
        Vec::<String>::new(),
        "booleans are not numbers"
    );
    assert_eq!(found("feedback.relevance IS NULL"), [tid(3), tid(4)]);
    assert_eq!(found("feedback.relevance IS NOT NULL"), [tid(1), tid(2)]);
    assert_eq!(found("expectation.answer = '42'"), [tid(4)]);
    assert_eq!(
        found("feedback.answer = '42'"),
        Vec::<String>::new(),
        "kinds differ"
    );
    assert_eq!(
        found("feedback.correct IS NOT NULL AND feedback.relevance IS NOT NULL"),
        [tid(1)]
    );
    for bad in ["feedback.relevance > 'high'", "feedback.correct = 1"] {
        assert!(
            matches!(
                s.traces
                    .search_traces(std::slice::from_ref(&exp), bad, &[], None, ""),
                Err(Error::InvalidParameter(_))
            ),
            "{bad}"
        );
    }
}

fn assessments_life_cycle(s: &Services) {
    let exp = experiment(s, "assess");
    let t = tid(1);
    s.traces
        .log_spans(
            &exp,
            vec![span(&t, "00000000000000a1", None, "r", 1000, 1005)],
        )
        .unwrap();
    let a = s.traces.create_assessment(feedback(&t, "0.5")).unwrap();
    assert!(a.assessment_id.starts_with("a-"));
    assert!(a.create_time > 0 && a.valid);
    assert_eq!(s.traces.get_assessment(&t, &a.assessment_id).unwrap(), a);
    let mut expectation = feedback(&t, "\"stones\"");
    expectation.kind = AssessmentKind::Expectation;
    expectation.name = "expected".into();
    let e = s.traces.create_assessment(expectation).unwrap();
    let info = s.traces.get_trace_info(&t).unwrap();
    assert_eq!(info.assessments.len(), 2);

    let updated = s
        .traces
        .update_assessment(
            &t,
            &a.assessment_id,
            AssessmentUpdate {
                payload: Some((AssessmentKind::Feedback, "{\"value\": 0.9}".into())),
                rationale: Some("re-read".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(updated.payload, "{\"value\": 0.9}");
    assert_eq!(updated.rationale.as_deref(), Some("re-read"));
    assert_eq!(updated.name, "relevance");
    assert!(matches!(
        s.traces.update_assessment(
            &t,
            &a.assessment_id,
            AssessmentUpdate {
                payload: Some((AssessmentKind::Expectation, "{}".into())),
                ..Default::default()
            }
        ),
        Err(Error::InvalidParameter(_))
    ));
    // An override invalidates the original until it is deleted.
    let mut over = feedback(&t, "1.0");
    over.overrides = Some(a.assessment_id.clone());
    let over = s.traces.create_assessment(over).unwrap();
    assert!(!s.traces.get_assessment(&t, &a.assessment_id).unwrap().valid);
    s.traces.delete_assessment(&t, &over.assessment_id).unwrap();
    assert!(s.traces.get_assessment(&t, &a.assessment_id).unwrap().valid);
    assert!(matches!(
        s.traces.get_assessment(&t, &over.assessment_id),
        Err(Error::NotFound(_))
    ));
    // Another trace's id does not reach it; unknown traces are 404s.
    assert!(matches!(
        s.traces.get_assessment(&tid(2), &e.assessment_id),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        s.traces.create_assessment(feedback(&tid(2), "1")),
        Err(Error::NotFound(_))
    ));
    // Deleting the trace deletes its assessments.
    s.traces
        .delete_traces(&exp, TraceSelection::Ids(vec![t.clone()]))
        .unwrap();
    assert!(matches!(
        s.traces.get_assessment(&t, &e.assessment_id),
        Err(Error::NotFound(_))
    ));
}

fn concurrent_span_writers_to_one_trace(s: &Services) {
    let exp = experiment(s, "concurrent");
    let t = tid(7);
    std::thread::scope(|scope| {
        for w in 0..4i64 {
            let (traces, exp, t) = (s.traces.clone(), exp.clone(), t.clone());
            scope.spawn(move || {
                for i in 0..10i64 {
                    let id = format!("{:016x}", w * 100 + i + 1);
                    let start = 1000 + w * 100 + i;
                    traces
                        .log_spans(
                            &exp,
                            vec![span(
                                &t,
                                &id,
                                Some("00000000000000a1"),
                                "c",
                                start,
                                start + 1,
                            )],
                        )
                        .unwrap();
                }
            });
        }
    });
    s.traces
        .log_spans(
            &exp,
            vec![span(&t, "00000000000000a1", None, "root", 990, 2000)],
        )
        .unwrap();
    let (info, spans) = s.traces.get_trace(&t).unwrap();
    assert_eq!(spans.len(), 41);
    assert_eq!(
        (info.request_time, info.execution_duration),
        (990, Some(1010))
    );
    assert_eq!(info.state, TraceState::Ok);
}
