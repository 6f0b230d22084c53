"""Per-call latency of scikit-learn tree and linear models: Cairn's ONNX-ML operators (in process, through
cairn-serving, as `cairn serve` calls them) versus onnxruntime (an InferenceSession with
intra_op_num_threads=1, called from Python as its users call it), one row per call, same
models and rows, in one run.

Usage: python bench/onnx_ml/run.py [--calls N]   (needs tests/interop/requirements.txt)
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

import numpy as np
import onnxruntime as ort
from sklearn.datasets import make_classification
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from skl2onnx import to_onnx

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
parser = argparse.ArgumentParser()
parser.add_argument("--calls", type=int, default=20000)
args = parser.parse_args()

subprocess.run(["cargo", "build", "--release", "-q", "-p", "cairn-serving", "--example", "time_inference"], cwd=ROOT, check=True)
binary = os.path.join(ROOT, "target", "release", "examples", "time_inference")

X, y = make_classification(n_samples=5000, n_features=20, n_informative=12, random_state=0)
X = X.astype(np.float32)
models = {
    "GradientBoostingClassifier(100 trees, depth 3)": GradientBoostingClassifier(n_estimators=100, random_state=0),
    "RandomForestClassifier(100 trees, full depth)": RandomForestClassifier(n_estimators=100, random_state=0),
    "LogisticRegression": LogisticRegression(max_iter=1000),
}
tmp = tempfile.mkdtemp()
rows = X[4000:4200]
rows_file = os.path.join(tmp, "rows.bin")
rows.astype("<f4").tofile(rows_file)
print(f"{'model':48} {'cairn median/p99 us':>22} {'onnxruntime median/p99 us':>28} {'speedup':>8}")
for label, est in models.items():
    est.fit(X[:4000], y[:4000])
    onx = to_onnx(est, X[:1])
    path = os.path.join(tmp, "model.onnx")
    with open(path, "wb") as f:
        f.write(onx.SerializeToString())
    cairn = json.loads(subprocess.run([binary, path, rows_file, str(len(rows)), "20", str(args.calls)],
                                      capture_output=True, text=True, check=True).stdout)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    times = []
    for i in range(args.calls + 1000):
        row = rows[i % len(rows)][None, :]
        t0 = time.perf_counter()
        sess.run(None, {name: row})
        if i >= 1000:
            times.append((time.perf_counter() - t0) * 1e6)
    times.sort()
    ort_median, ort_p99 = times[len(times) // 2], times[int(len(times) * 0.99)]
    print(f"{label:48} {cairn['median_us']:>10.1f} / {cairn['p99_us']:<9.1f} {ort_median:>14.1f} / {ort_p99:<11.1f} {ort_median / cairn['median_us']:>7.1f}x")
