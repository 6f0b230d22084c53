//! `cairn run` and `cairn rerun`: any training command, script or notebook becomes a tracked run.
//!
//! The run is created before the command starts and handed to it through `MLFLOW_TRACKING_URI`
//! and `MLFLOW_RUN_ID`, so the command's own MLflow calls land in it. Around the command Cairn
//! records what MLflow leaves to the user: the command line, the git commit and whether the tree
//! was dirty, the Python packages, the Cairn dataset versions in the project, the output, the wall
//! time, the peak memory and the exit status. `rerun` reads that record back.
use crate::client::{proxied_root, Client};
use crate::server::{self, ServerArgs};
use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The record of how a run was made, kept as the run's `cairn/run.json` artifact.
const RECORD_ARTIFACT: &str = "cairn/run.json";
/// MLflow's limit on a tag value; the full command line is in [`RECORD_ARTIFACT`].
const TAG_VALUE_LIMIT: usize = 5000;

/// Where to record: shared by `run` and `rerun`.
#[derive(clap::Args, Debug, Clone)]
pub struct TrackingArgs {
    /// Tracking server to record the run on. Default: $MLFLOW_TRACKING_URI when it is an
    /// http(s) URL, else a server started on the Cairn home for as long as the command runs.
    #[arg(long, value_name = "URL")]
    tracking_uri: Option<String>,
}

#[derive(clap::Args, Debug)]
#[command(trailing_var_arg = true)]
pub struct RunArgs {
    /// Experiment to record the run in (created when missing). Default: $MLFLOW_EXPERIMENT_NAME,
    /// else the Default experiment.
    #[arg(long, short = 'e')]
    experiment: Option<String>,
    /// Name of the run.
    #[arg(long)]
    run_name: Option<String>,
    #[command(flatten)]
    tracking: TrackingArgs,
    /// The command and its arguments (after `--`), or a notebook: `NOTEBOOK.ipynb [-p NAME
    /// VALUE]...` runs it with papermill, its parameters as the run's params.
    #[arg(required = true, allow_hyphen_values = true, value_name = "COMMAND")]
    command: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct RerunArgs {
    /// The run to repeat.
    run_id: String,
    #[command(flatten)]
    tracking: TrackingArgs,
    /// Restore the run's dataset versions even over local changes to the data.
    #[arg(long)]
    force: bool,
}

/// What a run is asked to do.
struct Spec {
    argv: Vec<String>,
    cwd: PathBuf,
    experiment_id: String,
    run_name: Option<String>,
    extra_tags: Vec<(String, String)>,
}

/// What came of it.
struct Outcome {
    run_id: String,
    code: i32,
}

/// The tracking server for the command's lifetime: one the user named, or one on the home.
pub(crate) struct Tracking {
    base: String,
    embedded: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    )>,
}

impl Tracking {
    /// The server's base URL.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// Whether the server is one started on the home for this command.
    pub(crate) fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    pub(crate) async fn open(args: &TrackingArgs) -> anyhow::Result<Tracking> {
        let named = args
            .tracking_uri
            .clone()
            .or_else(|| std::env::var("MLFLOW_TRACKING_URI").ok())
            .filter(|u| !u.is_empty());
        if let Some(uri) = named {
            if uri.starts_with("http://") || uri.starts_with("https://") {
                return Ok(Tracking {
                    base: uri.trim_end_matches('/').to_string(),
                    embedded: None,
                });
            }
            if args.tracking_uri.is_some() {
                bail!("--tracking-uri {uri}: only http:// and https:// servers are supported");
            }
            eprintln!(
                "MLFLOW_TRACKING_URI={uri} is not an http(s) server; recording on the Cairn home instead"
            );
        }
        let home = crate::home_dir();
        let built = server::build_blocking(ServerArgs::local(), home).await?;
        let listener = server::bind("127.0.0.1", 0).await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let http = server::HttpArgs::default();
        let limits = http.limits()?;
        let router = http.protect(built.router, "127.0.0.1");
        let monitoring = built.monitoring;
        // Only `stop` ends this server: Ctrl-C is the wrapped command's to handle, and the run
        // must still be recorded after it.
        let task = tokio::spawn(async move {
            cairn_api::listen::serve(listener, router, limits, async {
                let _ = stopped.await;
            })
            .await
            .context("embedded server failed")?;
            tokio::task::spawn_blocking(move || monitoring.flush()).await?;
            Ok(())
        });
        Ok(Tracking {
            base,
            embedded: Some((stop, task)),
        })
    }

