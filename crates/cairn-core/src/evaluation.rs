//! MLflow 3's GenAI evaluation loop: evaluation datasets (named sets of records, each with
//! inputs, expectations and optional outputs, linked to experiments) and registered scorers
//! (versioned, serialized judges). Records and serialized scorers are opaque text here (the
//! API's JSON); a record's identity within its dataset is its inputs, given canonically by
//! the caller, so merging records again updates instead of duplicating.
use crate::model::{KeyValue, Page};
use crate::search::{self, Comparison, OrderBy, Target};
use crate::store::EvaluationStore;
use crate::tracking::Tracking;
use crate::{now_millis, Error, Result};
use std::sync::Arc;

const SEARCH_DEFAULT_MAX: u64 = 1000;
const SEARCH_MAX: u64 = 50_000;
const RECORDS_DEFAULT_MAX: u64 = 1000;
const RECORDS_MAX: u64 = 50_000;

/// An evaluation dataset's metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluationDataset {
    /// `d-` and 32 hex digits.
    pub dataset_id: String,
    /// Its name.
    pub name: String,
    /// Tags.
    pub tags: Vec<KeyValue>,
    /// Changes whenever its records change (8 hex digits).
    pub digest: String,
    /// Created, ms.
    pub created_time: i64,
    /// Last changed, ms.
    pub last_update_time: i64,
    /// Who created it.
    pub created_by: Option<String>,
    /// Who changed it last.
    pub last_updated_by: Option<String>,
    /// Experiments it belongs to.
    pub experiment_ids: Vec<String>,
    /// How many records it holds.
    pub num_records: u64,
}

/// One record as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetRecord {
    /// `dr-` and 32 hex digits.
    pub record_id: String,
    /// The record's identity within its dataset (canonical text of its inputs).
    pub input_key: String,
    /// The record (JSON text).
    pub payload: String,
    /// Created, ms.
    pub created_time: i64,
    /// Last changed, ms.
    pub last_update_time: i64,
}

/// A record to merge in.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRecord {
    /// Canonical text of its inputs.
    pub input_key: String,
    /// The record (JSON text).
    pub payload: String,
}

/// Combines an existing record's payload with a new one (both JSON text).
pub type MergeRecord<'a> = &'a (dyn Fn(&str, &str) -> String + Sync);

/// A dataset search, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetQuery {
    /// Only datasets of these experiments (all when empty).
    pub experiment_ids: Vec<String>,
    /// AND-ed comparisons.
    pub filter: Vec<Comparison>,
    /// Ordering; newest first when empty.
    pub order_by: Vec<OrderBy>,
    /// Page size.
    pub max_results: u64,
    /// Rows skipped.
    pub offset: u64,
}

/// One version of a registered scorer.
#[derive(Debug, Clone, PartialEq)]
pub struct ScorerVersion {
    /// Experiment it is registered in.
    pub experiment_id: String,
    /// Its name.
    pub name: String,
    /// 1, 2, ... per experiment and name.
    pub version: i64,
    /// A UUID shared by every version of one name.
    pub scorer_id: String,
    /// The scorer as the client serialized it (JSON text).
    pub serialized: String,
    /// Registered, ms.
    pub creation_time: i64,
}

/// A quality issue found while evaluating (MLflow 3's issues): what goes wrong, how badly, why.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    /// `iss-` and 32 hex digits.
    pub issue_id: String,
    /// The experiment it was found in.
    pub experiment_id: String,
    /// Short name.
    pub name: String,
    /// What goes wrong.
    pub description: String,
    /// `pending`, `rejected` or `resolved`.
    pub status: String,
    /// `not_an_issue`, `low`, `medium` or `high`.
    pub severity: Option<String>,
    /// Root cause analyses.
    pub root_causes: Vec<String>,
    /// The run that found it.
    pub source_run_id: Option<String>,
    /// Categories.
    pub categories: Vec<String>,
    /// Who recorded it.
    pub created_by: Option<String>,
    /// Created, ms.
    pub created_timestamp: i64,
    /// Last changed, ms.
    pub last_updated_timestamp: i64,
}

