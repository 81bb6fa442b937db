"""Finite-d simulator (docs/theory.md) and its agreement with the asymptotic theory (rows 9-14, 17)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spinlens.conventions import to_lu
from spinlens.theory import learning_curve_point
from spinlens.theory.simulate import (
    exact_error,
    fit_gamma,
    sample_contexts,
    sample_contexts_naive,
    sample_sphere_tasks,
    simulate_point,
)

ROWS_9_14 = {
    "9": (2, 2, 0.5, 0.1, 0.1),
    "10": (2, 2, 0.5, 0.1, 1.0),
    "11": (10, 0.5, 2, 0.01, 0.01),
    "12": (1, 3, 4, 0.25, 0.3),
    "13": (5, 1.5, 1, 0, 0.05),
    "14": (5, 1.0, 8, 0.1, 0.5),
}


def _mc_error(gamma, w, ell, rho, sampler, rng):
    xq, h, yq = sampler(w, ell, rho, rng=rng)
    sq = (yq - np.einsum("ni,ij,nj->n", xq, gamma, h)) ** 2
    return sq.mean(), sq.std() / math.sqrt(len(sq))


@pytest.mark.parametrize("sampler", [sample_contexts, sample_contexts_naive], ids=["fast", "naive"])
def test_exact_trace_error_matches_monte_carlo(sampler):
    rng = np.random.default_rng(0)
    d, ell, rho, n = 5, 4, 0.3, 200_000
    gamma = rng.standard_normal((d, d + 1)) * 0.4 + np.hstack([np.eye(d), np.zeros((d, 1))]) * 0.5
    gamma[:, d] = 0.3 * rng.standard_normal(d)
    # ICL: fresh tasks on the sphere
    w = sample_sphere_tasks(n, d, rng=rng)
    mc, se = _mc_error(gamma, w, ell, rho, sampler, rng)
    assert abs(mc - exact_error(gamma, rho, ell)) < 4 * se
    # IDG: a small pool (non-zero mean, R ≠ I)
    pool = sample_sphere_tasks(3, d, rng=rng)
    w = pool[rng.integers(0, 3, size=n)]
    mc, se = _mc_error(gamma, w, ell, rho, sampler, rng)
    ex = exact_error(gamma, rho, ell, pool)
    assert abs(mc - ex) < 4 * se
    assert abs(ex - exact_error(gamma, rho, ell)) > 6 * se  # the test can tell ICL from IDG


def test_zero_gamma_error_is_one_plus_rho():
    pool = sample_sphere_tasks(4, 6, rng=1)
    for rho in (0.0, 0.7):
        assert exact_error(np.zeros((6, 7)), rho, 10) == pytest.approx(1 + rho, abs=1e-14)
        assert exact_error(np.zeros((6, 7)), rho, 10, pool) == pytest.approx(1 + rho, abs=1e-14)


def test_sphere_tasks_have_norm_sqrt_d():
    w = sample_sphere_tasks(10, 7, rng=2)
    assert np.allclose(np.linalg.norm(w, axis=1), math.sqrt(7))


@pytest.mark.parametrize("n", [15, 60])  # dual (n < p = 30) and primal (n ≥ p)
@pytest.mark.parametrize("lam", [0.0, 0.2])
def test_fit_gamma_equals_explicit_ridge(n, lam):
    rng = np.random.default_rng(3)
    d = 5
    w = sample_sphere_tasks(n, d, rng=rng)
    xq, h, yq = sample_contexts(w, 7, 0.1, rng=rng)
    F = (xq[:, :, None] * h[:, None, :]).reshape(n, -1)
    if lam > 0:
        ref = np.linalg.solve(F.T @ F + (n / d) * lam * np.eye(d * (d + 1)), F.T @ yq)
    else:
        ref = np.linalg.pinv(F) @ yq  # least squares / minimum-norm interpolator
    assert np.allclose(fit_gamma(xq, h, yq, lam).ravel(), ref, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("row", list(ROWS_9_14), ids=list(ROWS_9_14))
def test_rows_9_14_small_d_fast(row):
    p = ROWS_9_14[row]
    sim = simulate_point(30, *p, rng=10)
    th = learning_curve_point(*p)
    assert sim.icl_error == pytest.approx(th.icl_error, rel=0.15)
    assert sim.idg_error == pytest.approx(th.idg_error, rel=0.15)


def test_finite_size_deviation_shrinks_with_d():
    p = ROWS_9_14["9"]
    th = learning_curve_point(*p).icl_error
    dev = [simulate_point(d, *p, rng=11, n_repeats=2).icl_error - th for d in (16, 40)]
    assert abs(dev[1]) < abs(dev[0])


@pytest.mark.slow
@pytest.mark.parametrize("row", list(ROWS_9_14), ids=list(ROWS_9_14))
def test_rows_9_14_d60(row):
    p = ROWS_9_14[row]
    sim = simulate_point(60, *p, rng=20, n_repeats=2)
    th = learning_curve_point(*p)
    assert sim.icl_error == pytest.approx(th.icl_error, rel=0.08)
    assert sim.idg_error == pytest.approx(th.idg_error, rel=0.08)


@pytest.mark.slow
def test_row_17_g_task_vs_kappa_d48():
    # finite-d g_task is O(1/d) above theory at small κ (authors' own d=64 sims: 0.926 vs 0.825 at κ=0.2)
    for kappa in (0.2, 0.6, 1.0, 2.0, 4.0, 32.0):
        sim = simulate_point(48, 10, 10, kappa, 0.01, 1e-6, rng=30)
        th = learning_curve_point(10, 10, kappa, 0.01, 1e-6)
        assert abs(sim.g_task - th.g_task) <= 0.15 * th.g_task + 0.002, kappa


def test_row_17_g_task_fast_small_d():
    for kappa in (0.6, 2.0):
        sim = simulate_point(24, 10, 10, kappa, 0.01, 1e-6, rng=31)
        th = learning_curve_point(10, 10, kappa, 0.01, 1e-6)
        assert abs(sim.g_task - th.g_task) <= 0.3 * th.g_task + 0.005, kappa


# ------------------------------------------------------------------------------------------------
# spin glass → LU map (independent of the core): finite-D ridge on the SG objective vs theory
# ------------------------------------------------------------------------------------------------
def _sg_prompts(rng, P, D, N, sigma_eps=0.0):
    w = rng.standard_normal((P, D))
    X = rng.standard_normal((P, N + 1, D))
    y = np.einsum("pnd,pd->pn", X, w) / math.sqrt(D)
    y = y + sigma_eps * rng.standard_normal(y.shape)
    return X, y


def _sg_features(X, y):
    """s = c ⊗ q with c = Σ_j (x_j, y_j) y_j /(N+1) over the context and q = [x_q; 0]; only W[:, :D] matters."""
    P, N1, D = X.shape
    N = N1 - 1
    c = np.concatenate([np.einsum("pn,pnd->pd", y[:, :N], X[:, :N]), (y[:, :N] ** 2).sum(1, keepdims=True)], 1)
    c /= N + 1
    return (c[:, :, None] * X[:, N, None, :]).reshape(P, -1)  # spins W[a, b], a ≤ D, b < D


def _sg_ridge_test_error(D, N, P, l2, rng, P_test=8000):
    X, y = _sg_prompts(rng, P, D, N)
    S = _sg_features(X, y)
    # minimiser of ½ mean(y − s·W)² + (l2/2)|W|²
    W = np.linalg.solve(S.T @ S / P + l2 * np.eye(S.shape[1]), S.T @ y[:, N] / P)
    Xt, yt = _sg_prompts(rng, P_test, D, N)
    return np.mean((yt[:, N] - _sg_features(Xt, yt) @ W) ** 2)


def test_to_lu_matches_theory_doc_section_3_2():
    m = to_lu(20, 100, 10_000, 0.01)
    assert m["alpha"] == 5 and m["tau"] == 25 and m["kappa"] == math.inf and m["rho"] == 0
    assert m["lam_lu"] == pytest.approx(20 * 0.01 * (1 + 1 / 100) ** 2) and "lam" not in m
    assert to_lu(10, 20, 100, 0.1, n_tasks=30, sigma_eps=0.5)["kappa"] == 3.0
    assert to_lu(10, 20, 100, 0.1, n_tasks=30, sigma_eps=0.5)["rho"] == 0.25


def test_spin_glass_ridge_matches_theory_through_to_lu():
    # docs/theory.md, map from the spin glass: λ_LU = 0.2, α = 5, τ = 25: finite-D SG ridge 0.1967 (D=20) vs theory 0.1902
    D, N = 20, 100
    l2 = 0.2 / (D * (1 + 1 / N) ** 2)
    P = 25 * D * D
    m = to_lu(D, N, P, l2)
    th = learning_curve_point(**m).icl_error
    assert th == pytest.approx(learning_curve_point(5, 25, math.inf, 0, 0.2).icl_error, rel=1e-12)
    err = _sg_ridge_test_error(D, N, P, l2, np.random.default_rng(40))
    assert err == pytest.approx(th, rel=0.08)
    # a wrong λ map (e.g. forgetting the factor D) would be far off
    wrong = learning_curve_point(5, 25, math.inf, 0, 0.2 / D).icl_error
    assert abs(err - wrong) > 2 * abs(err - th)


def test_spin_glass_fig4b_theory_columns_via_to_lu():
    # docs/theory.md (SG Fig. 4b: D=20, P=10⁴, wd = λ0 = 0.01): LU theory with the AMP λ (E's l2_strength = λ0)
    # and with Adam's coupled weight decay (l2_strength = wd/2)
    from spinlens.conventions import l2_strength_from_weight_decay

    amp = [0.5221, 0.3549, 0.2724, 0.2234, 0.1909, 0.1677, 0.1504, 0.1369, 0.1262, 0.1174]
    sgd = [0.5201, 0.3485, 0.2632, 0.2121, 0.1782, 0.1539, 0.1358, 0.1217, 0.1104, 0.1012]
    for i, N in enumerate(range(20, 201, 20)):
        e_amp = learning_curve_point(**to_lu(20, N, 10_000, 0.01)).icl_error
        e_sgd = learning_curve_point(**to_lu(20, N, 10_000, l2_strength_from_weight_decay(0.01))).icl_error
        assert abs(e_amp - amp[i]) <= 6e-5, N
        assert abs(e_sgd - sgd[i]) <= 6e-5, N
