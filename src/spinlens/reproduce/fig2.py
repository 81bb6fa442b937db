"""Fig 2: weights learned by Adam for few (P=10) and many (P=1000) tasks, and the cavity solution.

D=10, N=100. Adam: lr 0.01, 300 full-batch epochs, no weight decay, merged linear attention; test loss
on fresh prompts with fresh tasks along training. Cavity (as published): P=5000, λ=0.01, β=100,
θ=0.9. With many tasks the upper-left D×D block of W approaches a multiple of the identity and the rest
approaches 0; with P=10 it does not.
"""

from __future__ import annotations

import numpy as np

from spinlens.reproduce import _framework as fw
from spinlens.reproduce import paper


def identity_block_stats(W) -> dict:
    """How close W is to [[c·I_D, 0], [0, 0]]: scale c, relative residuals of the block and of the rest.

    Returns
    -------
    dict with ``scale`` (mean diagonal of the D×D block), ``block_residual`` (‖B − cI‖/‖cI‖),
    ``rest_fraction`` (‖W outside B‖/‖W‖), ``rest_fraction_live`` (the same without W's last column,
    which never affects the prediction and keeps its initial value under training) and ``contrast_ratio``.
    """
    from spinlens.observables import contrast_ratio

    W = np.asarray(W, float)
    D = W.shape[0] - 1
    B = W[:D, :D]
    c = float(np.mean(np.diag(B)))
    resid = float(np.linalg.norm(B - c * np.eye(D)) / max(abs(c) * np.sqrt(D), 1e-300))
    rest = W.copy()
    rest[:D, :D] = 0.0
    live = W[:, :D]
    rest_live = rest[:, :D]
    return {
        "scale": c,
        "rest_fraction_live": float(np.linalg.norm(rest_live) / max(float(np.linalg.norm(live)), 1e-300)),
        "block_residual": resid,
        "rest_fraction": float(np.linalg.norm(rest) / max(float(np.linalg.norm(W)), 1e-300)),
        "contrast_ratio": contrast_ratio(W),
    }


def compute(*, d=10, n_context=100, prompts_train=(10, 1000), lr=0.01, epochs=300, cavity_prompts=5000,
            l2_strength=0.01, beta=100.0, damping=0.9, n_test=2000, rng=0):
    """Train merged linear attention for each P in ``prompts_train``; solve the cavity at ``cavity_prompts``.

    Returns
    -------
    xarray.Dataset with ``W_trained`` (n_prompts, row, col), ``test_loss``/``train_loss``
    (n_prompts, epoch), ``cavity_m``, ``cavity_v``, ``exact_m``, ``W_limit`` (row, col) and scalars.
    """
    import xarray as xr

    from spinlens import PromptDistribution, build_hamiltonian, limit
    from spinlens.models.linear_attention import MergedLinearAttention
    from spinlens.observables import test_error
    from spinlens.random import spawn
    from spinlens.solvers import CavitySolver, ExactSolver
    from spinlens.training import train_model

    dist = PromptDistribution(d=d, n_context=n_context)
    g_test, g_cav, *g_train = spawn(rng, 2 + 2 * len(prompts_train))
    test = dist.sample(n_test, rng=g_test)
    Ws, tr, te, final = [], [], [], []
    epochs_axis = None
    for k, P in enumerate(fw.progress(prompts_train, desc="fig2 train")):
        train = dist.sample(int(P), rng=g_train[2 * k])
        model = MergedLinearAttention(d, rng=g_train[2 * k + 1])
        res = train_model(model, train, test, optimizer="adam", lr=lr, weight_decay=0.0, epochs=epochs,
                          rng=g_train[2 * k + 1], progress=False)
        Ws.append(res.W)
        tr.append(res.history["train_loss"].values)
        te.append(res.history["test_loss"].values)
        epochs_axis = res.history["epoch"].values
        final.append(test_error(res.W, dist))
    H = build_hamiltonian(dist.sample(cavity_prompts, rng=g_cav), l2_strength=l2_strength)
    cav = CavitySolver(damping=damping, max_iter=100, tol=1e-6).solve(H, beta=beta, rng=g_cav, warn=False)
    ex = ExactSolver(n_probes=0).solve(H, beta=beta)
    W_inf = limit.infinite_diversity_solution(dist, l2_strength)
    dims = ("row", "col")
    ds = xr.Dataset(
        {
            "W_trained": (("n_prompts", *dims), np.stack(Ws), {"long_name": "W learned by Adam"}),
            "train_loss": (("n_prompts", "epoch"), np.stack(tr), {"long_name": "train MSE"}),
            "test_loss": (("n_prompts", "epoch"), np.stack(te), {"long_name": "test MSE (fresh tasks)"}),
            "expected_test_error": (("n_prompts",), np.array(final), {"long_name": "exact test error of final W"}),
            "cavity_m": (dims, cav.m, {"long_name": "cavity mean m"}),
            "cavity_v": (dims, cav.v, {"long_name": "cavity variance v"}),
            "exact_m": (dims, ex.m, {"long_name": "exact Boltzmann mean"}),
            "W_limit": (dims, W_inf, {"long_name": "P → ∞ solution W*"}),
        },
        coords={"n_prompts": ("n_prompts", np.asarray(prompts_train)), "epoch": ("epoch", epochs_axis),
                "row": ("row", np.arange(d + 1)), "col": ("col", np.arange(d + 1))},
        attrs={"cavity_converged": int(cav.converged), "cavity_n_iter": cav.n_iter,
               "cavity_exact_distance": cav.extras.get("exact_distance", np.nan),
               "cavity_test_error": test_error(cav.W, dist), "exact_test_error": test_error(ex.W, dist),
               "limit_test_error": limit.expected_error(W_inf, dist)},
    )
    return ds


