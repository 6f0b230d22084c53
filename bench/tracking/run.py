#!/usr/bin/env python3
"""bench/tracking: Cairn and `mlflow server` side by side, same machine, same REST requests.

Starts both servers on fresh temporary homes (MLflow: SQLite backend, its default settings),
measures resident memory at rest, drives each with `cairn-bench tracking` (log-batch
throughput with 8 clients, search over 10,000 runs with 20 metrics and 10 params, get-history
of a 100,000-step metric), and prints the numbers and the ratios.

    python3 bench/tracking/run.py            # the full run recorded in docs/benchmarks.md
    python3 bench/tracking/run.py --quick    # smaller sizes, to check the script

Needs: `cargo`, and the pinned mlflow (`pip install -r tests/interop/requirements.txt`); the
mlflow executable is taken from --mlflow, $MLFLOW_BIN, or .venv/bin/mlflow.
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url, proc, timeout=180):
    start = time.time()
    while time.time() - start < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"server at {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return time.time() - start
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"server at {url} did not become healthy in {timeout}s")


def tree_rss_kib(pid):
    """Resident memory of a process and all its descendants, KiB."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except OSError:
                pass
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def start(name, cmd, env, url):
    log = open(os.path.join(env["BENCH_TMP"], f"{name}.log"), "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    ready = wait_healthy(url, proc)
    return proc, ready


def stop(proc):
    try:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
    except Exception:
        os.killpg(proc.pid, 9)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=["runs", "traces"], help="one of the two workloads")
    ap.add_argument("--mlflow", default=os.environ.get("MLFLOW_BIN", os.path.join(ROOT, ".venv", "bin", "mlflow")))
    args = ap.parse_args()
    runs, steps, seconds, repeats = (1000, 20000, 5, 5) if args.quick else (10000, 100000, 20, 11)
    traces = 5000 if args.quick else 100000

    subprocess.run(["cargo", "build", "--release", "-q", "-p", "cairn", "-p", "cairn-bench"], cwd=ROOT, check=True)
    cairn = os.path.join(ROOT, "target", "release", "cairn")
    loadgen = os.path.join(ROOT, "target", "release", "cairn-bench")
    if not os.path.exists(args.mlflow):
        raise SystemExit(f"mlflow not found at {args.mlflow}: pip install -r tests/interop/requirements.txt")
    version = subprocess.run([args.mlflow, "--version"], capture_output=True, text=True).stdout.strip()

    tmp = tempfile.mkdtemp(prefix="cairn-bench-")
    env = dict(os.environ, BENCH_TMP=tmp, CAIRN_LOG="warn")
    results = {}
    servers = {
        "cairn": lambda port: [cairn, "server", "--port", str(port), "--backend-store-uri", f"sqlite:///{tmp}/cairn.db",
                               "--artifacts-destination", f"{tmp}/cairn-artifacts"],
        "mlflow": lambda port: [args.mlflow, "server", "--port", str(port), "--backend-store-uri", f"sqlite:///{tmp}/mlflow.db",
                                "--artifacts-destination", f"{tmp}/mlflow-artifacts"],
    }
    try:
        for name, make in servers.items():
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            proc, ready = start(name, make(port), env, url)
            time.sleep(3)
            rest = tree_rss_kib(proc.pid)
            print(f"[{name}] healthy after {ready:.2f}s, RSS at rest {rest / 1024:.1f} MiB; running the workload...", file=sys.stderr)
            r = {}
            if args.only != "traces":
                out = subprocess.run([loadgen, "tracking", "--url", url, "--runs", str(runs), "--steps", str(steps),
                                      "--seconds", str(seconds), "--repeats", str(repeats)],
                                     capture_output=True, text=True, check=True)
                r.update(json.loads(out.stdout))
            if args.only != "runs":
                out = subprocess.run([loadgen, "traces", "--url", url, "--traces", str(traces),
                                      "--seconds", str(seconds), "--repeats", str(repeats)],
                                     capture_output=True, text=True)
                if out.returncode != 0:
                    raise SystemExit(f"[{name}] the trace workload failed:\n{out.stderr[-3000:]}")
                if out.stderr.strip():
                    print(f"[{name}] {len(out.stderr.splitlines())} refused exports, e.g. {out.stderr.splitlines()[0]}", file=sys.stderr)
                r["traces"] = json.loads(out.stdout)
            time.sleep(3)
            r["ready_seconds"] = ready
            r["rss_rest_mib"] = rest / 1024
            r["rss_after_mib"] = tree_rss_kib(proc.pid) / 1024
            results[name] = r
            stop(proc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    c, m = results["cairn"], results["mlflow"]
    rows = []
    if args.only != "traces":
        rows += [
            ("(a) log-batch, 8 clients x 1000 metrics (metrics/s)", c["log_batch"]["metrics_per_second"], m["log_batch"]["metrics_per_second"], c["log_batch"]["metrics_per_second"] / m["log_batch"]["metrics_per_second"], ">= 20x"),
            (f"(b) search {runs} runs, metric+param filter, order by metric (median ms)", c["search"]["median_ms"], m["search"]["median_ms"], m["search"]["median_ms"] / c["search"]["median_ms"], ">= 10x"),
            (f"(c) get-history of a {steps}-step metric (median ms)", c["history"]["median_ms"], m["history"]["median_ms"], m["history"]["median_ms"] / c["history"]["median_ms"], ">= 10x"),
            ("(d) resident memory at rest (MiB)", c["rss_rest_mib"], m["rss_rest_mib"], m["rss_rest_mib"] / c["rss_rest_mib"], ">= 5x"),
            ("    resident memory after the workload (MiB)", c["rss_after_mib"], m["rss_after_mib"], m["rss_after_mib"] / c["rss_after_mib"], ""),
            ("    time to healthy after start (s)", c["ready_seconds"], m["ready_seconds"], m["ready_seconds"] / max(c["ready_seconds"], 1e-3), ""),
        ]
        print(f"peer: {version}; search returned {c['search']['runs_returned']} (cairn) / {m['search']['runs_returned']} (mlflow) runs; "
              f"history returned {c['history']['returned']} / {m['history']['returned']} points")
    if args.only != "runs":
        ct, mt = c["traces"], m["traces"]
        rows += [
            ("(e) span ingestion through OTLP, 8 clients x 100 spans (spans/s)", ct["ingest"]["spans_per_second"], mt["ingest"]["spans_per_second"],
             ct["ingest"]["spans_per_second"] / mt["ingest"]["spans_per_second"], ">= 20x"),
            (f"(f) traces/search over {traces} traces, status+duration filter (median ms)", ct["search"]["median_ms"], mt["search"]["median_ms"],
             mt["search"]["median_ms"] / ct["search"]["median_ms"], ">= 10x"),
            (f"    loading {traces} traces through OTLP (s)", ct["search"]["load_seconds"], mt["search"]["load_seconds"],
             mt["search"]["load_seconds"] / ct["search"]["load_seconds"], ""),
        ]
        print(f"peer: {version}; trace search returned {ct['search']['traces_returned']} (cairn) / {mt['search']['traces_returned']} (mlflow) traces")
    print(f"{'measure':<75} {'cairn':>12} {'mlflow':>12} {'cairn advantage':>16} {'target':>8}")
    for label, cv, mv, ratio, target in rows:
        print(f"{label:<75} {cv:>12.1f} {mv:>12.1f} {ratio:>15.1f}x {target:>8}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
