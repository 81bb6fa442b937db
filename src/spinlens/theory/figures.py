"""Plots of the asymptotic theory (take computed xarray results, return ``(fig, ax)``; never compute)."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_learning_curve", "plot_task_diversity"]

_LABELS = {"icl_error": "ICL", "idg_error": "IDG", "g_task": "g_task"}


def plot_learning_curve(ds, x: str, variables=("icl_error", "idg_error"), *, ax=None, logx=False, logy=False):
    """Plot theory curves from `spinlens.theory.learning_curve` against the dimension ``x``.

    Parameters
    ----------
    ds : xarray.Dataset
        Output of `learning_curve` with ``x`` among its dims; every other dim gives one line per value.
    x : str
        The swept parameter (``alpha``, ``tau``, ``kappa``, ``rho`` or ``lam``).
    variables : sequence of str
        Variables to draw (``icl_error``, ``idg_error``, ``g_task``).
    ax : matplotlib Axes, optional
    logx, logy : bool
        Logarithmic axes.

    Returns
    -------
    (fig, ax)
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(5.0, 3.6))
    else:
        fig = ax.figure
    others = [d for d in ds.dims if d != x]
    stacked = ds.stack(_series=others) if others else ds.expand_dims("_series")
    linestyles = ["-", "--", ":", "-."]
    xs = ds[x].values
    for j in range(stacked.sizes["_series"]):
        sub = stacked.isel(_series=j)
        tag = ", ".join(f"{o}={sub[o].item():g}" for o in others)
        color = None
        for i, var in enumerate(variables):
            yv = np.asarray(sub[var].transpose(x).values, dtype=float)
            yv = np.where(np.isfinite(yv), yv, np.nan)
            (line,) = ax.plot(xs, yv, linestyle=linestyles[i % 4], color=color,
                              label=f"{_LABELS.get(var, var)}" + (f" ({tag})" if tag else ""))
            color = line.get_color()
    fixed = [f"{n}={ds[n].item():g}" for n in ("alpha", "tau", "kappa", "rho", "lam") if n in ds.coords and ds[n].ndim == 0]
    ax.set_xlabel(ds[x].attrs.get("long_name", x))
    ax.set_ylabel("test error")
    if fixed:
        ax.set_title(", ".join(fixed), fontsize=9)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig, ax


def plot_task_diversity(ds, *, ax=None, show_idg: bool = True, theory_points: int = 200):
    """ICL (and IDG) error vs task-pool size K from `spinlens.theory.comparison.task_diversity_sweep`.

    Markers: linear attention (exact ridge solution of the spin glass), Bayes ridge, dMMSE; line: the
    asymptotic theory at κ = K/D (recomputed on a fine grid from the attrs, no simulation); dotted
    horizontal line: linear attention with a fresh task per prompt (K = ∞).

    Returns
    -------
    (fig, ax)
    """
    import matplotlib.pyplot as plt

    from spinlens.theory.asymptotic import learning_curve

    if ax is None:
        fig, ax = plt.subplots(figsize=(5.4, 3.8))
    else:
        fig = ax.figure
    K = ds["n_tasks"].values
    fin = np.isfinite(K)
    d = ds.attrs["d"]
    kk = np.geomspace(K[fin].min() / d, K[fin].max() / d, theory_points)
    th = learning_curve(alpha=ds.attrs["lu_alpha"], tau=ds.attrs["lu_tau"], kappa=kk, rho=ds.attrs["lu_rho"],
                        lam=ds.attrs["lu_lam"])
    ax.plot(kk * d, th.icl_error, "k-", lw=1.2, label="theory ICL (Lu et al.)")
    if show_idg:
        ax.plot(kk * d, th.idg_error, "k--", lw=1.0, label="theory IDG")
    styles = [("attention", "o", "C0", "linear attention"), ("ridge", "s", "C2", "ridge (Bayes, fresh tasks)"),
              ("dmmse", "^", "C3", "dMMSE (Bayes, pool)")]
    for key, marker, color, label in styles:
        ax.plot(K[fin], ds[f"{key}_icl"].values[fin], marker=marker, color=color, ls="-", lw=0.8, label=f"{label} ICL")
        if show_idg:
            ax.plot(K[fin], ds[f"{key}_idg"].values[fin], marker=marker, color=color, ls=":", lw=0.8,
                    mfc="none", label=f"{label} IDG")
    if (~fin).any():
        ax.axhline(float(ds["attention_icl"].values[~fin][0]), color="C0", ls=":", lw=1.0,
                   label="linear attention, K = ∞")
    ax.set_xscale("log")
    ax.set_xlabel("task-pool size K")
    ax.set_ylabel("test error")
    a = ds.attrs
    ax.set_title(f"D={a['d']}, N={a['n_context']}, P={a['n_prompts']}, λ={a['l2_strength']:g}, "
                 f"σ_ε={a['sigma_eps']:g}", fontsize=9)
    ax.legend(fontsize=6.5, ncol=2)
    fig.tight_layout()
    return fig, ax
