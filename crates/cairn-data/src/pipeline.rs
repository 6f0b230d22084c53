//! Pipelines: `cairn.yaml` declares stages (`cmd`, `deps`, `params`, `outs`); `cairn repro`
//! runs them in dependency order, independent stages in parallel, and records what each saw and
//! made in `cairn.lock`.
//!
//! A stage's fingerprint is the digest of its command, its dependencies' digests, its
//! parameters' values and its output paths. A stage whose fingerprint and outputs match the
//! lock is skipped. Every successful run stores its outputs in the object store and files the
//! fingerprint in the run cache (`<home>/data/runcache/`), so when inputs return to an earlier
//! state the outputs are restored from the store instead of recomputed. A failing stage stops
//! its dependants; its own previous outputs are put back and other stages' outputs are left
//! alone.
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::manifest::check_relative;
use crate::pointer::Kind;
use crate::progress::NoProgress;
use crate::repo::DataRepo;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// File name of the pipeline.
pub const PIPELINE_FILE: &str = "cairn.yaml";
/// File name of the lock.
pub const LOCK_FILE: &str = "cairn.lock";
/// File name of the parameters.
pub const PARAMS_FILE: &str = "params.yaml";

/// A command: one line, or several run in order (stopping at the first failure).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Cmd {
    /// One shell command.
    One(String),
    /// Several, in order.
    Many(Vec<String>),
}

impl Cmd {
    fn text(&self) -> String {
        match self {
            Cmd::One(s) => s.clone(),
            Cmd::Many(v) => v.join("\n"),
        }
    }
}

/// A parameter reference: `key.path` in `params.yaml`, or `{file.yaml: [keys]}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ParamRef {
    /// A dotted key in `params.yaml`.
    Key(String),
    /// Keys in another YAML file.
    File(BTreeMap<String, Vec<String>>),
}

/// One stage as declared.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    /// Shell command(s), run with `sh` in the project root.
    pub cmd: Cmd,
    /// Files and folders it reads.
    #[serde(default)]
    pub deps: Vec<String>,
    /// Parameters it reads.
    #[serde(default)]
    pub params: Vec<ParamRef>,
    /// Files and folders it writes.
    #[serde(default)]
    pub outs: Vec<String>,
}

/// `cairn.yaml`.
#[derive(Debug, Clone, Deserialize)]
pub struct Pipeline {
    /// Stages by name.
    #[serde(default)]
    pub stages: BTreeMap<String, StageSpec>,
}

/// A path with the version it held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedPath {
    /// Relative to the root.
    pub path: String,
    /// File or directory.
    pub kind: Kind,
    /// Digest.
    pub digest: Digest,
    /// Bytes.
    pub size: u64,
    /// Files.
    pub files: u64,
    /// Permission bits of a single file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

/// What a stage last ran with and made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockStage {
    /// The command.
    pub cmd: String,
    /// Fingerprint of command, dependencies, parameters and output paths.
    pub fingerprint: Digest,
    /// Dependencies.
    pub deps: Vec<LockedPath>,
    /// Parameter values.
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
    /// Outputs.
    pub outs: Vec<LockedPath>,
}

/// `cairn.lock`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LockFile {
    /// Format version (1).
    pub schema: u32,
    /// Stages by name.
    pub stages: BTreeMap<String, LockStage>,
}

/// How a stage ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Inputs and outputs as locked: not run.
    Unchanged,
    /// Inputs matched an earlier run: outputs restored from the store.
    Restored,
    /// Ran and succeeded.
    Ran,
    /// Ran and failed (exit status, if it exited), or could not start.
    Failed(Option<i32>),
    /// Not run because a stage it depends on failed.
    Blocked,
}

/// One stage's result.
#[derive(Debug, Clone)]
pub struct StageReport {
    /// Stage name.
    pub name: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Its output (stdout and stderr interleaved), or why it failed.
    pub output: String,
    /// Time spent.
    pub duration: Duration,
}

