//! ONNX fixtures built in code (no Python needed): a small two-input MLP with known weights
//! and a plain-Rust reference implementation to check answers against.
use prost::Message;
use tract_onnx::pb;

const W1: [[f32; 4]; 3] = [
    [0.5, -1.0, 0.25, 2.0],
    [1.5, 0.5, -0.75, 0.0],
    [-0.5, 1.0, 1.0, -1.5],
];
const B1: [f32; 4] = [0.1, -0.2, 0.3, 0.0];
const W2: [[f32; 2]; 4] = [[1.0, -1.0], [0.5, 0.25], [-2.0, 1.0], [0.75, 0.5]];
const B2: [f32; 2] = [0.05, -0.05];

fn float_tensor(name: &str, dims: &[i64], values: Vec<f32>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 1,
        float_data: values,
        ..Default::default()
    }
}

fn value_info(name: &str, dims: &[Option<i64>]) -> pb::ValueInfoProto {
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

fn node(op: &str, inputs: &[&str], output: &str) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: format!("{op}_{output}"),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        ..Default::default()
    }
}

/// `x: FP32[N,3]`, `offset: FP32[N,2]` → `hidden = relu(x·W1 + b1)`: FP32[N,4],
/// `scores = hidden·W2 + b2 + offset`: FP32[N,2].
pub fn tiny_mlp_onnx() -> Vec<u8> {
    let graph = pb::GraphProto {
        name: "tiny_mlp".into(),
        node: vec![
            node("Gemm", &["x", "W1", "B1"], "pre"),
            node("Relu", &["pre"], "hidden"),
            node("Gemm", &["hidden", "W2", "B2"], "raw"),
            node("Add", &["raw", "offset"], "scores"),
        ],
        initializer: vec![
            float_tensor("W1", &[3, 4], W1.iter().flatten().copied().collect()),
            float_tensor("B1", &[4], B1.to_vec()),
            float_tensor("W2", &[4, 2], W2.iter().flatten().copied().collect()),
            float_tensor("B2", &[2], B2.to_vec()),
        ],
        input: vec![
            value_info("x", &[None, Some(3)]),
            value_info("offset", &[None, Some(2)]),
        ],
        output: vec![
            value_info("scores", &[None, Some(2)]),
            value_info("hidden", &[None, Some(4)]),
        ],
        ..Default::default()
    };
    let model = pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        producer_name: "cairn-test".into(),
        graph: Some(graph),
        ..Default::default()
    };
    model.encode_to_vec()
}

/// The same computation in plain Rust, row by row: `(scores, hidden)`.
pub fn tiny_mlp_reference(x: &[f32], offset: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let rows = x.len() / 3;
    let (mut scores, mut hidden) = (Vec::new(), Vec::new());
    for r in 0..rows {
        let h: Vec<f32> = (0..4)
            .map(|j| (B1[j] + (0..3).map(|i| x[r * 3 + i] * W1[i][j]).sum::<f32>()).max(0.0))
            .collect();
        for k in 0..2 {
            scores.push(B2[k] + (0..4).map(|j| h[j] * W2[j][k]).sum::<f32>() + offset[r * 2 + k]);
        }
        hidden.extend(h);
    }
    (scores, hidden)
}
