"""Writes ONNX-ML models, random inputs and onnxruntime's outputs for crates/cairn-serving/tests/onnx_ml.rs.

Usage: python onnx_ml_fixtures.py OUT_DIR

OUT_DIR/manifest.json lists every case: the model file, the input (raw little-endian f32 in
a .bin file, NaNs included) and onnxruntime's outputs (labels as JSON, scores as raw f32).
Models come from skl2onnx (the shapes users meet) and from hand-built ensembles that reach
every branch mode, aggregate function, post-transform and base-value layout.
"""

import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(7)
cases = []


def run_ort(model_bytes, x):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return names, sess.run(None, {sess.get_inputs()[0].name: x})


def add_case(name, model, x, compare_columns=None):
    model_bytes = model.SerializeToString()
    names, outs = run_ort(model_bytes, x)
    with open(os.path.join(OUT, f"{name}.onnx"), "wb") as f:
        f.write(model_bytes)
    x.astype("<f4").tofile(os.path.join(OUT, f"{name}.input.bin"))
    expected = []
    for out_name, value in zip(names, outs):
        if isinstance(value, list):  # ZipMap: a list of {label: probability}
            keys = list(value[0].keys())
            value = np.array([[row[k] for k in keys] for row in value], dtype=np.float32)
        value = np.asarray(value)
        entry = {"name": out_name, "shape": list(value.shape)}
        if value.dtype.kind in "iu":
            entry["ints"] = value.astype(np.int64).ravel().tolist()
        elif value.dtype.kind in "OUS":
            entry["strings"] = [str(v) for v in value.ravel()]
        else:
            path = f"{name}.{out_name}.bin"
            value.astype("<f4").tofile(os.path.join(OUT, path))
            entry["floats_file"] = path
        expected.append(entry)
    cases.append({
        "name": name,
        "model": f"{name}.onnx",
        "input_shape": list(x.shape),
        "input_file": f"{name}.input.bin",
        "outputs": expected,
        "compare_columns": compare_columns,
    })


# --- scikit-learn models through skl2onnx --------------------------------------------------
from sklearn.datasets import make_classification, make_regression  # noqa: E402
from sklearn.ensemble import (  # noqa: E402
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402
from sklearn.svm import LinearSVC  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from skl2onnx import to_onnx  # noqa: E402

Xc, yc = make_classification(n_samples=600, n_features=20, n_informative=10, n_classes=3, random_state=1)
Xc = Xc.astype(np.float32)
Xr, yr = make_regression(n_samples=600, n_features=20, noise=5.0, random_state=1)
Xr = Xr.astype(np.float32)
train, test = slice(0, 500), slice(500, 600)
sk = {
    "sk_logreg_multiclass": LogisticRegression(max_iter=1000).fit(Xc[train], yc[train]),
    "sk_logreg_binary": LogisticRegression(max_iter=1000).fit(Xc[train], yc[train] == 1),
    "sk_pipeline_scaler_logreg": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(Xc[train], yc[train]),
    "sk_linear_regression": LinearRegression().fit(Xr[train], yr[train]),
    "sk_linear_svc_multiclass": LinearSVC().fit(Xc[train], yc[train]),
    # A binary LinearSVC is left out: its ArrayFeatureExtractor (tract's) answers [N] where
    # onnxruntime answers [N, 1].
}
for depth in (2, 6, None):
    sk[f"sk_forest_depth{depth}"] = RandomForestClassifier(n_estimators=30, max_depth=depth, random_state=0).fit(Xc[train], yc[train])
    sk[f"sk_forest_binary_depth{depth}"] = RandomForestClassifier(n_estimators=30, max_depth=depth, random_state=0).fit(Xc[train], yc[train] == 1)
    sk[f"sk_forest_regressor_depth{depth}"] = RandomForestRegressor(n_estimators=30, max_depth=depth, random_state=0).fit(Xr[train], yr[train])
for depth in (1, 3, 5):
    sk[f"sk_gbdt_depth{depth}"] = GradientBoostingClassifier(n_estimators=40, max_depth=depth, random_state=0).fit(Xc[train], yc[train])
    sk[f"sk_gbdt_binary_depth{depth}"] = GradientBoostingClassifier(n_estimators=40, max_depth=depth, random_state=0).fit(Xc[train], yc[train] == 1)
    sk[f"sk_gbdt_regressor_depth{depth}"] = GradientBoostingRegressor(n_estimators=40, max_depth=depth, random_state=0).fit(Xr[train], yr[train])
for name, est in sk.items():
    data = Xr if "regress" in name else Xc
    add_case(name, to_onnx(est, data[:1]), data[test])


# --- hand-built ensembles --------------------------------------------------------------------
N_FEATURES = 6


def random_trees(n_trees, depth, n_targets, mode, class_ids=None, positive=False, missing=False):
    """Complete trees of the given depth; thresholds near the data so both branches are taken."""
    attrs = {k: [] for k in ("nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values",
                             "nodes_modes", "nodes_truenodeids", "nodes_falsenodeids",
                             "nodes_missing_value_tracks_true")}
    leaves = {k: [] for k in ("treeids", "nodeids", "ids", "weights")}
    for t in range(n_trees):
        n_internal = 2 ** depth - 1
        for i in range(2 ** (depth + 1) - 1):
            attrs["nodes_treeids"].append(t)
            attrs["nodes_nodeids"].append(i)
            if i < n_internal:
                attrs["nodes_featureids"].append(int(rng.integers(0, N_FEATURES)))
                # EQ/NEQ need thresholds the integer-valued features can hit.
                value = float(rng.integers(-2, 3)) if mode in ("BRANCH_EQ", "BRANCH_NEQ") else float(rng.normal())
                attrs["nodes_values"].append(value)
                attrs["nodes_modes"].append(mode)
                attrs["nodes_truenodeids"].append(2 * i + 1)
                attrs["nodes_falsenodeids"].append(2 * i + 2)
                attrs["nodes_missing_value_tracks_true"].append(int(missing and rng.random() < 0.5))
            else:
                attrs["nodes_featureids"].append(0)
                attrs["nodes_values"].append(0.0)
                attrs["nodes_modes"].append("LEAF")
                attrs["nodes_truenodeids"].append(0)
                attrs["nodes_falsenodeids"].append(0)
                attrs["nodes_missing_value_tracks_true"].append(0)
                targets = class_ids if class_ids is not None else range(n_targets)
                for target in targets:
                    if class_ids is None and n_targets > 1 and rng.random() < 0.3:
                        continue  # some leaves do not vote for every target (onnxruntime reads one weight per leaf for a single target)
                    w = float(rng.random()) if positive else float(rng.normal())
                    leaves["treeids"].append(t)
                    leaves["nodeids"].append(i)
                    leaves["ids"].append(int(target))
                    leaves["weights"].append(w)
    return attrs, leaves


def ensemble_model(op, attrs, leaves, extra, outputs):
    prefix = "class" if op == "TreeEnsembleClassifier" else "target"
    kwargs = dict(attrs)
    for k, v in leaves.items():
        kwargs[f"{prefix}_{k}"] = v
    kwargs.update(extra)
    node = helper.make_node(op, ["X"], [o.name for o in outputs], domain="ai.onnx.ml", **kwargs)
    graph = helper.make_graph([node], op, [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, N_FEATURES])], outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)], ir_version=8)


