#!/usr/bin/env python3
"""bench/features: `cairn features` against Feast on the same data, in one run.

    .venv-feast/bin/python bench/features/run.py [--entities 10000] [--rows 1000000]
        [--requests 2000] [--cairn target/release/cairn]

One feature view of 10 features (8 floats, an integer, a string) over `--entities` drivers and
`--rows` source rows (timestamps spread over a day), in a Parquet file both read.
- Materialization: `feast materialize` (Feast's Python SDK, SQLite online store) and
  `cairn features materialize` (SQLite online store in the home), the same interval: wall
  time and the process's peak memory (ru_maxrss of the child).
- Online lookups over HTTP: Feast's Python feature server (`feast serve`, one worker, access
  log off) and `cairn features serve`, each on its own SQLite store (or both on one Redis with
  `--online-store redis`, each under its own keys), the same requests from one
  Python client on a kept-alive connection, one at a time: 1 entity x 10 features and 100
  entities x 10 features; p50/p99 of the client-side latency.

Needs Feast in the running Python (tests/interop/requirements-feast.txt) and a release build
of cairn (built here unless --cairn is given).
"""
import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import free_port, wait_healthy  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent.parent
parser = argparse.ArgumentParser()
parser.add_argument("--entities", type=int, default=10_000)
parser.add_argument("--rows", type=int, default=1_000_000)
parser.add_argument("--requests", type=int, default=2000)
parser.add_argument("--cairn")
parser.add_argument("--online-store", choices=["sqlite", "redis"], default="sqlite",
                    help="where both keep online values: each its own SQLite file, or the Redis at --redis")
parser.add_argument("--redis", default="127.0.0.1:6379")
args = parser.parse_args()

if args.cairn:
    cairn = str(Path(args.cairn).resolve())
else:
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "cairn"], cwd=ROOT, check=True)
    cairn = str(ROOT / "target" / "release" / "cairn")

BASE = datetime(2026, 11, 1, tzinfo=timezone.utc)
FEATURES = [f"f{i}" for i in range(8)] + ["trips", "city"]
work = Path(tempfile.mkdtemp(prefix="cairn-bench-features-"))
(work / "data").mkdir()
rng = np.random.default_rng(0)
n = args.rows
frame = pd.DataFrame({"driver_id": rng.integers(0, args.entities, n) + 1000,
                      "event_timestamp": pd.to_datetime(BASE) + pd.to_timedelta(rng.integers(0, 86_400_000_000, n), unit="us")})
# Microsecond times: two rows of one entity at the same time (where Feast keeps either) are
# practically impossible, so both stores hold the same latest rows.
for i in range(8):
    frame[f"f{i}"] = rng.random(n)
frame["trips"] = rng.integers(0, 100, n)
frame["city"] = np.array([f"city{i}" for i in range(50)])[rng.integers(0, 50, n)]
frame.to_parquet(work / "data" / "stats.parquet", index=False)
print(f"data: {n:,} rows, {args.entities:,} entities, 10 features; in {work}", flush=True)

(work / "features.yaml").write_text(
    "project: bench\nentities:\n  - {name: driver, join_keys: [driver_id]}\n"
    "sources:\n  - {name: stats, path: data/stats.parquet, timestamp_field: event_timestamp}\n"
    "feature_views:\n  - name: stats\n    entities: [driver]\n    ttl: 0\n    source: stats\n    schema:\n"
    + "".join(f"      - {{name: f{i}, dtype: Float64}}\n" for i in range(8))
    + "      - {name: trips, dtype: Int64}\n      - {name: city, dtype: String}\n")
feast_repo = work / "feast"
feast_repo.mkdir()
(feast_repo / "feature_store.yaml").write_text(
    f"project: bench\nregistry: {feast_repo / 'registry.db'}\nprovider: local\n"
    f"offline_store:\n  type: file\n"
    + (f"online_store:\n  type: sqlite\n  path: {feast_repo / 'online.db'}\n" if args.online_store == "sqlite"
       else f"online_store:\n  type: redis\n  connection_string: \"{args.redis}\"\n")
    + "entity_key_serialization_version: 3\n")
(feast_repo / "definitions.py").write_text(f'''
from datetime import timedelta
from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64, String
driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
stats = FileSource(name="stats", path="{work / 'data' / 'stats.parquet'}", timestamp_field="event_timestamp")
stats_view = FeatureView(name="stats", entities=[driver], ttl=timedelta(0), source=stats, online=True,
    schema=[{", ".join(f'Field(name="f{i}", dtype=Float64)' for i in range(8))},
            Field(name="trips", dtype=Int64), Field(name="city", dtype=String)])
''')
start, end = "2026-10-31T00:00:00", "2026-11-02T00:00:00"
env = {**os.environ, "CAIRN_HOME": str(work / "home"), "CAIRN_LOG": "warn"}
if args.online_store == "redis":
    env["CAIRN_ONLINE_STORE"] = f"redis://{args.redis}"


