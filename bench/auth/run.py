#!/usr/bin/env python3
"""bench/auth: what authentication costs on the hot paths. The same `cairn server` build runs
without auth and with `--auth` (signed in as a non-admin user, so every request is
authenticated and its permission resolved), on the same data, in one run:

  (a) log-batch throughput, 8 clients x 1000 metrics (`cairn-bench tracking --part a`);
  (b) OIP infer throughput on a registered model version (a 20-feature LogisticRegression
      exported with skl2onnx), 8 clients, single-row requests (`cairn-bench post`).

Modes alternate (off, on, off, on, ...) and each number is the median of the repeats.
Target (issue 12): under 5% throughput loss with auth on.

    python3 bench/auth/run.py [--seconds 10] [--repeats 3]

Needs: `cargo`, and tests/interop/requirements.txt (numpy, scikit-learn, skl2onnx) in the
Python that runs this script.
"""
import argparse
import base64
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from skl2onnx import to_onnx

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ADMIN_PASSWORD = "bench-admin-password"
USER, PASSWORD = "bench", "bench-user-password"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url, method="GET", body=None, creds=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if creds:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode())
    with urllib.request.urlopen(req, timeout=120) as r:
        text = r.read()
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return text.decode()


def wait_healthy(url, proc):
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            call(f"{url}/health")
            return
        except Exception:
            time.sleep(0.2)
    raise SystemExit("server did not become healthy")


def model_bytes():
    x, y = make_classification(n_samples=2000, n_features=20, random_state=0)
    model = LogisticRegression(max_iter=500).fit(x, y)
    onx = to_onnx(model, x[:1].astype(np.float32), options={"zipmap": False}, target_opset=13)
    return onx.SerializeToString(), x[0].astype(np.float32).tolist()


def seed(url, creds, onnx):
    """As the user: an experiment and run holding the model, a registered model and version."""
    api = f"{url}/api/2.0/mlflow"
    exp = call(f"{api}/experiments/create", "POST", {"name": "bench-auth-model"}, creds)["experiment_id"]
    run = call(f"{api}/runs/create", "POST", {"experiment_id": exp}, creds)["run"]["info"]
    root = run["artifact_uri"].removeprefix("mlflow-artifacts:/")
    call(f"{url}/api/2.0/mlflow-artifacts/artifacts/{root}/model/model.onnx", "PUT", creds=creds, raw=onnx)
    call(f"{api}/registered-models/create", "POST", {"name": "bench"}, creds)
    call(f"{api}/model-versions/create", "POST", {"name": "bench", "source": f"runs:/{run['run_id']}/model"}, creds)


def measure(mode, cairn, loadgen, onnx, body_file, seconds, tmp):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    home = tempfile.mkdtemp(prefix=f"auth-{mode}-", dir=tmp)
    cmd = [cairn, "server", "--port", str(port), "--no-prediction-log"]
    env = dict(os.environ, CAIRN_HOME=home, CAIRN_LOG="warn")
    creds = None
    if mode == "on":
        cmd.append("--auth")
        env["CAIRN_ADMIN_PASSWORD"] = ADMIN_PASSWORD
        creds = (USER, PASSWORD)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    try:
        wait_healthy(url, proc)
        if mode == "on":
            call(f"{url}/api/2.0/mlflow/users/create", "POST", {"username": USER, "password": PASSWORD},
                 ("admin", ADMIN_PASSWORD))
        seed(url, creds, onnx)
        load_env = dict(os.environ)
        if creds:
            load_env["CAIRN_BENCH_BASIC"] = f"{creds[0]}:{creds[1]}"
        tracking = json.loads(subprocess.run(
            [loadgen, "tracking", "--url", url, "--part", "a", "--seconds", str(seconds)],
            env=load_env, capture_output=True, text=True, check=True).stdout)
        infer = json.loads(subprocess.run(
            [loadgen, "post", "--url", url, "--path", "/v2/models/bench/versions/1/infer",
             "--body", body_file, "--clients", "8", "--seconds", str(seconds)],
            env=load_env, capture_output=True, text=True, check=True).stdout)
        return tracking["log_batch"]["metrics_per_second"], infer["requests_per_second"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "cairn", "-p", "cairn-bench"], cwd=ROOT, check=True)
    cairn = os.path.join(ROOT, "target", "release", "cairn")
    loadgen = os.path.join(ROOT, "target", "release", "cairn-bench")
    onnx, row = model_bytes()
    tmp = tempfile.mkdtemp(prefix="cairn-bench-auth-")
    body_file = os.path.join(tmp, "infer.json")
    with open(body_file, "w") as f:
        json.dump({"inputs": [{"name": "X", "shape": [1, 20], "datatype": "FP32", "data": row}]}, f)
    results = {"off": [], "on": []}
    try:
        for i in range(args.repeats):
            for mode in ("off", "on"):
                r = measure(mode, cairn, loadgen, onnx, body_file, args.seconds, tmp)
                results[mode].append(r)
                print(f"[repeat {i + 1}, auth {mode}] log-batch {r[0]:.0f} metrics/s, infer {r[1]:.0f} req/s", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = []
    for idx, label in [(0, "(a) log-batch, 8 clients x 1000 metrics (metrics/s)"), (1, "(b) OIP infer, 8 clients, 1 row (requests/s)")]:
        off = statistics.median(r[idx] for r in results["off"])
        on = statistics.median(r[idx] for r in results["on"])
        rows.append((label, off, on, 100.0 * (off - on) / off))
    print(f"{'measure (median of ' + str(args.repeats) + ')':<60} {'auth off':>12} {'auth on':>12} {'loss':>8} {'target':>8}")
    for label, off, on, loss in rows:
        print(f"{label:<60} {off:>12.0f} {on:>12.0f} {loss:>7.1f}% {'< 5%':>8}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
