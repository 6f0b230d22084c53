"""scikit-learn -> skl2onnx -> mlflow.onnx.log_model -> Cairn's registry -> Cairn serving.

Run by crates/cairn/tests/serving_interop.rs against a live `cairn server` (MLFLOW_TRACKING_URI).
Checks that Cairn's predictions equal scikit-learn's on held-out rows (labels exactly,
probabilities and regression values within 1e-5), over Cairn's Open Inference Protocol JSON
endpoint and through the real tritonclient[http] (binary tensors by default and
binary_data=False; health, metadata, several inputs, selected outputs). Prints {"ok": true}.
"""

import json
import os
import urllib.request

import mlflow
import mlflow.onnx
import numpy as np
import onnx
import tritonclient.http as triton
from onnx import TensorProto, helper
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skl2onnx import to_onnx

URL = os.environ["MLFLOW_TRACKING_URI"].rstrip("/")
HOSTPORT = URL.split("://", 1)[1]
mlflow.set_tracking_uri(URL)
mlflow.set_experiment("serving-interop")


def post(path, body):
    req = urllib.request.Request(URL + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return r.status, dict(r.headers), json.loads(r.read())


def register(name, onnx_model):
    with mlflow.start_run():
        info = mlflow.onnx.log_model(onnx_model, name="model", registered_model_name=name)
    return info


def close(got, want, what):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} vs {want.shape}"
    tol = 1e-5 * np.maximum(1.0, np.abs(want))
    worst = np.max(np.abs(got - want) - tol)
    assert worst <= 0, f"{what}: off by {np.max(np.abs(got - want))}"


X, y = make_classification(n_samples=800, n_features=20, n_informative=10, n_classes=3, random_state=3)
X = X.astype(np.float32)
Xb, yb = make_classification(n_samples=800, n_features=20, n_informative=8, random_state=4)
Xb = Xb.astype(np.float32)
Xr, yr = make_regression(n_samples=800, n_features=20, noise=3.0, random_state=5)
Xr = Xr.astype(np.float32)
train, test = slice(0, 600), slice(600, 800)

classifiers = {
    "logreg": (LogisticRegression(max_iter=2000), X, y),
    "forest": (RandomForestClassifier(n_estimators=50, random_state=0), X, y),
    "gbdt": (GradientBoostingClassifier(n_estimators=50, random_state=0), X, y),
    "gbdt_binary": (GradientBoostingClassifier(n_estimators=50, random_state=0), Xb, yb),
    "scaler_logreg": (make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)), X, y),
}
checked = []
for name, (est, data, target) in classifiers.items():
    est.fit(data[train], target[train])
    register(name, to_onnx(est, data[:1]))
    rows = data[test]
    status, headers, answer = post(f"/v2/models/{name}/versions/1/infer", {
        "id": f"req-{name}",
        "inputs": [{"name": "X", "datatype": "FP32", "shape": list(rows.shape), "data": rows.ravel().tolist()}],
    })
    assert status == 200 and answer["id"] == f"req-{name}", answer
    assert answer["model_name"] == name and answer["model_version"] == "1", answer
    assert headers.get("x-model-version") == "1", headers
    outputs = {o["name"]: o for o in answer["outputs"]}
    labels = np.array(outputs["output_label"]["data"])
    proba = np.array(outputs["output_probability"]["data"]).reshape(outputs["output_probability"]["shape"])
    assert (labels == est.predict(rows)).all(), f"{name}: labels differ from scikit-learn"
    close(proba, est.predict_proba(rows), f"{name} probabilities")
    checked.append(name)

reg = GradientBoostingRegressor(n_estimators=100, random_state=0).fit(Xr[train], yr[train])
register("gbdt_regressor", to_onnx(reg, Xr[:1]))
rows = Xr[test]
_, _, answer = post("/v2/models/gbdt_regressor/infer", {
    "inputs": [{"name": "X", "datatype": "FP32", "shape": list(rows.shape), "data": rows.tolist()}],
})
close(np.array(answer["outputs"][0]["data"]), reg.predict(rows), "regressor values")
checked.append("gbdt_regressor")

