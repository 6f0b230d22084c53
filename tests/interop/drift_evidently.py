"""Evidently's own drift verdicts, for Cairn's drift tests.

Usage: drift_evidently.py CASES.json
CASES.json: [{"reference": CSV, "current": CSV, "method": name or null,
              "threshold": number or null, "drift_share": number or null}]
Runs Evidently's DataDriftPreset on each pair (both files read with pandas) and prints, per
case, {"columns": {column: {"method", "threshold", "score"}}, "drifted_count", "share"}.
Needs evidently and pandas<3 (tests/interop/requirements-evidently.txt).
"""
import json
import sys

import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset

# Evidently's stattest display names -> the names Cairn (and Evidently's `method=`) use.
NAMES = {
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
    "PSI": "psi",
}


def main():
    cases = json.load(open(sys.argv[1]))
    out = []
    for case in cases:
        ref = pd.read_csv(case["reference"])
        cur = pd.read_csv(case["current"])
        options = {}
        if case.get("method"):
            options["method"] = case["method"]
        if case.get("threshold") is not None:
            options["threshold"] = case["threshold"]
        if case.get("drift_share") is not None:
            options["drift_share"] = case["drift_share"]
        result = json.loads(Report([DataDriftPreset(**options)]).run(current_data=cur, reference_data=ref).json())
        columns, count, share = {}, None, None
        for m in result["metrics"]:
            cfg = m.get("config", {})
            if cfg.get("type", "").endswith("DriftedColumnsCount"):
                count, share = m["value"]["count"], m["value"]["share"]
            elif cfg.get("type", "").endswith("ValueDrift"):
                columns[cfg["column"]] = {
                    "method": NAMES.get(cfg["method"], cfg["method"]),
                    "threshold": cfg.get("threshold"),
                    "score": m["value"],
                }
        out.append({"columns": columns, "drifted_count": count, "share": share})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
