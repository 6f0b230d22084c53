//! Domain types of experiment tracking. Plain data: no serialisation, no storage details.
use crate::{Error, Result};

/// Whether an entity is live or in the trash (MLflow's `lifecycle_stage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleStage {
    /// Visible and writable.
    Active,
    /// Soft-deleted: hidden from default searches and read-only until restored.
    Deleted,
}

impl LifecycleStage {
    /// The name stored and sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleStage::Active => "active",
            LifecycleStage::Deleted => "deleted",
        }
    }
    /// Parses a stored name; anything unknown counts as active.
    pub fn parse(s: &str) -> Self {
        if s == "deleted" {
            LifecycleStage::Deleted
        } else {
            LifecycleStage::Active
        }
    }
}

/// Which lifecycle stages a search includes (MLflow's `ViewType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ViewType {
    /// Only active entities (the default).
    #[default]
    ActiveOnly,
    /// Only deleted entities.
    DeletedOnly,
    /// Both.
    All,
}

impl ViewType {
    /// Parses MLflow's enum name or number.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "ACTIVE_ONLY" | "1" => Ok(ViewType::ActiveOnly),
            "DELETED_ONLY" | "2" => Ok(ViewType::DeletedOnly),
            "ALL" | "3" => Ok(ViewType::All),
            other => Err(Error::invalid(format!(
                "Invalid view type '{other}': expected ACTIVE_ONLY, DELETED_ONLY or ALL"
            ))),
        }
    }
    /// The lifecycle stages this view includes.
    pub fn stages(self) -> &'static [&'static str] {
        match self {
            ViewType::ActiveOnly => &["active"],
            ViewType::DeletedOnly => &["deleted"],
            ViewType::All => &["active", "deleted"],
        }
    }
}

/// A run's execution status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Started and not yet ended.
    Running,
    /// Scheduled, not started.
    Scheduled,
    /// Ended successfully.
    Finished,
    /// Ended with an error.
    Failed,
    /// Stopped by the user.
    Killed,
}

impl RunStatus {
    /// MLflow's enum name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "RUNNING",
            RunStatus::Scheduled => "SCHEDULED",
            RunStatus::Finished => "FINISHED",
            RunStatus::Failed => "FAILED",
            RunStatus::Killed => "KILLED",
        }
    }
    /// Parses MLflow's enum name or number.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "RUNNING" | "1" => Ok(RunStatus::Running),
            "SCHEDULED" | "2" => Ok(RunStatus::Scheduled),
            "FINISHED" | "3" => Ok(RunStatus::Finished),
            "FAILED" | "4" => Ok(RunStatus::Failed),
            "KILLED" | "5" => Ok(RunStatus::Killed),
            other => Err(Error::invalid(format!("Invalid run status '{other}'"))),
        }
    }
    /// Whether the run has ended.
    pub fn is_terminated(self) -> bool {
        matches!(
            self,
            RunStatus::Finished | RunStatus::Failed | RunStatus::Killed
        )
    }
}

/// A key/value string pair: a tag or a param.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

impl KeyValue {
    /// Builds a pair.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        KeyValue {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// One metric observation.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// Metric name.
    pub key: String,
    /// Value; may be NaN or infinite.
    pub value: f64,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    /// Training step.
    pub step: i64,
    /// Logged model this value belongs to, if any.
    pub model_id: Option<String>,
    /// Dataset name the value was computed on, if any.
    pub dataset_name: Option<String>,
    /// Dataset digest the value was computed on, if any.
    pub dataset_digest: Option<String>,
    /// Run that logged it (filled where a query spans runs).
    pub run_id: Option<String>,
}

/// An experiment: a named group of runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    /// Numeric id as a string ("0" is Default).
    pub experiment_id: String,
    /// Unique name.
    pub name: String,
    /// Where its runs' artifacts go.
    pub artifact_location: String,
    /// Live or deleted.
    pub lifecycle_stage: LifecycleStage,
    /// Creation time, ms.
    pub creation_time: i64,
    /// Last change, ms.
    pub last_update_time: i64,
    /// Tags.
    pub tags: Vec<KeyValue>,
}

/// The descriptive part of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    /// 32-hex id.
    pub run_id: String,
    /// Experiment it belongs to.
    pub experiment_id: String,
    /// Display name.
    pub run_name: String,
    /// Who started it.
    pub user_id: String,
    /// Execution status.
    pub status: RunStatus,
    /// Start, ms.
    pub start_time: i64,
    /// End, ms, once ended.
    pub end_time: Option<i64>,
    /// Root URI of its artifacts.
    pub artifact_uri: String,
    /// Live or deleted.
    pub lifecycle_stage: LifecycleStage,
}

