//! The storage traits. Implementations live in `cairn-store`; only the binary picks one.
use crate::model::*;
use crate::paths::ArtifactPath;
use crate::search::{Comparison, OrderBy};
use crate::Result;
use std::io::Read;

/// Where a new experiment's artifacts go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExperimentLocation {
    /// Exactly this URI, as the user gave it.
    Given(String),
    /// `<root>/<new experiment id>`, decided inside the creating transaction.
    UnderRoot(String),
}

/// A search over runs.
#[derive(Debug, Clone, Default)]
pub struct RunQuery {
    /// Experiments to search (at least one).
    pub experiment_ids: Vec<String>,
    /// Clauses, all of which must hold.
    pub filter: Vec<Comparison>,
    /// Sort keys; the store appends `start_time DESC, run_id` as tie-breakers.
    pub order_by: Vec<OrderBy>,
    /// Lifecycle stages included.
    pub view: ViewType,
    /// Rows to skip.
    pub offset: u64,
    /// Most rows returned.
    pub limit: u64,
}

/// A search over experiments.
#[derive(Debug, Clone, Default)]
pub struct ExperimentQuery {
    /// Clauses, all of which must hold.
    pub filter: Vec<Comparison>,
    /// Sort keys; the store appends `experiment_id ASC`.
    pub order_by: Vec<OrderBy>,
    /// Lifecycle stages included.
    pub view: ViewType,
    /// Rows to skip.
    pub offset: u64,
    /// Most rows returned.
    pub limit: u64,
}

/// A search over logged models.
#[derive(Debug, Clone, Default)]
pub struct LoggedModelQuery {
    /// Experiments to search.
    pub experiment_ids: Vec<String>,
    /// Clauses, all of which must hold.
    pub filter: Vec<Comparison>,
    /// MLflow's `datasets`: (name, digest) pairs; metric clauses then count only metrics
    /// logged on one of them, and without metric clauses a model needs a metric on one.
    pub datasets: Vec<(String, Option<String>)>,
    /// Sort keys; the store appends `creation_timestamp DESC, model_id`.
    pub order_by: Vec<OrderBy>,
    /// Rows to skip.
    pub offset: u64,
    /// Most rows returned.
    pub limit: u64,
}

/// Metadata storage for experiment tracking. Every method is one transaction.
///
/// Implementations enforce integrity rules that need atomicity (unique names, params that
/// never change value) and nothing else: the rules of the domain live in [`crate::Tracking`].
pub trait TrackingStore: Send + Sync {
    /// Creates an experiment and returns its id; `AlreadyExists` if the name is taken.
    fn create_experiment(
        &self,
        name: &str,
        location: ExperimentLocation,
        tags: &[KeyValue],
        now: i64,
    ) -> Result<String>;
    /// Reads an experiment by id.
    fn get_experiment(&self, id: &str) -> Result<Option<Experiment>>;
    /// Reads an experiment by name.
    fn get_experiment_by_name(&self, name: &str) -> Result<Option<Experiment>>;
    /// Searches experiments.
    fn search_experiments(&self, query: &ExperimentQuery) -> Result<Page<Experiment>>;
    /// Renames; `AlreadyExists` if the name is taken.
    fn rename_experiment(&self, id: &str, new_name: &str, now: i64) -> Result<()>;
    /// Deletes or restores an experiment and, with it, its runs.
    fn set_experiment_stage(&self, id: &str, stage: LifecycleStage, now: i64) -> Result<()>;
    /// Sets (upserts) an experiment tag.
    fn set_experiment_tag(&self, id: &str, tag: &KeyValue) -> Result<()>;
    /// Deletes an experiment tag; false if it was not there.
    fn delete_experiment_tag(&self, id: &str, key: &str) -> Result<bool>;

