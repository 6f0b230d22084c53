//! The tracking service: validation and rules in front of a [`TrackingStore`].
use crate::ids;
use crate::model::*;
use crate::search::{self, Target};
use crate::store::*;
use crate::validate::{self, *};
use crate::{now_millis, Error, Result};
use std::collections::HashMap;
use std::sync::Arc;

/// Id of the experiment that exists from the start.
pub const DEFAULT_EXPERIMENT_ID: &str = "0";
/// The tag that mirrors a run's name.
pub const RUN_NAME_TAG: &str = "mlflow.runName";

const RUNS_DEFAULT_MAX: u64 = 1000;
const RUNS_MAX: u64 = 50_000;
const EXPERIMENTS_DEFAULT_MAX: u64 = 1000;
const EXPERIMENTS_MAX: u64 = 50_000;
const HISTORY_PAGE_MAX: u64 = 25_000;
const BULK_INTERVAL_DEFAULT_MAX: u64 = 100;
const BULK_INTERVAL_MAX: u64 = 1000;
const BULK_INTERVAL_MAX_RUNS: usize = 100;
const LOGGED_MODELS_DEFAULT_MAX: u64 = 100;
const LOGGED_MODELS_MAX: u64 = 1000;

/// A new run's fields as a client sends them.
#[derive(Debug, Clone, Default)]
pub struct NewRun {
    /// Experiment; Default ("0") when absent.
    pub experiment_id: Option<String>,
    /// Who starts it.
    pub user_id: Option<String>,
    /// Display name; from the `mlflow.runName` tag or generated when absent.
    pub run_name: Option<String>,
    /// Start time, ms; now when absent.
    pub start_time: Option<i64>,
    /// Initial tags.
    pub tags: Vec<KeyValue>,
}

/// A new logged model's fields as a client sends them.
#[derive(Debug, Clone, Default)]
pub struct NewLoggedModel {
    /// Experiment it belongs to.
    pub experiment_id: String,
    /// Name; generated when absent.
    pub name: Option<String>,
    /// Free-form type.
    pub model_type: Option<String>,
    /// Run that logs it.
    pub source_run_id: Option<String>,
    /// Params.
    pub params: Vec<KeyValue>,
    /// Tags.
    pub tags: Vec<KeyValue>,
}

/// Experiment tracking with MLflow's semantics over any [`TrackingStore`].
#[derive(Clone)]
pub struct Tracking {
    store: Arc<dyn TrackingStore>,
    artifact_root: String,
}

fn limit(requested: Option<u64>, default: u64, max: u64, what: &str) -> Result<u64> {
    match requested {
        None | Some(0) => Ok(default),
        Some(n) if n > max => Err(Error::invalid(format!(
            "Invalid value {n} for parameter 'max_results' supplied. It must be at most {max} \
             for {what}."
        ))),
        Some(n) => Ok(n),
    }
}

fn check_keys_unique_values(params: &[KeyValue]) -> Result<()> {
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for p in params {
        if let Some(previous) = seen.insert(&p.key, &p.value) {
            if previous != p.value {
                return Err(Error::invalid(format!(
                    "Duplicate parameter keys have been submitted: ['{}']. Please ensure the \
                     request contains only one param value per param key.",
                    p.key
                )));
            }
        }
    }
    Ok(())
}

/// The message when a logged param would change value; stores produce it inside their
/// transaction.
pub fn param_change_error(run_id: &str, key: &str, old: &str, new: &str) -> Error {
    Error::invalid(format!(
        "Changing param values is not allowed. Param with key='{key}' was already logged with \
         value='{old}' for run ID='{run_id}'. Attempted logging new value '{new}'."
    ))
}

