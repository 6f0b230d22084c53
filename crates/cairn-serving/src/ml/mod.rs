//! ONNX-ML operators that Cairn implements itself and registers with tract's public
//! `op_register`, replacing tract's own where they exist: tract 0.23.9's
//! TreeEnsembleClassifier walks each tree through iterators and is orders of magnitude slower
//! than onnxruntime, its LinearClassifier runs as several general operators (see `linear`),
//! and TreeEnsembleRegressor, Scaler and ZipMap are missing.
//!
//! Numbers follow onnxruntime's CPU kernels (the reference that `skl2onnx` and its users test
//! against), including its handling of binary classifiers and its post-transforms, and are
//! checked against onnxruntime in `tests/onnx_ml.rs`.

mod linear;
mod scaler;
mod transform;
mod tree;
mod zipmap;

use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::TractResult;

/// A float list attribute as `f32` bits (so that an operator holding it can derive `Eq` and
/// `Hash`); empty when absent.
fn f32_bits(node: &NodeProto, name: &str) -> TractResult<Vec<u32>> {
    Ok(node
        .get_attr_opt_slice::<f32>(name)?
        .unwrap_or(&[])
        .iter()
        .map(|v| v.to_bits())
        .collect())
}

/// Class labels of a classifier.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Labels {
    Ints(Vec<i64>),
    Strings(Vec<String>),
}

impl Labels {
    fn len(&self) -> usize {
        match self {
            Labels::Ints(v) => v.len(),
            Labels::Strings(v) => v.len(),
        }
    }
}

/// tract's ONNX front end with Cairn's ONNX-ML operators registered.
pub(crate) fn onnx() -> tract_onnx::Onnx {
    let mut onnx = tract_onnx::onnx();
    let ops = &mut onnx.op_register;
    ops.insert("LinearClassifier", linear::classifier);
    ops.insert("TreeEnsembleClassifier", tree::classifier);
    ops.insert("TreeEnsembleRegressor", tree::regressor);
    ops.insert("Scaler", scaler::scaler);
    ops.insert("ZipMap", zipmap::zipmap);
    onnx
}
