"""Fig S1: double descent of the ICL test error against α = P/D² (D=20, N=100, no weight decay).

The paper trains merged (W) and separate (W = W_qᵀW_k) simplified linear attention with Adam (lr 0.01,
3000 full-batch epochs). Both predictions depend on the prompt only through the factored features
(ŷ = cᵀ W q, `spinlens.features`), so the training here runs on C and Q: the same function of the
parameters, hence the same gradients, without forming Z Zᵀ. Also shown: the minimum-norm least-squares
solution (the limit of gradient descent from W = 0), whose error diverges at P = D(D+1) (α = 1.05 for
D=20), the interpolation threshold. Test error: exact expectation on fresh prompts (`spinlens.limit`).
"""

from __future__ import annotations

import numpy as np

from spinlens.reproduce import _framework as fw
from spinlens.reproduce import paper


def train_on_features(C, Q, y, *, kind="merged", lr=0.01, epochs=3000, init_std=None, rng=0) -> np.ndarray:
    """Full-batch Adam (torch MSE, no weight decay) of ŷ = cᵀ W q; returns the effective W (D+1, D+1).

    Parameters
    ----------
    C, Q : ndarrays of shape (P, D+1)
        Factored features (`spinlens.features.SpinFeatures`).
    kind : {"merged", "separate"}
        One matrix W, or W = W_qᵀ W_k with W_q, W_k of shape (D+1, D+1).
    init_std : float, optional
        Initial weights ~ N(0, init_std²); default 1/√(D+1) (as `spinlens.models.linear_attention`).
    """
    import torch

    from spinlens.random import torch_generator
    from spinlens.training import fit

    D1 = C.shape[1]
    std = D1**-0.5 if init_std is None else init_std
    g = torch_generator(rng)
    Ct, Qt, yt = (torch.as_tensor(a, dtype=torch.float64) for a in (C, Q, y))
    if kind == "merged":
        params = [torch.nn.Parameter(torch.randn(D1, D1, generator=g, dtype=torch.float64) * std)]

        def effective():
            return params[0]
    else:
        params = [torch.nn.Parameter(torch.randn(D1, D1, generator=g, dtype=torch.float64) * std) for _ in range(2)]

        def effective():
            return params[0].T @ params[1]
    def loss(ps, step):
        return torch.mean((torch.einsum("pa,ab,pb->p", Ct, effective(), Qt) - yt) ** 2)

    fit(params, loss, steps=epochs, optimizer="adam", lr=lr, label="figS1")
    with torch.no_grad():
        return effective().numpy().copy()


def min_norm_solution(S, y) -> np.ndarray:
    """Minimum-norm least-squares weights for the dense features S (P, K): the ridgeless limit."""
    return np.linalg.lstsq(S, y, rcond=None)[0]


def compute(alphas, *, d=20, n_context=100, lr=0.01, epochs=3000, repeats=1, kinds=("merged", "separate"), rng=0):
    """Test error vs α for min-norm and Adam-trained models. Returns an xarray.Dataset over (alpha, repeat)."""
    import xarray as xr

    from spinlens import PromptDistribution, limit, spin_features
    from spinlens.random import spawn

    dist = PromptDistribution(d=d, n_context=n_context)
    alphas = np.asarray(alphas, dtype=float)
    Ps = np.maximum(1, np.round(alphas * d * d)).astype(int)
    out = {k: np.full((alphas.size, repeats), np.nan) for k in ("min_norm", *kinds)}
    streams = spawn(rng, alphas.size * repeats)
    jobs = [(i, r) for i in range(alphas.size) for r in range(repeats)]
    for k, (i, r) in enumerate(fw.progress(jobs, desc="figS1")):
        g = streams[k]
        p = dist.sample(int(Ps[i]), rng=g)
        F = spin_features(p)
        w = min_norm_solution(F.dense(), p.y)
        out["min_norm"][i, r] = limit.expected_error(w.reshape(d + 1, d + 1), dist)
        for kind in kinds:
            W = train_on_features(F.C, F.Q, p.y, kind=kind, lr=lr, epochs=epochs, rng=g)
            out[kind][i, r] = limit.expected_error(W, dist)
    data = {}
    for name, arr in out.items():
        m, s = fw.mean_std(arr)
        data[f"{name}_test_error"] = (("alpha",), m, {"long_name": f"test error ({name})"})
        data[f"{name}_test_error_sd"] = (("alpha",), s)
    return xr.Dataset(
        data,
        coords={"alpha": ("alpha", alphas, {"long_name": "α = P/D²"}), "n_prompts": ("alpha", Ps)},
        attrs={"d": d, "n_context": n_context, "lr": lr, "epochs": epochs, "repeats": repeats},
    )


