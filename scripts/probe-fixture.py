#!/usr/bin/env python3
"""
Reference values of the linear probe (`cxr-train probe`) from scikit-learn, written once to
test/fixtures/eval/probe_sklearn.json; test/unit/eval/probe.test.ts compares the TypeScript solver and
protocol with them (the test needs only the JSON, not sklearn).

    apt-get install python3-sklearn
    /usr/bin/python3 scripts/probe-fixture.py      # rewrites the fixture (deterministic)

The protocol reproduced: embeddings (float32) L2-normalised per row, StandardScaler fitted on the
training rows, LogisticRegression(penalty='l2', C, solver='lbfgs', tol=1e-12, max_iter=100000) per label
and C; validation log-loss and AUROC of each C; test AUROC. A second reference with solver
'newton-cholesky' (exact Newton steps) shows how close sklearn's own lbfgs gets.
"""
import json
import os

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.preprocessing import StandardScaler

rng = np.random.default_rng(20261206)
D = 24
N = {"train": 320, "validate": 140, "test": 160}
# Two labels: one common, one rare (prevalence ~ 0.12), each tied to a random direction plus noise.
dirs = rng.normal(size=(2, D))
prev = [0.4, 0.12]
C_GRID = [1e-3, 1e-2, 1e-1, 1.0, 10.0]

def make(n):
    z = rng.normal(size=(n, D)) + 0.3
    y = np.zeros((n, 2), dtype=int)
    for j in range(2):
        s = z @ dirs[j] / np.sqrt(D) + rng.normal(scale=1.0, size=n)
        y[:, j] = (s > np.quantile(s, 1 - prev[j])).astype(int)
    return z.astype(np.float32), y

splits = {k: make(n) for k, n in N.items()}

def l2n(x):
    x64 = x.astype(np.float64)
    return (x64 / np.linalg.norm(x64, axis=1, keepdims=True)).astype(np.float32).astype(np.float64)

feats = {k: l2n(v[0]) for k, v in splits.items()}
scaler = StandardScaler().fit(feats["train"])
Z = {k: scaler.transform(v) for k, v in feats.items()}

labels = []
for j, name in enumerate(["Common", "Rare"]):
    ytr, yva, yte = splits["train"][1][:, j], splits["validate"][1][:, j], splits["test"][1][:, j]
    fits = []
    for C in C_GRID:
        m = LogisticRegression(penalty="l2", C=C, solver="lbfgs", tol=1e-12, max_iter=100000).fit(Z["train"], ytr)
        nc = LogisticRegression(penalty="l2", C=C, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(Z["train"], ytr)
        pva = m.predict_proba(Z["validate"])[:, 1]
        pte = m.predict_proba(Z["test"])[:, 1]
        fits.append({
            "C": C,
            "coef": m.coef_[0].tolist(),
            "intercept": float(m.intercept_[0]),
            "coefNewton": nc.coef_[0].tolist(),
            "interceptNewton": float(nc.intercept_[0]),
            "valLogLoss": float(log_loss(yva, pva)),
            "valLogLossNewton": float(log_loss(yva, nc.predict_proba(Z["validate"])[:, 1])),
            "valAuroc": float(roc_auc_score(yva, pva)),
            "testAuroc": float(roc_auc_score(yte, pte)),
        })
    best = min(range(len(fits)), key=lambda i: (fits[i]["valLogLoss"], C_GRID[i]))
    assert best == min(range(len(fits)), key=lambda i: (fits[i]["valLogLossNewton"], C_GRID[i]))
    labels.append({"name": name, "fits": fits, "selectedC": C_GRID[best]})

out = {
    "about": "scripts/probe-fixture.py: sklearn %s LogisticRegression(lbfgs, tol=1e-12) on L2-normalised, StandardScaler-ed float32 embeddings" % sklearn.__version__,
    "sklearn": sklearn.__version__,
    "dim": D,
    "cGrid": C_GRID,
    "scaler": {"mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist()},
    "splits": {k: {"x": v[0].astype(np.float64).tolist(), "y": v[1].T.tolist()} for k, v in splits.items()},
    "labels": labels,
}
path = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "eval", "probe_sklearn.json")
with open(path, "w") as f:
    json.dump(out, f, separators=(",", ":"))
    f.write("\n")
print("wrote", os.path.normpath(path))
for l in labels:
    for fit in l["fits"]:
        d = max(abs(a - b) for a, b in zip(fit["coef"] + [fit["intercept"]], fit["coefNewton"] + [fit["interceptNewton"]]))
        print(l["name"], fit["C"], "val logloss %.6f val auroc %.4f test auroc %.4f |lbfgs-newton| %.2e" % (fit["valLogLoss"], fit["valAuroc"], fit["testAuroc"], d))
    print(l["name"], "selected C", l["selectedC"])
