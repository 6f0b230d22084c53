//! `cairn train`: the baseline, a linear model and boosted trees on a table, each logged as a run
//! with its data, parameters, metrics, plots and ONNX model; the best can be registered.
use crate::client::Client;
use crate::run::{experiment_id, Tracking, TrackingArgs};
use anyhow::{anyhow, bail, Context};
use cairn_train::frame::{self, Frame, Target, Task};
use cairn_train::gbdt::GbdtParams;
use cairn_train::train::{self as fitting, ModelKind, Settings, Trained};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// The table: a CSV/TSV/Parquet file, or a Cairn dataset version NAME@N (NAME@N:PATH for a
    /// file inside a folder version).
    #[arg(long, value_name = "FILE|NAME@N")]
    data: String,
    /// The column to predict.
    #[arg(long)]
    target: String,
    /// classification or regression (default: inferred from the target).
    #[arg(long)]
    task: Option<String>,
    /// Models to fit, in order: baseline, linear, gbdt (default: all three).
    #[arg(long = "model", value_name = "MODEL")]
    models: Vec<String>,
    /// Columns to leave out (identifiers, free text, leaks).
    #[arg(long = "drop", value_name = "COLUMN")]
    drop: Vec<String>,
    /// Experiment for the runs (created when missing).
    #[arg(long, short = 'e', default_value = "cairn-train")]
    experiment: String,
    /// Seed of the train/validation/test split.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Share of rows held out for validation (model choice).
    #[arg(long, default_value_t = 0.2)]
    validation_fraction: f64,
    /// Share of rows held out for the final test scores.
    #[arg(long, default_value_t = 0.2)]
    test_fraction: f64,
    /// Boosting rounds.
    #[arg(long, default_value_t = 100)]
    trees: usize,
    #[arg(long, default_value_t = 0.1)]
    learning_rate: f64,
    #[arg(long, default_value_t = 31)]
    max_leaf_nodes: usize,
    #[arg(long)]
    max_depth: Option<usize>,
    #[arg(long, default_value_t = 20)]
    min_samples_leaf: usize,
    /// Logistic regression's inverse regularisation strength (scikit-learn's C).
    #[arg(long, default_value_t = 1.0)]
    c: f64,
    /// Ridge regression's penalty (scikit-learn's alpha).
    #[arg(long, default_value_t = 1.0)]
    alpha: f64,
    /// Register the best model (by validation score) as a new version of this model.
    #[arg(long, value_name = "NAME")]
    register: Option<String>,
    #[command(flatten)]
    tracking: TrackingArgs,
}

/// The table to read and how its runs name it.
pub(crate) struct Source {
    pub(crate) path: PathBuf,
    /// (dataset name, digest, MLflow source JSON).
    input: (String, String, String),
    shown: String,
    _scratch: Option<tempfile::TempDir>,
}

pub async fn run(args: TrainArgs) -> anyhow::Result<()> {
    let task = match args.task.as_deref() {
        None => None,
        Some(t) => Some(
            Task::parse(t)
                .ok_or_else(|| anyhow!("--task {t}: use classification or regression"))?,
        ),
    };
    let kinds: Vec<ModelKind> = if args.models.is_empty() {
        ModelKind::ALL.to_vec()
    } else {
        args.models
            .iter()
            .map(|m| {
                ModelKind::parse(m)
                    .ok_or_else(|| anyhow!("--model {m}: use baseline, linear or gbdt"))
            })
            .collect::<anyhow::Result<_>>()?
    };
    for (name, value) in [
        ("--validation-fraction", args.validation_fraction),
        ("--test-fraction", args.test_fraction),
    ] {
        if !(0.0..1.0).contains(&value) {
            bail!("{name} {value}: must be at least 0 and below 1");
        }
    }
    if args.validation_fraction + args.test_fraction >= 0.9 {
        bail!("--validation-fraction and --test-fraction leave under 10% of the rows to train on");
    }
    if args.trees == 0 || args.max_leaf_nodes < 2 || args.learning_rate <= 0.0 {
        bail!("--trees must be positive, --max-leaf-nodes at least 2, --learning-rate positive");
    }
    // Read and check the data before anything is recorded: bad input changes nothing.
    let source = tokio::task::spawn_blocking({
        let data = args.data.clone();
        move || resolve(&data)
    })
    .await??;
    let (target, drop) = (args.target.clone(), args.drop.clone());
    let path = source.path.clone();
    let frame = tokio::task::spawn_blocking(move || frame::load(&path, &target, task, &drop))
        .await?
        .with_context(|| format!("cannot train on {}", source.shown))?;
    let settings = settings_of(&args);
    let split = split_of(&args, frame.rows);
    println!(
        "Training on {}: {} rows ({} train, {} validation, {} test, seed {}), {} features, target {:?} ({}{})",
        source.shown,
        frame.rows,
        split.train.len(),
        split.validation.len(),
        split.test.len(),
        args.seed,
        frame.features.len(),
        frame.target_name,
        frame.target.task().as_str(),
        match &frame.target {
            Target::Classes { classes, .. } => format!(", {} classes", classes.len()),
            Target::Values(_) => String::new(),
        }
    );
    let tracking = Tracking::open(&args.tracking).await?;
    let client = Client::from_env(tracking.base());
    let embedded = tracking.is_embedded();
    let outcome = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let done = fit_and_log(&client, &args, &source, &frame, &split, &kinds, &settings)?;
        if embedded {
            println!(
                "Recorded in experiment {} ({}) in the Cairn home; `cairn server` shows it at /experiments/{}",
                args.experiment, done.experiment_id, done.experiment_id
            );
        } else {
            println!(
                "Recorded in experiment {}: {}/experiments/{}",
                args.experiment,
                client.base(),
                done.experiment_id
            );
        }
        Ok(())
    })
    .await?;
    tracking.close().await?;
    outcome
}