    /// Inserts a new run with its initial tags.
    fn create_run(&self, info: &RunInfo, tags: &[KeyValue]) -> Result<()>;
    /// Reads a run with its data, inputs and outputs.
    fn get_run(&self, run_id: &str) -> Result<Option<Run>>;
    /// Reads only a run's info (cheap; used for checks).
    fn get_run_info(&self, run_id: &str) -> Result<Option<RunInfo>>;
    /// Changes status, end time and/or name (the name also sets the `mlflow.runName` tag).
    fn update_run(
        &self,
        run_id: &str,
        status: Option<RunStatus>,
        end_time: Option<i64>,
        run_name: Option<&str>,
    ) -> Result<()>;
    /// Deletes or restores a run.
    fn set_run_stage(&self, run_id: &str, stage: LifecycleStage, now: i64) -> Result<()>;
    /// Logs metrics, params and tags atomically. Identical metric re-logs are no-ops; a param
    /// logged again with another value fails the whole batch with `InvalidParameter`.
    fn log_batch(
        &self,
        run_id: &str,
        metrics: &[Metric],
        params: &[KeyValue],
        tags: &[KeyValue],
    ) -> Result<()>;
    /// Deletes a run tag; false if it was not there.
    fn delete_run_tag(&self, run_id: &str, key: &str) -> Result<bool>;
    /// One page of a metric's history, ordered by step then timestamp.
    fn metric_history(
        &self,
        run_id: &str,
        key: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Page<Metric>>;
    /// Every value of a metric with `start <= step <= end`, ordered by step then timestamp.
    fn metric_history_in_steps(
        &self,
        run_id: &str,
        key: &str,
        start_step: i64,
        end_step: i64,
    ) -> Result<Vec<Metric>>;
    /// Like [`TrackingStore::metric_history_in_steps`], but only step, timestamp and value of
    /// each entry (charts read millions of them).
    fn metric_points(
        &self,
        run_id: &str,
        key: &str,
        start_step: i64,
        end_step: i64,
    ) -> Result<Vec<MetricPoint>>;
    /// Records datasets and models a run used (idempotent).
    fn log_inputs(
        &self,
        run_id: &str,
        datasets: &[DatasetInput],
        model_ids: &[String],
    ) -> Result<()>;
    /// Records models a run produced (idempotent).
    fn log_outputs(&self, run_id: &str, outputs: &[ModelOutput]) -> Result<()>;
    /// Searches runs.
    fn search_runs(&self, query: &RunQuery) -> Result<Page<Run>>;

    /// Inserts a logged model (with its tags and params).
    fn create_logged_model(&self, model: &LoggedModel) -> Result<()>;
    /// Reads a logged model.
    fn get_logged_model(&self, model_id: &str) -> Result<Option<LoggedModel>>;
    /// Changes a logged model's status.
    fn set_logged_model_status(
        &self,
        model_id: &str,
        status: LoggedModelStatus,
        message: Option<&str>,
        now: i64,
    ) -> Result<()>;
    /// Upserts tags.
    fn set_logged_model_tags(&self, model_id: &str, tags: &[KeyValue], now: i64) -> Result<()>;
    /// Deletes a tag; false if it was not there.
    fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<bool>;
    /// Adds params (a changed value is refused like run params).
    fn log_logged_model_params(&self, model_id: &str, params: &[KeyValue], now: i64) -> Result<()>;
    /// Soft-deletes a logged model.
    fn delete_logged_model(&self, model_id: &str, now: i64) -> Result<()>;
    /// Searches logged models.
    fn search_logged_models(&self, query: &LoggedModelQuery) -> Result<Page<LoggedModel>>;

    /// Ids of runs with a dataset input whose digest (8 characters or more) is a prefix of
    /// `digest`, oldest first. MLflow caps input digests at 36 characters, so a run names a
    /// Cairn dataset by a prefix of its 64-character digest.
    fn runs_with_input_digest(&self, digest: &str) -> Result<Vec<String>>;

    /// Active run counts and last activity of the given experiments (those without runs are
    /// left out).
    fn experiment_activity(&self, experiment_ids: &[String]) -> Result<Vec<ExperimentActivity>>;

    /// The distinct (experiment, dataset name, digest, context) the experiments' runs logged
    /// as inputs, at most `limit`, ordered by experiment, name, digest and context.
    fn dataset_summaries(
        &self,
        experiment_ids: &[String],
        limit: u64,
    ) -> Result<Vec<DatasetSummary>>;

    /// Distinct keys of one kind logged by the active runs of the experiments, containing
    /// `contains` (case-insensitive; empty for all), sorted, at most `limit` of them.
    fn run_keys(
        &self,
        experiment_ids: &[String],
        kind: RunKeyKind,
        contains: &str,
        limit: u64,
    ) -> Result<Vec<String>>;
}

/// A search over registered models.
#[derive(Debug, Clone, Default)]
pub struct RegisteredModelQuery {
    /// Clauses, all of which must hold.
    pub filter: Vec<Comparison>,
    /// Sort keys; the store appends `name ASC`.
    pub order_by: Vec<OrderBy>,
    /// Rows to skip.
    pub offset: u64,
    /// Most rows returned.
    pub limit: u64,
}

/// A search over model versions.
#[derive(Debug, Clone, Default)]
pub struct ModelVersionQuery {
    /// Clauses, all of which must hold.
    pub filter: Vec<Comparison>,
    /// Sort keys; the store appends `name ASC, version DESC`.
    pub order_by: Vec<OrderBy>,
    /// Rows to skip.
    pub offset: u64,
    /// Most rows returned.
    pub limit: u64,
}

/// Metadata storage for the model registry. Every method is one transaction.
pub trait RegistryStore: Send + Sync {
    /// Creates a registered model; `AlreadyExists` if the name is taken.
    fn create_registered_model(
        &self,
        name: &str,
        description: &str,
        tags: &[KeyValue],
        now: i64,
    ) -> Result<()>;
    /// Reads a registered model with tags, aliases and the latest version per stage.
    fn get_registered_model(&self, name: &str) -> Result<Option<RegisteredModel>>;
    /// Renames a model, its versions, tags and aliases; `AlreadyExists` if taken.
    fn rename_registered_model(&self, name: &str, new_name: &str, now: i64) -> Result<()>;
    /// Sets the description.
    fn update_registered_model(&self, name: &str, description: &str, now: i64) -> Result<()>;
    /// Deletes a model and everything under it.
    fn delete_registered_model(&self, name: &str) -> Result<()>;
    /// Searches registered models.
    fn search_registered_models(
        &self,
        query: &RegisteredModelQuery,
    ) -> Result<Page<RegisteredModel>>;
    /// Upserts a model tag.
    fn set_registered_model_tag(&self, name: &str, tag: &KeyValue) -> Result<()>;
    /// Deletes a model tag; false if absent.
    fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<bool>;
    /// Inserts a version, allocating the next number for its model inside the transaction
    /// (the `version` field of the argument is ignored); returns the number.
    fn create_model_version(&self, version: &ModelVersion) -> Result<i64>;
    /// Reads a version with its tags and aliases.
    fn get_model_version(&self, name: &str, version: i64) -> Result<Option<ModelVersion>>;
    /// Sets a version's description.
    fn update_model_version(
        &self,
        name: &str,
        version: i64,
        description: &str,
        now: i64,
    ) -> Result<()>;
    /// Sets a version's stage; with `archive_others`, moves the model's other versions in that
    /// stage to Archived in the same transaction.
    fn transition_stage(
        &self,
        name: &str,
        version: i64,
        stage: Stage,
        archive_others: bool,
        now: i64,
    ) -> Result<()>;
    /// Deletes a version, its tags and the aliases pointing at it.
    fn delete_model_version(&self, name: &str, version: i64) -> Result<()>;
    /// Searches versions.
    fn search_model_versions(&self, query: &ModelVersionQuery) -> Result<Page<ModelVersion>>;
    /// Upserts a version tag.
    fn set_model_version_tag(&self, name: &str, version: i64, tag: &KeyValue) -> Result<()>;
    /// Deletes a version tag; false if absent.
    fn delete_model_version_tag(&self, name: &str, version: i64, key: &str) -> Result<bool>;
    /// Points an alias at a version.
    fn set_alias(&self, name: &str, alias: &str, version: i64, now: i64) -> Result<()>;
    /// Removes an alias; false if absent.
    fn delete_alias(&self, name: &str, alias: &str) -> Result<bool>;
    /// The version an alias points at.
    fn get_alias(&self, name: &str, alias: &str) -> Result<Option<i64>>;
    /// The identity of the version `which` names, in one query: what serving checks on every
    /// request to know whether its loaded graph, and the feature service it is bound to, are
    /// still the ones named.
    fn version_identity(
        &self,
        name: &str,
        which: &VersionSelector,
    ) -> Result<Option<VersionIdentity>>;
}

/// What serving needs to know about a version on every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionIdentity {
    /// The version number.
    pub number: i64,
    /// Its creation time (a version deleted and created again gets a new one).
    pub created_ms: i64,
    /// The feature service the version is bound to (its [`FEATURE_SERVICE_TAG`] tag), whose
    /// entity keys a request may send instead of the model's inputs.
    pub feature_service: Option<String>,
}

