#!/usr/bin/env python3
"""`cairn validate` versus Great Expectations and `cairn drift` versus Evidently, on the same
machine and the same files, in one run.

Cases (issue 5):
  (a) 10 expectations on 10,000,000 rows x 10 columns (Parquet): `cairn validate` versus
      Great Expectations 1.24.1 on pandas (read the file with pandas, validate the suite,
      SUMMARY results). The suite is one GX JSON file both tools read.
  (b) Data drift on 1,000,000 rows x 20 columns (reference and current, Parquet): `cairn drift`
      versus Evidently's `DataDriftPreset` (read both files with pandas, run the report, render
      its JSON). Per-column scores are compared as well.

Both tools are timed end to end from the file (what a user runs), warm page cache, each once
after one untimed warm-up of the file read. Peers run with their defaults.

Usage:
  cargo build --release
  python3 -m venv /tmp/venv-quality
  /tmp/venv-quality/bin/pip install great-expectations==1.24.1 evidently==0.7.23 'pandas<3' pyarrow==26.0.1
  /tmp/venv-quality/bin/python bench/quality/run.py [--rows 10000000] [--drift-rows 1000000]
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CAIRN = os.environ.get("CAIRN_BIN", os.path.join(ROOT, "target", "release", "cairn"))


def make_table(rows, seed, shift=0.0, columns=10):
    rng = np.random.default_rng(seed)
    data = {"id": np.arange(rows, dtype=np.int64)}
    words = np.array(["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "Eta", "theta9"])
    n_float = columns - 4
    for i in range(n_float):
        col = rng.normal(shift * (i % 3), 1.0 + 0.1 * i, rows)
        if i == 0:
            col[rng.random(rows) < 0.001] = np.nan
        data[f"f{i}"] = col
    data["n0"] = rng.integers(0, 1000, rows) + int(shift * 50)
    data["c0"] = rng.choice(words[:5], rows, p=[0.4, 0.3, 0.15, 0.1, 0.05] if shift == 0 else [0.2, 0.2, 0.2, 0.2, 0.2])
    data["c1"] = rng.choice(words, rows)
    return pd.DataFrame(data)


SUITE = {
    "name": "bench",
    "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "f0", "mostly": 0.99}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "f1", "min_value": -4, "max_value": 4, "mostly": 0.99}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "c0", "value_set": ["alpha", "beta", "gamma", "delta"]}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "c1", "regex": "^[a-z]+$"}},
        {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "f2", "min_value": -0.1, "max_value": 0.1}},
        {"type": "expect_column_min_to_be_between", "kwargs": {"column": "f3", "min_value": -10}},
        {"type": "expect_column_max_to_be_between", "kwargs": {"column": "f4", "max_value": 10}},
        {"type": "expect_column_value_lengths_to_be_between", "kwargs": {"column": "c1", "min_value": 3, "max_value": 6}},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
    ],
}


def timed(fn):
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def run_cairn(args):
    out = subprocess.run([CAIRN] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if out.returncode not in (0, 1):
        sys.exit(f"cairn {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out


def bench_validate(workdir, rows):
    data = os.path.join(workdir, f"validate_{rows}.parquet")
    suite_path = os.path.join(workdir, "suite.json")
    if not os.path.exists(data):
        make_table(rows, 1).to_parquet(data)
    with open(suite_path, "w") as f:
        json.dump(SUITE, f)
    pd.read_parquet(data)  # warm the page cache

    result_path = os.path.join(workdir, "cairn_validate.json")
    cairn_s, _ = timed(lambda: run_cairn(["validate", "--suite", suite_path, data, "--quiet", "--json", result_path]))
    ours = json.load(open(result_path))

    import great_expectations as gx

    def gx_run():
        df = pd.read_parquet(data)
        context = gx.get_context(mode="ephemeral")
        batch = (
            context.data_sources.add_pandas("p").add_dataframe_asset("a")
            .add_batch_definition_whole_dataframe("b").get_batch(batch_parameters={"dataframe": df})
        )
        suite = gx.ExpectationSuite(name="bench")
        for e in SUITE["expectations"]:
            suite.add_expectation(gx.expectations.registry.get_expectation_impl(e["type"])(**e["kwargs"]))
        suite = context.suites.add(suite)
        return batch.validate(suite, result_format="SUMMARY").to_json_dict()

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    gx_s, theirs = timed(gx_run)
    agree = [
        (r["expectation_config"]["type"], r["success"]) for r in theirs["results"]
    ]
    mine = {(r["expectation_config"]["type"], r["success"]) for r in ours["results"]}
    same = sorted(agree) == sorted(mine)
    print(f"(a) validate, {rows:,} rows x 10 columns, 10 expectations (Parquet)")
    print(f"    cairn validate       {cairn_s:8.2f} s")
    print(f"    Great Expectations   {gx_s:8.2f} s   (pandas read + validate)")
    print(f"    ratio                {gx_s / cairn_s:8.1f}x   same pass/fail per expectation: {same}")
    return cairn_s, gx_s


def bench_drift(workdir, rows):
    ref = os.path.join(workdir, f"drift_ref_{rows}.parquet")
    cur = os.path.join(workdir, f"drift_cur_{rows}.parquet")
    if not os.path.exists(ref):
        make_table(rows, 2, columns=21).to_parquet(ref)
        make_table(rows, 3, shift=0.05, columns=21).to_parquet(cur)
    pd.read_parquet(ref), pd.read_parquet(cur)
    out_path = os.path.join(workdir, "cairn_drift.json")
    cairn_s, _ = timed(lambda: run_cairn(["drift", "--reference", ref, "--current", cur, "-o", out_path, "--columns",
                                           ",".join(c for c in pd.read_parquet(ref, columns=None).columns if c != "id")]))
    ours = {c["column"]: c for c in json.load(open(out_path))["columns"]}

    from evidently import Report
    from evidently.presets import DataDriftPreset

    def evidently_run():
        r = pd.read_parquet(ref).drop(columns=["id"])
        c = pd.read_parquet(cur).drop(columns=["id"])
        result = Report([DataDriftPreset()]).run(current_data=c, reference_data=r)
        return json.loads(result.json())

    ev_s, theirs = timed(evidently_run)
    # Per-column methods and drift scores from Evidently's ValueDrift metrics.
    names = {"K-S p_value": "ks", "chi-square p_value": "chisquare", "Z-test p_value": "z",
             "Wasserstein distance (normed)": "wasserstein", "Jensen-Shannon distance": "jensenshannon",
             "PSI": "psi"}
    diffs, method_mismatches = [], []
    for m in theirs.get("metrics", []):
        cfg = m.get("config", {})
        col = cfg.get("column")
        if col in ours and isinstance(m.get("value"), (int, float)):
            diffs.append(abs(m["value"] - (ours[col]["score"] or 0.0)))
            if names.get(cfg.get("method")) != ours[col]["method"]:
                method_mismatches.append((col, cfg.get("method"), ours[col]["method"]))
    print(f"(b) drift, {rows:,} rows x 20 columns, reference and current (Parquet)")
    print(f"    cairn drift          {cairn_s:8.2f} s")
    print(f"    Evidently            {ev_s:8.2f} s   (pandas read + DataDriftPreset + JSON)")
    print(f"    ratio                {ev_s / cairn_s:8.1f}x   columns compared with Evidently: {len(diffs)},"
          f" largest score difference: {max(diffs) if diffs else float('nan'):.3g},"
          f" method mismatches: {method_mismatches or 'none'}")
    return cairn_s, ev_s


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--drift-rows", type=int, default=1_000_000)
    p.add_argument("--dir", default="/tmp/cairn-bench-quality")
    p.add_argument("--only", choices=["validate", "drift"])
    a = p.parse_args()
    if not os.path.exists(CAIRN):
        sys.exit("build first: cargo build --release")
    os.makedirs(a.dir, exist_ok=True)
    if a.only != "drift":
        bench_validate(a.dir, a.rows)
    if a.only != "validate":
        bench_drift(a.dir, a.drift_rows)


if __name__ == "__main__":
    main()
