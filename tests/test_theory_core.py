"""Theory vs the core's exact spin-glass solver (mapped with to_lu), and the task-diversity comparison."""

from __future__ import annotations

import math

import numpy as np
import pytest

core = pytest.importorskip("spinlens.solvers", reason="core solvers not available")

from spinlens.conventions import to_lu  # noqa: E402
from spinlens.hamiltonian import build_hamiltonian  # noqa: E402
from spinlens.observables import pool_error, test_error  # noqa: E402
from spinlens.prompts import PromptDistribution  # noqa: E402
from spinlens.theory import learning_curve_point  # noqa: E402


def _exact_vs_theory(D, alpha, tau, kappa, lam_lu, sigma_eps, seed):
    N, P = round(alpha * D), round(tau * D * D)
    K = None if kappa == math.inf else round(kappa * D)
    l2 = lam_lu / (D * (1 + 1 / N) ** 2)  # inverse of to_lu's λ map
    dist = PromptDistribution(d=D, n_context=N, sigma_eps=sigma_eps, n_tasks=K)
    pre = dist.sample(P, rng=seed)
    W = core.solve(build_hamiltonian(pre, l2_strength=l2), "exact").W
    base = dist.replace(n_tasks=None)
    icl = test_error(W, base)
    idg = icl if K is None else pool_error(W, base, pre.pool)
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


def test_task_diversity_sweep_and_figure(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from spinlens.theory.comparison import task_diversity_sweep
    from spinlens.theory.figures import plot_task_diversity

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