/// A dataset as a run input refers to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// Dataset name.
    pub name: String,
    /// Content digest.
    pub digest: String,
    /// Kind of source ("local", "s3", "cairn", ...).
    pub source_type: String,
    /// Source description (often JSON).
    pub source: String,
    /// Schema (often JSON).
    pub schema: Option<String>,
    /// Profile (often JSON).
    pub profile: Option<String>,
}

/// A dataset used by a run, with tags such as `mlflow.data.context`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetInput {
    /// Input tags.
    pub tags: Vec<KeyValue>,
    /// The dataset.
    pub dataset: Dataset,
}

/// A logged model a run produced, at a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelOutput {
    /// `m-...` id.
    pub model_id: String,
    /// Step at which it was produced.
    pub step: i64,
}

/// A run: its info plus its data, inputs and outputs.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Descriptive fields.
    pub info: RunInfo,
    /// Latest value of each metric.
    pub metrics: Vec<Metric>,
    /// Params, immutable once logged.
    pub params: Vec<KeyValue>,
    /// Tags.
    pub tags: Vec<KeyValue>,
    /// Datasets used.
    pub dataset_inputs: Vec<DatasetInput>,
    /// Logged models used as inputs.
    pub model_inputs: Vec<String>,
    /// Logged models produced.
    pub model_outputs: Vec<ModelOutput>,
}

/// The upload state of a logged model (MLflow 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoggedModelStatus {
    /// Created; files still uploading.
    Pending,
    /// Files complete.
    Ready,
    /// Upload failed.
    UploadFailed,
}

impl LoggedModelStatus {
    /// MLflow's enum name.
    pub fn as_str(self) -> &'static str {
        match self {
            LoggedModelStatus::Pending => "LOGGED_MODEL_PENDING",
            LoggedModelStatus::Ready => "LOGGED_MODEL_READY",
            LoggedModelStatus::UploadFailed => "LOGGED_MODEL_UPLOAD_FAILED",
        }
    }
    /// Parses MLflow's enum name or number.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "LOGGED_MODEL_PENDING" | "1" => Ok(LoggedModelStatus::Pending),
            "LOGGED_MODEL_READY" | "2" => Ok(LoggedModelStatus::Ready),
            "LOGGED_MODEL_UPLOAD_FAILED" | "3" => Ok(LoggedModelStatus::UploadFailed),
            other => Err(Error::invalid(format!(
                "Invalid logged model status '{other}'"
            ))),
        }
    }
}

/// A model logged by a run (MLflow 3's `LoggedModel`).
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedModel {
    /// `m-...` id.
    pub model_id: String,
    /// Experiment it belongs to.
    pub experiment_id: String,
    /// Name given when logged.
    pub name: String,
    /// Root URI of its files.
    pub artifact_uri: String,
    /// Creation time, ms.
    pub creation_time: i64,
    /// Last change, ms.
    pub last_updated_time: i64,
    /// Upload state.
    pub status: LoggedModelStatus,
    /// Optional status message.
    pub status_message: Option<String>,
    /// Free-form model type.
    pub model_type: Option<String>,
    /// Run that logged it.
    pub source_run_id: Option<String>,
    /// Live or deleted.
    pub lifecycle_stage: LifecycleStage,
    /// Tags.
    pub tags: Vec<KeyValue>,
    /// Params.
    pub params: Vec<KeyValue>,
    /// Latest metrics logged against this model.
    pub metrics: Vec<Metric>,
}

/// One value of a metric's history, as charts need it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricPoint {
    /// Training step.
    pub step: i64,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    /// Value; may be NaN or infinite.
    pub value: f64,
}

/// How many live runs an experiment holds and when one last started or ended, for listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExperimentActivity {
    /// The experiment.
    pub experiment_id: String,
    /// Active (not deleted) runs.
    pub runs: u64,
    /// The latest start or end time of any of its runs, ms; `None` without runs.
    pub last_activity: Option<i64>,
}

/// A dataset that runs of an experiment used, and the context they used it in (MLflow's
/// `DatasetSummary`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetSummary {
    /// The experiment.
    pub experiment_id: String,
    /// The dataset's name.
    pub name: String,
    /// Its digest.
    pub digest: String,
    /// The `mlflow.data.context` input tag (`training`, `evaluation`, ...), when given.
    pub context: Option<String>,
}

/// Which of a run's key spaces a key listing reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKeyKind {
    /// Metric names (of the latest values).
    Metric,
    /// Param names.
    Param,
    /// Tag names.
    Tag,
}

/// One page of a search result; `next_offset` is set when more follow.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Offset of the next page, if any.
    pub next_offset: Option<u64>,
}

/// A model version's life-cycle stage (MLflow's legacy stages, still used by many teams).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Not staged.
    None,
    /// Being validated.
    Staging,
    /// Serving production traffic.
    Production,
    /// Retired.
    Archived,
}

