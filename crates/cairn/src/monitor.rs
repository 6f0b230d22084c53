//! `cairn monitor`: training references, drift and label metrics of served model versions,
//! and alert rules: predictions read from the home's monitoring folder (`<home>/monitoring`),
//! where `cairn server` logs the ones it serves, and references, labels and rules from the
//! metadata store.
use crate::data::when_to_the_second as when;
use anyhow::{bail, Context};
use cairn_monitor::{now_ms, parse_duration, AlertRule, Monitor};
use cairn_quality::drift::DriftOptions;
use cairn_quality::report::drift_html;
use serde_json::json;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct MonitorArgs {
    /// Metadata store holding references, labels and alert rules: the server's
    /// `--backend-store-uri`. Default: the home's SQLite file.
    #[arg(long, env = "CAIRN_BACKEND_STORE_URI", global = true)]
    backend_store_uri: Option<String>,
    /// Where the server writes its prediction log (its `--prediction-log-destination`).
    /// Default: `<home>/monitoring`.
    #[arg(long, global = true)]
    prediction_log_destination: Option<PathBuf>,
    #[command(subcommand)]
    command: MonitorCommand,
}

#[derive(clap::Subcommand, Debug)]
enum MonitorCommand {
    /// Store the data a model version was trained on as its drift reference.
    Reference {
        /// models:/NAME/VERSION
        model: String,
        /// CSV, TSV or Parquet file.
        data: PathBuf,
        /// The label column (not a feature; its values are what labels are compared with).
        #[arg(long)]
        target: Option<String>,
        /// Feature columns in the order the model takes them (default: every column but
        /// the target).
        #[arg(long, value_delimiter = ',')]
        features: Vec<String>,
    },
    /// Drift of the recent predictions of a model version against its reference.
    Drift {
        /// models:/NAME/VERSION
        model: String,
        /// How far back to look (like 15m, 1h, 1d).
        #[arg(long, default_value = "1h")]
        window: String,
        /// Write the report as .json or .html instead of printing a table.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Exit with status 1 when the dataset drifted.
        #[arg(long)]
        fail_on_drift: bool,
    },
    /// Accuracy (classification) or MAE/RMSE (regression) of labelled predictions over time.
    Metrics {
        /// models:/NAME/VERSION
        model: String,
        /// How far back to look.
        #[arg(long, default_value = "1d")]
        window: String,
        /// Length of each time bucket.
        #[arg(long, default_value = "1h")]
        bucket: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add (or replace, by name) an alert rule; a running server picks it up at its next
    /// evaluation.
    AlertAdd {
        /// The rule's name.
        name: String,
        /// models:/NAME (every monitored version) or models:/NAME/VERSION.
        #[arg(long)]
        model: String,
        /// drift_share, dataset_drift, drift_score:COLUMN, accuracy, mae or rmse.
        #[arg(long)]
        metric: String,
        /// Fire when the value goes above this.
        #[arg(long, conflicts_with = "below")]
        above: Option<f64>,
        /// Fire when the value goes below this.
        #[arg(long)]
        below: Option<f64>,
        /// How far back the value is computed (like 15m, 1h).
        #[arg(long, default_value = "1h")]
        window: String,
        /// URL the firing and resolving events are POSTed to as JSON.
        #[arg(long)]
        webhook: Option<String>,
    },
    /// Add (or replace, by name) every rule of a YAML file (`alerts:` list of rules with
    /// `name`, `model`, `version`, `metric`, `above` or `below`, `window`, `webhook`): all
    /// checked before any is saved.
    AlertImport {
        /// The rules file (an `alerts.yaml` of earlier Cairn versions works as it is).
        file: PathBuf,
    },
    /// The alert rules and every firing and resolution recorded.
    Alerts {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `models:/NAME/VERSION` -> (NAME, Some(VERSION)); `models:/NAME` -> (NAME, None).
fn model_uri(uri: &str) -> anyhow::Result<(String, Option<String>)> {
    let rest = uri
        .strip_prefix("models:/")
        .with_context(|| format!("{uri:?}: expected models:/NAME/VERSION"))?;
    let (name, version) = match rest.rsplit_once('/') {
        Some((n, v)) => (n, Some(v)),
        None => (rest, None),
    };
    if name.is_empty() || version.is_some_and(str::is_empty) {
        bail!("{uri:?}: expected models:/NAME/VERSION");
    }
    if let Some(v) = version {
        if v.parse::<u64>().map_or(true, |n| n == 0) {
            bail!("{uri:?}: the version must be a number (aliases are resolved by the server)");
        }
    }
    Ok((name.to_owned(), version.map(str::to_owned)))
}

fn versioned(uri: &str) -> anyhow::Result<(String, String)> {
    match model_uri(uri)? {
        (name, Some(version)) => Ok((name, version)),
        (_, None) => bail!("{uri:?}: name a version, models:/NAME/VERSION"),
    }
}

fn window_ms(text: &str) -> anyhow::Result<(i64, i64)> {
    let seconds = parse_duration(text)?;
    let to = now_ms() + 1;
    Ok((to - (seconds as i64).saturating_mul(1000), to))
}

pub fn run(args: MonitorArgs) -> anyhow::Result<i32> {
    let home = crate::home_dir();
    let store = crate::server::metadata_store(args.backend_store_uri.as_deref(), &home)?;
    let logs = crate::server::open_destination(
        "--prediction-log-destination",
        args.prediction_log_destination.as_deref(),
        &home.join("monitoring"),
    )?;
    let monitor = Monitor::open(logs, store);
    match args.command {
        MonitorCommand::Reference {
            model,
            data,
            target,
            features,
        } => {
            let (name, version) = versioned(&model)?;
            let r =
                monitor.set_reference(&name, &version, &data, target.as_deref(), Some(features))?;
            println!(
                "Stored the reference of {name} version {version}: {} rows of {}, features {}{}",
                r.dataset.rows,
                data.display(),
                r.features.join(", "),
                r.target
                    .map(|t| format!(", target {t}"))
                    .unwrap_or_default()
            );
        }
        MonitorCommand::Drift {
            model,
            window,
            output,
            fail_on_drift,
        } => {
            let (name, version) = versioned(&model)?;
            if let Some(out) = &output {
                if !matches!(
                    out.extension().and_then(|e| e.to_str()),
                    Some("json" | "html")
                ) {
                    bail!(
                        "--output {}: the report is written as .json or .html",
                        out.display()
                    );
                }
            }
            let (from, to) = window_ms(&window)?;
            let d = monitor.drift(&name, &version, from, to, &DriftOptions::default())?;
            let report = &d.report;
            match &output {
                Some(out) if out.extension().and_then(|e| e.to_str()) == Some("html") => {
                    let html = drift_html(
                        report,
                        &format!("training reference of {name} version {version}"),
                        &format!("predictions from {} to {} UTC", when(from), when(to)),
                    );
                    std::fs::write(out, html)
                        .with_context(|| format!("cannot write {}", out.display()))?;
                }
                Some(out) => {
                    let body = cairn_api::monitoring::window_drift_json(&name, &version, &d);
                    std::fs::write(out, serde_json::to_string_pretty(&body)?)
                        .with_context(|| format!("cannot write {}", out.display()))?;
                }
                None => {
                    println!(
                        "{name} version {version}: {} predictions from {} to {} UTC against the training reference ({} rows)",
                        report.current_rows,
                        when(from),
                        when(to),
                        report.reference_rows
                    );
                    crate::quality::print_drift_table(report);
                }
            }
            crate::quality::print_drift_summary(report);
            return Ok(i32::from(fail_on_drift && report.dataset_drift));
        }
        MonitorCommand::Metrics {
            model,
            window,
            bucket,
            json,
        } => {
            let (name, version) = versioned(&model)?;
            let (from, to) = window_ms(&window)?;
            let bucket_ms = parse_duration(&bucket)? as i64 * 1000;
            let buckets = monitor.metrics(&name, &version, from, to, bucket_ms)?;
            if json {
                let rows: Vec<_> = buckets
                    .iter()
                    .map(cairn_api::monitoring::bucket_json)
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({"buckets": rows}))?
                );
            } else {
                println!(
                    "{:<20} {:>11} {:>8} {:>9} {:>10} {:>10}",
                    "from (UTC)", "predictions", "labeled", "accuracy", "mae", "rmse"
                );
                let show = |v: Option<f64>| v.map_or("-".to_owned(), |x| format!("{x:.4}"));
                for b in buckets.iter().filter(|b| b.predictions > 0) {
                    println!(
                        "{:<20} {:>11} {:>8} {:>9} {:>10} {:>10}",
                        when(b.from_ms),
                        b.predictions,
                        b.labeled,
                        show(b.accuracy),
                        show(b.mae),
                        show(b.rmse)
                    );
                }
            }
        }
        MonitorCommand::AlertAdd {
            name,
            model,
            metric,
            above,
            below,
            window,
            webhook,
        } => {
            let (model, version) = model_uri(&model)?;
            let rule = AlertRule::new(
                &name,
                &model,
                version.as_deref(),
                &metric,
                above,
                below,
                Some(&window),
                webhook.as_deref(),
            )?;
            monitor.add_alert_rule(rule)?;
            println!(
                "Alert {name:?} saved; servers on this metadata store use it from their next evaluation"
            );
        }
        MonitorCommand::AlertImport { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let n = monitor.add_alert_rules_from(&text, &file.display().to_string())?;
            println!("{n} alert rules saved from {}", file.display());
        }
        MonitorCommand::Alerts { json } => {
            let rules = monitor.alert_rules()?;
            let events = monitor.alert_events(None)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({"events": events}))?
                );
            } else {
                println!("{} rules:", rules.len());
                for r in &rules {
                    println!(
                        "  {}: {} of models:/{}{} {} {} over {}s{}",
                        r.name,
                        r.metric.name(),
                        r.model,
                        r.version
                            .as_ref()
                            .map(|v| format!("/{v}"))
                            .unwrap_or_default(),
                        if r.above.is_some() { "above" } else { "below" },
                        r.threshold(),
                        r.window_seconds,
                        r.webhook
                            .as_ref()
                            .map(|w| format!(", posts to {w}"))
                            .unwrap_or_default()
                    );
                }
                println!("{} events:", events.len());
                for e in &events {
                    println!(
                        "  {} UTC  {} {}  models:/{}/{}  {}={} ({} {}){}",
                        when(e.at_ms),
                        e.alert,
                        e.state.to_uppercase(),
                        e.model,
                        e.version,
                        e.metric,
                        e.value,
                        e.condition,
                        e.threshold,
                        e.webhook
                            .as_ref()
                            .map(|w| format!(", webhook: {w}"))
                            .unwrap_or_default()
                    );
                }
            }
        }
    }
    Ok(0)
}