    pub(crate) async fn close(self) -> anyhow::Result<()> {
        if let Some((stop, task)) = self.embedded {
            let _ = stop.send(());
            task.await??;
        }
        Ok(())
    }
}

/// Signals that arrived while the command ran: Ctrl-C reaches the command from the terminal
/// itself; SIGTERM is passed on to it.
struct Signals {
    interrupted: Arc<AtomicBool>,
    child_pid: Arc<AtomicU64>,
}

impl Signals {
    fn watch() -> Signals {
        let signals = Signals {
            interrupted: Arc::new(AtomicBool::new(false)),
            child_pid: Arc::new(AtomicU64::new(0)),
        };
        let interrupted = signals.interrupted.clone();
        tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                interrupted.store(true, Ordering::SeqCst);
            }
        });
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let (interrupted, pid) = (signals.interrupted.clone(), signals.child_pid.clone());
            if let Ok(mut term) = signal(SignalKind::terminate()) {
                tokio::spawn(async move {
                    while term.recv().await.is_some() {
                        interrupted.store(true, Ordering::SeqCst);
                        let pid = pid.load(Ordering::SeqCst);
                        if let Ok(pid) = i32::try_from(pid) {
                            if pid > 0 {
                                let _ = nix::sys::signal::kill(
                                    nix::unistd::Pid::from_raw(pid),
                                    nix::sys::signal::Signal::SIGTERM,
                                );
                            }
                        }
                    }
                });
            }
        }
        signals
    }
}

pub async fn run(args: RunArgs) -> anyhow::Result<i32> {
    let cwd = std::env::current_dir().context("no working directory")?;
    let tracking = Tracking::open(&args.tracking).await?;
    let signals = Signals::watch();
    let client = Client::from_env(&tracking.base);
    let experiment = args
        .experiment
        .clone()
        .or_else(|| std::env::var("MLFLOW_EXPERIMENT_NAME").ok());
    let outcome = tokio::task::spawn_blocking(move || -> anyhow::Result<Outcome> {
        let experiment_id = experiment_id(&client, experiment.as_deref())?;
        let spec = Spec {
            argv: args.command,
            cwd,
            experiment_id,
            run_name: args.run_name,
            extra_tags: Vec::new(),
        };
        execute(&client, &spec, &signals)
    })
    .await?;
    tracking.close().await?;
    let outcome = outcome?;
    eprintln!("cairn run: recorded run {}", outcome.run_id);
    Ok(outcome.code)
}

