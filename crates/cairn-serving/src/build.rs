//! Building ONNX graphs in code: what Cairn's trainer exports, what the quickstart serves and
//! what tests use as fixtures, without Python.
use prost::Message;
pub use tract_onnx::pb;

/// The ONNX-ML domain (tree ensembles and the other classic-ML operators).
pub const ML_DOMAIN: &str = "ai.onnx.ml";

/// A node attribute's value.
#[derive(Debug, Clone)]
pub enum Attr {
    /// One integer.
    Int(i64),
    /// Integers.
    Ints(Vec<i64>),
    /// Floats.
    Floats(Vec<f32>),
    /// One string.
    Text(String),
    /// Strings.
    Texts(Vec<String>),
    /// A tensor (ONNX-ML's `*_as_tensor` attributes).
    Tensor(Box<pb::TensorProto>),
}

fn attribute(name: &str, value: Attr) -> pb::AttributeProto {
    use pb::attribute_proto::AttributeType;
    let mut a = pb::AttributeProto {
        name: name.into(),
        ..Default::default()
    };
    let kind = match value {
        Attr::Int(v) => {
            a.i = v;
            AttributeType::Int
        }
        Attr::Ints(v) => {
            a.ints = v;
            AttributeType::Ints
        }
        Attr::Floats(v) => {
            a.floats = v;
            AttributeType::Floats
        }
        Attr::Text(v) => {
            a.s = v.into_bytes();
            AttributeType::String
        }
        Attr::Texts(v) => {
            a.strings = v.into_iter().map(String::into_bytes).collect();
            AttributeType::Strings
        }
        Attr::Tensor(t) => {
            a.t = Some(*t);
            AttributeType::Tensor
        }
    };
    a.r#type = kind as i32;
    a
}

/// A node of `domain` (`""` for the default one) with attributes.
pub fn node_with(
    domain: &str,
    op: &str,
    inputs: &[&str],
    outputs: &[&str],
    attributes: Vec<(&str, Attr)>,
) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        domain: domain.into(),
        name: format!("{op}_{}", outputs.first().copied().unwrap_or_default()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attributes
            .into_iter()
            .map(|(name, value)| attribute(name, value))
            .collect(),
        ..Default::default()
    }
}

/// An FP64 tensor (for `*_as_tensor` attributes).
pub fn double_tensor(name: &str, dims: &[i64], values: Vec<f64>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 11,
        double_data: values,
        ..Default::default()
    }
}

/// An INT64 constant.
pub fn int64_tensor(name: &str, dims: &[i64], values: Vec<i64>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 7,
        int64_data: values,
        ..Default::default()
    }
}

/// An INT64 graph output; `None` dimensions are the batch symbol `N`.
pub fn int64_value_info(name: &str, dims: &[Option<i64>]) -> pb::ValueInfoProto {
    let mut info = value_info(name, dims);
    if let Some(pb::type_proto::Value::TensorType(t)) =
        info.r#type.as_mut().and_then(|t| t.value.as_mut())
    {
        t.elem_type = 7;
    }
    info
}

/// A whole model around `graph` (opset 13, and ONNX-ML opset 3), with metadata, serialised.
pub fn model_bytes_with_ml(
    graph: pb::GraphProto,
    producer: &str,
    metadata: &[(String, String)],
) -> Vec<u8> {
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![
            pb::OperatorSetIdProto {
                domain: String::new(),
                version: 13,
            },
            pb::OperatorSetIdProto {
                domain: ML_DOMAIN.into(),
                version: 3,
            },
        ],
        producer_name: producer.into(),
        graph: Some(graph),
        metadata_props: metadata
            .iter()
            .map(|(key, value)| pb::StringStringEntryProto {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        ..Default::default()
    }
    .encode_to_vec()
}

/// An FP32 constant.
pub fn float_tensor(name: &str, dims: &[i64], values: Vec<f32>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 1,
        float_data: values,
        ..Default::default()
    }
}

/// An FP32 graph input or output; `None` dimensions are the batch symbol `N`.
pub fn value_info(name: &str, dims: &[Option<i64>]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension, Dimension};
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(n) => dimension::Value::DimValue(*n),
                None => dimension::Value::DimParam("N".into()),
            }),
            ..Default::default()
        })
        .collect();
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: 1,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A node of the default domain with one output.
pub fn node(op: &str, inputs: &[&str], output: &str) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: format!("{op}_{output}"),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        ..Default::default()
    }
}

/// A whole model (opset 13) around `graph`, serialised.
pub fn model_bytes(graph: pb::GraphProto, producer: &str) -> Vec<u8> {
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        producer_name: producer.into(),
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

/// A binary logistic regression: `x: FP32[N, weights.len()]` →
/// `probability = sigmoid(x·weights + bias): FP32[N, 1]`.
pub fn logistic_regression_onnx(weights: &[f32], bias: f32) -> Vec<u8> {
    let n = weights.len() as i64;
    let graph = pb::GraphProto {
        name: "logistic_regression".into(),
        node: vec![
            node("Gemm", &["x", "weights", "bias"], "logit"),
            node("Sigmoid", &["logit"], "probability"),
        ],
        initializer: vec![
            float_tensor("weights", &[n, 1], weights.to_vec()),
            float_tensor("bias", &[1], vec![bias]),
        ],
        input: vec![value_info("x", &[None, Some(n)])],
        output: vec![value_info("probability", &[None, Some(1)])],
        ..Default::default()
    };
    model_bytes(graph, "cairn")
}