/// Options of `cairn repro`.
#[derive(Debug, Clone)]
pub struct ReproOptions {
    /// Stages to bring up to date, with what they depend on; all when empty.
    pub targets: Vec<String>,
    /// Stages run at once.
    pub jobs: usize,
    /// Run even when up to date.
    pub force: bool,
}

/// Loads `cairn.yaml` from the root.
pub fn load(root: &Path) -> Result<Pipeline> {
    let file = root.join(PIPELINE_FILE);
    let text = std::fs::read_to_string(&file).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound(format!("no {PIPELINE_FILE} in {}", root.display()))
        } else {
            Error::Io {
                path: file.clone(),
                source: e,
            }
        }
    })?;
    let pipeline: Pipeline = serde_yaml::from_str(&text)
        .map_err(|e| Error::invalid(format!("{}: {e}", file.display())))?;
    for (name, stage) in &pipeline.stages {
        crate::repo::check_dataset_name(name).map_err(|_| {
            Error::invalid(format!(
                "stage name {name:?}: use letters, digits, '.', '_', '-'"
            ))
        })?;
        for p in stage.deps.iter().chain(&stage.outs) {
            check_relative(p).map_err(|_| {
                Error::invalid(format!(
                    "stage {name}: path {p:?} must be relative to the project root and stay inside it"
                ))
            })?;
        }
        if stage
            .outs
            .iter()
            .any(|o| o == LOCK_FILE || o == PIPELINE_FILE)
        {
            return Err(Error::invalid(format!(
                "stage {name}: cannot output {LOCK_FILE} or {PIPELINE_FILE}"
            )));
        }
    }
    Ok(pipeline)
}

fn read_lock(root: &Path) -> Result<LockFile> {
    let file = root.join(LOCK_FILE);
    match std::fs::read_to_string(&file) {
        Ok(text) => serde_yaml::from_str(&text)
            .map_err(|e| Error::invalid(format!("{}: {e}", file.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LockFile {
            schema: 1,
            ..Default::default()
        }),
        Err(e) => Err(Error::Io {
            path: file,
            source: e,
        }),
    }
}

fn write_lock(root: &Path, lock: &LockFile) -> Result<()> {
    let text = serde_yaml::to_string(lock).map_err(|e| Error::invalid(e.to_string()))?;
    crate::fsutil::write_atomic(
        &root.join(LOCK_FILE),
        format!("# Written by `cairn repro`; commit it with cairn.yaml.\n{text}").as_bytes(),
    )
}

fn overlaps(a: &str, b: &str) -> bool {
    a == b || a.starts_with(&format!("{b}/")) || b.starts_with(&format!("{a}/"))
}

/// Stage -> the stages whose outputs it reads. Refuses two stages writing one path and cycles.
fn upstream(p: &Pipeline) -> Result<HashMap<String, Vec<String>>> {
    let mut writer: Vec<(&str, &str)> = Vec::new();
    for (name, s) in &p.stages {
        for o in &s.outs {
            if let Some((other, path)) = writer.iter().find(|(_, w)| overlaps(w, o)) {
                return Err(Error::invalid(format!(
                    "stages {other} and {name} both write {}",
                    if path.len() < o.len() {
                        path
                    } else {
                        o.as_str()
                    }
                )));
            }
            writer.push((name, o));
        }
    }
    let mut up: HashMap<String, Vec<String>> = HashMap::new();
    for (name, s) in &p.stages {
        let mut from: Vec<String> = s
            .deps
            .iter()
            .flat_map(|d| writer.iter().filter(move |(_, o)| overlaps(d, o)))
            .map(|(w, _)| w.to_string())
            .filter(|w| w != name)
            .collect();
        from.sort();
        from.dedup();
        up.insert(name.clone(), from);
    }
    // Kahn's algorithm: anything left over is on a cycle.
    let mut remaining: HashMap<&str, usize> =
        up.iter().map(|(k, v)| (k.as_str(), v.len())).collect();
    let mut ready: Vec<&str> = remaining
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(k, _)| *k)
        .collect();
    let mut seen = 0;
    while let Some(s) = ready.pop() {
        seen += 1;
        for (k, v) in &up {
            if v.iter().any(|u| u == s) {
                let n = remaining.get_mut(k.as_str()).map(|n| {
                    *n -= 1;
                    *n
                });
                if n == Some(0) {
                    ready.push(k);
                }
            }
        }
    }
    if seen < up.len() {
        let mut cycle: Vec<&str> = remaining
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, _)| *k)
            .collect();
        cycle.sort();
        return Err(Error::invalid(format!(
            "the stages {} depend on each other in a cycle",
            cycle.join(", ")
        )));
    }
    Ok(up)
}