pub async fn rerun(args: RerunArgs) -> anyhow::Result<i32> {
    let tracking = Tracking::open(&args.tracking).await?;
    let signals = Signals::watch();
    let client = Client::from_env(&tracking.base);
    let force = args.force;
    let original = args.run_id.clone();
    let outcome =
        tokio::task::spawn_blocking(move || -> anyhow::Result<(Outcome, Value, Value)> {
            let before = get_run(&client, &original)?;
            let root = proxied_root(before["info"]["artifact_uri"].as_str().unwrap_or_default());
            let record: Value = client
                .get_artifact(&format!("{root}/{RECORD_ARTIFACT}"))
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                .ok_or_else(|| {
                    anyhow!(
                        "run {original} was not made by `cairn run` (it has no {RECORD_ARTIFACT})"
                    )
                })?;
            let argv: Vec<String> = record["argv"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            if argv.is_empty() {
                bail!("run {original}: {RECORD_ARTIFACT} names no command");
            }
            let recorded_cwd = PathBuf::from(record["cwd"].as_str().unwrap_or("."));
            let cwd = if recorded_cwd.is_dir() {
                recorded_cwd
            } else {
                let here = std::env::current_dir()?;
                eprintln!(
                    "cairn rerun: {} no longer exists; running in {}",
                    recorded_cwd.display(),
                    here.display()
                );
                here
            };
            warn_about_code(&record["git"], &git_state(&cwd));
            restore_datasets(&record["datasets"], &cwd, force)?;
            let spec = Spec {
                argv,
                cwd,
                experiment_id: before["info"]["experiment_id"]
                    .as_str()
                    .unwrap_or("0")
                    .to_string(),
                run_name: before["info"]["run_name"]
                    .as_str()
                    .map(|n| format!("{n}-rerun")),
                extra_tags: vec![("cairn.rerun_of".into(), original.clone())],
            };
            let outcome = execute(&client, &spec, &signals)?;
            let after = get_run(&client, &outcome.run_id)?;
            Ok((outcome, before, after))
        })
        .await?;
    tracking.close().await?;
    let (outcome, before, after) = outcome?;
    print_metric_differences(&before, &after);
    eprintln!(
        "cairn rerun: recorded run {} (a rerun of {})",
        outcome.run_id, args.run_id
    );
    Ok(outcome.code)
}

fn get_run(client: &Client, run_id: &str) -> anyhow::Result<Value> {
    let reply = client.get(&format!("/api/2.0/mlflow/runs/get?run_id={run_id}"))?;
    Ok(reply["run"].clone())
}

/// The id of `name` (created when missing), or of the Default experiment.
pub(crate) fn experiment_id(client: &Client, name: Option<&str>) -> anyhow::Result<String> {
    let Some(name) = name else {
        return Ok("0".into());
    };
    let encoded = crate::client::encode_query(name);
    if let Ok(found) = client.get(&format!(
        "/api/2.0/mlflow/experiments/get-by-name?experiment_name={encoded}"
    )) {
        if let Some(id) = found["experiment"]["experiment_id"].as_str() {
            return Ok(id.to_string());
        }
    }
    let created = client.post("experiments/create", &json!({ "name": name }))?;
    created["experiment_id"]
        .as_str()
        .map(String::from)
        .context("experiments/create gave no id")
}

/// How the command is run: directly, or a notebook through papermill.
enum Launch {
    Command {
        python: Option<PathBuf>,
    },
    Notebook {
        papermill: PathBuf,
        python: Option<PathBuf>,
        output: PathBuf,
    },
}

fn execute(client: &Client, spec: &Spec, signals: &Signals) -> anyhow::Result<Outcome> {
    let scratch = tempfile::Builder::new().prefix("cairn-run-").tempdir()?;
    let first = spec.argv.first().context("no command given")?;
    let is_notebook = first.ends_with(".ipynb");
    let launch = if is_notebook {
        if !spec.cwd.join(first).is_file() {
            bail!("notebook {first} not found");
        }
        let papermill = find_program("papermill", &spec.cwd).ok_or_else(|| {
            anyhow!(
                "running a notebook needs papermill, which is not on PATH: \
                 pip install papermill ipykernel"
            )
        })?;
        let python = python_of(&papermill, &spec.cwd);
        let stem = Path::new(first)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "notebook.ipynb".into());
        Launch::Notebook {
            papermill,
            python,
            output: scratch.path().join(stem),
        }
    } else {
        let program =
            find_program(first, &spec.cwd).ok_or_else(|| anyhow!("command not found: {first}"))?;
        Launch::Command {
            python: python_of(&program, &spec.cwd),
        }
    };
    let python = match &launch {
        Launch::Command { python } | Launch::Notebook { python, .. } => python.clone(),
    };
    let git = git_state(&spec.cwd);
    let datasets = dataset_versions(&spec.cwd);
    let shown = shell_words(&spec.argv);

    let mut tags: Vec<(String, String)> = vec![
        ("mlflow.source.name".into(), source_name(&spec.argv)),
        (
            "mlflow.source.type".into(),
            if is_notebook { "NOTEBOOK" } else { "LOCAL" }.into(),
        ),
        (
            "cairn.run.command".into(),
            truncate(&shown, TAG_VALUE_LIMIT),
        ),
    ];
    if let Ok(user) = std::env::var("USER") {
        tags.push(("mlflow.user".into(), user));
    }
    if let Some(commit) = git["commit"].as_str() {
        tags.push(("mlflow.source.git.commit".into(), commit.into()));
        tags.push((
            "cairn.git.dirty".into(),
            git["dirty"].as_bool().unwrap_or(false).to_string(),
        ));
    }
    if let Some(branch) = git["branch"].as_str() {
        tags.push(("mlflow.source.git.branch".into(), branch.into()));
    }
    if let Some(url) = git["remote"].as_str() {
        tags.push(("mlflow.source.git.repoURL".into(), url.into()));
    }
    tags.extend(spec.extra_tags.iter().cloned());
    let mut create = json!({
        "experiment_id": spec.experiment_id,
        "start_time": cairn_core::now_millis(),
        "tags": tags.iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>(),
    });
    if let Some(name) = &spec.run_name {
        create["run_name"] = json!(name);
    }
    let created = client.post("runs/create", &create)?;
    let (run_id, root) = crate::client::created_run(&created)?;
    eprintln!(
        "cairn run: run {run_id} in experiment {}: {shown}",
        spec.experiment_id
    );

    let record = json!({
        "argv": spec.argv,
        "cwd": spec.cwd.display().to_string(),
        "git": git,
        "datasets": datasets,
    });
    client.put_artifact(
        &format!("{root}/{RECORD_ARTIFACT}"),
        serde_json::to_string_pretty(&record)?.as_bytes(),
    )?;
    log_dataset_inputs(client, &run_id, &datasets)?;
    if let Some(python) = &python {
        match python_packages(python, &spec.cwd) {
            Ok((version, packages)) => {
                client.put_artifact(
                    &format!("{root}/cairn/requirements.txt"),
                    packages.as_bytes(),
                )?;
                set_tag(client, &run_id, "cairn.python.version", &version)?;
            }
            Err(e) => eprintln!("cairn run: could not list the Python packages: {e:#}"),
        }
    }

    let mut command = match &launch {
        Launch::Command { .. } => {
            let mut c = Command::new(&spec.argv[0]);
            c.args(&spec.argv[1..]);
            c
        }
        Launch::Notebook {
            papermill, output, ..
        } => {
            let mut c = Command::new(papermill);
            c.arg(&spec.argv[0]).arg(output).args(&spec.argv[1..]);
            c
        }
    };
    command
        .current_dir(&spec.cwd)
        .env("MLFLOW_TRACKING_URI", client.base())
        .env("MLFLOW_RUN_ID", &run_id)
        .env("MLFLOW_EXPERIMENT_ID", &spec.experiment_id)
        .env_remove("MLFLOW_EXPERIMENT_NAME")
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let peak_before = children_peak_rss_kib();
    let started = Instant::now();
    let watched = run_teed(command, scratch.path(), signals);
    let wall = started.elapsed();
    let (status, sampled_kib) = match watched {
        Ok(w) => w,
        Err(e) => {
            update_status(client, &run_id, "FAILED")?;
            return Err(e.context(format!("cannot run {}", spec.argv[0])));
        }
    };
    let peak_after = children_peak_rss_kib();
    // getrusage covers the command and whatever it waited for, exactly; but it also covers the
    // probes Cairn ran before it (git, python), and a child spawned with vfork is charged the
    // peak of Cairn's own memory, which it shared until exec. Only a figure above both came from
    // the command itself; below that, the samples from /proc are the answer.
    let own_peak = sampled_peak_kib(std::process::id());
    let peak_kib = match (peak_before, peak_after) {
        (Some(before), Some(after)) if after > before.max(own_peak) => after,
        _ => sampled_kib,
    };

    for (name, file) in [("stdout", "stdout.txt"), ("stderr", "stderr.txt")] {
        let path = scratch.path().join(file);
        if let Err(e) = client.put_artifact_file(&format!("{root}/logs/{file}"), &path) {
            eprintln!("cairn run: could not upload the command's {name}: {e:#}");
        }
    }
    if let Launch::Notebook { output, .. } = &launch {
        if output.is_file() {
            let name = output
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            client.put_artifact_file(&format!("{root}/notebook/{name}"), output)?;
            log_notebook_parameters(client, &run_id, output, &spec.argv[1..])?;
        }
    }
    let code = exit_code(&status);
    let now = cairn_core::now_millis();
    let mut metrics = vec![
        json!({"key": "system/wall_time_seconds", "value": wall.as_secs_f64(), "timestamp": now, "step": 0}),
    ];
    // A command that exits before the first sample has no measured peak.
    if peak_kib > 0 {
        metrics.push(json!({"key": "system/peak_memory_megabytes", "value": peak_kib as f64 / 1024.0, "timestamp": now, "step": 0}));
    }
    client.post(
        "runs/log-batch",
        &json!({"run_id": run_id, "metrics": metrics,
                "tags": [{"key": "cairn.run.exit_code", "value": code.to_string()}]}),
    )?;
    let interrupted = signals.interrupted.load(Ordering::SeqCst);
    let final_status = if code == 0 {
        "FINISHED"
    } else if interrupted || killed_by_signal(&status) {
        "KILLED"
    } else {
        "FAILED"
    };
    update_status(client, &run_id, final_status)?;
    let memory = if peak_kib > 0 {
        format!(", peak memory {:.1} MB", peak_kib as f64 / 1024.0)
    } else {
        String::new()
    };
    eprintln!(
        "cairn run: {} ({final_status}, exit {code}) in {:.1} s{memory}",
        spec.argv[0],
        wall.as_secs_f64(),
    );
    Ok(Outcome { run_id, code })
}

