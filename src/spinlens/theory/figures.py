"""Plots of the asymptotic theory (take computed xarray results, return ``(fig, ax)``; never compute)."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_learning_curve"]

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
