r"""Task diversity sweep: linear attention (exact ridge of the spin glass) vs the Bayes baselines vs theory.

For each task-pool size ``K`` (and ``K = ∞``, a fresh task per prompt) this streams the features of ``P``
pretraining prompts in the spin-glass setting (`spinlens.prompts.PromptDistribution`), solves the Hamiltonian
exactly (`spinlens.solvers.solve(H, "exact")`, the Boltzmann mean = ridge solution) and records

* the linear attention's ICL error (fresh tasks, `spinlens.observables.test_error`, exact) and IDG
  error (tasks from the pool, `spinlens.observables.pool_error`, exact);
* the Bayes baselines on the same test prompts (Monte-Carlo): ``ridge`` (optimal for fresh tasks,
  independent of K) and ``dmmse`` (optimal for the pool), each on fresh tasks (ICL) and on pool tasks (IDG);
* the asymptotic theory at the mapped parameters (`spinlens.conventions.to_lu`, κ = K/D).

Results are an ``xarray.Dataset`` over ``n_tasks`` (``inf`` for a fresh task per prompt).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from spinlens.errors import check_float, check_int
from spinlens.random import RNGLike, as_generator, spawn

if TYPE_CHECKING:
    from spinlens.theory.results import TheoryRun

__all__ = ["task_diversity_sweep", "diversity_theory_curve", "diversity_run"]


def task_diversity_sweep(
    d: int,
    n_context: int,
    n_prompts: int,
    l2_strength: float,
    n_tasks,
    *,
    sigma_eps: float = 0.0,
    n_test: int = 4000,
    include_infinite: bool = True,
    rng: RNGLike = None,
    progress: bool = False,
    sampler: str = "auto",
):
    """ICL/IDG errors of the exact spin-glass ridge solution and of the Bayes baselines vs pool size K.

    Parameters
    ----------
    d, n_context, n_prompts : int
        D, N, P of the spin glass.
    l2_strength : float
        λ of the Hamiltonian E(W).
    n_tasks : sequence of int
        Pool sizes K (each ``>= 1``).
    sigma_eps : float, default 0
        Label-noise std (also the noise level the baselines assume).
    n_test : int, default 4000
        Monte-Carlo test prompts for the baselines.
    include_infinite : bool, default True
        Also run ``K = ∞`` (a fresh task per pretraining prompt).
    rng : None, int or Generator
    progress : bool
        tqdm progress bar.
    sampler : {"auto", "core", "reduced"}
        How the pretraining features are streamed (`spinlens.features.stream_features`); "auto" draws the
        exact reduced law (about 3D+4 numbers a prompt) where positions are independent.

    Returns
    -------
    xarray.Dataset
        Dims ``n_tasks`` (float, ``inf`` last). Variables ``attention_icl``, ``attention_idg``,
        ``ridge_icl``, ``ridge_idg``, ``dmmse_icl``, ``dmmse_idg``, ``theory_icl``, ``theory_idg``,
        ``kappa``; at ``K = ∞`` IDG = ICL and dMMSE = ridge (its K → ∞ limit). attrs hold D, N, P, λ, σ_ε and the mapped α, τ, ρ, λ_LU.
    """
    import xarray as xr

    from spinlens.conventions import to_lu
    from spinlens.features import stream_features
    from spinlens.hamiltonian import build_hamiltonian
    from spinlens.observables import pool_error, test_error
    from spinlens.prompts import PromptDistribution
    from spinlens.solvers import solve
    from spinlens.theory.asymptotic import _point
    from spinlens.theory.baselines import dmmse_predict, ridge_predict

    d = check_int("d", d, low=1, owner="task_diversity_sweep")
    n_context = check_int("n_context", n_context, low=1, owner="task_diversity_sweep")
    n_prompts = check_int("n_prompts", n_prompts, low=1, owner="task_diversity_sweep")
    l2 = check_float("l2_strength", l2_strength, low=0.0, owner="task_diversity_sweep")
    sigma_eps = check_float("sigma_eps", sigma_eps, low=0.0, owner="task_diversity_sweep")
    n_test = check_int("n_test", n_test, low=10, owner="task_diversity_sweep")
    ks = [check_int("n_tasks", k, low=1, owner="task_diversity_sweep") for k in np.atleast_1d(n_tasks)]
    grid = [float(k) for k in ks] + ([math.inf] if include_infinite else [])
    gens = spawn(as_generator(rng), len(grid))
    base = PromptDistribution(d=d, n_context=n_context, sigma_eps=sigma_eps)
    names = ["attention_icl", "attention_idg", "ridge_icl", "ridge_idg", "dmmse_icl", "dmmse_idg", "theory_icl", "theory_idg"]
    out = {n: np.full(len(grid), np.nan) for n in names}
    iterator = range(len(grid))
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="task diversity")
    lu = None
    for i in iterator:
        K = grid[i]
        g = gens[i]
        fresh = K == math.inf
        dist = base if fresh else base.replace(n_tasks=int(K))
        pre = stream_features(dist, n_prompts, rng=g, sampler=sampler)  # one batch of prompts at a time
        H = build_hamiltonian(pre.features, pre.y, l2_strength=l2)
        W = solve(H, "exact").m
        out["attention_icl"][i] = test_error(W, base)
        test_new = base.sample(n_test, rng=g)
        y_new = test_new.y
        out["ridge_icl"][i] = np.mean((ridge_predict(test_new.Z, sigma_eps=sigma_eps) - y_new) ** 2)
        if fresh:  # no pool: IDG = ICL, and dMMSE over an infinite Gaussian pool is ridge (its K → ∞ limit)
            out["attention_idg"][i] = out["attention_icl"][i]
            for n in ("ridge_idg", "dmmse_icl", "dmmse_idg"):
                out[n][i] = out["ridge_icl"][i]
        else:
            pool = pre.pool
            out["attention_idg"][i] = pool_error(W, base, pool)
            test_pool = base.sample(n_test, rng=g, pool=pool)
            out["ridge_idg"][i] = np.mean((ridge_predict(test_pool.Z, sigma_eps=sigma_eps) - test_pool.y) ** 2)
            out["dmmse_icl"][i] = np.mean((dmmse_predict(test_new.Z, pool, sigma_eps) - y_new) ** 2)
            out["dmmse_idg"][i] = np.mean((dmmse_predict(test_pool.Z, pool, sigma_eps) - test_pool.y) ** 2)
        lu = to_lu(d, n_context, n_prompts, l2, n_tasks=None if fresh else int(K), sigma_eps=sigma_eps)
        th = _point(lu["alpha"], lu["tau"], lu["kappa"], lu["rho"], lu["lam_lu"])
        out["theory_icl"][i], out["theory_idg"][i] = th.icl_error, th.idg_error
    long = {
        "attention_icl": "linear attention (exact ridge), fresh tasks",
        "attention_idg": "linear attention (exact ridge), pool tasks",
        "ridge_icl": "Bayes ridge, fresh tasks",
        "ridge_idg": "Bayes ridge, pool tasks",
        "dmmse_icl": "dMMSE, fresh tasks",
        "dmmse_idg": "dMMSE, pool tasks",
        "theory_icl": "asymptotic theory (Lu et al.), fresh tasks",
        "theory_idg": "asymptotic theory (Lu et al.), pool tasks",
    }
    data = {n: (("n_tasks",), v, {"long_name": long[n], "units": "E[y^2]"}) for n, v in out.items()}
    data["kappa"] = (("n_tasks",), np.array(grid) / d, {"long_name": "kappa = K/D", "units": "1"})
    attrs = {"d": d, "n_context": n_context, "n_prompts": n_prompts, "l2_strength": l2, "sigma_eps": sigma_eps,
             "n_test": n_test}
    if lu is not None:
        attrs.update({(k if k == "lam_lu" else f"lu_{k}"): v for k, v in lu.items() if k != "kappa"})
    return xr.Dataset(data, coords={"n_tasks": ("n_tasks", np.array(grid), {"long_name": "task-pool size K"})},
                      attrs=attrs)


def diversity_theory_curve(ds, *, n_points: int = 200):
    """The asymptotic theory on a fine grid of K for the setting of a `task_diversity_sweep` result.

    Parameters
    ----------
    ds : xarray.Dataset
        Output of `task_diversity_sweep` (its attrs hold the Lu et al. parameters ``lu_alpha``, ``lu_tau``,
        ``lu_rho``, ``lam_lu`` and ``d``).
    n_points : int
        Grid points between the smallest and the largest finite K.

    Returns
    -------
    xarray.Dataset with ``icl_error`` and ``idg_error`` over ``n_tasks`` (K = κ·D).
    """
    import xarray as xr

    from spinlens.theory.asymptotic import learning_curve

    n_points = check_int("n_points", n_points, low=2)
    K = np.asarray(ds["n_tasks"].values, dtype=float)
    K = K[np.isfinite(K)]
    d = ds.attrs["d"]
    kk = np.geomspace(K.min() / d, K.max() / d, n_points)
    th = learning_curve(alpha=ds.attrs["lu_alpha"], tau=ds.attrs["lu_tau"], kappa=kk, rho=ds.attrs["lu_rho"],
                        lam_lu=ds.attrs["lam_lu"] if "lam_lu" in ds.attrs else ds.attrs["lu_lam"])  # lu_lam: datasets made before lam_lu
    return xr.Dataset({"icl_error": ("n_tasks", np.asarray(th.icl_error, float)),
                       "idg_error": ("n_tasks", np.asarray(th.idg_error, float))}, coords={"n_tasks": kk * d})



def diversity_run(d: int | float, n_context: int | float, n_prompts: int | float, l2_strength: float, n_tasks, *,
                  sigma_eps: float = 0.0, n_test: int | float = 4000, seed: int = 0, progress: bool = False) -> TheoryRun:
    """`task_diversity_sweep` as a `spinlens.theory.results.TheoryRun` (mode ``"diversity"``): ``table`` its rows
    (columns under their symbols), ``dataset`` the sweep, ``summary`` ``{"config": {D, N, P, lam, sigma_eps,
    seed}, "rows": [...]}``, and the figure against `diversity_theory_curve`. ``d <= 60``."""
    from spinlens.theory.results import TheoryRun, symbol_columns

    D = check_int("D", d, low=1, high=60)
    N = check_int("N", n_context, low=1)
    P = check_int("P", n_prompts, low=1)
    l2 = check_float("lam", l2_strength, low=0.0)
    sig = check_float("sigma_eps", sigma_eps, low=0.0)
    ks = [check_int("K", k, low=1) for k in n_tasks]
    n_test = check_int("n_test", n_test, low=10)
    ds = task_diversity_sweep(D, N, P, l2, ks, sigma_eps=sig, n_test=n_test, rng=seed, progress=progress)
    df = symbol_columns(ds.to_dataframe().reset_index())

    def figure():
        from spinlens.plotting.theory import plot_task_diversity

        return plot_task_diversity(ds, theory=diversity_theory_curve(ds))

    summary = {"config": {"D": D, "N": N, "P": P, "lam": l2, "sigma_eps": sig, "seed": seed},
               "rows": df.to_dict(orient="records")}
    return TheoryRun("diversity", summary, table=df, dataset=ds, make_figure=figure)
