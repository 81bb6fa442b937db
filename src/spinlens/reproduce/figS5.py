"""Fig S5: spectrum of the token covariance X Xᵀ/N against the Marchenko–Pastur law.

X has D rows and N columns of i.i.d. N(0, 1) tokens (the inputs of one prompt); the eigenvalues of
X Xᵀ/N follow Marchenko–Pastur with ratio q = D/N. The Kolmogorov–Smirnov distance between the pooled
eigenvalues and the law is reported for every N.
"""

from __future__ import annotations

import numpy as np

from spinlens.reproduce import _framework as fw
from spinlens.reproduce import paper


def compute(n_context_values, *, d=100, n_prompts=200, rng=0):
    """Pooled eigenvalues per N, the MP density on a grid and the KS distance.

    Returns
    -------
    xarray.Dataset with ``eigenvalues`` (n_context, eig), ``mp_density`` (n_context, x),
    ``ks_distance`` (n_context,).
    """
    import xarray as xr

    from spinlens import PromptDistribution
    from spinlens.landscape import marchenko_pastur_cdf, marchenko_pastur_density
    from spinlens.random import spawn

    Ns = list(n_context_values)
    streams = spawn(rng, len(Ns))
    n_eig = n_prompts * d
    eigs = np.zeros((len(Ns), n_eig))
    xs = np.zeros((len(Ns), 400))
    dens = np.zeros_like(xs)
    ks = np.zeros(len(Ns))
    for i, N in enumerate(fw.progress(Ns, desc="figS5")):
        dist = PromptDistribution(d=d, n_context=N)
        chunk = max(1, int(2e7 // (d * N)))  # at most ~160 MB of inputs at a time
        parts = []
        for start in range(0, n_prompts, chunk):
            X = dist.sample_inputs(min(chunk, n_prompts - start), N, rng=streams[i])  # (chunk, D, N)
            parts.append(np.linalg.eigvalsh(X @ X.transpose(0, 2, 1) / N).ravel())
        ev = np.concatenate(parts)
        eigs[i] = np.sort(ev)
        q = d / N
        hi = (1 + np.sqrt(q)) ** 2
        xs[i] = np.linspace(0, 1.1 * hi, 400)
        dens[i] = marchenko_pastur_density(xs[i], q)
        emp = np.arange(1, n_eig + 1) / n_eig
        cdf = marchenko_pastur_cdf(eigs[i], q)
        ks[i] = float(max(np.max(np.abs(emp - cdf)), np.max(np.abs(emp - 1.0 / n_eig - cdf))))
    return xr.Dataset(
        {
            "eigenvalues": (("n_context", "eig"), eigs, {"long_name": "eigenvalues of X Xᵀ/N"}),
            "mp_x": (("n_context", "x"), xs),
            "mp_density": (("n_context", "x"), dens, {"long_name": "Marchenko–Pastur density"}),
            "ks_distance": (("n_context",), ks, {"long_name": "Kolmogorov–Smirnov distance to MP"}),
        },
        coords={"n_context": ("n_context", np.asarray(Ns), {"long_name": "context length N"})},
        attrs={"d": d, "n_prompts": n_prompts},
    )


def run(out_dir, quick: bool = True, seed: int = 0) -> dict:
    """Quick: D=50, 100 prompts, N ∈ {50, 100, 500, 2000}; full: D=100, the paper's N, 500 prompts.

    The paper pools 10000 prompts; 500 (5·10⁴ eigenvalues per N) already resolve the density, and 10000
    prompts at N = 10000 would be 10¹³ multiply-adds.
    """
    import matplotlib.pyplot as plt

    from spinlens.plotting.spectrum import plot_mp_comparison
    from spinlens.plotting.style import paper_style

    Ns: tuple[int, ...]
    if quick:
        d, n_prompts, Ns = 50, 100, (50, 100, 500, 2000)
    else:
        d, n_prompts, Ns = paper.FIGS5["d"], 500, paper.FIGS5["n_context"]
    ds = compute(Ns, d=d, n_prompts=n_prompts, rng=seed)
    fw.save_dataset(ds, out_dir, "data")
    with paper_style():
        ncol = min(3, len(Ns))
        nrow = int(np.ceil(len(Ns) / ncol))
        fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 3.0 * nrow), squeeze=False)
        for k, N in enumerate(Ns):
            ax = axes.flat[k]
            plot_mp_comparison(ds["eigenvalues"].values[k], ds["mp_x"].values[k], ds["mp_density"].values[k],
                               label=f"D/N = {d / N:g}", title=f"N={N} (KS {float(ds['ks_distance'][k]):.3f})", ax=ax)
        for ax in list(axes.flat)[len(Ns):]:
            ax.set_visible(False)
        fig.suptitle(f"Fig S5: token covariance X Xᵀ/N, D={d}, {n_prompts} prompts")
        fig.tight_layout()
        fw.save_figure(fig, out_dir, "figS5")
    return {
        "parameters": {"d": d, "n_prompts": n_prompts, "n_context": list(Ns)},
        "summary": {f"ks_distance_N{N}": float(v) for N, v in zip(Ns, ds["ks_distance"].values)},
        "notes": ["No published numbers: the check is the Kolmogorov–Smirnov distance to the Marchenko–Pastur law."],
    }