fn lookup<'a>(doc: &'a serde_yaml::Value, key: &str) -> Option<&'a serde_yaml::Value> {
    key.split('.').try_fold(doc, |v, part| v.get(part))
}

struct Params {
    files: Mutex<HashMap<String, serde_yaml::Value>>,
}

impl Params {
    fn value(&self, root: &Path, file: &str, key: &str) -> Result<serde_json::Value> {
        check_relative(file)?;
        let mut files = self
            .files
            .lock()
            .map_err(|_| Error::invalid("params lock poisoned"))?;
        if !files.contains_key(file) {
            let path = root.join(file);
            let text = std::fs::read_to_string(&path).at(&path)?;
            let doc: serde_yaml::Value = serde_yaml::from_str(&text)
                .map_err(|e| Error::invalid(format!("{}: {e}", path.display())))?;
            files.insert(file.to_string(), doc);
        }
        let doc = &files[file];
        let v = lookup(doc, key)
            .ok_or_else(|| Error::NotFound(format!("parameter {key} is not in {file}")))?;
        serde_json::to_value(v).map_err(|e| Error::invalid(format!("parameter {key}: {e}")))
    }
}

fn run_cache_file(repo: &DataRepo, fingerprint: &Digest) -> PathBuf {
    repo.home()
        .join("runcache")
        .join(format!("{fingerprint}.json"))
}

/// Versions the lock and the run cache name (kept by `gc`).
pub(crate) fn cached_roots(repo: &DataRepo) -> Result<Vec<(Kind, Digest)>> {
    let mut out = Vec::new();
    if let Ok(lock) = read_lock(repo.root()) {
        for s in lock.stages.values() {
            out.extend(s.outs.iter().map(|o| (o.kind, o.digest)));
        }
    }
    let dir = repo.home().join("runcache");
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            if let Ok(bytes) = std::fs::read(e.path()) {
                if let Ok(outs) = serde_json::from_slice::<Vec<LockedPath>>(&bytes) {
                    out.extend(outs.iter().map(|o| (o.kind, o.digest)));
                }
            }
        }
    }
    Ok(out)
}

struct Runner<'a> {
    repo: &'a DataRepo,
    pipeline: &'a Pipeline,
    params: Params,
    lock: Mutex<LockFile>,
    force: bool,
}

/// Moves existing outputs aside while a stage runs, and puts them back if it fails.
struct Backup {
    moved: Vec<(PathBuf, PathBuf)>,
}

impl Backup {
    fn take(root: &Path, outs: &[String]) -> Result<Backup> {
        let mut moved = Vec::new();
        for o in outs {
            let path = root.join(o);
            if std::fs::symlink_metadata(&path).is_ok() {
                let aside = path.with_file_name(format!(
                    ".{}.cairn-backup",
                    path.file_name()
                        .map(|n| n.to_string_lossy())
                        .unwrap_or_default()
                ));
                if std::fs::symlink_metadata(&aside).is_ok() {
                    remove_path(&aside)?;
                }
                std::fs::rename(&path, &aside).at(&path)?;
                moved.push((path, aside));
            } else if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).at(parent)?;
            }
        }
        Ok(Backup { moved })
    }

    fn restore(self, root: &Path, outs: &[String]) -> Result<()> {
        for o in outs {
            let path = root.join(o);
            if std::fs::symlink_metadata(&path).is_ok() {
                remove_path(&path)?;
            }
        }
        for (path, aside) in self.moved {
            std::fs::rename(&aside, &path).at(&aside)?;
        }
        Ok(())
    }

    fn discard(self) -> Result<()> {
        for (_, aside) in self.moved {
            remove_path(&aside)?;
        }
        Ok(())
    }
}

