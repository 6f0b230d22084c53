//! Times single calls of an ONNX model in process, as `cairn serve` makes them:
//! `time_inference MODEL.onnx INPUTS.bin ROWS FEATURES CALLS` reads `ROWS x FEATURES` little-endian
//! f32 values and prints the median and p99 microseconds of `CALLS` calls of one row each.
//! Used by bench/onnx_ml/run.py.
#![allow(clippy::unwrap_used)]

use cairn_serving::{NamedTensor, OnnxModel, TensorData};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, model, inputs, rows, features, calls] = args.as_slice() else {
        eprintln!("usage: time_inference MODEL.onnx INPUTS.bin ROWS FEATURES CALLS");
        std::process::exit(2);
    };
    let model = OnnxModel::from_bytes(&std::fs::read(model).unwrap()).unwrap();
    let (rows, features, calls): (usize, usize, usize) = (
        rows.parse().unwrap(),
        features.parse().unwrap(),
        calls.parse().unwrap(),
    );
    let data: Vec<f32> = std::fs::read(inputs)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let name = model.signature().inputs[0].name.clone();
    let mut times = Vec::with_capacity(calls);
    for i in 0..calls + 1000 {
        let r = i % rows;
        let row = data[r * features..(r + 1) * features].to_vec();
        let started = Instant::now();
        let out = model
            .infer(vec![NamedTensor {
                name: name.clone(),
                shape: vec![1, features],
                data: TensorData::Fp32(row),
            }])
            .unwrap();
        let elapsed = started.elapsed();
        std::hint::black_box(out);
        if i >= 1000 {
            times.push(elapsed.as_secs_f64() * 1e6);
        }
    }
    times.sort_by(f64::total_cmp);
    let pick = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "{{\"median_us\": {:.3}, \"p99_us\": {:.3}}}",
        pick(0.5),
        pick(0.99)
    );
}
