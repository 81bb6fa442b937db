"""Fig 1: the couplings J and fields h for P=1000, D=5, N=100, and the distributions of their blocks.

Blocks (docs/reproduce.md, Fig 1): h1 = h's upper-left D×D block, h2 = h's last row (first D entries), J1 = couplings
among the first D(D+1) spins, J2 = the cross block, J3 = couplings among the last D+1 spins. The block
means are checked against the closed-form moments of `spinlens.limit` (E[h] = E[y s], E[J_ii] = −E[s_i²]).
"""

from __future__ import annotations

import numpy as np

from spinlens.reproduce import _framework as fw
from spinlens.reproduce import paper


def compute(*, d=5, n_context=100, n_prompts=1000, rng=0):
    """J, h, the five blocks and the closed-form expectations. Returns an xarray.Dataset."""
    import xarray as xr

    from spinlens import PromptDistribution, build_hamiltonian, limit
    from spinlens.observables import block_statistics

    dist = PromptDistribution(d=d, n_context=n_context)
    H = build_hamiltonian(dist.sample(n_prompts, rng=rng), l2_strength=0.0)
    blocks = block_statistics(H)
    mom = limit.moments(dist)
    D = d
    h = H.h.reshape(D + 1, D + 1)
    data = {
        "J": (("spin_i", "spin_j"), H.J, {"long_name": "couplings J = −SᵀS/P"}),
        "h": (("row", "col"), h, {"long_name": "fields h = mean y s"}),
        "h_expected": (("row", "col"), mom.ys, {"long_name": "E[y s] (closed form)"}),
        "J_diag_expected": (("spin_i",), -mom.ss_diag.reshape(-1), {"long_name": "E[J_ii] = −E[s_i²]"}),
    }
    for name in ("h1", "h2", "J1", "J2", "J3"):
        data[name] = ((f"{name}_entry",), np.asarray(blocks[name]), {"long_name": f"entries of block {name}"})
    K = (D + 1) ** 2
    return xr.Dataset(
        data,
        coords={"spin_i": np.arange(K), "spin_j": np.arange(K), "row": np.arange(D + 1), "col": np.arange(D + 1)},
        attrs={"d": d, "n_context": n_context, "n_prompts": n_prompts},
    )


def block_summary(ds) -> dict:
    """Mean and sd (`spinlens.verdict.mean_sd`) of each block, and the diagonal of h1 against its closed-form mean."""
    from spinlens.verdict import mean_sd

    D = int(ds.attrs["d"])
    out = {}
    for name in ("h1", "h2", "J1", "J2", "J3"):
        v = ds[name].values
        out[f"{name}_mean"], out[f"{name}_sd"] = mean_sd(v)
    h = ds["h"].values
    out["h1_diag_mean"] = float(np.mean(np.diag(h[:D, :D])))
    out["h1_diag_expected"] = float(ds["h_expected"].values[0, 0])
    off = h[:D, :D][~np.eye(D, dtype=bool)]
    out["h1_offdiag_mean"] = float(np.mean(off))
    out["J_diag_rel_error"] = float(
        np.linalg.norm(np.diag(ds["J"].values) - ds["J_diag_expected"].values) / np.linalg.norm(ds["J_diag_expected"].values)
    )
    return out


def run(out_dir, quick: bool = True, seed: int = 0) -> dict:
    """Reproduce Fig 1 (cheap: quick and full both use the paper's P=1000, D=5, N=100)."""
    import matplotlib.pyplot as plt

    from spinlens.plotting.matrices import plot_histograms, plot_matrix
    from spinlens.plotting.style import paper_style

    cfg = paper.FIG1.copy()
    ds = compute(rng=seed, **cfg)
    fw.save_dataset(ds, out_dir, "data")
    with paper_style():
        fig, axes = plt.subplots(2, 3, figsize=(10.5, 6.0))
        plot_matrix(ds["J"].values, title="couplings J", xlabel="spin j", ylabel="spin i",
                    cbar_label="coupling J_ij", ax=axes[0, 0])
        plot_matrix(ds["h"].values, title="fields h as a (D+1)×(D+1) matrix", xlabel="column b", ylabel="row a",
                    cbar_label="field h_ab", ax=axes[0, 1])
        plot_histograms({"h1 (D×D block)": ds["h1"].values, "h2 (last row)": ds["h2"].values}, xlabel="field h",
                        title="fields", bins=15, ax=axes[0, 2])
        for ax, name, label in ((axes[1, 0], "J1", "J1: first D(D+1) spins"), (axes[1, 1], "J2", "J2: cross block"),
                                (axes[1, 2], "J3", "J3: last D+1 spins")):
            plot_histograms({label: ds[name].values}, xlabel="coupling J", logy=True, bins=30, ax=ax)
        fig.suptitle(f"Fig 1: P={cfg['n_prompts']}, D={cfg['d']}, N={cfg['n_context']}")
        fig.tight_layout()
        fw.save_figure(fig, out_dir, "fig1")
    summary = block_summary(ds)
    return {
        "parameters": cfg,
        "summary": summary,
        "notes": ["The published Fig 1 script builds J and h with 1/N and the upper block transposed; spinlens keeps "
                  "1/(N+1) and row-major spins, so single entries differ while the block distributions agree."],
    }
