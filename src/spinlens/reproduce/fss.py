r"""Finite-size scaling: the spin glass's exact (and TAP) test error as D grows, against the asymptotic theory.

At fixed (α, τ, κ = ∞, ρ = 0, λ_LU) the spin glass of dimension D has N = αD context pairs, P = τD² prompts
and λ = λ_LU/(D(1 + 1/N)²) (the inverse of `spinlens.conventions.to_lu`, which maps it back onto exactly
these values). For each D and seed this streams the features (reduced sampler), solves for the exact
Boltzmann mean (dense Cholesky or the matrix-free CG, `spinlens.solvers.ExactSolver`), and records the
exact ICL test error (closed form, `spinlens.observables.test_error`), wall time and peak traced memory.
Where the dense couplings are affordable (D ≤ ``tap_max_d``) it also runs `spinlens.solvers.TapSolver`
(the cavity update with the Onsager term) and records its test error and distance to the exact mean.

The extrapolation D → ∞ fits e(D) = e∞ + a/D (+ b/D² with four sizes or more) by weighted least squares
on the seed means; the gap to the theory at each D and at D = ∞ goes in the table.
"""

from __future__ import annotations

import math
import resource
import time
import tracemalloc

import numpy as np

from spinlens.conventions import lam_from_lam_lu
from spinlens.reproduce import _framework as fw

QUICK = dict(Ds=(10, 20, 40), seeds=2, tap_max_d=20)
FULL = dict(Ds=(10, 20, 40, 80, 160), seeds=(6, 5, 4, 2, 1), tap_max_d=40)


def mapped_point(D: int, alpha: float, tau: float, lam_lu: float) -> tuple[int, int, float]:
    """(N, P, λ) of the spin glass of dimension D at (α, τ, λ_LU): N = round(αD), P = round(τD²)."""
    N = max(1, int(round(alpha * D)))
    P = max(1, int(round(tau * D * D)))
    lam = lam_from_lam_lu(lam_lu, D, N)
    return N, P, lam


def extrapolate(D, mean, std, n):
    """Weighted least squares of e(D) = e∞ + a/D (+ b/D² when ≥ 4 sizes). Returns (e∞, stderr, coefficients);
    the stderr is scaled by the reduced χ² when that exceeds 1, and NaN when the fit has no degree of freedom.

    Weights are 1/sem²; a size run with one seed gets the standard deviation c/D with c the median of
    std·D over the sizes with several seeds."""
    D, mean, std = np.asarray(D, float), np.asarray(mean, float), np.asarray(std, float)
    n = np.asarray(n, float)
    # sizes with a single seed have no std: model it as c/D from the others (the spread falls as 1/D)
    known = np.isfinite(std) & (n > 1) & (std > 0)
    if known.any():
        c = float(np.median(std[known] * D[known]))
        std = np.where(known, std, c / D)
    sem = std / np.sqrt(np.maximum(n, 1))
    ok = np.isfinite(mean)
    D, mean, sem = D[ok], mean[ok], sem[ok]
    floor = 1e-4 * np.abs(mean).max()
    w = 1.0 / np.maximum(np.nan_to_num(sem, nan=floor), floor)
    order = 2 if len(D) >= 4 else 1
    X = np.stack([np.ones_like(D)] + [D ** -(k + 1) for k in range(order)], axis=1)
    coef, *_ = np.linalg.lstsq(X * w[:, None], mean * w, rcond=None)
    cov = np.linalg.pinv((X * w[:, None]).T @ (X * w[:, None]))
    # the seeds' spread alone understates the error when the model e∞ + a/D does not fit the sizes (two seeds
    # give a poor sem): scale by the reduced χ² when it exceeds 1; with no degree of freedom left, no error bar
    dof = len(D) - X.shape[1]
    if dof <= 0:
        return float(coef[0]), float("nan"), [float(c) for c in coef[1:]]
    chi2 = float(np.sum((w * (mean - X @ coef)) ** 2))
    cov = cov * max(1.0, chi2 / dof)
    return float(coef[0]), float(math.sqrt(max(cov[0, 0], 0.0))), [float(c) for c in coef[1:]]