/// What `fit_and_log` did.
pub(crate) struct Logged {
    pub(crate) experiment_id: String,
    /// The best model and its run.
    pub(crate) best: Option<(ModelKind, String)>,
    /// The version `--register` made.
    pub(crate) registered: Option<String>,
}

/// Fits the models, logs a run for each, prints the comparison, tags and registers the best.
pub(crate) fn fit_and_log(
    client: &Client,
    args: &TrainArgs,
    source: &Source,
    frame: &Frame,
    split: &cairn_train::split::Split,
    kinds: &[ModelKind],
    settings: &Settings,
) -> anyhow::Result<Logged> {
    let trained = fitting::fit(frame, split, kinds, settings)?;
    let experiment = experiment_id(client, Some(&args.experiment))?;
    let baseline = trained
        .iter()
        .find(|t| t.kind == ModelKind::Baseline)
        .cloned();
    let mut logged = Vec::new();
    for t in &trained {
        let run_id = log_run(
            client,
            &experiment,
            frame,
            split,
            t,
            baseline.as_ref(),
            source,
            args,
        )?;
        logged.push((t, run_id));
    }
    print_table(frame, &logged, baseline.as_ref());
    let (metric, higher_is_better) = fitting::selection_metric(&frame.target);
    let best = logged
        .iter()
        .filter(|(t, _)| t.metric(metric).is_some_and(f64::is_finite))
        .min_by(|a, b| {
            let (x, y) = (
                a.0.metric(metric).unwrap_or(f64::NAN),
                b.0.metric(metric).unwrap_or(f64::NAN),
            );
            if higher_is_better {
                y.total_cmp(&x)
            } else {
                x.total_cmp(&y)
            }
        });
    let mut registered = None;
    if let Some((t, run_id)) = best {
        println!("Best by {metric}: {} (run {run_id})", t.kind.as_str());
        client.post(
            "runs/set-tag",
            &json!({"run_id": run_id, "key": "cairn.train.best", "value": "true"}),
        )?;
        if let Some(name) = &args.register {
            let version = crate::client::register_run_model(client, name, run_id)?;
            println!("Registered {} as models:/{name}/{version}", t.kind.as_str());
            registered = Some(version);
        }
    }
    Ok(Logged {
        experiment_id: experiment,
        best: best.map(|(t, r)| (t.kind, r.clone())),
        registered,
    })
}

/// `cairn train` arguments as the command line would give them (the quickstart trains with them).
pub(crate) fn args_from(words: &[&str]) -> anyhow::Result<TrainArgs> {
    #[derive(clap::Parser)]
    struct Line {
        #[command(flatten)]
        args: TrainArgs,
    }
    use clap::Parser;
    Ok(Line::try_parse_from(std::iter::once("train").chain(words.iter().copied()))?.args)
}

/// The settings the arguments ask for.
pub(crate) fn settings_of(args: &TrainArgs) -> Settings {
    Settings {
        c: args.c,
        alpha: args.alpha,
        gbdt: GbdtParams {
            trees: args.trees,
            learning_rate: args.learning_rate,
            max_leaf_nodes: args.max_leaf_nodes,
            max_depth: args.max_depth,
            min_samples_leaf: args.min_samples_leaf,
            ..GbdtParams::default()
        },
    }
}

/// The split the arguments ask for.
pub(crate) fn split_of(args: &TrainArgs, rows: usize) -> cairn_train::split::Split {
    cairn_train::split::split(
        rows,
        args.seed,
        args.validation_fraction,
        args.test_fraction,
    )
}

