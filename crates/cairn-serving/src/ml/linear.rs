//! LinearClassifier (ai.onnx.ml v1), what skl2onnx exports for LogisticRegression, LinearSVC,
//! SGDClassifier and the like.
//!
//! tract expands it into general operators (a matrix product, an addition, the transform, an
//! arg-max, a label lookup), each allocating its output and the product packing its operands
//! for wide vector kernels; for the one or few rows of a served request that costs far more
//! than the dot products themselves. Here a row's scores are computed directly, in `f32` as
//! onnxruntime computes them, with onnxruntime's labels and binary layout (checked against
//! onnxruntime in `tests/onnx_ml.rs`).

use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::transform::{logistic, probit, PostTransform};
use super::Labels;

#[derive(Debug, Clone)]
pub(crate) struct LinearClassifier {
    /// `[classes, features]`, row-major.
    coefficients: Vec<f32>,
    intercepts: Vec<f32>,
    labels: Labels,
    post_transform: PostTransform,
}

/// Equal when every attribute is, numbers bit for bit (a NaN coefficient equals itself).
impl PartialEq for LinearClassifier {
    fn eq(&self, other: &Self) -> bool {
        let same = |a: &[f32], b: &[f32]| {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
        };
        same(&self.coefficients, &other.coefficients)
            && same(&self.intercepts, &other.intercepts)
            && self.labels == other.labels
            && self.post_transform == other.post_transform
    }
}

impl Eq for LinearClassifier {}

pub(crate) fn classifier(
    _ctx: &tract_onnx::model::ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let floats = |name| -> TractResult<Vec<f32>> {
        Ok(node
            .get_attr_opt_slice::<f32>(name)?
            .unwrap_or(&[])
            .to_vec())
    };
    let (coefficients, intercepts) = (floats("coefficients")?, floats("intercepts")?);
    let ints = node.get_attr_opt_slice::<i64>("classlabels_ints")?;
    let strings: Option<Vec<String>> = node.get_attr_opt_vec("classlabels_strings")?;
    // onnxruntime takes strings when any are given, integers otherwise.
    let labels = match (strings, ints) {
        (Some(s), _) if !s.is_empty() => Labels::Strings(s),
        (_, i) => Labels::Ints(i.unwrap_or(&[]).to_vec()),
    };
    let post_transform = PostTransform::parse(node.get_attr_opt::<&str>("post_transform")?)?;
    let classes = intercepts.len();
    if classes == 0 {
        bail!("LinearClassifier has no intercepts (onnxruntime counts the classes by them)");
    }
    if coefficients.is_empty() || !coefficients.len().is_multiple_of(classes) {
        bail!(
            "LinearClassifier has {} coefficients for {classes} classes",
            coefficients.len()
        );
    }
    if classes > 1 && labels.len() != classes {
        bail!(
            "LinearClassifier scores {classes} classes and has {} labels",
            labels.len()
        );
    }
    let op = LinearClassifier {
        coefficients,
        intercepts,
        labels,
        post_transform,
    };
    Ok((expand(op), vec![]))
}

impl LinearClassifier {
    fn classes(&self) -> usize {
        self.intercepts.len()
    }

    fn features(&self) -> usize {
        self.coefficients.len() / self.classes()
    }

    /// One class scored and two labels: onnxruntime writes two scores per row.
    fn second_class(&self) -> bool {
        self.classes() == 1 && self.labels.len() == 2
    }

    fn score_columns(&self) -> usize {
        if self.second_class() {
            2
        } else {
            self.classes()
        }
    }

    fn label_type(&self) -> DatumType {
        match self.labels {
            Labels::Ints(_) => DatumType::I64,
            Labels::Strings(_) => DatumType::String,
        }
    }