fn update_status(client: &Client, run_id: &str, status: &str) -> anyhow::Result<()> {
    client.post(
        "runs/update",
        &json!({"run_id": run_id, "status": status, "end_time": cairn_core::now_millis()}),
    )?;
    Ok(())
}

fn set_tag(client: &Client, run_id: &str, key: &str, value: &str) -> anyhow::Result<()> {
    client.post(
        "runs/set-tag",
        &json!({"run_id": run_id, "key": key, "value": value}),
    )?;
    Ok(())
}

/// Runs `command` with its output shown live and written to `stdout.txt` and `stderr.txt` in
/// `dir`. Returns its status and the largest resident size sampled from /proc (KiB; 0 where
/// there is no /proc).
fn run_teed(
    mut command: Command,
    dir: &Path,
    signals: &Signals,
) -> anyhow::Result<(ExitStatus, u64)> {
    let mut child = command.spawn()?;
    signals
        .child_pid
        .store(u64::from(child.id()), Ordering::SeqCst);
    let out = child.stdout.take().context("no stdout pipe")?;
    let err = child.stderr.take().context("no stderr pipe")?;
    let out_file = std::fs::File::create(dir.join("stdout.txt"))?;
    let err_file = std::fs::File::create(dir.join("stderr.txt"))?;
    let tee_out = std::thread::spawn(move || tee(out, out_file, std::io::stdout()));
    let tee_err = std::thread::spawn(move || tee(err, err_file, std::io::stderr()));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (done, pid) = (done.clone(), child.id());
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(Ordering::SeqCst) {
                peak = peak.max(sampled_peak_kib(pid));
                std::thread::sleep(Duration::from_millis(100));
            }
            peak
        })
    };
    let status = child.wait()?;
    signals.child_pid.store(0, Ordering::SeqCst);
    done.store(true, Ordering::SeqCst);
    let peak = sampler.join().unwrap_or(0);
    // The pipes close when the command and everything it started have exited.
    for tee in [tee_out, tee_err] {
        match tee.join() {
            Ok(result) => result?,
            Err(_) => bail!("copying the command's output failed"),
        }
    }
    Ok((status, peak))
}

