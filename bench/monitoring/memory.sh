#!/usr/bin/env bash
# Peak memory of a monitoring query over a large prediction log: 3,000,000 logged rows of 8
# features (15 Parquet files, 272 MB, in the log's own layout) against a 2,000-row reference,
# `cairn monitor drift` over the whole window, under /usr/bin/time -v.
# Usage: bash bench/monitoring/memory.sh [path/to/cairn]   (default: target/release/cairn)
# Needs .venv with numpy and pyarrow (tests/interop/requirements.txt installs both).
set -euo pipefail
cd "$(dirname "$0")/../.."
cairn="${1:-target/release/cairn}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
.venv/bin/python - "$work" <<'PY'
import os, sys
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
work = sys.argv[1]
rng = np.random.default_rng(1)
with open(f"{work}/train.csv", "w") as f:
    f.write(",".join(f"x{i}" for i in range(8)) + "\n")
    for row in rng.normal(size=(2000, 8)):
        f.write(",".join(f"{v:.5f}" for v in row) + "\n")
log = f"{work}/home/monitoring/predictions/m/1"
os.makedirs(log)
start, per_file = 1_700_000_000_000, 200_000
for k in range(15):
    ts = start + k * per_file + np.arange(per_file)
    cols = {
        "_request_id": pa.array([f"{i:032x}" for i in range(k * per_file, (k + 1) * per_file)]),
        "_row": pa.array(np.zeros(per_file, dtype=np.int64)),
        "_timestamp_ms": pa.array(ts),
    }
    x = rng.normal(loc=0.3, size=(per_file, 8))
    for i in range(8):
        cols[f"x{i}"] = pa.array(x[:, i])
    cols["_output:y"] = pa.array(rng.random(per_file))
    pq.write_table(pa.table(cols), f"{log}/{ts[0]}-{ts[-1]}-{k}.parquet", compression="snappy")
PY
export CAIRN_HOME="$work/home"
"$cairn" monitor reference models:/m/1 "$work/train.csv" >/dev/null
echo "log: $(du -sh "$work/home/monitoring/predictions" | cut -f1) of Parquet, 3,000,000 rows"
/usr/bin/time -v "$cairn" monitor drift models:/m/1 --window 1200d 2>"$work/time.txt" | tail -1
grep -E "Maximum resident|Elapsed" "$work/time.txt"
