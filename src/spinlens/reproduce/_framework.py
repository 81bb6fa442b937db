"""Shared machinery of `spinlens reproduce`: saving figures and data, run.json, paper-vs-ours tables.

Contract of a figure module ``spinlens.reproduce.<fig>``: a function

    run(out_dir, quick=True, seed=0) -> dict

that writes its figure(s) (PNG + PDF) and the data behind them into ``out_dir`` (the figure's own
folder, ``DIR/<fig>/``, created beforehand) and returns a dict with any of the keys

* ``"parameters"``: the parameters actually used (JSON-friendly),
* ``"comparison"``: rows made by `comparison_rows` (ours beside the paper's published numbers),
* ``"summary"``: a few headline numbers,
* ``"notes"``: strings explaining caveats (e.g. which published numbers are known to be off),
* ``"headline_quantity"``: the comparison quantity whose largest deviation heads run.json and the
  report (default: all rows).

`run_figure` wraps the call: it times it, writes ``paper_vs_ours.csv`` and ``run.json`` (parameters,
seed, mode, package versions, git sha, wall time, largest deviation) and returns the augmented dict.
"""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path

COMPARISON_FILE = "paper_vs_ours.csv"
RUN_FILE = "run.json"
COMPARISON_FIELDS = ["quantity", "x_name", "x", "paper", "ours", "deviation", "tolerance", "within"]

# the writers live in spinlens.io (one place for every output); re-exported here for the figure modules
from spinlens.io import (  # noqa: E402,F401
    git_sha,
    package_versions,
    save_columns,
    save_dataset,
    save_figure,
    write_run_json,
)


def comparison_rows(quantity: str, x_name: str, xs, paper, ours, *, tolerance: float | None = None) -> list[dict]:
    """Rows of a paper-vs-ours table: one per x, with deviation = ours − paper.

    Parameters
    ----------
    quantity : str
        What is compared (e.g. ``"test error (cavity)"``).
    x_name : str
        Name of the abscissa (e.g. ``"N"``).
    xs, paper, ours : sequences of equal length
        Abscissae, published values and our values (NaN where ours is missing).
    tolerance : float, optional
        Agreement required; sets ``within`` in each row.
    """
    rows = []
    for x, p, o in zip(xs, paper, ours, strict=True):
        p = float(p)
        o = float(o)
        dev = o - p if math.isfinite(o) else float("nan")
        within = "" if tolerance is None else bool(math.isfinite(dev) and abs(dev) <= tolerance)
        rows.append(
            {
                "quantity": quantity,
                "x_name": x_name,
                "x": x,
                "paper": p,
                "ours": o,
                "deviation": dev,
                "tolerance": "" if tolerance is None else tolerance,
                "within": within,
            }
        )
    return rows


def _missing(r) -> bool:
    d = r.get("deviation")
    return d is None or (isinstance(d, float) and math.isnan(d))


def max_deviation(rows: list[dict]) -> dict | None:
    """The row with the largest |ours − paper| among rows where ours exists (None if there is none).

    Rows without our value (e.g. a solver that did not converge) are counted by `format_comparison`.
    """
    finite = [r for r in rows if not _missing(r)]
    if not finite:
        return None
    return max(finite, key=lambda r: abs(r["deviation"]))


def write_comparison(rows: list[dict], out_dir) -> str:
    """Write the paper-vs-ours rows to ``paper_vs_ours.csv`` under ``out_dir``; return the path."""
    from spinlens.io import atomic_path

    path = Path(out_dir) / COMPARISON_FILE
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COMPARISON_FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: _csv_value(r.get(k, "")) for k in COMPARISON_FIELDS})
    return str(path)


def _csv_value(v):
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return v


def format_comparison(rows: list[dict]) -> str:
    """Human-readable paper-vs-ours table, ending with the largest deviation."""
    if not rows:
        return ""
    lines = [f"{'quantity':<34} {'x':>10} {'paper':>9} {'ours':>9} {'ours-paper':>11}"]
    for r in rows:
        x = r["x"]
        xs = f"{r['x_name']}={x:g}" if isinstance(x, (int, float)) else f"{r['x_name']}={x}"
        flag = ""
        if r.get("within") is False:
            flag = "  (outside ±" + f"{r['tolerance']:g})"
        lines.append(
            f"{r['quantity'][:34]:<34} {xs:>10} {r['paper']:>9.4f} {_f(r['ours']):>9} {_f(r['deviation'], sign=True):>11}{flag}"
        )
    worst = max_deviation(rows)
    missing = sum(_missing(r) for r in rows)
    quantities = list(dict.fromkeys(r["quantity"] for r in rows))
    if len(quantities) > 1:
        for q in quantities:
            w = max_deviation([r for r in rows if r["quantity"] == q])
            txt = "n/a" if w is None else f"{_f(w['deviation'], sign=True)} at {w['x_name']}={w['x']}"
            lines.append(f"  largest deviation, {q}: {txt}")
    if worst is None:
        lines.append("largest deviation: n/a (none of our values exists)")
    else:
        lines.append(
            f"largest deviation: {_f(worst['deviation'], sign=True)} ({worst['quantity']}, {worst['x_name']}={worst['x']})"
        )
    if missing:
        lines.append(f"{missing} of {len(rows)} values missing on our side (n/a: e.g. the solver did not converge)")
    return "\n".join(lines)


def _f(v, sign=False):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:+.4f}" if sign else f"{v:.4f}"


class Timer:
    """Wall-clock timer used as a context manager: ``with Timer() as t: ...; t.seconds``."""

    def __enter__(self):
        self._t0 = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self._t0
        return False


def announce(name: str, index: int, total: int, *, quick: bool, description: str = "", stream=None) -> str:
    """Say on stderr that a figure starts (``reproduce [2/11] fig4a (quick): ... started``); returns the line.

    Long figures (fig4a's sweeps, figS8's training) then show a progress bar of their own.
    """
    import sys

    stream = sys.stderr if stream is None else stream
    where = f" [{index}/{total}]" if total > 1 else ""
    line = f"reproduce{where} {name} ({'quick' if quick else 'full'}): {description} ... started".replace(":  ...", " ...")
    print(line, file=stream, flush=True)
    return line


def progress(iterable, *, desc: str, total: int | None = None):
    """A tqdm progress bar on stderr (silent when stderr is not a terminal): `spinlens.progress.bar`."""
    from spinlens.progress import bar

    return bar(iterable, desc=desc, total=total)


def mean_std(values):
    """Mean and sd over the last axis (the seeds), ignoring NaN (NaN where nothing is finite): `spinlens.verdict.
    mean_sd`, ddof 1 like every mean ± sd of spinlens (0 over one finite value)."""
    from spinlens.verdict import mean_sd

    return mean_sd(values, axis=-1, skipna=True)