/// Copies `from` to the file and to the terminal stream until the pipe closes.
fn tee(mut from: impl Read, mut file: std::fs::File, shown: impl Write) -> anyhow::Result<()> {
    let mut shown = shown;
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        file.write_all(&buffer[..n])?;
        // A closed terminal must not stop the recording.
        let _ = shown.write_all(&buffer[..n]).and_then(|_| shown.flush());
    }
    file.sync_all()?;
    Ok(())
}

/// The process's peak resident size so far (`VmHWM`), KiB.
fn sampled_peak_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The largest resident size of any child this process has waited for, KiB.
fn children_peak_rss_kib() -> Option<u64> {
    #[cfg(unix)]
    {
        use nix::sys::resource::{getrusage, UsageWho};
        let usage = getrusage(UsageWho::RUSAGE_CHILDREN).ok()?;
        let max = u64::try_from(usage.max_rss()).ok()?;
        // macOS reports bytes, Linux KiB.
        if cfg!(target_os = "macos") {
            Some(max / 1024)
        } else {
            Some(max)
        }
    }
    #[cfg(not(unix))]
    None
}

fn exit_code(status: &ExitStatus) -> i32 {
    if let Some(code) = status.code() {
        return code;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return 128 + signal;
        }
    }
    1
}

fn killed_by_signal(status: &ExitStatus) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        status.signal().is_some()
    }
    #[cfg(not(unix))]
    {
        let _ = status;
        false
    }
}

