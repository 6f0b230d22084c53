//! ONNX fixtures built in code (no Python needed): a small two-input MLP with known weights
//! and a plain-Rust reference implementation to check answers against.
use cairn_serving::build::{float_tensor, model_bytes, node, value_info};
use tract_onnx::pb;

const W1: [[f32; 4]; 3] = [
    [0.5, -1.0, 0.25, 2.0],
    [1.5, 0.5, -0.75, 0.0],
    [-0.5, 1.0, 1.0, -1.5],
];
const B1: [f32; 4] = [0.1, -0.2, 0.3, 0.0];
const W2: [[f32; 2]; 4] = [[1.0, -1.0], [0.5, 0.25], [-2.0, 1.0], [0.75, 0.5]];
const B2: [f32; 2] = [0.05, -0.05];

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
    model_bytes(graph, "cairn-test")
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

/// `x: FP32[N,3]` → `y = 2·x: FP32[N,3]`: a second, different graph for the same inputs.
pub fn doubling_onnx() -> Vec<u8> {
    let graph = pb::GraphProto {
        name: "doubling".into(),
        node: vec![node("Mul", &["x", "two"], "y")],
        initializer: vec![float_tensor("two", &[1], vec![2.0])],
        input: vec![value_info("x", &[None, Some(3)])],
        output: vec![value_info("y", &[None, Some(3)])],
        ..Default::default()
    };
    model_bytes(graph, "cairn-test")
}

/// A graph whose `ConstantOfShape` asks for a [2^20, 2^20] tensor (4 TiB of f32): loading it
/// naively exhausts memory.
pub fn constant_of_shape_bomb_onnx() -> Vec<u8> {
    let shape = pb::TensorProto {
        name: "huge_shape".into(),
        dims: vec![2],
        data_type: 7,
        int64_data: vec![1 << 20, 1 << 20],
        ..Default::default()
    };
    let graph = pb::GraphProto {
        name: "bomb".into(),
        node: vec![
            node("ConstantOfShape", &["huge_shape"], "big"),
            node("Add", &["x", "big"], "y"),
        ],
        initializer: vec![shape],
        input: vec![value_info("x", &[Some(1), Some(1)])],
        output: vec![value_info("y", &[None, None])],
        ..Default::default()
    };
    model_bytes(graph, "cairn-test")
}

/// A graph with a STRING initializer stored in `raw_data` (which ONNX forbids and which
/// made tract's loader panic).
pub fn string_raw_initializer_onnx() -> Vec<u8> {
    let strings = pb::TensorProto {
        name: "labels".into(),
        dims: vec![2],
        data_type: 8,
        raw_data: b"\x01\x02\x03garbage".to_vec(),
        ..Default::default()
    };
    let graph = pb::GraphProto {
        name: "strings".into(),
        node: vec![node("Identity", &["x"], "y")],
        initializer: vec![strings],
        input: vec![value_info("x", &[None, Some(3)])],
        output: vec![value_info("y", &[None, Some(3)])],
        ..Default::default()
    };
    model_bytes(graph, "cairn-test")
}
