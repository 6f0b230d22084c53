//! ONNX models for Cairn, run in process by the pure-Rust `tract-onnx` (no downloaded
//! runtime). [`OnnxModel`] loads and optimises a graph once, exposes its [`Signature`] (input
//! and output names, element types, shapes with `-1` for free dimensions) and runs
//! [`OnnxModel::infer`] from any thread over the shared plan.
//!
//! A graph that tract cannot load is refused at load time with the operator named, never at
//! the first request.
#![deny(missing_docs)]

pub mod build;
mod guard;
mod ml;
mod runner;

pub use runner::{Runner, RunnerOptions};

use std::sync::Arc;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ServingError {
    /// The file is not a model tract can load (the message names the operator or the problem).
    #[error("cannot load the ONNX model: {0}")]
    Load(String),
    /// The request's tensors do not fit the model (name, type, shape, count).
    #[error("{0}")]
    BadInput(String),
    /// Too many requests are already admitted for this model (answer 503).
    #[error("{0}")]
    Overloaded(String),
    /// Inference failed inside the engine.
    #[error("inference failed: {0}")]
    Inference(String),
}

/// Element types of the tensors Cairn exchanges (the Open Inference Protocol's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementType {
    /// 32-bit float.
    Fp32,
    /// 64-bit float.
    Fp64,
    /// 32-bit integer.
    Int32,
    /// 64-bit integer.
    Int64,
    /// Boolean.
    Bool,
    /// Strings.
    Bytes,
}

impl ElementType {
    /// The Open Inference Protocol's name (`FP32`, `INT64`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ElementType::Fp32 => "FP32",
            ElementType::Fp64 => "FP64",
            ElementType::Int32 => "INT32",
            ElementType::Int64 => "INT64",
            ElementType::Bool => "BOOL",
            ElementType::Bytes => "BYTES",
        }
    }

    /// Parses a protocol name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "FP32" => ElementType::Fp32,
            "FP64" => ElementType::Fp64,
            "INT32" => ElementType::Int32,
            "INT64" => ElementType::Int64,
            "BOOL" => ElementType::Bool,
            "BYTES" => ElementType::Bytes,
            _ => return None,
        })
    }

    fn of(dt: DatumType) -> Option<Self> {
        Some(match dt {
            DatumType::F32 => ElementType::Fp32,
            DatumType::F64 => ElementType::Fp64,
            DatumType::I32 => ElementType::Int32,
            DatumType::I64 => ElementType::Int64,
            DatumType::Bool => ElementType::Bool,
            DatumType::String => ElementType::Bytes,
            // tract types some int64 results (casts, shapes) as symbolic dimensions.
            DatumType::TDim => ElementType::Int64,
            _ => return None,
        })
    }
}

/// One input or output of a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// Tensor name in the graph.
    pub name: String,
    /// Element type.
    pub element_type: ElementType,
    /// Shape; `-1` marks a free dimension (usually the batch).
    pub shape: Vec<i64>,
}

/// A model's inputs and outputs, read from the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// Inputs, in graph order.
    pub inputs: Vec<TensorSpec>,
    /// Outputs, in graph order.
    pub outputs: Vec<TensorSpec>,
}

/// Tensor contents, flat, row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// FP32 values.
    Fp32(Vec<f32>),
    /// FP64 values.
    Fp64(Vec<f64>),
    /// INT32 values.
    Int32(Vec<i32>),
    /// INT64 values.
    Int64(Vec<i64>),
    /// BOOL values.
    Bool(Vec<bool>),
    /// BYTES values (as strings).
    Bytes(Vec<String>),
}

impl TensorData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::Fp32(v) => v.len(),
            TensorData::Fp64(v) => v.len(),
            TensorData::Int32(v) => v.len(),
            TensorData::Int64(v) => v.len(),
            TensorData::Bool(v) => v.len(),
            TensorData::Bytes(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type.
    pub fn element_type(&self) -> ElementType {
        match self {
            TensorData::Fp32(_) => ElementType::Fp32,
            TensorData::Fp64(_) => ElementType::Fp64,
            TensorData::Int32(_) => ElementType::Int32,
            TensorData::Int64(_) => ElementType::Int64,
            TensorData::Bool(_) => ElementType::Bool,
            TensorData::Bytes(_) => ElementType::Bytes,
        }
    }
}

/// A named tensor going into or coming out of a model.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Name.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Contents.
    pub data: TensorData,
}

/// A loaded, optimised ONNX model; cheap to clone and safe to run from many threads.
#[derive(Clone)]
pub struct OnnxModel {
    plan: Arc<TypedRunnableModel>,
    signature: Signature,
}

