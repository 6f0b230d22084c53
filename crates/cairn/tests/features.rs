//! `cairn features` against Feast itself (its own venv, `CAIRN_TEST_FEAST_PYTHON`): the same
//! definitions and generated data (late rows, duplicate event times, ttl edges, entities with
//! no data); the point-in-time join compared row by row with Feast's `get_historical_features`,
//! and the online answers after the same materialization compared with Feast's feature server.
#![allow(clippy::unwrap_used)]
use cairn_test::{python_json, skip, Http, TestServer};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_cairn"))
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/feast_reference.py")
}

fn cairn(repo: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .args(["features", "--repo"])
        .arg(repo)
        .args(args)
        .env("CAIRN_HOME", repo.join("home"))
        .env_remove("CAIRN_BACKEND_STORE_URI")
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Feast's answer with the statuses Cairn gives where Feast 0.67's Python server does not
/// distinguish them: a value older than its view's ttl is OUTSIDE_MAX_AGE, a null value
/// NULL_VALUE (Feast answers PRESENT for both).
fn with_cairn_statuses(feast: &Value, ttl_views: &[(&str, i64)], now_ms: i64) -> Value {
    let mut answer = feast.clone();
    let names: Vec<String> = answer["metadata"]["feature_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    for (i, result) in answer["results"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .enumerate()
    {
        let ttl = ttl_views
            .iter()
            .find(|(view, _)| {
                names[i].starts_with(&format!("{view}__"))
                    || VIEW_OF.iter().any(|(f, v)| *f == names[i] && v == view)
            })
            .map(|(_, t)| *t);
        let values = result["values"].as_array().unwrap().clone();
        let times = result["event_timestamps"].as_array().unwrap().clone();
        for (j, status) in result["statuses"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .enumerate()
        {
            if status != "PRESENT" || i == 0 {
                continue;
            }
            let event = times[j].as_str().unwrap();
            let event_ms = parse_rfc3339_ms(event);
            if ttl.is_some_and(|t| t > 0 && now_ms - event_ms > t * 1000) {
                *status = json!("OUTSIDE_MAX_AGE");
            } else if values[j].is_null() {
                *status = json!("NULL_VALUE");
            }
        }
    }
    answer
}

/// An answer's columns by name.
fn by_name(answer: &Value) -> std::collections::BTreeMap<String, Value> {
    answer["metadata"]["feature_names"]
        .as_array()
        .unwrap()
        .iter()
        .zip(answer["results"].as_array().unwrap())
        .map(|(n, r)| (n.as_str().unwrap().to_string(), r.clone()))
        .collect()
}

/// Which view each short feature name belongs to (for answers without full names).
const VIEW_OF: [(&str, &str); 5] = [
    ("conv_rate", "driver_stats"),
    ("trips", "driver_stats"),
    ("rating", "driver_stats"),
    ("city", "driver_profile"),
    ("vip", "driver_profile"),
];

/// `2026-11-02T23:42:00Z` → ms since the epoch.
fn parse_rfc3339_ms(t: &str) -> i64 {
    let (date, time) = t.trim_end_matches('Z').split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let h: Vec<i64> = hms.split(':').map(|p| p.parse().unwrap()).collect();
    let days = cairn_core::dates::days_from_civil(d[0], d[1], d[2]);
    (days * 86_400 + h[0] * 3600 + h[1] * 60 + h[2]) * 1000
        + format!("{frac:0<3}")[..3].parse::<i64>().unwrap()
}

#[test]
fn training_sets_and_online_answers_equal_feasts() {
    let Ok(python) = std::env::var("CAIRN_TEST_FEAST_PYTHON") else {
        skip(
            "training_sets_and_online_answers_equal_feasts",
            "CAIRN_TEST_FEAST_PYTHON is not set (a venv with feast==0.67.0, as .ci/run makes)",
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path();
    let reference = python_json(
        &python,
        &[script().as_os_str(), "reference".as_ref(), repo.as_os_str()],
        &[],
    );

    // Definitions: plan shows them, apply records version 1, applying again adds nothing.
    let plan = ok(cairn(repo, &["plan"]));
    assert!(plan.contains("+ feature view driver_stats"), "{plan}");
    assert!(ok(cairn(repo, &["apply"])).contains("Applied project drivers version 1"));
    assert!(ok(cairn(repo, &["apply"])).contains("stays at version 1"));
    assert_eq!(ok(cairn(repo, &["plan"])).trim(), "No changes.");

    // The training set, row by row against Feast's.
    let out = ok(cairn(
        repo,
        &[
            "get-historical",
            "--entities",
            repo.join("entities.parquet").to_str().unwrap(),
            "--features",
            "driver_stats:conv_rate,driver_stats:trips,driver_stats:rating,driver_profile:city,driver_profile:vip",
            "-o",
            repo.join("cairn_historical.parquet").to_str().unwrap(),
        ],
    ));
    assert!(out.contains("Wrote 300 rows with 5 features"), "{out}");
    let compared = python_json(
        &python,
        &[
            script().as_os_str(),
            "compare".as_ref(),
            repo.join("feast_historical.parquet").as_os_str(),
            repo.join("cairn_historical.parquet").as_os_str(),
            repo.join("data/stats.parquet").as_os_str(),
        ],
        &[],
    );
    assert_eq!(compared["equal"], true, "{compared}");
    assert_eq!(compared["cairn_rows"], 300, "{compared}");
    // The generated data does exercise what differs: Feast's dropped rows and its tie breaks.
    assert!(compared["feast_rows"].as_u64().unwrap() > 150, "{compared}");
    assert!(
        compared["dropped_by_feast_without_a_value"]
            .as_u64()
            .unwrap()
            > 0,
        "{compared}"
    );
    assert!(
        compared["feast_tie_breaks_not_by_created"]
            .as_u64()
            .unwrap()
            > 0,
        "{compared}"
    );

    // The same materialization, twice (idempotent), then the feature server's answers.
    let (start, end) = (
        reference["materialize_start"].as_str().unwrap(),
        reference["materialize_end"].as_str().unwrap(),
    );
    for _ in 0..2 {
        let out = ok(cairn(repo, &["materialize", start, end]));
        assert!(out.contains("Materialized driver_stats:"), "{out}");
        assert!(out.contains("20 entities written"), "{out}");
    }
    let mut serve = Command::new(bin());
    serve
        .args(["features", "--repo"])
        .arg(repo)
        .args(["serve", "--port", "0"])
        .env("CAIRN_HOME", repo.join("home"))
        .env_remove("CAIRN_BACKEND_STORE_URI");
    let server = TestServer::spawn(serve, &repo.join("home"));
    let http = Http::new(&server.url);
    let now_ms = cairn_core::now_millis();
    for (request, feast) in reference["requests"]
        .as_array()
        .unwrap()
        .iter()
        .zip(reference["answers"].as_array().unwrap())
    {
        let (status, answer) = http.post_json("/get-online-features", request);
        assert_eq!(status, 200, "{request}: {answer}");
        let expected = with_cairn_statuses(
            feast,
            &[("driver_stats", 7200), ("driver_profile", 0)],
            now_ms,
        );
        // Feast orders the features of one view as a set happens to (not as asked): compare
        // each named column.
        assert_eq!(by_name(&answer), by_name(&expected), "{request}");
        assert_eq!(answer["metadata"]["feature_names"][0], "driver_id");
    }
    // The stats are a month old for a 2 h ttl: OUTSIDE_MAX_AGE (checked, not only mapped).
    let (_, answer) = http.post_json(
        "/get-online-features",
        &json!({"features": ["driver_stats:trips"], "entities": {"driver_id": [1001]}}),
    );
    assert_eq!(
        answer["results"][1]["statuses"][0], "OUTSIDE_MAX_AGE",
        "{answer}"
    );

    // Push then read: a row for driver 1001 observed now is answered at once, within its ttl.
    let now_s = cairn_core::now_millis() / 1000;
    let pushed = json!({"push_source_name": "stats", "to": "online", "df": {
        "driver_id": [1001], "event_timestamp": [now_s], "created": [now_s],
        "conv_rate": [0.125], "trips": [77], "rating": [null]}});
    let (status, reply) = http.post_json("/push", &pushed);
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["written"][0]["rows"], 1, "{reply}");
    let read = json!({"features": ["driver_stats:conv_rate", "driver_stats:trips", "driver_stats:rating"],
                      "entities": {"driver_id": [1001]}});
    let (_, answer) = http.post_json("/get-online-features", &read);
    let columns = by_name(&answer);
    assert_eq!(columns["conv_rate"]["values"][0], 0.125, "{answer}");
    assert_eq!(columns["conv_rate"]["statuses"][0], "PRESENT", "{answer}");
    assert_eq!(columns["trips"]["values"][0], 77, "{answer}");
    assert_eq!(columns["rating"]["statuses"][0], "NULL_VALUE", "{answer}");
    // Feast's own SDK with `online_store: type: remote` pointed at Cairn reads what Cairn's
    // server answers (its `to_dict()` keeps the values whatever their status) and writes
    // through it (`write_to_online_store`, Feast's `POST /write-to-online-store`).
    let through = python_json(
        &python,
        &[
            script().as_os_str(),
            "remote".as_ref(),
            repo.as_os_str(),
            server.url.as_ref(),
        ],
        &[],
    );
    let own =
        json!({"features": through["features"], "entities": {"driver_id": through["entities"]}});
    let (_, answer) = http.post_json("/get-online-features", &own);
    let columns = by_name(&answer);
    for feature in ["conv_rate", "trips", "city", "vip"] {
        assert_eq!(
            through["before"][feature], columns[feature]["values"],
            "{feature}: {through} vs {answer}"
        );
    }
    assert!(
        through["before"]["city"][0].is_string(),
        "the profile is read through: {through}"
    );
    assert_eq!(through["after"]["conv_rate"], json!([0.75]), "{through}");
    assert_eq!(through["after"]["trips"], json!([9]), "{through}");
    let (_, answer) = http.post_json(
        "/get-online-features",
        &json!({"features": ["driver_stats:trips"], "entities": {"driver_id": [1010]}}),
    );
    assert_eq!(answer["results"][1]["values"][0], 9, "{answer}");
    let (status, refused) = http.post_json(
        "/write-to-online-store",
        &json!({"feature_view_name": "nope", "df": {"driver_id": [1]}}),
    );
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused.to_string().contains("unknown feature view nope"),
        "{refused}"
    );
    // An older row pushed later does not move the value back.
    let mut older = pushed.clone();
    older["df"]["event_timestamp"] = json!(["2026-11-01T00:00:00Z"]);
    older["df"]["trips"] = json!([1]);
    assert_eq!(http.post_json("/push", &older).0, 200);
    let (_, answer) = http.post_json("/get-online-features", &read);
    assert_eq!(by_name(&answer)["trips"]["values"][0], 77, "{answer}");
    // Bad pushes change nothing and name the problem.
    for (change, says) in [
        (
            json!({"push_source_name": "nope"}),
            "unknown push source nope",
        ),
        (json!({"to": "offline"}), "online store only"),
        (
            json!({"df": {"driver_id": [1001], "event_timestamp": [now_s], "created": [now_s], "conv_rate": ["fast"], "trips": [5], "rating": [1.0]}}),
            "conv_rate is Float32",
        ),
        (
            json!({"df": {"driver_id": [1001], "event_timestamp": ["yesterday"], "created": [now_s], "conv_rate": [0.5], "trips": [5], "rating": [1.0]}}),
            "is not a time",
        ),
    ] {
        let mut body = pushed.clone();
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, reply) = http.post_json("/push", &body);
        assert_eq!(status, 400, "{body}: {reply}");
        assert!(reply.to_string().contains(says), "{body}: {reply}");
    }
    let (_, answer) = http.post_json("/get-online-features", &read);
    assert_eq!(by_name(&answer)["trips"]["values"][0], 77, "{answer}");

    // Bad requests name the problem.
    for (body, says) in [
        (
            json!({"features": ["driver_stats:speed"], "entities": {"driver_id": [1]}}),
            "no feature speed",
        ),
        (
            json!({"features": ["nope:x"], "entities": {"driver_id": [1]}}),
            "unknown feature view nope",
        ),
        (
            json!({"features": ["driver_stats:trips"], "entities": {"driver_id": ["abc"]}}),
            "is not an integer",
        ),
        (
            json!({"features": ["driver_stats:trips"], "entities": {"rider_id": [1]}}),
            "needs entity key driver_id",
        ),
        (
            json!({"feature_service": "nope", "entities": {"driver_id": [1]}}),
            "unknown feature service nope",
        ),
    ] {
        let (status, answer) = http.post_json("/get-online-features", &body);
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer.to_string().contains(says), "{body}: {answer}");
    }
}

#[test]
fn bad_definitions_are_refused_and_nothing_is_applied() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path();
    std::fs::write(
        repo.join("features.yaml"),
        "project: p\nentities:\n  - {name: driver, join_keys: [driver_id]}\nsources:\n  - {name: s, path: missing.parquet, timestamp_field: ts}\nfeature_views:\n  - {name: v, entities: [driver], source: s, schema: [{name: f, dtype: Float64}]}\n",
    )
    .unwrap();
    let out = cairn(repo, &["apply"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.parquet"), "{err}");
    // Nothing was recorded: get-historical says to apply first.
    std::fs::write(repo.join("e.parquet"), b"").unwrap();
    let out = cairn(
        repo,
        &[
            "get-historical",
            "--entities",
            "e.parquet",
            "--features",
            "v:f",
            "-o",
            "o.parquet",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("run `cairn features apply` first"));
}

/// A small source: driver 1..=3, one row each at 2026-11-01T00:00:00Z.
fn small_source(path: &Path) {
    use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
    use std::sync::Arc;
    let at = 1_793_491_200_000_000i64; // 2026-11-01T00:00:00Z
    let batch = RecordBatch::try_from_iter([
        (
            "driver_id",
            Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef,
        ),
        (
            "event_timestamp",
            Arc::new(TimestampMicrosecondArray::from(vec![at, at, at]).with_timezone("UTC"))
                as ArrayRef,
        ),
        (
            "conv_rate",
            Arc::new(Float64Array::from(vec![0.1, 0.2, 0.3])) as ArrayRef,
        ),
    ])
    .unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// `cairn server --features-project` on one database: two replicas answer the same online
/// values, a push through one is read through the other, and the routes sit behind `--auth`
/// like the rest of the API. The online store is the metadata database (PostgreSQL when
/// CAIRN_TEST_POSTGRES_URL is set) and, when CAIRN_TEST_REDIS_URL is set, Redis.
#[test]
fn server_replicas_share_the_online_store() {
    let pg = cairn_test::PgDatabase::create("server_replicas_share_the_online_store");
    let backend = pg.as_ref().map(|db| db.url.clone());
    if backend.is_none() {
        cairn_test::tally("sqlite");
    }
    replicas_share("shared", backend.as_deref(), None);
    match std::env::var("CAIRN_TEST_REDIS_URL") {
        Ok(redis) => {
            cairn_test::tally("redis");
            // A project of this run's own: Redis outlives the test.
            let project = format!("shared{}x{}", std::process::id(), cairn_core::now_millis());
            // A database of its own too: the first --auth start made the admin user there.
            let pg = cairn_test::PgDatabase::create("server_replicas_share_redis");
            replicas_share(
                &project,
                pg.as_ref().map(|db| db.url.as_str()),
                Some(&redis),
            );
        }
        Err(_) => skip(
            "server_replicas_share_the_online_store (Redis)",
            "CAIRN_TEST_REDIS_URL is not set",
        ),
    }
}

fn replicas_share(project: &str, backend: Option<&str>, redis: Option<&str>) {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path();
    small_source(&repo.join("data/stats.parquet"));
    std::fs::write(
        repo.join("features.yaml"),
        format!("project: {project}\nentities:\n  - {{name: driver, join_keys: [driver_id]}}\nsources:\n  - {{name: stats, path: data/stats.parquet, timestamp_field: event_timestamp}}\nfeature_views:\n  - {{name: s, entities: [driver], source: stats, schema: [{{name: conv_rate, dtype: Float64}}]}}\n"),
    )
    .unwrap();
    let env = |cmd: &mut Command| {
        cmd.env("CAIRN_HOME", repo.join("home"));
        match backend {
            Some(url) => cmd.env("CAIRN_BACKEND_STORE_URI", url),
            None => cmd.env_remove("CAIRN_BACKEND_STORE_URI"),
        };
        match redis {
            Some(url) => cmd.env("CAIRN_ONLINE_STORE", url),
            None => cmd.env_remove("CAIRN_ONLINE_STORE"),
        };
    };
    let run = |args: &[&str]| {
        let mut cmd = Command::new(bin());
        cmd.args(["features", "--repo"]).arg(repo).args(args);
        env(&mut cmd);
        ok(cmd.output().unwrap())
    };
    run(&["apply"]);
    run(&["materialize", "2026-10-01", "2026-12-01"]);
    let start = |extra: &[&str]| {
        let mut cmd = Command::new(bin());
        cmd.args(["server", "--port", "0", "--features-project", project])
            .args(extra)
            .env("CAIRN_LOG", "warn");
        env(&mut cmd);
        TestServer::spawn(cmd, &repo.join("home"))
    };
    let (a, b) = (start(&[]), start(&[]));
    let read = json!({"features": ["s:conv_rate"], "entities": {"driver_id": [1, 2, 3, 4]}});
    for server in [&a, &b] {
        let (status, answer) = server.http().post_json("/get-online-features", &read);
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer["results"][1]["values"],
            json!([0.1, 0.2, 0.3, null]),
            "{answer}"
        );
        assert_eq!(answer["results"][1]["statuses"][3], "NOT_FOUND");
    }
    let push = json!({"push_source_name": "stats", "df": {
        "driver_id": [4], "event_timestamp": ["2026-11-02T00:00:00Z"], "conv_rate": [0.4]}});
    assert_eq!(a.http().post_json("/push", &push).0, 200);
    let (_, answer) = b.http().post_json("/get-online-features", &read);
    assert_eq!(
        answer["results"][1]["values"],
        json!([0.1, 0.2, 0.3, 0.4]),
        "{answer}"
    );
    drop((a, b));

    // With --auth, the feature routes need a user like every API route.
    let guarded = start(&["--auth"]);
    let (status, _) = guarded.http().post_json("/get-online-features", &read);
    assert_eq!(status, 401);
    let password = std::fs::read_to_string(repo.join("home/admin-password")).unwrap();
    let (status, answer) = guarded
        .http()
        .basic("admin", password.trim())
        .post_json("/get-online-features", &read);
    assert_eq!(status, 200, "{answer}");
}

/// Drivers with four daily rows each (2026-10-01 to 2026-10-04): a rate, a trip count and a
/// city; and entity rows at 2026-10-03T12:00Z labelled from that day's values.
struct DriverData {
    /// (driver, day, conv_rate, trips, city) for every row.
    rows: Vec<(i64, i64, f64, i64, &'static str)>,
}

const CITIES: [&str; 3] = ["berlin", "lima", "oslo"];
const DAY_US: i64 = 86_400_000_000;
/// 2026-10-01T00:00:00Z in microseconds.
const OCT_1_US: i64 = 1_790_812_800_000_000;

impl DriverData {
    fn generate(drivers: i64) -> DriverData {
        let mut state = 11u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as f64 / (1u64 << 31) as f64
        };
        let mut rows = Vec::new();
        for driver in 1..=drivers {
            for day in 0..4 {
                rows.push((
                    driver,
                    day,
                    (next() * 1000.0).round() / 1000.0,
                    (next() * 40.0) as i64,
                    CITIES[(next() * 3.0) as usize % 3],
                ));
            }
        }
        DriverData { rows }
    }

    /// The label a driver's values give.
    fn label(conv_rate: f64, trips: i64, city: &str) -> &'static str {
        let bonus = if city == "oslo" { 8.0 } else { 0.0 };
        if conv_rate * trips as f64 + bonus > 12.0 {
            "yes"
        } else {
            "no"
        }
    }

    fn write(&self, repo: &Path) {
        use arrow_array::{
            ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
        };
        use std::sync::Arc;
        let write = |path: &Path, batch: RecordBatch| {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let file = std::fs::File::create(path).unwrap();
            let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
            w.write(&batch).unwrap();
            w.close().unwrap();
        };
        let time = |us: Vec<i64>| {
            Arc::new(TimestampMicrosecondArray::from(us).with_timezone("UTC")) as ArrayRef
        };
        let stats = RecordBatch::try_from_iter([
            (
                "driver_id",
                Arc::new(Int64Array::from_iter_values(self.rows.iter().map(|r| r.0))) as ArrayRef,
            ),
            (
                "event_timestamp",
                time(self.rows.iter().map(|r| OCT_1_US + r.1 * DAY_US).collect()),
            ),
            (
                "conv_rate",
                Arc::new(Float64Array::from_iter_values(
                    self.rows.iter().map(|r| r.2),
                )),
            ),
            (
                "trips",
                Arc::new(Int64Array::from_iter_values(self.rows.iter().map(|r| r.3))),
            ),
            (
                "city",
                Arc::new(StringArray::from_iter_values(self.rows.iter().map(|r| r.4))),
            ),
        ])
        .unwrap();
        write(&repo.join("data/stats.parquet"), stats);
        let day2: Vec<_> = self.rows.iter().filter(|r| r.1 == 2).collect();
        let entities = RecordBatch::try_from_iter([
            (
                "driver_id",
                Arc::new(Int64Array::from_iter_values(day2.iter().map(|r| r.0))) as ArrayRef,
            ),
            (
                "event_timestamp",
                time(vec![OCT_1_US + 2 * DAY_US + DAY_US / 2; day2.len()]),
            ),
            (
                "label",
                Arc::new(StringArray::from_iter_values(
                    day2.iter().map(|r| Self::label(r.2, r.3, r.4)),
                )),
            ),
        ])
        .unwrap();
        write(&repo.join("labels.parquet"), entities);
    }

    /// Each driver's newest row (what materialization puts online).
    fn latest(&self, driver: i64) -> (f64, i64, &'static str) {
        let r = self
            .rows
            .iter()
            .filter(|r| r.0 == driver)
            .max_by_key(|r| r.1)
            .unwrap();
        (r.2, r.3, r.4)
    }
}

fn driver_definitions(service_features: &str) -> String {
    format!(
        "project: rides\nentities:\n  - {{name: driver, join_keys: [driver_id]}}\nsources:\n  - {{name: stats, path: data/stats.parquet, timestamp_field: event_timestamp}}\nfeature_views:\n  - name: driver_stats\n    entities: [driver]\n    source: stats\n    ttl: 0s\n    schema:\n      - {{name: conv_rate, dtype: Float64}}\n      - {{name: trips, dtype: Int64}}\n      - {{name: city, dtype: String}}\nfeature_services:\n  - name: scoring\n    features: [{service_features}]\n  - name: rates\n    features: [driver_stats:conv_rate]\n"
    )
}

/// `cairn ARGS` in `dir` on `home` (local stores only): whether it succeeded, and what it
/// printed (stdout then stderr).
fn cli(dir: &Path, home: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env("CAIRN_HOME", home)
        .env("CAIRN_LOG", "warn")
        .env_remove("CAIRN_BACKEND_STORE_URI")
        .env_remove("CAIRN_ONLINE_STORE")
        .env_remove("MLFLOW_TRACKING_URI")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The one `.onnx` file under `dir`.
fn find_onnx(dir: &Path) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()? {
        let path = entry.ok()?.path();
        if path.is_dir() {
            if let Some(found) = find_onnx(&path) {
                return Some(found);
            }
        } else if path.extension().is_some_and(|e| e == "onnx") {
            return Some(path);
        }
    }
    None
}

/// A model trained on a point-in-time training set of a feature service and bound to it
/// answers requests that send only entity keys, through OIP on `cairn server` and
/// `/invocations` on `cairn serve`, with the same outputs as the features sent directly; a
/// definition change that would starve it is refused whole; bad entity keys get a 400.
#[test]
fn a_model_bound_to_a_feature_service_answers_entity_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path();
    let data = DriverData::generate(400);
    data.write(repo);
    let definitions =
        driver_definitions("driver_stats:conv_rate, driver_stats:trips, driver_stats:city");
    std::fs::write(repo.join("features.yaml"), &definitions).unwrap();
    let home = repo.join("home");
    let run = |args: &[&str]| cli(repo, &home, args);
    let must = |args: &[&str]| {
        let (ok, text) = run(args);
        assert!(ok, "cairn {args:?}: {text}");
        text
    };
    must(&["features", "apply"]);
    must(&[
        "features",
        "get-historical",
        "--entities",
        "labels.parquet",
        "--service",
        "scoring",
        "-o",
        "train.parquet",
    ]);
    must(&[
        "train",
        "--data",
        "train.parquet",
        "--target",
        "label",
        "--drop",
        "driver_id",
        "--drop",
        "event_timestamp",
        "--model",
        "gbdt",
        "--register",
        "scorer",
    ]);
    must(&["features", "materialize", "2026-09-01", "2026-12-01"]);

    // Binding checks that the service feeds the model's inputs.
    let (ok, text) = run(&["features", "bind", "models:/scorer/1", "--service", "rates"]);
    assert!(!ok && text.contains("'trips'"), "{text}");
    let (ok, text) = run(&["features", "bind", "models:/scorer/1", "--service", "nope"]);
    assert!(!ok && text.contains("no feature service nope"), "{text}");
    let text = must(&[
        "features",
        "bind",
        "models:/scorer/1",
        "--service",
        "scoring",
    ]);
    assert!(text.contains("Bound models:/scorer/1"), "{text}");

    // The model's columns (their order, the city levels) as training recorded them.
    let onnx = std::fs::read(find_onnx(&home.join("artifacts")).unwrap()).unwrap();
    let columns = cairn_serving::feature_columns(&onnx).unwrap();
    let direct_row = |driver: i64| -> Vec<f64> {
        let (rate, trips, city) = data.latest(driver);
        columns
            .iter()
            .map(|c| match (c.name.as_str(), &c.levels) {
                ("conv_rate", _) => rate,
                ("trips", _) => trips as f64,
                ("city", Some(levels)) => levels.iter().position(|l| l == city).unwrap() as f64,
                other => panic!("unexpected column {other:?}"),
            })
            .collect()
    };
    let drivers: Vec<i64> = (1..=25).collect();

    let mut cmd = Command::new(bin());
    cmd.args(["server", "--port", "0", "--features-project", "rides"])
        .env("CAIRN_HOME", &home)
        .env("CAIRN_LOG", "warn")
        .env_remove("CAIRN_BACKEND_STORE_URI")
        .env_remove("CAIRN_ONLINE_STORE");
    let server = TestServer::spawn(cmd, &home);
    let http = server.http();
    let infer = "/v2/models/scorer/versions/1/infer";
    let (status, by_key) = http.post_json(
        infer,
        &json!({"inputs": [{"name": "driver_id", "datatype": "INT64",
                            "shape": [drivers.len()], "data": drivers}]}),
    );
    assert_eq!(status, 200, "{by_key}");
    let direct: Vec<f64> = drivers.iter().flat_map(|d| direct_row(*d)).collect();
    let (status, by_value) = http.post_json(
        infer,
        &json!({"inputs": [{"name": "x", "datatype": "FP32",
                            "shape": [drivers.len(), columns.len()], "data": direct}]}),
    );
    assert_eq!(status, 200, "{by_value}");
    assert_eq!(by_key["outputs"], by_value["outputs"]);
    // The predictions are the model's, not a constant: labels of both kinds come back.
    let labels = by_key["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "label")
        .unwrap()["data"]
        .clone();
    let labels: Vec<i64> = serde_json::from_value(labels).unwrap();
    assert!(labels.contains(&0) && labels.contains(&1), "{labels:?}");

    // An entity the store does not hold has missing features, answered as training would.
    let (status, unknown) = http.post_json(
        infer,
        &json!({"inputs": [{"name": "driver_id", "datatype": "INT64", "shape": [1], "data": [999_999]}]}),
    );
    assert_eq!(status, 200, "{unknown}");
    // A key of the wrong type is refused, naming it.
    let (status, wrong) = http.post_json(
        infer,
        &json!({"inputs": [{"name": "driver_id", "datatype": "BYTES", "shape": [1], "data": ["abc"]}]}),
    );
    assert_eq!(status, 400, "{wrong}");
    assert!(wrong.to_string().contains("driver_id"), "{wrong}");

    // `cairn serve` of the same version: /invocations with entity keys.
    let mut cmd = Command::new(bin());
    cmd.args([
        "serve",
        "models:/scorer/1",
        "--port",
        "0",
        "--features-project",
        "rides",
    ])
    .env("CAIRN_HOME", &home)
    .env("CAIRN_LOG", "warn")
    .env_remove("CAIRN_BACKEND_STORE_URI")
    .env_remove("CAIRN_ONLINE_STORE")
    .env_remove("MLFLOW_TRACKING_URI");
    let serve = TestServer::spawn(cmd, &home);
    let records: Vec<Value> = drivers.iter().map(|d| json!({"driver_id": d})).collect();
    let (status, scored) = serve
        .http()
        .post_json("/invocations", &json!({"dataframe_records": records}));
    assert_eq!(status, 200, "{scored}");
    let predicted: Vec<i64> = scored["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["label"].as_i64().unwrap())
        .collect();
    assert_eq!(predicted, labels);
    let (status, split) = serve.http().post_json(
        "/invocations",
        &json!({"dataframe_split": {"columns": ["driver_id"], "data": [[1], [2]]}}),
    );
    assert_eq!(status, 200, "{split}");
    assert_eq!(split["predictions"][1]["label"].as_i64(), Some(labels[1]));
    drop(serve);

    // Definitions that drop a feature the bound model uses are refused, and nothing changes.
    std::fs::write(
        repo.join("features.yaml"),
        driver_definitions("driver_stats:conv_rate, driver_stats:city"),
    )
    .unwrap();
    let (ok, text) = run(&["features", "apply"]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("models:/scorer/1") && text.contains("'trips'"),
        "{text}"
    );
    let (status, still) = http.post_json(
        infer,
        &json!({"inputs": [{"name": "driver_id", "datatype": "INT64", "shape": [2], "data": [1, 2]}]}),
    );
    assert_eq!(status, 200, "{still}");
    std::fs::write(repo.join("features.yaml"), &definitions).unwrap();
    let text = must(&["features", "apply"]);
    assert!(text.contains("stays at version 1"), "{text}");

    // Unbound, the version takes only its own inputs again.
    must(&["features", "bind", "models:/scorer/1", "--unbind"]);
    let (status, refused) = http.post_json(
        infer,
        &json!({"inputs": [{"name": "driver_id", "datatype": "INT64", "shape": [1], "data": [1]}]}),
    );
    assert_eq!(status, 400, "{refused}");
}

/// A source may be a Cairn dataset version (read from the data store, whatever happened to the
/// file since), and a training set may be recorded as a dataset version made from the feature
/// definitions and the source versions: a model trained on it traces back to the source bytes.
#[test]
fn a_training_set_from_dataset_versions_records_its_lineage() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path();
    std::fs::create_dir_all(repo.join(".git")).unwrap();
    let data = DriverData::generate(300);
    data.write(repo);
    let home = repo.join("home");
    let run = |args: &[&str]| cli(repo, &home, args);
    let must = |args: &[&str]| {
        let (ok, text) = run(args);
        assert!(ok, "cairn {args:?}: {text}");
        text
    };
    must(&["data", "add", "data/stats.parquet", "--name", "stats"]);
    let by_dataset =
        driver_definitions("driver_stats:conv_rate, driver_stats:trips, driver_stats:city")
            .replace("path: data/stats.parquet", "dataset: stats@1");
    std::fs::write(repo.join("features.yaml"), &by_dataset).unwrap();
    // The working copy changes after the version was taken: the version is what is read.
    std::fs::write(repo.join("data/stats.parquet"), b"not parquet any more").unwrap();
    must(&["features", "apply"]);
    let text = must(&[
        "features",
        "get-historical",
        "--entities",
        "labels.parquet",
        "--service",
        "scoring",
        "-o",
        "train.parquet",
        "--dataset",
        "rides-training",
        "-m",
        "October labels",
    ]);
    assert!(text.contains("Recorded rides-training@1"), "{text}");
    assert!(text.contains("300 of 300 rows found a value"), "{text}");
    // The same join from the same rows as a CSV file gives the same training set: its
    // columns typed as the definitions declare them.
    let plain = repo.join("plain");
    std::fs::create_dir_all(plain.join("data")).unwrap();
    let mut csv = String::from("driver_id,event_timestamp,conv_rate,trips,city\n");
    for (driver, day, rate, trips, city) in &data.rows {
        csv.push_str(&format!(
            "{driver},2026-10-0{}T00:00:00Z,{rate},{trips},{city}\n",
            day + 1
        ));
    }
    std::fs::write(plain.join("data/stats.csv"), csv).unwrap();
    std::fs::write(
        plain.join("features.yaml"),
        driver_definitions("driver_stats:conv_rate, driver_stats:trips, driver_stats:city")
            .replace("project: rides", "project: plain")
            .replace("data/stats.parquet", "data/stats.csv"),
    )
    .unwrap();
    let plain_repo = plain.to_str().unwrap();
    must(&["features", "--repo", plain_repo, "apply"]);
    must(&[
        "features",
        "--repo",
        plain_repo,
        "get-historical",
        "--entities",
        "labels.parquet",
        "--service",
        "scoring",
        "-o",
        "plain.parquet",
    ]);
    let read = |p: &str| {
        let file = std::fs::File::open(repo.join(p)).unwrap();
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
            .map(|b| b.unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(read("train.parquet"), read("plain.parquet"));

    // A version that does not exist, or a malformed reference, is refused at apply.
    std::fs::write(
        repo.join("features.yaml"),
        by_dataset.replace("stats@1", "stats@9"),
    )
    .unwrap();
    let (ok, text) = run(&["features", "apply"]);
    assert!(!ok && text.contains("stats@9"), "{text}");
    std::fs::write(
        repo.join("features.yaml"),
        by_dataset.replace("stats@1", "stats"),
    )
    .unwrap();
    let (ok, text) = run(&["features", "apply"]);
    assert!(!ok && text.contains("NAME@VERSION"), "{text}");
    std::fs::write(repo.join("features.yaml"), &by_dataset).unwrap();

    // Trained on the recorded version, the model's lineage reaches the source version.
    must(&[
        "train",
        "--data",
        "rides-training@1",
        "--target",
        "label",
        "--drop",
        "driver_id",
        "--drop",
        "event_timestamp",
        "--model",
        "baseline",
        "--register",
        "rider",
    ]);
    let server = TestServer::start_in(bin(), &home, None, &[]);
    let (status, lineage) = server
        .http()
        .get("/api/2.0/cairn/lineage/dataset?name=rides-training&version=1");
    assert_eq!(status, 200, "{lineage}");
    let sources = lineage["sources"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> = sources
        .iter()
        .map(|s| {
            (
                s["kind"].as_str().unwrap(),
                s["reference"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(kinds.contains(&("features", "rides@1")), "{kinds:?}");
    assert!(kinds.contains(&("dataset", "stats@1")), "{kinds:?}");
    assert!(
        kinds
            .iter()
            .any(|(k, r)| *k == "file" && r.ends_with("labels.parquet")),
        "{kinds:?}"
    );
    let (_, stats) = server
        .http()
        .get("/api/2.0/cairn/datasets/get?name=stats&version=1");
    let stats_digest = &stats["dataset_version"]["digest"];
    assert!(
        sources
            .iter()
            .any(|s| s["reference"] == "stats@1" && &s["digest"] == stats_digest),
        "{lineage}"
    );
    assert_eq!(lineage["model_versions"][0]["name"], "rider", "{lineage}");
    // The dataset page shows what the version was made from, linking the source version.
    let (status, page) = server.http().get_bytes("/datasets/rides-training/1");
    assert_eq!(status, 200);
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains("Made from"), "{page}");
    assert!(page.contains("href=\"/datasets/stats/1\""), "{page}");
}
