#!/usr/bin/env python3
"""bench/features/historical.py: point-in-time training sets, `cairn features get-historical`
against Feast's `get_historical_features` (file offline store), on the same files, in one run.

    .venv-feast/bin/python bench/features/historical.py [--entity-rows 1000000]
        [--rows 10000000] [--entities 100000] [--cairn target/release/cairn]

One feature view of 10 features (8 floats, an integer, a string) over `--entities` drivers and
`--rows` source rows spread over 30 days, with a time to live of 7 days; `--entity-rows` entity
rows (a driver and a time each, microsecond times so no two repeat). Each tool runs in a process
of its own, measured alone: wall time and peak resident memory (ru_maxrss). The answers are
compared row by row on (driver, time): every row Feast returns must equal Cairn's. Feast's file
store leaves out the entity rows that find no value (Cairn keeps them, with nulls, as Feast's
SQL stores do); the script counts those and checks that Cairn has no value there.

Needs Feast in the running Python (tests/interop/requirements-feast.txt) and a release build of
cairn (built here unless --cairn is given).
"""
import argparse
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent.parent
parser = argparse.ArgumentParser()
parser.add_argument("--entity-rows", type=int, default=1_000_000)
parser.add_argument("--rows", type=int, default=10_000_000)
parser.add_argument("--entities", type=int, default=100_000)
parser.add_argument("--cairn")
parser.add_argument("--skip-feast", action="store_true", help="time Cairn alone")
args = parser.parse_args()

if args.cairn:
    cairn = str(Path(args.cairn).resolve())
else:
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "cairn"], cwd=ROOT, check=True)
    cairn = str(ROOT / "target" / "release" / "cairn")

BASE = datetime(2026, 10, 1, tzinfo=timezone.utc)
MONTH_US = 30 * 86_400_000_000
FEATURES = [f"f{i}" for i in range(8)] + ["trips", "city"]
work = Path(tempfile.mkdtemp(prefix="cairn-bench-historical-"))
(work / "data").mkdir()
rng = np.random.default_rng(1)
n = args.rows
frame = pd.DataFrame({
    "driver_id": rng.integers(0, args.entities, n) + 1000,
    "event_timestamp": pd.to_datetime(BASE) + pd.to_timedelta(rng.integers(0, MONTH_US, n), unit="us"),
})
for i in range(8):
    frame[f"f{i}"] = rng.random(n)
frame["trips"] = rng.integers(0, 100, n)
frame["city"] = np.array([f"city{i}" for i in range(50)])[rng.integers(0, 50, n)]
frame.to_parquet(work / "data" / "stats.parquet", index=False, row_group_size=1 << 20)
del frame
m = args.entity_rows
entities = pd.DataFrame({
    # A few drivers the source never saw: they join nothing.
    "driver_id": rng.integers(0, args.entities + args.entities // 100, m) + 1000,
    "event_timestamp": pd.to_datetime(BASE) + pd.to_timedelta(rng.integers(0, MONTH_US + 86_400_000_000, m), unit="us"),
})
entities.to_parquet(work / "entities.parquet", index=False)
del entities
print(f"data: {n:,} feature rows over {args.entities:,} drivers, {m:,} entity rows; in {work}", flush=True)

(work / "features.yaml").write_text(
    "project: bench\nentities:\n  - {name: driver, join_keys: [driver_id]}\n"
    "sources:\n  - {name: stats, path: data/stats.parquet, timestamp_field: event_timestamp}\n"
    "feature_views:\n  - name: stats\n    entities: [driver]\n    ttl: 7d\n    source: stats\n    schema:\n"
    + "".join(f"      - {{name: f{i}, dtype: Float64}}\n" for i in range(8))
    + "      - {name: trips, dtype: Int64}\n      - {name: city, dtype: String}\n")
feast_repo = work / "feast"
feast_repo.mkdir()
(feast_repo / "feature_store.yaml").write_text(
    f"project: bench\nregistry: {feast_repo / 'registry.db'}\nprovider: local\n"
    f"offline_store:\n  type: file\n"
    f"online_store:\n  type: sqlite\n  path: {feast_repo / 'online.db'}\n"
    "entity_key_serialization_version: 3\n")
(feast_repo / "definitions.py").write_text(f'''
from datetime import timedelta
from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64, String
driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
stats = FileSource(name="stats", path="{work / 'data' / 'stats.parquet'}", timestamp_field="event_timestamp")
stats_view = FeatureView(name="stats", entities=[driver], ttl=timedelta(days=7), source=stats, online=True,
    schema=[{", ".join(f'Field(name="f{i}", dtype=Float64)' for i in range(8))},
            Field(name="trips", dtype=Int64), Field(name="city", dtype=String)])
''')
# Outside the repository: `feast apply` imports every Python file in it.
(work / "feast_historical.py").write_text(f'''
import sys
import pandas as pd
from feast import FeatureStore
store = FeatureStore(repo_path="{feast_repo}")
entity_df = pd.read_parquet("{work / 'entities.parquet'}")
job = store.get_historical_features(entity_df=entity_df, features={[f"stats:{f}" for f in FEATURES]!r})
job.to_df().to_parquet(sys.argv[1], index=False)
''')
env = {**os.environ, "CAIRN_HOME": str(work / "home"), "CAIRN_LOG": "warn"}

MEASURE = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
           "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
           "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc)")


