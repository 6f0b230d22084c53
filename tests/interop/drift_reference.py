"""Reference drift numbers from scipy, for Cairn's drift tests.

Usage: drift_reference.py CASES.json
CASES.json: [{"reference": CSV, "current": CSV, "methods": {column: method or null}}]
Prints, per case, {column: {"method": ..., "default_method": ..., "score": ...}}, where
"default_method" follows Evidently's column typing and default test selection and "score" is
computed with scipy (ks_2samp, chisquare, wasserstein_distance, jensenshannon) and numpy
histograms, following Evidently's stattest definitions.
"""
import json
import sys

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance


def column_type(series):
    # Evidently's infer_column_type on the current data.
    name = series.dtype.name
    if name.startswith("float"):
        return "num"
    if name.startswith("int"):
        return "cat" if series.nunique() <= 10 else "num"
    if name == "bool":
        return "cat"
    if series.nunique() > series.count() * 0.5:
        return "text"
    return "cat"


def default_method(ref, cur, kind):
    n_values = pd.concat([ref, cur]).nunique()
    if kind == "text":
        return None
    if ref.shape[0] <= 1000:
        if kind == "num" and n_values > 5:
            return "ks"
        return "chisquare" if n_values > 2 else "z"
    if kind == "num" and n_values > 5:
        return "wasserstein"
    return "jensenshannon"


def keys_of(ref, cur):
    return list(set(ref.dropna().unique()) | set(cur.dropna().unique()))


def binned(ref, cur, kind, fill):
    if kind == "num" and ref.nunique() > 20:
        bins = np.histogram_bin_edges(np.asarray(pd.concat([ref, cur]).values), bins="sturges")
        r = np.histogram(ref, bins)[0] / len(ref)
        c = np.histogram(cur, bins)[0] / len(cur)
    else:
        keys = keys_of(ref, cur)
        rc, cc = ref.value_counts(), cur.value_counts()
        r = np.array([rc.get(k, 0) / len(ref) for k in keys])
        c = np.array([cc.get(k, 0) / len(cur) for k in keys])
    if fill:
        for a in (r, c):
            m = min(a[a != 0])
            np.place(a, a == 0, m / 10**6 if m <= 0.0001 else 0.0001)
    return r, c


def score(method, ref, cur, kind):
    if method == "ks":
        return float(stats.ks_2samp(ref, cur)[1])
    if method == "wasserstein":
        return float(stats.wasserstein_distance(ref, cur) / max(float(np.std(ref)), 0.001))
    if method == "chisquare":
        keys = keys_of(ref, cur)
        rc, cc = ref.value_counts(), cur.value_counts()
        k_norm = cur.shape[0] / ref.shape[0]
        f_exp = [rc.get(k, 0) * k_norm for k in keys]
        f_obs = [cc.get(k, 0) for k in keys]
        return float(stats.chisquare(f_obs, f_exp)[1])
    if method == "z":
        if ref.nunique() == 1 and cur.nunique() == 1 and ref.unique()[0] == cur.unique()[0]:
            return 1.0
        key = sorted(keys_of(ref, cur))[0]
        r = (ref != key).astype(int)
        c = (cur != key).astype(int)
        n1, n2 = len(r), len(c)
        p1, p2 = float(sum(r)) / n1, float(sum(c)) / n2
        p = float(p1 * n1 + p2 * n2) / (n1 + n2)
        z = (p1 - p2) / np.sqrt(p * (1 - p) * (1.0 / n1 + 1.0 / n2))
        return float(2 * (1 - stats.norm.cdf(np.abs(z))))
    if method == "jensenshannon":
        r, c = binned(ref, cur, kind, False)
        return float(distance.jensenshannon(r, c))
    if method == "psi":
        r, c = binned(ref, cur, kind, True)
        return float(np.sum((r - c) * np.log(r / c)))
    raise ValueError(method)


def main():
    cases = json.load(open(sys.argv[1]))
    out = []
    for case in cases:
        ref_df = pd.read_csv(case["reference"])
        cur_df = pd.read_csv(case["current"])
        result = {}
        for column, forced in case["methods"].items():
            kind = column_type(cur_df[column])
            ref = ref_df[column].replace([-np.inf, np.inf], np.nan).dropna()
            cur = cur_df[column].replace([-np.inf, np.inf], np.nan).dropna()
            default = default_method(ref, cur, kind)
            method = forced or default
            result[column] = {
                "kind": kind,
                "default_method": default,
                "method": method,
                "score": None if method is None else score(method, ref, cur, kind),
            }
        out.append(result)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