fn spec(model: &TypedModel, outlet: OutletId, fallback: &str) -> Result<TensorSpec, ServingError> {
    let fact = model
        .outlet_fact(outlet)
        .map_err(|e| ServingError::Load(e.to_string()))?;
    let element_type = ElementType::of(fact.datum_type).ok_or_else(|| {
        ServingError::Load(format!(
            "tensor '{fallback}' has unsupported type {:?}",
            fact.datum_type
        ))
    })?;
    let shape = fact
        .shape
        .iter()
        .map(|d| d.to_i64().unwrap_or(-1))
        .collect();
    let name = model.outlet_label(outlet).unwrap_or(fallback).to_string();
    Ok(TensorSpec {
        name,
        element_type,
        shape,
    })
}

/// Exporters such as skl2onnx leave the batch dimension unnamed (`[None, 20]`); tract needs
/// a symbol there to type the graph. The first free dimension of every input is the shared
/// batch symbol `N`, others get their own.
fn free_dims_as_symbols(model: &mut InferenceModel) -> TractResult<()> {
    let batch = model.symbols.sym("N");
    for ix in 0..model.input_outlets()?.len() {
        let mut fact = model.input_fact(ix)?.clone();
        let Some(rank) = fact.shape.rank().concretize() else {
            continue;
        };
        let mut changed = false;
        for axis in 0..rank as usize {
            let free = fact
                .shape
                .dim(axis)
                .is_none_or(|d| d.concretize().is_none());
            if free {
                let sym = if axis == 0 {
                    batch.clone()
                } else {
                    model.symbols.sym(&format!("input{ix}_axis{axis}"))
                };
                fact.shape.set_dim(axis, TDim::Sym(sym));
                changed = true;
            }
        }
        if changed {
            model.set_input_fact(ix, fact)?;
        }
    }
    Ok(())
}

/// The `metadata_props` of an ONNX model (what its exporter recorded about it, such as
/// `cairn.features`), without loading the graph.
pub fn metadata_props(bytes: &[u8]) -> Result<Vec<(String, String)>, ServingError> {
    let proto = ml::onnx()
        .proto_model_for_read(&mut &bytes[..])
        .map_err(|e| ServingError::Load(format!("{e:#}")))?;
    Ok(proto
        .metadata_props
        .into_iter()
        .map(|p| (p.key, p.value))
        .collect())
}

/// One column of a model's input `x` as its trainer recorded it (`cairn.features`): a number,
/// or a category fed as the index of its level.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureColumn {
    /// The training data's column name.
    pub name: String,
    /// A category's sorted levels; `None` for a number.
    pub levels: Option<Vec<String>>,
}

/// The columns `x` holds, in order, when the model records them (`cairn train`'s models).
pub fn feature_columns(bytes: &[u8]) -> Option<Vec<FeatureColumn>> {
    let props = metadata_props(bytes).ok()?;
    let (_, text) = props.iter().find(|(k, _)| k == "cairn.features")?;
    let listed: serde_json::Value = serde_json::from_str(text).ok()?;
    listed
        .as_array()?
        .iter()
        .map(|f| {
            Some(FeatureColumn {
                name: f["name"].as_str()?.to_string(),
                levels: f["levels"].as_array().map(|ls| {
                    ls.iter()
                        .map(|l| l.as_str().map_or_else(|| l.to_string(), String::from))
                        .collect()
                }),
            })
        })
        .collect()
}