impl Stage {
    /// All stages, in MLflow's order.
    pub const ALL: [Stage; 4] = [
        Stage::None,
        Stage::Staging,
        Stage::Production,
        Stage::Archived,
    ];

    /// MLflow's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::None => "None",
            Stage::Staging => "Staging",
            Stage::Production => "Production",
            Stage::Archived => "Archived",
        }
    }

    /// Parses a stage name, case-insensitively as MLflow does.
    pub fn parse(s: &str) -> Result<Self> {
        Stage::ALL.into_iter().find(|st| st.as_str().eq_ignore_ascii_case(s)).ok_or_else(|| {
            Error::invalid(format!(
                "Invalid Model Version stage: {s}. Value must be one of None, Staging, Production, Archived."
            ))
        })
    }
}

/// A version of a registered model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelVersion {
    /// Registered model name.
    pub name: String,
    /// 1, 2, 3, ... per model.
    pub version: i64,
    /// Creation time, ms.
    pub creation_time: i64,
    /// Last change, ms.
    pub last_updated_time: i64,
    /// Who registered it.
    pub user_id: String,
    /// Stage.
    pub current_stage: Stage,
    /// Free text.
    pub description: String,
    /// Source URI as given (`runs:/...`, `models:/m-...`, a path).
    pub source: String,
    /// Where the files are, resolved from the source at registration.
    pub storage_location: String,
    /// Run that produced it, if known.
    pub run_id: Option<String>,
    /// Link to the run, if given.
    pub run_link: Option<String>,
    /// Logged model it was registered from, if any.
    pub model_id: Option<String>,
    /// Registration status (`READY`).
    pub status: String,
    /// Tags.
    pub tags: Vec<KeyValue>,
    /// Aliases pointing at this version.
    pub aliases: Vec<String>,
}

/// A registered model: a name with versions, tags and aliases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredModel {
    /// Unique name.
    pub name: String,
    /// Creation time, ms.
    pub creation_time: i64,
    /// Last change, ms.
    pub last_updated_time: i64,
    /// Free text.
    pub description: String,
    /// The newest version in each stage that has one.
    pub latest_versions: Vec<ModelVersion>,
    /// Tags.
    pub tags: Vec<KeyValue>,
    /// Aliases and the versions they point at.
    pub aliases: Vec<(String, i64)>,
}

/// One recorded version of a Cairn dataset: the exact bytes (by digest) a name pointed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetVersion {
    /// Dataset name (by default the tracked path's file name).
    pub name: String,
    /// 1, 2, ... per name; a new number only when the bytes change.
    pub version: i64,
    /// BLAKE3 digest, 64 lowercase hex characters: of the file, or of the directory manifest.
    pub digest: String,
    /// `file` or `directory`.
    pub kind: String,
    /// Total bytes of the files.
    pub size: i64,
    /// Number of files.
    pub files: i64,
    /// `csv`, `parquet`, `json`, ... or `mixed` / `binary`.
    pub format: String,
    /// Where it was added from, relative to the project root.
    pub path: String,
    /// The user's note.
    pub message: String,
    /// Who added it.
    pub user_id: String,
    /// When it was recorded (ms).
    pub creation_time: i64,
}

/// One thing a dataset version was made from: another dataset version (`dataset`,
/// `NAME@VERSION`), a file outside Cairn's versions (`file`, its path), or feature definitions
/// (`features`, `PROJECT@VERSION`), with the digest of its bytes or text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetSource {
    /// `dataset`, `file` or `features`.
    pub kind: String,
    /// What it is, in the kind's words.
    pub reference: String,
    /// The digest of its bytes (BLAKE3, hex).
    pub digest: String,
}

/// A check of a dataset version's bytes against an expectation suite (`cairn validate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetValidation {
    /// Dataset name.
    pub name: String,
    /// Version number.
    pub version: i64,
    /// The file checked, relative to the version's folder; empty when the version is that file.
    pub path: String,
    /// The suite's name.
    pub suite: String,
    /// Whether every expectation was met.
    pub success: bool,
    /// Expectations evaluated.
    pub evaluated: i64,
    /// Expectations met.
    pub successful: i64,
    /// The whole result, as Great Expectations-shaped JSON text.
    pub result: String,
    /// When it was recorded (ms).
    pub creation_time: i64,
}

/// What `cairn data add` asks the store to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDatasetVersion {
    /// Dataset name.
    pub name: String,
    /// Digest, 64 lowercase hex characters.
    pub digest: String,
    /// `file` or `directory`.
    pub kind: String,
    /// Total bytes.
    pub size: i64,
    /// Number of files.
    pub files: i64,
    /// Format.
    pub format: String,
    /// Path relative to the project root.
    pub path: String,
    /// The user's note.
    pub message: String,
    /// Who added it.
    pub user_id: String,
}