impl Tracking {
    /// A service over `store`; experiments without an explicit location put their artifacts
    /// under `artifact_root` (MLflow's default is `mlflow-artifacts:`, the proxied store).
    pub fn new(store: Arc<dyn TrackingStore>, artifact_root: impl Into<String>) -> Self {
        let root: String = artifact_root.into();
        Tracking {
            store,
            artifact_root: root.trim_end_matches('/').to_string(),
        }
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn TrackingStore> {
        &self.store
    }

    // ---- experiments ----

    /// Creates an experiment.
    pub fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<String>,
        tags: Vec<KeyValue>,
    ) -> Result<String> {
        validate_experiment_name(name)?;
        for tag in &tags {
            validate_key("key", &tag.key)?;
            validate_length("value", &tag.value, MAX_EXPERIMENT_TAG_VAL_LENGTH)?;
        }
        let location = match artifact_location.filter(|l| !l.is_empty()) {
            Some(loc) => {
                crate::uris::validate_artifact_location(&loc)?;
                ExperimentLocation::Given(loc)
            }
            None => ExperimentLocation::UnderRoot(self.artifact_root.clone()),
        };
        self.store
            .create_experiment(name, location, &tags, now_millis())
    }

    /// Reads an experiment.
    pub fn get_experiment(&self, id: &str) -> Result<Experiment> {
        validate_experiment_id(id)?;
        self.store
            .get_experiment(id)?
            .ok_or_else(|| Error::not_found(format!("No Experiment with id={id} exists")))
    }

    /// Reads an experiment by name.
    pub fn get_experiment_by_name(&self, name: &str) -> Result<Experiment> {
        self.store.get_experiment_by_name(name)?.ok_or_else(|| {
            Error::not_found(format!("Could not find experiment with name '{name}'"))
        })
    }

    /// Searches experiments.
    pub fn search_experiments(
        &self,
        filter: &str,
        order_by: &[String],
        view: ViewType,
        max_results: Option<u64>,
        page_token: &str,
    ) -> Result<Page<Experiment>> {
        let query = ExperimentQuery {
            filter: search::parse_filter(filter, Target::Experiments)?,
            order_by: order_by
                .iter()
                .map(|o| search::parse_order_by(o, Target::Experiments))
                .collect::<Result<_>>()?,
            view,
            offset: search::parse_page_token(page_token)?,
            limit: limit(
                max_results,
                EXPERIMENTS_DEFAULT_MAX,
                EXPERIMENTS_MAX,
                "experiments",
            )?,
        };
        self.store.search_experiments(&query)
    }

    /// Renames an experiment.
    pub fn rename_experiment(&self, id: &str, new_name: &str) -> Result<()> {
        validate_experiment_name(new_name)?;
        let exp = self.get_experiment(id)?;
        if exp.lifecycle_stage != LifecycleStage::Active {
            return Err(Error::invalid(format!(
                "Cannot rename a non-active experiment {id}. Current state is deleted."
            )));
        }
        self.store.rename_experiment(id, new_name, now_millis())
    }

    /// Soft-deletes an experiment and its runs.
    pub fn delete_experiment(&self, id: &str) -> Result<()> {
        if id == DEFAULT_EXPERIMENT_ID {
            return Err(Error::invalid("Cannot delete the default experiment '0'."));
        }
        self.get_experiment(id)?;
        self.store
            .set_experiment_stage(id, LifecycleStage::Deleted, now_millis())
    }

    /// Restores a deleted experiment and its runs.
    pub fn restore_experiment(&self, id: &str) -> Result<()> {
        let exp = self.get_experiment(id)?;
        if exp.lifecycle_stage != LifecycleStage::Deleted {
            return Err(Error::invalid(format!(
                "Cannot restore an active experiment {id}."
            )));
        }
        self.store
            .set_experiment_stage(id, LifecycleStage::Active, now_millis())
    }

    /// Sets an experiment tag.
    pub fn set_experiment_tag(&self, id: &str, key: &str, value: &str) -> Result<()> {
        validate_key("key", key)?;
        validate_length("value", value, MAX_EXPERIMENT_TAG_VAL_LENGTH)?;
        let exp = self.get_experiment(id)?;
        if exp.lifecycle_stage != LifecycleStage::Active {
            return Err(Error::invalid(format!(
                "The experiment {id} must be in the 'active' state. Current state is deleted."
            )));
        }
        self.store
            .set_experiment_tag(id, &KeyValue::new(key, value))
    }

