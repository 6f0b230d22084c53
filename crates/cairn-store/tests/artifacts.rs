//! One suite for every artifact store: a local folder and an S3-compatible bucket (moto's, at
//! `CAIRN_TEST_S3_URL`, which `.ci/run` starts). Both must keep the same promises: writes
//! whole or not at all, the same listing, the same refusals.
#![allow(clippy::unwrap_used)]

use cairn_core::paths::ArtifactPath;
use cairn_core::{ArtifactStore, Error};
use cairn_store::{LocalArtifactStore, ObjectArtifactStore, OBJECT_PART_BYTES, OBJECT_RANGE_BYTES};
use std::io::{self, Read};

fn p(s: &str) -> ArtifactPath {
    ArtifactPath::parse(s).unwrap()
}

/// The error of opening `path` (which must fail).
fn open_err(store: &dyn ArtifactStore, path: &str) -> Error {
    match store.open(&p(path)) {
        Ok(_) => panic!("{path} opened"),
        Err(e) => e,
    }
}

fn read_all(store: &dyn ArtifactStore, path: &str) -> Vec<u8> {
    let (mut reader, size) = store.open(&p(path)).unwrap();
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).unwrap();
    assert_eq!(bytes.len() as u64, size, "{path}: size said {size}");
    bytes
}

/// Bytes that differ at every offset, so a misplaced part shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u64).wrapping_mul(2654435761).to_le_bytes()[1])
        .collect()
}

/// A body that breaks after `good` bytes, as a client cut off mid-upload.
struct Breaks {
    sent: usize,
    good: usize,
}

impl Read for Breaks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.sent >= self.good {
            return Err(io::Error::other("client went away"));
        }
        let n = buf.len().min(self.good - self.sent).min(64 * 1024);
        buf[..n].fill(7);
        self.sent += n;
        Ok(n)
    }
}

