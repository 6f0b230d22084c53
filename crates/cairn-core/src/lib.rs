//! Cairn's domain: what an experiment, a run, a metric and a logged model are, the rules they
//! obey (names, limits, the run life cycle, immutable params, search grammar), the [`Error`]
//! every layer speaks, and the storage traits ([`TrackingStore`], [`ArtifactStore`]) that the
//! `cairn-store` crate implements.
//!
//! The entry point for callers is [`Tracking`]: it validates a request, applies the rules and
//! calls the store. This crate knows nothing of HTTP, SQL, JSON or an async runtime.
#![deny(missing_docs)]

pub mod auth;
pub mod dates;
mod error;
pub mod evaluation;
pub mod features;
pub mod ids;
pub mod lineage;
pub mod model;
pub mod monitoring;
pub mod paths;
pub mod registry;
pub mod search;
mod store;
pub mod trace_metrics;
pub mod traces;
pub mod tracking;
pub mod uris;
pub mod validate;

pub use error::{Error, Result};
pub use evaluation::Evaluation;
pub use features::{FeatureRegistryStore, OnlineStore};
pub use monitoring::MonitoringStore;
pub use registry::Registry;
pub use store::{
    ArtifactEntry, ArtifactStore, DatasetStore, EvaluationStore, ExperimentLocation,
    ExperimentQuery, LoggedModelQuery, ModelVersionQuery, RegisteredModelQuery, RegistryStore,
    RunQuery, TraceStore, TrackingStore, VersionIdentity, VersionSelector, FEATURE_SERVICE_TAG,
};
pub use traces::Traces;
pub use tracking::Tracking;

/// Milliseconds since the Unix epoch, the unit MLflow uses for every timestamp.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
