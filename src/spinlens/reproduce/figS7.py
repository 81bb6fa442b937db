"""Fig S7: fraction of zero modes of the Hessian SᵀS/P against P, for several D (N=100).

Almost surely rank(SᵀS) = min(P, D(D+1)), so the fraction is 1 − min(P, D(D+1))/(D+1)²: near 1 for
small P, falling to the floor 1/(D+1) (W's dead last column) once P ≥ D(D+1). The measured fraction
counts eigenvalues below 1e-9 times the largest (`spinlens.observables.zero_mode_fraction`).
"""

from __future__ import annotations

import numpy as np

from spinlens.reproduce import _framework as fw
from spinlens.reproduce import paper


def prompt_grid(d: int, n_points: int) -> np.ndarray:
    """Values of P from about D/2 to 3·D(D+1), log-spaced, with D(D+1) and its neighbours included."""
    k = d * (d + 1)
    grid = np.geomspace(max(2, d // 2), 3 * k, n_points).round().astype(int)
    return np.unique(np.r_[grid, k - 1, k, k + 1])


def compute(ds_values, *, n_context=100, n_points=12, rng=0):
    """Measured and predicted zero-mode fractions. Returns an xarray.Dataset over (d, n_prompts)."""
    import xarray as xr

    from spinlens import PromptDistribution, build_hamiltonian
    from spinlens.observables import expected_zero_mode_fraction, hessian_spectrum, zero_mode_fraction
    from spinlens.random import spawn

    grids = {d: prompt_grid(d, n_points) for d in ds_values}
    allP = np.unique(np.concatenate(list(grids.values())))
    frac = np.full((len(ds_values), allP.size), np.nan)
    pred = np.full_like(frac, np.nan)
    jobs = [(i, d, P) for i, d in enumerate(ds_values) for P in grids[d]]
    streams = spawn(rng, len(jobs))
    for k, (i, d, P) in enumerate(fw.progress(jobs, desc="figS7")):
        j = int(np.searchsorted(allP, P))
        H = build_hamiltonian(PromptDistribution(d=d, n_context=n_context).sample(int(P), rng=streams[k]), l2_strength=0.0)
        frac[i, j] = zero_mode_fraction(hessian_spectrum(H))
        pred[i, j] = expected_zero_mode_fraction(d, int(P))
    return xr.Dataset(
        {
            "zero_mode_fraction": (("d", "n_prompts"), frac, {"long_name": "zero-mode fraction (measured)"}),
            "zero_mode_fraction_expected": (("d", "n_prompts"), pred,
                                            {"long_name": "1 − min(P, D(D+1))/(D+1)²"}),
        },
        coords={"d": ("d", np.asarray(ds_values), {"long_name": "token dimension D"}),
                "n_prompts": ("n_prompts", allP, {"long_name": "number of prompts P"})},
        attrs={"n_context": n_context},
    )


def run(out_dir, quick: bool = True, seed: int = 0) -> dict:
    """Quick: D ∈ {5, 10, 15}; full: D ∈ {10, 20, 30, 40} (the paper's), N = 100."""
    import matplotlib.pyplot as plt

    from spinlens.plotting.spectrum import plot_zero_mode_fraction
    from spinlens.plotting.style import paper_style

    ds_values = (5, 10, 15) if quick else paper.FIGS7["d"]
    n_points = 10 if quick else 16
    ds = compute(ds_values, n_context=paper.FIGS7["n_context"], n_points=n_points, rng=seed)
    fw.save_dataset(ds, out_dir, "data")
    with paper_style():
        fig, ax = plt.subplots(figsize=(5.2, 3.6))
        plot_zero_mode_fraction(
            ds["zero_mode_fraction"], x="n_prompts", hue="d",
            floors={d: 1 / (d + 1) for d in ds_values}, thresholds={d: d * (d + 1) for d in ds_values},
            title="Fig S7: zero modes of SᵀS/P", ax=ax,
        )
        fw.save_figure(fig, out_dir, "figS7")
    diff = np.nanmax(np.abs(ds["zero_mode_fraction"].values - ds["zero_mode_fraction_expected"].values))
    return {
        "parameters": {"d": list(ds_values), "n_context": paper.FIGS7["n_context"], "n_points": n_points,
                       "zero_threshold": "eigenvalue <= 1e-9 × largest"},
        "summary": {"max_abs_difference_from_rank_formula": float(diff)},
        "notes": ["No published numbers: the check is the rank formula 1 − min(P, D(D+1))/(D+1)² and the floor 1/(D+1)."],
    }
