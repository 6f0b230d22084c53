//! `cairn gate` and `cairn promote`: a model version is measured against a policy (metrics with
//! MLflow's `MetricThreshold` semantics, latency, size, memory, the training data's checks) and
//! an alias moves to it only after it passed, or when forced with a recorded reason.
use crate::client::{encode_query as encode, latest_metrics, proxied_root, Client};
use crate::run::{Tracking, TrackingArgs};
use anyhow::{anyhow, bail, Context};
use cairn_serving::{NamedTensor, OnnxModel, TensorData};
use cairn_train::gate::{at_most, judge_metric, quantile, Check, Policy};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// Longest gate result kept in the version's `cairn.gate.result` tag (MLflow's tag limit).
const TAG_LIMIT: usize = 5000;

#[derive(clap::Args, Debug)]
pub struct GateArgs {
    /// The candidate: models:/NAME/VERSION.
    model: String,
    /// The policy: metric thresholds, latency, size, memory and data checks (YAML).
    #[arg(long)]
    policy: PathBuf,
    /// Where the server writes its prediction log (its `--prediction-log-destination`), read
    /// for `drift_against: served`. Default: `<home>/monitoring`.
    #[arg(long)]
    prediction_log_destination: Option<PathBuf>,
    #[command(flatten)]
    tracking: TrackingArgs,
}

#[derive(clap::Args, Debug)]
pub struct PromoteArgs {
    /// The version to promote: models:/NAME/VERSION.
    model: String,
    /// The alias to move to it.
    #[arg(long)]
    alias: String,
    /// Move the alias although the version has not passed a gate.
    #[arg(long)]
    force: bool,
    /// Why it was forced (required with --force; recorded on the version).
    #[arg(long)]
    reason: Option<String>,
    #[command(flatten)]
    tracking: TrackingArgs,
}

/// `models:/NAME/VERSION` → (name, version).
fn parse_version_uri(uri: &str) -> anyhow::Result<(String, String)> {
    let rest = uri
        .strip_prefix("models:/")
        .ok_or_else(|| anyhow!("{uri} is not models:/NAME/VERSION"))?;
    let (name, version) = rest
        .rsplit_once('/')
        .ok_or_else(|| anyhow!("{uri} is not models:/NAME/VERSION"))?;
    if name.is_empty() || version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        bail!("{uri} is not models:/NAME/VERSION (the version is a number)");
    }
    Ok((name.to_string(), version.to_string()))
}

fn get_version(client: &Client, name: &str, version: &str) -> anyhow::Result<Value> {
    let reply = client.get(&format!(
        "/api/2.0/mlflow/model-versions/get?name={}&version={version}",
        encode(name)
    ))?;
    Ok(reply["model_version"].clone())
}

fn get_run(client: &Client, run_id: &str) -> anyhow::Result<Value> {
    Ok(client.get(&format!("/api/2.0/mlflow/runs/get?run_id={run_id}"))?["run"].clone())
}

fn param(run: &Value, key: &str) -> Option<String> {
    run["data"]["params"]
        .as_array()?
        .iter()
        .find(|p| p["key"] == key)
        .and_then(|p| p["value"].as_str().map(String::from))
}

fn version_tag(version: &Value, key: &str) -> Option<String> {
    version["tags"]
        .as_array()?
        .iter()
        .find(|t| t["key"] == key)
        .and_then(|t| t["value"].as_str().map(String::from))
}

