#!/usr/bin/env python3
"""Reference values for the calibration tests (test/unit/eval/calibration.test.ts).

Run once with Debian's scikit-learn (`apt-get install python3-sklearn`; made with sklearn 1.2.1,
numpy 1.24.2, scipy from the same release) and commit the output:

    /usr/bin/python3 scripts/calibration-reference.py > test/fixtures/eval/calibration-reference.json

Nothing at runtime or in the tests needs Python: the tests read the JSON.
"""
import json
import sys

import numpy as np
import scipy
import sklearn
from scipy.optimize import minimize_scalar
from sklearn.calibration import calibration_curve
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss

EPS = 2.0 ** -24


def logit(p):
    q = np.clip(p, EPS, 1 - EPS)
    return np.log(q / (1 - q))


def bins_case(y, p, n_bins, strategy):
    prob_true, prob_pred = calibration_curve(y, p, n_bins=n_bins, strategy=strategy)
    if strategy == "quantile":
        edges = np.percentile(p, np.linspace(0, 1, n_bins + 1) * 100)
    else:
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    ids = np.searchsorted(edges[1:-1], p)
    counts = np.bincount(ids, minlength=len(edges))
    nz = counts != 0
    ece = float(np.sum(counts[nz] / len(p) * np.abs(prob_pred - prob_true)))
    return {
        "nBins": n_bins,
        "strategy": strategy,
        "edges": edges.tolist(),
        "fractionPositive": prob_true.tolist(),
        "meanPredicted": prob_pred.tolist(),
        "count": counts[nz].tolist(),
        "ece": ece,
    }


def make_cases():
    rng = np.random.default_rng(20261206)
    cases = []
    # 1. Smooth probabilities, a miscalibrated model (true p = p^1.5), exact edge values mixed in.
    p = rng.beta(2, 3, size=400)
    p[:12] = [0.0, 1.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.30000000000000004, 0.6000000000000001, 0.25, 0.75]
    y = (rng.random(400) < p ** 1.5).astype(float)
    cases.append(("beta-400", y, p))
    # 2. Heavy ties (two decimals), few rows: equal-mass edges coincide with data values.
    p = np.round(rng.random(37), 2)
    y = (rng.random(37) < p).astype(float)
    cases.append(("ties-37", y, p))
    # 3. float32 probabilities of a zero-shot-like score: sigmoid of a margin in [-2, 2].
    z = rng.normal(0.3, 0.7, size=300)
    p = (1 / (1 + np.exp(-z))).astype(np.float32).astype(np.float64)
    y = (rng.random(300) < 1 / (1 + np.exp(-(2.5 * z - 0.4)))).astype(float)
    cases.append(("zeroshot-300", y, p))
    return cases


def main():
    out = {
        "generator": "scripts/calibration-reference.py",
        "versions": {"sklearn": sklearn.__version__, "numpy": np.__version__, "scipy": scipy.__version__},
        "bins": [],
        "fits": [],
    }
    for name, y, p in make_cases():
        entry = {"name": name, "y": y.tolist(), "p": p.tolist(), "brier": float(brier_score_loss(y, p)), "curves": []}
        for n_bins in (5, 10, 15):
            for strategy in ("uniform", "quantile"):
                entry["curves"].append(bins_case(y, p, n_bins, strategy))
        out["bins"].append(entry)

        z = logit(p)
        # Platt: logistic regression on the single feature z, no penalty, solved to a tight tolerance.
        lr = LogisticRegression(penalty=None, solver="lbfgs", tol=1e-14, max_iter=100000)
        lr.fit(z.reshape(-1, 1), y)
        a, b = float(lr.coef_[0][0]), float(lr.intercept_[0])
        # Temperature: 1-D minimisation of the mean NLL over the scale s = 1/T (scipy, bounded Brent).
        def nll(s):
            x = s * z
            return float(np.mean(np.logaddexp(0, x) - y * x))
        r = minimize_scalar(nll, bounds=(1e-6, 100.0), method="bounded", options={"xatol": 1e-13})
        out["fits"].append({"name": name, "y": y.tolist(), "z": z.tolist(), "platt": {"a": a, "b": b}, "temperature": 1.0 / float(r.x), "temperatureNll": float(r.fun)})
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
