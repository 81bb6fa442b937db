"""Fig S2: how the distributions of the blocks of h and J change with the context length N.

Not described in the paper's text (docs/paper-notes.md); reconstructed from the published figure data: for each N the entries of the
five blocks of Fig 1 (h1 off-diagonal, h2, J1, J2, J3; zero entries dropped) are histogrammed on fixed
bins, and the Kullback–Leibler divergence KL(p_{N₀} ‖ p_N) (bits, add-one smoothing) to the first N₀ of
the list is averaged over independent draws. N₀ + 1 is included as a baseline: its divergence is the
sampling noise floor. The bins span the central 99% of the N₀ entries of each block.
"""

from __future__ import annotations

import numpy as np

from spinlens.reproduce import _framework as fw
from spinlens.reproduce import paper

BLOCKS = ("h1", "h2", "J1", "J2", "J3")


def block_entries(H) -> dict:
    """The block entries used here (h1 without its diagonal; zeros dropped from the J blocks)."""
    from spinlens.observables import block_statistics

    D = H.d
    b = block_statistics(H)
    h = H.h.reshape(D + 1, D + 1)
    out = {"h1": h[:D, :D][~np.eye(D, dtype=bool)], "h2": b["h2"]}
    for k in ("J1", "J2", "J3"):
        v = np.asarray(b[k])
        out[k] = v[v != 0]
    return out


def kl_bits(p_counts, q_counts) -> float:
    """KL(p ‖ q) in bits of two histograms (counts, add-one smoothed)."""
    p = np.asarray(p_counts, float) + 1.0
    q = np.asarray(q_counts, float) + 1.0
    p /= p.sum()
    q /= q.sum()
    return float(np.sum(p * np.log2(p / q)))


def compute(n_context_values, *, d=20, n_prompts=1000, repeats=20, n_bins=50, rng=0):
    """KL divergences (block, n_context) of the entries pooled over repeats. Returns an xarray.Dataset."""
    import xarray as xr

    from spinlens import PromptDistribution, build_hamiltonian
    from spinlens.random import spawn

    Ns = list(n_context_values)
    streams = spawn(rng, len(Ns) * repeats)
    entries = [[None] * repeats for _ in Ns]
    jobs = [(i, r) for i in range(len(Ns)) for r in range(repeats)]
    for k, (i, r) in enumerate(fw.progress(jobs, desc="figS2")):
        H = build_hamiltonian(PromptDistribution(d=d, n_context=Ns[i]).sample(n_prompts, rng=streams[k]), l2_strength=0.0)
        entries[i][r] = block_entries(H)
    kl = np.zeros((len(BLOCKS), len(Ns)))
    edges_all = np.zeros((len(BLOCKS), n_bins + 1))
    for b, name in enumerate(BLOCKS):
        pooled = [np.concatenate([entries[i][r][name] for r in range(repeats)]) for i in range(len(Ns))]
        lo, hi = np.quantile(pooled[0], [0.005, 0.995])
        edges = np.linspace(lo, hi, n_bins + 1)
        edges_all[b] = edges
        ref = np.histogram(pooled[0], bins=edges)[0]
        for i in range(len(Ns)):
            kl[b, i] = kl_bits(ref, np.histogram(pooled[i], bins=edges)[0])
    return xr.Dataset(
        {
            "kl": (("block", "n_context"), kl, {"long_name": "KL(p_N0 ‖ p_N) (bits)"}),
            "bin_edges": (("block", "edge"), edges_all),
        },
        coords={"block": ("block", list(BLOCKS)), "n_context": ("n_context", np.asarray(Ns), {"long_name": "context length N"})},
        attrs={"d": d, "n_prompts": n_prompts, "repeats": repeats, "reference_n_context": Ns[0]},
    )


def run(out_dir, quick: bool = True, seed: int = 0) -> dict:
    """Quick: D=10, P=500, N ∈ {20, 21, 40, 80, 160}, 40 draws; full: the paper's D=20, P=1000 and 11 N, 200 draws.

    The published script uses 1000 draws and per-draw histograms; pooled histograms need fewer draws.
    """
    import matplotlib.pyplot as plt

    from spinlens.plotting.curves import plot_series
    from spinlens.plotting.style import paper_style

    cfg = paper.FIGS2.copy()
    Ns: tuple[int, ...]
    if quick:
        d, n_prompts, Ns, repeats = 10, 500, (20, 21, 40, 80, 160), 40
    else:
        d, n_prompts, Ns, repeats = cfg["d"], cfg["n_prompts"], cfg["n_context"], 200
    ds = compute(Ns, d=d, n_prompts=n_prompts, repeats=repeats, rng=seed)
    fw.save_dataset(ds, out_dir, "data")
    with paper_style():
        fig, ax = plt.subplots(figsize=(5.0, 3.5))
        plot_series(ds["n_context"].values, {b: ds["kl"].sel(block=b).values for b in BLOCKS},
                    xlabel="context length N", ylabel=f"KL(p_N={Ns[0]} ‖ p_N) (bits)",
                    title=f"Fig S2: D={d}, P={n_prompts}, {repeats} draws", ax=ax)
        fw.save_figure(fig, out_dir, "figS2")
    return {
        "parameters": {"d": d, "n_prompts": n_prompts, "n_context": list(Ns), "repeats": repeats, "n_bins": 50, "pooled_over_repeats": True},
        "summary": {f"kl_{b}_N{Ns[-1]}": float(ds["kl"].sel(block=b).values[-1]) for b in BLOCKS}
        | {f"kl_{b}_N{Ns[1]}": float(ds["kl"].sel(block=b).values[1]) for b in BLOCKS},
        "notes": ["Fig S2 is not specified in the paper's text; this reconstruction (KL divergence of the block distributions "
                  "to the first N of the list) follows the published figure data. No published numbers are compared."],
    }
