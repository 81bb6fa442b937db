"""Theory vs the core's exact spin-glass solver (mapped with to_lu), and the task-diversity comparison."""

from __future__ import annotations

import math

import numpy as np
import pytest

import spinlens.solvers as core
from spinlens.conventions import lam_from_lam_lu, to_lu
from spinlens.hamiltonian import build_hamiltonian
from spinlens.observables import pool_error, test_error
from spinlens.prompts import PromptDistribution
from spinlens.theory import learning_curve_point  # noqa: E402


def _exact_vs_theory(D, alpha, tau, kappa, lam_lu, sigma_eps, seed):
    N, P = round(alpha * D), round(tau * D * D)
    K = None if kappa == math.inf else round(kappa * D)
    l2 = lam_from_lam_lu(lam_lu, D, N)  # inverse of to_lu's λ map
    dist = PromptDistribution(d=D, n_context=N, sigma_eps=sigma_eps, n_tasks=K)
    pre = dist.sample(P, rng=seed)
    W = core.solve(build_hamiltonian(pre, l2_strength=l2), "exact").W
    base = dist.replace(n_tasks=None)
    icl = test_error(W, base)
    idg = icl if K is None else pool_error(W, base, pre.pool)
    th = learning_curve_point(**to_lu(D, N, P, l2, n_tasks=K, sigma_eps=sigma_eps))
    return icl / th.icl_error - 1, idg / th.idg_error - 1


def _exact_vs_theory_streamed(D, alpha, tau, kappa, lam_lu, sigma_eps, seed, chunk_size=512):
    """Same as `_exact_vs_theory` at large D: features streamed in chunks (O(P·D) memory), CG solver."""

    N, P = round(alpha * D), round(tau * D * D)
    K = None if kappa == math.inf else round(kappa * D)
    l2 = lam_lu / (D * (1 + 1 / N) ** 2)
    dist = PromptDistribution(d=D, n_context=N, sigma_eps=sigma_eps, n_tasks=K)
    g = np.random.default_rng(seed)
    if K is None:
        feats, y = dist.sample_features(P, rng=g, chunk_size=chunk_size)
        pool = None
    else:  # draw the pool first (as sample_features does) and keep it for the IDG error
        pool = dist.sample_pool(rng=g)
        feats, y = dist.sample_features(P, rng=g, chunk_size=chunk_size, pool=pool)
    res = core.solve(build_hamiltonian(feats, y, l2_strength=l2), "exact", backend="cg", n_probes=0)
    assert res.converged and res.residual < 1e-8
    base = dist.replace(n_tasks=None)
    icl = test_error(res.W, base)
    idg = icl if K is None else pool_error(res.W, base, pool)
    th = learning_curve_point(**to_lu(D, N, P, l2, n_tasks=K, sigma_eps=sigma_eps))
    return icl / th.icl_error - 1, idg / th.idg_error - 1


def test_exact_spin_glass_ridge_close_to_theory_fast():
    dev_icl, _ = _exact_vs_theory(20, 2, 4, math.inf, 0.1, 0.0, seed=0)
    assert abs(dev_icl) < 0.12


@pytest.mark.slow
@pytest.mark.parametrize("case", [(2, 4, math.inf, 0.1, 0.0), (2, 4, 1.0, 0.1, 0.3)], ids=["kappa_inf", "kappa_1"])
def test_exact_spin_glass_ridge_converges_to_theory(case):
    devs = {}
    for D in (20, 40):
        runs = np.array([_exact_vs_theory(D, *case, seed=s) for s in (1, 2)])
        devs[D] = runs.mean(axis=0)
    assert abs(devs[40][0]) < abs(devs[20][0])  # ICL agreement improves with D
    assert abs(devs[40][0]) < 0.08 and abs(devs[40][1]) < 0.08


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("case", [(2, 4, math.inf, 0.1, 0.0), (2, 4, 1.0, 0.1, 0.3)], ids=["kappa_inf", "kappa_1"])
def test_exact_spin_glass_ridge_D80(case):
    """D = 80 (6561 spins, P = 25600, N = 160): ~20 s per seed on one core (streamed features, CG)."""
    dev40 = np.mean([_exact_vs_theory(40, *case, seed=s) for s in (1, 2, 3)], axis=0)
    dev80 = np.mean([_exact_vs_theory_streamed(80, *case, seed=s) for s in (1, 2)], axis=0)
    assert abs(dev80[0]) < abs(dev40[0])  # ICL agreement keeps improving from D = 40 to 80
    assert abs(dev80[0]) < 0.04 and abs(dev80[1]) < 0.03  # measured: +1.6 % / +2.5 % (ICL), +0.7 % (IDG)