/// The metrics the candidate is compared with, and what they are, per `compare_to`.
fn comparison(
    client: &Client,
    name: &str,
    compare_to: &str,
    run: &Value,
) -> anyhow::Result<(String, Option<BTreeMap<String, f64>>)> {
    if compare_to == "baseline" {
        let (Some(data), Some(target)) = (param(run, "data"), param(run, "target")) else {
            return Ok((
                "the baseline (the run was not made by cairn train)".into(),
                None,
            ));
        };
        let quote = |v: &str| v.replace('\'', "\\'");
        let found = client.post(
            "runs/search",
            &json!({"experiment_ids": [run["info"]["experiment_id"]],
                    "filter": format!("tags.`cairn.train.model` = 'baseline' and params.data = '{}' and params.target = '{}'", quote(&data), quote(&target)),
                    "order_by": ["attributes.start_time DESC"], "max_results": 1}),
        )?;
        return Ok(match found["runs"].get(0) {
            Some(b) => (
                format!(
                    "the baseline (run {})",
                    b["info"]["run_id"].as_str().unwrap_or_default()
                ),
                Some(latest_metrics(b)),
            ),
            None => ("the baseline (none on this data)".into(), None),
        });
    }
    let reply = client.get(&format!(
        "/api/2.0/mlflow/registered-models/alias?name={}&alias={}",
        encode(name),
        encode(compare_to)
    ));
    let Ok(reply) = reply else {
        return Ok((format!("@{compare_to} (no version holds it)"), None));
    };
    let holder = &reply["model_version"];
    let run_id = holder["run_id"].as_str().unwrap_or_default();
    let metrics = if run_id.is_empty() {
        None
    } else {
        Some(latest_metrics(&get_run(client, run_id)?))
    };
    Ok((
        format!(
            "@{compare_to} (version {})",
            holder["version"].as_str().unwrap_or("?")
        ),
        metrics,
    ))
}

/// The training table of a `cairn train` run, read with its target and dropped columns.
fn training_frame(
    run: &Value,
) -> anyhow::Result<(cairn_train::frame::Frame, PathBuf, crate::train::Source)> {
    let target = param(run, "target").ok_or_else(|| {
        anyhow!("the version's run names no training data (train it with cairn train)")
    })?;
    let drop: Vec<String> = param(run, "dropped_columns")
        .map(|d| d.split(',').map(String::from).collect())
        .unwrap_or_default();
    let data =
        param(run, "data").ok_or_else(|| anyhow!("the version's run names no training data"))?;
    let source = crate::train::resolve(&data)
        .with_context(|| format!("cannot read the training data {data}"))?;
    let path = source.path.clone();
    let frame = cairn_train::frame::load(&path, &target, None, &drop)?;
    Ok((frame, path, source))
}

/// Resident memory figures of this process, KiB: (current, peak since the last reset).
fn memory_kib() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Starts a new peak-memory measurement (Linux: writing 5 to clear_refs resets VmHWM).
fn reset_peak_memory() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

struct Measured {
    size_bytes: u64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    memory_mb: Option<f64>,
}

