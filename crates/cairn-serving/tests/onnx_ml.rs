//! Cairn's ONNX-ML operators against onnxruntime: `tests/interop/onnx_ml_fixtures.py` exports
//! scikit-learn models with skl2onnx and builds ensembles that reach every branch mode,
//! aggregate function, post-transform and binary layout, runs onnxruntime on random inputs
//! (NaNs included) and writes its outputs; this test runs the same models in Cairn and
//! requires agreement within 1e-5 (relative above 1), labels exactly.
//! Needs CAIRN_TEST_PYTHON (a Python with onnxruntime and skl2onnx); skipped loudly without.
#![allow(clippy::unwrap_used)]

use cairn_serving::{ElementType, NamedTensor, OnnxModel, TensorData};
use cairn_test::{skip, PYTHON_ENV};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn close(got: f32, want: f32) -> bool {
    got == want
        || (got - want).abs() <= 1e-5 * want.abs().max(1.0)
        || (got.is_nan() && want.is_nan())
}

#[test]
fn onnx_ml_operators_agree_with_onnxruntime() {
    let test = "onnx_ml_operators_agree_with_onnxruntime";
    let Ok(python) = std::env::var(PYTHON_ENV) else {
        skip(
            test,
            &format!("{PYTHON_ENV} is not set (a Python with onnxruntime and skl2onnx)"),
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/onnx_ml_fixtures.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(dir.path())
        .env("PYTHONWARNINGS", "ignore")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fixture script failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: Vec<Value> =
        serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    assert!(manifest.len() > 150, "only {} cases", manifest.len());

    let mut failures = Vec::new();
    for case in &manifest {
        let name = case["name"].as_str().unwrap();
        let bytes = std::fs::read(dir.path().join(case["model"].as_str().unwrap())).unwrap();
        let model = match OnnxModel::from_bytes(&bytes) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{name}: load failed: {e}"));
                continue;
            }
        };
        let shape: Vec<usize> = case["input_shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        let input = read_f32(&dir.path().join(case["input_file"].as_str().unwrap()));
        let input_name = model.signature().inputs[0].name.clone();
        assert_eq!(model.signature().inputs[0].element_type, ElementType::Fp32);
        let outputs = match model.infer(vec![NamedTensor {
            name: input_name,
            shape: shape.clone(),
            data: TensorData::Fp32(input),
        }]) {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("{name}: inference failed: {e}"));
                continue;
            }
        };
        let columns = case["compare_columns"].as_u64().map(|c| c as usize);
        for want in case["outputs"].as_array().unwrap() {
            let out_name = want["name"].as_str().unwrap();
            let Some(got) = outputs.iter().find(|o| o.name == out_name) else {
                failures.push(format!("{name}: no output '{out_name}'"));
                continue;
            };
            let want_shape: Vec<usize> = want["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            if got.shape != want_shape {
                failures.push(format!(
                    "{name}/{out_name}: shape {:?}, onnxruntime {:?}",
                    got.shape, want_shape
                ));
                continue;
            }
            match (&got.data, want) {
                (TensorData::Int64(v), w) if w.get("ints").is_some() => {
                    let w: Vec<i64> = serde_json::from_value(w["ints"].clone()).unwrap();
                    if *v != w {
                        failures.push(format!("{name}/{out_name}: labels differ"));
                    }
                }
                (TensorData::Bytes(v), w) if w.get("strings").is_some() => {
                    let w: Vec<String> = serde_json::from_value(w["strings"].clone()).unwrap();
                    if *v != w {
                        failures.push(format!("{name}/{out_name}: labels differ"));
                    }
                }
                (TensorData::Fp32(v), w) if w.get("floats_file").is_some() => {
                    let expected = read_f32(&dir.path().join(w["floats_file"].as_str().unwrap()));
                    let width = *want_shape.last().unwrap_or(&1);
                    let worst = v
                        .iter()
                        .zip(&expected)
                        .enumerate()
                        .filter(|(i, _)| columns.is_none_or(|c| i % width < c))
                        .find(|(_, (g, w))| !close(**g, **w));
                    if let Some((i, (g, w))) = worst {
                        failures.push(format!(
                            "{name}/{out_name}: element {i}: cairn {g}, onnxruntime {w}"
                        ));
                    }
                }
                (data, _) => failures.push(format!(
                    "{name}/{out_name}: cairn gives {:?}, onnxruntime something else",
                    data.element_type()
                )),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases disagree:\n{}",
        failures.len(),
        manifest.len(),
        failures.join("\n")
    );
}
