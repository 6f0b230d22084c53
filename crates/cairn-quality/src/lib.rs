//! Data quality for Cairn: tables read as bounded Arrow batches ([`table`]), expectation
//! suites in Great Expectations' terms ([`suite`]) checked in one streamed pass ([`validate`]), drift between a
//! reference and a current dataset with Evidently's methods and thresholds ([`drift`]) and the
//! statistics behind them, computed as scipy computes them ([`ks`], [`special`]).
//!
//! Nothing here knows HTTP, SQL or the terminal: callers render reports and store results.
#![deny(missing_docs)]

pub mod drift;
mod error;
pub mod ks;
pub mod profile;
pub mod report;
pub mod special;
pub mod suite;
pub mod table;
pub mod validate;

pub use error::{Error, Result};
