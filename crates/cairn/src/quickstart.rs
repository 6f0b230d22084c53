//! `cairn quickstart`: a server on the home folder and a small real experiment logged through
//! its REST API: logistic regression trained by gradient descent on synthetic data, one run per
//! learning rate, with loss and accuracy curves, params, tags and a JSON artifact.
use crate::client::Client;
use crate::server::{self, ServerArgs};
use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct QuickstartArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on; if taken, a free one is used instead.
    #[arg(long, default_value_t = 5000)]
    port: u16,
    /// Exit once the experiment is logged instead of serving until Ctrl-C.
    #[arg(long)]
    no_wait: bool,
}

/// Deterministic pseudo-random numbers (xorshift), so every quickstart sees the same data.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.next_f64().max(1e-12), self.next_f64());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// Two Gaussian blobs in 4 dimensions: rows and 0/1 labels.
fn make_data(n: usize, seed: u64) -> (Vec<[f64; 4]>, Vec<f64>) {
    let mut rng = Rng(seed);
    let mut xs = Vec::with_capacity(n);
    let mut ys = Vec::with_capacity(n);
    for i in 0..n {
        let label = (i % 2) as f64;
        let shift = if label > 0.5 { 0.8 } else { -0.8 };
        xs.push([
            rng.normal() + shift,
            rng.normal() + shift * 0.5,
            rng.normal(),
            rng.normal() - shift * 0.3,
        ]);
        ys.push(label);
    }
    (xs, ys)
}

