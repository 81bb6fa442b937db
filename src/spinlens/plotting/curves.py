"""Line plots: our curves beside published points (test error vs N, vs α, vs c ...)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from spinlens.plotting.style import PALETTE, PAPER, new_figure


def plot_series(
    x,
    series: Mapping[str, object],
    *,
    spread: Mapping[str, object] | None = None,
    reference: Mapping[str, tuple] | None = None,
    xlabel: str = "",
    ylabel: str = "",
    title: str = "",
    logx: bool = False,
    logy: bool = False,
    markers: bool = True,
    ax=None,
):
    """Plot curves ``series[label]`` over ``x`` with optional ±spread bands and reference points.

    Parameters
    ----------
    x : array of shape (n,)
        Common abscissa of every series.
    series : mapping label -> array of shape (n,)
        Our curves (NaN entries are left as gaps).
    spread : mapping label -> array of shape (n,), optional
        Half-width of a shaded band around the series of the same label (e.g. a standard deviation).
    reference : mapping label -> (x_ref, y_ref), optional
        Published points, drawn as open markers (the paper's numbers).
    ax : matplotlib Axes, optional

    Returns
    -------
    (fig, ax)
    """
    fig, ax = new_figure(ax)
    x = np.asarray(x, dtype=float)
    colours = [c for name, c in PALETTE.items() if name != "black"]
    for k, (label, y) in enumerate(series.items()):
        y = np.asarray(y, dtype=float)
        c = colours[k % len(colours)]
        ax.plot(x, y, "-o" if markers else "-", color=c, label=label, markersize=3)
        if spread is not None and label in spread:
            s = np.asarray(spread[label], dtype=float)
            ax.fill_between(x, y - s, y + s, color=c, alpha=0.2, linewidth=0)
    ref_markers = ["s", "^", "D", "v", "P"]
    for k, (label, (xr_, yr_)) in enumerate((reference or {}).items()):
        ax.plot(
            np.asarray(xr_, float), np.asarray(yr_, float), ref_markers[k % len(ref_markers)],
            mfc="none", color=PAPER if k == 0 else colours[(k + 3) % len(colours)], label=label, markersize=5,
        )
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if series or reference:
        ax.legend()
    return fig, ax


def plot_training_history(hist, *, title: str = "", ax=None):
    """Loss curves of a training run: mini-batch train loss per step and test loss at the evaluation steps.

    Parameters
    ----------
    hist : xarray.Dataset
        ``train_loss`` over ``step`` and ``test_loss`` over ``eval_step`` (`spinlens.training_online`).

    Returns
    -------
    (fig, ax)
    """
    from spinlens.plotting.style import paper_style

    with paper_style():
        fig, ax = new_figure(ax, figsize=(4.8, 3.4))
        ax.plot(hist.step, hist.train_loss, lw=0.8, label="train (mini-batch)")
        if hist.sizes.get("eval_step", 0):
            ax.plot(hist.eval_step, hist.test_loss, "o-", ms=3, label="test (fresh tasks)")
        ax.axhline(1.0, color="0.5", ls=":", lw=0.8, label="predict 0")
        ax.set_yscale("log")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("mean squared error")
        if title:
            ax.set_title(title)
        ax.legend()
    return fig, ax
