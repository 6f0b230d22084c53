//! `cairn validate`, `cairn suite suggest` and `cairn drift`: arguments, printing and report
//! files around `cairn-quality`.
use anyhow::{bail, Context};
use cairn_quality::drift::{compare, Dataset, DriftOptions, Method};
use cairn_quality::profile::{profile, suggest};
use cairn_quality::report::{drift_html, drift_json, validation_html};
use cairn_quality::suite::Suite;
use cairn_quality::validate::{validate, Outcome};
use clap::{Args, Subcommand};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// `cairn validate`.
#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// The expectation suite: YAML, or Great Expectations' JSON suite.
    #[arg(long)]
    suite: PathBuf,
    /// The data: a CSV, TSV or Parquet file.
    data: PathBuf,
    /// Also write the results as JSON (Great Expectations' shape) to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also write a self-contained HTML report to this file.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Print only the closing line.
    #[arg(short, long)]
    quiet: bool,
    /// Do not record the result against the Cairn dataset version the data belongs to.
    #[arg(long)]
    no_record: bool,
}

/// `cairn suite`.
#[derive(Args, Debug)]
pub struct SuiteArgs {
    #[command(subcommand)]
    command: SuiteCommand,
}

#[derive(Subcommand, Debug)]
enum SuiteCommand {
    /// Draft a suite from a profile of known-good data (YAML on stdout or to --output).
    Suggest {
        /// The known-good data: a CSV, TSV or Parquet file.
        data: PathBuf,
        /// The suite's name (default: the file's stem).
        #[arg(long)]
        name: Option<String>,
        /// Write the suite here instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

/// `cairn drift`.
#[derive(Args, Debug)]
pub struct DriftArgs {
    /// Reference data (CSV, TSV, Parquet) or a reference stored with --save-reference.
    #[arg(long)]
    reference: PathBuf,
    /// Current data to compare with the reference.
    #[arg(long, required_unless_present = "save_reference")]
    current: Option<PathBuf>,
    /// Write the report: `.json` (per-column scores) or `.html` (with distributions).
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Method for every column (`ks`, `chisquare`, `z`, `wasserstein`, `jensenshannon`,
    /// `psi`), or for one column as COLUMN=METHOD; repeatable.
    #[arg(long)]
    method: Vec<String>,
    /// Threshold for every column, or COLUMN=THRESHOLD; repeatable.
    #[arg(long)]
    threshold: Vec<String>,
    /// Share of drifted columns at which the dataset counts as drifted.
    #[arg(long, default_value_t = 0.5)]
    drift_share: f64,
    /// Only these columns (comma-separated).
    #[arg(long, value_delimiter = ',')]
    columns: Vec<String>,
    /// Store the reference's statistics here (sorted values, label counts) for later runs.
    #[arg(long)]
    save_reference: Option<PathBuf>,
    /// Exit with status 1 when the dataset drifted (for CI and cron jobs).
    #[arg(long)]
    fail_on_drift: bool,
}

fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}...", s.chars().take(77).collect::<String>())
    } else {
        s
    }
}

/// Runs `cairn validate`; returns the exit status (1 when an expectation failed).
pub fn run_validate(args: ValidateArgs) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(&args.suite)
        .with_context(|| format!("cannot read suite {}", args.suite.display()))?;
    let suite = Suite::parse(&text, &args.suite.display().to_string())?;
    let result = validate(&args.data, &suite)?;
    if !args.quiet {
        for r in &result.results {
            let column = r
                .kwargs
                .get("column")
                .and_then(Value::as_str)
                .map(|c| format!(" [{c}]"))
                .unwrap_or_default();
            let detail = match r.outcome() {
                Outcome::Error(e) => format!("error: {e}"),
                Outcome::Observed(v) => format!("observed {}", short(v)),
                Outcome::Unexpected {
                    count,
                    percent,
                    examples,
                } => format!(
                    "{}{}",
                    Outcome::unexpected_summary(count, percent),
                    examples
                        .map(|v| format!(", e.g. {}", short(v)))
                        .unwrap_or_default()
                ),
                Outcome::Nothing => String::new(),
            };
            println!(
                "{} {}{column}  {detail}",
                if r.success { "ok  " } else { "FAIL" },
                r.type_name
            );
        }
    }
    let stats = result.statistics();
    println!(
        "{}: {} of {} expectations met on {} rows of {}",
        if result.success { "passed" } else { "FAILED" },
        stats["successful_expectations"],
        stats["evaluated_expectations"],
        result.rows,
        args.data.display()
    );
    if let Some(path) = &args.json {
        write_file(path, &serde_json::to_string_pretty(&result.to_json())?)?;
    }
    if !args.no_record {
        if let Some(version) = record_against_dataset(&args.data, &result)? {
            println!(
                "recorded against dataset version {version} (`cairn lineage --dataset {version}`)"
            );
        }
    }
    if let Some(path) = &args.html {
        write_file(
            path,
            &validation_html(&result, &args.data.display().to_string()),
        )?;
    }
    Ok(if result.success { 0 } else { 1 })
}