/// Finds the table behind `--data` (a file, or a dataset version restored to a scratch folder
/// that lives as long as the `Source`).
pub(crate) fn resolve(data: &str) -> anyhow::Result<Source> {
    let as_path = Path::new(data);
    if as_path.is_file() {
        let digest = cairn_data::digest::Digest::of_file(as_path)?.to_hex();
        let abs = std::fs::canonicalize(as_path)?;
        let name = as_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| data.to_string());
        return Ok(Source {
            path: as_path.to_path_buf(),
            input: (
                name,
                cairn_core::lineage::run_input_digest(&digest).to_string(),
                json!({"uri": format!("file://{}", abs.display())}).to_string(),
            ),
            shown: data.to_string(),
            _scratch: None,
        });
    }
    let (reference, inner) = match data.split_once(':') {
        Some((r, p)) => (r, Some(p)),
        None => (data, None),
    };
    if !reference.contains('@') {
        bail!("--data {data}: no such file, and not a dataset version NAME@N");
    }
    let (name, version) = cairn_data::repo::parse_version_ref(reference)?;
    let (repo, _) = crate::data::open_repo()?;
    let crate::data::VersionFile {
        object,
        file_name,
        record,
    } = crate::data::version_file(&repo, &name, version, inner)?;
    let scratch = tempfile::Builder::new().prefix("cairn-train-").tempdir()?;
    let path = scratch.path().join(file_name);
    let file = std::fs::File::create(&path)?;
    repo.cas()
        .copy_to(&object, &file, &cairn_data::progress::NoProgress)?;
    Ok(Source {
        path,
        input: (
            name.clone(),
            cairn_core::lineage::run_input_digest(&record.digest).to_string(),
            json!({"uri": format!("cairn://{name}@{version}"), "path": inner.unwrap_or(&record.path)})
                .to_string(),
        ),
        shown: data.to_string(),
        _scratch: Some(scratch),
    })
}

#[allow(clippy::too_many_arguments)]
fn log_run(
    client: &Client,
    experiment: &str,
    frame: &Frame,
    split: &cairn_train::split::Split,
    trained: &Trained,
    baseline: Option<&Trained>,
    source: &Source,
    args: &TrainArgs,
) -> anyhow::Result<String> {
    let kind = trained.kind.as_str();
    let created = client.post(
        "runs/create",
        &json!({"experiment_id": experiment, "run_name": format!("{kind}-{}", frame.target_name),
                "start_time": cairn_core::now_millis(),
                "tags": [{"key": "mlflow.source.name", "value": "cairn train"},
                         {"key": "mlflow.source.type", "value": "LOCAL"},
                         {"key": "cairn.train.model", "value": kind}]}),
    )?;
    let (run_id, root) = crate::client::created_run(&created)?;
    let (name, digest, source_json) = &source.input;
    client.post(
        "runs/log-inputs",
        &json!({"run_id": run_id, "datasets": [{
            "tags": [{"key": "mlflow.data.context", "value": "training"}],
            "dataset": {"name": name, "digest": digest, "source_type": if source_json.contains("cairn://") { "cairn" } else { "local" },
                        "source": source_json}}]}),
    )?;
    let mut params = vec![
        ("model", kind.to_string()),
        (
            "model_description",
            trained.kind.describe(&frame.target).to_string(),
        ),
        ("task", frame.target.task().as_str().to_string()),
        ("target", frame.target_name.clone()),
        ("data", source.shown.clone()),
        ("seed", args.seed.to_string()),
        ("validation_fraction", args.validation_fraction.to_string()),
        ("test_fraction", args.test_fraction.to_string()),
        ("train_rows", split.train.len().to_string()),
        ("features", frame.features.len().to_string()),
    ];
    if !args.drop.is_empty() {
        params.push(("dropped_columns", args.drop.join(",")));
    }
    match trained.kind {
        ModelKind::Baseline => {}
        ModelKind::Linear => match frame.target {
            Target::Classes { .. } => params.push(("C", args.c.to_string())),
            Target::Values(_) => params.push(("alpha", args.alpha.to_string())),
        },
        ModelKind::Gbdt => {
            params.push(("trees", args.trees.to_string()));
            params.push(("learning_rate", args.learning_rate.to_string()));
            params.push(("max_leaf_nodes", args.max_leaf_nodes.to_string()));
            params.push((
                "max_depth",
                args.max_depth.map_or("None".into(), |d| d.to_string()),
            ));
            params.push(("min_samples_leaf", args.min_samples_leaf.to_string()));
            params.push(("max_bins", "255".into()));
        }
    }
    let now = cairn_core::now_millis();
    let mut metrics: Vec<Value> = trained
        .metrics
        .iter()
        .filter(|(_, v)| v.is_finite())
        .map(|(k, v)| json!({"key": k, "value": v, "timestamp": now, "step": 0}))
        .collect();
    metrics.push(json!({"key": "fit_time_seconds", "value": trained.fit_seconds, "timestamp": now, "step": 0}));
    if let Some(base) = baseline.filter(|_| trained.kind != ModelKind::Baseline) {
        for (key, value) in &trained.metrics {
            if let (true, Some(b)) = (key.starts_with("test_"), base.metric(key)) {
                if value.is_finite() && b.is_finite() {
                    metrics.push(json!({"key": format!("{key}_lift"), "value": value - b, "timestamp": now, "step": 0}));
                }
            }
        }
    }
    client.post(
        "runs/log-batch",
        &json!({"run_id": run_id, "metrics": metrics,
                "params": params.iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>()}),
    )?;

    let onnx = trained.model.onnx(frame);
    client.put_artifact(&format!("{root}/model/model.onnx"), &onnx)?;
    client.put_artifact(
        &format!("{root}/model/MLmodel"),
        mlmodel(frame, &run_id).as_bytes(),
    )?;
    let importances = trained.model.feature_importances(frame);
    if !importances.is_empty() {
        let map: serde_json::Map<String, Value> = importances
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        client.put_artifact(
            &format!("{root}/feature_importances.json"),
            serde_json::to_string_pretty(&map)?.as_bytes(),
        )?;
    }
    match &frame.target {
        Target::Classes { codes, classes } => {
            let truth: Vec<u32> = split.test.iter().map(|&r| codes[r]).collect();
            let labels = fitting::argmax_rows(&trained.test_predictions, classes.len());
            let counts = cairn_train::metrics::confusion_matrix(&truth, &labels, classes.len());
            client.put_artifact(
                &format!("{root}/confusion_matrix.json"),
                json!({"classes": classes, "counts": counts.chunks(classes.len()).collect::<Vec<_>>(), "rows": "true class", "columns": "predicted class"})
                    .to_string()
                    .as_bytes(),
            )?;
            client.put_artifact(
                &format!("{root}/confusion_matrix.svg"),
                cairn_train::plots::confusion_matrix_svg(
                    &format!("{kind}: test rows"),
                    classes,
                    &counts,
                )
                .as_bytes(),
            )?;
        }
        Target::Values(values) => {
            let truth: Vec<f64> = split.test.iter().map(|&r| values[r]).collect();
            client.put_artifact(
                &format!("{root}/residuals.svg"),
                cairn_train::plots::residuals_svg(
                    &format!("{kind}: residuals on test rows"),
                    &trained.test_predictions,
                    &truth,
                )
                .as_bytes(),
            )?;
        }
    }
    client.post(
        "runs/update",
        &json!({"run_id": run_id, "status": "FINISHED", "end_time": cairn_core::now_millis()}),
    )?;
    Ok(run_id)
}

