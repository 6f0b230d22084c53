//! `cairn quickstart`: the whole life cycle on a real public dataset (the red wine quality data
//! that `linfa-datasets` ships), through a server on the home folder: version the data, validate
//! it, train the baseline, a linear model and boosted trees, register the best, gate it against
//! the baseline, promote it, serve it, send traffic and then drifted traffic, detect the drift.
use crate::client::Client;
use crate::server::{self, ServerArgs};
use anyhow::{bail, Context};
use cairn_train::train::ModelKind;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct QuickstartArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on; if taken, a free one is used instead.
    #[arg(long, default_value_t = 5000)]
    port: u16,
    /// Exit once everything is done instead of serving until Ctrl-C.
    #[arg(long)]
    no_wait: bool,
}

const DATASET_NAME: &str = "wine-quality";
const MODEL_NAME: &str = "quickstart-wine";
const TARGET: &str = "quality";
const EXPERIMENT: &str = "quickstart";

/// The suite the data must meet before a model is trained on it.
const SUITE: &str = "name: wine-quality
expectations:
  - expect_table_row_count_to_be_between: {min_value: 1000}
  - expect_column_values_to_not_be_null: {column: alcohol}
  - expect_column_values_to_not_be_null: {column: quality}
  - expect_column_values_to_be_in_set: {column: quality, value_set: [3, 4, 5, 6, 7, 8]}
  - expect_column_values_to_be_between: {column: alcohol, min_value: 8, max_value: 15}
  - expect_column_values_to_be_between: {column: pH, min_value: 2.5, max_value: 4.5}
  - expect_column_mean_to_be_between: {column: quality, min_value: 5, max_value: 6.5}
";

/// What the best model must show before it serves: clearly better than the baseline, fast and
/// small enough.
const GATE: &str = "compare_to: baseline
metrics:
  test_accuracy: {min_absolute_change: 0.1, greater_is_better: true}
latency: {batch_size: 1, calls: 300, p99_ms: 10}
max_model_size_mb: 10
";

/// Features moved for the drifted traffic, by about one and a half standard deviations.
const SHIFTED: [(&str, f64); 6] = [
    ("fixed acidity", 2.6),
    ("volatile acidity", 0.27),
    ("citric acid", 0.3),
    ("sulphates", 0.25),
    ("alcohol", 1.6),
    ("pH", 0.23),
];

/// The wine data as CSV: eleven measurements and the quality grade (3 to 8).
fn wine_csv() -> (Vec<String>, Vec<Vec<f64>>, Vec<usize>, String) {
    let data = linfa_datasets::winequality();
    let names: Vec<String> = data.feature_names().iter().map(|n| n.to_string()).collect();
    let rows: Vec<Vec<f64>> = data
        .records()
        .rows()
        .into_iter()
        .map(|r| r.to_vec())
        .collect();
    let quality: Vec<usize> = data.targets().iter().copied().collect();
    let mut csv = names.join(",");
    csv.push_str(&format!(",{TARGET}\n"));
    for (row, q) in rows.iter().zip(&quality) {
        let cells: Vec<String> = row.iter().map(|v| v.to_string()).collect();
        csv.push_str(&cells.join(","));
        csv.push_str(&format!(",{q}\n"));
    }
    (names, rows, quality, csv)
}

struct Versioned {
    added: cairn_data::repo::AddOutcome,
    csv: PathBuf,
    met: usize,
    evaluated: usize,
}

/// Writes the data under `<home>/quickstart/data`, versions it, and validates it against
/// [`SUITE`], recording the result on the version.
fn version_data(home: &Path, csv: &str) -> anyhow::Result<Versioned> {
    let project = home.join("quickstart");
    let data = project.join("data");
    std::fs::create_dir_all(project.join(".cairn"))?;
    std::fs::create_dir_all(&data)?;
    let csv_path = data.join("wine.csv");
    std::fs::write(&csv_path, csv)?;
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
        "red wine quality (Cortez et al. 2009), as linfa-datasets ships it",
        &cairn_data::progress::NoProgress,
    )?;
    let suite_path = project.join("suite.yaml");
    std::fs::write(&suite_path, SUITE)?;
    let suite = cairn_quality::suite::Suite::parse(SUITE, "quickstart suite")?;
    let result = cairn_quality::validate::validate(&csv_path, &suite)?;
    state
        .lineage
        .datasets()
        .record_dataset_validation(&crate::quality::validation_record(
            &added.version.name,
            added.version.version,
            "wine.csv",
            &result,
        ))?;
    if !result.success {
        bail!(
            "{} fails its expectations; run `cairn validate --suite {} {}`",
            csv_path.display(),
            suite_path.display(),
            csv_path.display()
        );
    }
    Ok(Versioned {
        added,
        csv: csv_path,
        met: result.results.iter().filter(|r| r.success).count(),
        evaluated: result.results.len(),
    })
}

