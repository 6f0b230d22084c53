"""onnxruntime's answer for a model Cairn's trainer exported (crates/cairn-train/tests/sklearn.rs).

Usage: onnxruntime_predict.py MODEL.onnx X.bin ROWS COLUMNS

Checks the model with onnx's checker, runs it on X (raw little-endian f32, row-major, NaN for
missing) and prints every output, flattened, as JSON.
"""
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort

model_path, x_path, rows, columns = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
model = onnx.load(model_path)
onnx.checker.check_model(model, full_check=True)
x = np.fromfile(x_path, dtype="<f4").reshape(rows, columns)
session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
names = [o.name for o in session.get_outputs()]
outputs = session.run(names, {"x": x})
print(json.dumps({name: np.asarray(value).ravel().tolist() for name, value in zip(names, outputs)}))
