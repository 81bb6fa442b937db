"""Heat maps of matrices (W, J, h) and histograms of their entries."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from spinlens.plotting.style import DIVERGING_CMAP, PALETTE, SEQUENTIAL_CMAP, new_figure


def plot_matrix(
    matrix,
    *,
    title: str = "",
    diverging: bool = True,
    colorbar: bool = True,
    vmax: float | None = None,
    xlabel: str = "column index",
    ylabel: str = "row index",
    cbar_label: str = "value",
    ax=None,
):
    """Show a 2-D array as an image (row index downwards), symmetric colour scale when ``diverging``.

    Parameters
    ----------
    matrix : array of shape (rows, cols)
    diverging : bool
        Centre the colour map on 0 (for weights and couplings of either sign).
    xlabel, ylabel : str
        What the column and row indices count (integer ticks at the indices).
    cbar_label : str
        The quantity the colour shows (with its unit, if it has one).

    Returns
    -------
    (fig, ax)
    """
    fig, ax = new_figure(ax)
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2:
        raise ValueError(f"matrix must be 2-D; got shape {m.shape}")
    if diverging:
        lim = vmax if vmax is not None else float(np.nanmax(np.abs(m))) or 1.0
        im = ax.imshow(m, cmap=DIVERGING_CMAP, vmin=-lim, vmax=lim, interpolation="nearest")
    else:
        im = ax.imshow(m, cmap=SEQUENTIAL_CMAP, vmax=vmax, interpolation="nearest")
    from matplotlib.ticker import MaxNLocator

    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if colorbar:
        cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        cb.set_label(cbar_label)
    return fig, ax


def plot_histograms(
    samples: Mapping[str, object],
    *,
    bins: int = 60,
    xlabel: str = "value",
    title: str = "",
    density: bool = True,
    logy: bool = False,
    ax=None,
):
    """Overlaid step histograms of several samples (e.g. the blocks h1, h2, J1, J2, J3 of Fig 1).

    One sample is named in the title (no legend); several get a legend above the axes, where it can
    cover no bar.

    Returns
    -------
    (fig, ax)
    """
    fig, ax = new_figure(ax)
    colours = list(PALETTE.values())
    for k, (label, values) in enumerate(samples.items()):
        v = np.asarray(values, dtype=float).ravel()
        v = v[np.isfinite(v)]
        if v.size == 0:
            continue
        ax.hist(v, bins=bins, density=density, histtype="step", color=colours[k % len(colours)], label=label)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("probability density" if density else "count")
    names = [k for k, v in samples.items() if np.isfinite(np.asarray(v, dtype=float)).any()]
    if len(names) == 1:
        ax.set_title(f"{title}: {names[0]}" if title else names[0])
    else:
        if title:
            ax.set_title(title, pad=22)
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(names), frameon=False,
                  borderaxespad=0.1, handlelength=1.5, columnspacing=1.0)
    return fig, ax