/// The version tag that binds a model version to a feature service of the server's project.
pub const FEATURE_SERVICE_TAG: &str = "cairn.feature_service";

/// One entry of an artifact directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactEntry {
    /// Path relative to the listed directory's root (MLflow lists paths from the run root).
    pub path: String,
    /// Whether it is a directory.
    pub is_dir: bool,
    /// Size in bytes, for files.
    pub file_size: Option<u64>,
}

/// Artifact bytes. Paths are relative to the store's root and already checked; an
/// implementation must still refuse to follow symlinks out of its root.
pub trait ArtifactStore: Send + Sync {
    /// Writes a file atomically: readers see the old file or the complete new one, never part.
    fn put(&self, path: &ArtifactPath, body: &mut dyn Read) -> Result<u64>;
    /// Opens a file for reading with its size; `NotFound` if absent, `InvalidParameter` for a
    /// directory.
    fn open(&self, path: &ArtifactPath) -> Result<(Box<dyn Read + Send>, u64)>;
    /// Lists a directory's direct children (empty if the directory does not exist).
    fn list(&self, path: &ArtifactPath) -> Result<Vec<ArtifactEntry>>;
    /// Deletes a file or a directory tree; `NotFound` if absent.
    fn delete(&self, path: &ArtifactPath) -> Result<()>;
}