def run(out_dir, quick: bool = True, seed: int = 0) -> dict:
    """Quick: 9 values of α, 1 repeat, 1500 epochs; full: 31 values, 5 repeats, the paper's 3000 epochs."""
    import matplotlib.pyplot as plt

    from spinlens.plotting.curves import plot_series
    from spinlens.plotting.style import paper_style

    cfg = paper.FIGS1.copy()
    d = cfg["d"]
    peak = d * (d + 1) / d**2
    if quick:
        alphas = np.r_[0.25, 0.5, 0.9, 1.0, peak, 1.1, 1.5, 2.0, 3.0]
        repeats, epochs = 1, 1500
    else:
        alphas = np.unique(np.r_[np.linspace(0.1, 3.0, 30), peak])
        repeats, epochs = 5, cfg["epochs"]
    ds = compute(alphas, d=d, n_context=cfg["n_context"], lr=cfg["lr"], epochs=epochs, repeats=repeats, rng=seed)
    fw.save_columns({"alpha": ds["alpha"].values, "n_prompts": ds["n_prompts"].values,
                     **{k: ds[k].values for k in ds.data_vars}}, out_dir, "data")
    with paper_style():
        fig, ax = plt.subplots(figsize=(5.0, 3.5))
        plot_series(
            ds["alpha"].values,
            {"min-norm (GD limit)": ds["min_norm_test_error"].values,
             f"Adam, merged ({epochs} ep.)": ds["merged_test_error"].values,
             f"Adam, separate ({epochs} ep.)": ds["separate_test_error"].values},
            reference={"paper: α=2 (both)": ([2.0], [paper.FIGS1_ALPHA2_ERROR])},
            xlabel="α = P/D²", ylabel="test error (fresh tasks)", logy=True,
            title=f"Fig S1: D={d}, N={cfg['n_context']}, no weight decay", ax=ax,
        )
        ax.axvline(peak, color="0.5", linestyle=":", linewidth=0.8, label="P = D(D+1) (interpolation threshold)")
        ax.legend(fontsize=7)
        fw.save_figure(fig, out_dir, "figS1")
    summary = {}
    rows = []
    for name in ("min_norm", "merged", "separate"):
        err = ds[f"{name}_test_error"].values
        summary[f"{name}_peak_alpha"] = float(ds["alpha"].values[np.nanargmax(err)])
        summary[f"{name}_peak_error"] = float(np.nanmax(err))
        at2 = float(ds[f"{name}_test_error"].sel(alpha=2.0, method="nearest"))
        summary[f"{name}_error_at_alpha2"] = at2
        if name != "min_norm":
            rows += fw.comparison_rows(f"peak α ({name}; paper 1.0–1.05)", "quantity", ["peak α"],
                                       [np.mean(paper.FIGS1_PEAK_ALPHA)], [summary[f"{name}_peak_alpha"]])
            rows += fw.comparison_rows(f"test error at α=2 ({name})", "α", [2.0], [paper.FIGS1_ALPHA2_ERROR], [at2])
    return {
        "parameters": {**cfg, "epochs": epochs, "alpha": [float(a) for a in alphas], "repeats": repeats,
                       "weight_decay": 0.0, "training": "full-batch Adam on factored features (same gradients)"},
        "comparison": rows,
        "summary": summary,
        "notes": ["Published peak heights (merged ≈ 4–5, separate ≈ 9) depend on how far Adam gets in 3000 epochs "
                  "along the nearly flat directions at P ≈ D(D+1); the min-norm curve shows the divergence they cut off."],
    }