impl OnnxModel {
    /// Loads, types and optimises a model from ONNX bytes.
    /// Graphs that would allocate beyond [`guard::MAX_TENSOR_ELEMENTS`] per tensor are refused
    /// before tract builds them, and a panic inside tract becomes a load error.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ServingError> {
        let load = |e: TractError| ServingError::Load(format!("{e:#}"));
        let onnx = ml::onnx();
        let proto = onnx.proto_model_for_read(&mut &bytes[..]).map_err(load)?;
        guard::check(&proto).map_err(ServingError::Load)?;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Self::from_proto(&onnx, &proto)
        }))
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(ServingError::Load(format!(
                "the loader failed on this graph: {what}"
            )))
        })
    }

    fn from_proto(
        onnx: &tract_onnx::Onnx,
        proto: &tract_onnx::pb::ModelProto,
    ) -> Result<Self, ServingError> {
        let load = |e: TractError| ServingError::Load(format!("{e:#}"));
        let mut inference = onnx.model_for_proto_model(proto).map_err(load)?;
        free_dims_as_symbols(&mut inference).map_err(load)?;
        let typed = inference.into_typed().map_err(load)?;
        let mut inputs = Vec::new();
        for (i, outlet) in typed.input_outlets().map_err(load)?.iter().enumerate() {
            let name = typed.node(outlet.node).name.clone();
            let mut s = spec(&typed, *outlet, &format!("input{i}"))?;
            s.name = name;
            inputs.push(s);
        }
        let mut outputs = Vec::new();
        for (i, outlet) in typed.output_outlets().map_err(load)?.iter().enumerate() {
            let fallback = typed.node(outlet.node).name.clone();
            let mut s = spec(&typed, *outlet, &fallback)?;
            if s.name.is_empty() {
                s.name = format!("output{i}");
            }
            outputs.push(s);
        }
        let plan = typed
            .into_optimized()
            .map_err(load)?
            .into_runnable()
            .map_err(load)?;
        Ok(OnnxModel {
            plan,
            signature: Signature { inputs, outputs },
        })
    }

    /// The model's inputs and outputs.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Runs the model. Inputs are matched by name; every graph input must be given once, with
    /// its element type and a shape that fits the graph's.
    pub fn infer(&self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, ServingError> {
        let bad = ServingError::BadInput;
        if inputs.len() != self.signature.inputs.len() {
            return Err(bad(format!(
                "the model takes {} input(s) ({}), the request has {}",
                self.signature.inputs.len(),
                self.signature
                    .inputs
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                inputs.len()
            )));
        }
        let mut by_name: Vec<Option<NamedTensor>> = inputs.into_iter().map(Some).collect();
        let mut values: TVec<TValue> = TVec::new();
        for spec in &self.signature.inputs {
            let tensor = by_name
                .iter_mut()
                .find(|t| t.as_ref().is_some_and(|t| t.name == spec.name))
                .and_then(Option::take)
                .ok_or_else(|| bad(format!("missing input '{}'", spec.name)))?;
            if tensor.data.element_type() != spec.element_type {
                return Err(bad(format!(
                    "input '{}' must be {}, got {}",
                    spec.name,
                    spec.element_type.as_str(),
                    tensor.data.element_type().as_str()
                )));
            }
            let fits = tensor.shape.len() == spec.shape.len()
                && tensor
                    .shape
                    .iter()
                    .zip(&spec.shape)
                    .all(|(got, want)| *want < 0 || *got as i64 == *want);
            if !fits {
                return Err(bad(format!(
                    "input '{}' has shape {:?}, the model expects {:?} (-1 = any)",
                    spec.name, tensor.shape, spec.shape
                )));
            }
            let expected = tensor
                .shape
                .iter()
                .try_fold(1usize, |count, &d| count.checked_mul(d));
            let Some(expected) = expected else {
                return Err(bad(format!(
                    "input '{}' has shape {:?}, whose element count overflows",
                    spec.name, tensor.shape
                )));
            };
            if expected != tensor.data.len() {
                return Err(bad(format!(
                    "input '{}' has {} values for shape {:?} ({} expected)",
                    spec.name,
                    tensor.data.len(),
                    tensor.shape,
                    expected
                )));
            }
            values.push(to_tract(tensor)?.into_tvalue());
        }
        let outputs = self
            .plan
            .run(values)
            .map_err(|e| ServingError::Inference(format!("{e:#}")))?;
        outputs
            .into_iter()
            .zip(&self.signature.outputs)
            .map(|(value, spec)| from_tract(&spec.name, value.into_tensor()))
            .collect()
    }
}

fn array<T: Datum>(name: &str, shape: &[usize], v: Vec<T>) -> Result<Tensor, ServingError> {
    tract_ndarray::ArrayD::from_shape_vec(tract_ndarray::IxDyn(shape), v)
        .map(Tensor::from)
        .map_err(|e| ServingError::BadInput(format!("input '{name}': {e}")))
}

fn to_tract(t: NamedTensor) -> Result<Tensor, ServingError> {
    let (name, shape) = (t.name.as_str(), t.shape.as_slice());
    match t.data {
        TensorData::Fp32(v) => array(name, shape, v),
        TensorData::Fp64(v) => array(name, shape, v),
        TensorData::Int32(v) => array(name, shape, v),
        TensorData::Int64(v) => array(name, shape, v),
        TensorData::Bool(v) => array(name, shape, v),
        TensorData::Bytes(v) => array(name, shape, v),
    }
}

fn values<T: Datum + Clone>(t: &Tensor) -> TractResult<Vec<T>> {
    Ok(t.to_plain_array_view::<T>()?.iter().cloned().collect())
}

fn from_tract(name: &str, t: Tensor) -> Result<NamedTensor, ServingError> {
    let shape = t.shape().to_vec();
    let fail = |e: TractError| ServingError::Inference(format!("output '{name}': {e}"));
    let data = match t.datum_type() {
        DatumType::F32 => TensorData::Fp32(values::<f32>(&t).map_err(fail)?),
        DatumType::F64 => TensorData::Fp64(values::<f64>(&t).map_err(fail)?),
        DatumType::I32 => TensorData::Int32(values::<i32>(&t).map_err(fail)?),
        DatumType::I64 => TensorData::Int64(values::<i64>(&t).map_err(fail)?),
        DatumType::TDim => {
            let t = t.cast_to::<i64>().map_err(fail)?;
            TensorData::Int64(values::<i64>(&t).map_err(fail)?)
        }
        DatumType::Bool => TensorData::Bool(values::<bool>(&t).map_err(fail)?),
        DatumType::String => TensorData::Bytes(values::<String>(&t).map_err(fail)?),
        other => {
            return Err(ServingError::Inference(format!(
                "output '{name}' has unsupported type {other:?}"
            )))
        }
    };
    Ok(NamedTensor {
        name: name.to_string(),
        shape,
        data,
    })
}
