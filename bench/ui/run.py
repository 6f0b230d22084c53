#!/usr/bin/env python3
"""bench/ui: Cairn's web UI and MLflow's, side by side, same machine, same data, same browser.

Starts `cairn server` and `mlflow server` (SQLite, default settings) on fresh homes and seeds
both with the same REST requests (`cairn-bench ui-seed`): an experiment of 10,000 runs with 20
metrics of 100 steps (the newest --history-runs runs; the others log each metric's last step)
and 10 params each, and an experiment whose run has 12,000 metric keys; Cairn also gets an
experiment of 100 runs with a 10,000-step metric and a run with a 100,000-step metric (targets
of Cairn's alone).
Then, in headless Chromium (Debian's, through playwright-core; a fresh browser context per
try, median of 5), measures per server the time from navigation until the runs table shows its
first page (the newest run's name visible), until a 10-run chart of one metric is drawn, and
the bytes each page transferred; for Cairn also the runs page's server time (median of 20 GETs),
a chart of 100 runs x 10,000 steps, and the size of every page.

    python3 bench/ui/run.py                 # the run recorded in docs/benchmarks.md
    python3 bench/ui/run.py --quick         # 1,000 runs, to check the script

Needs: `cargo`, the pinned mlflow (`.venv`, `pip install -r tests/interop/requirements.txt`),
`chromium` and `npm ci` in tests/ui.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "bench", "tracking"))
from run import free_port, start, stop  # noqa: E402  (bench/tracking/run.py)


def seed(loadgen, url, name, **sizes):
    cmd = [loadgen, "ui-seed", "--url", url, "--name", name]
    for k, v in sizes.items():
        cmd += ["--" + k.replace("_", "-"), str(v)]
    started = time.time()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    print(f"  seeded {name} into {url} in {time.time() - started:.0f}s", file=sys.stderr)
    return result


def measure(url, wait, chromium, repeats, screenshot=None, timeout_ms=120000):
    spec = {"url": url, "wait": wait, "chromium": chromium, "repeats": repeats, "timeout_ms": timeout_ms}
    if screenshot:
        spec["screenshot"] = screenshot
    out = subprocess.run(["node", os.path.join(ROOT, "bench", "ui", "measure.mjs"), json.dumps(spec)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "node failed"}
    return json.loads(out.stdout)


def get_ms(url, repeats=20):
    """Server time of a page: wall time of a GET on loopback, last byte read (median)."""
    times, size = [], 0
    for _ in range(repeats):
        t = time.perf_counter()
        with urllib.request.urlopen(url, timeout=60) as r:
            size = len(r.read())
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), size


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--mlflow", default=os.environ.get("MLFLOW_BIN", os.path.join(ROOT, ".venv", "bin", "mlflow")))
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--only", choices=["cairn", "mlflow", "both"], default="both")
    # MLflow ingests about 3,500 metric values a second here: the full 20 x 100 steps of all
    # 10,000 runs (20M values) would take it 95 minutes. By default the newest 100 runs
    # (the first page, and every run a page charts) log every step, the others their last step,
    # the same latest values, for both servers; --history-runs 10000 loads everything.
    ap.add_argument("--history-runs", type=int, default=100)
    args = ap.parse_args()
    runs = 1000 if args.quick else 10000
    long_steps = 20000 if args.quick else 100000

    subprocess.run(["cargo", "build", "--release", "-q", "-p", "cairn", "-p", "cairn-bench"], cwd=ROOT, check=True)
    cairn = os.path.join(ROOT, "target", "release", "cairn")
    loadgen = os.path.join(ROOT, "target", "release", "cairn-bench")
    version = subprocess.run([args.mlflow, "--version"], capture_output=True, text=True).stdout.strip()
    tmp = tempfile.mkdtemp(prefix="cairn-bench-ui-")
    shots = os.path.join(ROOT, "bench", "out", "ui")
    os.makedirs(shots, exist_ok=True)
    env = dict(os.environ, BENCH_TMP=tmp, CAIRN_LOG="warn", CAIRN_HOME=os.path.join(tmp, "cairn-home"))
    servers = {
        "cairn": lambda port: [cairn, "server", "--port", str(port), "--backend-store-uri", f"sqlite:///{tmp}/cairn.db",
                               "--artifacts-destination", f"{tmp}/cairn-artifacts"],
        "mlflow": lambda port: [args.mlflow, "server", "--port", str(port), "--backend-store-uri", f"sqlite:///{tmp}/mlflow.db",
                                "--artifacts-destination", f"{tmp}/mlflow-artifacts"],
    }
    results = {}
    try:
        for name, make in servers.items():
            if args.only not in (name, "both"):
                continue
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            proc, _ = start(name, make(port), env, url)
            print(f"[{name}] seeding...", file=sys.stderr)
            main_exp = seed(loadgen, url, "ui-bench", runs=runs, metrics=20, steps=100, params=10,
                            history_runs=args.history_runs, wide_keys=12000)
            # The 100-run x 10,000-step chart and the 100,000-step run are Cairn's targets alone
            # (MLflow's charts show 10 runs unless runs are picked by hand): only Cairn gets them.
            long_exp = seed(loadgen, url, "ui-bench-long", runs=100, metrics=1, steps=10000, params=2,
                            long_steps=long_steps) if name == "cairn" else {"seconds": 0}
            exp, wide = main_exp["experiment_id"], main_exp["wide_experiment_id"]
            newest = f"run-{runs - 1:05d}"
            newest_wide = "wide-run"
            ten = main_exp["run_ids"][-10:]
            hundred = long_exp.get("run_ids", [])
            r = {"seed": {"main_s": main_exp["seconds"], "long_s": long_exp["seconds"]}}
            print(f"[{name}] measuring in Chromium...", file=sys.stderr)
            if name == "cairn":
                table_url = f"{url}/experiments/{exp}"
                chart_url = f"{url}/chart?" + "&".join(f"run={i}" for i in ten) + "&metric=metric_00"
                chart100_url = f"{url}/chart?" + "&".join(f"run={i}" for i in hundred) + "&metric=metric_00"
                wide_url = f"{url}/experiments/{wide}"
                r["table"] = measure(table_url, {"text": newest}, args.chromium, args.repeats, f"{shots}/cairn-runs.png")
                r["chart10"] = measure(chart_url, {"selector": "#chart polyline.series", "count": 10}, args.chromium, args.repeats, f"{shots}/cairn-chart10.png")
                r["chart100"] = measure(chart100_url, {"selector": "#chart polyline.series", "count": 100}, args.chromium, args.repeats, f"{shots}/cairn-chart100.png")
                r["wide"] = measure(wide_url, {"text": newest_wide}, args.chromium, args.repeats, f"{shots}/cairn-wide.png")
                r["server_ms"], r["table_html_bytes"] = get_ms(table_url)
                pages = {
                    "runs table": table_url,
                    "10-run chart": chart_url,
                    "100-run x 10,000-step chart": chart100_url,
                    "12,000-key experiment": wide_url,
                    "run with a 100,000-step metric": f"{url}/runs/{long_exp['long_run_id']}",
                    "chart of the 100,000-step metric": f"{url}/chart?run={long_exp['long_run_id']}&metric=long_loss",
                    "column chooser keys (12,000)": f"{url}/ui-api/keys?experiments={wide}&q=wide",
                }
                r["pages"] = {}
                for label, page_url in pages.items():
                    ms, size = get_ms(page_url, repeats=5)
                    r["pages"][label] = {"server_ms": ms, "bytes": size}
            else:
                table_url = f"{url}/#/experiments/{exp}/runs"
                # MLflow's chart view of the runs page: a chart per metric of the 10 visible
                # (newest) runs, drawn with plotly.
                chart_url = f"{url}/#/experiments/{exp}/runs?compareRunsMode=CHART"
                wide_url = f"{url}/#/experiments/{wide}/runs"
                r["table"] = measure(table_url, {"text": newest}, args.chromium, args.repeats, f"{shots}/mlflow-runs.png")
                r["chart10"] = measure(chart_url, {"selector": ".js-plotly-plot .scatterlayer .trace", "count": 10}, args.chromium, args.repeats, f"{shots}/mlflow-chart10.png")
                r["chart100"] = {"error": "not measured: MLflow's charts show 10 runs unless runs are picked by hand"}
                r["wide"] = measure(wide_url, {"text": newest_wide}, args.chromium, args.repeats, f"{shots}/mlflow-wide.png", timeout_ms=180000)
            results[name] = r
            stop(proc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"peer: {version}; {runs} runs x 20 metrics (100 steps for the newest {min(args.history_runs, runs)}) + 10 params; medians of {args.repeats} in headless Chromium")
    if "cairn" in results and "mlflow" in results:
        c, m = results["cairn"], results["mlflow"]
        rows = [("time to the runs table's first page (ms)", "table"), ("time to a 10-run chart (ms)", "chart10"),
                ("time to a 100-run x 10,000-step chart (ms)", "chart100"), ("time to open a 12,000-metric-key experiment (ms)", "wide")]
        print(f"{'measure':<52} {'cairn':>10} {'mlflow':>10} {'mlflow/cairn':>13} {'bytes cairn':>12} {'bytes mlflow':>13}")
        for label, key in rows:
            cm, mm = c[key].get("median_ms"), m[key].get("median_ms")
            ratio = f"{mm / cm:.1f}x" if cm and mm else "-"
            print(f"{label:<52} {cm if cm is not None else c[key].get('error', '-')!s:>10} {mm if mm is not None else m[key].get('error', '-')!s:>10} {ratio:>13} {c[key].get('bytes', 0):>12} {m[key].get('bytes', 0):>13}")
    if "cairn" in results:
        c = results["cairn"]
        print(f"cairn runs page server time: {c['server_ms']:.1f} ms (median of 20), {c['table_html_bytes']} bytes of HTML")
        for label, p in c["pages"].items():
            print(f"  {label:<40} {p['server_ms']:>8.1f} ms {p['bytes']:>9} bytes")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
