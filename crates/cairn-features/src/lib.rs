//! Cairn's feature store, in Feast's terms: entities, sources, feature views and feature
//! services defined in `features.yaml` ([`definitions`]); training sets joined point in time
//! as Feast's `get_historical_features` joins them ([`historical`]); the latest values
//! materialized into an online store ([`online`]) and read back with Feast's statuses.
//! CSV sources are read once into typed Parquet ([`csv_source`]).
//! Storage sits behind `cairn_core`'s `FeatureRegistryStore` and `OnlineStore` traits.
pub mod csv_source;
pub mod definitions;
mod error;
pub mod historical;
pub mod online;
mod table;

pub use error::{Error, Result};