fn remove_path(path: &Path) -> Result<()> {
    let m = std::fs::symlink_metadata(path).at(path)?;
    if m.is_dir() {
        std::fs::remove_dir_all(path).at(path)
    } else {
        std::fs::remove_file(path).at(path)
    }
}

fn run_shell(root: &Path, name: &str, cmd: &str) -> Result<(Option<i32>, String)> {
    // One pipe for both streams keeps their interleaving as the user would see it.
    let script = format!("set -e\nexec 2>&1\n{cmd}\n");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(root)
        .env("CAIRN_STAGE", name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Error::invalid(format!("stage {name}: cannot start sh: {e}")))?;
    let mut output = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_end(&mut output);
    }
    let status = child
        .wait()
        .map_err(|e| Error::invalid(format!("stage {name}: {e}")))?;
    let text = String::from_utf8_lossy(&output).into_owned();
    Ok((
        if status.success() {
            Some(0)
        } else {
            status.code().or(Some(128))
        },
        text,
    ))
}

impl Runner<'_> {
    fn locked(&self, rel: &str, store: bool) -> Result<Option<LockedPath>> {
        let abs = self.repo.root().join(rel);
        if std::fs::symlink_metadata(&abs).is_err() {
            return Ok(None);
        }
        let snap = self.repo.snapshot(&abs, store, &NoProgress)?;
        Ok(Some(LockedPath {
            path: rel.to_string(),
            kind: snap.kind,
            digest: snap.digest,
            size: snap.size,
            files: snap.files,
            mode: snap.mode,
        }))
    }

    fn stage(&self, name: &str) -> Result<(Outcome, String)> {
        let spec = &self.pipeline.stages[name];
        let root = self.repo.root();
        let mut deps = Vec::new();
        for d in &spec.deps {
            match self.locked(d, false)? {
                Some(l) => deps.push(l),
                None => {
                    return Ok((
                        Outcome::Failed(None),
                        format!("dependency {d} does not exist"),
                    ))
                }
            }
        }
        let mut params = BTreeMap::new();
        for p in &spec.params {
            match p {
                ParamRef::Key(k) => {
                    params.insert(k.clone(), self.params.value(root, PARAMS_FILE, k)?);
                }
                ParamRef::File(map) => {
                    for (file, keys) in map {
                        for k in keys {
                            params.insert(format!("{file}:{k}"), self.params.value(root, file, k)?);
                        }
                    }
                }
            }
        }
        let cmd = spec.cmd.text();
        let fingerprint = Digest::of(
            serde_json::json!({
                "cmd": cmd,
                "deps": deps.iter().map(|d| (&d.path, d.digest.to_hex())).collect::<Vec<_>>(),
                "params": params,
                "outs": spec.outs,
            })
            .to_string()
            .as_bytes(),
        );
        let previous = self
            .lock
            .lock()
            .ok()
            .and_then(|l| l.stages.get(name).cloned());
        if !self.force {
            if let Some(prev) = &previous {
                if prev.fingerprint == fingerprint {
                    let mut same = prev.outs.len() == spec.outs.len();
                    for o in &prev.outs {
                        same = same
                            && self
                                .locked(&o.path, false)?
                                .is_some_and(|now| now.digest == o.digest);
                    }
                    if same {
                        return Ok((Outcome::Unchanged, String::new()));
                    }
                }
            }
            if let Some(outs) = self.cached(&fingerprint, spec)? {
                for o in &outs {
                    if let Some(parent) = root.join(&o.path).parent() {
                        std::fs::create_dir_all(parent).at(parent)?;
                    }
                    // Resolved, so a folder swapped for a symlink cannot lead the write outside.
                    let (abs, _) = self.repo.resolve(root, Path::new(&o.path))?;
                    self.repo
                        .restore(o.kind, &o.digest, o.mode, &abs, true, &NoProgress)?;
                }
                self.record(name, cmd, fingerprint, deps, params, outs)?;
                return Ok((Outcome::Restored, String::new()));
            }
        }
        let backup = Backup::take(root, &spec.outs)?;
        let (status, output) = match run_shell(root, name, &cmd) {
            Ok(r) => r,
            Err(e) => {
                backup.restore(root, &spec.outs)?;
                return Err(e);
            }
        };
        if status != Some(0) {
            backup.restore(root, &spec.outs)?;
            return Ok((Outcome::Failed(status), output));
        }
        let mut outs = Vec::new();
        for o in &spec.outs {
            match self.locked(o, true)? {
                Some(l) => outs.push(l),
                None => {
                    backup.restore(root, &spec.outs)?;
                    return Ok((
                        Outcome::Failed(None),
                        format!(
                            "{output}stage {name} succeeded but did not write its output {o}\n"
                        ),
                    ));
                }
            }
        }
        backup.discard()?;
        let entry = run_cache_file(self.repo, &fingerprint);
        if let Some(dir) = entry.parent() {
            std::fs::create_dir_all(dir).at(dir)?;
        }
        let bytes = serde_json::to_vec(&outs).map_err(|e| Error::invalid(e.to_string()))?;
        crate::fsutil::write_atomic(&entry, &bytes)?;
        self.record(name, cmd, fingerprint, deps, params, outs)?;
        Ok((Outcome::Ran, output))
    }

    /// The outputs an earlier run with this fingerprint made, if all are in the store.
    fn cached(&self, fingerprint: &Digest, spec: &StageSpec) -> Result<Option<Vec<LockedPath>>> {
        let Ok(bytes) = std::fs::read(run_cache_file(self.repo, fingerprint)) else {
            return Ok(None);
        };
        let Ok(outs) = serde_json::from_slice::<Vec<LockedPath>>(&bytes) else {
            return Ok(None);
        };
        let paths: HashSet<&str> = outs.iter().map(|o| o.path.as_str()).collect();
        let complete = spec.outs.iter().all(|o| paths.contains(o.as_str()))
            && outs
                .iter()
                .all(|o| check_relative(&o.path).is_ok() && self.repo.complete(o.kind, &o.digest));
        Ok(complete.then_some(outs))
    }

    fn record(
        &self,
        name: &str,
        cmd: String,
        fingerprint: Digest,
        deps: Vec<LockedPath>,
        params: BTreeMap<String, serde_json::Value>,
        outs: Vec<LockedPath>,
    ) -> Result<()> {
        let mut lock = self
            .lock
            .lock()
            .map_err(|_| Error::invalid("lock poisoned"))?;
        lock.schema = 1;
        lock.stages.insert(
            name.to_string(),
            LockStage {
                cmd,
                fingerprint,
                deps,
                params,
                outs,
            },
        );
        lock.stages
            .retain(|k, _| self.pipeline.stages.contains_key(k));
        write_lock(self.repo.root(), &lock)
    }
}