/// Trains the three models on the dataset version (one run each) and registers the best.
fn train(
    base: &str,
    data: &str,
) -> anyhow::Result<(crate::train::Logged, cairn_train::split::Split)> {
    let args = crate::train::args_from(&[
        "--data",
        data,
        "--target",
        TARGET,
        "-e",
        EXPERIMENT,
        "--register",
        MODEL_NAME,
    ])?;
    let source = crate::train::resolve(data)?;
    let frame = cairn_train::frame::load(&source.path, TARGET, None, &[])?;
    let split = crate::train::split_of(&args, frame.rows);
    println!(
        "Training on {data}: {} rows ({} train, {} validation, {} test), {} features, {} quality grades:",
        frame.rows,
        split.train.len(),
        split.validation.len(),
        split.test.len(),
        frame.features.len(),
        match &frame.target {
            cairn_train::frame::Target::Classes { classes, .. } => classes.len(),
            cairn_train::frame::Target::Values(_) => 0,
        }
    );
    let client = Client::new(base);
    let logged = crate::train::fit_and_log(
        &client,
        &args,
        &source,
        &frame,
        &split,
        &ModelKind::ALL,
        &crate::train::settings_of(&args),
    )?;
    Ok((logged, split))
}

/// Rows of the test split sent to the served model: (features, true grade).
type ServedRow = (Vec<f64>, usize);

/// Asks the champion for a few test rows' grades.
fn serve_some(base: &str, rows: &[ServedRow]) -> anyhow::Result<Vec<i64>> {
    let client = Client::new(base);
    let width = rows.first().map_or(0, |r| r.0.len());
    let flat: Vec<f64> = rows.iter().flat_map(|r| r.0.iter().copied()).collect();
    let answer = client.post_path(
        &format!("/v2/models/{MODEL_NAME}/versions/champion/infer"),
        &json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [rows.len(), width], "data": flat}]}),
    )?;
    let label = answer["outputs"]
        .as_array()
        .and_then(|o| o.iter().find(|t| t["name"] == "label"))
        .context("no label in the answer")?;
    Ok(label["data"]
        .as_array()
        .context("no labels")?
        .iter()
        .filter_map(Value::as_i64)
        .collect())
}

/// What the monitoring part of the quickstart saw.
struct Watched {
    /// Per phase (training-like, then shifted): the drift report and the labels' accuracy.
    phases: Vec<(Value, Option<f64>)>,
    alert: Option<cairn_monitor::AlertEvent>,
    gauge: String,
}

