"""The real MLflow client against a `cairn server` whose artifacts live in an S3-compatible bucket.

Run by crates/cairn/tests/s3_artifacts.rs (MLFLOW_TRACKING_URI is the server; CAIRN_BUCKET_URL
is its --artifacts-destination, s3://bucket/prefix; AWS_* reach the same bucket). The client
holds no bucket credentials of its own use: everything goes through the server's
`mlflow-artifacts:` proxy. Checks that:
- files logged (small, empty, nested, one larger than a multipart part) come back byte-identical
  through `download_artifacts`, and are listed with their sizes;
- the bytes really are objects in the bucket under the prefix (read with boto3);
- `mlflow.onnx.log_model` + registration works from the bucket, and the Open Inference Protocol
  answers with scikit-learn's predictions from the registered version.
Prints {"ok": true}.
"""

import filecmp
import json
import os
import tempfile
import urllib.request

import boto3
import mlflow
import mlflow.onnx
import numpy as np
from mlflow.tracking import MlflowClient
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from skl2onnx import to_onnx

URL = os.environ["MLFLOW_TRACKING_URI"].rstrip("/")
BUCKET_URL = os.environ["CAIRN_BUCKET_URL"]
bucket, _, prefix = BUCKET_URL[len("s3://"):].partition("/")
prefix = prefix.strip("/")
mlflow.set_tracking_uri(URL)
mlflow.set_experiment("s3-artifacts")
client = MlflowClient()
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])

work = tempfile.mkdtemp()
files = {
    "small.txt": b"hello from the bucket\n",
    "empty.bin": b"",
    "nested/deeper/values.csv": b"a,b\n1,2\n3,4\n",
    # Over one 8 MiB part, so the server uploads it in parts.
    "big/weights.bin": np.random.default_rng(7).integers(0, 256, 20 * 1024 * 1024 + 123, dtype=np.uint8).tobytes(),
}
src = os.path.join(work, "src")
for rel, data in files.items():
    path = os.path.join(src, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)

with mlflow.start_run() as run:
    mlflow.log_artifacts(src, artifact_path="bundle")
    mlflow.log_artifact(os.path.join(src, "small.txt"))
run_id = run.info.run_id
assert run.info.artifact_uri.startswith("mlflow-artifacts:"), run.info.artifact_uri

listed = {a.path: (a.is_dir, a.file_size) for a in client.list_artifacts(run_id, "bundle")}
assert listed == {
    "bundle/big": (True, None),
    "bundle/empty.bin": (False, 0),
    "bundle/nested": (True, None),
    "bundle/small.txt": (False, len(files["small.txt"])),
}, listed
big = client.list_artifacts(run_id, "bundle/big")
assert [(a.path, a.file_size) for a in big] == [("bundle/big/weights.bin", len(files["big/weights.bin"]))], big

back = os.path.join(work, "back")
os.makedirs(back)
got = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="bundle", dst_path=back)
for rel, data in files.items():
    with open(os.path.join(got, rel), "rb") as f:
        assert f.read() == data, f"{rel} differs after the round trip"
one = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="small.txt", dst_path=os.path.join(work, "one"))
assert filecmp.cmp(one, os.path.join(src, "small.txt"), shallow=False)

# The bytes are objects in the bucket, under the prefix, not in a folder on the server.
keys = {}
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
    for obj in page.get("Contents", []):
        keys[obj["Key"]] = obj["Size"]
run_keys = {k: v for k, v in keys.items() if f"/{run_id}/artifacts/" in k}
assert len(run_keys) == len(files) + 1, sorted(run_keys)
big_key = next(k for k in run_keys if k.endswith("bundle/big/weights.bin"))
assert run_keys[big_key] == len(files["big/weights.bin"])
assert s3.get_object(Bucket=bucket, Key=big_key)["Body"].read() == files["big/weights.bin"]

# A model logged into the bucket, registered, and served from it.
X, y = make_classification(n_samples=400, n_features=8, n_informative=5, random_state=11)
X = X.astype(np.float32)
est = LogisticRegression(max_iter=1000).fit(X[:300], y[:300])
with mlflow.start_run():
    info = mlflow.onnx.log_model(to_onnx(est, X[:1]), name="model", registered_model_name="s3-served")
version = client.get_model_version("s3-served", "1")
assert version.status == "READY", version
rows = X[300:]
request = urllib.request.Request(
    URL + "/v2/models/s3-served/versions/1/infer",
    data=json.dumps({"inputs": [{"name": "X", "datatype": "FP32", "shape": list(rows.shape), "data": rows.ravel().tolist()}]}).encode(),
    headers={"Content-Type": "application/json"},
)
with urllib.request.urlopen(request) as r:
    answer = json.loads(r.read())
outputs = {o["name"]: o for o in answer["outputs"]}
assert (np.array(outputs["output_label"]["data"]) == est.predict(rows)).all(), "labels differ"
proba = np.array(outputs["output_probability"]["data"]).reshape(outputs["output_probability"]["shape"])
assert np.allclose(proba, est.predict_proba(rows), atol=1e-5), "probabilities differ"

# The logged model's files come back through the client too, byte-identical to the bucket's.
model_dir = mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri, dst_path=os.path.join(work, "model"))
onnx_file = os.path.join(model_dir, "model.onnx")
with open(onnx_file, "rb") as f:
    served_bytes = f.read()
onnx_keys = [
    o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
    for o in page.get("Contents", []) if o["Key"].endswith("/model.onnx")
]
assert len(onnx_keys) == 1, onnx_keys
onnx_key = onnx_keys[0]
assert s3.get_object(Bucket=bucket, Key=onnx_key)["Body"].read() == served_bytes

print(json.dumps({"ok": True, "objects": len(run_keys), "big_bytes": len(files["big/weights.bin"])}))
