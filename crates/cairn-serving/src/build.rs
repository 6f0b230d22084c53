//! Building small ONNX graphs in code: what the quickstart serves (a logistic regression it
//! trained itself) and what tests use as fixtures, without Python.
use prost::Message;
use tract_onnx::pb;

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
