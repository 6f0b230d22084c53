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

With --together ROUNDS each start is a pair of servers, one logged and one not, both on CPU 0,
loaded at the same time by two wrk processes on CPU 1 (16 connections each) for ROUNDS runs of
--seconds. The two share every moment of the VM, whose speed otherwise drifts by 10-30% from
one second to the next here (so much that separate runs, even alternated every two seconds,
disagree by more than the log costs), and the kernel shares the core between them. Each run
gives a paired ratio of the servers' CPU per request; the log's cost is the median ratio over
all starts and rounds. Two unlogged servers measured this way agree within 1%. Which server's
wrk starts first alternates from start to start.

With --versus BIN (and --together) the second server is BIN, logged too, instead of an unlogged
one: the paired ratio is then the CPU per request of --cairn's build against BIN's, both
logging, which is how a change to the log is measured on this VM. The writer thread's CPU and
the drops are printed for both.

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
parser.add_argument("--together", type=int, default=0, metavar="ROUNDS",
                    help="run a logged and an unlogged server at the same time on CPU 0, each loaded by its own "
                         "wrk, ROUNDS times per start; report the median of the paired CPU-per-request ratios")
parser.add_argument("--versus", metavar="BIN",
                    help="with --together: the second server is this cairn binary, logged, instead of an unlogged "
                         "one (compares two builds)")
args = parser.parse_args()
if args.versus and not args.together:
    parser.error("--versus needs --together")
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


def wrk_command(url, seconds, threads=2, connections=32):
    pin = ["taskset", "-c", "1"] if args.pin or args.together else []
    return [*pin, "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", script, url]


def wrk(url, seconds):
    out = subprocess.run(wrk_command(url, seconds), capture_output=True, text=True, check=True,
                         env={**os.environ, "BODY": body_path})
    return json.loads(out.stdout.strip().splitlines()[-1])