@pytest.mark.parametrize("kappa", [math.inf, 1.0])
def test_streamed_path_equals_in_memory_path(kappa):
    """The streamed CG helper of the D = 80 test equals the dense in-memory one (one chunk: same draws)."""
    a = _exact_vs_theory_streamed(8, 2, 4, kappa, 0.1, 0.3, seed=3, chunk_size=10_000)
    b = _exact_vs_theory(8, 2, 4, kappa, 0.1, 0.3, seed=3)
    np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)
    c = _exact_vs_theory_streamed(8, 2, 4, kappa, 0.1, 0.3, seed=3, chunk_size=37)  # other draws, same law
    assert np.all(np.abs(np.array(c) - np.array(b)) < 0.3) and not np.allclose(c, b)


def test_task_diversity_sweep_and_figure(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from spinlens.plotting.theory import plot_task_diversity
    from spinlens.theory.comparison import task_diversity_sweep

    ds = task_diversity_sweep(4, 8, 300, 0.01, [2, 64], sigma_eps=0.5, n_test=3000, rng=0)
    assert list(ds.n_tasks.values) == [2.0, 64.0, math.inf]
    for v in ("attention_icl", "attention_idg", "ridge_icl", "dmmse_icl", "dmmse_idg", "theory_icl"):
        assert np.all(np.isfinite(ds[v].values)), v
    # Bayes optimality (same test prompts, MC noise margin): ridge best on fresh tasks, dMMSE on the pool
    assert np.all(ds.ridge_icl.values <= ds.dmmse_icl.values + 0.02)
    assert np.all(ds.ridge_icl.values <= ds.attention_icl.values + 0.02)
    assert np.all(ds.dmmse_idg.values[:2] <= ds.ridge_idg.values[:2] + 0.02)
    # a tiny pool is memorised by dMMSE: far better on the pool than on fresh tasks
    assert ds.dmmse_idg.values[0] < 0.7 * ds.dmmse_icl.values[0]
    # theory column is the mapped point
    m = to_lu(4, 8, 300, 0.01, n_tasks=64, sigma_eps=0.5)
    assert ds.theory_icl.values[1] == pytest.approx(learning_curve_point(**m).icl_error, rel=1e-12)
    fig, _ = plot_task_diversity(ds)
    fig.savefig(tmp_path / "k.png")
    assert (tmp_path / "k.png").stat().st_size > 0



def test_lam_conversion_both_ways():
    # the λ of E(W) -> Lu et al.'s λ_LU -> back; the map to_lu applies; and the closed form D·λ·(1+1/N)²/(σ_x⁶σ_w²)
    from spinlens.conventions import lam_lu_from_lam

    for D, N, lam, sx, sw in [(20, 100, 0.01, 1.0, 1.0), (7, 3, 2.5, 0.5, 2.0), (1, 1, 1e-6, 3.0, 0.1)]:
        lu = lam_lu_from_lam(lam, D, N, sx, sw)
        assert lu == pytest.approx(D * lam * (1 + 1 / N) ** 2 / (sx**6 * sw**2), rel=1e-14)
        assert lam_from_lam_lu(lu, D, N, sx, sw) == pytest.approx(lam, rel=1e-14)
        assert lam_lu_from_lam(lam_from_lam_lu(lam, D, N, sx, sw), D, N, sx, sw) == pytest.approx(lam, rel=1e-14)
        assert lu == pytest.approx(to_lu(D, N, 100, lam, sigma_x=sx, sigma_w=sw)["lam_lu"], rel=1e-14)
    # by hand: D = 20, N = 100, λ = 0.01 → λ_LU = 20 · 0.01 · 1.01² = 0.20402, and back
    assert lam_lu_from_lam(0.01, 20, 100) == pytest.approx(0.20402, rel=1e-13)
    assert lam_from_lam_lu(0.20402, 20, 100) == pytest.approx(0.01, rel=1e-13)
    assert lam_lu_from_lam(0.5, 4, 1, sigma_x=0.5, sigma_w=2.0) == pytest.approx(4 * 0.5 * 4 / (0.5**6 * 4), rel=1e-13)