def inputs(rows, mode, nan=False):
    if mode in ("BRANCH_EQ", "BRANCH_NEQ"):
        x = rng.integers(-2, 3, size=(rows, N_FEATURES)).astype(np.float32)
    else:
        x = rng.normal(size=(rows, N_FEATURES)).astype(np.float32)
    if nan:
        x[rng.random(size=x.shape) < 0.2] = np.nan
    return x


scores_out = lambda n: helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, n])  # noqa: E731
MODES = ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"]
TRANSFORMS = ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT"]

# Regressors: every branch mode and aggregate function, one and three targets.
for mode in MODES:
    for agg in ("SUM", "AVERAGE", "MIN", "MAX"):
        for n_targets in (1, 3):
            attrs, leaves = random_trees(8, 3, n_targets, mode)
            base = {"base_values": [float(v) for v in rng.normal(size=n_targets)]} if agg == "SUM" else {}
            model = ensemble_model("TreeEnsembleRegressor", attrs, leaves,
                                   {"n_targets": n_targets, "aggregate_function": agg, **base},
                                   [scores_out(n_targets)])
            add_case(f"hand_regressor_{mode}_{agg}_{n_targets}t", model, inputs(64, mode))
# Regressors: every post-transform (single-target PROBIT included), missing values.
for transform in TRANSFORMS:
    for n_targets in (1, 4):
        attrs, leaves = random_trees(10, 4, n_targets, "BRANCH_LEQ", missing=True)
        if transform == "PROBIT":  # probit takes a probability
            leaves["weights"] = [abs(w) / 40 for w in leaves["weights"]]
        model = ensemble_model("TreeEnsembleRegressor", attrs, leaves,
                               {"n_targets": n_targets, "post_transform": transform},
                               [scores_out(n_targets)])
        add_case(f"hand_regressor_{transform}_{n_targets}t_nan", model, inputs(64, "BRANCH_LEQ", nan=True))

# Classifiers: three classes, every post-transform and branch mode, int and string labels.
for transform in TRANSFORMS:
    for mode in ("BRANCH_LEQ", "BRANCH_GTE", "BRANCH_NEQ"):
        attrs, leaves = random_trees(12, 4, 3, mode, missing=True)
        if transform == "PROBIT":
            leaves["weights"] = [abs(w) / 40 for w in leaves["weights"]]
        for labels in ("ints", "strings"):
            label_attr = {"classlabels_int64s": [3, 5, 9]} if labels == "ints" else {"classlabels_strings": ["a", "b", "c"]}
            label_type = TensorProto.INT64 if labels == "ints" else TensorProto.STRING
            model = ensemble_model("TreeEnsembleClassifier", attrs, leaves,
                                   {"post_transform": transform, "base_values": [0.1, -0.2, 0.05], **label_attr},
                                   [helper.make_tensor_value_info("label", label_type, [None]), scores_out(3)])
            add_case(f"hand_classifier3_{transform}_{mode}_{labels}", model, inputs(64, mode, nan=True))

