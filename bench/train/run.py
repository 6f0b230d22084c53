#!/usr/bin/env python3
"""bench/train: Cairn's boosted trees against scikit-learn's HistGradientBoostingClassifier and
LightGBM on the same rows, in one run: fit time, predict time and test metric.

    python3 bench/train/run.py [--rows 1000000] [--features 30]

Datasets: a generated binary table (sklearn's make_classification, --rows x --features, the
last 20% of rows for test), the quickstart's real set (red wine quality, 1599 x 11, six grades,
from `cairn-bench wine-csv`), and two real tables that scikit-learn ships (breast cancer,
569 x 30; handwritten digits, 1797 x 64, 10 classes), each split 80/20 after a seeded shuffle.

All three fit 100 trees of at most 31 leaves, at least 20 rows a leaf, learning rate 0.1, 255
bins, no early stopping, on the machine's cores (LightGBM and scikit-learn use every core by
default; Cairn uses rayon's pool). Times are wall-clock seconds of fit and predict only; loading
the file is reported apart for Cairn (the peers get numpy arrays).

Needs: a release build of cairn-bench (built here unless --cairn-bench is given),
tests/interop/requirements.txt, and `pip install lightgbm==4.7.0`.
"""
import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer, load_digits, make_classification
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
parser = argparse.ArgumentParser()
parser.add_argument("--rows", type=int, default=1_000_000)
parser.add_argument("--features", type=int, default=30)
parser.add_argument("--cairn-bench", help="a built cairn-bench binary")
args = parser.parse_args()

import lightgbm  # noqa: E402  (after argparse so --help works without it)

if args.cairn_bench:
    bench = os.path.abspath(args.cairn_bench)
else:
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "cairn-bench"], cwd=ROOT, check=True)
    bench = os.path.join(ROOT, "target", "release", "cairn-bench")


def datasets():
    X, y = make_classification(n_samples=args.rows, n_features=args.features, n_informative=args.features // 2,
                               n_redundant=args.features // 5, flip_y=0.05, random_state=0)
    yield f"generated {args.rows:,} x {args.features}", X, y
    rng = np.random.default_rng(0)
    # The quickstart's real set, the rows cairn quickstart trains on.
    wine = pd.read_csv(io.StringIO(subprocess.run([bench, "wine-csv"], capture_output=True, text=True,
                                                  check=True).stdout))
    order = rng.permutation(len(wine))
    yield ("wine quality 1599 x 11 (the quickstart's)", wine.drop(columns=["quality"]).values[order],
           wine["quality"].values[order])
    for name, loader in (("breast cancer 569 x 30", load_breast_cancer), ("digits 1797 x 64", load_digits)):
        d = loader()
        order = rng.permutation(len(d.target))
        yield name, d.data[order], d.target[order]


def scores(y_true, proba, classes):
    """Metrics of class probabilities (columns in the order of `classes`, all training classes:
    the test rows may lack a rare one)."""
    if len(classes) == 2:
        auc = roc_auc_score(y_true, proba[:, 1])
    else:
        # One-vs-rest, averaged over the classes the test rows hold (multi_class="ovr").
        auc = np.mean([roc_auc_score(y_true == c, proba[:, i]) for i, c in enumerate(classes)
                       if (y_true == c).any()])
    return {"test_accuracy": accuracy_score(y_true, classes[proba.argmax(axis=1)]), "test_roc_auc": auc,
            "test_log_loss": log_loss(y_true, proba, labels=classes)}


results = []
tmp = tempfile.mkdtemp()
for name, X, y in datasets():
    n_train = int(len(y) * 0.8)
    X = X.astype(np.float32)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    frame["y"] = y
    path = os.path.join(tmp, "table.parquet")
    frame.to_parquet(path, index=False)
    out = subprocess.run([bench, "train", "--data", path, "--target", "y", "--train-rows", str(n_train)],
                         capture_output=True, text=True, check=True)
    cairn = json.loads(out.stdout.strip().splitlines()[-1])
    row = {"dataset": name, "cairn": cairn}
    Xtr, ytr, Xte, yte = X[:n_train], y[:n_train], X[n_train:], y[n_train:]
    peers = {
        "sklearn": HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, max_leaf_nodes=31,
                                                  min_samples_leaf=20, max_bins=255, early_stopping=False,
                                                  random_state=0),
        "lightgbm": lightgbm.LGBMClassifier(n_estimators=100, learning_rate=0.1, num_leaves=31, min_child_samples=20,
                                            max_bin=255, reg_lambda=0.0, subsample=1.0, colsample_bytree=1.0,
                                            verbose=-1, random_state=0),
    }
    for peer, model in peers.items():
        started = time.perf_counter()
        model.fit(Xtr, ytr)
        fit_s = time.perf_counter() - started
        started = time.perf_counter()
        proba = model.predict_proba(Xte)
        predict_s = time.perf_counter() - started
        row[peer] = {"fit_s": fit_s, "predict_s": predict_s, **scores(yte, proba, model.classes_)}
    results.append(row)
    best_loss = min(row[k]["test_log_loss"] for k in ("sklearn", "lightgbm"))
    best_acc = max(row[k]["test_accuracy"] for k in ("sklearn", "lightgbm"))
    print(f"{name}:")
    for k in ("cairn", "sklearn", "lightgbm"):
        r = row[k]
        print(f"  {k:9} fit {r['fit_s']:8.3f} s  predict {r['predict_s']:7.3f} s  accuracy {r['test_accuracy']:.4f}"
              f"  AUC {r['test_roc_auc']:.4f}  log loss {r['test_log_loss']:.4f}"
              + (f"  (load {r['load_s']:.2f} s)" if k == "cairn" else ""))
    print(f"  fit time vs LightGBM: {cairn['fit_s'] / row['lightgbm']['fit_s']:.2f}x;"
          f" accuracy vs the best peer: {100 * (cairn['test_accuracy'] - best_acc) / best_acc:+.2f}%;"
          f" log loss vs the best peer: {100 * (cairn['test_log_loss'] - best_loss) / best_loss:+.2f}%")
print(json.dumps(results))
