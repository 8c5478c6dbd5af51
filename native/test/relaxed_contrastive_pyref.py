#!/usr/bin/env python3
"""Writes native/test/fixtures/relaxed_contrastive_torch.txt: the relaxed contrastive loss and its
gradients computed by PyTorch (an independent implementation written the way open_clip writes the CLIP
loss), for a deterministic float64 input, so that relaxed_contrastive_test.cc can cross-check the C++ op
against Python torch without needing Python at test time.

Run with the system interpreter that has python3-torch:  /usr/bin/python3 native/test/relaxed_contrastive_pyref.py
"""
import math
import os

import torch
import torch.nn.functional as F

B, D = 6, 5
THETA = math.log(14.0)


def inputs():
    # Deterministic, no RNG: the C++ test builds the same values with the same formula.
    U = torch.tensor([[math.sin(0.37 * i + 1.3 * k) * (1 + 0.1 * k) for k in range(D)] for i in range(B)], dtype=torch.float64)
    W = torch.tensor([[math.cos(0.91 * i - 0.7 * k) for k in range(D)] for i in range(B)], dtype=torch.float64)
    mix = torch.tensor([-0.5 + 0.6 * i for i in range(B)], dtype=torch.float64).unsqueeze(1)
    return U, mix * U + W


def loss_fn(U, V, theta, alpha, variant, eps):
    u, v = F.normalize(U, dim=1), F.normalize(V, dim=1)
    s = u @ v.t()
    l = theta.exp()
    labels = torch.arange(s.shape[0])
    clamped = s - torch.diag(torch.relu(torch.diagonal(s) - alpha))  # S with s_ii -> min(s_ii, alpha)
    if variant == "clamp-diag":
        logits = l * clamped
        return (F.cross_entropy(logits, labels, label_smoothing=eps) + F.cross_entropy(logits.t(), labels, label_smoothing=eps)) / 2
    n = s.shape[0]
    target = (1 - eps) * torch.eye(n, dtype=s.dtype) + eps / n
    row = torch.logsumexp(l * s, 1) - (target * l * clamped).sum(1)
    col = torch.logsumexp(l * s, 0) - (target * l * clamped).sum(0)
    return (row.mean() + col.mean()) / 2


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "relaxed_contrastive_torch.txt")
    lines = [f"# torch {torch.__version__}; B={B} D={D} theta=ln(14); per case: variant alpha eps loss dtheta, then dU, dV row-major"]
    for variant in ("clamp-diag", "clamp-numerator"):
        for alpha, eps in ((0.5, 0.0), (0.5, 0.1), (1.0, 0.0)):
            U, V = inputs()
            U.requires_grad_(True)
            V.requires_grad_(True)
            theta = torch.tensor(THETA, dtype=torch.float64, requires_grad=True)
            L = loss_fn(U, V, theta, alpha, variant, eps)
            L.backward()
            lines.append(f"{variant} {alpha!r} {eps!r} {L.item()!r} {theta.grad.item()!r}")
            lines.append(" ".join(repr(x) for x in U.grad.flatten().tolist()))
            lines.append(" ".join(repr(x) for x in V.grad.flatten().tolist()))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
