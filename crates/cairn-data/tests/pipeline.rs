//! `cairn repro` through the library: caching, parameters, restore from the run cache,
//! parallel stages and failures.
#![allow(clippy::unwrap_used)]
mod common;

use cairn_data::pipeline::{repro, Outcome, ReproOptions, StageReport};
use common::Project;
use std::collections::BTreeMap;

fn run(p: &Project, jobs: usize) -> BTreeMap<String, Outcome> {
    let repo = p.repo();
    let options = ReproOptions {
        targets: vec![],
        jobs,
        force: false,
    };
    let reports: Vec<StageReport> = repro(&repo, &options, &|_, _| {}).unwrap();
    reports.into_iter().map(|r| (r.name, r.outcome)).collect()
}

fn outcomes(list: &[(&str, Outcome)]) -> BTreeMap<String, Outcome> {
    list.iter()
        .map(|(n, o)| (n.to_string(), o.clone()))
        .collect()
}

const PIPELINE: &str = r#"
stages:
  prepare:
    cmd: mkdir -p out && sed "s/x/$(grep factor params.yaml | cut -d' ' -f2)/g" raw.txt > out/prepared.txt && echo run >> prepare.count
    deps: [raw.txt]
    params: [factor]
    outs: [out/prepared.txt]
  train:
    cmd: [tr a-z A-Z < out/prepared.txt > model.txt, echo run >> train.count]
    deps: [out/prepared.txt]
    outs: [model.txt]
"#;

fn count(p: &Project, stage: &str) -> usize {
    String::from_utf8(p.read(&format!("{stage}.count")))
        .unwrap()
        .lines()
        .count()
}

#[test]
fn stages_are_skipped_rerun_and_restored_from_the_cache() {
    let p = Project::new();
    p.write("cairn.yaml", PIPELINE.as_bytes());
    p.write("params.yaml", b"factor: 2\n");
    p.write("raw.txt", b"x plus x\n");

    assert_eq!(
        run(&p, 2),
        outcomes(&[("prepare", Outcome::Ran), ("train", Outcome::Ran)])
    );
    assert_eq!(p.read("model.txt"), b"2 PLUS 2\n");
    let lock = String::from_utf8(p.read("cairn.lock")).unwrap();
    assert!(
        lock.contains("fingerprint") && lock.contains("factor: 2"),
        "{lock}"
    );

    // Nothing changed: both skipped.
    assert_eq!(
        run(&p, 2),
        outcomes(&[
            ("prepare", Outcome::Unchanged),
            ("train", Outcome::Unchanged)
        ])
    );

    // A parameter change reruns the stage that reads it and, as its output changed, the next.
    p.write("params.yaml", b"factor: 3\n");
    assert_eq!(
        run(&p, 2),
        outcomes(&[("prepare", Outcome::Ran), ("train", Outcome::Ran)])
    );
    assert_eq!(p.read("model.txt"), b"3 PLUS 3\n");

    // Back to the earlier value: outputs come back from the cache, nothing runs.
    p.write("params.yaml", b"factor: 2\n");
    assert_eq!(
        run(&p, 2),
        outcomes(&[("prepare", Outcome::Restored), ("train", Outcome::Restored)])
    );
    assert_eq!(p.read("model.txt"), b"2 PLUS 2\n");
    assert_eq!((count(&p, "prepare"), count(&p, "train")), (2, 2));

    // An output deleted by hand is brought back (from the cache: same inputs).
    std::fs::remove_file(p.root.join("model.txt")).unwrap();
    assert_eq!(
        run(&p, 2),
        outcomes(&[
            ("prepare", Outcome::Unchanged),
            ("train", Outcome::Restored)
        ])
    );
    assert_eq!(p.read("model.txt"), b"2 PLUS 2\n");
}