#[derive(Default)]
struct Schedule {
    pending: Vec<String>,
    done: HashMap<String, bool>,
    reports: Vec<StageReport>,
    error: Option<Error>,
}

/// `cairn repro`: brings the pipeline's stages up to date. `on_event` sees each stage as it
/// starts (`None` outcome) and as it ends.
pub fn repro(
    repo: &DataRepo,
    options: &ReproOptions,
    on_event: &(dyn Fn(&str, Option<&StageReport>) + Sync),
) -> Result<Vec<StageReport>> {
    let pipeline = load(repo.root())?;
    let up = upstream(&pipeline)?;
    for t in &options.targets {
        if !pipeline.stages.contains_key(t) {
            return Err(Error::NotFound(format!("no stage {t} in {PIPELINE_FILE}")));
        }
    }
    let mut wanted: HashSet<String> = HashSet::new();
    let mut stack: Vec<String> = if options.targets.is_empty() {
        pipeline.stages.keys().cloned().collect()
    } else {
        options.targets.clone()
    };
    while let Some(s) = stack.pop() {
        if wanted.insert(s.clone()) {
            stack.extend(up[&s].iter().cloned());
        }
    }
    let runner = Runner {
        repo,
        pipeline: &pipeline,
        params: Params {
            files: Mutex::new(HashMap::new()),
        },
        lock: Mutex::new(read_lock(repo.root())?),
        force: options.force,
    };
    let mut pending: Vec<String> = wanted.into_iter().collect();
    pending.sort();
    let schedule = Mutex::new(Schedule {
        pending,
        ..Default::default()
    });
    let wake = Condvar::new();
    let worker = || loop {
        let name = {
            let Ok(mut s) = schedule.lock() else { return };
            loop {
                if s.pending.is_empty() || s.error.is_some() {
                    return;
                }
                // A stage whose upstream failed is blocked; one whose upstream all succeeded runs.
                let mut pick = None;
                for (i, name) in s.pending.iter().enumerate() {
                    let deps = &up[name];
                    if deps.iter().any(|d| s.done.get(d) == Some(&false)) {
                        pick = Some((i, false));
                        break;
                    }
                    if deps.iter().all(|d| s.done.get(d) == Some(&true)) {
                        pick = Some((i, true));
                        break;
                    }
                }
                match pick {
                    Some((i, true)) => break s.pending.remove(i),
                    Some((i, false)) => {
                        let name = s.pending.remove(i);
                        s.done.insert(name.clone(), false);
                        let report = StageReport {
                            name: name.clone(),
                            outcome: Outcome::Blocked,
                            output: String::new(),
                            duration: Duration::ZERO,
                        };
                        on_event(&name, Some(&report));
                        s.reports.push(report);
                        wake.notify_all();
                    }
                    None => match wake.wait(s) {
                        Ok(g) => s = g,
                        Err(_) => return,
                    },
                }
            }
        };
        on_event(&name, None);
        let started = Instant::now();
        let result = runner.stage(&name);
        let Ok(mut s) = schedule.lock() else { return };
        match result {
            Ok((outcome, output)) => {
                let ok = !matches!(outcome, Outcome::Failed(_));
                let report = StageReport {
                    name: name.clone(),
                    outcome,
                    output,
                    duration: started.elapsed(),
                };
                on_event(&name, Some(&report));
                s.reports.push(report);
                s.done.insert(name, ok);
            }
            Err(e) => {
                s.done.insert(name, false);
                s.error.get_or_insert(e);
            }
        }
        wake.notify_all();
    };
    std::thread::scope(|scope| {
        for _ in 0..options.jobs.max(1) {
            scope.spawn(worker);
        }
    });
    let s = schedule
        .into_inner()
        .map_err(|_| Error::invalid("scheduler poisoned"))?;
    if let Some(e) = s.error {
        return Err(e);
    }
    Ok(s.reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(yaml: &str) -> Pipeline {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn graph_links_outputs_to_dependants_and_refuses_cycles_and_shared_outputs() {
        let p = pipeline(
            "stages:\n  a: {cmd: x, outs: [data/a]}\n  b: {cmd: x, deps: [data/a/part.csv], outs: [b.csv]}\n  c: {cmd: x, deps: [b.csv, data], outs: [c]}\n",
        );
        let up = upstream(&p).unwrap();
        assert_eq!(up["a"], Vec::<String>::new());
        assert_eq!(up["b"], vec!["a"]);
        assert_eq!(up["c"], vec!["a", "b"]);
        let cyc = pipeline(
            "stages:\n  a: {cmd: x, deps: [b], outs: [a]}\n  b: {cmd: x, deps: [a], outs: [b]}\n",
        );
        assert!(upstream(&cyc).unwrap_err().to_string().contains("cycle"));
        let shared = pipeline("stages:\n  a: {cmd: x, outs: [d]}\n  b: {cmd: x, outs: [d/x]}\n");
        assert!(upstream(&shared)
            .unwrap_err()
            .to_string()
            .contains("both write"));
    }
}
