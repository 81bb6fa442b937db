r"""Phase diagram of the cavity solution over task-pool size K and context length N.

For every cell ``(K, N)`` of a grid and every repeat, this draws ``P`` pretraining prompts whose tasks come
from a finite pool of ``K`` Gaussian tasks (`spinlens.prompts.PromptDistribution` with ``n_tasks=K``),
builds the Hamiltonian, runs the paper's cavity message passing (`spinlens.solvers.solve(H, "cavity")`)
and records, for the cavity mean ``W``:

* ``icl_error``: the expected error on fresh tasks (`spinlens.observables.test_error`, exact);
* ``pool_error``: the expected error on the pool's tasks with fresh inputs (`observables.pool_error`, exact);
* ``g_task = icl_error - pool_error``: the task-generalisation gap (memorisation when large);
* ``contrast_ratio``: cosine of ``W`` with the identity (`observables.contrast_ratio`);
* ``converged_fraction``: the fraction of repeats whose cavity iteration converged.

Averages run over the converged repeats only; a cell with no converged repeat is NaN (never a silent
number from diverged messages). The same cell is also solved exactly (``exact_*``: the Boltzmann mean =
ridge solution; a check of the cavity fixed point, and the only solution where the cavity diverges) and the
asymptotic theory of Lu et al. is evaluated at the mapped parameters (`spinlens.conventions.to_lu`,
κ = K/D): ``theory_icl_error``, ``theory_idg_error``, ``theory_g_task``.

The memorisation-to-ICL transition sits near κ = K/D ≈ 1: for K ≪ D the solution fits the pool
(small pool error, ICL error near the no-context value), for K ≫ D it generalises to fresh tasks.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from spinlens.errors import InvalidParameterError, check_float, check_int
from spinlens.random import RNGLike, as_generator

if TYPE_CHECKING:
    from spinlens.theory.results import TheoryRun

__all__ = ["task_pool_phase_diagram", "phase_run"]

_OWNER = "task_pool_phase_diagram"


def _values(name: str, values) -> list[int]:
    vals = [check_int(name, v, low=1, owner=_OWNER) for v in np.atleast_1d(np.asarray(values, dtype=object))]
    if not vals:
        raise InvalidParameterError(f"The '{name}' parameter of {_OWNER} must list at least one integer >= 1.")
    if len(set(vals)) != len(vals):
        raise InvalidParameterError(f"The '{name}' parameter of {_OWNER} has repeated values: {vals}.")
    return vals


def task_pool_phase_diagram(
    d: int,
    n_context_values,
    n_tasks_values,
    n_prompts: int,
    l2_strength: float,
    *,
    beta: float = 100.0,
    damping: float = 0.9,
    max_iter: int = 100,
    tol: float = 1e-6,
    n_repeats: int = 1,
    sigma_eps: float = 0.0,
    exact: bool = True,
    rng: RNGLike = None,
    progress: bool = False,
):
    """Cavity solution of the spin glass over a (K, N) grid: ICL error, pool error, g_task, contrast ratio.

    Parameters
    ----------
    d : int
        Token dimension D (``>= 1``); the Hamiltonian has ``(D+1)²`` spins and the cavity solver needs
        the dense couplings, so keep ``D <= 40``.
    n_context_values : sequence of int
        Context lengths N (each ``>= 1``, distinct).
    n_tasks_values : sequence of int
        Task-pool sizes K (each ``>= 1``, distinct).
    n_prompts : int
        Pretraining prompts P per cell (``>= 1``).
    l2_strength : float
        λ of the Hamiltonian (``>= 0``).
    beta, damping, max_iter, tol : float, float, int, float
        Cavity settings (`spinlens.solvers.CavitySolver`; paper: 100, 0.9, 100, 1e-6).
    n_repeats : int, default 1
        Independent draws of pool, prompts and initial messages per cell (``>= 1``).
    sigma_eps : float, default 0
        Label-noise std (``>= 0``).
    exact : bool, default True
        Also solve each cell exactly (ridge) and store ``exact_icl_error``, ``exact_pool_error``.
    rng : None, int or Generator
        Seed. Repeat ``r`` uses the same seed in every cell, and pools are nested in K (the first K rows
        of a larger pool), so neighbouring cells share random numbers.
    progress : bool
        tqdm progress bar over the cells.

    Returns
    -------
    xarray.Dataset
        Dims ``(n_tasks, n_context)`` (repeats averaged) and ``repeat`` for the per-repeat variables.
        Variables: ``icl_error``, ``pool_error``, ``g_task``, ``contrast_ratio`` (means over converged
        repeats, NaN where none converged), ``converged_fraction``, ``diverged_fraction`` (runs whose
        cavity variances ended non-positive or non-finite; the rest of the non-converged runs hit
        ``max_iter``), ``converged`` (bool, per repeat),
        ``icl_error_repeats``, ``pool_error_repeats``, ``contrast_ratio_repeats`` (NaN where not
        converged), ``n_iter``, ``exact_icl_error``, ``exact_pool_error``, ``exact_g_task``,
        ``exact_contrast_ratio`` (if ``exact``; all repeats),
        ``theory_icl_error``, ``theory_idg_error``, ``theory_g_task``, ``theory_converged``; coordinate
        ``kappa = K/D`` on ``n_tasks``. attrs hold the fixed parameters and the mapped ``tau``, ``rho``.

    Raises
    ------
    InvalidParameterError
        On parameters out of range.

    Examples
    --------
    >>> ds = task_pool_phase_diagram(4, [8], [1, 64], 2000, 0.01, rng=0)
    >>> g = ds.exact_g_task.sel(n_context=8)
    >>> bool(g.sel(n_tasks=1) > 0.5 > 0.05 > abs(g.sel(n_tasks=64)))   # memorises 1 task, not 64
    True
    >>> ds.converged_fraction.sel(n_tasks=1, n_context=8).item()   # the cavity diverges at K = 1, λ = 0.01
    0.0
    """
    import xarray as xr

    from spinlens.conventions import to_lu
    from spinlens.errors import SolverDidNotConvergeWarning
    from spinlens.hamiltonian import build_hamiltonian
    from spinlens.observables import contrast_ratio, pool_error, test_error
    from spinlens.prompts import PromptDistribution
    from spinlens.solvers import solve
    from spinlens.theory.asymptotic import learning_curve_point

    d = check_int("d", d, low=1, high=40, owner=_OWNER)
    ns = _values("n_context_values", n_context_values)
    ks = _values("n_tasks_values", n_tasks_values)
    n_prompts = check_int("n_prompts", n_prompts, low=1, owner=_OWNER)
    l2 = check_float("l2_strength", l2_strength, low=0.0, owner=_OWNER)
    beta = check_float("beta", beta, low=0.0, low_open=True, owner=_OWNER)
    damping = check_float("damping", damping, low=0.0, high=1.0, high_open=True, owner=_OWNER)
    max_iter = check_int("max_iter", max_iter, low=1, owner=_OWNER)
    tol = check_float("tol", tol, low=0.0, low_open=True, owner=_OWNER)
    n_repeats = check_int("n_repeats", n_repeats, low=1, owner=_OWNER)
    sigma_eps = check_float("sigma_eps", sigma_eps, low=0.0, owner=_OWNER)

    # one seed triple (pool, prompts, cavity init) per repeat, reused in every cell
    root = np.random.SeedSequence(int(as_generator(rng).integers(0, 2**63 - 1)))
    seeds = [s.spawn(3) for s in root.spawn(n_repeats)]
    nK, nN, R = len(ks), len(ns), n_repeats
    per = {n: np.full((nK, nN, R), np.nan) for n in ("icl", "pool", "cr", "n_iter", "ex_icl", "ex_pool", "ex_cr")}
    conv = np.zeros((nK, nN, R), dtype=bool)
    bad = np.zeros((nK, nN, R), dtype=bool)
    th = {n: np.full((nK, nN), np.nan) for n in ("icl", "idg", "g")}
    th_ok = np.zeros((nK, nN), dtype=bool)

    cells = [(i, j) for i in range(nK) for j in range(nN)]
    iterator = cells
    if progress:
        from spinlens.progress import bar

        iterator = bar(cells, desc="phase diagram (K, N)", unit="cell")  # on a terminal
    for i, j in iterator:
        K, N = ks[i], ns[j]
        dist = PromptDistribution(d=d, n_context=N, sigma_eps=sigma_eps, n_tasks=K)
        base = dist.replace(n_tasks=None)
        for r in range(R):
            s_pool, s_prompts, s_init = seeds[r]
            pool = dist.sample_pool(rng=np.random.default_rng(s_pool))
            prompts = dist.sample(n_prompts, rng=np.random.default_rng(s_prompts), pool=pool)
            H = build_hamiltonian(prompts, l2_strength=l2)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SolverDidNotConvergeWarning)
                with np.errstate(all="ignore"):
                    res = solve(H, "cavity", beta=beta, rng=np.random.default_rng(s_init), damping=damping,
                                max_iter=max_iter, tol=tol, compare_exact=False)
            W = np.asarray(res.W, dtype=float)
            ok = bool(res.converged) and bool(np.all(np.isfinite(W)))
            conv[i, j, r] = ok
            v = np.asarray(res.v, dtype=float)
            bad[i, j, r] = not (np.all(np.isfinite(v)) and np.all(v > 0) and np.all(np.isfinite(W)))
            per["n_iter"][i, j, r] = res.n_iter
            if ok:
                per["icl"][i, j, r] = test_error(W, base)
                per["pool"][i, j, r] = pool_error(W, base, pool)
                per["cr"][i, j, r] = contrast_ratio(W)
            if exact:
                We = solve(H, "exact").W
                per["ex_icl"][i, j, r] = test_error(We, base)
                per["ex_pool"][i, j, r] = pool_error(We, base, pool)
                per["ex_cr"][i, j, r] = contrast_ratio(We)
        lu = to_lu(d, N, n_prompts, l2, n_tasks=K, sigma_eps=sigma_eps)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SolverDidNotConvergeWarning)
            t = learning_curve_point(**lu)
        th["icl"][i, j], th["idg"][i, j], th["g"][i, j], th_ok[i, j] = t.icl_error, t.idg_error, t.g_task, t.converged

    def _mean(a):
        n = np.sum(np.isfinite(a), axis=-1)
        s = np.nansum(a, axis=-1)
        return np.where(n > 0, s / np.maximum(n, 1), np.nan)

    icl, pool_m, cr = _mean(per["icl"]), _mean(per["pool"]), _mean(per["cr"])
    dims, dims_r = ("n_tasks", "n_context"), ("n_tasks", "n_context", "repeat")
    E = {"units": "E[y^2]"}
    data = {
        "icl_error": (dims, icl, {"long_name": "ICL error (fresh tasks), cavity", **E}),
        "pool_error": (dims, pool_m, {"long_name": "pool error (pretraining tasks), cavity", **E}),
        "g_task": (dims, _mean(per["icl"] - per["pool"]), {"long_name": "g_task = ICL - pool error, cavity", **E}),
        "contrast_ratio": (dims, cr, {"long_name": "contrast ratio <W, I>/(|W||I|), cavity", "units": "1"}),
        "converged_fraction": (dims, conv.mean(axis=-1), {"long_name": "fraction of converged cavity runs",
                                                          "units": "1"}),
        "diverged_fraction": (dims, bad.mean(axis=-1), {
            "long_name": "fraction of cavity runs ending with non-positive or non-finite variances", "units": "1"}),
        "converged": (dims_r, conv, {"long_name": "cavity converged"}),
        "icl_error_repeats": (dims_r, per["icl"], {"long_name": "ICL error per repeat (NaN: not converged)", **E}),
        "pool_error_repeats": (dims_r, per["pool"], {"long_name": "pool error per repeat (NaN: not converged)", **E}),
        "contrast_ratio_repeats": (dims_r, per["cr"], {"long_name": "contrast ratio per repeat", "units": "1"}),
        "n_iter": (dims_r, per["n_iter"], {"long_name": "cavity iterations", "units": "1"}),
        "theory_icl_error": (dims, th["icl"], {"long_name": "asymptotic theory (Lu et al.), ICL error", **E}),
        "theory_idg_error": (dims, th["idg"], {"long_name": "asymptotic theory (Lu et al.), pool (IDG) error", **E}),
        "theory_g_task": (dims, th["g"], {"long_name": "asymptotic theory g_task", **E}),
        "theory_converged": (dims, th_ok, {"long_name": "theory fixed point found"}),
    }
    if exact:
        data["exact_icl_error"] = (dims, per["ex_icl"].mean(axis=-1), {"long_name": "ICL error, exact ridge", **E})
        data["exact_pool_error"] = (dims, per["ex_pool"].mean(axis=-1), {"long_name": "pool error, exact ridge", **E})
        data["exact_g_task"] = (dims, (per["ex_icl"] - per["ex_pool"]).mean(axis=-1),
                                {"long_name": "g_task, exact ridge", **E})
        data["exact_contrast_ratio"] = (dims, per["ex_cr"].mean(axis=-1),
                                        {"long_name": "contrast ratio, exact ridge", "units": "1"})
    lu = to_lu(d, ns[0], n_prompts, l2, n_tasks=ks[0], sigma_eps=sigma_eps)
    coords = {
        "n_tasks": ("n_tasks", np.array(ks), {"long_name": "task-pool size K"}),
        "n_context": ("n_context", np.array(ns), {"long_name": "context length N"}),
        "repeat": ("repeat", np.arange(R)),
        "kappa": ("n_tasks", np.array(ks, dtype=float) / d, {"long_name": "kappa = K/D"}),
        "alpha": ("n_context", np.array(ns, dtype=float) / d, {"long_name": "alpha = N/D"}),
    }
    attrs = {"d": d, "n_prompts": n_prompts, "l2_strength": l2, "beta": beta, "damping": damping,
             "max_iter": max_iter, "tol": tol, "n_repeats": R, "sigma_eps": sigma_eps, "solver": "cavity",
             "lu_tau": lu["tau"], "lu_rho": lu["rho"]}
    return xr.Dataset(data, coords=coords, attrs=attrs)


_PHASE_COLUMNS = ("icl_error", "pool_error", "g_task", "contrast_ratio", "converged_fraction", "exact_icl_error",
                  "exact_pool_error", "exact_g_task", "theory_icl_error", "theory_idg_error", "theory_g_task")


def phase_run(d: int | float, n_context_values, n_tasks_values, n_prompts: int | float, l2_strength: float, *,
              beta: float = 100.0, damping: float = 0.9, max_iter: int | float = 100, n_repeats: int | float = 2,
              sigma_eps: float = 0.0, exact: bool = True, seed: int = 0, progress: bool = False) -> TheoryRun:
    """`task_pool_phase_diagram` as a `spinlens.theory.results.TheoryRun` (mode ``"phase"``), ``d <= 40``.

    ``table``: one row per (K, N) cell with ``K, N, kappa, alpha`` and the averaged errors; ``dataset``: the
    diagram; ``summary``: ``{"config": {...}, "rows": [...]}``; ``record``: the grid, ``elapsed_s`` and the
    one-line ``summary`` (cells, cells with a converged cavity run, share of converged runs, seconds);
    ``n_bad`` / ``n_total``: cavity runs that did not converge / all.
    """
    import time

    from spinlens.theory.results import TheoryRun, symbol_columns

    D = check_int("D", d, low=1, high=40)
    ns, ks = list(n_context_values), list(n_tasks_values)
    P = check_int("P", n_prompts, low=1)
    l2 = check_float("lam", l2_strength, low=0.0)
    sig = check_float("sigma_eps", sigma_eps, low=0.0)
    beta = check_float("beta", beta, low=0.0, low_open=True)
    damping = check_float("damping", damping, low=0.0, high=1.0, high_open=True)
    max_iter = check_int("max_iter", max_iter, low=1)
    reps = check_int("repeats", n_repeats, low=1, high=1000)
    t0 = time.perf_counter()
    ds = task_pool_phase_diagram(D, ns, ks, P, l2, beta=beta, damping=damping, max_iter=max_iter, n_repeats=reps,
                                 sigma_eps=sig, exact=exact, rng=seed, progress=progress)
    seconds = time.perf_counter() - t0
    cols = [v for v in _PHASE_COLUMNS if v in ds]
    df = ds[cols].to_dataframe().reset_index()
    df = symbol_columns(df[["n_tasks", "n_context", "kappa", "alpha"] + cols])
    n_conv = int((ds.converged_fraction.values > 0).sum())
    line = (f"{ds.converged_fraction.size} cells, {n_conv} with a converged cavity run, "
            f"{float(ds.converged.values.mean()):.0%} of runs converged, {seconds:.1f} s")
    summary = {"config": {"D": D, "N": ns, "K": ks, "P": P, "lam": l2, "sigma_eps": sig, "beta": beta,
                          "damping": damping, "max_iter": max_iter, "repeats": reps, "seed": seed},
               "rows": df.to_dict(orient="records")}

    def figure():
        from spinlens.plotting.theory import plot_phase_diagram

        return plot_phase_diagram(ds)

    n_bad = int((~ds.converged.values.astype(bool)).sum())
    return TheoryRun("phase", summary, table=df, dataset=ds, converged=n_bad == 0, message=line, n_bad=n_bad,
                     n_total=int(ds.converged.size), make_figure=figure,
                     record={"grid": {"D": D, "N": ns, "K": ks}, "elapsed_s": seconds, "summary": line})
