//! Versioned data end to end through the library: round trips, dedup, the stat cache, diffs,
//! safety of checkout, corruption, gc and remotes.
#![allow(clippy::unwrap_used)]
mod common;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use cairn_data::diff::Change;
use cairn_data::digest::Digest;
use cairn_data::pointer::{Kind, Pointer};
use cairn_data::progress::NoProgress;
use cairn_data::remote::Remote;
use cairn_data::Error;
use common::{tree, Project};
use proptest::prelude::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

fn wait_past_racy_window() {
    // The stat cache ignores files modified in the last 100 ms.
    std::thread::sleep(std::time::Duration::from_millis(150));
}

#[derive(Debug, Clone)]
struct Spec {
    files: Vec<(String, Vec<u8>, u32)>,
    empty_dirs: Vec<(String, u32)>,
}

fn spec() -> impl Strategy<Value = Spec> {
    let name = "[a-z]{1,6}(\\.csv|\\.bin)?";
    let path = prop::collection::vec(name, 1..4).prop_map(|parts| parts.join("/"));
    let mode = prop::sample::select(vec![0o644u32, 0o600, 0o755, 0o444, 0o700]);
    let dir_mode = prop::sample::select(vec![0o755u32, 0o700, 0o750]);
    let content = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        // Some larger files, past the parallel-hashing threshold of 8 MiB only occasionally.
        (0usize..3).prop_map(|k| vec![k as u8; [0, 70_000, 9 << 20][k]]),
    ];
    (
        prop::collection::vec((path.clone(), content, mode), 0..12),
        prop::collection::vec((path, dir_mode), 0..3),
    )
        .prop_map(|(files, dirs)| {
            // A path cannot be both a file and a folder: keep the first use of each prefix.
            let mut taken: Vec<String> = Vec::new();
            let mut fs = Vec::new();
            for (p, c, m) in files {
                let clash = taken.iter().any(|t| {
                    t == &p || t.starts_with(&format!("{p}/")) || p.starts_with(&format!("{t}/"))
                });
                if !clash {
                    taken.push(p.clone());
                    fs.push((p, c, m));
                }
            }
            let mut ds = Vec::new();
            for (d, m) in dirs {
                let d = format!("{d}_empty");
                let clash = taken.iter().any(|t| {
                    t == &d || t.starts_with(&format!("{d}/")) || d.starts_with(&format!("{t}/"))
                });
                if !clash {
                    taken.push(d.clone());
                    ds.push((d, m));
                }
            }
            Spec {
                files: fs,
                empty_dirs: ds,
            }
        })
}

