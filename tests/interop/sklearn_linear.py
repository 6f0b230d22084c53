"""scikit-learn's answer for the linear models Cairn's trainer fits (crates/cairn-train/tests/sklearn.rs).

Usage: sklearn_linear.py TABLE.csv TARGET classification|regression
Fits the pipeline a scikit-learn user writes before a linear model (mean imputation and
standardisation of numbers, one-hot categories ignoring unknown ones) with LogisticRegression(C=1)
or Ridge(alpha=1) on every row, and prints the predicted probabilities or values as JSON.
"""
import json
import sys

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

path, target, task = sys.argv[1:4]
frame = pd.read_csv(path)
y = frame.pop(target)
numeric = [c for c in frame.columns if frame[c].dtype.kind in "if"]
categorical = [c for c in frame.columns if c not in numeric]
encode = ColumnTransformer(
    [
        ("num", Pipeline([("impute", SimpleImputer(strategy="mean")), ("scale", StandardScaler())]), numeric),
        ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
    ]
)
if task == "classification":
    model = Pipeline([("encode", encode), ("fit", LogisticRegression(C=1.0, tol=1e-12, max_iter=100000))])
    model.fit(frame, y)
    out = {"classes": [str(c) for c in model.classes_], "probabilities": model.predict_proba(frame).tolist()}
else:
    model = Pipeline([("encode", encode), ("fit", Ridge(alpha=1.0))])
    model.fit(frame, y)
    out = {"values": model.predict(frame).tolist()}
print(json.dumps(out))