/// What an issue update changes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IssueUpdate {
    /// New status.
    pub status: Option<String>,
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New severity.
    pub severity: Option<String>,
}

/// An issue search, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct IssueQuery {
    /// Only this experiment's issues, when given.
    pub experiment_id: Option<String>,
    /// AND-ed comparisons (`status`, `source_run_id`).
    pub filter: Vec<Comparison>,
    /// Page size.
    pub max_results: u64,
    /// Rows skipped.
    pub offset: u64,
}

const ISSUE_STATUSES: &[&str] = &["pending", "rejected", "resolved"];
const ISSUE_SEVERITIES: &[&str] = &["not_an_issue", "low", "medium", "high"];

fn check_choice(what: &str, value: &str, allowed: &[&str]) -> Result<()> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "'{value}' is not a valid {what}. Valid values are {allowed:?}"
        )))
    }
}

fn new_hex() -> String {
    crate::ids::new_run_id()
}

fn uuid() -> String {
    let h = new_hex();
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// Evaluation datasets and scorers with MLflow 3.17's rules.
#[derive(Clone)]
pub struct Evaluation {
    store: Arc<dyn EvaluationStore>,
    tracking: Tracking,
}

impl Evaluation {
    /// A service over `store`; `tracking` answers which experiments exist.
    pub fn new(store: Arc<dyn EvaluationStore>, tracking: Tracking) -> Self {
        Evaluation { store, tracking }
    }

    fn check_experiments(&self, ids: &[String]) -> Result<()> {
        for id in ids {
            self.tracking.get_experiment(id)?;
        }
        Ok(())
    }

    /// Creates a dataset in the given experiments.
    pub fn create_dataset(
        &self,
        name: &str,
        experiment_ids: Vec<String>,
        tags: Vec<KeyValue>,
        user: Option<String>,
    ) -> Result<EvaluationDataset> {
        if name.trim().is_empty() {
            return Err(Error::invalid("An evaluation dataset needs a name"));
        }
        self.check_experiments(&experiment_ids)?;
        let now = now_millis();
        let dataset = EvaluationDataset {
            dataset_id: format!("d-{}", new_hex()),
            name: name.to_string(),
            tags,
            digest: new_hex()[..8].to_string(),
            created_time: now,
            last_update_time: now,
            created_by: user.clone(),
            last_updated_by: user,
            experiment_ids,
            num_records: 0,
        };
        self.store.create_dataset(&dataset)?;
        self.get_dataset(&dataset.dataset_id)
    }

    /// One dataset.
    pub fn get_dataset(&self, dataset_id: &str) -> Result<EvaluationDataset> {
        self.store.get_dataset(dataset_id)?.ok_or_else(|| {
            Error::not_found(format!(
                "Evaluation dataset with ID '{dataset_id}' not found"
            ))
        })
    }

    /// Deletes a dataset with its records.
    pub fn delete_dataset(&self, dataset_id: &str) -> Result<()> {
        self.get_dataset(dataset_id)?;
        self.store.delete_dataset(dataset_id)
    }

    /// Searches datasets by MLflow's dataset filter grammar.
    pub fn search_datasets(
        &self,
        experiment_ids: Vec<String>,
        filter: &str,
        order_by: &[String],
        max_results: Option<u64>,
        page_token: &str,
    ) -> Result<Page<EvaluationDataset>> {
        let max_results = match max_results {
            None | Some(0) => SEARCH_DEFAULT_MAX,
            Some(n) if n > SEARCH_MAX => {
                return Err(Error::invalid(format!(
                    "Invalid value {n} for parameter 'max_results' supplied. It must be at \
                     most {SEARCH_MAX}."
                )))
            }
            Some(n) => n,
        };
        self.store.search_datasets(&DatasetQuery {
            experiment_ids,
            filter: search::parse_filter(filter, Target::EvaluationDatasets)?,
            order_by: order_by
                .iter()
                .filter(|c| !c.trim().is_empty())
                .map(|c| search::parse_order_by(c, Target::EvaluationDatasets))
                .collect::<Result<_>>()?,
            max_results,
            offset: search::parse_page_token(page_token)?,
        })
    }

    /// Sets tags (an empty value deletes the tag, as MLflow's client does).
    pub fn set_dataset_tags(&self, dataset_id: &str, tags: Vec<KeyValue>) -> Result<()> {
        self.get_dataset(dataset_id)?;
        self.store.set_dataset_tags(dataset_id, &tags, now_millis())
    }

    /// Deletes one tag.
    pub fn delete_dataset_tag(&self, dataset_id: &str, key: &str) -> Result<()> {
        self.get_dataset(dataset_id)?;
        self.store.delete_dataset_tag(dataset_id, key, now_millis())
    }

    /// Links the dataset to more experiments, or unlinks it.
    pub fn set_dataset_experiments(
        &self,
        dataset_id: &str,
        experiment_ids: &[String],
        add: bool,
    ) -> Result<EvaluationDataset> {
        self.get_dataset(dataset_id)?;
        if add {
            self.check_experiments(experiment_ids)?;
        }
        self.store
            .set_dataset_experiments(dataset_id, experiment_ids, add)?;
        self.get_dataset(dataset_id)
    }

    /// Merges records: one whose inputs are already in the dataset updates it through
    /// `merge`; the others are inserted. Answers (inserted, updated).
    pub fn upsert_records(
        &self,
        dataset_id: &str,
        records: Vec<NewRecord>,
        merge: MergeRecord<'_>,
        user: Option<String>,
    ) -> Result<(u64, u64)> {
        self.get_dataset(dataset_id)?;
        let digest = new_hex()[..8].to_string();
        self.store
            .upsert_records(dataset_id, &records, merge, now_millis(), &digest, user)
    }

    /// One page of a dataset's records, oldest first.
    pub fn get_records(
        &self,
        dataset_id: &str,
        max_results: Option<u64>,
        page_token: &str,
    ) -> Result<Page<DatasetRecord>> {
        self.get_dataset(dataset_id)?;
        let max = match max_results {
            None | Some(0) => RECORDS_DEFAULT_MAX,
            Some(n) => n.min(RECORDS_MAX),
        };
        self.store
            .get_records(dataset_id, max, search::parse_page_token(page_token)?)
    }

    /// Deletes records by id; answers how many went.
    pub fn delete_records(&self, dataset_id: &str, record_ids: &[String]) -> Result<u64> {
        self.get_dataset(dataset_id)?;
        self.store
            .delete_records(dataset_id, record_ids, now_millis())
    }

    /// Registers a new version of a scorer (the first gets a new scorer id).
    pub fn register_scorer(
        &self,
        experiment_id: &str,
        name: &str,
        serialized: &str,
    ) -> Result<ScorerVersion> {
        if name.trim().is_empty() {
            return Err(Error::invalid("A scorer needs a name"));
        }
        self.tracking.get_experiment(experiment_id)?;
        self.store
            .register_scorer(experiment_id, name, serialized, &uuid(), now_millis())
    }

    /// The newest version of each scorer of an experiment.
    pub fn list_scorers(&self, experiment_id: &str) -> Result<Vec<ScorerVersion>> {
        self.tracking.get_experiment(experiment_id)?;
        self.store.list_scorers(experiment_id, None)
    }

    /// Every version of one scorer.
    pub fn scorer_versions(&self, experiment_id: &str, name: &str) -> Result<Vec<ScorerVersion>> {
        self.tracking.get_experiment(experiment_id)?;
        let versions = self.store.list_scorers(experiment_id, Some(name))?;
        if versions.is_empty() {
            return Err(scorer_not_found(experiment_id, name));
        }
        Ok(versions)
    }

    /// One version (the newest when `version` is `None`).
    pub fn get_scorer(
        &self,
        experiment_id: &str,
        name: &str,
        version: Option<i64>,
    ) -> Result<ScorerVersion> {
        let versions = self.scorer_versions(experiment_id, name)?;
        match version {
            None => versions.into_iter().max_by_key(|v| v.version),
            Some(n) => versions.into_iter().find(|v| v.version == n),
        }
        .ok_or_else(|| scorer_not_found(experiment_id, name))
    }

    /// Deletes one version, or every version when `version` is `None`.
    pub fn delete_scorer(
        &self,
        experiment_id: &str,
        name: &str,
        version: Option<i64>,
    ) -> Result<()> {
        if self.store.delete_scorer(experiment_id, name, version)? == 0 {
            return Err(scorer_not_found(experiment_id, name));
        }
        Ok(())
    }
}

impl Evaluation {
    /// Records an issue in an active experiment.
    pub fn create_issue(&self, mut issue: Issue) -> Result<Issue> {
        let exp = self.tracking.get_experiment(&issue.experiment_id)?;
        if exp.lifecycle_stage != crate::model::LifecycleStage::Active {
            return Err(Error::invalid(format!(
                "The experiment {} must be in the 'active' state.",
                issue.experiment_id
            )));
        }
        if issue.name.trim().is_empty() {
            return Err(Error::invalid("An issue needs a name"));
        }
        if issue.status.is_empty() {
            issue.status = "pending".into();
        }
        check_choice("issue status", &issue.status, ISSUE_STATUSES)?;
        if let Some(sev) = &issue.severity {
            check_choice("issue severity", sev, ISSUE_SEVERITIES)?;
        }
        let now = now_millis();
        issue.issue_id = format!("iss-{}", new_hex());
        issue.created_timestamp = now;
        issue.last_updated_timestamp = now;
        self.store.create_issue(&issue)?;
        Ok(issue)
    }

    /// One issue.
    pub fn get_issue(&self, issue_id: &str) -> Result<Issue> {
        self.store
            .get_issue(issue_id)?
            .ok_or_else(|| Error::not_found(format!("Issue with ID '{issue_id}' not found")))
    }

    /// Changes an issue's status, name, description or severity.
    pub fn update_issue(&self, issue_id: &str, update: IssueUpdate) -> Result<Issue> {
        let mut issue = self.get_issue(issue_id)?;
        if let Some(s) = update.status {
            check_choice("issue status", &s, ISSUE_STATUSES)?;
            issue.status = s;
        }
        if let Some(sev) = update.severity {
            check_choice("issue severity", &sev, ISSUE_SEVERITIES)?;
            issue.severity = Some(sev);
        }
        if let Some(n) = update.name {
            issue.name = n;
        }
        if let Some(d) = update.description {
            issue.description = d;
        }
        issue.last_updated_timestamp = now_millis();
        self.store.update_issue(&issue)?;
        Ok(issue)
    }

    /// Searches issues (`status`, `source_run_id` with `=` and `!=`), newest first.
    pub fn search_issues(
        &self,
        experiment_id: Option<String>,
        filter: &str,
        max_results: Option<u64>,
        page_token: &str,
    ) -> Result<Page<Issue>> {
        let max_results = match max_results {
            None | Some(0) => SEARCH_DEFAULT_MAX,
            Some(n) => n.min(SEARCH_MAX),
        };
        self.store.search_issues(&IssueQuery {
            experiment_id,
            filter: search::parse_filter(filter, Target::Issues)?,
            max_results,
            offset: search::parse_page_token(page_token)?,
        })
    }
}

fn scorer_not_found(experiment_id: &str, name: &str) -> Error {
    Error::not_found(format!(
        "Scorer with name '{name}' not found for experiment {experiment_id}."
    ))
}