# A graph with two inputs and two outputs, for tritonclient.
a = helper.make_tensor_value_info("A", TensorProto.FLOAT, [None, 3])
b = helper.make_tensor_value_info("B", TensorProto.FLOAT, [None, 3])
graph = helper.make_graph(
    [helper.make_node("Add", ["A", "B"], ["SUM"]), helper.make_node("Mul", ["A", "B"], ["PRODUCT"])],
    "two_inputs", [a, b],
    [helper.make_tensor_value_info("SUM", TensorProto.FLOAT, [None, 3]), helper.make_tensor_value_info("PRODUCT", TensorProto.FLOAT, [None, 3])],
)
register("two_inputs", helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8))

client = triton.InferenceServerClient(url=HOSTPORT)
assert client.is_server_live() and client.is_server_ready()
assert client.is_model_ready("two_inputs") and client.is_model_ready("gbdt", "1")
assert client.get_server_metadata()["name"] == "cairn"
meta = client.get_model_metadata("two_inputs")
assert [i["name"] for i in meta["inputs"]] == ["A", "B"], meta
assert [o["name"] for o in meta["outputs"]] == ["SUM", "PRODUCT"], meta
av = np.arange(6, dtype=np.float32).reshape(2, 3)
bv = np.full((2, 3), 2.5, dtype=np.float32)
for binary in (True, False):
    inputs = [triton.InferInput("A", [2, 3], "FP32"), triton.InferInput("B", [2, 3], "FP32")]
    inputs[0].set_data_from_numpy(av, binary_data=binary)
    inputs[1].set_data_from_numpy(bv, binary_data=binary)
    # Every output (the client's default request) ...
    result = client.infer("two_inputs", inputs)
    np.testing.assert_array_equal(result.as_numpy("SUM"), av + bv)
    np.testing.assert_array_equal(result.as_numpy("PRODUCT"), av * bv)
    # ... and one selected output, binary or JSON.
    wanted = [triton.InferRequestedOutput("PRODUCT", binary_data=binary)]
    result = client.infer("two_inputs", inputs, outputs=wanted, model_version="1", request_id="r1")
    np.testing.assert_array_equal(result.as_numpy("PRODUCT"), av * bv)
    assert result.as_numpy("SUM") is None
    assert result.get_response()["id"] == "r1"
    # A scikit-learn model through the same client.
    rows = X[test][:16]
    gb_in = triton.InferInput("X", list(rows.shape), "FP32")
    gb_in.set_data_from_numpy(rows, binary_data=binary)
    result = client.infer("gbdt", [gb_in], outputs=[triton.InferRequestedOutput("output_label", binary_data=binary)])
    assert (result.as_numpy("output_label") == classifiers["gbdt"][0].predict(rows)).all()

# Bad input answers 400 through the client, naming the input; the server keeps serving.
bad = triton.InferInput("A", [2, 2], "FP32")
bad.set_data_from_numpy(np.zeros((2, 2), dtype=np.float32))
ok_b = triton.InferInput("B", [2, 3], "FP32")
ok_b.set_data_from_numpy(bv)
try:
    client.infer("two_inputs", [bad, ok_b])
    raise AssertionError("a wrongly shaped input was accepted")
except triton.InferenceServerException as e:
    assert "A" in str(e) and "shape" in str(e), str(e)
assert client.is_server_live()

with urllib.request.urlopen(URL + "/metrics") as r:
    metrics = r.read().decode()
assert 'cairn_inference_requests_total{model="two_inputs",version="1"}' in metrics, metrics
assert 'cairn_inference_errors_total{model="two_inputs",version="1",code="400"} 1' in metrics, metrics

print(json.dumps({"ok": True, "models": checked}))
