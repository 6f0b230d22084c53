//! The model registry service: MLflow's registry semantics (names, versions, stages, aliases,
//! tags) over a [`RegistryStore`], with sources resolved through the tracking store.
use crate::model::*;
use crate::search::{self, Target};
use crate::store::{ModelVersionQuery, RegisteredModelQuery, RegistryStore};
use crate::validate::{validate_key, validate_length};
use crate::{now_millis, Error, Result, Tracking};
use std::sync::Arc;

const MAX_TAG_VALUE_LENGTH: usize = 100_000;
const MAX_ALIAS_LENGTH: usize = 255;
const MODELS_DEFAULT_MAX: u64 = 100;
const MODELS_MAX: u64 = 1000;
const VERSIONS_DEFAULT_MAX: u64 = 10_000;
const VERSIONS_MAX: u64 = 200_000;

/// What a client sends to create a model version.
#[derive(Debug, Clone, Default)]
pub struct NewModelVersion {
    /// Registered model name.
    pub name: String,
    /// `runs:/<run>/<path>`, `models:/m-...`, or a storage URI.
    pub source: String,
    /// Run that produced it.
    pub run_id: Option<String>,
    /// Link to the run.
    pub run_link: Option<String>,
    /// Logged model id.
    pub model_id: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Tags.
    pub tags: Vec<KeyValue>,
    /// Who registers it.
    pub user_id: Option<String>,
}

/// The registry with MLflow's semantics.
#[derive(Clone)]
pub struct Registry {
    store: Arc<dyn RegistryStore>,
    tracking: Tracking,
}

fn limit(requested: Option<u64>, default: u64, max: u64) -> Result<u64> {
    match requested {
        None | Some(0) => Ok(default),
        Some(n) if n > max => Err(Error::invalid(format!(
            "Invalid value {n} for parameter 'max_results' supplied. It must be at most {max}."
        ))),
        Some(n) => Ok(n),
    }
}

/// Checks a registered model name: non-empty, without `/` or `:` (they would break URIs).
pub fn validate_model_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::invalid("Registered model name cannot be empty."));
    }
    // MLflow's `path_not_unique`: a name must not resolve to another when taken as a file
    // name (`.`, `..`, `..\..\x`).
    if name == "." || name.starts_with("..") {
        return Err(Error::invalid(format!(
            "Invalid value '{name}' for parameter 'name' supplied: Names may be treated as files \
             in certain cases, and must not resolve to other names when treated as such."
        )));
    }
    if name.contains('/') || name.contains(':') {
        return Err(Error::invalid(format!(
            "Invalid model name '{name}': names may not contain '/' or ':'."
        )));
    }
    validate_length("name", name, 256)
}

/// Checks an alias: `[\w-]+`, at most 255 characters, not `latest` and not `v<number>`.
pub fn validate_alias(alias: &str) -> Result<()> {
    let bad = |why: &str| Error::invalid(format!("Invalid alias name '{alias}': {why}"));
    if alias.is_empty() || alias.len() > MAX_ALIAS_LENGTH {
        return Err(bad("it must have 1 to 255 characters"));
    }
    if !alias
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    {
        return Err(bad(
            "it may only contain alphanumerics, underscores and dashes",
        ));
    }
    if alias.eq_ignore_ascii_case("latest") {
        return Err(bad("'latest' is reserved"));
    }
    let lower = alias.to_ascii_lowercase();
    if lower.starts_with('v') && lower.len() > 1 && lower[1..].chars().all(|c| c.is_ascii_digit()) {
        return Err(bad(
            "aliases of the form 'v<number>' are reserved for versions",
        ));
    }
    Ok(())
}

/// Parses a version number as sent on the wire.
pub fn parse_version(version: &str) -> Result<i64> {
    version
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| {
            Error::invalid(format!(
                "Invalid value '{version}' for version: it must be a positive integer."
            ))
        })
}