MEASURE = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
           "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
           "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def timed(cmd, cwd):
    """Wall seconds and peak resident MiB of a command, measured by a fresh parent of its own
    (so no earlier child's peak counts)."""
    out = subprocess.run([sys.executable, "-c", MEASURE, *cmd], cwd=cwd, env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[0]), int(out[1]) / 1024


feast_bin = str(Path(sys.executable).parent / "feast")
subprocess.run([feast_bin, "apply"], cwd=feast_repo, check=True, stdout=subprocess.DEVNULL, env=env)
subprocess.run([cairn, "features", "apply"], cwd=work, check=True, stdout=subprocess.DEVNULL, env=env)
# Peak memory: each measured alone, Cairn first (RUSAGE_CHILDREN keeps the largest child seen).
cairn_s, cairn_mb = timed([cairn, "features", "materialize", start + "Z", end + "Z"], work)
feast_s, feast_mb = timed([feast_bin, "materialize", start, end], feast_repo)
print(f"online store: {args.online_store}")
print(f"materialize {n:,} rows: cairn {cairn_s:.2f} s (peak {cairn_mb:.0f} MiB), "
      f"feast {feast_s:.2f} s (peak {feast_mb:.0f} MiB): {feast_s / cairn_s:.1f}x", flush=True)


def serve(cmd, cwd, port):
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_healthy(f"http://127.0.0.1:{port}", proc)
    return proc


def latencies(name, port, body, count):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    payload = json.dumps(body)
    headers = {"Content-Type": "application/json"}
    out = []
    reconnects = 0
    for i in range(count + 100):
        started = time.perf_counter()
        try:
            conn.request("POST", "/get-online-features", payload, headers)
            resp = conn.getresponse()
        except (ConnectionError, http.client.HTTPException):
            # The server closed the kept-alive connection: reconnect (not timed) and retry.
            reconnects += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port)
            started = time.perf_counter()
            conn.request("POST", "/get-online-features", payload, headers)
            resp = conn.getresponse()
        data = resp.read()
        took = time.perf_counter() - started
        if resp.status != 200:
            raise SystemExit(f"{port}: {resp.status} {data[:300]}")
        if i >= 100:
            out.append(took * 1000)
    conn.close()
    if reconnects:
        print(f"  {name}: the server closed the connection {reconnects} times", flush=True)
    return np.percentile(out, 50), np.percentile(out, 99), json.loads(data)


results = {"online_store": args.online_store, "rows": n, "entities": args.entities, "materialize": {"cairn_s": cairn_s, "feast_s": feast_s,
                                                                   "cairn_peak_mib": cairn_mb, "feast_peak_mib": feast_mb}}
ids = list(range(1000, 1000 + args.entities))
requests = {
    "1 entity": {"features": [f"stats:{f}" for f in FEATURES], "entities": {"driver_id": [ids[7]]}},
    "100 entities": {"features": [f"stats:{f}" for f in FEATURES], "entities": {"driver_id": ids[100:200]}},
}
for name, cmd, cwd in (("cairn", [cairn, "features", "serve", "--port", "{port}"], work),
                       ("feast", [feast_bin, "serve", "-h", "127.0.0.1", "-p", "{port}", "--no-access-log"], feast_repo)):
    port = free_port()
    proc = serve([c.replace("{port}", str(port)) for c in cmd], cwd, port)
    try:
        for label, body in requests.items():
            p50, p99, answer = latencies(name, port, body, args.requests)
            results.setdefault(label, {})[name] = {"p50_ms": p50, "p99_ms": p99}
            results[label][name + "_answer"] = {
                n: r["values"][:3] for n, r in zip(answer["metadata"]["feature_names"], answer["results"])}
    finally:
        proc.terminate()
        proc.wait()
for label in requests:
    r = results[label]
    same = r["cairn_answer"] == r["feast_answer"]
    print(f"online {label} x 10 features: cairn p50 {r['cairn']['p50_ms']:.3f} ms p99 {r['cairn']['p99_ms']:.3f} ms;"
          f" feast p50 {r['feast']['p50_ms']:.3f} ms p99 {r['feast']['p99_ms']:.3f} ms;"
          f" p99 {r['feast']['p99_ms'] / r['cairn']['p99_ms']:.1f}x; same values: {same}")
print(json.dumps(results, default=str))