fn write_csv(path: &Path, xs: &[[f64; 4]], ys: &[f64]) -> anyhow::Result<()> {
    let mut text = String::from("x0,x1,x2,x3,y\n");
    for (x, y) in xs.iter().zip(ys) {
        text.push_str(&format!("{},{},{},{},{}\n", x[0], x[1], x[2], x[3], y));
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

fn read_csv(path: &Path) -> anyhow::Result<(Vec<[f64; 4]>, Vec<f64>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let v: Vec<f64> = line
            .split(',')
            .map(|f| f.parse::<f64>())
            .collect::<Result<_, _>>()
            .with_context(|| format!("{}:{}: not a number", path.display(), i + 1))?;
        if v.len() != 5 {
            bail!("{}:{}: expected 5 columns", path.display(), i + 1);
        }
        xs.push([v[0], v[1], v[2], v[3]]);
        ys.push(v[4]);
    }
    Ok((xs, ys))
}

/// Writes the data as CSV under `<home>/quickstart/data`, versions the folder with Cairn as
/// `quickstart-data`, and reads the rows back from the versioned files.
#[allow(clippy::type_complexity)]
fn version_data(
    home: &Path,
) -> anyhow::Result<(
    Split,
    DataInput,
    cairn_data::repo::AddOutcome,
    (usize, usize),
)> {
    let project = home.join("quickstart");
    let data = project.join("data");
    std::fs::create_dir_all(project.join(".cairn"))?;
    std::fs::create_dir_all(&data)?;
    let (train_x, train_y) = make_data(800, 42);
    let (val_x, val_y) = make_data(200, 7);
    write_csv(&data.join("train.csv"), &train_x, &train_y)?;
    write_csv(&data.join("val.csv"), &val_x, &val_y)?;
    let (state, _) = server::open_state(&ServerArgs::local(), home)?;
    let repo = cairn_data::repo::DataRepo::open(
        &project,
        &std::fs::canonicalize(home)?.join("data"),
        state.lineage.datasets().clone(),
    )?;
    let added = repo.add(
        &project,
        Path::new("data"),
        Some(DATASET_NAME),
        "synthetic two-blob data, train and validation",
        &cairn_data::progress::NoProgress,
    )?;
    let datasets = state.lineage.datasets().clone();
    let (name, number) = (added.version.name.clone(), added.version.version);
    let checked = validate_data(&project, |file, result| {
        datasets.record_dataset_validation(&crate::quality::validation_record(
            &name, number, file, result,
        ))?;
        Ok(())
    })?;
    let (train_x, train_y) = read_csv(&data.join("train.csv"))?;
    let (val_x, val_y) = read_csv(&data.join("val.csv"))?;
    let digest = added.snapshot.digest.to_hex();
    let input = DataInput {
        name: DATASET_NAME.into(),
        digest: cairn_core::lineage::run_input_digest(&digest).to_string(),
        source: json!({"uri": format!("cairn://{DATASET_NAME}@{}", added.version.version),
                       "path": data.display().to_string()})
        .to_string(),
    };
    Ok((
        Split {
            train_x,
            train_y,
            val_x,
            val_y,
        },
        input,
        added,
        checked,
    ))
}

/// The suite the quickstart's data must meet before a model is trained on it.
const SUITE: &str = "name: quickstart-data
expectations:
  - expect_table_columns_to_match_set: {column_set: [x0, x1, x2, x3, y]}
  - expect_table_row_count_to_be_between: {min_value: 100}
  - expect_column_values_to_not_be_null: {column: x0}
  - expect_column_values_to_not_be_null: {column: y}
  - expect_column_values_to_be_in_set: {column: y, value_set: [0, 1]}
  - expect_column_values_to_be_between: {column: x0, min_value: -10, max_value: 10}
  - expect_column_values_to_be_between: {column: x1, min_value: -10, max_value: 10}
  - expect_column_mean_to_be_between: {column: y, min_value: 0.3, max_value: 0.7}
";

/// Validates both CSV files against [`SUITE`] (written beside them as `suite.yaml`); refuses
/// to go on when an expectation fails. Returns (expectations met, evaluated) over both files.
/// Each result is recorded against the dataset version by `record` (file name, result).
fn validate_data(
    project: &Path,
    record: impl Fn(&str, &cairn_quality::validate::ValidationResult) -> anyhow::Result<()>,
) -> anyhow::Result<(usize, usize)> {
    let suite_path = project.join("suite.yaml");
    std::fs::write(&suite_path, SUITE)?;
    let suite = cairn_quality::suite::Suite::parse(SUITE, "quickstart suite")?;
    let (mut met, mut evaluated) = (0, 0);
    for file in ["train.csv", "val.csv"] {
        let path = project.join("data").join(file);
        let result = cairn_quality::validate::validate(&path, &suite)?;
        record(file, &result)?;
        evaluated += result.results.len();
        met += result.results.iter().filter(|r| r.success).count();
        if !result.success {
            bail!(
                "{} fails its expectations ({}); run `cairn validate --suite {} {}`",
                path.display(),
                result
                    .results
                    .iter()
                    .filter(|r| !r.success)
                    .map(|r| r.type_name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                suite_path.display(),
                path.display()
            );
        }
    }
    Ok((met, evaluated))
}

const DATASET_NAME: &str = "quickstart-data";

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn evaluate(w: &[f64; 5], xs: &[[f64; 4]], ys: &[f64]) -> (f64, f64) {
    let mut loss = 0.0;
    let mut correct = 0usize;
    for (x, &y) in xs.iter().zip(ys) {
        let p = sigmoid(w[4] + (0..4).map(|j| w[j] * x[j]).sum::<f64>()).clamp(1e-9, 1.0 - 1e-9);
        loss -= y * p.ln() + (1.0 - y) * (1.0 - p).ln();
        correct += usize::from((p > 0.5) == (y > 0.5));
    }
    (loss / xs.len() as f64, correct as f64 / xs.len() as f64)
}

struct Trained {
    run_id: String,
    lr: f64,
    val_loss: f64,
    val_accuracy: f64,
}

/// Rows and labels read back from the versioned CSV files.
struct Split {
    train_x: Vec<[f64; 4]>,
    train_y: Vec<f64>,
    val_x: Vec<[f64; 4]>,
    val_y: Vec<f64>,
}

/// The data as MLflow dataset input: the Cairn dataset version's name and digest prefix.
struct DataInput {
    name: String,
    digest: String,
    source: String,
}

fn train_and_log(
    client: &Client,
    experiment_id: &str,
    lr: f64,
    epochs: i64,
    data: &Split,
    input: &DataInput,
) -> anyhow::Result<Trained> {
    let Split {
        train_x,
        train_y,
        val_x,
        val_y,
    } = data;
    let run = client.post(
        "runs/create",
        &json!({"experiment_id": experiment_id, "run_name": format!("logreg-lr-{lr}"),
                "start_time": cairn_core::now_millis(),
                "tags": [{"key": "model", "value": "logistic-regression"}, {"key": "mlflow.source.name", "value": "cairn quickstart"}]}),
    )?;
    let run_id = run["run"]["info"]["run_id"]
        .as_str()
        .context("run id missing")?
        .to_string();
    client.post(
        "runs/log-inputs",
        &json!({"run_id": run_id, "datasets": [{
            "tags": [{"key": "mlflow.data.context", "value": "training"}],
            "dataset": {"name": input.name, "digest": input.digest, "source_type": "cairn",
                        "source": input.source}}]}),
    )?;
    client.post(
        "runs/log-batch",
        &json!({"run_id": run_id, "params": [
            {"key": "learning_rate", "value": lr.to_string()},
            {"key": "epochs", "value": epochs.to_string()},
            {"key": "train_rows", "value": train_x.len().to_string()}]}),
    )?;
    let mut w = [0.0f64; 5];
    let mut metrics = Vec::new();
    for epoch in 0..epochs {
        let mut grad = [0.0f64; 5];
        for (x, &y) in train_x.iter().zip(train_y) {
            let err = sigmoid(w[4] + (0..4).map(|j| w[j] * x[j]).sum::<f64>()) - y;
            for j in 0..4 {
                grad[j] += err * x[j];
            }
            grad[4] += err;
        }
        for j in 0..5 {
            w[j] -= lr * grad[j] / train_x.len() as f64;
        }
        let (train_loss, _) = evaluate(&w, train_x, train_y);
        let (val_loss, val_acc) = evaluate(&w, val_x, val_y);
        let ts = cairn_core::now_millis();
        for (key, value) in [
            ("train_loss", train_loss),
            ("val_loss", val_loss),
            ("val_accuracy", val_acc),
        ] {
            metrics.push(json!({"key": key, "value": value, "timestamp": ts, "step": epoch}));
        }
    }
    for chunk in metrics.chunks(900) {
        client.post(
            "runs/log-batch",
            &json!({"run_id": run_id, "metrics": chunk}),
        )?;
    }
    let (val_loss, val_accuracy) = evaluate(&w, val_x, val_y);
    let model = json!({"kind": "logistic-regression", "weights": &w[..4], "bias": w[4], "learning_rate": lr});
    let artifact_uri = run["run"]["info"]["artifact_uri"]
        .as_str()
        .unwrap_or_default();
    let root = crate::client::proxied_root(artifact_uri);
    client.put_artifact(
        &format!("{root}/model/weights.json"),
        serde_json::to_string_pretty(&model)?.as_bytes(),
    )?;
    let weights: Vec<f32> = w[..4].iter().map(|v| *v as f32).collect();
    client.put_artifact(
        &format!("{root}/model/model.onnx"),
        &cairn_serving::build::logistic_regression_onnx(&weights, w[4] as f32),
    )?;
    client.post(
        "runs/update",
        &json!({"run_id": run_id, "status": "FINISHED", "end_time": cairn_core::now_millis()}),
    )?;
    Ok(Trained {
        run_id,
        lr,
        val_loss,
        val_accuracy,
    })
}

fn log_experiment(
    base: &str,
    data: &Split,
    input: &DataInput,
) -> anyhow::Result<(String, Vec<Trained>, Value)> {
    let client = Client::new(base);
    let name = format!("quickstart-{}", cairn_core::now_millis());
    let created = client.post("experiments/create", &json!({"name": name}))?;
    let experiment_id = created["experiment_id"]
        .as_str()
        .context("experiment id missing")?
        .to_string();
    let mut runs = Vec::new();
    for lr in [0.01, 0.1, 1.0] {
        runs.push(train_and_log(&client, &experiment_id, lr, 30, data, input)?);
    }
    let best = client.post(
        "runs/search",
        &json!({"experiment_ids": [experiment_id], "filter": "metrics.val_accuracy > 0.5 and params.epochs = '30'",
                "order_by": ["metrics.val_loss ASC"], "max_results": 1}),
    )?;
    Ok((experiment_id, runs, best))
}

const MODEL_NAME: &str = "quickstart-logreg";

/// A validation row, the served probability of class 1, and the true label.
type ServedRow = ([f64; 4], f64, f64);

/// Registers the best run's model, points the `champion` alias at it and asks the server's
/// Open Inference Protocol endpoint for predictions on a few validation rows.
/// Returns the version and (row, probability, label) triples.
fn register_and_serve(base: &str, run_id: &str) -> anyhow::Result<(String, Vec<ServedRow>)> {
    let client = Client::new(base);
    let version = crate::client::register_run_model(&client, MODEL_NAME, run_id)?;
    client.post(
        "registered-models/alias",
        &json!({"name": MODEL_NAME, "alias": "champion", "version": version}),
    )?;
    let (rows, labels) = make_data(4, 7);
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    let answer = client.post_path(
        &format!("/v2/models/{MODEL_NAME}/versions/champion/infer"),
        &json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [rows.len(), 4], "data": flat}]}),
    )?;
    let probabilities = answer["outputs"][0]["data"]
        .as_array()
        .context("no predictions")?;
    let served = rows
        .iter()
        .zip(probabilities)
        .zip(labels)
        .map(|((row, p), label)| (*row, p.as_f64().unwrap_or(f64::NAN), label))
        .collect();
    Ok((version, served))
}