#[test]
fn independent_stages_run_at_the_same_time() {
    let p = Project::new();
    // Each stage waits (up to 20 s) for the other to have started: run one at a time, the
    // first would time out and fail.
    let stage = |me: &str, other: &str| {
        format!(
            "  {me}:\n    cmd: touch {me}.started && i=0; while [ ! -e {other}.started ]; do sleep 0.05; i=$((i+1)); [ $i -lt 400 ] || exit 9; done; echo done > {me}.out\n    outs: [{me}.out]\n"
        )
    };
    let yaml = format!("stages:\n{}{}  join:\n    cmd: cat a.out b.out > joined.out\n    deps: [a.out, b.out]\n    outs: [joined.out]\n", stage("a", "b"), stage("b", "a"));
    p.write("cairn.yaml", yaml.as_bytes());
    assert_eq!(
        run(&p, 2),
        outcomes(&[
            ("a", Outcome::Ran),
            ("b", Outcome::Ran),
            ("join", Outcome::Ran)
        ])
    );
    assert_eq!(p.read("joined.out"), b"done\ndone\n");
}

#[test]
fn a_failing_stage_stops_its_dependants_and_keeps_earlier_outputs() {
    let p = Project::new();
    p.write("in.txt", b"v1\n");
    p.write(
        "cairn.yaml",
        b"stages:\n  first:\n    cmd: cp in.txt first.out\n    deps: [in.txt]\n    outs: [first.out]\n  second:\n    cmd: cp first.out second.out\n    deps: [first.out]\n    outs: [second.out]\n  other:\n    cmd: echo other > other.out\n    outs: [other.out]\n",
    );
    assert_eq!(
        run(&p, 2),
        outcomes(&[
            ("first", Outcome::Ran),
            ("second", Outcome::Ran),
            ("other", Outcome::Ran)
        ])
    );
    // Now `first` fails half way, after clobbering its output.
    p.write(
        "cairn.yaml",
        b"stages:\n  first:\n    cmd: echo partial > first.out && echo 'bad row 7' >&2 && exit 3\n    deps: [in.txt]\n    outs: [first.out]\n  second:\n    cmd: cp first.out second.out\n    deps: [first.out]\n    outs: [second.out]\n  other:\n    cmd: echo other2 > other.out\n    outs: [other.out]\n",
    );
    let repo = p.repo();
    let options = ReproOptions {
        targets: vec![],
        jobs: 2,
        force: false,
    };
    let reports = repro(&repo, &options, &|_, _| {}).unwrap();
    let first = reports.iter().find(|r| r.name == "first").unwrap();
    assert_eq!(first.outcome, Outcome::Failed(Some(3)));
    assert!(first.output.contains("bad row 7"), "{}", first.output);
    let second = reports.iter().find(|r| r.name == "second").unwrap();
    assert_eq!(second.outcome, Outcome::Blocked);
    let other = reports.iter().find(|r| r.name == "other").unwrap();
    assert_eq!(other.outcome, Outcome::Ran, "independent stages still run");
    assert_eq!(
        p.read("first.out"),
        b"v1\n",
        "the failed stage's previous output is put back"
    );
    assert_eq!(p.read("second.out"), b"v1\n");
}

#[test]
fn bad_pipelines_are_refused_with_the_reason() {
    let p = Project::new();
    p.write(
        "cairn.yaml",
        b"stages:\n  a:\n    cmd: x\n    outs: [../escape]\n",
    );
    let repo = p.repo();
    let options = ReproOptions {
        targets: vec![],
        jobs: 1,
        force: false,
    };
    let err = repro(&repo, &options, &|_, _| {}).unwrap_err().to_string();
    assert!(err.contains("stay inside"), "{err}");
    p.write("cairn.yaml", b"stages:\n  a:\n    cmd: x\n    deps: [b.out]\n    outs: [a.out]\n  b:\n    cmd: x\n    deps: [a.out]\n    outs: [b.out]\n");
    let err = repro(&repo, &options, &|_, _| {}).unwrap_err().to_string();
    assert!(err.contains("cycle"), "{err}");
    p.write(
        "cairn.yaml",
        b"stages:\n  a:\n    cmd: x\n    colour: red\n",
    );
    let err = repro(&repo, &options, &|_, _| {}).unwrap_err().to_string();
    assert!(err.contains("colour"), "{err}");
    p.write(
        "cairn.yaml",
        b"stages:\n  a:\n    cmd: cat missing.txt\n    deps: [missing.txt]\n",
    );
    let reports = repro(&repo, &options, &|_, _| {}).unwrap();
    assert_eq!(reports[0].outcome, Outcome::Failed(None));
    assert!(reports[0].output.contains("missing.txt does not exist"));
}
