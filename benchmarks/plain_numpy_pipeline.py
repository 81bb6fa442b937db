"""A plain NumPy pipeline written from the formulas (no spinlens), for side-by-side timing.

The same job as ``spinlens solve --method cavity|exact --json``: draw P prompts (x ~ N(0, I), w ~ N(0, I),
y = w·x/√D), the features s = c ⊗ q with c = Σ_{i<N} y_i [x_i; y_i]/(N+1) and q = [x_query; 0], the fields
h = mean y s and couplings J = −mean s sᵀ, the paper's damped cavity iteration (random initial messages,
100 steps, tol 1e-6) or the ridge solve, the distance of the cavity mean to the exact mean, the closed-form
test error and the train error. Prints one JSON line.

    python benchmarks/plain_numpy_pipeline.py --D 20 --N 100 --P 10000 --lam 0.01 --method cavity
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--D", type=int, default=20)
    ap.add_argument("--N", type=int, default=100)
    ap.add_argument("--P", type=int, default=10000)
    ap.add_argument("--lam", type=float, default=0.01)
    ap.add_argument("--beta", type=float, default=100.0)
    ap.add_argument("--method", default="cavity")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    t0 = time.perf_counter()
    D, N, P, lam, beta = a.D, a.N, a.P, a.lam, a.beta
    g = np.random.default_rng(a.seed)
    w = g.standard_normal((P, D))
    x = g.standard_normal((P, D, N + 1))
    y = np.einsum("pd,pdn->pn", w, x) / np.sqrt(D)
    c = np.empty((P, D + 1))
    c[:, :D] = np.einsum("pn,pdn->pd", y[:, :N], x[:, :, :N]) / (N + 1)
    c[:, D] = np.sum(y[:, :N] ** 2, axis=1) / (N + 1)
    q = np.zeros((P, D + 1))
    q[:, :D] = x[:, :, N]
    yq = y[:, N]
    S = (c[:, :, None] * q[:, None, :]).reshape(P, -1)
    G = S.T @ S / P
    h = S.T @ yq / P
    K = G.shape[0]
    A = G + lam * np.eye(K)
    m_exact = np.linalg.solve(A, h)
    out = {}
    if a.method == "cavity":
        J0 = -G.copy()
        np.fill_diagonal(J0, 0.0)
        J2 = J0 * J0
        lam_i = lam + np.diag(G)
        m, v = g.standard_normal(K), g.standard_normal(K)
        conv = False
        for it in range(1, 101):
            den = beta * lam_i - beta * beta * (J2 @ v)
            mn = beta * (h + J0 @ m) / den
            vn = 1.0 / den
            err = np.mean((mn - m) ** 2) + np.mean((vn - v) ** 2)
            m, v = 0.9 * m + 0.1 * mn, 0.9 * v + 0.1 * vn
            if err < 1e-6:
                conv = True
                break
        out.update(converged=conv, iterations=it, exact_distance=float(np.linalg.norm(m - m_exact) / np.linalg.norm(m_exact)))
    else:
        m = m_exact
    W = m.reshape(D + 1, D + 1)
    # closed-form test error on fresh prompts (isotropic Gaussian law, noiseless)
    k1 = N / ((N + 1) * D)
    cxx = (N * (D + 2) / D + N * (N - 1) / D) / (N + 1) ** 2
    cyy = N * (N + 2) * (D * (D + 2) / D**2) / (N + 1) ** 2
    ss = np.outer(np.r_[np.full(D, cxx), cyy], np.r_[np.ones(D), 0.0])
    test = 1.0 - 2 * k1 * np.trace(W[:D, :D]) + np.sum(ss * W * W)
    train = np.mean((yq - S @ m) ** 2)
    out.update(test_error=float(test), train_error=float(train), seconds=time.perf_counter() - t0)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