impl Registry {
    /// A registry over `store`, resolving `runs:/` and `models:/m-` sources through `tracking`.
    pub fn new(store: Arc<dyn RegistryStore>, tracking: Tracking) -> Self {
        Registry { store, tracking }
    }

    /// The tracking service sources are resolved through.
    pub fn tracking(&self) -> &Tracking {
        &self.tracking
    }

    fn not_found(name: &str) -> Error {
        Error::not_found(format!("Registered Model with name={name} not found"))
    }

    fn version_not_found(name: &str, version: i64) -> Error {
        Error::not_found(format!(
            "Model Version (name={name}, version={version}) not found"
        ))
    }

    fn checked_tags(tags: &[KeyValue]) -> Result<()> {
        for t in tags {
            validate_key("key", &t.key)?;
            validate_length("value", &t.value, MAX_TAG_VALUE_LENGTH)?;
        }
        Ok(())
    }

    /// Creates a registered model; `AlreadyExists` if the name is taken.
    pub fn create_model(
        &self,
        name: &str,
        description: Option<&str>,
        tags: Vec<KeyValue>,
    ) -> Result<RegisteredModel> {
        validate_model_name(name)?;
        Self::checked_tags(&tags)?;
        self.store
            .create_registered_model(name, description.unwrap_or(""), &tags, now_millis())?;
        self.get_model(name)
    }

    /// Reads a registered model.
    pub fn get_model(&self, name: &str) -> Result<RegisteredModel> {
        validate_model_name(name)?;
        self.store
            .get_registered_model(name)?
            .ok_or_else(|| Self::not_found(name))
    }

    /// Renames a model (its versions and aliases follow).
    pub fn rename_model(&self, name: &str, new_name: &str) -> Result<RegisteredModel> {
        validate_model_name(new_name)?;
        self.get_model(name)?;
        self.store
            .rename_registered_model(name, new_name, now_millis())?;
        self.get_model(new_name)
    }

    /// Changes a model's description.
    pub fn update_model(&self, name: &str, description: &str) -> Result<RegisteredModel> {
        self.get_model(name)?;
        self.store
            .update_registered_model(name, description, now_millis())?;
        self.get_model(name)
    }

    /// Deletes a model with its versions, tags and aliases.
    pub fn delete_model(&self, name: &str) -> Result<()> {
        self.get_model(name)?;
        self.store.delete_registered_model(name)
    }

    /// Searches registered models.
    pub fn search_models(
        &self,
        filter: &str,
        order_by: &[String],
        max_results: Option<u64>,
        page_token: &str,
    ) -> Result<Page<RegisteredModel>> {
        let query = RegisteredModelQuery {
            filter: search::parse_filter(filter, Target::RegisteredModels)?,
            order_by: order_by
                .iter()
                .map(|o| search::parse_order_by(o, Target::RegisteredModels))
                .collect::<Result<_>>()?,
            offset: search::parse_page_token(page_token)?,
            limit: limit(max_results, MODELS_DEFAULT_MAX, MODELS_MAX)?,
        };
        self.store.search_registered_models(&query)
    }

    /// Sets a registered model tag.
    pub fn set_model_tag(&self, name: &str, key: &str, value: &str) -> Result<()> {
        Self::checked_tags(&[KeyValue::new(key, value)])?;
        self.get_model(name)?;
        self.store
            .set_registered_model_tag(name, &KeyValue::new(key, value))
    }

    /// Deletes a registered model tag.
    pub fn delete_model_tag(&self, name: &str, key: &str) -> Result<()> {
        self.get_model(name)?;
        self.store.delete_registered_model_tag(name, key)?;
        Ok(())
    }

