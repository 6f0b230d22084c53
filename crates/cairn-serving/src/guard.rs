//! Checks on an ONNX file before tract builds it: a graph can ask for more memory than any
//! machine has (`ConstantOfShape` of [2^20, 2^20] is 4 TiB, and running out of memory
//! aborts the process rather than failing a call), or hold tensors whose declared size and
//! data disagree. Such files are refused with a message; anything tract still panics on is
//! caught by the loader.
use tract_onnx::pb::{GraphProto, ModelProto, TensorProto};

/// Most elements any one tensor of a loaded graph may hold: 2^28 (1 GiB of f32).
pub const MAX_TENSOR_ELEMENTS: u64 = 1 << 28;

/// ONNX's STRING element type.
const STRING: i32 = 8;
/// ONNX's INT64 element type.
const INT64: i32 = 7;

/// Checks every graph of the model (subgraphs included).
pub fn check(model: &ModelProto) -> Result<(), String> {
    match &model.graph {
        Some(graph) => check_graph(graph),
        None => Err("the file holds no graph".into()),
    }
}

fn elements(dims: &[i64]) -> Option<u64> {
    dims.iter().try_fold(1u64, |count, &d| {
        u64::try_from(d).ok().and_then(|d| count.checked_mul(d))
    })
}

fn check_tensor(t: &TensorProto, what: &str) -> Result<(), String> {
    let count = elements(&t.dims)
        .filter(|&n| n <= MAX_TENSOR_ELEMENTS)
        .ok_or_else(|| {
            format!(
                "{what} '{}' has dims {:?}: more than {MAX_TENSOR_ELEMENTS} elements, or negative",
                t.name, t.dims
            )
        })?;
    if t.data_type == STRING && !t.raw_data.is_empty() {
        return Err(format!(
            "{what} '{}' is a STRING tensor stored as raw bytes, which ONNX does not allow",
            t.name
        ));
    }
    if t.data_type == STRING && !t.string_data.is_empty() && t.string_data.len() as u64 != count {
        return Err(format!(
            "{what} '{}' declares {count} strings and holds {}",
            t.name,
            t.string_data.len()
        ));
    }
    Ok(())
}

/// The values of a constant INT64 tensor (from `int64_data` or little-endian `raw_data`).
fn int64_values(t: &TensorProto) -> Option<Vec<i64>> {
    if t.data_type != INT64 {
        return None;
    }
    if !t.int64_data.is_empty() {
        return Some(t.int64_data.clone());
    }
    Some(
        t.raw_data
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                i64::from_le_bytes(b)
            })
            .collect(),
    )
}

fn check_graph(graph: &GraphProto) -> Result<(), String> {
    let mut constants: std::collections::HashMap<&str, &TensorProto> = Default::default();
    for t in &graph.initializer {
        check_tensor(t, "initializer")?;
        constants.insert(t.name.as_str(), t);
    }
    for node in &graph.node {
        for attr in &node.attribute {
            if let Some(t) = &attr.t {
                check_tensor(t, "constant")?;
                if node.op_type == "Constant" {
                    if let Some(out) = node.output.first() {
                        constants.insert(out.as_str(), t);
                    }
                }
            }
            for t in &attr.tensors {
                check_tensor(t, "constant")?;
            }
            if let Some(g) = &attr.g {
                check_graph(g)?;
            }
            for g in &attr.graphs {
                check_graph(g)?;
            }
        }
    }
    for node in &graph.node {
        if node.op_type != "ConstantOfShape" {
            continue;
        }
        let shape = node
            .input
            .first()
            .and_then(|name| constants.get(name.as_str()))
            .and_then(|t| int64_values(t));
        if let Some(shape) = shape {
            if elements(&shape).is_none_or(|n| n > MAX_TENSOR_ELEMENTS) {
                return Err(format!(
                    "node '{}' (ConstantOfShape) would make a tensor of shape {shape:?}: more \
                     than {MAX_TENSOR_ELEMENTS} elements",
                    node.name
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::build::{model_bytes, node, value_info};
    use crate::{OnnxModel, ServingError};
    use tract_onnx::pb;

    fn with_initializer(t: pb::TensorProto, op: &str) -> Vec<u8> {
        let name = t.name.clone();
        let graph = pb::GraphProto {
            node: vec![node(op, &[&name], "big"), node("Add", &["x", "big"], "y")],
            initializer: vec![t],
            input: vec![value_info("x", &[Some(1), Some(1)])],
            output: vec![value_info("y", &[None, None])],
            ..Default::default()
        };
        model_bytes(graph, "test")
    }

    fn refused(bytes: &[u8]) -> String {
        match OnnxModel::from_bytes(bytes) {
            Err(ServingError::Load(why)) => why,
            Err(other) => panic!("refused for another reason: {other}"),
            Ok(_) => panic!("a hostile graph loaded"),
        }
    }

    #[test]
    fn graphs_that_would_exhaust_memory_are_refused_before_loading() {
        let shape = pb::TensorProto {
            name: "shape".into(),
            dims: vec![2],
            data_type: 7,
            int64_data: vec![1 << 20, 1 << 20],
            ..Default::default()
        };
        assert!(refused(&with_initializer(shape, "ConstantOfShape")).contains("ConstantOfShape"));
        let declared = pb::TensorProto {
            name: "w".into(),
            dims: vec![1 << 40, 1 << 40],
            data_type: 1,
            ..Default::default()
        };
        assert!(refused(&with_initializer(declared, "Identity")).contains("elements"));
        let strings = pb::TensorProto {
            name: "s".into(),
            dims: vec![2],
            data_type: 8,
            raw_data: b"\x01\x02garbage".to_vec(),
            ..Default::default()
        };
        assert!(refused(&with_initializer(strings, "Identity")).contains("STRING"));
    }
}
