//! Scaler: `(x - offset) * scale` along the last axis, in `f32` (scikit-learn's
//! StandardScaler, MinMaxScaler, ...).

use super::f32_bits;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::{cast::cast, math};
use tract_onnx::tract_hir::internal::*;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Scaler {
    offset: Vec<u32>,
    scale: Vec<u32>,
}

pub(crate) fn scaler(
    _ctx: &tract_onnx::model::ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let (offset, scale) = (f32_bits(node, "offset")?, f32_bits(node, "scale")?);
    Ok((expand(Scaler { offset, scale }), vec![]))
}

impl Scaler {
    /// A constant broadcastable against an input of `rank` whose last axis has `width` values.
    fn constant(
        bits: &[u32],
        default: f32,
        rank: usize,
        width: Option<usize>,
    ) -> TractResult<Tensor> {
        let values: Vec<f32> = if bits.is_empty() {
            vec![default]
        } else {
            bits.iter().map(|b| f32::from_bits(*b)).collect()
        };
        if values.len() > 1 {
            if let Some(w) = width {
                if w != values.len() {
                    bail!("Scaler has {} values for {w} features", values.len());
                }
            }
        }
        let mut shape = vec![1usize; rank.max(1)];
        if let Some(last) = shape.last_mut() {
            *last = values.len();
        }
        Tensor::from_shape(&shape, &values)
    }
}

impl Expansion for Scaler {
    fn name(&self) -> StaticName {
        "Scaler".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, DatumType::F32)?;
        s.equals(&outputs[0].shape, &inputs[0].shape)?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let fact = model.outlet_fact(inputs[0])?.clone();
        let rank = fact.rank();
        let width = fact.shape.last().and_then(|d| d.to_usize().ok());
        let mut x = inputs[0];
        if fact.datum_type != DatumType::F32 {
            x = model.wire_node(format!("{prefix}.to_f32"), cast(DatumType::F32), &[x])?[0];
        }
        let offset = Self::constant(&self.offset, 0.0, rank, width)?;
        let scale = Self::constant(&self.scale, 1.0, rank, width)?;
        let offset = model.add_const(format!("{prefix}.offset"), offset)?;
        let scale = model.add_const(format!("{prefix}.scale"), scale)?;
        let centered = model.wire_node(format!("{prefix}.sub"), math::sub(), &[x, offset])?[0];
        model.wire_node(format!("{prefix}.mul"), math::mul(), &[centered, scale])
    }
}
