"""Two-dimensional parameter maps (phase diagrams), e.g. Fig 4a's contrast ratio over (N, P)."""

from __future__ import annotations

import numpy as np

from spinlens.plotting.style import PAPER, SEQUENTIAL_CMAP, new_figure


def plot_phase_map(
    da,
    *,
    x: str,
    y: str,
    title: str = "",
    vmin: float | None = None,
    vmax: float | None = None,
    marks=None,
    colorbar_label: str | None = None,
    ax=None,
):
    """Colour map of a 2-D ``xarray.DataArray`` over dims ``x`` and ``y``; NaN cells stay blank.

    Parameters
    ----------
    da : xarray.DataArray with dims {x, y}
    marks : iterable of (x, y, value), optional
        Published sample points, drawn as circles annotated with their value.

    Returns
    -------
    (fig, ax)
    """
    fig, ax = new_figure(ax)
    da = da.transpose(y, x)
    xs = np.asarray(da[x].values, float)
    ys = np.asarray(da[y].values, float)
    vals = np.ma.masked_invalid(np.asarray(da.values, float))
    mesh = ax.pcolormesh(xs, ys, vals, shading="nearest", cmap=SEQUENTIAL_CMAP, vmin=vmin, vmax=vmax)
    cb = fig.colorbar(mesh, ax=ax)
    label = colorbar_label or da.attrs.get("long_name", da.name or "")
    cb.set_label(label)
    ax.set_xlabel(da[x].attrs.get("long_name", x))
    ax.set_ylabel(da[y].attrs.get("long_name", y))
    for mx, my, mv in marks or []:
        ax.plot([mx], [my], "o", mfc="none", color=PAPER, markersize=6)
        ax.annotate(f"{mv:.2f}", (mx, my), textcoords="offset points", xytext=(4, 4), fontsize=7, color=PAPER)
    if title:
        ax.set_title(title)
    return fig, ax