/// Stores the training data as the served version's drift reference, adds a drift alert rule,
/// sends the test rows as traffic and then the same rows with six measurements shifted (with
/// labels by request id), and asks the server what it saw after each.
fn watch(
    base: &str,
    csv: &Path,
    version: &str,
    traffic: &[ServedRow],
    names: &[String],
    monitoring: &cairn_api::monitoring::Monitoring,
) -> anyhow::Result<Watched> {
    use cairn_monitor::AlertRule;
    let monitor = monitoring.live().monitor();
    monitor.set_reference(MODEL_NAME, version, csv, Some(TARGET), None)?;
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
    let shift: Vec<f64> = names
        .iter()
        .map(|n| {
            SHIFTED
                .iter()
                .find(|(s, _)| s == n)
                .map_or(0.0, |(_, by)| *by)
        })
        .collect();
    let mut phases = Vec::new();
    for shifted in [false, true] {
        let mut truth = Vec::new();
        for chunk in traffic.chunks(20) {
            let flat: Vec<f64> = chunk
                .iter()
                .flat_map(|(row, _)| {
                    row.iter()
                        .zip(&shift)
                        .map(move |(v, s)| if shifted { v + s } else { *v })
                })
                .collect();
            let answer = client.post_path(
                &format!("/v2/models/{MODEL_NAME}/versions/{version}/infer"),
                &json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [chunk.len(), names.len()], "data": flat}]}),
            )?;
            let id = answer["id"].as_str().context("no request id")?;
            for (row, (_, grade)) in chunk.iter().enumerate() {
                truth.push(json!({"request_id": id, "row": row, "label": grade}));
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
    println!("Monitoring (`cairn monitor drift models:/{MODEL_NAME}/{version}`): wine.csv is the version's drift reference;");
    let phases = [
        "the test rows as traffic".to_string(),
        format!(
            "plus the same rows with {} shifted",
            SHIFTED.map(|(n, _)| n).join(", ")
        ),
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
    let started = Instant::now();
    let home: PathBuf = crate::home_dir();
    let server_args = ServerArgs {
        host: args.host.clone(),
        port: args.port,
        backend_store_uri: None,
        artifacts_destination: None,
        auth: false,
        no_auth: false,
        default_permission: "READ".into(),
        features_project: None,
        features_online_store: None,
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
    let (names, rows, quality, csv) = wine_csv();
    let data_home = home.clone();
    let versioned = tokio::task::spawn_blocking(move || version_data(&data_home, &csv)).await??;
    let (name, number) = (
        versioned.added.version.name.clone(),
        versioned.added.version.version,
    );
    println!(
        "1. Versioned the red wine quality data ({} rows, from linfa-datasets) as {name}@{number} (blake3 {}, {}) at {}",
        rows.len(),
        versioned.added.snapshot.digest,
        crate::data::human(versioned.added.snapshot.size),
        versioned.added.pointer_file.display()
    );
    println!(
        "2. Validated it: {} of {} expectations met (suite {}; recorded with {name}@{number})",
        versioned.met,
        versioned.evaluated,
        home.join("quickstart").join("suite.yaml").display(),
    );
    println!("3. Trained the baseline, a logistic regression and boosted trees, one run each:");
    let (url, data_ref) = (base.clone(), format!("{name}@{number}:wine.csv"));
    let (logged, split) = tokio::task::spawn_blocking(move || train(&url, &data_ref)).await??;
    let version = logged
        .registered
        .clone()
        .context("no model was registered")?;
    let best = logged
        .best
        .as_ref()
        .map(|(k, _)| k.as_str())
        .unwrap_or_default();
    let model_uri = format!("models:/{MODEL_NAME}/{version}");
    println!("4. Gated {model_uri} ({best}) against the baseline on accuracy, latency and size:");
    let (url, uri) = (base.clone(), model_uri.clone());
    let passed = tokio::task::spawn_blocking(move || {
        let policy = cairn_train::gate::Policy::parse(GATE, "quickstart gate")?;
        crate::gate::run_gate(&Client::new(&url), &uri, &policy, &Default::default())
    })
    .await??;
    if !passed {
        bail!("{model_uri} did not pass the quickstart's gate");
    }
    let (url, uri) = (base.clone(), model_uri.clone());
    print!("5. Promoted it: ");
    tokio::task::spawn_blocking(move || {
        crate::gate::promote_version(&Client::new(&url), &uri, "champion", false, None)
    })
    .await??;
    let served_rows: Vec<ServedRow> = split
        .test
        .iter()
        .map(|&r| (rows[r].clone(), quality[r]))
        .collect();
    let (url, some) = (base.clone(), served_rows[..5].to_vec());
    let labels = tokio::task::spawn_blocking(move || serve_some(&url, &some)).await??;
    println!("6. Served it over the Open Inference Protocol (models:/{MODEL_NAME}@champion):");
    for ((row, grade), label) in served_rows.iter().zip(&labels) {
        println!(
            "  alcohol {:>4}, volatile acidity {:.2}: predicted grade {label}, true grade {grade}",
            row[10], row[1]
        );
    }
    let (url, v) = (base.clone(), version.clone());
    let lineage = tokio::task::spawn_blocking(move || {
        Client::new(&url).get(&format!(
            "/api/2.0/cairn/lineage/model-version?name={MODEL_NAME}&version={v}"
        ))
    })
    .await??;
    println!("7. Its lineage (`cairn lineage {model_uri}`):");
    crate::data::print_lineage(&lineage);
    let (url, v, csv, m, names_c) = (
        base.clone(),
        version.clone(),
        versioned.csv.clone(),
        monitoring.clone(),
        names.clone(),
    );
    let watched =
        tokio::task::spawn_blocking(move || watch(&url, &csv, &v, &served_rows, &names_c, &m))
            .await??;
    print!("8. ");
    print_watched(&watched, &version);
    println!(
        "Done in {:.1} s. Web UI: {base}/experiments/{} (the three runs side by side), {base}/models/{MODEL_NAME}/versions/{version} (lineage, gate), {base}/monitoring/{MODEL_NAME}/{version}",
        started.elapsed().as_secs_f64(),
        logged.experiment_id
    );
    println!(
        "  curl -s {base}/v2/models/{MODEL_NAME}/versions/champion/infer -d '{{\"inputs\": [{{\"name\": \"x\", \"datatype\": \"FP32\", \"shape\": [1, 11], \"data\": {:?}}}]}}'",
        rows[0]
    );
    println!("MLflow clients: export MLFLOW_TRACKING_URI={base}");
    if args.no_wait {
        let _ = stop_tx.send(());
    } else {
        println!("Serving on {base} until Ctrl-C.");
    }
    serving.await?.context("server failed")?;
    Ok(())
}