    fn run<T: Copy>(
        &self,
        x: &[T],
        rows: usize,
        to_f32: impl Fn(T) -> f32,
    ) -> TractResult<TVec<TValue>> {
        let (classes, features) = (self.classes(), self.features());
        let columns = self.score_columns();
        let mut out = vec![0.0f32; rows * columns];
        // Raw scores first, packed `[rows, classes]`, as onnxruntime's GEMM leaves them.
        let mut raw = vec![0.0f32; rows * classes];
        for (r, scores) in raw.chunks_exact_mut(classes).enumerate() {
            let row = &x[r * features..(r + 1) * features];
            for ((score, weights), intercept) in scores
                .iter_mut()
                .zip(self.coefficients.chunks_exact(features))
                .zip(&self.intercepts)
            {
                let dot: f32 = row.iter().zip(weights).map(|(v, w)| to_f32(*v) * w).sum();
                *score = dot + intercept;
            }
        }
        let label_ix: Vec<Option<usize>> = if classes == 1 {
            // No index for the default labels (1 and 0) of a classifier without two labels.
            raw.iter()
                .map(|s| (self.labels.len() == 2).then_some(usize::from(*s > 0.0)))
                .collect()
        } else {
            raw.chunks_exact(classes)
                .map(|scores| {
                    let mut best = 0;
                    for (j, s) in scores.iter().enumerate().skip(1) {
                        if *s > scores[best] {
                            best = j;
                        }
                    }
                    Some(best)
                })
                .collect()
        };
        let positive: Vec<bool> = raw.iter().map(|s| *s > 0.0).collect();
        if classes > 1 {
            out.copy_from_slice(&raw);
            for scores in out.chunks_exact_mut(classes) {
                self.post_transform.apply(scores);
            }
        } else if self.post_transform == PostTransform::Probit {
            // onnxruntime transforms the packed scores in place and leaves the rest of its
            // output as it was (here zero), also when it made room for a second class.
            for (o, s) in out.iter_mut().zip(&raw) {
                *o = probit(*s);
            }
        } else if self.second_class() {
            // The score and its complement; of the transforms onnxruntime applies only the
            // logistic one here.
            for (pair, s) in out.chunks_exact_mut(2).zip(&raw) {
                let p = if self.post_transform == PostTransform::Logistic {
                    logistic(*s)
                } else {
                    *s
                };
                pair[0] = 1.0 - p;
                pair[1] = p;
            }
        } else {
            out.copy_from_slice(&raw);
        }
        let scores = Tensor::from_shape(&[rows, columns], &out)?.into_tvalue();
        let labels = match &self.labels {
            Labels::Ints(l) => {
                let v: Vec<i64> = label_ix
                    .iter()
                    .zip(&positive)
                    .map(|(ix, p)| ix.map_or(i64::from(*p), |i| l[i]))
                    .collect();
                Tensor::from_shape(&[rows], &v)?
            }
            Labels::Strings(l) => {
                let v: Vec<String> = label_ix
                    .iter()
                    .zip(&positive)
                    .map(|(ix, p)| {
                        ix.map_or_else(|| if *p { "1" } else { "0" }.into(), |i| l[i].clone())
                    })
                    .collect();
                Tensor::from(tract_ndarray::Array1::from_vec(v).into_dyn())
            }
        };
        Ok(tvec!(labels.into_tvalue(), scores))
    }
}

impl Expansion for LinearClassifier {
    fn name(&self) -> StaticName {
        "LinearClassifier".into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(2)
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 2)?;
        s.equals(&inputs[0].rank, 2)?;
        s.equals(&outputs[0].datum_type, self.label_type())?;
        s.equals(&outputs[0].rank, 1)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[1].datum_type, DatumType::F32)?;
        s.equals(&outputs[1].rank, 2)?;
        s.equals(&outputs[1].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[1].shape[1], self.score_columns().to_dim())?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.clone(), inputs)
    }
}

impl Op for LinearClassifier {
    fn name(&self) -> StaticName {
        "LinearClassifier".into()
    }

    op_as_typed_op!();
}

impl EvalOp for LinearClassifier {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let (rows, width) = match input.shape() {
            [rows, width] => (*rows, *width),
            other => bail!("LinearClassifier takes a [N, F] input, got {other:?}"),
        };
        if width != self.features() {
            bail!(
                "the input has {width} features, the classifier has coefficients for {}",
                self.features()
            );
        }
        let plain = input.try_as_plain_ram()?;
        match input.datum_type() {
            DatumType::F32 => self.run(plain.as_slice::<f32>()?, rows, |v| v),
            DatumType::F64 => self.run(plain.as_slice::<f64>()?, rows, |v| v as f32),
            DatumType::I64 => self.run(plain.as_slice::<i64>()?, rows, |v| v as f32),
            DatumType::I32 => self.run(plain.as_slice::<i32>()?, rows, |v| v as f32),
            other => bail!("LinearClassifier does not take {other:?} input"),
        }
    }
}

impl TypedOp for LinearClassifier {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let input = inputs[0];
        if input.rank() != 2 {
            bail!("LinearClassifier takes a [N, F] input");
        }
        if let Ok(width) = input.shape[1].to_usize() {
            if width != self.features() {
                bail!(
                    "the input has {width} features, the classifier has coefficients for {}",
                    self.features()
                );
            }
        }
        let rows = input.shape[0].clone();
        Ok(tvec!(
            self.label_type().fact([rows.clone()]),
            f32::fact([rows, self.score_columns().to_dim()])
        ))
    }

    as_op!();
}