fn build(root: &Path, s: &Spec) {
    std::fs::create_dir_all(root).unwrap();
    for (p, bytes, mode) in &s.files {
        let path = root.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
    for (d, mode) in &s.empty_dirs {
        let path = root.join(d);
        std::fs::create_dir_all(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Add then checkout yields identical bytes, permissions and empty folders, from an
    /// emptied folder and from a folder holding another version.
    #[test]
    fn add_then_checkout_restores_the_exact_tree(a in spec(), b in spec()) {
        let p = Project::new();
        let repo = p.repo();
        let data = p.root.join("data");
        build(&data, &a);
        let want_a = tree(&data);
        let va = repo.add(&p.root, Path::new("data"), None, "", &NoProgress).unwrap();

        std::fs::remove_dir_all(&data).unwrap();
        build(&data, &b);
        let want_b = tree(&data);
        let vb = repo.add(&p.root, Path::new("data"), None, "", &NoProgress).unwrap();

        // From version b's tree to a: everything b had is in the store, so no --force needed.
        repo.checkout_version(&p.root, "data", va.version.version, None, false, &NoProgress).unwrap();
        prop_assert_eq!(tree(&data), want_a.clone());
        std::fs::remove_dir_all(&data).unwrap();
        repo.checkout(&p.root, &[], false, &NoProgress).unwrap();
        prop_assert_eq!(tree(&data), want_a.clone());
        repo.checkout_version(&p.root, "data", vb.version.version, None, false, &NoProgress).unwrap();
        prop_assert_eq!(tree(&data), want_b);
        let report = repo.verify(&NoProgress).unwrap();
        prop_assert!(report.corrupt.is_empty() && report.missing.is_empty());
    }
}

#[test]
fn single_files_round_trip_with_their_mode() {
    let p = Project::new();
    let repo = p.repo();
    p.write("model.bin", &[7u8; 100_000]);
    std::fs::set_permissions(
        p.root.join("model.bin"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    let v1 = repo
        .add(
            &p.root,
            Path::new("model.bin"),
            Some("weights"),
            "first",
            &NoProgress,
        )
        .unwrap();
    assert_eq!(v1.snapshot.kind, Kind::File);
    assert_eq!(v1.snapshot.digest, Digest::of(&[7u8; 100_000]));
    let pointer = Pointer::read(&p.root.join("model.bin.cairn")).unwrap();
    assert_eq!(pointer.mode, Some(0o750));
    assert_eq!(pointer.dataset.as_deref(), Some("weights"));
    std::fs::remove_file(p.root.join("model.bin")).unwrap();
    repo.checkout(&p.root, &["model.bin".into()], false, &NoProgress)
        .unwrap();
    assert_eq!(p.read("model.bin"), vec![7u8; 100_000]);
    let mode = std::fs::metadata(p.root.join("model.bin"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o750);
    // Checked-out files are copies: editing one leaves the store's object intact.
    std::fs::write(p.root.join("model.bin"), b"edited").unwrap();
    assert!(repo.verify(&NoProgress).unwrap().corrupt.is_empty());
}

#[test]
fn a_copy_stores_nothing_new_and_an_unchanged_readd_reads_nothing() {
    let p = Project::new();
    let repo = p.repo();
    for i in 0..50 {
        p.write(
            &format!("a/part-{i:03}.csv"),
            format!("x,y\n{i},{}\n", i * i).as_bytes(),
        );
    }
    wait_past_racy_window();
    let first = repo
        .add(&p.root, Path::new("a"), None, "", &NoProgress)
        .unwrap();
    assert_eq!(first.snapshot.new_objects, 51, "50 files and one manifest");
    let objects = repo.cas().list().unwrap().len();

    // Re-adding the unchanged folder hashes nothing and creates no version.
    let again = repo
        .add(&p.root, Path::new("a"), None, "", &NoProgress)
        .unwrap();
    assert_eq!(again.snapshot.hashed_files, 0);
    assert!(!again.created);
    assert_eq!(again.version.version, 1);

    // A copy under another name: same bytes, no new object.
    let status = std::process::Command::new("cp")
        .args(["-rp", "a", "b"])
        .current_dir(&p.root)
        .status()
        .unwrap();
    assert!(status.success());
    let copy = repo
        .add(&p.root, Path::new("b"), None, "", &NoProgress)
        .unwrap();
    assert_eq!(copy.snapshot.new_objects, 0);
    assert_eq!(copy.snapshot.digest, first.snapshot.digest);
    assert_eq!(repo.cas().list().unwrap().len(), objects);

    // One changed file: one new object plus the new manifest, one file hashed.
    wait_past_racy_window();
    p.write("a/part-007.csv", b"x,y\n7,50\n");
    let changed = repo
        .add(&p.root, Path::new("a"), None, "", &NoProgress)
        .unwrap();
    assert!(changed.created);
    assert_eq!(changed.version.version, 2);
    assert_eq!(changed.snapshot.new_objects, 2);
    assert_eq!(changed.snapshot.hashed_files, 1);
}

#[test]
fn status_reports_unchanged_modified_and_missing() {
    let p = Project::new();
    let repo = p.repo();
    p.write("one.csv", b"a\n1\n");
    p.write("two/x.txt", b"x");
    p.write("three.txt", b"3");
    for path in ["one.csv", "two", "three.txt"] {
        repo.add(&p.root, Path::new(path), None, "", &NoProgress)
            .unwrap();
    }
    p.write("two/y.txt", b"new");
    std::fs::remove_file(p.root.join("three.txt")).unwrap();
    let status = repo.status(&NoProgress).unwrap();
    let by_path: Vec<(String, cairn_data::repo::State)> =
        status.iter().map(|s| (s.path.clone(), s.state)).collect();
    use cairn_data::repo::State::*;
    assert_eq!(
        by_path,
        vec![
            ("one.csv".to_string(), Unchanged),
            ("three.txt".to_string(), Missing),
            ("two".to_string(), Modified)
        ]
    );
    assert!(status.iter().all(|s| s.in_store));
}

fn csv_rows(rows: &[&str]) -> Vec<u8> {
    rows.join("\n").into_bytes()
}

#[test]
fn diff_reports_files_rows_and_schema_of_csv() {
    let p = Project::new();
    let repo = p.repo();
    p.write(
        "d/train.csv",
        &csv_rows(&["id,score,label", "1,0.5,a", "2,0.7,b", "3,0.9,a", ""]),
    );
    p.write("d/notes.txt", b"v1");
    p.write("d/old.bin", b"gone soon");
    repo.add(&p.root, Path::new("d"), None, "", &NoProgress)
        .unwrap();
    // Row 2 changed, row 4 added, column `weight` added, `score` turned to text.
    p.write(
        "d/train.csv",
        &csv_rows(&[
            "id,score,label,weight",
            "1,0.5,a,1",
            "2,high,b,1",
            "3,0.9,a,1",
            "4,0.1,b,2",
            "",
        ]),
    );
    std::fs::remove_file(p.root.join("d/old.bin")).unwrap();
    p.write("d/new.bin", b"fresh");
    repo.add(&p.root, Path::new("d"), None, "", &NoProgress)
        .unwrap();

    let (a, b) = (
        repo.side(&p.root, "d@1").unwrap(),
        repo.side(&p.root, "d@2").unwrap(),
    );
    let d = repo.diff(&a, &b).unwrap();
    let changes: Vec<(&str, Change)> = d
        .changes
        .iter()
        .map(|c| (c.path.as_str(), c.change))
        .collect();
    assert_eq!(
        changes,
        vec![
            ("new.bin", Change::Added),
            ("old.bin", Change::Removed),
            ("train.csv", Change::Modified)
        ]
    );
    assert_eq!(d.unchanged, 1);
    let t = d.changes[2].table.as_ref().unwrap();
    assert_eq!((t.rows_a, t.rows_b), (3, 4));
    // On the shared columns (id, score, label): row 2 differs (one out, one in), row 4 is new.
    assert_eq!((t.rows_added, t.rows_removed), (2, 1));
    assert_eq!(t.columns_added, vec!["weight"]);
    assert!(t.columns_removed.is_empty());
    assert_eq!(
        t.type_changes,
        vec![(
            "score".to_string(),
            "float".to_string(),
            "string".to_string()
        )]
    );

    // Against the workspace, and with the pointer file as A.
    p.write("d/notes.txt", b"v2");
    let ws = repo.side(&p.root, "d").unwrap();
    let pointer = repo.side(&p.root, "d.cairn").unwrap();
    let d = repo.diff(&pointer, &ws).unwrap();
    assert_eq!(d.changes.len(), 1);
    assert_eq!(d.changes[0].path, "notes.txt");
    // Reordering rows is not a change of content a table cares about.
    p.write("reordered.csv", &csv_rows(&["a,b", "1,2", "3,4"]));
    repo.add(&p.root, Path::new("reordered.csv"), None, "", &NoProgress)
        .unwrap();
    p.write("reordered.csv", &csv_rows(&["a,b", "3,4", "1,2"]));
    let d = repo
        .diff(
            &repo.side(&p.root, "reordered.csv@1").unwrap(),
            &repo.side(&p.root, "reordered.csv").unwrap(),
        )
        .unwrap();
    let t = d.changes[0].table.as_ref().unwrap();
    assert_eq!((t.rows_added, t.rows_removed), (0, 0));
}

fn write_parquet(path: &Path, ids: &[i64], scores: &[f64], names: Option<&[&str]>) {
    let mut columns: Vec<(&str, ArrayRef)> = vec![
        ("id", Arc::new(Int64Array::from(ids.to_vec()))),
        ("score", Arc::new(Float64Array::from(scores.to_vec()))),
    ];
    if let Some(n) = names {
        columns.push(("name", Arc::new(StringArray::from(n.to_vec()))));
    }
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

#[test]
fn diff_reports_rows_and_schema_of_parquet() {
    let p = Project::new();
    let repo = p.repo();
    let file = p.root.join("t.parquet");
    write_parquet(&file, &[1, 2, 3, 4], &[0.1, 0.2, 0.3, 0.4], None);
    repo.add(&p.root, Path::new("t.parquet"), None, "", &NoProgress)
        .unwrap();
    write_parquet(
        &file,
        &[1, 2, 4, 5, 6],
        &[0.1, 0.25, 0.4, 0.5, 0.6],
        Some(&["a", "b", "c", "d", "e"]),
    );
    repo.add(&p.root, Path::new("t.parquet"), None, "", &NoProgress)
        .unwrap();
    let d = repo
        .diff(
            &repo.side(&p.root, "t.parquet@1").unwrap(),
            &repo.side(&p.root, "t.parquet@2").unwrap(),
        )
        .unwrap();
    assert_eq!(d.changes.len(), 1);
    let t = d.changes[0].table.as_ref().unwrap();
    assert_eq!((t.rows_a, t.rows_b), (4, 5));
    // Removed: (2, 0.2), (3, 0.3); added: (2, 0.25), (5, ..), (6, ..).
    assert_eq!((t.rows_removed, t.rows_added), (2, 3));
    assert_eq!(t.columns_added, vec!["name"]);
    assert!(t.type_changes.is_empty());
}

#[test]
fn checkout_refuses_to_destroy_bytes_that_are_not_in_the_store() {
    let p = Project::new();
    let repo = p.repo();
    p.write("d/a.txt", b"one");
    repo.add(&p.root, Path::new("d"), None, "", &NoProgress)
        .unwrap();
    p.write("d/a.txt", b"unsaved edit");
    p.write("d/extra.txt", b"unsaved file");
    let err = repo.checkout(&p.root, &[], false, &NoProgress).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("d/a.txt") && msg.contains("d/extra.txt") && msg.contains("--force"),
        "{msg}"
    );
    assert_eq!(p.read("d/a.txt"), b"unsaved edit", "nothing changed");
    repo.checkout(&p.root, &[], true, &NoProgress).unwrap();
    assert_eq!(p.read("d/a.txt"), b"one");
    assert!(!p.root.join("d/extra.txt").exists());
}

#[test]
fn paths_that_leave_the_root_and_symlinks_are_refused() {
    let p = Project::new();
    let repo = p.repo();
    std::fs::write(p.dir.path().join("outside.txt"), b"secret").unwrap();
    for bad in ["../outside.txt", "/etc/hostname"] {
        let err = repo
            .add(&p.root, Path::new(bad), None, "", &NoProgress)
            .unwrap_err();
        assert!(
            err.to_string().contains("outside the project root"),
            "{bad}: {err}"
        );
    }
    std::os::unix::fs::symlink(p.dir.path().join("outside.txt"), p.root.join("link.txt")).unwrap();
    let err = repo
        .add(&p.root, Path::new("link.txt"), None, "", &NoProgress)
        .unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    p.write("d/ok.txt", b"ok");
    std::os::unix::fs::symlink("/etc", p.root.join("d/etc")).unwrap();
    let err = repo
        .add(&p.root, Path::new("d"), None, "", &NoProgress)
        .unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert!(
        repo.meta().list_dataset_versions(None).unwrap().is_empty(),
        "nothing recorded"
    );

    // A tampered manifest naming `../x` is refused before anything is written.
    let evil = br#"{"cairn_manifest":1,"entries":[{"path":"../escaped","type":"file","mode":420,"size":2,"digest":"0000000000000000000000000000000000000000000000000000000000000000"}]}"#;
    let digest = repo.cas().store_bytes(evil).unwrap();
    let err = repo
        .restore(
            Kind::Directory,
            &digest,
            None,
            &p.root.join("x"),
            true,
            &NoProgress,
        )
        .unwrap_err();
    assert!(err.to_string().contains("unsafe path"), "{err}");
    assert!(!p.dir.path().join("escaped").exists());
}

#[test]
fn a_corrupted_object_is_named_by_verify_and_on_read() {
    let p = Project::new();
    let repo = p.repo();
    p.write("d/a.csv", b"a\n1\n");
    p.write("d/b.csv", b"b\n2\n");
    repo.add(&p.root, Path::new("d"), None, "", &NoProgress)
        .unwrap();
    let digest = Digest::of(b"b\n2\n");
    let object = repo.cas().object_path(&digest);
    std::fs::set_permissions(&object, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&object, b"b\n3\n").unwrap();

    let report = repo.verify(&NoProgress).unwrap();
    assert_eq!(report.corrupt.len(), 1, "{:?}", report.corrupt);
    assert!(report.corrupt[0].contains(&digest.to_hex()));
    std::fs::remove_dir_all(p.root.join("d")).unwrap();
    match repo.checkout(&p.root, &[], false, &NoProgress) {
        Err(Error::Corrupt { digest: d, .. }) => assert_eq!(d, digest),
        other => panic!("expected a corrupt-object error, got {other:?}"),
    }
}

#[test]
fn gc_removes_only_what_nothing_needs() {
    let p = Project::new();
    let repo = p.repo();
    p.write("d/a.txt", b"kept");
    repo.add(&p.root, Path::new("d"), None, "", &NoProgress)
        .unwrap();
    let stray = repo.cas().store_bytes(b"nobody needs me").unwrap();
    let dry = repo.gc(true).unwrap();
    assert_eq!(dry.removed, 1);
    assert!(repo.cas().contains(&stray));
    let done = repo.gc(false).unwrap();
    assert_eq!((done.removed, done.kept), (1, 2));
    assert!(!repo.cas().contains(&stray));
    assert!(repo.cas().contains(&Digest::of(b"kept")));
}

fn push_pull_round_trip(url: &str) {
    let p = Project::new();
    let repo = p.repo();
    p.write("d/small.csv", b"a,b\n1,2\n");
    p.write("d/big.bin", &vec![3u8; 20 << 20]);
    p.write("d/nested/x.txt", b"x");
    repo.add(&p.root, Path::new("d"), None, "", &NoProgress)
        .unwrap();
    let want = tree(&p.root.join("d"));
    let remote = Remote::open("test", url).unwrap();
    let roots: Vec<(Kind, Digest)> = repo
        .pointers()
        .unwrap()
        .iter()
        .map(|(_, p)| (p.kind, p.digest))
        .collect();
    let sent = repo.push(&remote, &roots, 4, &NoProgress).unwrap();
    assert_eq!(sent.objects, 4, "three files and the manifest");
    let again = repo.push(&remote, &roots, 4, &NoProgress).unwrap();
    assert_eq!(
        (again.objects, again.skipped),
        (0, 4),
        "only missing objects are sent"
    );

    // A fresh home (another machine): pull, then checkout restores the bytes.
    let other = p.repo_with_home(&p.dir.path().join("home2"));
    std::fs::remove_dir_all(p.root.join("d")).unwrap();
    let got = other.pull(&remote, &roots, 4, &NoProgress).unwrap();
    assert_eq!(got.objects, 4);
    other.checkout(&p.root, &[], false, &NoProgress).unwrap();
    assert_eq!(tree(&p.root.join("d")), want);

    // An interrupted pull resumes: drop one object locally, pull fetches only it.
    let one = Digest::of(b"x");
    other.cas().remove(&one).unwrap();
    let resumed = other.pull(&remote, &roots, 4, &NoProgress).unwrap();
    assert_eq!((resumed.objects, resumed.skipped), (1, 2));
}

#[test]
fn push_and_pull_through_a_folder_remote() {
    let dir = tempfile::tempdir().unwrap();
    push_pull_round_trip(&dir.path().join("remote").to_string_lossy());
}

#[test]
fn push_and_pull_through_a_real_s3_compatible_server() {
    let Ok(url) = std::env::var("CAIRN_TEST_S3_URL") else {
        // Under CI a missing service is a failure, never a silent skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "CAIRN_TEST_S3_URL must be set in CI"
        );
        eprintln!(
            "SKIPPED push_and_pull_through_a_real_s3_compatible_server: set CAIRN_TEST_S3_URL \
             (s3://bucket/prefix) and AWS_ENDPOINT_URL; .ci/run starts moto's server for it"
        );
        return;
    };
    let prefix = format!("{}/run-{}", url.trim_end_matches('/'), std::process::id());
    push_pull_round_trip(&prefix);
}

#[test]
fn an_interrupted_checkout_is_finished_by_the_next_one() {
    let p = Project::new();
    let repo = p.repo();
    p.write("d/a.txt", b"a");
    p.write("d/b.txt", b"b");
    let added = repo
        .add(&p.root, Path::new("d"), None, "", &NoProgress)
        .unwrap();
    // What a checkout killed mid-copy leaves: one file gone, a temp file beside the others.
    std::fs::remove_file(p.root.join("d/b.txt")).unwrap();
    p.write("d/.cairn-tmp-x1y2z3", b"half a fi");
    // The temp file is not data: the tree's digest ignores it ...
    let snap = repo
        .snapshot(&p.root.join("d"), false, &NoProgress)
        .unwrap();
    assert_eq!(snap.files, 1);
    // ... and the next checkout removes it without --force and restores the rest.
    repo.checkout(&p.root, &[], false, &NoProgress).unwrap();
    assert!(!p.root.join("d/.cairn-tmp-x1y2z3").exists());
    assert_eq!(
        repo.snapshot(&p.root.join("d"), false, &NoProgress)
            .unwrap()
            .digest,
        added.snapshot.digest
    );
}