/// Which version of a registered model a request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSelector {
    /// A version number.
    Number(i64),
    /// The version an alias points to.
    Alias(String),
    /// The newest version.
    Newest,
}

/// Versions of Cairn datasets.
pub trait DatasetStore: Send + Sync {
    /// Records a version: the next number for the name, unless the name's newest version has
    /// the same digest, which is returned instead. The flag says whether a version was created.
    fn record_dataset_version(
        &self,
        version: &NewDatasetVersion,
        now: i64,
    ) -> Result<(DatasetVersion, bool)>;
    /// One version.
    fn get_dataset_version(&self, name: &str, version: i64) -> Result<Option<DatasetVersion>>;
    /// Versions of one name, or of all names, newest first.
    fn list_dataset_versions(&self, name: Option<&str>) -> Result<Vec<DatasetVersion>>;
    /// Versions whose digest starts with `prefix`, oldest first.
    fn dataset_versions_by_digest(&self, prefix: &str) -> Result<Vec<DatasetVersion>>;
    /// Records a validation of an existing version (`NotFound` when there is no such version).
    fn record_dataset_validation(&self, validation: &DatasetValidation) -> Result<()>;
    /// Validations of one version, newest first.
    fn list_dataset_validations(&self, name: &str, version: i64) -> Result<Vec<DatasetValidation>>;
    /// Records what an existing version was made from, adding to what is recorded
    /// (`NotFound` when there is no such version).
    fn record_dataset_sources(
        &self,
        name: &str,
        version: i64,
        sources: &[crate::model::DatasetSource],
    ) -> Result<()>;
    /// What a version was made from, by kind then reference.
    fn dataset_sources(&self, name: &str, version: i64)
        -> Result<Vec<crate::model::DatasetSource>>;
}

/// Traces, their spans and assessments. Every method is one transaction.
pub trait TraceStore: Send + Sync {
    /// Stores spans; a trace not yet stored is created from its batch's info, an existing one
    /// gets the earliest start, the latest end, the root's state while it is in progress or
    /// unspecified, previews where it has none, and the batch's tags.
    fn log_spans(&self, batches: &[crate::traces::SpanBatch]) -> Result<()>;
    /// Creates a trace or overwrites an existing one's top-level fields, adding its metadata,
    /// tags and assessments to what is stored.
    fn start_trace(&self, info: &crate::traces::TraceInfo) -> Result<()>;
    /// The infos of the traces named (unknown ids are left out), with metadata, tags and
    /// assessments.
    fn get_trace_infos(&self, trace_ids: &[String]) -> Result<Vec<crate::traces::TraceInfo>>;
    /// A trace's spans, by start time.
    fn get_spans(&self, trace_id: &str) -> Result<Vec<crate::traces::Span>>;
    /// One page of a trace search.
    fn search_traces(
        &self,
        query: &crate::traces::TraceQuery,
    ) -> Result<Page<crate::traces::TraceInfo>>;
    /// Sets a tag; `false` when the trace does not exist.
    fn set_trace_tag(&self, trace_id: &str, tag: &KeyValue) -> Result<bool>;
    /// Deletes a tag; `false` when it did not exist.
    fn delete_trace_tag(&self, trace_id: &str, key: &str) -> Result<bool>;
    /// Deletes traces of an experiment (with their spans, tags, metadata, assessments and
    /// run links); answers how many.
    fn delete_traces(
        &self,
        experiment_id: &str,
        selection: &crate::traces::TraceSelection,
    ) -> Result<u64>;
    /// Links traces to a run (idempotent).
    fn link_traces_to_run(&self, trace_ids: &[String], run_id: &str) -> Result<()>;
    /// Inserts or replaces an assessment.
    fn put_assessment(&self, assessment: &crate::traces::Assessment) -> Result<()>;
    /// One assessment of a trace.
    fn get_assessment(
        &self,
        trace_id: &str,
        assessment_id: &str,
    ) -> Result<Option<crate::traces::Assessment>>;
    /// Deletes an assessment; `false` when it did not exist.
    fn delete_assessment(&self, trace_id: &str, assessment_id: &str) -> Result<bool>;
}