/// Loads the model here and times it on training rows; the memory it takes is the peak resident
/// size while loading and running, above what the process held before.
fn measure(model_bytes: &[u8], run: &Value, policy: &Policy) -> anyhow::Result<Measured> {
    let size_bytes = model_bytes.len() as u64;
    let needs_rows = policy.latency.is_some() || policy.max_memory_mb.is_some();
    if !needs_rows {
        return Ok(Measured {
            size_bytes,
            p50_ms: None,
            p99_ms: None,
            memory_mb: None,
        });
    }
    let (frame, _, _keep) = training_frame(run)?;
    let columns = cairn_train::gbdt::feature_values(&frame);
    let batch = policy.latency.as_ref().map_or(1, |l| l.batch_size);
    let calls = policy.latency.as_ref().map_or(50, |l| l.calls);
    let width = columns.len();
    // Batches of consecutive training rows, wrapping around the table.
    let batches: Vec<Vec<f32>> = (0..calls.min(64))
        .map(|b| {
            let mut x = Vec::with_capacity(batch * width);
            for i in 0..batch {
                let r = (b * batch + i) % frame.rows;
                x.extend(columns.iter().map(|c| c[r]));
            }
            x
        })
        .collect();
    drop(columns);
    let memory_reset = reset_peak_memory();
    let before = memory_kib();
    let model = OnnxModel::from_bytes(model_bytes)
        .map_err(|e| anyhow!("the version's ONNX model does not load: {e}"))?;
    let input = model
        .signature()
        .inputs
        .first()
        .map(|i| i.name.clone())
        .ok_or_else(|| anyhow!("the model has no input"))?;
    let call = |x: &Vec<f32>| -> anyhow::Result<()> {
        model
            .infer(vec![NamedTensor {
                name: input.clone(),
                shape: vec![batch, width],
                data: TensorData::Fp32(x.clone()),
            }])
            .map_err(|e| anyhow!("the model failed on training rows: {e}"))?;
        Ok(())
    };
    for x in batches.iter().take(20) {
        call(x)?;
    }
    let mut times = Vec::with_capacity(calls);
    for i in 0..calls {
        let x = &batches[i % batches.len()];
        let started = Instant::now();
        call(x)?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let after = memory_kib();
    let memory_mb = match (memory_reset, before, after) {
        (true, Some((rss, _)), Some((_, peak))) => Some(peak.saturating_sub(rss) as f64 / 1024.0),
        _ => None,
    };
    Ok(Measured {
        size_bytes,
        p50_ms: Some(quantile(&times, 0.5)),
        p99_ms: Some(quantile(&times, 0.99)),
        memory_mb,
    })
}

/// The ONNX file of a version whose source is under its run (`runs:/ID/PATH`).
fn model_bytes(client: &Client, version: &Value, run: &Value) -> anyhow::Result<Vec<u8>> {
    let source = version["source"].as_str().unwrap_or_default();
    let run_id = run["info"]["run_id"].as_str().unwrap_or_default();
    let path = source
        .strip_prefix(&format!("runs:/{run_id}/"))
        .ok_or_else(|| anyhow!("version source {source} is not under its run"))?;
    let listed = client.get(&format!(
        "/api/2.0/mlflow/artifacts/list?run_id={run_id}&path={}",
        encode(path)
    ))?;
    let file = listed["files"]
        .as_array()
        .and_then(|fs| {
            fs.iter()
                .filter_map(|f| f["path"].as_str())
                .find(|p| p.ends_with(".onnx"))
        })
        .ok_or_else(|| anyhow!("no .onnx file under {source}"))?
        .to_string();
    let root = proxied_root(run["info"]["artifact_uri"].as_str().unwrap_or_default());
    client.get_artifact(&format!("{root}/{file}"))
}

/// Where `drift_against: served` reads what a version answered: the prediction log of the
/// server (a folder or s3:// destination; `None` for the home's `monitoring` folder).
#[derive(Debug, Clone, Default)]
pub(crate) struct ServedLog {
    pub destination: Option<PathBuf>,
}

impl ServedLog {
    fn open(&self) -> anyhow::Result<cairn_monitor::Monitor> {
        let home = crate::home_dir();
        let store = crate::server::metadata_store(
            std::env::var("CAIRN_BACKEND_STORE_URI").ok().as_deref(),
            &home,
        )?;
        let logs = crate::server::open_destination(
            "--prediction-log-destination",
            self.destination.as_deref(),
            &home.join("monitoring"),
        )?;
        Ok(cairn_monitor::Monitor::open(logs, store))
    }
}

/// The logged inputs of a window as the training data's columns: `x[j]` is the served
/// model's feature `j` (category codes turned back into their levels); named inputs keep
/// their names. Only columns the training data has are kept.
fn served_columns(
    window: &cairn_monitor::Window,
    features: Option<&[cairn_serving::FeatureColumn]>,
    training: &cairn_quality::drift::Dataset,
) -> Vec<(String, cairn_quality::drift::Sample)> {
    use cairn_monitor::Column;
    use cairn_quality::drift::Sample;
    let mut out = Vec::new();
    for (logged, column) in &window.inputs {
        let position = logged
            .strip_prefix("x[")
            .and_then(|r| r.strip_suffix(']'))
            .and_then(|j| j.parse::<usize>().ok())
            .or((logged == "x").then_some(0));
        let feature = match (position, features) {
            (Some(j), Some(fs)) => fs.get(j),
            _ => None,
        };
        let name = feature.map_or(logged.as_str(), |f| f.name.as_str());
        let Some(reference) = training.column(name) else {
            continue;
        };
        let sample = match (column, feature.and_then(|f| f.levels.as_ref())) {
            (Column::Numbers(values, _), Some(levels)) => {
                let mut counts = BTreeMap::new();
                let mut missing = 0;
                for v in values {
                    if v.is_nan() {
                        missing += 1;
                        continue;
                    }
                    let level = (v.fract() == 0.0 && *v >= 0.0)
                        .then(|| levels.get(*v as usize))
                        .flatten()
                        .cloned()
                        .unwrap_or_else(|| format!("unknown code {v}"));
                    *counts.entry(level).or_insert(0u64) += 1;
                }
                Sample::Labels {
                    counts,
                    missing,
                    boolean: false,
                }
            }
            (Column::Numbers(values, _), None) => {
                let mut finite: Vec<f64> =
                    values.iter().copied().filter(|v| v.is_finite()).collect();
                let missing = (values.len() - finite.len()) as u64;
                finite.sort_unstable_by(f64::total_cmp);
                // Served as floats, compared as the training column is typed (an integer
                // column with few values is categorical, as Evidently would take it).
                let integer = matches!(reference, Sample::Numbers { integer: true, .. })
                    && missing == 0
                    && finite.iter().all(|v| v.fract() == 0.0);
                Sample::Numbers {
                    values: finite,
                    integer,
                    missing,
                }
            }
            (Column::Text(values), _) => {
                let mut counts = BTreeMap::new();
                let mut missing = 0;
                for v in values {
                    match v {
                        Some(v) => *counts.entry(v.clone()).or_insert(0u64) += 1,
                        None => missing += 1,
                    }
                }
                Sample::Labels {
                    counts,
                    missing,
                    boolean: false,
                }
            }
        };
        out.push((name.to_string(), sample));
    }
    out
}

/// No drift between the training data and what `served` (the candidate, an alias or a
/// version of the same model) answered in the policy's window.
fn served_drift(
    client: &Client,
    name: &str,
    candidate: &str,
    served: Option<&str>,
    data: &cairn_train::gate::DataChecks,
    train_path: &std::path::Path,
    log: &ServedLog,
) -> anyhow::Result<Check> {
    let window_text = data.served_window.as_deref().unwrap_or("1h");
    let seconds = cairn_monitor::parse_duration(window_text)
        .with_context(|| format!("served_window: {window_text}"))?;
    let number = match served {
        None => candidate.to_string(),
        Some(v) if v.bytes().all(|b| b.is_ascii_digit()) => v.to_string(),
        Some(alias) => {
            let reply = client
                .get(&format!(
                    "/api/2.0/mlflow/registered-models/alias?name={}&alias={}",
                    encode(name),
                    encode(alias)
                ))
                .with_context(|| {
                    format!("drift_against: served:{alias}: no such alias of {name}")
                })?;
            reply["model_version"]["version"]
                .as_str()
                .ok_or_else(|| anyhow!("drift_against: served:{alias}: no such alias of {name}"))?
                .to_string()
        }
    };
    let version = get_version(client, name, &number)
        .with_context(|| format!("drift_against: served: version {number} of {name} not found"))?;
    let features = match version["run_id"].as_str().filter(|r| !r.is_empty()) {
        Some(run_id) => model_bytes(client, &version, &get_run(client, run_id)?)
            .ok()
            .and_then(|b| cairn_serving::feature_columns(&b)),
        None => None,
    };
    let requirement =
        format!("no drift from the training data to what version {number} served in {window_text}");
    let to = cairn_monitor::now_ms() + 1;
    let from = to - (seconds as i64).saturating_mul(1000);
    let window = log.open()?.window(name, &number, from, to)?;
    let limit = "under 50% of columns".to_string();
    if window.keys.is_empty() {
        return Ok(Check {
            requirement,
            measured: "no predictions logged".into(),
            limit,
            passed: false,
        });
    }
    let training = cairn_quality::drift::Dataset::read(train_path)?;
    let columns = served_columns(&window, features.as_deref(), &training);
    if columns.is_empty() {
        bail!(
            "drift_against: served: the inputs version {number} logged ({}) match no column of the training data",
            window.inputs.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    let current = cairn_quality::drift::Dataset {
        rows: window.keys.len() as u64,
        columns,
    };
    let report = cairn_quality::drift::compare(
        &training,
        &current,
        &cairn_quality::drift::DriftOptions::default(),
    )?;
    Ok(Check {
        requirement,
        measured: format!(
            "{} of {} columns drifted, {} predictions",
            report.drifted_columns, report.compared_columns, window.rows
        ),
        limit: format!("under {:.0}% of columns", 100.0 * report.share_threshold),
        passed: !report.dataset_drift,
    })
}

fn data_checks(
    client: &Client,
    name: &str,
    candidate: &str,
    run: &Value,
    policy: &Policy,
    log: &ServedLog,
) -> anyhow::Result<Vec<Check>> {
    let Some(data) = &policy.data else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let (_, train_path, _keep) = training_frame(run)?;
    if let Some(suite_path) = &data.suite {
        let text = std::fs::read_to_string(suite_path)
            .with_context(|| format!("cannot read suite {suite_path}"))?;
        let suite = cairn_quality::suite::Suite::parse(&text, suite_path)?;
        let result = cairn_quality::validate::validate(&train_path, &suite)?;
        let met = result.results.iter().filter(|r| r.success).count();
        out.push(Check {
            requirement: format!("training data meets suite {}", result.suite),
            measured: format!("{met} of {} expectations met", result.results.len()),
            limit: "all".into(),
            passed: result.success,
        });
    }
    if let Some(served) = data.served() {
        out.push(served_drift(
            client,
            name,
            candidate,
            served,
            data,
            &train_path,
            log,
        )?);
    } else if let Some(current) = &data.drift_against {
        let source = crate::train::resolve(current)
            .with_context(|| format!("cannot read {current} to compare with the training data"))?;
        let reference = cairn_quality::drift::Dataset::read(&train_path)?;
        let now = cairn_quality::drift::Dataset::read(&source.path)?;
        let report = cairn_quality::drift::compare(
            &reference,
            &now,
            &cairn_quality::drift::DriftOptions::default(),
        )?;
        out.push(Check {
            requirement: format!("no drift from the training data to {current}"),
            measured: format!(
                "{} of {} columns drifted",
                report.drifted_columns, report.compared_columns
            ),
            limit: format!("under {:.0}% of columns", 100.0 * report.share_threshold),
            passed: !report.dataset_drift,
        });
    }
    Ok(out)
}

pub async fn gate(args: GateArgs) -> anyhow::Result<i32> {
    parse_version_uri(&args.model)?;
    let text = std::fs::read_to_string(&args.policy)
        .with_context(|| format!("cannot read policy {}", args.policy.display()))?;
    let policy = Policy::parse(&text, &args.policy.display().to_string())?;
    let tracking = Tracking::open(&args.tracking).await?;
    let client = Client::from_env(tracking.base());
    let model_uri = args.model.clone();
    let log = ServedLog {
        destination: args.prediction_log_destination,
    };
    let outcome =
        tokio::task::spawn_blocking(move || run_gate(&client, &model_uri, &policy, &log)).await?;
    tracking.close().await?;
    Ok(if outcome? { 0 } else { 1 })
}

/// Measures `model_uri` against `policy`, prints the table and records the outcome on the
/// version; true when every requirement holds.
pub(crate) fn run_gate(
    client: &Client,
    model_uri: &str,
    policy: &Policy,
    log: &ServedLog,
) -> anyhow::Result<bool> {
    let (name, number) = parse_version_uri(model_uri)?;
    let version =
        get_version(client, &name, &number).with_context(|| format!("{model_uri} not found"))?;
    let run_id = version["run_id"]
        .as_str()
        .filter(|r| !r.is_empty())
        .ok_or_else(|| anyhow!("{model_uri} has no run: nothing to measure it by"))?
        .to_string();
    let run = get_run(client, &run_id)?;
    let candidate = latest_metrics(&run);
    let mut checks = Vec::new();
    let (compared_with, compared) = match &policy.compare_to {
        Some(to) => comparison(client, &name, to, &run)?,
        None => (String::new(), None),
    };
    for (metric, threshold) in &policy.metrics {
        checks.extend(judge_metric(
            metric,
            threshold,
            candidate.get(metric).copied(),
            compared.as_ref().and_then(|c| c.get(metric).copied()),
            &compared_with,
        ));
    }
    let needs_model = policy.latency.is_some()
        || policy.max_memory_mb.is_some()
        || policy.max_model_size_mb.is_some();
    if needs_model {
        let bytes = model_bytes(client, &version, &run)?;
        let measured = measure(&bytes, &run, policy)?;
        if let Some(limit) = policy.max_model_size_mb {
            checks.push(at_most(
                "model file size",
                Some(measured.size_bytes as f64 / 1e6),
                limit,
                "MB",
            ));
        }
        if let Some(latency) = &policy.latency {
            let what = format!(
                "latency, batch of {}, {} calls",
                latency.batch_size, latency.calls
            );
            if let Some(limit) = latency.p50_ms {
                checks.push(at_most(
                    &format!("p50 {what}"),
                    measured.p50_ms,
                    limit,
                    "ms",
                ));
            }
            if let Some(limit) = latency.p99_ms {
                checks.push(at_most(
                    &format!("p99 {what}"),
                    measured.p99_ms,
                    limit,
                    "ms",
                ));
            }
        }
        if let Some(limit) = policy.max_memory_mb {
            checks.push(at_most(
                "peak memory of the loaded model",
                measured.memory_mb,
                limit,
                "MB",
            ));
        }
    }
    checks.extend(data_checks(client, &name, &number, &run, policy, log)?);
    if checks.is_empty() {
        bail!("the policy asks for nothing to check");
    }
    let passed = checks.iter().all(|c| c.passed);
    print_checks(model_uri, &checks, passed);
    let now = cairn_core::now_millis();
    let result = json!({
        "model": name, "version": number, "passed": passed, "time": now,
        "policy": policy, "compared_with": compared_with, "checks": checks,
    });
    let mut tag = result.to_string();
    if tag.len() > TAG_LIMIT {
        let summary = json!({"model": name, "version": number, "passed": passed, "time": now,
            "failed": checks.iter().filter(|c| !c.passed).map(|c| &c.requirement).collect::<Vec<_>>(),
            "full_result": "the gate/ artifact of the version's run"});
        tag = summary.to_string();
    }
    for (key, value) in [
        (
            "cairn.gate.status",
            if passed { "passed" } else { "failed" }.to_string(),
        ),
        ("cairn.gate.time", now.to_string()),
        ("cairn.gate.result", tag),
    ] {
        client.post(
            "model-versions/set-tag",
            &json!({"name": name, "version": number, "key": key, "value": value}),
        )?;
    }
    let root = proxied_root(run["info"]["artifact_uri"].as_str().unwrap_or_default());
    client.put_artifact(
        &format!("{root}/gate/version-{number}-{now}.json"),
        serde_json::to_string_pretty(&result)?.as_bytes(),
    )?;
    Ok(passed)
}

fn print_checks(model: &str, checks: &[Check], passed: bool) {
    let w = checks
        .iter()
        .map(|c| c.requirement.len())
        .max()
        .unwrap_or(11)
        .max(11);
    let m = checks
        .iter()
        .map(|c| c.measured.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let l = checks
        .iter()
        .map(|c| c.limit.len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!("Gate for {model}:");
    println!(
        "  {:<w$}  {:<m$}  {:<l$}  result",
        "requirement", "measured", "limit"
    );
    for c in checks {
        println!(
            "  {:<w$}  {:<m$}  {:<l$}  {}",
            c.requirement,
            c.measured,
            c.limit,
            if c.passed { "pass" } else { "FAIL" }
        );
    }
    let failed = checks.iter().filter(|c| !c.passed).count();
    if passed {
        println!("{model} passed all {} requirements", checks.len());
    } else {
        println!("{model} failed {failed} of {} requirements", checks.len());
    }
}

pub async fn promote(args: PromoteArgs) -> anyhow::Result<()> {
    parse_version_uri(&args.model)?;
    if args.force && args.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        bail!("--force needs --reason TEXT: it is recorded on the version");
    }
    let tracking = Tracking::open(&args.tracking).await?;
    let client = Client::from_env(tracking.base());
    let model_uri = args.model.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        promote_version(
            &client,
            &model_uri,
            &args.alias,
            args.force,
            args.reason.as_deref(),
        )
    })
    .await?;
    tracking.close().await?;
    outcome
}

/// Moves `alias` to `model_uri` when its last gate passed, or when `force`d (with a `reason`);
/// records who, when and why on the version.
pub(crate) fn promote_version(
    client: &Client,
    model_uri: &str,
    alias: &str,
    force: bool,
    reason: Option<&str>,
) -> anyhow::Result<()> {
    let (name, number) = parse_version_uri(model_uri)?;
    let version =
        get_version(client, &name, &number).with_context(|| format!("{} not found", model_uri))?;
    let status = version_tag(&version, "cairn.gate.status");
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let now = cairn_core::now_millis().to_string();
    let mut tags = vec![
        ("cairn.promote.alias", alias.to_string()),
        ("cairn.promote.by", user),
        ("cairn.promote.time", now),
    ];
    match (status.as_deref(), force) {
        (Some("passed"), _) => tags.push(("cairn.promote.forced", "false".into())),
        (_, true) => {
            tags.push(("cairn.promote.forced", "true".into()));
            tags.push((
                "cairn.promote.reason",
                reason.unwrap_or_default().to_string(),
            ));
        }
        (other, false) => bail!(
            "{} has {} a gate: run `cairn gate {} --policy gate.yaml` first, or move the alias \
             anyway with --force --reason TEXT",
            model_uri,
            match other {
                Some("failed") => "failed",
                _ => "not passed",
            },
            model_uri
        ),
    }
    client.post(
        "registered-models/alias",
        &json!({"name": name, "alias": alias, "version": number}),
    )?;
    for (key, value) in tags {
        client.post(
            "model-versions/set-tag",
            &json!({"name": name, "version": number, "key": key, "value": value}),
        )?;
    }
    if force && status.as_deref() != Some("passed") {
        println!(
            "Moved @{} to {} without a passing gate (forced: {})",
            alias,
            model_uri,
            reason.unwrap_or_default()
        );
    } else {
        println!("Moved @{} to {} (gate passed)", alias, model_uri);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_uris_are_parsed_strictly() {
        assert_eq!(
            parse_version_uri("models:/churn/3").unwrap(),
            ("churn".to_string(), "3".to_string())
        );
        for bad in [
            "models:/churn",
            "models:/churn/x",
            "runs:/a/b",
            "models://3",
            "churn/3",
        ] {
            assert!(parse_version_uri(bad).is_err(), "{bad}");
        }
    }
}