/// The dataset record of one validation result.
pub fn validation_record(
    name: &str,
    version: i64,
    path: &str,
    result: &cairn_quality::validate::ValidationResult,
) -> cairn_core::model::DatasetValidation {
    cairn_core::model::DatasetValidation {
        name: name.to_owned(),
        version,
        path: path.to_owned(),
        suite: result.suite.clone(),
        success: result.success,
        evaluated: result.results.len() as i64,
        successful: result.results.iter().filter(|r| r.success).count() as i64,
        result: result.to_json().to_string(),
        creation_time: cairn_core::now_millis(),
    }
}

/// Records `result` against the Cairn dataset version that `data` belongs to (its own pointer
/// file, or an enclosing folder's, within the project), but only when the bytes on disk are
/// exactly that version's. Returns `NAME@VERSION` when recorded.
fn record_against_dataset(
    data: &Path,
    result: &cairn_quality::validate::ValidationResult,
) -> anyhow::Result<Option<String>> {
    use cairn_data::pointer::Pointer;
    let abs = std::fs::canonicalize(data)?;
    let root = cairn_data::repo::find_root(abs.parent().unwrap_or(&abs));
    let Some((tracked, pointer_file)) = abs
        .ancestors()
        .take_while(|dir| dir.starts_with(&root) && *dir != root)
        .map(|dir| (dir.to_path_buf(), Pointer::file_for(dir)))
        .find(|(_, pointer)| pointer.is_file())
    else {
        return Ok(None);
    };
    let pointer = Pointer::read(&pointer_file)?;
    let (Some(name), Some(version)) = (pointer.dataset.clone(), pointer.version) else {
        return Ok(None);
    };
    let home = crate::home_dir();
    let (state, _) = crate::server::open_state(&crate::server::ServerArgs::local(), &home)?;
    let datasets = state.lineage.datasets().clone();
    let repo = cairn_data::repo::DataRepo::open(
        &root,
        &std::fs::canonicalize(&home)?.join("data"),
        datasets.clone(),
    )?;
    let snapshot = repo.snapshot(&tracked, false, &cairn_data::progress::NoProgress)?;
    repo.save_cache()?;
    if snapshot.digest != pointer.digest {
        eprintln!(
            "not recorded against dataset version {name}@{version}: {} changed since it was added (`cairn data add` records a new version)",
            tracked.display()
        );
        return Ok(None);
    }
    let path = abs
        .strip_prefix(&tracked)
        .map(|p| {
            p.components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/")
        })
        .unwrap_or_default();
    datasets.record_dataset_validation(&validation_record(&name, version, &path, result))?;
    Ok(Some(format!("{name}@{version}")))
}

/// Runs `cairn suite ...`.
pub fn run_suite(args: SuiteArgs) -> anyhow::Result<()> {
    match args.command {
        SuiteCommand::Suggest { data, name, output } => {
            let p = profile(&data)?;
            let name = name.unwrap_or_else(|| {
                data.file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("suite")
                    .to_owned()
            });
            let suite = suggest(&p, &name);
            let yaml = serde_yaml::to_string(&suite)?;
            let text = format!(
                "# Drafted by `cairn suite suggest` from {} ({} rows); edit before relying on it.\n{yaml}",
                data.display(),
                p.rows
            );
            match output {
                Some(path) => {
                    write_file(&path, &text)?;
                    eprintln!(
                        "wrote {} expectations to {}",
                        suite["expectations"].as_array().map_or(0, Vec::len),
                        path.display()
                    );
                }
                None => print!("{text}"),
            }
            Ok(())
        }
    }
}

