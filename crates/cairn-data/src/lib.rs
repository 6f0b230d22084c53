//! Versioned data for Cairn: a content-addressed object store ([`cas`]), pointer files beside
//! the data ([`pointer`]), a project's add/status/checkout/verify/gc ([`repo`]), diffs with
//! row and schema changes for tables ([`diff`]), remotes on folders and S3 ([`remote`]) and
//! cached pipelines ([`pipeline`]).
//!
//! Nothing here knows HTTP or SQL: dataset versions are recorded through
//! `cairn_core::DatasetStore`, and progress goes to a [`progress::Progress`] the caller draws.
#![deny(missing_docs)]

pub mod cas;
pub mod columns;
pub mod diff;
pub mod digest;
mod error;
mod fsutil;
mod hash;
pub mod manifest;
pub mod pipeline;
pub mod pointer;
pub mod progress;
pub mod remote;
pub mod repo;
mod statcache;
pub mod tabular;
mod walk;

pub use error::{Error, Result};