/// Rows like the training data, then rows whose first three features moved by two standard
/// deviations, with the labels the data was generated with.
fn traffic(shifted: bool) -> (Vec<[f64; 4]>, Vec<f64>) {
    let (mut rows, labels) = make_data(200, if shifted { 23 } else { 11 });
    if shifted {
        for r in &mut rows {
            for v in &mut r[..3] {
                *v += 2.0;
            }
        }
    }
    (rows, labels)
}

/// What the monitoring part of the quickstart saw.
struct Watched {
    /// Per phase (training-like, then shifted): the drift report and the labels' accuracy.
    phases: Vec<(Value, Option<f64>)>,
    alert: Option<cairn_monitor::AlertEvent>,
    gauge: String,
}

/// Stores `train.csv` as the served version's training reference, adds a drift alert rule,
/// sends traffic like the training data and then drifted traffic (with labels by request id),
/// and asks the server what it saw after each.
fn watch(
    base: &str,
    home: &Path,
    version: &str,
    monitoring: &cairn_api::monitoring::Monitoring,
) -> anyhow::Result<Watched> {
    use cairn_monitor::AlertRule;
    let monitor = monitoring.live().monitor();
    monitor.set_reference(
        MODEL_NAME,
        version,
        &home.join("quickstart/data/train.csv"),
        Some("y"),
        None,
    )?;
    monitor.add_alert_rule(AlertRule::new(
        "quickstart-drift",
        MODEL_NAME,
        Some(version),
        "drift_share",
        Some(0.5),
        None,
        Some("1h"),
        None,
    )?)?;
    let client = Client::new(base);
    let drift_path =
        format!("/api/2.0/cairn/monitoring/drift?name={MODEL_NAME}&version={version}&window=10m");
    let mut phases = Vec::new();
    for shifted in [false, true] {
        let (rows, labels) = traffic(shifted);
        let mut truth = Vec::new();
        for (chunk, chunk_labels) in rows.chunks(20).zip(labels.chunks(20)) {
            let flat: Vec<f64> = chunk.iter().flatten().copied().collect();
            let answer = client.post_path(
                &format!("/v2/models/{MODEL_NAME}/versions/{version}/infer"),
                &json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [chunk.len(), 4], "data": flat}]}),
            )?;
            let id = answer["id"].as_str().context("no request id")?;
            for (row, label) in chunk_labels.iter().enumerate() {
                truth.push(json!({"request_id": id, "row": row, "label": *label as i64}));
            }
        }
        client.post_path(
            "/api/2.0/cairn/monitoring/labels",
            &json!({"labels": truth}),
        )?;
        let drift = client.get(&drift_path)?;
        let metrics = client.get(&format!(
            "/api/2.0/cairn/monitoring/metrics?name={MODEL_NAME}&version={version}&window=10m&bucket=10m"
        ))?;
        phases.push((drift, metrics["buckets"][0]["accuracy"].as_f64()));
    }
    monitoring.evaluate();
    let alert = monitor
        .alert_events(None)?
        .into_iter()
        .rev()
        .find(|e| e.alert == "quickstart-drift" && e.version == version);
    let text = ureq::get(&format!("{base}/metrics"))
        .call()?
        .body_mut()
        .read_to_string()?;
    let gauge = text
        .lines()
        .find(|l| {
            l.starts_with("cairn_drift_share{")
                && l.contains(&format!("model=\"{MODEL_NAME}\",version=\"{version}\""))
        })
        .unwrap_or_default()
        .to_owned();
    Ok(Watched {
        phases,
        alert,
        gauge,
    })
}

