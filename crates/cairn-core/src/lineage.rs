//! Lineage: from a model version to the run that produced it, the exact dataset versions that
//! run read and the code commit it ran; and back, from a dataset version to every run and model
//! version that used it.
//!
//! A run names its data through MLflow dataset inputs (`log-inputs`). MLflow caps an input's
//! digest at 36 characters, so a Cairn dataset is named by a prefix of its 64-character digest
//! ([`run_input_digest`]); any input digest of 8 characters or more that prefixes a dataset
//! version's digest links to it.
use crate::model::{DatasetVersion, ModelVersion, Run};
use crate::{DatasetStore, Error, Registry, Result, Tracking};
use std::sync::Arc;

/// Length of the digest prefix a run logs for a Cairn dataset (MLflow's limit is 36).
pub const RUN_INPUT_DIGEST_LEN: usize = 32;
/// Shortest input digest that is matched against dataset versions.
pub const MIN_MATCHED_DIGEST_LEN: usize = 8;
/// The run tag MLflow uses for the code commit.
pub const GIT_COMMIT_TAG: &str = "mlflow.source.git.commit";

/// The digest a run logs as its input for a dataset version.
pub fn run_input_digest(full_digest: &str) -> &str {
    &full_digest[..full_digest.len().min(RUN_INPUT_DIGEST_LEN)]
}

/// One dataset input of a run, with the Cairn dataset versions its digest names.
#[derive(Debug, Clone)]
pub struct InputLineage {
    /// The input's name.
    pub name: String,
    /// The digest the run logged.
    pub digest: String,
    /// `source_type` as logged.
    pub source_type: String,
    /// `source` as logged.
    pub source: String,
    /// `mlflow.data.context` tag (`training`, `eval`, ...), if any.
    pub context: Option<String>,
    /// Cairn dataset versions with that digest (empty when the data is not Cairn's).
    pub versions: Vec<DatasetVersion>,
}

/// A run as lineage shows it.
#[derive(Debug, Clone)]
pub struct RunLineage {
    /// Run id.
    pub run_id: String,
    /// Run name.
    pub run_name: String,
    /// Experiment id.
    pub experiment_id: String,
    /// `mlflow.source.git.commit`, if recorded.
    pub git_commit: Option<String>,
    /// `mlflow.source.name`, if recorded.
    pub source_name: Option<String>,
    /// Its dataset inputs.
    pub inputs: Vec<InputLineage>,
}

/// Model version -> run -> dataset versions -> code commit.
#[derive(Debug, Clone)]
pub struct ModelLineage {
    /// The model version.
    pub model_version: ModelVersion,
    /// The run that produced it; `None` when the version names no run.
    pub run: Option<RunLineage>,
}

/// Dataset version -> runs -> model versions.
#[derive(Debug, Clone)]
pub struct DatasetLineage {
    /// The dataset version.
    pub dataset: DatasetVersion,
    /// Runs that logged it as an input, oldest first.
    pub runs: Vec<RunLineage>,
    /// Model versions produced by those runs.
    pub model_versions: Vec<ModelVersion>,
    /// Checks of its bytes against expectation suites, newest first.
    pub validations: Vec<crate::model::DatasetValidation>,
    /// What it was made from (a training set: its feature definitions and source versions).
    pub sources: Vec<crate::model::DatasetSource>,
}

/// Answers lineage questions over the tracking, registry and dataset stores.
#[derive(Clone)]
pub struct Lineage {
    tracking: Tracking,
    registry: Registry,
    datasets: Arc<dyn DatasetStore>,
}

fn tag<'a>(run: &'a Run, key: &str) -> Option<&'a str> {
    run.tags
        .iter()
        .find(|t| t.key == key)
        .map(|t| t.value.as_str())
}

impl Lineage {
    /// Lineage over these services.
    pub fn new(registry: Registry, datasets: Arc<dyn DatasetStore>) -> Self {
        Lineage {
            tracking: registry.tracking().clone(),
            registry,
            datasets,
        }
    }

