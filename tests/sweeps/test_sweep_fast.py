"""The sweep fast path: the lean cavity loop is bit-identical to the core solver, and the reduced feature
sampler has the distribution of the core's prompts (moments against closed forms and the core sampler)."""

from __future__ import annotations

import numpy as np
import pytest

from spinlens.errors import InvalidParameterError
from spinlens.features import SpinFeatures, sample_reduced_features, spin_features
from spinlens.hamiltonian import build_hamiltonian
from spinlens.limit import moments
from spinlens.prompts import PromptDistribution
from spinlens.solvers import CavitySolver
from spinlens.solvers.cavity import cavity_iterate
from spinlens.sweeps import compute_point, make_grid


def reduced_features(dist, n_prompts, *, rng, pool=None):
    fs = sample_reduced_features(dist, n_prompts, rng=rng, pool=pool)
    return fs.features.C, fs.features.Q, fs.y, fs.w, fs.pool


@pytest.mark.parametrize("d,n,p,lam,beta,damping,max_iter", [
    (6, 30, 400, 1.0, 100.0, 0.9, 100),   # converges
    (6, 2, 20, 1.0, 100.0, 0.9, 100),     # diverges / does not converge
    (10, 20, 300, 0.01, 100.0, 0.9, 100),
    (4, 10, 200, 0.5, 10.0, 0.5, 7),      # stopped by max_iter
])
def test_cavity_kernels_agree_and_solver_uses_the_loop(d, n, p, lam, beta, damping, max_iter):
    H = build_hamiltonian(PromptDistribution(d=d, n_context=n).sample(p, rng=3), l2_strength=lam)
    ref = CavitySolver(damping=damping, max_iter=max_iter, compare_exact=False).solve(H, beta=beta, rng=11, warn=False)
    g = np.random.default_rng(11)
    m0, v0 = g.standard_normal(H.n_spins), g.standard_normal(H.n_spins)
    kw = dict(beta=beta, damping=damping, max_iter=max_iter, tol=1e-6, m0=m0, v0=v0)
    st = cavity_iterate(H.gram(), H.h, H.lam_diag, **kw)  # the solver's own loop (symv)
    np.testing.assert_array_equal(st.m, ref.W.ravel())
    np.testing.assert_array_equal(st.v, ref.v.ravel())
    assert (st.n_iter, st.converged) == (ref.n_iter, ref.converged)
    # the plain gemv kernel: same stopping, W equal up to amplified rounding
    sg = cavity_iterate(H.gram(), H.h, H.lam_diag, kernel="gemv", **kw)
    assert (sg.n_iter, sg.converged, sg.status) == (st.n_iter, st.converged, st.status)
    if st.converged:
        np.testing.assert_allclose(sg.m, st.m, rtol=1e-5, atol=1e-9 * np.abs(st.m).max())


def _moments(C, Q, y):
    S = (C[:, :, None] * Q[:, None, :]).reshape(len(y), -1)
    return S, y


def _check_close(a_samples, b_mean, what, k=5.0):
    """Mean of per-prompt samples (P, ...) equals b_mean within k standard errors (plus 1e-12)."""
    _check_mean_se(a_samples.mean(0), a_samples.std(0) / np.sqrt(len(a_samples)), b_mean, what, k)


def _check_mean_se(m, se, b_mean, what, k=5.0):
    bad = np.abs(m - b_mean) > k * se + 1e-12
    assert not bad.any(), f"{what}: {np.argwhere(bad)[:5].tolist()} off by {np.abs(m - b_mean)[bad][:5]} (se {se[bad][:5]})"


@pytest.mark.parametrize("sigma_eps,n_context", [(0.0, 4), (0.7, 4), (0.3, 1)])
def test_reduced_sampler_moments_match_closed_forms(sigma_eps, n_context):
    dist = PromptDistribution(d=3, n_context=n_context, sigma_eps=sigma_eps, sigma_x=1.3, sigma_w=0.8)
    P = 100_000
    C, Q, y, w, _ = reduced_features(dist, P, rng=np.random.default_rng(0))
    S, y = _moments(C, Q, y)
    mom = moments(dist)
    _check_close(y[:, None] * S, mom.ys.ravel(), "E[y s]")
    _check_close(S * S, mom.ss_diag.ravel(), "E[s^2]")
    _check_close((y * y)[:, None], np.array([mom.y2]), "E[y^2]")
    # off-diagonal second moments vanish: mean of s_i s_j and its standard error from E[s_i² s_j²]
    m2 = S.T @ S / P
    se = np.sqrt(np.maximum((S * S).T @ (S * S) / P - m2**2, 0) / P)
    iu = np.triu_indices(S.shape[1], 1)
    _check_mean_se(m2[iu], se[iu], 0.0, "E[s_i s_j], i != j")