/// `program` as the shell would find it: a path (relative to `cwd`), or a name on PATH.
fn find_program(program: &str, cwd: &Path) -> Option<PathBuf> {
    if program.contains('/') {
        let path = cwd.join(program);
        return path.is_file().then_some(path);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    path.is_file()
}

/// The Python interpreter that runs `program`: itself when it is one, else its `#!` line's.
fn python_of(program: &Path, cwd: &Path) -> Option<PathBuf> {
    let name = program.file_name()?.to_string_lossy();
    if name.starts_with("python") {
        return Some(program.to_path_buf());
    }
    let mut head = [0u8; 256];
    let n = std::fs::File::open(program).ok()?.read(&mut head).ok()?;
    let first = String::from_utf8_lossy(&head[..n]);
    let line = first.lines().next()?.strip_prefix("#!")?;
    let mut words = line.split_whitespace();
    let mut interpreter = words.next()?;
    if interpreter.ends_with("/env") {
        interpreter = words.find(|w| !w.starts_with('-'))?;
    }
    let path = if interpreter.contains('/') {
        PathBuf::from(interpreter)
    } else {
        find_program(interpreter, cwd)?
    };
    path.file_name()?
        .to_string_lossy()
        .starts_with("python")
        .then_some(path)
}

/// The interpreter's version and its installed distributions as `name==version` lines (read
/// with importlib.metadata, so environments without pip answer too).
fn python_packages(python: &Path, cwd: &Path) -> anyhow::Result<(String, String)> {
    const LIST: &str = "import importlib.metadata as m, platform\n\
print(platform.python_version())\n\
seen = {}\n\
for d in m.distributions():\n    name = d.metadata['Name']\n    if name and name.lower() not in seen:\n        seen[name.lower()] = f'{name}=={d.version}'\n\
print('\\n'.join(sorted(seen.values(), key=str.lower)))\n";
    let out = Command::new(python)
        .args(["-c", LIST])
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (version, packages) = text.split_once('\n').unwrap_or((text.as_str(), ""));
    Ok((version.trim().to_string(), packages.to_string()))
}

/// The git commit, branch, remote and whether tracked files differ from it; `{}` outside git.
fn git_state(cwd: &Path) -> Value {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let Some(commit) = git(&["rev-parse", "HEAD"]) else {
        return json!({});
    };
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    let mut state = json!({"commit": commit, "dirty": dirty});
    if let Some(branch) = git(&["rev-parse", "--abbrev-ref", "HEAD"]).filter(|b| b != "HEAD") {
        state["branch"] = json!(branch);
    }
    if let Some(remote) = git(&["config", "--get", "remote.origin.url"]).filter(|r| !r.is_empty()) {
        state["remote"] = json!(remote);
    }
    state
}

/// Warns when the code is not what the original run used.
fn warn_about_code(recorded: &Value, now: &Value) {
    let (Some(then), Some(current)) = (recorded["commit"].as_str(), now["commit"].as_str()) else {
        return;
    };
    if then != current {
        eprintln!(
            "cairn rerun: warning: the run used commit {then}; the working tree is at {current} \
             (git checkout {then} to run the same code)"
        );
    }
    if recorded["dirty"].as_bool() == Some(true) {
        eprintln!("cairn rerun: warning: the original run had uncommitted changes, which were not recorded");
    }
    if now["dirty"].as_bool() == Some(true) {
        eprintln!("cairn rerun: warning: the working tree has uncommitted changes");
    }
}

/// The Cairn dataset versions the project around `cwd` points at: `[{name, version, path,
/// digest}]`, empty outside a Cairn data project.
fn dataset_versions(cwd: &Path) -> Value {
    let root = cairn_data::repo::find_root(cwd);
    // Outside a project (no git, `.cairn/` or cairn.yaml above) there are no pointers to read,
    // and walking an arbitrary folder for them could take long.
    let is_project = root.join(".git").exists()
        || root.join(".cairn").is_dir()
        || root.join("cairn.yaml").is_file();
    if !is_project {
        return json!([]);
    }
    let Ok(repo) = open_repo_at(&root) else {
        return json!([]);
    };
    let Ok(pointers) = repo.pointers() else {
        return json!([]);
    };
    let versions: Vec<Value> = pointers
        .into_iter()
        .filter_map(|(file, pointer)| {
            let data = file.with_file_name(&pointer.path);
            let rel = data
                .strip_prefix(&root)
                .ok()?
                .to_string_lossy()
                .into_owned();
            Some(json!({
                "name": pointer.dataset?,
                "version": pointer.version?,
                "path": rel,
                "digest": pointer.digest.to_hex(),
            }))
        })
        .collect();
    json!(versions)
}

fn open_repo_at(root: &Path) -> anyhow::Result<cairn_data::repo::DataRepo> {
    let home = crate::home_dir();
    let (state, _) = server::open_state(&ServerArgs::local(), &home)?;
    let home = std::fs::canonicalize(&home)?;
    Ok(cairn_data::repo::DataRepo::open(
        root,
        &home.join("data"),
        state.lineage.datasets().clone(),
    )?)
}

fn log_dataset_inputs(client: &Client, run_id: &str, datasets: &Value) -> anyhow::Result<()> {
    let inputs: Vec<Value> = datasets
        .as_array()
        .map(|all| {
            all.iter()
                .map(|d| {
                    let digest = d["digest"].as_str().unwrap_or_default();
                    json!({"dataset": {
                        "name": d["name"],
                        "digest": cairn_core::lineage::run_input_digest(digest),
                        "source_type": "cairn",
                        "source": json!({"uri": format!("cairn://{}@{}", d["name"].as_str().unwrap_or_default(), d["version"]),
                                         "path": d["path"]}).to_string(),
                    }})
                })
                .collect()
        })
        .unwrap_or_default();
    if inputs.is_empty() {
        return Ok(());
    }
    client.post(
        "runs/log-inputs",
        &json!({"run_id": run_id, "datasets": inputs}),
    )?;
    Ok(())
}

/// Checks out the dataset versions a run recorded, at the paths it recorded.
fn restore_datasets(datasets: &Value, cwd: &Path, force: bool) -> anyhow::Result<()> {
    let Some(all) = datasets.as_array().filter(|a| !a.is_empty()) else {
        return Ok(());
    };
    let root = cairn_data::repo::find_root(cwd);
    let repo = open_repo_at(&root)?;
    for d in all {
        let (Some(name), Some(version), Some(path)) = (
            d["name"].as_str(),
            d["version"].as_i64(),
            d["path"].as_str(),
        ) else {
            continue;
        };
        let (rel, _) = repo
            .checkout_version(
                &root,
                name,
                version,
                Some(Path::new(path)),
                force,
                &cairn_data::progress::NoProgress,
            )
            .with_context(|| {
                format!(
                    "cannot restore {name}@{version} at {path} (--force overwrites local changes)"
                )
            })?;
        eprintln!("cairn rerun: checked out {name}@{version} at {rel}");
    }
    Ok(())
}

/// Logs the parameters papermill injected (from the executed notebook's metadata, so `-p`,
/// `-r` and `-y` all count) as the run's params; `-p` pairs when the metadata has none.
fn log_notebook_parameters(
    client: &Client,
    run_id: &str,
    executed: &Path,
    args: &[String],
) -> anyhow::Result<()> {
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    let notebook: Option<Value> = std::fs::read(executed)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if let Some(injected) = notebook
        .as_ref()
        .and_then(|n| n["metadata"]["papermill"]["parameters"].as_object())
    {
        for (k, v) in injected {
            let value = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            params.insert(k.clone(), value);
        }
    } else {
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            if matches!(arg.as_str(), "-p" | "--parameters") {
                if let (Some(k), Some(v)) = (rest.next(), rest.next()) {
                    params.insert(k.clone(), v.clone());
                }
            }
        }
    }
    if params.is_empty() {
        return Ok(());
    }
    // The notebook may have logged the same parameter itself; a different spelling of the same
    // value (0.5 / "0.5") is then refused by the server, which is no reason to fail the run.
    for (key, value) in params {
        let logged = client.post(
            "runs/log-parameter",
            &json!({"run_id": run_id, "key": key, "value": truncate(&value, 6000)}),
        );
        if let Err(e) = logged {
            eprintln!("cairn run: parameter {key} not logged: {e:#}");
        }
    }
    Ok(())
}

