"""Progress bars: one helper for every long loop of spinlens (commands, reproduce targets, examples).

`bar` wraps an iterable (or counts ``total`` steps) in a tqdm bar on stderr. It shows only where stderr is a
terminal (``enabled=None``, the default) or when asked (``enabled=True``), is silent otherwise (logs, pipes,
tests), and leaves no line behind, so the command's own output stays clean::

    from spinlens.progress import bar
    for step in bar(range(n_steps), desc="train"):
        ...
    with bar(total=n, desc="figS8") as b:
        b.set_postfix_str("N=50 sla"); b.update(1)
"""

from __future__ import annotations


def bar(iterable=None, *, desc: str, total: int | None = None, enabled: bool | None = None, unit: str = "it",
        leave: bool = False):
    """A tqdm progress bar over ``iterable`` (or ``total`` steps) on stderr.

    enabled : None (default: only when stderr is a terminal), True (always) or False (never).
    """
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, disable=None if enabled is None else not enabled, unit=unit,
                leave=leave)