@pytest.mark.parametrize("sigma_eps,n_tasks", [(0.0, None), (0.5, None), (0.0, 3)])
def test_reduced_sampler_fourth_moments_match_core_sampler(sigma_eps, n_tasks):
    # the cavity's J∘J depends on the fluctuations of SᵀS/P, i.e. on 4th moments of s: compare them
    dist = PromptDistribution(d=2, n_context=3, sigma_eps=sigma_eps, n_tasks=n_tasks)
    P = 150_000
    pool = None if n_tasks is None else dist.sample_pool(rng=5)
    pr = dist.sample(P, rng=1, pool=pool)
    fc = spin_features(pr)
    Sc, yc = _moments(fc.C, fc.Q, pr.y)
    C, Q, y, w, _ = reduced_features(dist, P, rng=np.random.default_rng(2), pool=pool)
    Sr, yr = _moments(C, Q, y)
    live = np.flatnonzero(Sc.std(0) > 0)  # the last column of W is dead (query label 0)

    def stats(S, y):
        S = S[:, live]
        S2 = S * S
        out = {}
        for name, X, Y in [("s_i^2 s_j^2", S2, S2), ("y^2 s_i s_j", (y * y)[:, None] * S, S), ("y s_i", y[:, None], S)]:
            mean = X.T @ Y / P
            var = (X * X).T @ (Y * Y) / P - mean**2
            out[name] = (mean, var)
        return out

    a, b = stats(Sc, pr.y), stats(Sr, y)
    for name in a:
        (ma, va), (mb, vb) = a[name], b[name]
        se = np.sqrt(np.maximum(va, 0) / P + np.maximum(vb, 0) / P)
        diff = np.abs(ma - mb)
        assert np.all(diff < 5 * se + 1e-12), f"{name}: max diff/se {np.max(diff / (se + 1e-300)):.2f}"
    if n_tasks is not None:
        assert {tuple(t) for t in w} <= {tuple(t) for t in pool}


def test_reduced_and_core_samplers_give_the_same_contrast_ratio_statistics():
    grid = make_grid({"D": 6, "N": 20, "P": 400, "lam": 1.0, "seed": "0:40"})
    vals = {}
    for sampler in ("core", "reduced"):
        r = [compute_point(p, ["contrast_ratio"], sampler=sampler) for p in grid.points()]
        assert sum(x["converged"] for x in r) >= 36
        vals[sampler] = np.array([x["contrast_ratio"] for x in r if x["converged"]])
    a, b = vals["core"], vals["reduced"]
    se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    assert abs(a.mean() - b.mean()) < 4 * se
    assert 0.5 < a.std() / b.std() < 2.0
    assert not np.array_equal(a, b)  # different sample paths, same distribution


def test_reduced_sampler_refuses_correlated_positions():
    p = next(make_grid({"D": 3, "N": 5, "P": 50, "corr": 0.3}).points())
    with pytest.raises(InvalidParameterError, match="corr"):
        compute_point(p, ["contrast_ratio"], sampler="reduced")
    r = compute_point(p, ["contrast_ratio", "test_error"], sampler="auto", method="exact", n_mc=500)
    assert r["converged"] and np.isfinite(r["test_error"])


def test_features_feed_the_core_hamiltonian():
    dist = PromptDistribution(d=4, n_context=8)
    C, Q, y, w, _ = reduced_features(dist, 50, rng=np.random.default_rng(0))
    H = build_hamiltonian(SpinFeatures(C, Q), y, l2_strength=0.1)
    assert H.gram().shape == (25, 25) and np.all(np.isfinite(H.h))
    assert np.all(Q[:, -1] == 0) and np.all(C[:, -1] >= 0)
