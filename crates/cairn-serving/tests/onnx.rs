//! Loading, signatures and inference on ONNX graphs built in code.
#![allow(clippy::unwrap_used)]

use cairn_serving::{ElementType, NamedTensor, OnnxModel, ServingError, TensorData};
use cairn_test::onnx::{tiny_mlp_onnx, tiny_mlp_reference};

fn input(name: &str, shape: &[usize], values: Vec<f32>) -> NamedTensor {
    NamedTensor {
        name: name.into(),
        shape: shape.to_vec(),
        data: TensorData::Fp32(values),
    }
}

#[test]
fn signature_is_read_from_the_graph() {
    let model = OnnxModel::from_bytes(&tiny_mlp_onnx()).unwrap();
    let sig = model.signature();
    let inputs: Vec<(&str, ElementType, Vec<i64>)> = sig
        .inputs
        .iter()
        .map(|s| (s.name.as_str(), s.element_type, s.shape.clone()))
        .collect();
    assert_eq!(
        inputs,
        vec![
            ("x", ElementType::Fp32, vec![-1, 3]),
            ("offset", ElementType::Fp32, vec![-1, 2])
        ]
    );
    let outputs: Vec<&str> = sig.outputs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(outputs, vec!["scores", "hidden"]);
    assert_eq!(sig.outputs[1].shape, vec![-1, 4]);
}

#[test]
fn inference_matches_the_reference_for_any_batch_size() {
    let model = OnnxModel::from_bytes(&tiny_mlp_onnx()).unwrap();
    for rows in [1usize, 2, 7, 64] {
        let x: Vec<f32> = (0..rows * 3)
            .map(|i| ((i * 37 % 17) as f32 - 8.0) / 4.0)
            .collect();
        let offset: Vec<f32> = (0..rows * 2).map(|i| i as f32 * 0.1).collect();
        let out = model
            .infer(vec![
                input("offset", &[rows, 2], offset.clone()),
                input("x", &[rows, 3], x.clone()),
            ])
            .unwrap();
        let (scores, hidden) = tiny_mlp_reference(&x, &offset);
        assert_eq!(out[0].name, "scores");
        assert_eq!(out[0].shape, vec![rows, 2]);
        let TensorData::Fp32(got) = &out[0].data else {
            panic!("scores are not FP32")
        };
        for (g, w) in got.iter().zip(&scores) {
            assert!((g - w).abs() < 1e-5, "{g} vs {w}");
        }
        let TensorData::Fp32(got) = &out[1].data else {
            panic!("hidden is not FP32")
        };
        assert!(got.iter().zip(&hidden).all(|(g, w)| (g - w).abs() < 1e-5));
    }
}

#[test]
fn bad_inputs_are_named() {
    let model = OnnxModel::from_bytes(&tiny_mlp_onnx()).unwrap();
    let err = |inputs: Vec<NamedTensor>| match model.infer(inputs) {
        Err(ServingError::BadInput(msg)) => msg,
        other => panic!("expected BadInput, got {other:?}"),
    };
    let msg = err(vec![input("x", &[1, 3], vec![0.0; 3])]);
    assert!(msg.contains("2 input(s)"), "{msg}");
    let msg = err(vec![
        input("x", &[1, 4], vec![0.0; 4]),
        input("offset", &[1, 2], vec![0.0; 2]),
    ]);
    assert!(msg.contains("'x'") && msg.contains("shape"), "{msg}");
    let msg = err(vec![
        input("x", &[1, 3], vec![0.0; 2]),
        input("offset", &[1, 2], vec![0.0; 2]),
    ]);
    assert!(msg.contains("2 values"), "{msg}");
    let msg = err(vec![
        NamedTensor {
            name: "x".into(),
            shape: vec![1, 3],
            data: TensorData::Int64(vec![1, 2, 3]),
        },
        input("offset", &[1, 2], vec![0.0; 2]),
    ]);
    assert!(msg.contains("FP32") && msg.contains("INT64"), "{msg}");
    let msg = err(vec![
        input("y", &[1, 3], vec![0.0; 3]),
        input("offset", &[1, 2], vec![0.0; 2]),
    ]);
    assert!(msg.contains("missing input 'x'"), "{msg}");
}

#[test]
fn unloadable_models_are_refused_at_load() {
    assert!(matches!(
        OnnxModel::from_bytes(b"not a model"),
        Err(ServingError::Load(_))
    ));
    // A graph with an operator nobody implements names it.
    let mut bytes = tiny_mlp_onnx();
    let positions: Vec<usize> = bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"Relu")
        .map(|(i, _)| i)
        .collect();
    assert!(!positions.is_empty());
    for pos in positions {
        bytes[pos..pos + 4].copy_from_slice(b"Rulu");
    }
    match OnnxModel::from_bytes(&bytes) {
        Err(ServingError::Load(msg)) => assert!(msg.contains("Rulu"), "{msg}"),
        Err(other) => panic!("expected a load error, got {other:?}"),
        Ok(_) => panic!("an unknown operator must be refused at load"),
    }
}
