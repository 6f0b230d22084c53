"""The real MLflow client against two `cairn server` replicas on one PostgreSQL and one bucket.

Run by crates/cairn/tests/replicas.rs with URL_A and URL_B (MLFLOW_TRACKING_URI is URL_A).
Drives them alternately: an experiment created on A is read on B; one run gets metrics and
params through both and B reads them all back; models logged and registered through A are
served by B; an alias moved on A switches B's answers at its next request. Prints
{"ok": true, "model": ..., "rows": [...]} with the rows and scikit-learn's labels the Rust side
uses for the monitoring part.
"""

import json
import os
import urllib.request

import mlflow
import mlflow.onnx
import numpy as np
from mlflow.tracking import MlflowClient
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from skl2onnx import to_onnx

A = os.environ["URL_A"].rstrip("/")
B = os.environ["URL_B"].rstrip("/")
on_a, on_b = MlflowClient(tracking_uri=A), MlflowClient(tracking_uri=B)

# Create on A, read on B.
experiment_id = on_a.create_experiment("replicas")
assert on_b.get_experiment_by_name("replicas").experiment_id == experiment_id

# One run, written through both replicas.
run = on_a.create_run(experiment_id)
run_id = run.info.run_id
for step in range(20):
    (on_a if step % 2 == 0 else on_b).log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
on_b.log_param(run_id, "written_on", "b")
on_a.log_param(run_id, "also_on", "a")
on_b.set_terminated(run_id)
history = on_b.get_metric_history(run_id, "loss")
assert sorted(m.step for m in history) == list(range(20)), history
seen = on_a.get_run(run_id)
assert seen.data.params == {"written_on": "b", "also_on": "a"}, seen.data.params
assert seen.info.status == "FINISHED"

# Two versions registered through A (their artifacts in the bucket), served by B.
X, y = make_classification(n_samples=400, n_features=4, n_informative=3, n_redundant=0, random_state=5)
X = X.astype(np.float32)
first = LogisticRegression(max_iter=1000).fit(X, y)
second = LogisticRegression(max_iter=1000).fit(X, 1 - y)  # answers the opposite class
mlflow.set_tracking_uri(A)
mlflow.set_experiment("replicas")
for model in (first, second):
    with mlflow.start_run():
        mlflow.onnx.log_model(to_onnx(model, X[:1]), name="model", registered_model_name="shared")


def infer(base, version, rows, request_id):
    body = {"id": request_id, "inputs": [{"name": "X", "datatype": "FP32", "shape": list(rows.shape), "data": rows.ravel().tolist()}]}
    req = urllib.request.Request(
        f"{base}/v2/models/shared/versions/{version}/infer", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req) as r:
        answer = json.loads(r.read())
    labels = {o["name"]: o for o in answer["outputs"]}["output_label"]["data"]
    return answer["model_version"], labels


rows = X[:8]
version, labels = infer(B, "1", rows, "probe-1")
assert version == "1" and labels == first.predict(rows).tolist(), (version, labels)

# An alias moved on A: B's next request answers from the version it names now.
on_a.set_registered_model_alias("shared", "champion", "1")
assert infer(B, "champion", rows, "probe-2") == ("1", first.predict(rows).tolist())
on_a.set_registered_model_alias("shared", "champion", "2")
assert infer(B, "champion", rows, "probe-3") == ("2", second.predict(rows).tolist())
on_b.set_registered_model_alias("shared", "champion", "1")
assert infer(A, "champion", rows, "probe-4")[0] == "1"

# Traffic for the monitoring part: far from the training data in every feature.
shifted = (X[:60] + 4.0).astype(np.float32)
print(json.dumps({
    "ok": True,
    "run_id": run_id,
    "shifted": shifted.tolist(),
    "predicted": first.predict(shifted).tolist(),
    "train": np.column_stack([X, y]).tolist(),
}))
