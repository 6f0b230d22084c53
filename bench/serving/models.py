"""The models bench/serving's scripts serve, fitted on one generated table: a 100-tree
GradientBoostingClassifier and a LogisticRegression on 20 features (exported with skl2onnx by
the scripts). Returns the float32 features and the fitted models by label."""
import numpy as np
from sklearn.datasets import make_classification
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression


def serving_models():
    X, y = make_classification(n_samples=5000, n_features=20, n_informative=12, random_state=0)
    X = X.astype(np.float32)
    return X, {
        "GradientBoostingClassifier (100 trees)": GradientBoostingClassifier(n_estimators=100, random_state=0).fit(X, y),
        "LogisticRegression": LogisticRegression(max_iter=1000).fit(X, y),
    }