    /// Where a source's files are: a run's artifact root for `runs:/`, a logged model's for
    /// `models:/m-...`, the source itself otherwise.
    /// Checks a version before it is created: name, tags, source, and that the model exists.
    pub fn check_new_version(&self, new: &NewModelVersion) -> Result<()> {
        validate_model_name(&new.name)?;
        Self::checked_tags(&new.tags)?;
        if new.source.is_empty() {
            return Err(Error::invalid(
                "Missing value for required parameter 'source'.",
            ));
        }
        crate::uris::validate_model_source(&new.source, new.run_id.as_deref())?;
        self.get_model(&new.name)?;
        Ok(())
    }

    /// Where a version's files are, resolved from its source (`runs:/` and logged-model
    /// sources become their artifact URIs).
    pub fn storage_location_of(&self, source: &str) -> Result<String> {
        self.resolve_source(source)
    }

    fn resolve_source(&self, source: &str) -> Result<String> {
        if let Some(rest) = source.strip_prefix("runs:/") {
            let rest = rest.trim_start_matches('/');
            let (run_id, path) = rest.split_once('/').unwrap_or((rest, ""));
            let run = self.tracking.get_run(run_id)?;
            let root = run.info.artifact_uri.trim_end_matches('/').to_string();
            return Ok(if path.is_empty() {
                root
            } else {
                format!("{root}/{}", path.trim_matches('/'))
            });
        }
        if let Some(id) = source
            .strip_prefix("models:/")
            .filter(|id| id.starts_with("m-"))
        {
            return Ok(self
                .tracking
                .get_logged_model(id.trim_end_matches('/'))?
                .artifact_uri);
        }
        Ok(source.to_string())
    }

