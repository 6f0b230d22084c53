"""scikit-learn's answer for the models Cairn's trainer fits (crates/cairn-train/tests/sklearn.rs).

Usage: sklearn_reference.py TABLE.csv TARGET classification|regression linear|gbdt TRAIN_ROWS

Fits on the first TRAIN_ROWS rows and prints, as JSON, the predicted probabilities (or values) of
every row. `linear`: the pipeline a scikit-learn user writes before a linear model (mean
imputation and standardisation of numbers, one-hot categories ignoring unknown ones) with
LogisticRegression(C=1) or Ridge(alpha=1). `gbdt`: HistGradientBoostingClassifier/Regressor with
its defaults and no early stopping, categories as their sorted codes (as Cairn bins them).
"""
import json
import sys

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

path, target, task, kind, train_rows = sys.argv[1:6]
train_rows = int(train_rows)
frame = pd.read_csv(path)
y = frame.pop(target)
numeric = [c for c in frame.columns if frame[c].dtype.kind in "if"]
categorical = [c for c in frame.columns if c not in numeric]
classify = task == "classification"
if kind == "linear":
    encode = ColumnTransformer(
        [
            ("num", Pipeline([("impute", SimpleImputer(strategy="mean")), ("scale", StandardScaler())]), numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )
    fit = LogisticRegression(C=1.0, tol=1e-12, max_iter=100000) if classify else Ridge(alpha=1.0)
else:
    encode = ColumnTransformer(
        [("num", "passthrough", numeric), ("cat", OrdinalEncoder(), categorical)]
    )
    options = dict(early_stopping=False, random_state=0)
    fit = HistGradientBoostingClassifier(**options) if classify else HistGradientBoostingRegressor(**options)
model = Pipeline([("encode", encode), ("fit", fit)])
model.fit(frame.iloc[:train_rows], y.iloc[:train_rows])
if classify:
    out = {"classes": [str(c) for c in model.classes_], "probabilities": model.predict_proba(frame).tolist()}
else:
    out = {"values": model.predict(frame).tolist()}
print(json.dumps(out))