    /// Deletes an experiment tag.
    pub fn delete_experiment_tag(&self, id: &str, key: &str) -> Result<()> {
        self.get_experiment(id)?;
        if !self.store.delete_experiment_tag(id, key)? {
            return Err(Error::not_found(format!(
                "No tag with name: {key} in experiment with id {id}"
            )));
        }
        Ok(())
    }

    // ---- runs ----

    /// Creates a run.
    pub fn create_run(&self, new: NewRun) -> Result<Run> {
        let experiment_id = new
            .experiment_id
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| "0".into());
        let exp = self.get_experiment(&experiment_id)?;
        if exp.lifecycle_stage != LifecycleStage::Active {
            return Err(Error::invalid(format!(
                "The experiment {experiment_id} must be in the 'active' state. Current state \
                 is deleted."
            )));
        }
        let mut tags = self.checked_tags(new.tags)?;
        let tag_name = tags
            .iter()
            .find(|t| t.key == RUN_NAME_TAG)
            .map(|t| t.value.clone());
        if let (Some(name), Some(tagged)) = (&new.run_name, &tag_name) {
            if !name.is_empty() && name != tagged {
                return Err(Error::invalid(format!(
                    "Both 'run_name' argument and 'mlflow.runName' tag are specified, but with \
                     different values (run_name='{name}', mlflow.runName='{tagged}')."
                )));
            }
        }
        let run_name = new
            .run_name
            .filter(|n| !n.is_empty())
            .or(tag_name.clone())
            .unwrap_or_else(ids::random_run_name);
        if tag_name.is_none() {
            tags.push(KeyValue::new(RUN_NAME_TAG, run_name.clone()));
        }
        let run_id = ids::new_run_id();
        let info = RunInfo {
            artifact_uri: format!("{}/{run_id}/artifacts", exp.artifact_location),
            run_id: run_id.clone(),
            experiment_id,
            run_name,
            user_id: new.user_id.unwrap_or_default(),
            status: RunStatus::Running,
            start_time: new.start_time.unwrap_or_else(now_millis),
            end_time: None,
            lifecycle_stage: LifecycleStage::Active,
        };
        self.store.create_run(&info, &tags)?;
        self.get_run(&run_id)
    }

    /// Ids of runs whose dataset inputs name `digest` (by a prefix of 8 characters or more).
    pub fn runs_with_input_digest(&self, digest: &str) -> Result<Vec<String>> {
        self.store.runs_with_input_digest(digest)
    }

    /// Active run counts and last activity of the given experiments, in the order given;
    /// an experiment without runs gets a count of 0.
    pub fn experiment_activity(
        &self,
        experiment_ids: &[String],
    ) -> Result<Vec<ExperimentActivity>> {
        for id in experiment_ids {
            validate_experiment_id(id)?;
        }
        if experiment_ids.is_empty() {
            return Ok(vec![]);
        }
        let found = self.store.experiment_activity(experiment_ids)?;
        Ok(experiment_ids
            .iter()
            .map(|id| {
                found
                    .iter()
                    .find(|a| &a.experiment_id == id)
                    .cloned()
                    .unwrap_or(ExperimentActivity {
                        experiment_id: id.clone(),
                        runs: 0,
                        last_activity: None,
                    })
            })
            .collect())
    }

    /// Distinct metric, param or tag keys of the experiments' active runs that contain
    /// `contains` (case-insensitive), sorted, at most `limit` (1..=10,000).
    pub fn run_keys(
        &self,
        experiment_ids: &[String],
        kind: RunKeyKind,
        contains: &str,
        limit: u64,
    ) -> Result<Vec<String>> {
        for id in experiment_ids {
            validate_experiment_id(id)?;
        }
        if experiment_ids.is_empty() {
            return Ok(vec![]);
        }
        self.store
            .run_keys(experiment_ids, kind, contains, limit.clamp(1, 10_000))
    }

    /// Reads a run.
    pub fn get_run(&self, run_id: &str) -> Result<Run> {
        validate_run_id(run_id)?;
        self.store
            .get_run(run_id)?
            .ok_or_else(|| Error::not_found(format!("Run with id={run_id} not found")))
    }

    fn run_info(&self, run_id: &str) -> Result<RunInfo> {
        validate_run_id(run_id)?;
        self.store
            .get_run_info(run_id)?
            .ok_or_else(|| Error::not_found(format!("Run with id={run_id} not found")))
    }

    fn active_run(&self, run_id: &str) -> Result<RunInfo> {
        let info = self.run_info(run_id)?;
        if info.lifecycle_stage != LifecycleStage::Active {
            return Err(Error::invalid(format!(
                "The run {run_id} must be in the 'active' state. Current state is deleted."
            )));
        }
        Ok(info)
    }

    /// Updates a run's status, end time and/or name.
    pub fn update_run(
        &self,
        run_id: &str,
        status: Option<RunStatus>,
        end_time: Option<i64>,
        run_name: Option<&str>,
    ) -> Result<RunInfo> {
        self.active_run(run_id)?;
        let run_name = run_name.filter(|n| !n.is_empty());
        self.store.update_run(run_id, status, end_time, run_name)?;
        self.run_info(run_id)
    }

    /// Soft-deletes a run.
    pub fn delete_run(&self, run_id: &str) -> Result<()> {
        self.run_info(run_id)?;
        self.store
            .set_run_stage(run_id, LifecycleStage::Deleted, now_millis())
    }

    /// Restores a deleted run.
    pub fn restore_run(&self, run_id: &str) -> Result<()> {
        self.run_info(run_id)?;
        self.store
            .set_run_stage(run_id, LifecycleStage::Active, now_millis())
    }

    fn checked_metric(m: &Metric, path: &str) -> Result<()> {
        validate::validate_key(path, &m.key)?;
        if m.timestamp < 0 {
            return Err(invalid_value(
                "timestamp",
                &m.timestamp.to_string(),
                "Timestamp must be a nonnegative long (64-bit integer)",
            ));
        }
        Ok(())
    }

    fn checked_params(params: Vec<KeyValue>) -> Result<Vec<KeyValue>> {
        params
            .into_iter()
            .map(|mut p| {
                validate_key("key", &p.key)?;
                truncate(&mut p.value, MAX_PARAM_VAL_LENGTH);
                Ok(p)
            })
            .collect()
    }

    fn checked_tags(&self, tags: Vec<KeyValue>) -> Result<Vec<KeyValue>> {
        tags.into_iter()
            .map(|mut t| {
                validate_key("key", &t.key)?;
                truncate(&mut t.value, MAX_TAG_VAL_LENGTH);
                Ok(t)
            })
            .collect()
    }

    /// Logs metrics, params and tags in one transaction, with MLflow's batch limits.
    pub fn log_batch(
        &self,
        run_id: &str,
        metrics: Vec<Metric>,
        params: Vec<KeyValue>,
        tags: Vec<KeyValue>,
    ) -> Result<()> {
        if metrics.len() > MAX_METRICS_PER_BATCH {
            return Err(Error::invalid(format!(
                "A batch logging request can contain at most {MAX_METRICS_PER_BATCH} metrics. \
                 Got {} metrics. Please split up metrics across multiple requests and try again.",
                metrics.len()
            )));
        }
        for (what, n) in [("params", params.len()), ("tags", tags.len())] {
            if n > MAX_PARAMS_TAGS_PER_BATCH {
                return Err(Error::invalid(format!(
                    "A batch logging request can contain at most {MAX_PARAMS_TAGS_PER_BATCH} \
                     {what}. Got {n} {what}. Please split up {what} across multiple requests \
                     and try again."
                )));
            }
        }
        let total = metrics.len() + params.len() + tags.len();
        if total > MAX_ENTITIES_PER_BATCH {
            return Err(Error::invalid(format!(
                "A batch logging request can contain at most {MAX_ENTITIES_PER_BATCH} total \
                 metrics, params, and tags. Got {total} entities."
            )));
        }
        for m in &metrics {
            Self::checked_metric(m, "metrics")?;
        }
        let params = Self::checked_params(params)?;
        check_keys_unique_values(&params)?;
        let tags = self.checked_tags(tags)?;
        self.active_run(run_id)?;
        self.store.log_batch(run_id, &metrics, &params, &tags)?;
        if let Some(name) = tags.iter().rev().find(|t| t.key == RUN_NAME_TAG) {
            self.store
                .update_run(run_id, None, None, Some(&name.value))?;
        }
        Ok(())
    }

    /// Logs one metric.
    pub fn log_metric(&self, run_id: &str, metric: Metric) -> Result<()> {
        self.log_batch(run_id, vec![metric], vec![], vec![])
    }

    /// Logs one param.
    pub fn log_param(&self, run_id: &str, key: &str, value: &str) -> Result<()> {
        self.log_batch(run_id, vec![], vec![KeyValue::new(key, value)], vec![])
    }

    /// Sets one run tag (`mlflow.runName` also renames the run).
    pub fn set_tag(&self, run_id: &str, key: &str, value: &str) -> Result<()> {
        self.log_batch(run_id, vec![], vec![], vec![KeyValue::new(key, value)])
    }

    /// Deletes a run tag.
    pub fn delete_tag(&self, run_id: &str, key: &str) -> Result<()> {
        self.active_run(run_id)?;
        if !self.store.delete_run_tag(run_id, key)? {
            return Err(Error::not_found(format!(
                "No tag with name: {key} in run with id {run_id}"
            )));
        }
        Ok(())
    }

    /// One page of a metric's history.
    pub fn metric_history(
        &self,
        run_id: &str,
        key: &str,
        max_results: Option<u64>,
        page_token: &str,
    ) -> Result<Page<Metric>> {
        self.run_info(run_id)?;
        let offset = search::parse_page_token(page_token)?;
        // Without max_results MLflow returns the whole history in one answer.
        let limit = match max_results {
            None | Some(0) if page_token.is_empty() => u64::MAX,
            None | Some(0) => HISTORY_PAGE_MAX,
            Some(n) => n.min(HISTORY_PAGE_MAX.max(n)),
        };
        self.store.metric_history(run_id, key, offset, limit)
    }

    /// The histories of one metric over several runs (MLflow's `get-history-bulk`, which its
    /// UI calls): runs in id order, each run's points by (timestamp, step, value), at most
    /// `max_results` (25,000 at most) per run; runs that do not exist contribute nothing.
    pub fn metric_history_bulk(
        &self,
        run_ids: &[String],
        key: Option<&str>,
        max_results: Option<u64>,
    ) -> Result<Vec<(String, Metric)>> {
        const MAX_RUNS: usize = 100;
        const MAX_POINTS: u64 = 25_000;
        if run_ids.is_empty() {
            return Err(Error::invalid(
                "GetMetricHistoryBulk request must specify at least one run_id.",
            ));
        }
        if run_ids.len() > MAX_RUNS {
            return Err(Error::invalid(format!(
                "GetMetricHistoryBulk request cannot specify more than {MAX_RUNS} run_ids. \
                 Received {} run_ids.",
                run_ids.len()
            )));
        }
        let Some(key) = key else {
            return Err(Error::invalid(
                "GetMetricHistoryBulk request must specify a metric_key.",
            ));
        };
        let max = max_results.unwrap_or(MAX_POINTS).min(MAX_POINTS);
        let mut ids: Vec<&String> = run_ids.iter().collect();
        ids.sort();
        let mut out = Vec::new();
        for id in ids {
            if validate_run_id(id).is_err() {
                continue;
            }
            if self.store.get_run(id)?.is_none() {
                continue;
            }
            let mut points = self.store.metric_history(id, key, 0, max)?.items;
            points.sort_by(|a, b| {
                (a.timestamp, a.step)
                    .cmp(&(b.timestamp, b.step))
                    .then(a.value.total_cmp(&b.value))
            });
            out.extend(points.into_iter().map(|m| (id.clone(), m)));
        }
        Ok(out)
    }

    /// The datasets the experiments' runs logged as inputs, with their contexts (MLflow's
    /// `experiments/search-datasets`): 1 to 20 experiments, at most 1,000 summaries.
    pub fn search_datasets(&self, experiment_ids: &[String]) -> Result<Vec<DatasetSummary>> {
        const MAX_EXPERIMENTS: usize = 20;
        if experiment_ids.is_empty() {
            return Err(Error::invalid(
                "SearchDatasets request must specify at least one experiment_id.",
            ));
        }
        if experiment_ids.len() > MAX_EXPERIMENTS {
            return Err(Error::invalid(format!(
                "SearchDatasets request cannot specify more than {MAX_EXPERIMENTS} \
                 experiment_ids. Received {} experiment_ids.",
                experiment_ids.len()
            )));
        }
        for id in experiment_ids {
            if validate_experiment_id(id).is_err() {
                return Err(Error::invalid(format!(
                    "Invalid experiment ID '{id}'. Experiment ID must be a valid integer."
                )));
            }
        }
        self.store.dataset_summaries(experiment_ids, 1000)
    }

    /// Sampled histories of one metric over several runs, for charts: for each run, at most
    /// `max_results` points evenly spread over the steps in range, always keeping the first
    /// and last step.
    pub fn metric_history_bulk_interval(
        &self,
        run_ids: &[String],
        key: &str,
        start_step: Option<i64>,
        end_step: Option<i64>,
        max_results: Option<u64>,
    ) -> Result<Vec<Metric>> {
        if run_ids.is_empty() {
            return Err(missing_value("run_ids"));
        }
        if run_ids.len() > BULK_INTERVAL_MAX_RUNS {
            return Err(Error::invalid(format!(
                "GetMetricHistoryBulkInterval request must specify at most \
                 {BULK_INTERVAL_MAX_RUNS} run_ids. Received {} run_ids.",
                run_ids.len()
            )));
        }
        if start_step.is_some() != end_step.is_some() {
            return Err(Error::invalid(
                "If either start step or end step are specified, both must be specified.",
            ));
        }
        let (start, end) = (start_step.unwrap_or(i64::MIN), end_step.unwrap_or(i64::MAX));
        if start > end {
            return Err(Error::invalid("end_step must be greater than start_step."));
        }
        let max = limit(
            max_results,
            BULK_INTERVAL_DEFAULT_MAX,
            BULK_INTERVAL_MAX,
            "intervals",
        )? as usize;
        let mut out = Vec::new();
        for run_id in run_ids {
            self.run_info(run_id)?;
            let history = self
                .store
                .metric_history_in_steps(run_id, key, start, end)?;
            let mut steps: Vec<i64> = history.iter().map(|m| m.step).collect();
            steps.dedup();
            let keep = sample_steps(&steps, max);
            out.extend(
                history
                    .into_iter()
                    .filter(|m| keep.binary_search(&m.step).is_ok())
                    .map(|mut m| {
                        m.run_id = Some(run_id.clone());
                        m
                    }),
            );
        }
        Ok(out)
    }

    /// Records datasets and models a run used.
    pub fn log_inputs(
        &self,
        run_id: &str,
        datasets: Vec<DatasetInput>,
        model_ids: Vec<String>,
    ) -> Result<()> {
        for input in &datasets {
            let d = &input.dataset;
            validate_length("dataset.name", &d.name, MAX_DATASET_NAME_SIZE)?;
            validate_length("dataset.digest", &d.digest, MAX_DATASET_DIGEST_SIZE)?;
            validate_length("dataset.source", &d.source, MAX_DATASET_SOURCE_SIZE)?;
            if d.name.is_empty() {
                return Err(missing_value("dataset.name"));
            }
            if d.digest.is_empty() {
                return Err(missing_value("dataset.digest"));
            }
            if let Some(schema) = &d.schema {
                validate_length("dataset.schema", schema, MAX_DATASET_SCHEMA_SIZE)?;
            }
            if let Some(profile) = &d.profile {
                validate_length("dataset.profile", profile, MAX_DATASET_PROFILE_SIZE)?;
            }
            for tag in &input.tags {
                validate_length("input_tag.key", &tag.key, MAX_INPUT_TAG_KEY_SIZE)?;
                validate_length("input_tag.value", &tag.value, MAX_INPUT_TAG_VALUE_SIZE)?;
            }
        }
        self.active_run(run_id)?;
        self.store.log_inputs(run_id, &datasets, &model_ids)
    }

    /// Records models a run produced.
    pub fn log_outputs(&self, run_id: &str, outputs: Vec<ModelOutput>) -> Result<()> {
        self.active_run(run_id)?;
        for output in &outputs {
            self.get_logged_model(&output.model_id)?;
        }
        self.store.log_outputs(run_id, &outputs)
    }

    /// Searches runs with MLflow's filter grammar.
    pub fn search_runs(
        &self,
        experiment_ids: Vec<String>,
        filter: &str,
        order_by: &[String],
        view: ViewType,
        max_results: Option<u64>,
        page_token: &str,
    ) -> Result<Page<Run>> {
        for id in &experiment_ids {
            validate_experiment_id(id)?;
        }
        let query = RunQuery {
            experiment_ids,
            filter: search::parse_filter(filter, Target::Runs)?,
            order_by: order_by
                .iter()
                .map(|o| search::parse_order_by(o, Target::Runs))
                .collect::<Result<_>>()?,
            view,
            offset: search::parse_page_token(page_token)?,
            limit: limit(max_results, RUNS_DEFAULT_MAX, RUNS_MAX, "runs")?,
        };
        if query.experiment_ids.is_empty() {
            return Ok(Page {
                items: vec![],
                next_offset: None,
            });
        }
        self.store.search_runs(&query)
    }

    // ---- logged models ----

    /// Creates a logged model in the PENDING state.
    pub fn create_logged_model(&self, new: NewLoggedModel) -> Result<LoggedModel> {
        let exp = self.get_experiment(&new.experiment_id)?;
        if let Some(run_id) = &new.source_run_id {
            self.run_info(run_id)?;
        }
        let params = Self::checked_params(new.params)?;
        check_keys_unique_values(&params)?;
        let tags = self.checked_tags(new.tags)?;
        let model_id = ids::new_logged_model_id();
        let now = now_millis();
        let model = LoggedModel {
            artifact_uri: format!("{}/models/{model_id}/artifacts", exp.artifact_location),
            name: new
                .name
                .filter(|n| !n.is_empty())
                .unwrap_or_else(ids::random_run_name),
            model_id,
            experiment_id: exp.experiment_id,
            creation_time: now,
            last_updated_time: now,
            status: LoggedModelStatus::Pending,
            status_message: None,
            model_type: new.model_type.filter(|t| !t.is_empty()),
            source_run_id: new.source_run_id.filter(|r| !r.is_empty()),
            lifecycle_stage: LifecycleStage::Active,
            tags,
            params,
            metrics: vec![],
        };
        self.store.create_logged_model(&model)?;
        self.get_logged_model(&model.model_id)
    }

    /// Reads a logged model.
    pub fn get_logged_model(&self, model_id: &str) -> Result<LoggedModel> {
        self.store
            .get_logged_model(model_id)?
            .filter(|m| m.lifecycle_stage == LifecycleStage::Active)
            .ok_or_else(|| {
                Error::not_found(format!("Logged model with ID '{model_id}' not found."))
            })
    }

    /// Sets a logged model's status (finalize).
    pub fn finalize_logged_model(
        &self,
        model_id: &str,
        status: LoggedModelStatus,
    ) -> Result<LoggedModel> {
        self.get_logged_model(model_id)?;
        self.store
            .set_logged_model_status(model_id, status, None, now_millis())?;
        self.get_logged_model(model_id)
    }

    /// Sets tags on a logged model.
    pub fn set_logged_model_tags(&self, model_id: &str, tags: Vec<KeyValue>) -> Result<()> {
        let tags = self.checked_tags(tags)?;
        self.get_logged_model(model_id)?;
        self.store
            .set_logged_model_tags(model_id, &tags, now_millis())
    }

    /// Deletes a logged model tag.
    pub fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<()> {
        self.get_logged_model(model_id)?;
        if !self.store.delete_logged_model_tag(model_id, key)? {
            return Err(Error::not_found(format!(
                "No tag with key '{key}' found for logged model '{model_id}'."
            )));
        }
        Ok(())
    }

    /// Logs params on a logged model.
    pub fn log_logged_model_params(&self, model_id: &str, params: Vec<KeyValue>) -> Result<()> {
        let params = Self::checked_params(params)?;
        check_keys_unique_values(&params)?;
        self.get_logged_model(model_id)?;
        self.store
            .log_logged_model_params(model_id, &params, now_millis())
    }

    /// Soft-deletes a logged model.
    pub fn delete_logged_model(&self, model_id: &str) -> Result<()> {
        self.get_logged_model(model_id)?;
        self.store.delete_logged_model(model_id, now_millis())
    }

    /// Searches logged models.
    pub fn search_logged_models(
        &self,
        experiment_ids: Vec<String>,
        filter: &str,
        datasets: Vec<(String, Option<String>)>,
        order_by: Vec<search::OrderBy>,
        max_results: Option<u64>,
        page_token: &str,
    ) -> Result<Page<LoggedModel>> {
        for id in &experiment_ids {
            validate_experiment_id(id)?;
        }
        if datasets.iter().any(|(name, _)| name.is_empty()) {
            return Err(Error::invalid(
                "`dataset_name` in the `datasets` clause must be specified.",
            ));
        }
        let query = LoggedModelQuery {
            experiment_ids,
            filter: search::parse_filter(filter, Target::LoggedModels)?,
            datasets,
            order_by,
            offset: search::parse_page_token(page_token)?,
            limit: limit(
                max_results,
                LOGGED_MODELS_DEFAULT_MAX,
                LOGGED_MODELS_MAX,
                "models",
            )?,
        };
        self.store.search_logged_models(&query)
    }
}