    /// The dataset store.
    pub fn datasets(&self) -> &Arc<dyn DatasetStore> {
        &self.datasets
    }

    /// Dataset versions whose digest the input digest names.
    fn versions_for(&self, digest: &str) -> Result<Vec<DatasetVersion>> {
        if digest.len() < MIN_MATCHED_DIGEST_LEN || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(vec![]);
        }
        self.datasets
            .dataset_versions_by_digest(&digest.to_ascii_lowercase())
    }

    /// A run's dataset inputs with the Cairn dataset versions their digests name.
    pub fn inputs_of_run(&self, run: &Run) -> Result<Vec<InputLineage>> {
        let mut inputs = Vec::new();
        for input in &run.dataset_inputs {
            let d = &input.dataset;
            inputs.push(InputLineage {
                name: d.name.clone(),
                digest: d.digest.clone(),
                source_type: d.source_type.clone(),
                source: d.source.clone(),
                context: input
                    .tags
                    .iter()
                    .find(|t| t.key == "mlflow.data.context")
                    .map(|t| t.value.clone()),
                versions: self.versions_for(&d.digest)?,
            });
        }
        Ok(inputs)
    }

    fn run_lineage(&self, run: &Run) -> Result<RunLineage> {
        let inputs = self.inputs_of_run(run)?;
        Ok(RunLineage {
            run_id: run.info.run_id.clone(),
            run_name: run.info.run_name.clone(),
            experiment_id: run.info.experiment_id.clone(),
            git_commit: tag(run, GIT_COMMIT_TAG).map(str::to_owned),
            source_name: tag(run, "mlflow.source.name").map(str::to_owned),
            inputs,
        })
    }

    /// Lineage of a model version, named by number or by alias.
    pub fn of_model_version(&self, name: &str, version: &str) -> Result<ModelLineage> {
        let model_version = match version.parse::<i64>() {
            Ok(number) => self.registry.get_version(name, number)?,
            Err(_) => self.registry.version_by_alias(name, version)?,
        };
        let run = match model_version.run_id.as_deref().filter(|id| !id.is_empty()) {
            Some(run_id) => match self.tracking.get_run(run_id) {
                Ok(run) => Some(self.run_lineage(&run)?),
                // A version may outlive its run; lineage then stops at the version.
                Err(Error::NotFound(_)) => None,
                Err(e) => return Err(e),
            },
            None => None,
        };
        Ok(ModelLineage { model_version, run })
    }

    /// Lineage of a dataset version: the runs that read it and the model versions they made.
    pub fn of_dataset_version(&self, name: &str, version: i64) -> Result<DatasetLineage> {
        let dataset = self
            .datasets
            .get_dataset_version(name, version)?
            .ok_or_else(|| {
                Error::not_found(format!("Dataset version {name}@{version} not found"))
            })?;
        let mut runs = Vec::new();
        let mut model_versions = Vec::new();
        for run_id in self.tracking.runs_with_input_digest(&dataset.digest)? {
            let run = match self.tracking.get_run(&run_id) {
                Ok(run) => run,
                Err(Error::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            runs.push(self.run_lineage(&run)?);
            let filter = format!("run_id = '{run_id}'");
            let mut token = String::new();
            loop {
                let page = self.registry.search_versions(&filter, &[], None, &token)?;
                model_versions.extend(page.items);
                match page.next_offset {
                    Some(next) => token = crate::search::page_token(next),
                    None => break,
                }
            }
        }
        model_versions.sort_by(|a, b| (&a.name, a.version).cmp(&(&b.name, b.version)));
        let validations = self
            .datasets
            .list_dataset_validations(&dataset.name, dataset.version)?;
        let sources = self
            .datasets
            .dataset_sources(&dataset.name, dataset.version)?;
        Ok(DatasetLineage {
            dataset,
            runs,
            model_versions,
            validations,
            sources,
        })
    }
}
