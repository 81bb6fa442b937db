"""Spectra: eigenvalue densities of SᵀS/P, zero-mode fractions, Marchenko–Pastur comparisons."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from spinlens.plotting.style import EXACT, PALETTE, PAPER, new_figure


def plot_eigen_density(
    eigenvalues: Mapping[str, object],
    *,
    bins: int = 60,
    floor: float = 1e-12,
    title: str = "",
    ax=None,
):
    """Histogram densities of eigenvalues on a log axis, one step curve per label.

    Eigenvalues below ``floor`` (the zero modes) cannot be shown on a log axis; their fraction is given
    in the legend instead.

    Parameters
    ----------
    eigenvalues : mapping label -> array of shape (n_eigs,)

    Returns
    -------
    (fig, ax)
    """
    fig, ax = new_figure(ax)
    colours = [c for k, c in PALETTE.items() if k != "black"]
    positive = [np.asarray(v, float)[np.asarray(v, float) > floor] for v in eigenvalues.values()]
    allpos = np.concatenate([p for p in positive if p.size] or [np.array([1.0])])
    edges = np.logspace(np.log10(allpos.min()), np.log10(allpos.max()), bins + 1)
    for k, (label, values) in enumerate(eigenvalues.items()):
        v = np.asarray(values, float)
        zero = float(np.mean(v <= floor)) if v.size else 0.0
        ax.hist(
            v[v > floor], bins=edges, density=False, weights=np.full((v > floor).sum(), 1.0 / max(v.size, 1)),
            histtype="step", color=colours[k % len(colours)], label=f"{label} (zero modes {zero:.2f})",
        )
    ax.set_xscale("log")
    ax.set_xlabel("eigenvalue of SᵀS/P")
    ax.set_ylabel("fraction of eigenvalues")
    if title:
        ax.set_title(title)
    ax.legend()
    return fig, ax


def plot_zero_mode_fraction(
    da,
    *,
    x: str = "n_prompts",
    hue: str = "d",
    floors: Mapping | None = None,
    thresholds: Mapping | None = None,
    title: str = "",
    ax=None,
):
    """Zero-mode fraction against ``x`` (P), one curve per value of ``hue`` (D).

    Parameters
    ----------
    da : xarray.DataArray with dims (hue, x); NaN where not computed
    floors : mapping hue value -> y of a dashed horizontal line (the floor 1/(D+1))
    thresholds : mapping hue value -> x of a dotted vertical line (P = D(D+1))

    Returns
    -------
    (fig, ax)
    """
    fig, ax = new_figure(ax)
    colours = [c for k, c in PALETTE.items() if k != "black"]
    for k, hv in enumerate(da[hue].values):
        c = colours[k % len(colours)]
        row = da.sel({hue: hv})
        xs = np.asarray(row[x].values, float)
        ys = np.asarray(row.values, float)
        ok = np.isfinite(ys)
        ax.plot(xs[ok], ys[ok], "-o", color=c, markersize=3, label=f"{hue}={hv}")
        if floors and hv in floors:
            ax.axhline(floors[hv], color=c, linestyle="--", linewidth=0.8)
        if thresholds and hv in thresholds:
            ax.axvline(thresholds[hv], color=c, linestyle=":", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel(da[x].attrs.get("long_name", x))
    ax.set_ylabel(da.attrs.get("long_name", "zero-mode fraction"))
    if title:
        ax.set_title(title)
    # a key for the line styles (the colours say which D)
    if floors:
        ax.plot([], [], color="0.4", linestyle="--", linewidth=0.8, label="floor 1/(D+1)")
    if thresholds:
        ax.plot([], [], color="0.4", linestyle=":", linewidth=0.8, label="P = D(D+1)")
    ax.legend()
    return fig, ax


def plot_mp_comparison(
    eigenvalues,
    mp_x,
    mp_density,
    *,
    bins: int = 80,
    label: str = "empirical",
    title: str = "",
    ax=None,
):
    """Histogram of eigenvalues against a Marchenko–Pastur density evaluated by the caller.

    Parameters
    ----------
    eigenvalues : array of shape (n,)
    mp_x, mp_density : arrays of shape (m,)
        The Marchenko–Pastur density on a grid (compute it with `spinlens.landscape.marchenko_pastur_density`).

    Returns
    -------
    (fig, ax)
    """
    fig, ax = new_figure(ax)
    ev = np.asarray(eigenvalues, float)
    ax.hist(ev, bins=bins, density=True, histtype="stepfilled", alpha=0.35, color=PALETTE["blue"], label=label)
    ax.plot(np.asarray(mp_x, float), np.asarray(mp_density, float), color=EXACT, label="Marchenko–Pastur")
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density")
    if title:
        ax.set_title(title, color=PAPER)
    ax.legend()
    return fig, ax
