//! Cairn's tabular trainer.
//!
//! `frame` reads a CSV or Parquet table into typed feature columns and a target; `metrics` holds
//! the standard scores with scikit-learn's definitions; `baseline`, `linear` and `gbdt` are the
//! models; `onnx` exports them for `cairn serve`; `split` cuts rows by a seed; `train` fits and
//! scores the chosen models on one split; `plots` draws a confusion matrix or residuals as SVG;
//! `gate` reads a promotion policy and judges measured values against it.
//! Nothing here knows of runs, HTTP or storage: the binary (`cairn train`) logs what these return.
pub mod baseline;
pub mod error;
pub mod frame;
pub mod gate;
pub mod gbdt;
pub mod linear;
pub mod metrics;
pub mod onnx;
pub mod plots;
pub mod split;
pub mod train;

pub use error::{Error, Result};
