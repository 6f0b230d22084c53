"""MLflow's verdict on metric thresholds (crates/cairn-train/tests/mlflow_thresholds.rs).

Usage: mlflow_thresholds.py CASES.json

Each case: {"threshold": {...MetricThreshold arguments...}, "candidate": x or null, "baseline":
x or null}. Runs MLflow's own validation (the function behind `mlflow.validate_evaluation_results`)
on each and prints the list of verdicts (true = passed) as JSON.
"""
import json
import sys

from mlflow.models.evaluation.validation import MetricThreshold, _validate

cases = json.load(open(sys.argv[1]))
verdicts = []
for case in cases:
    threshold = MetricThreshold(**case["threshold"])
    candidate = {} if case["candidate"] is None else {"m": case["candidate"]}
    baseline = {} if case["baseline"] is None else {"m": case["baseline"]}
    try:
        _validate({"m": threshold}, candidate, baseline)
        verdicts.append(True)
    except Exception as e:  # ModelValidationFailedException
        if type(e).__name__ != "ModelValidationFailedException":
            raise
        verdicts.append(False)
print(json.dumps(verdicts))