/// Splits `COLUMN=VALUE` from a plain `VALUE`.
fn per_column(arg: &str) -> (Option<&str>, &str) {
    match arg.rsplit_once('=') {
        Some((c, v)) => (Some(c), v),
        None => (None, arg),
    }
}

fn read_dataset(path: &Path) -> anyhow::Result<Dataset> {
    if Dataset::is_stored_reference(path) {
        Ok(Dataset::load(path)?)
    } else {
        Ok(Dataset::read(path)?)
    }
}

/// Runs `cairn drift`; returns the exit status.
pub fn run_drift(args: DriftArgs) -> anyhow::Result<i32> {
    let mut options = DriftOptions {
        drift_share: Some(args.drift_share),
        columns: args.columns.clone(),
        ..Default::default()
    };
    if !(0.0..=1.0).contains(&args.drift_share) {
        bail!(
            "--drift-share must be between 0 and 1, got {}",
            args.drift_share
        );
    }
    for m in &args.method {
        match per_column(m) {
            (Some(c), v) => {
                options
                    .per_column_method
                    .insert(c.to_owned(), Method::parse(v)?);
            }
            (None, v) => options.method = Some(Method::parse(v)?),
        }
    }
    for t in &args.threshold {
        let (column, v) = per_column(t);
        let value: f64 = v
            .parse()
            .ok()
            .filter(|x: &f64| x.is_finite())
            .with_context(|| format!("--threshold {t:?}: not a number"))?;
        match column {
            Some(c) => {
                options.per_column_threshold.insert(c.to_owned(), value);
            }
            None => options.threshold = Some(value),
        }
    }
    if let Some(out) = &args.output {
        match out.extension().and_then(|e| e.to_str()) {
            Some("json") | Some("html") => {}
            _ => bail!(
                "--output {}: the report is written as .json or .html",
                out.display()
            ),
        }
    }
    let reference = read_dataset(&args.reference)?;
    if let Some(path) = &args.save_reference {
        reference.save(path)?;
        eprintln!(
            "stored reference statistics of {} ({} rows) in {}",
            args.reference.display(),
            reference.rows,
            path.display()
        );
    }
    let Some(current_path) = &args.current else {
        return Ok(0);
    };
    let current = read_dataset(current_path)?;
    let report = compare(&reference, &current, &options)?;
    match &args.output {
        Some(out) if out.extension().and_then(|e| e.to_str()) == Some("html") => write_file(
            out,
            &drift_html(
                &report,
                &args.reference.display().to_string(),
                &current_path.display().to_string(),
            ),
        )?,
        Some(out) => write_file(out, &serde_json::to_string_pretty(&drift_json(&report))?)?,
        None => print_drift_table(&report),
    }
    print_drift_summary(&report);
    Ok(if args.fail_on_drift && report.dataset_drift {
        1
    } else {
        0
    })
}

/// The per-column drift table.
pub fn print_drift_table(report: &cairn_quality::drift::DriftReport) {
    println!(
        "{:<24} {:<5} {:<14} {:>14} {:>10}  drift",
        "column", "type", "method", "score", "threshold"
    );
    for c in &report.columns {
        println!(
            "{:<24} {:<5} {:<14} {:>14} {:>10}  {}",
            c.column,
            c.kind.name(),
            c.method.map(|m| m.name()).unwrap_or("not compared"),
            if c.score.is_finite() {
                format!("{:.6}", c.score)
            } else {
                "-".into()
            },
            if c.threshold.is_finite() {
                c.threshold.to_string()
            } else {
                "-".into()
            },
            if c.drifted { "DRIFT" } else { "no" }
        );
    }
}

/// The one-line dataset verdict.
pub fn print_drift_summary(report: &cairn_quality::drift::DriftReport) {
    println!(
        "{}: {} of {} columns drifted (share {:.3}, threshold {})",
        if report.dataset_drift {
            "dataset drift detected"
        } else {
            "no dataset drift"
        },
        report.drifted_columns,
        report.compared_columns,
        report.share,
        report.share_threshold
    );
}