/// Evaluation datasets, their records, and registered scorers. Every method is one
/// transaction.
pub trait EvaluationStore: Send + Sync {
    /// Stores a new dataset with its tags and experiment links.
    fn create_dataset(&self, dataset: &crate::evaluation::EvaluationDataset) -> Result<()>;
    /// One dataset with its tags, experiments and record count.
    fn get_dataset(&self, dataset_id: &str)
        -> Result<Option<crate::evaluation::EvaluationDataset>>;
    /// Deletes a dataset, its tags, links and records.
    fn delete_dataset(&self, dataset_id: &str) -> Result<()>;
    /// One page of a dataset search.
    fn search_datasets(
        &self,
        query: &crate::evaluation::DatasetQuery,
    ) -> Result<Page<crate::evaluation::EvaluationDataset>>;
    /// Sets tags; an empty value deletes the tag.
    fn set_dataset_tags(&self, dataset_id: &str, tags: &[KeyValue], now: i64) -> Result<()>;
    /// Deletes a tag.
    fn delete_dataset_tag(&self, dataset_id: &str, key: &str, now: i64) -> Result<()>;
    /// Links (`add`) or unlinks experiments.
    fn set_dataset_experiments(
        &self,
        dataset_id: &str,
        experiment_ids: &[String],
        add: bool,
    ) -> Result<()>;
    /// Inserts records or merges them into those with the same input key; sets the new
    /// digest. Answers (inserted, updated).
    fn upsert_records(
        &self,
        dataset_id: &str,
        records: &[crate::evaluation::NewRecord],
        merge: crate::evaluation::MergeRecord<'_>,
        now: i64,
        digest: &str,
        user: Option<String>,
    ) -> Result<(u64, u64)>;
    /// One page of records, oldest first.
    fn get_records(
        &self,
        dataset_id: &str,
        max_results: u64,
        offset: u64,
    ) -> Result<Page<crate::evaluation::DatasetRecord>>;
    /// Deletes records by id.
    fn delete_records(&self, dataset_id: &str, record_ids: &[String], now: i64) -> Result<u64>;
    /// Stores the next version of a scorer; `new_id` is used for a name not seen before.
    fn register_scorer(
        &self,
        experiment_id: &str,
        name: &str,
        serialized: &str,
        new_id: &str,
        now: i64,
    ) -> Result<crate::evaluation::ScorerVersion>;
    /// Every version of `name`, or the newest of every name when `None`.
    fn list_scorers(
        &self,
        experiment_id: &str,
        name: Option<&str>,
    ) -> Result<Vec<crate::evaluation::ScorerVersion>>;
    /// Deletes one version or all; answers how many.
    fn delete_scorer(&self, experiment_id: &str, name: &str, version: Option<i64>) -> Result<u64>;
    /// Stores a new issue.
    fn create_issue(&self, issue: &crate::evaluation::Issue) -> Result<()>;
    /// One issue.
    fn get_issue(&self, issue_id: &str) -> Result<Option<crate::evaluation::Issue>>;
    /// Writes an issue's changeable fields.
    fn update_issue(&self, issue: &crate::evaluation::Issue) -> Result<()>;
    /// One page of an issue search, newest first.
    fn search_issues(
        &self,
        query: &crate::evaluation::IssueQuery,
    ) -> Result<Page<crate::evaluation::Issue>>;
}
