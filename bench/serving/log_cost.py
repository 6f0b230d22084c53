#!/usr/bin/env python3
"""bench/serving/log_cost.py: what the prediction log costs `cairn serve`, measured as the server's
CPU time per request (user + system, all its threads, from /proc) under wrk at 32 connections,
over several server starts, logged and `--no-prediction-log` alternately.

    python3 bench/serving/log_cost.py [--starts 5] [--seconds 8] [--pin] [--cairn target/release/cairn]

Why CPU per request and many starts: at 32 connections both cores are busy (the server and wrk),
so the CPU a request takes is the capacity it uses; and on a VM that CPU moves by 10-20% from
one server start to the next (memory placement), more than the log costs, so one logged and one
unlogged start compare two draws, not the log. The log writer thread's own CPU per request is
printed apart: it does not depend on the draw. Models and request as bench/serving/run.py's.

With --pin the server runs on CPU 0 (so one tokio worker, the log writer beside it) and wrk on
CPU 1 (`taskset`): the draws are much steadier (unlogged starts within 1-4% of each other),
and the server's one core is what both variants are limited by, so the throughput each reaches
is printed too.

Needs: wrk, tests/interop/requirements.txt (scikit-learn, skl2onnx); Linux (/proc).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

from skl2onnx import to_onnx

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
parser = argparse.ArgumentParser()
parser.add_argument("--starts", type=int, default=5, help="server starts per variant and model")
parser.add_argument("--seconds", type=int, default=8)
parser.add_argument("--warmup", type=int, default=3, help="seconds of load before each measured run")
parser.add_argument("--cairn", help="a built cairn binary (default: build target/release/cairn)")
parser.add_argument("--pin", action="store_true",
                    help="the server on CPU 0 (one tokio worker), wrk on CPU 1: the server's one core is the "
                         "bottleneck, so its throughput is the capacity the log leaves, with no scheduling "
                         "between the server and wrk")
args = parser.parse_args()
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common import cairn_binary, free_port, wait_healthy  # noqa: E402
from serving.models import serving_models  # noqa: E402

cairn = cairn_binary(args.cairn, ROOT)
script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "post.lua")
TICK = os.sysconf("SC_CLK_TCK")

X, models = serving_models()
tmp = tempfile.mkdtemp()
body_path = os.path.join(tmp, "body.json")
with open(body_path, "w") as f:
    json.dump({"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 20], "data": X[:1].ravel().tolist()}]}, f)


def cpu_by_thread(pid):
    """Seconds of user + system CPU per thread name of a process."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            raw = open(f"/proc/{pid}/task/{tid}/stat").read()
        except FileNotFoundError:
            continue  # the thread ended
        name = raw[raw.index("(") + 1:raw.rindex(")")]
        fields = raw.rsplit(")", 1)[1].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / TICK
    return out


def wrk(url, seconds):
    pin = ["taskset", "-c", "1"] if args.pin else []
    out = subprocess.run([*pin, "wrk", "-t2", "-c32", f"-d{seconds}s", "-s", script, url], capture_output=True,
                         text=True, check=True, env={**os.environ, "BODY": body_path})
    return json.loads(out.stdout.strip().splitlines()[-1])


results = []
for label, est in models.items():
    model_path = os.path.join(tmp, "model.onnx")
    with open(model_path, "wb") as f:
        f.write(to_onnx(est, X[:1]).SerializeToString())
    per_request = {"logged": [], "unlogged": []}
    throughput = {"logged": [], "unlogged": []}
    writer = []
    for _ in range(args.starts):
        for variant, extra in (("logged", []), ("unlogged", ["--no-prediction-log"])):
            port = free_port()
            home = tempfile.mkdtemp()
            pin = ["taskset", "-c", "0"] if args.pin else []
            proc = subprocess.Popen([*pin, cairn, "serve", model_path, "--port", str(port), *extra],
                                    env={**os.environ, "CAIRN_LOG": "warn", "CAIRN_HOME": home},
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_healthy(f"http://127.0.0.1:{port}/v2/health/ready", proc)
                url = f"http://127.0.0.1:{port}/v2/models/model/infer"
                if args.warmup > 0:
                    wrk(url, args.warmup)
                before = cpu_by_thread(proc.pid)
                run = wrk(url, args.seconds)
                after = cpu_by_thread(proc.pid)
            finally:
                proc.terminate()
                proc.wait()
                shutil.rmtree(home, ignore_errors=True)
            spent = {name: after[name] - before.get(name, 0.0) for name in after}
            us = sum(spent.values()) / run["requests"] * 1e6
            per_request[variant].append(us)
            throughput[variant].append(run["requests_per_s"])
            line = f"{label:40} {variant:8} {us:6.1f} us CPU/request, {run['requests_per_s']:8.0f} req/s"
            if variant == "logged":
                # The log writer thread's name, as the kernel truncates it.
                w = sum(v for k, v in spent.items() if k.startswith("cairn-predictio")) / run["requests"] * 1e6
                writer.append(w)
                line += f" (log writer thread {w:.2f} us/request)"
            print(line, flush=True)
    median = {v: sorted(xs)[len(xs) // 2] for v, xs in per_request.items()}
    cost = 100 * (1 - median["unlogged"] / median["logged"])
    rate = {v: sorted(xs)[len(xs) // 2] for v, xs in throughput.items()}
    lost = 100 * (1 - rate["logged"] / rate["unlogged"])
    print(f"{label:40} median CPU/request: logged {median['logged']:.1f} us, unlogged {median['unlogged']:.1f} us;"
          f" the log costs {cost:.1f}% of capacity (writer thread {sorted(writer)[len(writer) // 2]:.2f} us/request;"
          f" unlogged starts {min(per_request['unlogged']):.1f}-{max(per_request['unlogged']):.1f} us)", flush=True)
    print(f"{label:40} median throughput: logged {rate['logged']:.0f} req/s, unlogged {rate['unlogged']:.0f} req/s;"
          f" {lost:.1f}% lost to the log (unlogged starts {min(throughput['unlogged']):.0f}-"
          f"{max(throughput['unlogged']):.0f} req/s)", flush=True)
    results.append({"model": label, "cpu_us_per_request": per_request, "writer_us_per_request": writer,
                    "log_cost_percent": cost, "requests_per_s": throughput, "throughput_lost_percent": lost})
shutil.rmtree(tmp, ignore_errors=True)
print(json.dumps(results))
