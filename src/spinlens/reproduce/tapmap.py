r"""Where the cavity update converges, with and without the Onsager reaction term, over (N, P) at D = 20.

Fig 4a's setting (D = 20, λ = 1, β = 100, θ = 0.9, random initial messages, 100 steps, tol 1e-6): one sweep
runs the paper's update (`spinlens.solvers.CavitySolver`), one the TAP update (`spinlens.solvers.TapSolver`,
the same plus −β² m_i Σ_j J_ij² v_j in the numerator), over the same points and seeds (`spinlens.sweeps`).
The maps are the fraction of seeds that converged and, for TAP, the distance to the exact Boltzmann mean
(≈ 0 wherever it converged: its fixed points are the exact mean), beside the paper's update's distance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spinlens.reproduce import _framework as fw
from spinlens.reproduce.fig4a import QUICK_N, QUICK_P, np_grid_sweeps, np_plane


def compute(n_context_values, n_prompts_values, *, d=20, l2_strength=1.0, beta=100.0, damping=0.9, repeats=2,
            max_iter=100, tol=1e-6, tight_max_iter=3000, tight_tol=1e-20, rng=0, sweep_dir=None, jobs=None,
            progress=True):
    """Converged fraction and distance to the exact mean of the cavity and TAP updates on the (N, P) grid.

    Returns an ``xarray.Dataset`` over (n_context, n_prompts) with ``converged_cavity``, ``converged_tap``
    (fractions of ``repeats`` seeds) and ``exact_distance_cavity``, ``exact_distance_tap`` (median over
    converged seeds; NaN where none converged); with ``tight_max_iter`` also ``converged_tap_tight`` and
    ``exact_distance_tap_tight``: TAP run to ``tight_tol`` (at most ``tight_max_iter`` steps).
    """
    import xarray as xr

    runs = {m: (m, ["exact_distance", "n_iter"], dict(max_iter=max_iter, tol=tol)) for m in ("cavity", "tap")}
    if tight_max_iter:
        runs["tap_tight"] = ("tap", ["exact_distance", "n_iter"], dict(max_iter=tight_max_iter, tol=tight_tol))
    res = np_grid_sweeps(n_context_values, n_prompts_values, runs, d=d, l2_strength=l2_strength, beta=beta,
                         damping=damping, repeats=repeats, rng=rng, sweep_dir=sweep_dir, jobs=jobs, progress=progress,
                         prefix="spinlens-tapmap-")
    dims = ("n_context", "n_prompts")
    data = {}
    for method, ds in res.items():
        conv = np_plane(ds["converged"]).astype(bool)
        dist = np.where(conv, np_plane(ds["exact_distance"]).reshape(conv.shape), np.nan)
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                med = np.nanmedian(dist, axis=2)
        data[f"converged_{method}"] = (dims, conv.mean(axis=2),
                                       {"long_name": f"fraction of seeds where the {method} update converged", "units": "1"})
        data[f"exact_distance_{method}"] = (dims, med, {"long_name": f"{method}: |m − m_exact|/|m_exact| (median)", "units": "1"})
    return xr.Dataset(
        data,
        coords={"n_context": ("n_context", np.asarray(n_context_values), {"long_name": "context length N"}),
                "n_prompts": ("n_prompts", np.asarray(n_prompts_values), {"long_name": "number of prompts P"})},
        attrs={"d": d, "l2_strength": l2_strength, "beta": beta, "damping": damping, "repeats": repeats,
               "max_iter": max_iter, "tol": tol},
    )


def run(out_dir, quick: bool = True, seed: int = 0) -> dict:
    """Quick: Fig 4a's quick grid (N ∈ {10, 20, 50, 100} × 11 P values), 2 seeds; full: Fig 4a's 50 × 50 grid, 3 seeds."""
    import matplotlib.pyplot as plt

    from spinlens.plotting.phase import plot_phase_map
    from spinlens.plotting.style import paper_style

    Ns: tuple[int, ...] | np.ndarray
    Ps: tuple[int, ...] | np.ndarray
    if quick:
        Ns, Ps, repeats = QUICK_N, QUICK_P, 2
    else:
        Ns = np.linspace(2, 100, 50).round().astype(int)
        Ps = np.linspace(20, 1000, 50).round().astype(int)
        repeats = 3
    kw = dict(d=20, l2_strength=1.0, beta=100.0, damping=0.9)
    ds = compute(Ns, Ps, repeats=repeats, rng=seed, sweep_dir=None if quick else Path(out_dir) / "sweeps", **kw)
    fw.save_dataset(ds, out_dir, "data")
    with paper_style():
        fig, axes = plt.subplots(2, 3, figsize=(15, 7.5))
        plot_phase_map(ds["converged_cavity"], x="n_context", y="n_prompts", vmin=0, vmax=1,
                       title="paper's update (Fig 4a's mask): converged fraction", ax=axes[0, 0])
        plot_phase_map(ds["converged_tap"], x="n_context", y="n_prompts", vmin=0, vmax=1,
                       title="TAP update: converged fraction", ax=axes[0, 1])
        lg = lambda da: np.log10(da.clip(min=1e-16))  # noqa: E731
        plot_phase_map(ds["converged_tap_tight"], x="n_context", y="n_prompts", vmin=0, vmax=1,
                       title="TAP to tol 1e-20 (3000 steps): converged fraction", ax=axes[0, 2])
        for ax, m in ((axes[1, 0], "cavity"), (axes[1, 1], "tap"), (axes[1, 2], "tap_tight")):
            da = lg(ds[f"exact_distance_{m}"]).rename(f"log10 distance ({m})")
            da.attrs["long_name"] = f"log10 |m − m_exact|/|m_exact| ({m})"
            plot_phase_map(da, x="n_context", y="n_prompts", vmin=-12, vmax=0,
                           title=f"{m.replace('_', ' ')}: distance to the exact mean (blank: not converged)", ax=ax)
        fig.suptitle("Convergence of the cavity updates, D=20, λ=1, β=100, θ=0.9 (Fig 4a's rule: 100 steps, tol 1e-6)")
        fig.tight_layout()
        fw.save_figure(fig, out_dir, "tapmap")
    cav, tap = ds["converged_cavity"], ds["converged_tap"]
    return {
        "parameters": {**kw, "n_context": [int(x) for x in Ns], "n_prompts": [int(x) for x in Ps], "repeats": repeats,
                       "max_iter": 100, "tol": 1e-6},
        "summary": {"converged_fraction_cavity": float(cav.mean()), "converged_fraction_tap": float(tap.mean()),
                    "cells_tap_only": int(((tap > 0) & (cav == 0)).sum()), "cells_cavity_only": int(((cav > 0) & (tap == 0)).sum()),
                    "median_distance_tap": float(np.nanmedian(ds["exact_distance_tap"].values)),
                    "median_distance_cavity": float(np.nanmedian(ds["exact_distance_cavity"].values)),
                    "converged_fraction_tap_tight": float(ds["converged_tap_tight"].mean()),
                    "max_distance_tap_tight": float(np.nanmax(ds["exact_distance_tap_tight"].values))},
        "notes": ["With Fig 4a's loose rule (tol 1e-6 on the mean squared change, damping 0.9) both updates stop far "
                  "from their fixed points; run to tol 1e-20, TAP's fixed point is the exact mean (right column), the "
                  "paper's update's is not."],
    }
