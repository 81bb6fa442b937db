"""The one matplotlib style of spinlens, applied only inside a context manager.

Nothing here touches ``matplotlib.rcParams`` at import time: `paper_style` sets the style for the
duration of a ``with`` block and restores the caller's settings on exit.

Examples
--------
>>> from spinlens.plotting.style import paper_style
>>> with paper_style():
...     import matplotlib.pyplot as plt
...     fig, ax = plt.subplots()
...     _ = ax.plot([0, 1], [0, 1])
>>> plt.close(fig)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

# Colour-blind-safe palette (Okabe & Ito); the order is the order series are drawn in.
PALETTE = {
    "blue": "#0072B2",
    "orange": "#E69F00",
    "green": "#009E73",
    "red": "#D55E00",
    "purple": "#CC79A7",
    "sky": "#56B4E9",
    "yellow": "#F0E442",
    "black": "#000000",
}

#: colour of our results, of the published numbers, and of exact/theory references
OURS = PALETTE["blue"]
PAPER = PALETTE["black"]
EXACT = PALETTE["orange"]
#: markers and dash patterns that keep coinciding curves apart (use with the palette, in order)
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
LINESTYLES = ("-", "--", "-.", ":")
SEQUENTIAL_CMAP = "viridis"
DIVERGING_CMAP = "RdBu_r"

STYLE: dict = {
    "figure.figsize": (4.8, 3.4),
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 9.0,
    "axes.titlesize": 9.5,
    "axes.labelsize": 9.0,
    "legend.fontsize": 8.0,
    "legend.frameon": False,
    "xtick.labelsize": 8.0,
    "ytick.labelsize": 8.0,
    "xtick.direction": "in",
    "ytick.direction": "in",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "lines.linewidth": 1.5,
    "lines.markersize": 4.0,
    "image.cmap": SEQUENTIAL_CMAP,
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "axes.formatter.useoffset": False,
}


@contextlib.contextmanager
def paper_style(**overrides) -> Iterator[None]:
    """Apply the spinlens figure style inside a ``with`` block; rcParams are restored on exit.

    Parameters
    ----------
    **overrides
        rcParams to set on top of the style, e.g. ``paper_style(**{"figure.figsize": (8, 3)})``.
    """
    import matplotlib as mpl
    from cycler import cycler

    params = dict(STYLE)
    params["axes.prop_cycle"] = cycler(color=list(PALETTE.values()))
    params.update(overrides)
    with mpl.rc_context(params):
        yield


def new_figure(ax=None, *, ncols: int = 1, nrows: int = 1, figsize=None, **kwargs):
    """Return ``(fig, ax)``: the figure of ``ax`` when one is given, else a new figure and axes."""
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax.figure, ax
    return plt.subplots(nrows=nrows, ncols=ncols, figsize=figsize, **kwargs)
