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
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

COMPARISON_FILE = "paper_vs_ours.csv"
RUN_FILE = "run.json"
COMPARISON_FIELDS = ["quantity", "x_name", "x", "paper", "ours", "deviation", "tolerance", "within"]

_VERSION_PACKAGES = ["numpy", "scipy", "xarray", "matplotlib", "scikit-learn", "torch", "netCDF4", "pandas"]


def package_versions() -> dict:
    """Versions of Python, spinlens and the main scientific packages (read from metadata, no imports)."""
    from importlib import metadata

    from spinlens import __version__

    out = {"python": sys.version.split()[0], "platform": platform.platform(), "spinlens": __version__}
    for name in _VERSION_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_sha() -> str | None:
    """The git commit of the spinlens source tree, or None outside a checkout."""
    here = Path(__file__).resolve().parent
    try:
        res = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = res.stdout.strip()
    return sha if res.returncode == 0 and sha else None


def save_figure(fig, out_dir, stem: str) -> list[str]:
    """Write ``fig`` as ``<stem>.png`` and ``<stem>.pdf`` under ``out_dir``, close it, return the paths."""
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        p = out_dir / f"{stem}.{ext}"
        fig.savefig(p)
        paths.append(str(p))
    plt.close(fig)
    return paths


def save_dataset(ds, out_dir, name: str = "data") -> str:
    """Write an ``xarray.Dataset`` to ``<name>.nc`` (NetCDF) under ``out_dir`` atomically; return the path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.nc"
    tmp = out_dir / f".{name}.nc.tmp"
    ds = ds.copy()
    # NetCDF attributes must be str/number/array: stringify anything else (bools, None, dicts)
    for obj in [ds, *ds.variables.values()]:
        for k, v in list(obj.attrs.items()):
            if isinstance(v, bool) or v is None or isinstance(v, (dict, list, tuple)):
                obj.attrs[k] = json.dumps(v)
    ds.to_netcdf(tmp)
    os.replace(tmp, path)
    return str(path)


def save_columns(columns: dict, out_dir, name: str = "data") -> str:
    """Write equal-length 1-D columns ``{header: values}`` as ``<name>.csv``; return the path."""
    import numpy as np

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cols = {k: np.asarray(v).ravel() for k, v in columns.items()}
    lengths = {len(v) for v in cols.values()}
    if len(lengths) != 1:
        raise ValueError(f"columns must have equal lengths; got { {k: len(v) for k, v in cols.items()} }")
    path = out_dir / f"{name}.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(list(cols))
        for row in zip(*cols.values()):
            w.writerow([_fmt_cell(v) for v in row])
    return str(path)


def _fmt_cell(v):
    if isinstance(v, (float,)) or hasattr(v, "dtype") and getattr(v.dtype, "kind", "") == "f":
        x = float(v)
        return "" if math.isnan(x) else repr(x)
    if hasattr(v, "item"):
        return v.item()
    return v


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
    path = Path(out_dir) / COMPARISON_FILE
    with open(path, "w", newline="") as fh:
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


def write_run_json(out_dir, record: dict) -> str:
    """Write ``run.json`` (JSON-friendly: numpy values and non-finite floats converted) atomically."""
    from spinlens.cli._common import jsonable

    out_dir = Path(out_dir)
    path = out_dir / RUN_FILE
    tmp = out_dir / f".{RUN_FILE}.tmp"
    with open(tmp, "w") as fh:
        json.dump(jsonable(record), fh, indent=2, sort_keys=False)
        fh.write("\n")
    os.replace(tmp, path)
    return str(path)


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
    """A tqdm progress bar on stderr (silent when stderr is not a terminal)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, disable=None, leave=False)


def mean_std(values):
    """Mean and standard deviation over the last axis, ignoring NaN (NaN where nothing is finite)."""
    import warnings

    import numpy as np

    a = np.asarray(values, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(a, axis=-1), np.nanstd(a, axis=-1)