/// What MLflow shows as the run's source: the script or notebook, else the program.
fn source_name(argv: &[String]) -> String {
    let script = argv
        .iter()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .filter(|a| a.ends_with(".py"));
    let is_python = Path::new(&argv[0])
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("python"));
    match script {
        Some(s) if is_python => s.clone(),
        _ => argv[0].clone(),
    }
}

/// The command line as a shell would read it back.
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn truncate(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// The latest value of each metric of both runs, side by side.
fn print_metric_differences(before: &Value, after: &Value) {
    let latest = crate::client::latest_metrics;
    let (then, now) = (latest(before), latest(after));
    let keys: std::collections::BTreeSet<&String> = then.keys().chain(now.keys()).collect();
    if keys.is_empty() {
        println!("no metrics to compare");
        return;
    }
    let width = keys.iter().map(|k| k.len()).max().unwrap_or(6).max(6);
    println!(
        "{:<width$}  {:>14}  {:>14}  {:>14}",
        "metric", "original", "rerun", "difference"
    );
    let cell = |v: Option<&f64>| v.map(|v| format!("{v:.6}")).unwrap_or_else(|| "-".into());
    for key in keys {
        let (a, b) = (then.get(key), now.get(key));
        let diff = match (a, b) {
            (Some(a), Some(b)) => format!("{:+.6}", b - a),
            _ => "-".into(),
        };
        println!(
            "{key:<width$}  {:>14}  {:>14}  {diff:>14}",
            cell(a),
            cell(b)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_read_back_as_the_shell_would() {
        let argv: Vec<String> = ["python", "train.py", "--lr", "0.1", "it's", "a b", ""]
            .map(String::from)
            .to_vec();
        assert_eq!(
            shell_words(&argv),
            "python train.py --lr 0.1 'it'\\''s' 'a b' ''"
        );
    }

    #[test]
    fn the_source_is_the_script_a_python_command_runs() {
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            source_name(&argv(&["python3", "-u", "train.py"])),
            "train.py"
        );
        assert_eq!(source_name(&argv(&["./train.sh", "x.py"])), "./train.sh");
        assert_eq!(source_name(&argv(&["make", "train"])), "make");
    }

    #[test]
    fn a_python_script_is_found_by_its_interpreter_line() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("train");
        std::fs::write(&script, "#!/usr/bin/python3 -u\nprint(1)\n").unwrap();
        assert_eq!(
            python_of(&script, dir.path()),
            Some(PathBuf::from("/usr/bin/python3"))
        );
        std::fs::write(&script, "#!/bin/sh\necho 1\n").unwrap();
        assert_eq!(python_of(&script, dir.path()), None);
        assert_eq!(
            python_of(Path::new("/opt/venv/bin/python3.11"), dir.path()),
            Some(PathBuf::from("/opt/venv/bin/python3.11"))
        );
    }

    #[test]
    fn long_tag_values_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("ééé", 3), "é");
        assert_eq!(truncate("abc", 5), "abc");
    }
}