fn conformance(store: &dyn ArtifactStore) {
    // Round trip, overwrite, sizes.
    assert_eq!(store.put(&p("run/a.txt"), &mut &b"hello"[..]).unwrap(), 5);
    assert_eq!(read_all(store, "run/a.txt"), b"hello");
    store
        .put(&p("run/a.txt"), &mut &b"hello again"[..])
        .unwrap();
    assert_eq!(read_all(store, "run/a.txt"), b"hello again");
    store.put(&p("run/empty"), &mut &b""[..]).unwrap();
    assert_eq!(read_all(store, "run/empty"), b"");

    // Larger than one part: a multipart upload on a bucket, read back in order.
    let big = pattern(OBJECT_PART_BYTES * 2 + 12_345);
    assert_eq!(
        store.put(&p("run/model/big.bin"), &mut &big[..]).unwrap(),
        big.len() as u64
    );
    assert!(
        read_all(store, "run/model/big.bin") == big,
        "big file differs"
    );
    // Read back by ranges on a bucket: sizes on and around range boundaries come back whole.
    for len in [OBJECT_RANGE_BYTES * 2 + 1, OBJECT_RANGE_BYTES * 3] {
        let data = pattern(len);
        store.put(&p("ranged/data.bin"), &mut &data[..]).unwrap();
        assert!(
            read_all(store, "ranged/data.bin") == data,
            "{len} bytes differ"
        );
    }
    store.delete(&p("ranged")).unwrap();

    // Listing: direct children only, directories without sizes, sorted.
    store
        .put(&p("run/model/MLmodel"), &mut &b"flavors: {}"[..])
        .unwrap();
    store
        .put(&p("run/model/sub/deep.txt"), &mut &b"x"[..])
        .unwrap();
    let names: Vec<(String, bool, Option<u64>)> = store
        .list(&p("run/model"))
        .unwrap()
        .into_iter()
        .map(|e| (e.path, e.is_dir, e.file_size))
        .collect();
    assert_eq!(
        names,
        vec![
            ("MLmodel".to_string(), false, Some(11)),
            ("big.bin".to_string(), false, Some(big.len() as u64)),
            ("sub".to_string(), true, None),
        ]
    );
    assert!(store.list(&p("nothing/here")).unwrap().is_empty());
    let top: Vec<String> = store
        .list(&ArtifactPath::root())
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert_eq!(top, vec!["run".to_string()]);

    // A listing longer than one page of S3's (1,000 keys).
    let many = 1_005;
    for i in 0..many {
        store
            .put(&p(&format!("wide/f{i:05}")), &mut &b"."[..])
            .unwrap();
    }
    let wide = store.list(&p("wide")).unwrap();
    assert_eq!(wide.len(), many);
    assert_eq!(wide[many - 1].path, format!("f{:05}", many - 1));

    // Refusals, each changing nothing.
    let err = open_err(store, "run/model");
    assert!(
        matches!(&err, Error::InvalidParameter(m) if m.contains("directory")),
        "{err:?}"
    );
    assert!(matches!(open_err(store, "run/missing"), Error::NotFound(_)));
    let err = store.put(&p("run/model"), &mut &b"x"[..]).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidParameter(m) if m.contains("directory")),
        "{err:?}"
    );
    let err = store
        .put(&p("run/a.txt/inside"), &mut &b"x"[..])
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidParameter(m) if m.contains("is a file")),
        "{err:?}"
    );
    assert_eq!(read_all(store, "run/a.txt"), b"hello again");
    assert!(store.delete(&ArtifactPath::root()).is_err());

    // A body that breaks leaves nothing behind, small or multipart, and an older file stays.
    for good in [1_000, OBJECT_PART_BYTES + 1_000] {
        assert!(store
            .put(&p("run/cut.bin"), &mut Breaks { sent: 0, good })
            .is_err());
        assert!(matches!(open_err(store, "run/cut.bin"), Error::NotFound(_)));
        assert!(store
            .put(&p("run/a.txt"), &mut Breaks { sent: 0, good })
            .is_err());
        assert_eq!(read_all(store, "run/a.txt"), b"hello again");
    }
    let listed: Vec<String> = store
        .list(&p("run"))
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert_eq!(listed, vec!["a.txt", "empty", "model"], "{listed:?}");

    // Deletion: a file, a whole directory, and a name that is not there.
    store.delete(&p("run/a.txt")).unwrap();
    assert!(matches!(open_err(store, "run/a.txt"), Error::NotFound(_)));
    store.delete(&p("run/model")).unwrap();
    assert!(store.list(&p("run/model")).unwrap().is_empty());
    assert!(matches!(
        store.delete(&p("run/model")).unwrap_err(),
        Error::NotFound(_)
    ));
    assert_eq!(read_all(store, "run/empty"), b"");
}

#[test]
fn a_local_folder_keeps_the_artifact_promises() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalArtifactStore::new(dir.path().join("artifacts")).unwrap();
    conformance(&store);
}

#[test]
fn an_s3_compatible_bucket_keeps_the_artifact_promises() {
    let Ok(url) = std::env::var("CAIRN_TEST_S3_URL") else {
        cairn_test::skip(
            "an_s3_compatible_bucket_keeps_the_artifact_promises",
            "set CAIRN_TEST_S3_URL (s3://bucket/prefix) and AWS_ENDPOINT_URL; .ci/run starts moto's server",
        );
        return;
    };
    let url = format!(
        "{}/artifact-suite-{}",
        url.trim_end_matches('/'),
        std::process::id()
    );
    let (bucket, prefix) = cairn_data::remote::s3_from_env(&url).unwrap();
    let store = ObjectArtifactStore::new(bucket.clone(), &prefix, &url).unwrap();
    store.check().unwrap();
    conformance(&store);
    // The same promises when large objects are read by byte ranges.
    let ranged_url = format!("{url}-ranged");
    let ranged_prefix = format!("{prefix}-ranged");
    let ranged = ObjectArtifactStore::new(bucket, &ranged_prefix, &ranged_url)
        .unwrap()
        .with_ranged_reads(3);
    conformance(&ranged);
}