fn drifted_columns(report: &Value) -> String {
    let names: Vec<&str> = report["columns"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter(|c| c["drifted"] == true)
                .filter_map(|c| c["column"].as_str())
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn print_watched(w: &Watched, version: &str) {
    println!("Monitoring (`cairn monitor drift models:/{MODEL_NAME}/{version}`): train.csv is the version's drift reference;");
    let phases = [
        "traffic like the training data",
        "plus traffic with x0, x1, x2 shifted",
    ];
    for (what, (report, accuracy)) in phases.iter().zip(&w.phases) {
        println!(
            "  {what}: {} predictions, drifted features: {}; dataset drift: {}; accuracy from labels: {}",
            report["current_rows"],
            drifted_columns(report),
            if report["dataset_drift"] == true { "YES" } else { "no" },
            accuracy.map_or("-".to_owned(), |a| format!("{a:.3}"))
        );
    }
    if let Some(a) = &w.alert {
        println!(
            "  alert {} {}: drift_share={:.2} above {} (recorded; `cairn monitor alerts`)",
            a.alert,
            a.state.to_uppercase(),
            a.value,
            a.threshold
        );
    }
    if !w.gauge.is_empty() {
        println!("  Prometheus (/metrics): {}", w.gauge);
    }
}

pub async fn run(args: QuickstartArgs) -> anyhow::Result<()> {
    let home: PathBuf = crate::home_dir();
    let server_args = ServerArgs {
        host: args.host.clone(),
        port: args.port,
        backend_store_uri: None,
        artifacts_destination: None,
        auth: false,
        no_auth: false,
        default_permission: "READ".into(),
        http: server::HttpArgs::default(),
        runner: server::RunnerArgs::default(),
        monitoring: server::MonitoringArgs::default(),
    };
    let built = server::build_blocking(server_args, home.clone()).await?;
    let monitoring = built.monitoring.clone();
    monitoring.clone().spawn_evaluator();
    let listener = match server::bind(&args.host, args.port).await {
        Ok(l) => l,
        Err(_) => {
            eprintln!("port {} is taken; using a free port instead", args.port);
            server::bind(&args.host, 0).await?
        }
    };
    let base = format!("http://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let host = args.host.clone();
    let serving = tokio::spawn(async move {
        server::serve_until(
            listener,
            built.router,
            &server::HttpArgs::default(),
            &host,
            async {
                let _ = stop_rx.await;
            },
        )
        .await
    });
    println!(
        "Cairn quickstart: home {}, store {}",
        home.display(),
        built.backend_description
    );
    let data_home = home.clone();
    let (split, input, added, (met, evaluated)) =
        tokio::task::spawn_blocking(move || version_data(&data_home)).await??;
    println!(
        "Versioned the data with Cairn: {}@{} (blake3 {}, {} files, {}) at {}",
        added.version.name,
        added.version.version,
        added.snapshot.digest,
        added.snapshot.files,
        crate::data::human(added.snapshot.size),
        added.pointer_file.display()
    );
    println!(
        "Validated it before training: {met} of {evaluated} expectations met on train.csv and val.csv (suite {}; recorded with {}@{})",
        home.join("quickstart").join("suite.yaml").display(),
        added.version.name,
        added.version.version
    );
    let url = base.clone();
    let (experiment_id, runs, best) =
        tokio::task::spawn_blocking(move || log_experiment(&url, &split, &input)).await??;
    println!(
        "Logged experiment {experiment_id} with {} runs (logistic regression, 30 epochs each):",
        runs.len()
    );
    for r in &runs {
        println!(
            "  run {}  learning_rate={:<5} val_loss={:.4} val_accuracy={:.3}",
            r.run_id, r.lr, r.val_loss, r.val_accuracy
        );
    }
    if let Some(top) = best["runs"].get(0) {
        let loss = top["data"]["metrics"]
            .as_array()
            .and_then(|ms| ms.iter().find(|m| m["key"] == "val_loss"))
            .and_then(|m| m["value"].as_f64())
            .unwrap_or_default();
        println!(
            "Best run by search (metrics.val_loss ASC): {} ({}) val_loss={loss:.4}",
            top["info"]["run_name"].as_str().unwrap_or_default(),
            top["info"]["run_id"].as_str().unwrap_or_default()
        );
    }
    println!("Each run has params, train/val loss and accuracy curves, and model/weights.json and model/model.onnx as artifacts.");
    println!("Web UI: {base}/experiments/{experiment_id} (runs, charts, comparison)");
    if let Some(run_id) = best["runs"][0]["info"]["run_id"].as_str() {
        let (url, run_id) = (base.clone(), run_id.to_string());
        let (version, served) =
            tokio::task::spawn_blocking(move || register_and_serve(&url, &run_id)).await??;
        println!(
            "Registered '{MODEL_NAME}' version {version} (alias 'champion') and served it over the Open Inference Protocol:"
        );
        for (row, probability, label) in &served {
            println!(
                "  x={:?}  P(y=1)={probability:.3}  true label={label}",
                row.map(|v| (v * 100.0).round() / 100.0)
            );
        }
        let (url, v) = (base.clone(), version.clone());
        let lineage = tokio::task::spawn_blocking(move || {
            Client::new(&url).get(&format!(
                "/api/2.0/cairn/lineage/model-version?name={MODEL_NAME}&version={v}"
            ))
        })
        .await??;
        println!("Its lineage (`cairn lineage models:/{MODEL_NAME}/{version}`):");
        crate::data::print_lineage(&lineage);
        let (url, v, h, m) = (
            base.clone(),
            version.clone(),
            home.clone(),
            monitoring.clone(),
        );
        let watched = tokio::task::spawn_blocking(move || watch(&url, &h, &v, &m)).await??;
        print_watched(&watched, &version);
        println!("  In the web UI: {base}/models/{MODEL_NAME}/versions/{version} (lineage), .../playground, and {base}/monitoring/{MODEL_NAME}/{version}");
        println!(
            "  curl -s {base}/v2/models/{MODEL_NAME}/versions/champion/infer -d '{{\"inputs\": [{{\"name\": \"x\", \"datatype\": \"FP32\", \"shape\": [1, 4], \"data\": [0.5, -1, 2, 0]}}]}}'"
        );
    }
    println!("MLflow clients: export MLFLOW_TRACKING_URI={base}");
    if args.no_wait {
        let _ = stop_tx.send(());
    } else {
        println!("Serving on {base} until Ctrl-C.");
    }
    serving.await?.context("server failed")?;
    Ok(())
}