def compute(Ds, seeds, *, alpha=1.0, tau=10.0, lam_lu=1.0, tap_max_d=20, rng=0, progress=True):
    """The scaling data as an ``xarray.Dataset`` over (D, seed); NaN where a seed or a method was not run."""
    import xarray as xr

    from spinlens import observables as ob
    from spinlens.conventions import to_lu
    from spinlens.features import stream_features
    from spinlens.hamiltonian import build_hamiltonian
    from spinlens.prompts import PromptDistribution
    from spinlens.random import spawn
    from spinlens.solvers import ExactSolver, TapSolver

    Ds = [int(d) for d in Ds]
    seeds = [int(seeds)] * len(Ds) if np.ndim(seeds) == 0 else [int(s) for s in seeds]
    S = max(seeds)
    shape = (len(Ds), S)
    names = ["exact_error", "tap_error", "tap_distance", "tap_converged", "elapsed_s", "tap_elapsed_s", "peak_gib",
             "cg_n_iter"]
    out = {k: np.full(shape, np.nan) for k in names}
    NPl = [mapped_point(D, alpha, tau, lam_lu) for D in Ds]
    iterator = [(i, s) for i in range(len(Ds)) for s in range(seeds[i])]
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="finite-size scaling")
    for i, s in iterator:
        D = Ds[i]
        N, P, lam = NPl[i]
        dist = PromptDistribution(d=D, n_context=N)
        g_feat, g_solve = spawn(np.random.SeedSequence([int(rng), D, s]), 2)
        tracemalloc.start()
        t0 = time.perf_counter()
        fs = stream_features(dist, P, rng=g_feat, sampler="reduced")
        H = build_hamiltonian(fs.features, fs.y, l2_strength=lam)
        r = ExactSolver(n_probes=0).solve(H, rng=g_solve)
        out["elapsed_s"][i, s] = time.perf_counter() - t0
        out["peak_gib"][i, s] = tracemalloc.get_traced_memory()[1] / 1024**3
        tracemalloc.stop()
        out["exact_error"][i, s] = ob.test_error(r.m, dist)
        out["cg_n_iter"][i, s] = r.n_iter
        if D <= tap_max_d:
            t0 = time.perf_counter()
            rt = TapSolver(tol=1e-20, max_iter=20000, damping=0.9).solve(H, rng=g_solve, warn=False)
            out["tap_elapsed_s"][i, s] = time.perf_counter() - t0
            out["tap_converged"][i, s] = float(rt.converged)
            out["tap_distance"][i, s] = rt.extras["exact_distance"]
            out["tap_error"][i, s] = ob.test_error(rt.m, dist) if rt.converged else np.nan
        del fs, H
    lu = to_lu(Ds[0], *NPl[0][:2], NPl[0][2])
    from spinlens.theory.asymptotic import learning_curve_point

    th = learning_curve_point(alpha, tau, math.inf, 0.0, lam_lu)
    dims = ("D", "seed")
    long = {"exact_error": "ICL test error of the exact Boltzmann mean", "tap_error": "ICL test error of the TAP fixed point",
            "tap_distance": "|m_TAP − m_exact| / |m_exact|", "tap_converged": "TAP converged (1) or not (0)",
            "elapsed_s": "wall time: features + exact solve", "tap_elapsed_s": "wall time of the TAP solve",
            "peak_gib": "peak traced memory of features + exact solve", "cg_n_iter": "CG iterations (0: dense Cholesky)"}
    units = {"elapsed_s": "s", "tap_elapsed_s": "s", "peak_gib": "GiB"}
    data = {k: (dims, v, {"long_name": long[k], "units": units.get(k, "1")}) for k, v in out.items()}
    coords = {"D": ("D", np.array(Ds), {"long_name": "token dimension D"}), "seed": ("seed", np.arange(S))}
    extra = {"N": ("D", np.array([p[0] for p in NPl])), "P": ("D", np.array([p[1] for p in NPl])),
             "lam": ("D", np.array([p[2] for p in NPl])), "n_seeds": ("D", np.array(seeds))}
    ds = xr.Dataset(data, coords={**coords, **extra},
                    attrs={"alpha": alpha, "tau": tau, "kappa": "inf", "rho": 0.0, "lam_lu": lam_lu,
                           "theory_icl_error": th.icl_error, "mapped_check_alpha": lu["alpha"], "mapped_check_tau": lu["tau"],
                           "mapped_check_lam_lu": lu["lam_lu"], "max_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2})
    return ds


def run(out_dir, quick: bool = True, seed: int = 0) -> dict:
    """Quick: D ∈ {10, 20, 40}, 2 seeds, TAP up to D = 20 (seconds); full: D ∈ {10, 20, 40, 80, 160}, 6…1 seeds,
    TAP up to D = 40 (minutes on 2 cores; D = 160 has 25 921 spins and P = 256 000)."""
    import matplotlib.pyplot as plt

    from spinlens.plotting.scaling import plot_finite_size
    from spinlens.plotting.style import paper_style

    cfg = QUICK if quick else FULL
    alpha, tau, lam_lu = 1.0, 10.0, 1.0
    ds = compute(cfg["Ds"], cfg["seeds"], alpha=alpha, tau=tau, lam_lu=lam_lu, tap_max_d=cfg["tap_max_d"], rng=seed)
    th = float(ds.attrs["theory_icl_error"])
    from spinlens.verdict import mean_sd

    mean, sd = mean_sd(ds["exact_error"].transpose("D", "seed").values, axis=1, skipna=True)
    n = ds["n_seeds"].values
    e_inf, e_err, coef = extrapolate(ds["D"].values, mean, sd, n)
    tap_mean, tap_sd = mean_sd(ds["tap_error"].transpose("D", "seed").values, axis=1, skipna=True)
    fw.save_dataset(ds, out_dir, "data")
    Ds = [int(d) for d in ds["D"].values]
    cols = {"D": Ds, "N": ds["N"].values, "P": ds["P"].values, "lam": ds["lam"].values, "n_seeds": n,
            "exact_error_mean": mean, "exact_error_sd": sd, "tap_error_mean": tap_mean, "theory": [th] * len(Ds),
            "gap": mean - th, "relative_gap": (mean - th) / th,
            "elapsed_s_mean": ds["elapsed_s"].mean("seed", skipna=True).values,
            "peak_gib_max": ds["peak_gib"].max("seed", skipna=True).values,
            "cg_n_iter": ds["cg_n_iter"].max("seed", skipna=True).values,
            "tap_distance_max": ds["tap_distance"].max("seed", skipna=True).values}
    fw.save_columns(cols, out_dir, "gap_table")
    with paper_style():
        fig, ax = plt.subplots(figsize=(5.5, 4))
        curves = {"exact Boltzmann mean": (mean, sd)}
        if np.isfinite(tap_mean).any():
            curves["TAP fixed point"] = (tap_mean, tap_sd)
        plot_finite_size(ds["D"].values, curves, theory=th, extrapolated=(e_inf, e_err, coef),
                         title=f"finite-size scaling at α={alpha:g}, τ={tau:g}, κ=∞, λ_LU={lam_lu:g}", ax=ax)
        fig.tight_layout()
        fw.save_figure(fig, out_dir, "fss")
    rows = fw.comparison_rows("test error vs asymptotic theory", "D", Ds + ["inf"], [th] * (len(Ds) + 1),
                              list(mean) + [e_inf])
    per_d = {str(D): {"elapsed_s": float(cols["elapsed_s_mean"][k]), "peak_gib": float(cols["peak_gib_max"][k]),
                      "cg_n_iter": float(cols["cg_n_iter"][k]), "gap": float(cols["gap"][k])}
             for k, D in enumerate(Ds)}
    return {
        "parameters": {"alpha": alpha, "tau": tau, "kappa": "inf", "rho": 0.0, "lam_lu": lam_lu, "D": Ds,
                       "seeds": [int(x) for x in n], "tap_max_d": cfg["tap_max_d"], "sampler": "reduced"},
        "comparison": rows,
        "summary": {"theory_icl_error": th, "extrapolated_icl_error": e_inf, "extrapolated_stderr": e_err,
                    "extrapolated_gap": e_inf - th, "largest_D_gap": float(mean[-1] - th), "per_D": per_d,
                    "tap_max_distance": float(np.nanmax(ds["tap_distance"].values)) if np.isfinite(ds["tap_distance"].values).any() else None},
        "notes": ["'paper' in the table is the asymptotic theory (Lu et al.) at the mapped point, the same for every D; "
                  "the row D=inf is the extrapolation e(D) = e∞ + a/D (+ b/D²).",
                  "TAP needs the dense couplings ((D+1)^4 numbers): it runs up to D = tap_max_d only."],
        "headline_quantity": "test error vs asymptotic theory",
    }
