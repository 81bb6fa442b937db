"""Finite-size scaling plots: an observable against D (or 1/D) beside its asymptotic value."""

from __future__ import annotations

import numpy as np

from spinlens.plotting.style import PAPER, new_figure


def plot_finite_size(D, curves: dict, *, theory: float | None = None, extrapolated=None, inverse: bool = True,
                     ylabel: str = "ICL test error", title: str = "", ax=None):
    """Observable vs 1/D (``inverse``) or D, one line per entry of ``curves``.

    Parameters
    ----------
    D : array of int
        System sizes.
    curves : dict label -> (mean, std) arrays over D (NaN where missing)
    theory : float, optional
        The asymptotic value, drawn as a horizontal dashed line.
    extrapolated : (value, stderr, (slope, ...)), optional
        The fit e(D) = e∞ + a/D (+ b/D²), drawn dotted from D = ∞ to the smallest D.

    Returns
    -------
    (fig, ax)
    """
    fig, ax = new_figure(ax)
    D = np.asarray(D, float)
    x = 1.0 / D if inverse else D
    markers = ["o", "s", "^", "D"]
    styles = ["-", "--", "-.", ":"]
    for i, (label, (mean, std)) in enumerate(curves.items()):
        mean, std = np.asarray(mean, float), np.asarray(std, float)
        ok = np.isfinite(mean)
        # later curves: open, larger markers and their own line style, so coinciding curves stay visible
        ax.errorbar(x[ok], mean[ok], yerr=np.nan_to_num(std[ok]), marker=markers[i % 4], ls=styles[i % 4], capsize=3,
                    mfc="none" if i else None, ms=6 + 3 * i, label=label)
    if theory is not None and np.isfinite(theory):
        ax.axhline(theory, ls="--", color=PAPER, label=f"asymptotic theory ({theory:.4f})")
    if extrapolated is not None:
        val, err, coef = extrapolated
        xs = np.linspace(0, 1.0 / D.min(), 50) if inverse else None
        if xs is not None:
            ys = val + sum(c * xs ** (k + 1) for k, c in enumerate(coef))
            ax.plot(xs, ys, ":", color="0.3", label=f"fit, D → ∞: {val:.4f}" + (f" ± {err:.4f}" if np.isfinite(err) else " (no error bar: too few sizes)"))
            ax.set_xlim(left=0)
    ax.set_xlabel("1/D (inverse token dimension)" if inverse else "token dimension D")
    ax.set_ylabel(ylabel)
    if inverse:
        top = ax.secondary_xaxis("top", functions=(lambda t: 1 / np.maximum(t, 1e-9), lambda d: 1 / np.maximum(d, 1e-9)))
        top.set_xlabel("D")
        top.set_xticks(D)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title)
    return fig, ax


def plot_cost_curves(x, series: dict, *, xlabel: str, ylabel: str, logx: bool = True, logy: bool = True, ax=None):
    """Cost (time or memory) against a size, one line per entry of ``series`` (label -> values; NaN skipped).

    Returns
    -------
    (fig, ax)
    """
    fig, ax = new_figure(ax)
    x = np.asarray(x, float)
    markers = ["o", "s", "^", "D", "v", "P"]
    styles = ["-", "--", "-.", ":"]
    for i, (label, ys) in enumerate(series.items()):
        ys = np.asarray([np.nan if v is None else v for v in ys], float)
        ok = np.isfinite(ys)
        ax.plot(x[ok], ys[ok], marker=markers[i % len(markers)], ls=styles[i % len(styles)], label=label)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    return fig, ax
