//! Live monitoring of served models: the prediction log, training references, windows of
//! logged traffic compared with them, ground-truth labels and the metrics they give, alert
//! rules and the events they fire. Shared state (references, labels, rules, events) lives in
//! the metadata store behind `cairn_core::MonitoringStore`, so every replica of a server sees
//! one truth; drift and validation statistics come from `cairn-quality`.
//!
//! Nothing here knows HTTP or SQL: `cairn-api` serves it, `cairn-store` stores it.
#![deny(missing_docs)]

mod error;
mod live;
mod monitor;

pub use error::{Error, Result};
pub use live::{Live, LiveOptions, Notifier, VersionGauges, EVALUATION_LEASE, WEBHOOK_ATTEMPTS};
pub use monitor::*;