# Classifiers: two classes in each layout onnxruntime distinguishes (one voted class with
# positive or mixed weights, both classes voted) and each base-value count.
for transform in TRANSFORMS:
    for layout in ("one_class_positive", "one_class_mixed", "class1_only", "both_classes"):
        for n_base in (0, 1, 2):
            class_ids = {"one_class_positive": [0], "one_class_mixed": [0], "class1_only": [1], "both_classes": None}[layout]
            attrs, leaves = random_trees(9, 3, 2, "BRANCH_LEQ", class_ids=class_ids, positive=(layout == "one_class_positive"))
            if layout == "one_class_positive":
                leaves["weights"] = [w / 9 for w in leaves["weights"]]
            if transform == "PROBIT":
                leaves["weights"] = [abs(w) / 20 for w in leaves["weights"]]
            base = {"base_values": [float(v) for v in rng.normal(scale=0.3, size=n_base)]} if n_base else {}
            model = ensemble_model("TreeEnsembleClassifier", attrs, leaves,
                                   {"post_transform": transform, "classlabels_int64s": [0, 1], **base},
                                   [helper.make_tensor_value_info("label", TensorProto.INT64, [None]), scores_out(2)])
            # onnxruntime writes only the first column when PROBIT meets a single score.
            single_score = transform == "PROBIT" and layout != "both_classes"
            add_case(f"hand_classifier2_{transform}_{layout}_{n_base}base", model, inputs(64, "BRANCH_LEQ"),
                     compare_columns=1 if single_score else None)

# Scaler on its own, one offset and per-feature offsets.
for per_feature in (False, True):
    n = N_FEATURES if per_feature else 1
    node = helper.make_node("Scaler", ["X"], ["Y"], domain="ai.onnx.ml",
                            offset=[float(v) for v in rng.normal(size=n)], scale=[float(v) for v in rng.random(size=n) + 0.5])
    graph = helper.make_graph([node], "scaler", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, N_FEATURES])],
                              [scores_out(N_FEATURES)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 1)], ir_version=8)
    add_case(f"hand_scaler_{'per_feature' if per_feature else 'scalar'}", model, inputs(16, "BRANCH_LEQ"))

# LinearClassifier: three classes with every post-transform, one scored class with two labels
# (onnxruntime then writes the raw score and its complement) and without labels (labels 1 and
# 0, one score column), int and string labels, missing values.
def linear_classifier(n_classes, transform, labels, probit_range=False):
    scale, center = (0.02, 0.5) if probit_range else (1.0, 0.0)
    attrs = {"coefficients": [float(v) for v in rng.normal(scale=scale, size=n_classes * N_FEATURES)],
             "intercepts": [center + float(v) for v in rng.normal(scale=scale / 2, size=n_classes)],
             "post_transform": transform}
    label_type = TensorProto.STRING if labels == "strings" else TensorProto.INT64
    if labels == "ints":
        attrs["classlabels_ints"] = [3, 5, 9][:max(n_classes, 2)]
    elif labels == "strings":
        attrs["classlabels_strings"] = ["a", "b", "c"][:max(n_classes, 2)]
    columns = 2 if n_classes == 1 and labels != "none" else n_classes
    node = helper.make_node("LinearClassifier", ["X"], ["label", "Y"], domain="ai.onnx.ml", **attrs)
    graph = helper.make_graph([node], "linear", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, N_FEATURES])],
                              [helper.make_tensor_value_info("label", label_type, [None]), scores_out(columns)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 1)], ir_version=8)


for transform in TRANSFORMS:
    probit = transform == "PROBIT"
    for labels in ("ints", "strings"):
        add_case(f"hand_linear3_{transform}_{labels}", linear_classifier(3, transform, labels, probit),
                 inputs(64, "BRANCH_LEQ", nan=True))
        # PROBIT on a single score: onnxruntime transforms the packed scores in place and
        # leaves the rest of its output unset, so one row and its first column are compared.
        add_case(f"hand_linear1_{transform}_{labels}", linear_classifier(1, transform, labels, probit),
                 inputs(1 if probit else 64, "BRANCH_LEQ"), compare_columns=1 if probit else None)
    add_case(f"hand_linear1_{transform}_no_labels", linear_classifier(1, transform, "none", probit),
             inputs(64, "BRANCH_LEQ", nan=True))

with open(os.path.join(OUT, "manifest.json"), "w") as f:
    json.dump(cases, f, indent=1)
print(f"{len(cases)} cases written to {OUT}")