def start_server(model_path, extra, binary=None):
    port = free_port()
    home = tempfile.mkdtemp()
    pin = ["taskset", "-c", "0"] if args.pin or args.together else []
    proc = subprocess.Popen([*pin, binary or cairn, "serve", model_path, "--port", str(port), *extra],
                            env={**os.environ, "CAIRN_LOG": "warn", "CAIRN_HOME": home},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/v2/health/ready", proc)
    except BaseException:
        stop_server((proc, home, None))
        raise
    return proc, home, f"http://127.0.0.1:{port}/v2/models/model/infer"


def stop_server(server):
    proc, home, _ = server
    proc.terminate()
    proc.wait()
    shutil.rmtree(home, ignore_errors=True)


def burst(server, seconds):
    """(server CPU us per request, req/s, log writer thread us per request) over one wrk run."""
    proc, _, url = server
    before = cpu_by_thread(proc.pid)
    run = wrk(url, seconds)
    after = cpu_by_thread(proc.pid)
    spent = {name: after[name] - before.get(name, 0.0) for name in after}
    n = max(run["requests"], 1)
    return sum(spent.values()) / n * 1e6, run["requests_per_s"], writer_seconds(spent) / n * 1e6


def writer_seconds(spent):
    """CPU seconds of the log writer thread, from seconds per thread name (as the kernel truncates it)."""
    return sum(t for name, t in spent.items() if name.startswith("cairn-predictio"))


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


ROWS_WRITTEN = "cairn_prediction_log_rows_written_total"


def counter(server, name):
    """One of the server's counters from /metrics (0 when it has none)."""
    base = server[2].split("/v2/")[0]
    with urllib.request.urlopen(base + "/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return int(float(line.split()[-1]))
    return 0


def dropped(server):
    """Predictions the server's log dropped because its buffer was full."""
    return counter(server, "cairn_prediction_log_dropped_total")


def together(label, model_path):
    """Two servers on one core, loaded at once: --cairn logged and, beside it, --cairn unlogged (or
    --versus's build, logged); paired CPU-per-request ratios."""
    costs, lost, rows = [], [], []
    warmups = 1 if args.warmup > 0 else 0  # one run at --warmup seconds, not counted
    # "base" is what the logged --cairn is compared with.
    base = ("versus", [], args.versus) if args.versus else ("unlogged", ["--no-prediction-log"], None)
    drops, served = {"logged": 0, base[0]: 0}, {"logged": 0, base[0]: 0}
    writer_of = {"logged": [], base[0]: []}
    # The writer's CPU per row it wrote: its efficiency, whatever share of the rows it dropped.
    writer_cpu, written = {"logged": 0.0, base[0]: 0.0}, {"logged": 0, base[0]: 0}
    logging = ["logged", base[0]] if args.versus else ["logged"]
    what = "--cairn costs" if args.versus else "the log costs"
    for start in range(args.starts):
        servers = {}
        try:
            servers["logged"] = start_server(model_path, [])
            servers[base[0]] = start_server(model_path, base[1], base[2])
            order = ["logged", base[0]] if start % 2 == 0 else [base[0], "logged"]
            for r in range(warmups + args.together):
                seconds = args.warmup if r < warmups else args.seconds
                before = {v: cpu_by_thread(servers[v][0].pid) for v in order}
                written_before = {v: counter(servers[v], ROWS_WRITTEN) for v in order}
                loads = {v: subprocess.Popen(wrk_command(servers[v][2], seconds, 1, 16), stdout=subprocess.PIPE,
                                             text=True, env={**os.environ, "BODY": body_path}) for v in order}
                runs = {v: json.loads(loads[v].communicate()[0].strip().splitlines()[-1]) for v in order}
                after = {v: cpu_by_thread(servers[v][0].pid) for v in order}
                if r < warmups:
                    continue
                spent = {v: {k: after[v][k] - before[v].get(k, 0.0) for k in after[v]} for v in order}
                us = {v: sum(spent[v].values()) / max(runs[v]["requests"], 1) * 1e6 for v in order}
                writer_us = {}
                for v in order:
                    writer = writer_seconds(spent[v])
                    writer_us[v] = writer / max(runs[v]["requests"], 1) * 1e6
                    writer_of[v].append(writer_us[v])
                    writer_cpu[v] += writer
                    written[v] += counter(servers[v], ROWS_WRITTEN) - written_before[v]
                    served[v] += runs[v]["requests"]
                rate = {v: runs[v]["requests_per_s"] for v in order}
                costs.append(100 * (1 - us[base[0]] / us["logged"]))
                lost.append(100 * (1 - rate["logged"] / rate[base[0]]))
                rows.append({"start": start, "us_per_request": us, "requests_per_s": rate, "writer_us": writer_us})
                other = f" writer {writer_us[base[0]]:.2f} us" if args.versus else ""
                print(f"{label:40} start {start}: logged {us['logged']:5.1f} us/request ({rate['logged']:6.0f} req/s,"
                      f" writer {writer_us['logged']:.2f} us),"
                      f" {base[0]} {us[base[0]]:5.1f} us/request ({rate[base[0]]:6.0f} req/s{other});"
                      f" {what} {costs[-1]:4.1f}% of capacity",
                      flush=True)
            for v in logging:
                drops[v] += dropped(servers[v])
        finally:
            for server in servers.values():
                stop_server(server)
    q = sorted(costs)
    writers = "; ".join(f"{v} {median(writer_of[v]):.2f} ({1e6 * writer_cpu[v] / max(written[v], 1):.2f} per row written)"
                        for v in logging)
    dropped_text = "; ".join(f"{v} {drops[v]} (about {100 * drops[v] / max(served[v], 1):.2f}%)" for v in logging)
    print(f"{label:40} median of {len(costs)} paired runs: {what} {median(costs):.1f}% of capacity"
          f" against {base[0]} (CPU per request; quartiles {q[len(q) // 4]:.1f} to {q[3 * len(q) // 4]:.1f});"
          f" logged --cairn's throughput {median(lost):.1f}% below {base[0]}'s beside it;"
          f" writer thread us/request: {writers}; predictions dropped by the log: {dropped_text}", flush=True)
    return {"model": label, "compared_with": base[0], "log_cost_percent": median(costs), "paired_cost_percent": costs,
            "paired_throughput_lost_percent": lost, "runs": rows, "dropped": drops}


results = []
for label, est in models.items():
    model_path = os.path.join(tmp, "model.onnx")
    with open(model_path, "wb") as f:
        f.write(to_onnx(est, X[:1]).SerializeToString())
    if args.together > 0:
        results.append(together(label, model_path))
        continue
    per_request = {"logged": [], "unlogged": []}
    throughput = {"logged": [], "unlogged": []}
    writer = []
    for _ in range(args.starts):
        for variant, extra in (("logged", []), ("unlogged", ["--no-prediction-log"])):
            server = start_server(model_path, extra)
            try:
                if args.warmup > 0:
                    wrk(server[2], args.warmup)
                us, rate, w = burst(server, args.seconds)
            finally:
                stop_server(server)
            per_request[variant].append(us)
            throughput[variant].append(rate)
            line = f"{label:40} {variant:8} {us:6.1f} us CPU/request, {rate:8.0f} req/s"
            if variant == "logged":
                writer.append(w)
                line += f" (log writer thread {w:.2f} us/request)"
            print(line, flush=True)
    cpu = {v: sorted(xs)[len(xs) // 2] for v, xs in per_request.items()}
    cost = 100 * (1 - cpu["unlogged"] / cpu["logged"])
    rate = {v: sorted(xs)[len(xs) // 2] for v, xs in throughput.items()}
    lost = 100 * (1 - rate["logged"] / rate["unlogged"])
    print(f"{label:40} median CPU/request: logged {cpu['logged']:.1f} us, unlogged {cpu['unlogged']:.1f} us;"
          f" the log costs {cost:.1f}% of capacity (writer thread {sorted(writer)[len(writer) // 2]:.2f} us/request;"
          f" unlogged starts {min(per_request['unlogged']):.1f}-{max(per_request['unlogged']):.1f} us)", flush=True)
    print(f"{label:40} median throughput: logged {rate['logged']:.0f} req/s, unlogged {rate['unlogged']:.0f} req/s;"
          f" {lost:.1f}% lost to the log (unlogged starts {min(throughput['unlogged']):.0f}-"
          f"{max(throughput['unlogged']):.0f} req/s)", flush=True)
    results.append({"model": label, "cpu_us_per_request": per_request, "writer_us_per_request": writer,
                    "log_cost_percent": cost, "requests_per_s": throughput, "throughput_lost_percent": lost})
shutil.rmtree(tmp, ignore_errors=True)
print(json.dumps(results))
