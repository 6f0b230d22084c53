#!/usr/bin/env python3
"""bench/serving: the same ONNX models served by Cairn (`cairn serve`) and by a FastAPI +
uvicorn + onnxruntime app (bench/serving/fastapi_app.py, 2 workers), driven by one load
generator (wrk, 2 threads, bench/serving/post.lua) with 1 and 32 connections, single-row
requests, in one run, each server warmed up first (--warmup seconds at 32 connections,
discarded). Models: a 100-tree GradientBoostingClassifier and a LogisticRegression on 20
features, exported with skl2onnx.

    python3 bench/serving/run.py [--seconds 10] [--repeat 1]

Needs: `cargo`, wrk (`apt-get install wrk`), and tests/interop/requirements.txt plus FastAPI and uvicorn as FastAPI's docs
install them (uvicorn[standard]: httptools and uvloop; plain uvicorn's h11 stalls 40 ms per
keep-alive request here, which would misrepresent the peer):
pip install fastapi==0.163.2 'uvicorn[standard]==0.54.0' httptools==0.9.0 uvloop==0.23.0
"""
import argparse
import shutil
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

from skl2onnx import to_onnx

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
parser = argparse.ArgumentParser()
parser.add_argument("--seconds", type=int, default=10)
parser.add_argument("--cairn", help="a built cairn binary (default: build target/release/cairn)")
parser.add_argument("--skip-peer", action="store_true", help="only Cairn, logged and unlogged (quick A/B runs)")
parser.add_argument("--repeat", type=int, default=1,
                    help="start Cairn logged and unlogged this many times, alternately, and report each one's"
                         " median run: throughput moves by 10-30%% from one process start to the next on a VM,"
                         " more than the log costs")
parser.add_argument("--warmup", type=int, default=3,
                    help="seconds of load before the measured runs, for every server alike (0: none)")
args = parser.parse_args()
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common import cairn_binary, free_port, wait_healthy  # noqa: E402
from serving.models import serving_models  # noqa: E402


cairn = cairn_binary(args.cairn, ROOT)
script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "post.lua")

X, models = serving_models()
row = X[:1]
tmp = tempfile.mkdtemp()


def load(url, body, connections, seconds=None):
    path = os.path.join(tmp, "body.json")
    with open(path, "w") as f:
        json.dump(body, f)
    threads = min(2, connections)
    seconds = args.seconds if seconds is None else seconds
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{int(seconds)}s", "-s", script, url],
                         capture_output=True, text=True, check=True, env={**os.environ, "BODY": path})
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(url, body):
    """1 and 32 connections, after a warm-up at 32 whose numbers are discarded: a fresh process
    first touches its memory (on a VM, pages the host has not backed yet) and fills its
    caches, and neither is what a running server's latency is."""
    if args.warmup > 0:
        load(url, body, 32, args.warmup)
    return {c: load(url, body, c) for c in (1, 32)}


results = []
for label, est in models.items():
    model_path = os.path.join(tmp, "model.onnx")
    with open(model_path, "wb") as f:
        f.write(to_onnx(est, X[:1]).SerializeToString())

    # Cairn as shipped (every prediction logged for monitoring), and with the log turned off,
    # to show what monitoring costs.
    cairn_variants = {}
    starts = {"logged": [], "unlogged": []}
    for variant, extra in [v for _ in range(args.repeat)
                           for v in (("logged", []), ("unlogged", ["--no-prediction-log"]))]:
        port = free_port()
        home = tempfile.mkdtemp()
        proc = subprocess.Popen([cairn, "serve", model_path, "--port", str(port), *extra],
                                env={**os.environ, "CAIRN_LOG": "warn", "CAIRN_HOME": home},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_healthy(f"http://127.0.0.1:{port}/v2/health/ready", proc)
            body = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 20], "data": row.ravel().tolist()}]}
            starts[variant].append(measure(f"http://127.0.0.1:{port}/v2/models/model/infer", body))
            if variant == "logged":
                # Did the log keep up? Predictions it had to drop (a full buffer) are counted.
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
                    text = r.read().decode()
                counters = {}
                for line in text.splitlines():
                    for name in ("records", "dropped", "rows_written"):
                        if line.startswith(f"cairn_prediction_log_{name}_total "):
                            counters[name] = int(float(line.split()[1]))
                # Summed over the logged starts.
                totals = cairn_variants.setdefault("log_counters", {})
                for name, value in counters.items():
                    totals[name] = totals.get(name, 0) + value
        finally:
            proc.terminate()
            proc.wait()
            shutil.rmtree(home, ignore_errors=True)
    for variant, runs in starts.items():
        # Per connection count, the run of median throughput among the starts.
        cairn_variants[variant] = {c: sorted((r[c] for r in runs), key=lambda m: m["requests_per_s"])[len(runs) // 2]
                                   for c in (1, 32)}
        if args.repeat > 1:
            for c in (1, 32):
                rates = ", ".join(f"{r[c]['requests_per_s']:.0f}" for r in runs)
                p99s = ", ".join(f"{r[c]['p99_ms']:.3f}" for r in runs)
                print(f"{label:40} {c:>2} conn | cairn {variant} starts: {rates} req/s; p99 {p99s} ms")
    cairn_runs = cairn_variants["logged"]
    log_counters = cairn_variants["log_counters"]
    if args.skip_peer:
        for c in (1, 32):
            a, u = cairn_runs[c], cairn_variants["unlogged"][c]
            print(f"{label:40} {c:>2} conn | cairn {a['requests_per_s']:>8.0f} req/s p99 {a['p99_ms']:.3f} ms"
                  f" | unlogged {u['requests_per_s']:>8.0f} req/s p99 {u['p99_ms']:.3f} ms"
                  f" | log cost {100 * (1 - a['requests_per_s'] / u['requests_per_s']):.1f}%")
        print(f"{label:40} prediction log: {log_counters}")
        continue

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "fastapi_app:app", "--port", str(port), "--workers", "2",
                             "--log-level", "warning"], cwd=os.path.dirname(os.path.abspath(__file__)),
                            env={**os.environ, "MODEL_PATH": model_path}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health", proc)
        time.sleep(2)  # both workers up
        body = {"features": row.tolist()}
        peer_runs = measure(f"http://127.0.0.1:{port}/predict", body)
    finally:
        proc.terminate()
        proc.wait()

    for c in (1, 32):
        a, b = cairn_runs[c], peer_runs[c]
        u = cairn_variants["unlogged"][c]
        results.append({"model": label, "connections": c, "cairn": a, "cairn_unlogged": u, "fastapi": b,
                        "prediction_log": log_counters,
                        "throughput_ratio": a["requests_per_s"] / b["requests_per_s"]})
        print(f"{label:40} {c:>2} conn | cairn {a['requests_per_s']:>8.0f} req/s p50 {a['p50_ms']:.3f} ms p99 {a['p99_ms']:.3f} ms"
              f" (errors {a['errors']}) | fastapi {b['requests_per_s']:>7.0f} req/s p50 {b['p50_ms']:.3f} ms p99 {b['p99_ms']:.3f} ms"
              f" (errors {b['errors']}) | {a['requests_per_s'] / b['requests_per_s']:.1f}x"
              f" | cairn without the prediction log {u['requests_per_s']:>8.0f} req/s p50 {u['p50_ms']:.3f} ms"
              f" p99 {u['p99_ms']:.3f} ms")
    print(f"{label:40} prediction log: {log_counters} (records queued, dropped for a full buffer, rows written)")
print(json.dumps(results))
