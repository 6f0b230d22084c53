//! `cairn data ...`, `cairn repro` and `cairn lineage`: argument parsing and printing around
//! `cairn-data` and the lineage service.
use crate::server::{open_state, ServerArgs};
use anyhow::{bail, Context};
use cairn_data::diff::Change;
use cairn_data::pipeline::{Outcome, ReproOptions};
use cairn_data::pointer::Kind;
use cairn_data::progress::Progress;
use cairn_data::remote::{Config, Remote};
use cairn_data::repo::{find_root, parse_version_ref, DataRepo, State};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `cairn data`.
#[derive(Args, Debug)]
pub struct DataArgs {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(Subcommand, Debug)]
enum DataCommand {
    /// Version files or folders: store their bytes, record a dataset version, write PATH.cairn.
    Add {
        /// Files or folders inside the project.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Dataset name (default: the file or folder name; one path only).
        #[arg(long)]
        name: Option<String>,
        /// A note kept with the version.
        #[arg(short, long, default_value = "")]
        message: String,
    },
    /// Compare every tracked path with the version its pointer file names.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Files added, removed and changed between two versions (rows and columns for tables).
    /// A and B: NAME@VERSION, a digest, a pointer file (its recorded version) or a path (its
    /// current bytes). With only A, compares it with the workspace.
    Diff {
        /// The older side.
        a: String,
        /// The newer side.
        b: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Recorded versions of one dataset, or of all.
    Log {
        /// Dataset name.
        name: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Restore recorded bytes: tracked paths as their pointer files say (all when none given),
    /// or NAME@VERSION (at its path, or --to PATH). Copies; never links into the store.
    Checkout {
        /// Tracked paths, pointer files, or one NAME@VERSION.
        targets: Vec<String>,
        /// With NAME@VERSION: where to put it.
        #[arg(long)]
        to: Option<PathBuf>,
        /// Overwrite bytes that are not in the store.
        #[arg(long)]
        force: bool,
    },
    /// Re-hash every object in the store; exit 1 if any is corrupt.
    Verify,
    /// Delete objects no recorded version, pointer file, pipeline lock or run cache needs.
    Gc {
        /// Only say what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
    /// Send the objects of tracked paths (or NAME@VERSION) to a remote.
    Push(TransferArgs),
    /// Fetch the objects of tracked paths (or NAME@VERSION) from a remote, then check them out.
    Pull(TransferArgs),
    /// Configure remotes (kept in .cairn/config.yaml, for git).
    Remote {
        #[command(subcommand)]
        command: RemoteCommand,
    },
}

#[derive(Args, Debug)]
struct TransferArgs {
    /// Tracked paths, pointer files or NAME@VERSION; all tracked paths when none.
    targets: Vec<String>,
    /// Remote name, or a URL (s3://bucket/prefix, /path).
    #[arg(short, long)]
    remote: Option<String>,
    /// Transfers at once.
    #[arg(short, long, default_value_t = 8)]
    jobs: usize,
}

#[derive(Subcommand, Debug)]
enum RemoteCommand {
    /// Add (or replace) a remote.
    Add {
        /// Name.
        name: String,
        /// s3://bucket/prefix, file:///path or /path.
        url: String,
        /// Use it when no remote is named.
        #[arg(long)]
        default: bool,
    },
    /// List remotes.
    List,
    /// Remove a remote.
    Remove {
        /// Name.
        name: String,
    },
}

/// `cairn repro`.
#[derive(Args, Debug)]
pub struct ReproArgs {
    /// Stages to bring up to date (with what they depend on); all when none.
    stages: Vec<String>,
    /// Stages run at once (default: the number of CPUs).
    #[arg(short, long)]
    jobs: Option<usize>,
    /// Run stages even when up to date.
    #[arg(short, long)]
    force: bool,
}

/// `cairn lineage`.
#[derive(Args, Debug)]
pub struct LineageArgs {
    /// `models:/NAME/VERSION` or `models:/NAME@ALIAS`.
    model: Option<String>,
    /// A dataset version, NAME@VERSION: list the runs and model versions that used it.
    #[arg(long, conflicts_with = "model")]
    dataset: Option<String>,
    /// Ask this server instead of the local home.
    #[arg(long, env = "MLFLOW_TRACKING_URI")]
    tracking_uri: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Progress in bytes on stderr when it is a terminal; nothing otherwise.
struct Bar(ProgressBar);

impl Bar {
    fn new(what: &str) -> Bar {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_string());
        Bar(bar)
    }
}

impl Progress for Bar {
    fn add_total(&self, bytes: u64) {
        self.0.inc_length(bytes);
    }
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
    fn phase(&self, name: &str) {
        self.0.set_message(name.to_string());
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// Bytes as people read them.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn plural(n: u64, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// Opens the project around the working directory, with the home's store.
pub fn open_repo() -> anyhow::Result<(DataRepo, PathBuf)> {
    let cwd = std::env::current_dir().context("no working directory")?;
    let root = find_root(&cwd);
    let home = crate::home_dir();
    let (state, _) = open_state(&ServerArgs::local(), &home)?;
    let home = std::fs::canonicalize(&home)?;
    let repo = DataRepo::open(&root, &home.join("data"), state.lineage.datasets().clone())?;
    Ok((repo, cwd))
}

/// The file of a dataset version: its object in the local store, the file's name, the record.
pub struct VersionFile {
    pub object: cairn_data::digest::Digest,
    pub file_name: String,
    pub record: cairn_core::model::DatasetVersion,
}

/// The file `name@version` holds (a file version), or its file `inner` (a folder version),
/// whose bytes must be in the local store.
pub fn version_file(
    repo: &DataRepo,
    name: &str,
    version: i64,
    inner: Option<&str>,
) -> anyhow::Result<VersionFile> {
    let record = repo
        .meta()
        .get_dataset_version(name, version)?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "dataset version {name}@{version} not found (cairn data log lists them)"
            )
        })?;
    let digest = cairn_data::digest::Digest::parse(&record.digest)
        .ok_or_else(|| anyhow::anyhow!("dataset version {name}@{version} has a bad digest"))?;
    let (object, file_name) = match (record.kind.as_str(), inner) {
        ("file", None) => (
            digest,
            record.path.rsplit('/').next().unwrap_or("data").to_string(),
        ),
        ("file", Some(_)) => anyhow::bail!("{name}@{version} is a file; drop the :PATH"),
        ("directory", None) => anyhow::bail!(
            "{name}@{version} is a folder; name the table in it: {name}@{version}:PATH"
        ),
        ("directory", Some(inner)) => {
            let manifest = cairn_data::manifest::Manifest::from_bytes(&repo.cas().read(&digest)?)?;
            let entry = manifest
                .files()
                .find(|e| e.path == inner)
                .ok_or_else(|| anyhow::anyhow!("{name}@{version} has no file {inner}"))?;
            let object = entry
                .digest
                .ok_or_else(|| anyhow::anyhow!("{name}@{version}: {inner} has no digest"))?;
            (
                object,
                inner.rsplit('/').next().unwrap_or(inner).to_string(),
            )
        }
        (kind, _) => anyhow::bail!("dataset version {name}@{version} is of unknown kind {kind}"),
    };
    if !repo.cas().contains(&object) {
        anyhow::bail!("{name}@{version}: its bytes are not in the local store (cairn data pull)");
    }
    Ok(VersionFile {
        object,
        file_name,
        record,
    })
}

/// The versions named by targets: tracked paths, pointer files or NAME@VERSION; all pointers
/// when there are none.
fn roots(
    repo: &DataRepo,
    cwd: &Path,
    targets: &[String],
) -> anyhow::Result<Vec<(Kind, cairn_data::digest::Digest)>> {
    if targets.is_empty() {
        return Ok(repo
            .pointers()?
            .into_iter()
            .map(|(_, p)| (p.kind, p.digest))
            .collect());
    }
    let mut out = Vec::new();
    for t in targets {
        if t.contains('@') && !Path::new(t).exists() {
            let (name, version) = parse_version_ref(t)?;
            let v = repo
                .meta()
                .get_dataset_version(&name, version)?
                .with_context(|| format!("dataset version {t} not found"))?;
            let kind = Kind::parse(&v.kind).context("unknown kind")?;
            let digest = cairn_data::digest::Digest::parse(&v.digest).context("bad digest")?;
            out.push((kind, digest));
            continue;
        }
        let (abs, _) = repo.resolve(cwd, Path::new(t))?;
        let file = if t.ends_with(cairn_data::pointer::SUFFIX) {
            abs
        } else {
            cairn_data::pointer::Pointer::file_for(&abs)
        };
        let p = cairn_data::pointer::Pointer::read(&file)
            .with_context(|| format!("{t} is not tracked (no {})", file.display()))?;
        out.push((p.kind, p.digest));
    }
    Ok(out)
}

fn state_word(s: State) -> &'static str {
    match s {
        State::Unchanged => "unchanged",
        State::Modified => "modified",
        State::Missing => "missing",
    }
}

/// Runs `cairn data ...`.
pub fn run(args: DataArgs) -> anyhow::Result<()> {
    if let DataCommand::Remote { command } = &args.command {
        let cwd = std::env::current_dir()?;
        let root = find_root(&cwd);
        let mut config = Config::load(&root)?;
        match command {
            RemoteCommand::Add { name, url, default } => {
                cairn_data::repo::check_dataset_name(name).context("remote name")?;
                Remote::open(name, url)?;
                config.remotes.insert(name.clone(), url.clone());
                if *default || config.remotes.len() == 1 {
                    config.default_remote = Some(name.clone());
                }
                config.save(&root)?;
                println!("remote {name} -> {url}");
            }
            RemoteCommand::List => {
                for (name, url) in &config.remotes {
                    let mark = if config.default_remote.as_deref() == Some(name) {
                        " (default)"
                    } else {
                        ""
                    };
                    println!("{name}\t{url}{mark}");
                }
            }
            RemoteCommand::Remove { name } => {
                if config.remotes.remove(name).is_none() {
                    bail!("no remote named {name}");
                }
                if config.default_remote.as_deref() == Some(name) {
                    config.default_remote = None;
                }
                config.save(&root)?;
                println!("removed remote {name}");
            }
        }
        return Ok(());
    }
    let (repo, cwd) = open_repo()?;
    match args.command {
        DataCommand::Add {
            paths,
            name,
            message,
        } => {
            if name.is_some() && paths.len() > 1 {
                bail!("--name names one dataset: give one path");
            }
            for path in &paths {
                let bar = Bar::new(&format!("adding {}", path.display()));
                let out = repo.add(&cwd, path, name.as_deref(), &message, &bar)?;
                drop(bar);
                let s = &out.snapshot;
                let what = format!(
                    "{}@{} (blake3 {}, {}, {}, {})",
                    out.version.name,
                    out.version.version,
                    &s.digest.to_hex()[..16],
                    plural(s.files, "file"),
                    human(s.size),
                    s.format
                );
                if out.created {
                    println!(
                        "added {} as {what}: {} new in the store ({}), {} hashed",
                        path.display(),
                        plural(s.new_objects, "object"),
                        human(s.new_bytes),
                        plural(s.hashed_files, "file")
                    );
                } else {
                    println!("{} unchanged: still {what}", path.display());
                }
                println!(
                    "wrote {}",
                    out.pointer_file
                        .strip_prefix(&cwd)
                        .unwrap_or(&out.pointer_file)
                        .display()
                );
            }
        }
        DataCommand::Status { json } => {
            let bar = Bar::new("hashing");
            let all = repo.status(&bar)?;
            drop(bar);
            if json {
                let items: Vec<Value> = all
                    .iter()
                    .map(|s| {
                        json!({
                            "path": s.path, "pointer": s.pointer, "state": state_word(s.state),
                            "digest": s.recorded.digest.to_hex(), "in_store": s.in_store,
                            "dataset": s.recorded.dataset, "version": s.recorded.version,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else if all.is_empty() {
                println!(
                    "no tracked data under {} (track some with `cairn data add PATH`)",
                    repo.root().display()
                );
            } else {
                for s in &all {
                    let version = match (&s.recorded.dataset, s.recorded.version) {
                        (Some(d), Some(v)) => format!("{d}@{v}"),
                        _ => s.recorded.digest.to_hex()[..16].to_string(),
                    };
                    let store = if s.in_store {
                        ""
                    } else {
                        "  (not in the local store: `cairn data pull`)"
                    };
                    println!("{:<10} {}  [{version}]{store}", state_word(s.state), s.path);
                }
            }
        }
        DataCommand::Diff { a, b, json } => {
            let b = match b {
                Some(b) => b,
                None => repo.default_other(&cwd, &a)?,
            };
            let (sa, sb) = (repo.side(&cwd, &a)?, repo.side(&cwd, &b)?);
            let d = repo.diff(&sa, &sb)?;
            print_diff(&d, json)?;
        }
        DataCommand::Log { name, json } => {
            let versions = repo.meta().list_dataset_versions(name.as_deref())?;
            if json {
                let v: Vec<Value> = versions
                    .iter()
                    .map(cairn_api::lineage::dataset_version)
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if versions.is_empty() {
                println!("no dataset versions recorded");
            } else {
                for v in &versions {
                    println!(
                        "{}@{}  {}  {} {}, {}, {}  {}  {} {}",
                        v.name,
                        v.version,
                        &v.digest[..16.min(v.digest.len())],
                        v.files,
                        if v.files == 1 { "file" } else { "files" },
                        human(v.size as u64),
                        v.format,
                        v.path,
                        crate::data::when(v.creation_time),
                        v.message
                    );
                }
            }
        }
        DataCommand::Checkout { targets, to, force } => {
            let bar = Bar::new("checking out");
            let version_ref = match targets.as_slice() {
                [one] if one.contains('@') && !Path::new(one).exists() => {
                    Some(parse_version_ref(one)?)
                }
                _ => None,
            };
            let done = match version_ref {
                Some((name, version)) => {
                    vec![repo.checkout_version(&cwd, &name, version, to.as_deref(), force, &bar)?]
                }
                None => {
                    if to.is_some() {
                        bail!("--to goes with one NAME@VERSION");
                    }
                    let paths: Vec<PathBuf> = targets.iter().map(PathBuf::from).collect();
                    repo.checkout(&cwd, &paths, force, &bar)?
                }
            };
            drop(bar);
            for (path, r) in done {
                println!(
                    "{path}: {} written, {} already right, {} removed",
                    plural(r.written, "file"),
                    r.unchanged,
                    r.removed
                );
            }
        }
        DataCommand::Verify => {
            let bar = Bar::new("verifying");
            let report = repo.verify(&bar)?;
            drop(bar);
            println!(
                "{} intact ({})",
                plural(report.objects, "object"),
                human(report.bytes)
            );
            for m in &report.missing {
                println!(
                    "missing: {m} (needed by a recorded version; `cairn data pull` fetches it)"
                );
            }
            if !report.corrupt.is_empty() {
                for c in &report.corrupt {
                    eprintln!("corrupt: {c}");
                }
                bail!("{} corrupt", plural(report.corrupt.len() as u64, "object"));
            }
        }
        DataCommand::Gc { dry_run } => {
            let r = repo.gc(dry_run)?;
            let verb = if dry_run { "would remove" } else { "removed" };
            println!(
                "{verb} {} ({}), kept {}; {} temp files of interrupted writes removed",
                plural(r.removed, "object"),
                human(r.removed_bytes),
                r.kept,
                r.temp_files
            );
        }
        DataCommand::Push(t) => transfer(&repo, &cwd, &t, Direction::Push)?,
        DataCommand::Pull(t) => {
            transfer(&repo, &cwd, &t, Direction::Pull)?;
            if t.targets.iter().all(|x| !x.contains('@')) {
                let paths: Vec<PathBuf> = t.targets.iter().map(PathBuf::from).collect();
                for (path, r) in
                    repo.checkout(&cwd, &paths, false, &cairn_data::progress::NoProgress)?
                {
                    println!(
                        "{path}: {} written, {} already right",
                        plural(r.written, "file"),
                        r.unchanged
                    );
                }
            }
        }
        DataCommand::Remote { .. } => unreachable!("handled above"),
    }
    Ok(())
}

enum Direction {
    Push,
    Pull,
}

/// `cairn data push` / `pull`: resolve the remote and the versions, move the missing objects.
fn transfer(
    repo: &DataRepo,
    cwd: &Path,
    t: &TransferArgs,
    direction: Direction,
) -> anyhow::Result<()> {
    let (name, url) = Config::load(repo.root())?.resolve(t.remote.as_deref())?;
    let remote = Remote::open(&name, &url)?;
    let roots = roots(repo, cwd, &t.targets)?;
    let bar = Bar::new(&format!(
        "{} {name}",
        match direction {
            Direction::Push => "pushing to",
            Direction::Pull => "pulling from",
        }
    ));
    let r = match direction {
        Direction::Push => repo.push(&remote, &roots, t.jobs, &bar)?,
        Direction::Pull => repo.pull(&remote, &roots, t.jobs, &bar)?,
    };
    drop(bar);
    let moved = format!("{} ({})", plural(r.objects, "object"), human(r.bytes));
    match direction {
        Direction::Push => println!("pushed {moved} to {name}; {} already there", r.skipped),
        Direction::Pull => println!("pulled {moved} from {name}; {} already here", r.skipped),
    }
    Ok(())
}

/// A timestamp (ms) as its UTC date and the seconds into that day.
fn utc(ms: i64) -> (String, i64) {
    let secs = ms.div_euclid(1000);
    (
        cairn_data::columns::date(secs.div_euclid(86_400)),
        secs.rem_euclid(86_400),
    )
}

/// A timestamp (ms) as UTC date and time, to the minute.
pub fn when(ms: i64) -> String {
    let (date, s) = utc(ms);
    format!("{date} {:02}:{:02}", s / 3600, s % 3600 / 60)
}

/// A timestamp (ms) as UTC date and time, to the second.
pub fn when_to_the_second(ms: i64) -> String {
    let (date, s) = utc(ms);
    format!("{date} {:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}

fn print_diff(d: &cairn_data::diff::Diff, as_json: bool) -> anyhow::Result<()> {
    if as_json {
        let changes: Vec<Value> = d
            .changes
            .iter()
            .map(|c| {
                json!({
                    "path": c.path,
                    "change": match c.change { Change::Added => "added", Change::Removed => "removed", Change::Modified => "modified" },
                    "size_a": c.size_a, "size_b": c.size_b,
                    "table": c.table.as_ref().map(|t| json!({
                        "rows_a": t.rows_a, "rows_b": t.rows_b,
                        "rows_added": t.rows_added, "rows_removed": t.rows_removed,
                        "columns_added": t.columns_added, "columns_removed": t.columns_removed,
                        "type_changes": t.type_changes.iter().map(|(c, a, b)| json!({"column": c, "from": a, "to": b})).collect::<Vec<_>>(),
                    })),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"a": d.a, "b": d.b, "changes": changes, "unchanged": d.unchanged})
            )?
        );
        return Ok(());
    }
    println!("{} -> {}", d.a, d.b);
    if d.changes.is_empty() {
        println!("no changes ({} identical)", plural(d.unchanged, "file"));
        return Ok(());
    }
    for c in &d.changes {
        let path = if c.path.is_empty() {
            "(file)"
        } else {
            c.path.as_str()
        };
        match c.change {
            Change::Added => println!("  added     {path}  ({})", human(c.size_b.unwrap_or(0))),
            Change::Removed => println!("  removed   {path}  ({})", human(c.size_a.unwrap_or(0))),
            Change::Modified => {
                println!(
                    "  modified  {path}  ({} -> {})",
                    human(c.size_a.unwrap_or(0)),
                    human(c.size_b.unwrap_or(0))
                );
                if let Some(t) = &c.table {
                    println!(
                        "            rows: {} -> {} (+{} added, -{} removed)",
                        t.rows_a, t.rows_b, t.rows_added, t.rows_removed
                    );
                    for col in &t.columns_added {
                        println!("            column added: {col}");
                    }
                    for col in &t.columns_removed {
                        println!("            column removed: {col}");
                    }
                    for (col, a, b) in &t.type_changes {
                        println!("            column {col}: {a} -> {b}");
                    }
                }
            }
        }
    }
    println!(
        "{} changed, {} unchanged",
        plural(d.changes.len() as u64, "file"),
        d.unchanged
    );
    Ok(())
}

/// Runs `cairn repro`; the process exit status is the failed command's.
pub fn repro(args: ReproArgs) -> anyhow::Result<i32> {
    let (repo, _) = open_repo()?;
    let jobs = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    let options = ReproOptions {
        targets: args.stages,
        jobs,
        force: args.force,
    };
    let print = |name: &str, report: Option<&cairn_data::pipeline::StageReport>| {
        let Some(r) = report else {
            println!("stage {name}: checking");
            return;
        };
        match &r.outcome {
            Outcome::Unchanged => println!("stage {name}: unchanged, skipped"),
            Outcome::Restored => {
                println!("stage {name}: inputs seen before, outputs restored from the cache")
            }
            Outcome::Ran => {
                for line in r.output.lines() {
                    println!("  {name} | {line}");
                }
                println!("stage {name}: ran in {:.1} s", r.duration.as_secs_f64());
            }
            Outcome::Failed(status) => {
                for line in r.output.lines() {
                    eprintln!("  {name} | {line}");
                }
                match status {
                    Some(code) => eprintln!("stage {name}: FAILED with exit status {code}; its previous outputs are kept"),
                    None => eprintln!("stage {name}: FAILED; its previous outputs are kept"),
                }
            }
            Outcome::Blocked => eprintln!("stage {name}: not run, a stage it depends on failed"),
        }
    };
    let reports = cairn_data::pipeline::repro(&repo, &options, &print)?;
    let failed = reports.iter().find_map(|r| match r.outcome {
        Outcome::Failed(status) => Some(status.unwrap_or(1)),
        _ => None,
    });
    match failed {
        Some(code) => Ok(if code == 0 { 1 } else { code }),
        None => {
            println!(
                "pipeline up to date; wrote {}",
                cairn_data::pipeline::LOCK_FILE
            );
            Ok(0)
        }
    }
}

fn lineage_json(args: &LineageArgs) -> anyhow::Result<Value> {
    let (path, query): (&str, Vec<(String, String)>) = if let Some(d) = &args.dataset {
        let (name, version) = parse_version_ref(d)?;
        (
            "lineage/dataset",
            vec![
                ("name".into(), name),
                ("version".into(), version.to_string()),
            ],
        )
    } else if let Some(m) = &args.model {
        let rest = m
            .strip_prefix("models:/")
            .with_context(|| format!("{m} is not models:/NAME/VERSION or models:/NAME@ALIAS"))?;
        let (name, version) = match rest.rsplit_once('@') {
            Some((n, a)) => (n, a),
            None => rest.rsplit_once('/').with_context(|| {
                format!("{m}: give a version, models:/NAME/VERSION or models:/NAME@ALIAS")
            })?,
        };
        (
            "lineage/model-version",
            vec![
                ("name".into(), name.to_string()),
                ("version".into(), version.to_string()),
            ],
        )
    } else {
        bail!("name a model version (models:/NAME/VERSION) or --dataset NAME@VERSION");
    };
    if let Some(base) = args
        .tracking_uri
        .as_deref()
        .filter(|u| u.starts_with("http"))
    {
        let client = crate::client::Client::new(base);
        let q: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", crate::client::encode_query(v)))
            .collect();
        return client.get(&format!("/api/2.0/cairn/{path}?{}", q.join("&")));
    }
    let home = crate::home_dir();
    let (state, _) = open_state(&ServerArgs::local(), &home)?;
    let lineage = Arc::new(state.lineage);
    let version = &query[1].1;
    Ok(if path == "lineage/dataset" {
        let number: i64 = version.parse()?;
        cairn_api::lineage::dataset_lineage(&lineage.of_dataset_version(&query[0].1, number)?)
    } else {
        cairn_api::lineage::model_lineage(&lineage.of_model_version(&query[0].1, version)?)
    })
}

fn print_dataset_version(v: &Value, indent: &str) {
    println!(
        "{indent}dataset version {}@{}  blake3 {}",
        v["name"].as_str().unwrap_or(""),
        v["version"],
        v["digest"].as_str().unwrap_or("")
    );
    let cont = " ".repeat(indent.chars().count());
    println!(
        "{cont}  {} {}, {}, {}, added {} by {} from {}{}",
        v["files"],
        if v["files"] == 1 { "file" } else { "files" },
        human(v["size"].as_u64().unwrap_or(0)),
        v["format"].as_str().unwrap_or(""),
        when(v["creation_time"].as_i64().unwrap_or(0)),
        v["user_id"].as_str().unwrap_or(""),
        v["path"].as_str().unwrap_or(""),
        match v["message"].as_str() {
            Some(m) if !m.is_empty() => format!(": {m}"),
            _ => String::new(),
        }
    );
}

fn print_run(run: &Value, indent: &str) {
    println!(
        "{indent}run {} \"{}\" (experiment {})",
        run["run_id"].as_str().unwrap_or(""),
        run["run_name"].as_str().unwrap_or(""),
        run["experiment_id"].as_str().unwrap_or("")
    );
    let cont = " ".repeat(indent.chars().count());
    match run["git_commit"].as_str() {
        Some(c) => println!(
            "{cont}  code commit {c}{}",
            run["source_name"]
                .as_str()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default()
        ),
        None => println!("{cont}  code commit not recorded (tag mlflow.source.git.commit)"),
    }
}

/// Runs `cairn lineage`.
pub fn lineage(args: LineageArgs) -> anyhow::Result<()> {
    let v = lineage_json(&args)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_lineage(&v);
    }
    Ok(())
}

/// Prints lineage JSON (the server's or the home's) as a tree.
pub fn print_lineage(v: &Value) {
    if let Some(mv) = v.get("model_version") {
        let aliases = mv["aliases"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        println!(
            "model version {}/{}{}  source {}",
            mv["name"].as_str().unwrap_or(""),
            mv["version"].as_str().unwrap_or(""),
            if aliases.is_empty() {
                String::new()
            } else {
                format!(" (aliases: {aliases})")
            },
            mv["source"].as_str().unwrap_or("")
        );
        let Some(run) = v.get("run").filter(|r| !r.is_null()) else {
            println!("  produced by no recorded run");
            return;
        };
        print_run(run, "  <- ");
        let inputs = run["inputs"].as_array().cloned().unwrap_or_default();
        if inputs.is_empty() {
            println!("       no dataset inputs logged (mlflow.log_input / runs/log-inputs)");
        }
        for i in inputs {
            println!(
                "       <- input {} digest {} ({}){}",
                i["name"].as_str().unwrap_or(""),
                i["digest"].as_str().unwrap_or(""),
                i["source_type"].as_str().unwrap_or(""),
                i["context"]
                    .as_str()
                    .map(|c| format!(", context {c}"))
                    .unwrap_or_default()
            );
            let versions = i["dataset_versions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if versions.is_empty() {
                println!("          (no Cairn dataset version has this digest)");
            }
            for dv in versions {
                print_dataset_version(&dv, "          = ");
            }
        }
    } else if let Some(dv) = v.get("dataset_version") {
        print_dataset_version(dv, "");
        let runs = v["runs"].as_array().cloned().unwrap_or_default();
        if runs.is_empty() {
            println!("  used by no run (runs log it with its digest as a dataset input)");
        }
        for run in &runs {
            print_run(run, "  -> ");
        }
        for mv in v["model_versions"].as_array().cloned().unwrap_or_default() {
            println!(
                "  -> model version {}/{} (run {})",
                mv["name"].as_str().unwrap_or(""),
                mv["version"].as_str().unwrap_or(""),
                mv["run_id"].as_str().unwrap_or("")
            );
        }
        for check in v["validations"].as_array().cloned().unwrap_or_default() {
            let path = check["path"].as_str().unwrap_or("");
            println!(
                "  validated{} against suite {}: {} ({} of {} expectations met) {}",
                if path.is_empty() {
                    String::new()
                } else {
                    format!(" {path}")
                },
                check["suite"].as_str().unwrap_or(""),
                if check["success"] == true {
                    "passed"
                } else {
                    "FAILED"
                },
                check["successful_expectations"],
                check["evaluated_expectations"],
                when(check["creation_time"].as_i64().unwrap_or(0)),
            );
        }
    }
}
