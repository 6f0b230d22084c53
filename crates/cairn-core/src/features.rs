//! The feature store's state behind traits: applied feature definitions (versioned, so a model
//! version can name the ones it was trained with) and the online store (the latest feature
//! values per entity and feature view). Values and definitions are opaque text here: the
//! `cairn-features` crate encodes them.
use crate::Result;

/// One applied version of a project's definitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDefinitions {
    /// The project the definitions belong to.
    pub project: String,
    /// 1, 2, ... per project.
    pub version: i64,
    /// The definitions as applied (`features.yaml`'s text, normalised by the features crate).
    pub text: String,
    /// A digest of `text`: applying the same definitions again adds no version.
    pub digest: String,
    /// When this version was applied, ms since the epoch.
    pub created_ms: i64,
}

/// The values of one entity in one feature view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnlineRow {
    /// The entity's join key values, encoded by the features crate.
    pub entity_key: String,
    /// The feature values, encoded by the features crate.
    pub values: String,
    /// When the values were observed (the source's event timestamp), ms since the epoch.
    pub event_ms: i64,
    /// When the row was created (its created timestamp, or `event_ms`), ms: breaks ties.
    pub created_ms: i64,
}

/// Applied feature definitions.
pub trait FeatureRegistryStore: Send + Sync {
    /// Records `text` as the project's next version unless the latest has the same digest;
    /// answers the version holding it and whether it is new.
    fn put_definitions(
        &self,
        project: &str,
        text: &str,
        digest: &str,
        created_ms: i64,
    ) -> Result<(i64, bool)>;
    /// A version of the project's definitions, or the latest when `version` is `None`.
    fn definitions(&self, project: &str, version: Option<i64>)
        -> Result<Option<StoredDefinitions>>;
}

/// The latest feature values per entity, per project and feature view.
pub trait OnlineStore: Send + Sync {
    /// Writes rows; an entity keeps the row with the later `(event_ms, created_ms)`, so writing
    /// the same rows again changes nothing.
    fn write_online(&self, project: &str, view: &str, rows: &[OnlineRow]) -> Result<()>;
    /// The rows of `keys`, in order (`None` where the entity has none).
    fn read_online(
        &self,
        project: &str,
        view: &str,
        keys: &[String],
    ) -> Result<Vec<Option<OnlineRow>>>;
}
