"""What a referee checks on a figure, as code: `figure_problems(fig)` lists what is missing.

Rules, for every axes of the figure:

* the x and y axes carry a label (a quantity, with its unit where it has one) and tick marks; an axes
  whose label is given by a neighbour it shares that axis with (``sharex``/``sharey``, twin axes) passes;
* a colourbar carries a label;
* an axes with two or more curves has a legend (its own or the figure's), and every line style used by a
  curve appears in a legend, so that solid/dashed/dotted lines have a key (an unlabelled ``axhline`` /
  ``axvline`` across the whole axes, such as the zero line, is a guide and needs no key);
* an axes that carries no quantity (a graph drawing, a table of text) is exempt only when it says why:
  `exempt(ax, reason)`.
"""

from __future__ import annotations

__all__ = ["figure_problems", "exempt", "assert_figure_ok"]

_EXEMPT = "_spinlens_exempt"


def exempt(ax, reason: str):
    """Mark ``ax`` as an axes that carries no quantity (a graph, a text table); ``reason`` says why."""
    if not reason or not str(reason).strip():
        raise ValueError("exempt() needs a reason")
    setattr(ax, _EXEMPT, str(reason))
    return ax


def _shared_label(ax, which: str) -> bool:
    group = ax.get_shared_x_axes() if which == "x" else ax.get_shared_y_axes()
    for other in group.get_siblings(ax):
        if other is not ax and (other.get_xlabel() if which == "x" else other.get_ylabel()):
            return True
    return False


def _twin_label(ax, which: str) -> bool:
    """A twin axes (twinx/twiny) takes the shared axis' label from its partner at the same position."""
    for other in ax.figure.axes:
        if other is ax or other.get_position().bounds != ax.get_position().bounds:
            continue
        if other.get_xlabel() if which == "x" else other.get_ylabel():
            return True
    return False


def _is_colorbar(ax) -> bool:
    return getattr(ax, "_colorbar", None) is not None or ax.get_label() == "<colorbar>"


_NAMES = {"solid": "-", "dashed": "--", "dotted": ":", "dashdot": "-."}


def _style(artist) -> str:
    """The dash pattern of a line or legend handle as one short string ('-', '--', ':', '-.', 'none', ...)."""
    ls = artist.get_linestyle()
    if isinstance(ls, list):  # collections: one style per member
        ls = ls[0] if ls else "-"
    if isinstance(ls, tuple):  # (offset, dash sequence) of a collection
        ls = "-" if ls[1] is None else str(tuple(ls[1]))
    ls = _NAMES.get(ls, ls)
    return "none" if ls in ("None", "none", "", " ") else str(ls)


def _is_guide(line) -> bool:
    """An unlabelled line across the whole axes (``axhline``/``axvline``, e.g. the zero line): a guide."""
    from matplotlib.transforms import BlendedAffine2D, BlendedGenericTransform

    return line.get_label().startswith("_") and isinstance(line.get_transform(), (BlendedAffine2D, BlendedGenericTransform))


def _data_lines(ax):
    return [ln for ln in ax.get_lines() if ln.get_visible() and len(ln.get_xdata()) >= 2 and not _is_guide(ln)]


def _legend_handles(ax) -> list:
    handles = []
    leg = ax.get_legend()
    legends = ([leg] if leg is not None else []) + list(ax.figure.legends)
    for lg in legends:
        handles += list(getattr(lg, "legend_handles", None) or getattr(lg, "legendHandles", []))
    return handles


def figure_problems(fig) -> list[str]:
    """Every rule of the module docstring that ``fig`` breaks, one string per problem (empty: fine)."""
    problems = []
    for i, ax in enumerate(fig.axes):
        name = f"axes {i}" + (f" {ax.get_title()!r}" if ax.get_title() else "")
        if not ax.get_visible():
            continue
        if _is_colorbar(ax):
            if not (ax.get_ylabel() or ax.get_xlabel()):
                problems.append(f"{name}: colourbar without a label")
            continue
        reason = getattr(ax, _EXEMPT, None)
        if reason:
            continue
        has_content = bool(ax.lines or ax.collections or ax.images or ax.patches or ax.texts)
        if not ax.axison:
            if has_content:
                problems.append(f"{name}: axis turned off without exempt(ax, reason)")
            continue
        for which in ("x", "y"):
            label = ax.get_xlabel() if which == "x" else ax.get_ylabel()
            if not label and not _shared_label(ax, which) and not _twin_label(ax, which):
                problems.append(f"{name}: no {which} label")
            ticks = ax.get_xticks() if which == "x" else ax.get_yticks()
            if len(ticks) == 0 and has_content:
                problems.append(f"{name}: no {which} ticks")
        lines = _data_lines(ax)
        handles = _legend_handles(ax)
        if len(lines) >= 2 and not handles:
            problems.append(f"{name}: {len(lines)} curves and no legend")
        if len(lines) >= 2 and handles:
            keyed = {_style(h) for h in handles if hasattr(h, "get_linestyle")}
            missing = sorted({_style(ln) for ln in lines} - keyed)
            if missing:
                problems.append(f"{name}: line style(s) {missing} have no key in the legend")
    return problems


def assert_figure_ok(fig, where: str = "figure") -> None:
    """Raise AssertionError listing `figure_problems` (for tests)."""
    probs = figure_problems(fig)
    if probs:
        raise AssertionError(f"{where}: " + "; ".join(probs))