    /// Registers a new version; the number is allocated inside the store's transaction, so
    /// concurrent registrations get distinct versions.
    pub fn create_version(&self, new: NewModelVersion) -> Result<ModelVersion> {
        self.check_new_version(&new)?;
        let storage_location = self.resolve_source(&new.source)?;
        let run_id = new.run_id.filter(|r| !r.is_empty()).or_else(|| {
            new.source.strip_prefix("runs:/").map(|r| {
                r.trim_start_matches('/')
                    .split('/')
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
        });
        let now = now_millis();
        let version = ModelVersion {
            name: new.name,
            version: 0,
            creation_time: now,
            last_updated_time: now,
            user_id: new.user_id.unwrap_or_default(),
            current_stage: Stage::None,
            description: new.description.unwrap_or_default(),
            source: new.source,
            storage_location,
            run_id,
            run_link: new.run_link.filter(|l| !l.is_empty()),
            model_id: new.model_id.filter(|m| !m.is_empty()),
            status: "READY".into(),
            tags: new.tags,
            aliases: vec![],
        };
        let number = self.store.create_model_version(&version)?;
        self.get_version(&version.name, number)
    }

    /// Reads a version.
    pub fn get_version(&self, name: &str, version: i64) -> Result<ModelVersion> {
        self.store
            .get_model_version(name, version)?
            .ok_or_else(|| Self::version_not_found(name, version))
    }

    /// Changes a version's description.
    pub fn update_version(
        &self,
        name: &str,
        version: i64,
        description: &str,
    ) -> Result<ModelVersion> {
        self.get_version(name, version)?;
        self.store
            .update_model_version(name, version, description, now_millis())?;
        self.get_version(name, version)
    }

    /// Moves a version to a stage, optionally archiving the others in that stage.
    pub fn transition_stage(
        &self,
        name: &str,
        version: i64,
        stage: Stage,
        archive_existing: bool,
    ) -> Result<ModelVersion> {
        self.get_version(name, version)?;
        let archive = archive_existing && matches!(stage, Stage::Staging | Stage::Production);
        self.store
            .transition_stage(name, version, stage, archive, now_millis())?;
        self.get_version(name, version)
    }

    /// Deletes a version and the aliases pointing at it.
    pub fn delete_version(&self, name: &str, version: i64) -> Result<()> {
        self.get_version(name, version)?;
        self.store.delete_model_version(name, version)
    }

    /// Where a version's files are.
    pub fn download_uri(&self, name: &str, version: i64) -> Result<String> {
        Ok(self.get_version(name, version)?.storage_location)
    }

    /// The newest version per stage (all stages when `stages` is empty).
    pub fn latest_versions(&self, name: &str, stages: &[String]) -> Result<Vec<ModelVersion>> {
        let model = self.get_model(name)?;
        let wanted: Vec<Stage> = stages
            .iter()
            .map(|s| Stage::parse(s))
            .collect::<Result<_>>()?;
        Ok(model
            .latest_versions
            .into_iter()
            .filter(|v| wanted.is_empty() || wanted.contains(&v.current_stage))
            .collect())
    }

    /// Searches versions.
    pub fn search_versions(
        &self,
        filter: &str,
        order_by: &[String],
        max_results: Option<u64>,
        page_token: &str,
    ) -> Result<Page<ModelVersion>> {
        let query = ModelVersionQuery {
            filter: search::parse_filter(filter, Target::ModelVersions)?,
            order_by: order_by
                .iter()
                .map(|o| search::parse_order_by(o, Target::ModelVersions))
                .collect::<Result<_>>()?,
            offset: search::parse_page_token(page_token)?,
            limit: limit(max_results, VERSIONS_DEFAULT_MAX, VERSIONS_MAX)?,
        };
        self.store.search_model_versions(&query)
    }

    /// Sets a version tag.
    pub fn set_version_tag(&self, name: &str, version: i64, key: &str, value: &str) -> Result<()> {
        Self::checked_tags(&[KeyValue::new(key, value)])?;
        self.get_version(name, version)?;
        self.store
            .set_model_version_tag(name, version, &KeyValue::new(key, value))
    }

    /// Deletes a version tag.
    pub fn delete_version_tag(&self, name: &str, version: i64, key: &str) -> Result<()> {
        self.get_version(name, version)?;
        self.store.delete_model_version_tag(name, version, key)?;
        Ok(())
    }

    /// Points an alias at a version (moving it if it pointed elsewhere).
    pub fn set_alias(&self, name: &str, alias: &str, version: i64) -> Result<()> {
        validate_alias(alias)?;
        self.get_version(name, version)?;
        self.store.set_alias(name, alias, version, now_millis())
    }

    /// Removes an alias.
    pub fn delete_alias(&self, name: &str, alias: &str) -> Result<()> {
        self.get_model(name)?;
        if !self.store.delete_alias(name, alias)? {
            return Err(Error::not_found(format!(
                "Registered model alias {alias} not found."
            )));
        }
        Ok(())
    }

    /// The identity of the version `which` names, if there is one: one query, for the
    /// serving path.
    pub fn version_identity(
        &self,
        name: &str,
        which: &crate::VersionSelector,
    ) -> Result<Option<crate::store::VersionIdentity>> {
        self.store.version_identity(name, which)
    }

    /// The version an alias points at.
    pub fn version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion> {
        self.get_model(name)?;
        let version = self.store.get_alias(name, alias)?.ok_or_else(|| {
            Error::not_found(format!("Registered model alias {alias} not found."))
        })?;
        self.get_version(name, version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_rules() {
        for good in ["champion", "prod-2", "a_b"] {
            assert!(validate_alias(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "latest",
            "LATEST",
            "v1",
            "V12",
            "a b",
            "a/b",
            &"x".repeat(256),
        ] {
            assert!(validate_alias(bad).is_err(), "{bad}");
        }
        assert!(validate_alias("v1a").is_ok());
    }

    #[test]
    fn model_names_and_versions() {
        assert!(validate_model_name("churn").is_ok());
        for bad in ["", " ", "a/b", "a:b"] {
            assert!(validate_model_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_version("3").unwrap(), 3);
        for bad in ["0", "-1", "x", ""] {
            assert!(parse_version(bad).is_err(), "{bad}");
        }
        assert_eq!(Stage::parse("production").unwrap(), Stage::Production);
        assert!(Stage::parse("prod").is_err());
    }
}
