//! Crash safety: under sustained log-batch traffic the server is killed with SIGKILL and
//! restarted on the same home; every batch that was acknowledged with 200 is there.
#![allow(clippy::unwrap_used)]

use cairn_test::TestServer;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WRITERS: usize = 4;
const PER_BATCH: i64 = 100;

#[test]
fn acknowledged_batches_survive_sigkill() {
    let bin = Path::new(env!("CARGO_BIN_EXE_cairn"));
    let home = tempfile::tempdir().unwrap();
    let mut server = TestServer::start_in(bin, home.path(), None, &[]);
    let http = server.http();
    let runs: Vec<String> = (0..WRITERS)
        .map(|_| {
            let (status, body) = http.post("runs/create", &json!({"experiment_id": "0"}));
            assert_eq!(status, 200);
            body["run"]["info"]["run_id"].as_str().unwrap().to_string()
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<(usize, i64)>>> = Arc::default();
    let writers: Vec<_> = runs
        .iter()
        .enumerate()
        .map(|(w, run_id)| {
            let (http, run_id, stop, acked) = (http.clone(), run_id.clone(), stop.clone(), acked.clone());
            std::thread::spawn(move || {
                let mut batch = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    let metrics: Vec<Value> = (0..PER_BATCH)
                        .map(|i| json!({"key": "k", "value": batch, "timestamp": batch, "step": batch * PER_BATCH + i}))
                        .collect();
                    match http.try_post("runs/log-batch", &json!({"run_id": run_id, "metrics": metrics})) {
                        Some((200, _)) => acked.lock().unwrap().push((w, batch)),
                        Some((status, body)) => panic!("unexpected {status}: {body}"),
                        None => break, // the server is gone
                    }
                    batch += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 10,
        "too little traffic before the kill: {}",
        acked.len()
    );

    let server = TestServer::start_in(bin, home.path(), None, &[]);
    let http = server.http();
    for (w, run_id) in runs.iter().enumerate() {
        let (status, body) = http.get(&format!(
            "/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key=k"
        ));
        assert_eq!(status, 200, "{body}");
        let steps: std::collections::HashSet<i64> = body["metrics"]
            .as_array()
            .map(|ms| ms.iter().map(|m| m["step"].as_i64().unwrap()).collect())
            .unwrap_or_default();
        for &(_, batch) in acked.iter().filter(|(aw, _)| *aw == w) {
            for i in 0..PER_BATCH {
                assert!(
                    steps.contains(&(batch * PER_BATCH + i)),
                    "run {w}: batch {batch} was acknowledged but is missing"
                );
            }
        }
        // Batches are atomic: what is there is whole batches.
        assert_eq!(
            steps.len() as i64 % PER_BATCH,
            0,
            "a partial batch is visible"
        );
    }
    // The store still takes writes.
    assert_eq!(
        http.post("runs/create", &json!({"experiment_id": "0"})).0,
        200
    );
}