/// An MLflow `MLmodel` file for the ONNX flavor, with the input and output signature.
fn mlmodel(frame: &Frame, run_id: &str) -> String {
    let features = frame.features.len();
    let inputs =
        json!([{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, features]}}]);
    let outputs = match &frame.target {
        Target::Classes { classes, .. } => json!([
            {"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}},
            {"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, classes.len()]}}]),
        Target::Values(_) => {
            json!([{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 1]}}])
        }
    };
    format!(
        "artifact_path: model\n\
         flavors:\n  onnx:\n    code: null\n    data: model.onnx\n    providers:\n    - CPUExecutionProvider\n\
         \x20 python_function:\n    data: model.onnx\n    loader_module: mlflow.onnx\n\
         run_id: {run_id}\n\
         signature:\n  inputs: '{}'\n  outputs: '{}'\n",
        inputs, outputs
    )
}

fn print_table(frame: &Frame, logged: &[(&Trained, String)], baseline: Option<&Trained>) {
    let keys: Vec<&str> = match frame.target {
        Target::Classes { .. } => vec!["test_accuracy", "test_f1", "test_roc_auc", "test_log_loss"],
        Target::Values(_) => vec!["test_rmse", "test_mae", "test_r2"],
    };
    print!("{:<10}", "model");
    for k in &keys {
        print!(" {:>15}", k);
    }
    println!(" {:>10}  run", "fit (s)");
    for (t, run_id) in logged {
        print!("{:<10}", t.kind.as_str());
        for k in &keys {
            let cell = match (t.metric(k), baseline.and_then(|b| b.metric(k))) {
                (Some(v), Some(b)) if t.kind != ModelKind::Baseline => {
                    format!("{v:.4} ({:+.3})", v - b)
                }
                (Some(v), _) => format!("{v:.4}"),
                (None, _) => "-".into(),
            };
            print!(" {cell:>15}");
        }
        println!(" {:>10.3}  {run_id}", t.fit_seconds);
    }
    if baseline.is_some() {
        println!("(in brackets: the difference from the baseline)");
    }
}