def run(out_dir, quick: bool = True, seed: int = 0) -> dict:
    """Reproduce Fig 2 (it is cheap: quick and full share the paper's parameters; quick tests on fewer prompts)."""
    import matplotlib.pyplot as plt

    from spinlens.plotting.curves import plot_series
    from spinlens.plotting.matrices import plot_matrix
    from spinlens.plotting.style import paper_style

    cfg = paper.FIG2.copy()
    n_test = 1000 if quick else 10000
    ds = compute(rng=seed, n_test=n_test, **cfg)
    fw.save_dataset(ds, out_dir, "data")

    with paper_style():
        fig, axes = plt.subplots(2, 3, figsize=(10.5, 6.2))
        for k, P in enumerate(ds["n_prompts"].values):
            plot_matrix(ds["W_trained"].isel(n_prompts=k).values, title=f"Adam, P={P}", xlabel="column b",
                        ylabel="row a", cbar_label="weight W_ab", ax=axes[0, k])
        plot_series(
            ds["epoch"].values,
            {f"test, P={P}": ds["test_loss"].isel(n_prompts=k).values for k, P in enumerate(ds["n_prompts"].values)},
            xlabel="epoch", ylabel="MSE", title="test loss (fresh tasks)", logy=True, markers=False, ax=axes[0, 2],
        )
        plot_matrix(ds["cavity_m"].values, title=f"cavity m, P={cfg['cavity_prompts']}", cbar_label="mean m_ab",
                    xlabel="column b", ylabel="row a", ax=axes[1, 0])
        plot_matrix(ds["cavity_v"].values, title="cavity v", diverging=False, cbar_label="variance v_ab",
                    xlabel="column b", ylabel="row a", ax=axes[1, 1])
        plot_matrix(ds["exact_m"].values, title="exact Boltzmann mean", cbar_label="mean ⟨W_ab⟩",
                    xlabel="column b", ylabel="row a", ax=axes[1, 2])
        fig.suptitle(f"Fig 2: D={cfg['d']}, N={cfg['n_context']}")
        fig.tight_layout()
        fw.save_figure(fig, out_dir, "fig2")

    stats = {f"adam_P{P}": identity_block_stats(ds["W_trained"].isel(n_prompts=k).values)
             for k, P in enumerate(ds["n_prompts"].values)}
    stats["cavity"] = identity_block_stats(ds["cavity_m"].values)
    summary = {f"{k}_{q}": v for k, s in stats.items() for q, v in s.items()}
    summary.update({f"adam_P{P}_test_error": float(ds["expected_test_error"].values[k])
                    for k, P in enumerate(ds["n_prompts"].values)})
    summary.update({k: float(v) for k, v in ds.attrs.items()})
    return {
        "parameters": {**cfg, "prompts_train": list(cfg["prompts_train"]), "n_test": n_test, "optimizer": "adam",
                       "weight_decay": 0.0, "batch": "full"},
        "summary": summary,
        "notes": ["No published numbers for Fig 2: the check is the shape of W (upper-left block ≈ c·I, rest ≈ 0)."],
    }