/// Picks at most `max` of the sorted distinct `steps`, evenly spread, first and last kept.
fn sample_steps(steps: &[i64], max: usize) -> Vec<i64> {
    if steps.len() <= max || max < 2 {
        return steps
            .iter()
            .copied()
            .take(max.max(steps.len().min(max)))
            .collect();
    }
    let last = steps.len() - 1;
    let mut out: Vec<i64> = (0..max).map(|i| steps[i * last / (max - 1)]).collect();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_keeps_ends_and_bounds_count() {
        let steps: Vec<i64> = (0..1000).collect();
        let got = sample_steps(&steps, 10);
        assert_eq!(got.len(), 10);
        assert_eq!(got[0], 0);
        assert_eq!(*got.last().unwrap(), 999);
        assert_eq!(sample_steps(&[1, 2, 3], 10), vec![1, 2, 3]);
    }

    #[test]
    fn duplicate_param_keys_with_other_values_are_refused() {
        let same = vec![KeyValue::new("a", "1"), KeyValue::new("a", "1")];
        assert!(check_keys_unique_values(&same).is_ok());
        let differ = vec![KeyValue::new("a", "1"), KeyValue::new("a", "2")];
        assert!(matches!(
            check_keys_unique_values(&differ),
            Err(Error::InvalidParameter(_))
        ));
    }

    #[test]
    fn max_results_limits() {
        assert_eq!(limit(None, 1000, 50000, "runs").unwrap(), 1000);
        assert_eq!(limit(Some(5), 1000, 50000, "runs").unwrap(), 5);
        assert!(limit(Some(50001), 1000, 50000, "runs").is_err());
    }
}