def timed(cmd, cwd):
    """Wall seconds, peak resident MiB and exit status of a command, in a fresh parent of its
    own; its stderr goes to this script's."""
    out = subprocess.run([sys.executable, "-c", MEASURE, *cmd], cwd=cwd, env=env, check=True,
                         stdout=subprocess.PIPE, text=True).stdout.split()
    return float(out[0]), int(out[1]) / 1024, int(out[2])


feast_bin = str(Path(sys.executable).parent / "feast")
subprocess.run([cairn, "features", "apply"], cwd=work, check=True, stdout=subprocess.DEVNULL, env=env)
cairn_out = work / "cairn.parquet"
cairn_s, cairn_mb, rc = timed([cairn, "features", "get-historical", "--entities", "entities.parquet",
                           "--features", ",".join(f"stats:{f}" for f in FEATURES), "-o", str(cairn_out)], work)
if rc != 0:
    sys.exit(f"cairn get-historical failed (exit {rc})")
print(f"cairn get-historical: {cairn_s:.2f} s, peak {cairn_mb:.0f} MiB", flush=True)
if args.skip_feast:
    sys.exit(0)
subprocess.run([feast_bin, "apply"], cwd=feast_repo, check=True, stdout=subprocess.DEVNULL, env=env)
feast_out = work / "feast.parquet"
feast_s, feast_mb, rc = timed([sys.executable, str(work / "feast_historical.py"), str(feast_out)], feast_repo)
if rc != 0:
    # -9: the kernel's out-of-memory killer, at this scale on a small machine.
    sys.exit(f"feast get_historical_features failed (exit {rc}) after {feast_s:.2f} s, peak {feast_mb:.0f} MiB; "
             f"cairn took {cairn_s:.2f} s, peak {cairn_mb:.0f} MiB")
print(f"feast get_historical_features: {feast_s:.2f} s, peak {feast_mb:.0f} MiB", flush=True)

ours = pd.read_parquet(cairn_out)
theirs = pd.read_parquet(feast_out)
key = ["driver_id", "event_timestamp"]
for frame in (ours, theirs):
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    frame.sort_values(key, inplace=True, ignore_index=True)
assert len(ours) == m, f"cairn answered {len(ours)} rows for {m} entity rows"
merged = theirs.merge(ours, on=key, how="left", suffixes=("_feast", "_cairn"), validate="one_to_one")
unequal = 0
for f in FEATURES:
    a, b = merged[f + "_feast"], merged[f + "_cairn"]
    same = (a == b) | (a.isna() & b.isna())
    unequal += int((~same).sum())
missing = ours.merge(theirs[key], on=key, how="left", indicator=True)
only_cairn = missing[missing["_merge"] == "left_only"]
# Entity rows Feast left out must be the ones with no value in Cairn's answer.
left_out_with_values = int(only_cairn[FEATURES].notna().any(axis=1).sum())
print(f"compared {len(merged):,} rows Feast answered: {unequal} values differ; "
      f"{len(only_cairn):,} entity rows only Cairn answered (no value within the ttl: "
      f"{len(only_cairn) - left_out_with_values:,} of them)")
print(f"get-historical {m:,} entity rows x {n:,} feature rows: cairn {cairn_s:.2f} s (peak {cairn_mb:.0f} MiB), "
      f"feast {feast_s:.2f} s (peak {feast_mb:.0f} MiB): {feast_s / cairn_s:.1f}x")
if unequal or left_out_with_values:
    sys.exit("the answers differ")
