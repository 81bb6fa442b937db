"""Reproduce the figures of Li, Bai & Huang, *Spin glass model of in-context learning* (arXiv 2408.02288).

Each figure is a module ``spinlens.reproduce.<fig>`` with ``run(out_dir, quick=True, seed=0) -> dict``
(see `spinlens.reproduce._framework` for the contract). `run_figure` runs one of them into
``DIR/<fig>/`` and records ``run.json`` and the paper-vs-ours table; `FIGURES` lists them.

Examples
--------
>>> from spinlens.reproduce import FIGURES
>>> "fig4b" in FIGURES
True
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from spinlens.errors import InvalidParameterError, check_int

#: figure name -> (module, one-line description)
FIGURES: dict[str, tuple[str, str]] = {
    "fig1": ("spinlens.reproduce.fig1", "couplings J and fields h and the distributions of their blocks"),
    "fig2": ("spinlens.reproduce.fig2", "trained W (P=10 vs P=1000) and the cavity solution m, v"),
    "fig3": ("spinlens.reproduce.fig3", "energy landscape: t-SNE of random W, P=10 vs P=1000"),
    "fig4a": ("spinlens.reproduce.fig4a", "contrast ratio of the cavity solution over (N, P)"),
    "fig4b": ("spinlens.reproduce.fig4b", "test error vs N: cavity, exact ridge, published points"),
    "figS1": ("spinlens.reproduce.figS1", "double descent of the test error vs alpha = P/D^2"),
    "figS2": ("spinlens.reproduce.figS2", "KL divergence of the coupling-block distributions vs N"),
    "figS4": ("spinlens.reproduce.figS4", "test error vs the correlation c between positions"),
    "figS5": ("spinlens.reproduce.figS5", "token covariance spectrum vs Marchenko-Pastur"),
    "figS7": ("spinlens.reproduce.figS7", "Hessian zero-mode fraction vs P for several D"),
    "fss": ("spinlens.reproduce.fss", "finite-size scaling: exact and TAP test error vs the asymptotic theory, D = 10…40 (--full: 10…160)"),
    "tapmap": ("spinlens.reproduce.tapmap", "where the TAP update and the paper's cavity update converge over (N, P), D=20"),
    "figS8": ("spinlens.reproduce.figS8", "test error vs N for cavity, SLA, FLA, MHLA, SA, TF (trains six models: ~3 min quick on 2 free cores)"),
}


def available() -> list[str]:
    """Names of the figures whose module can be imported now (figS8 only once its module exists)."""
    out = []
    for name, (mod, _) in FIGURES.items():
        if importlib.util.find_spec(mod) is not None:
            out.append(name)
    return out


def run_figure(name: str, out_dir, *, quick: bool = True, seed: int = 0, echo=None, force: bool = False) -> dict:
    """Run one figure into ``out_dir/<name>/`` and write ``run.json`` and ``paper_vs_ours.csv``.

    Parameters
    ----------
    name : str
        One of `FIGURES`.
    out_dir : path
        Parent folder; the figure writes into ``out_dir/<name>/``.
    quick : bool
        Small, fast parameters (default) or the paper's (``False``).
    seed : int
        Seed of every random draw of the run (stored in run.json).
    echo : callable, optional
        Called with text lines to show (the CLI passes ``print``).
    force : bool
        Write into an ``out_dir/<name>/`` that holds other files (kept). The folder is one transaction
        (`spinlens.io.run_folder`, kind ``"reproduce"``): a figure folder is replaced whole or not at all, and
        one holding files the figure did not write is refused unless ``force``.

    Returns
    -------
    dict
        The module's result plus ``figure``, ``mode``, ``seed``, ``elapsed_s``, ``out_dir``,
        ``files``, ``max_deviation`` and ``table`` (the formatted paper-vs-ours table).
    """
    from spinlens.reproduce import _framework as fw

    if name not in FIGURES:
        raise InvalidParameterError(
            f"The 'figure' parameter must be one of {{{', '.join(FIGURES)}, all}}. Got {name!r} instead."
        )
    seed = check_int("seed", seed, low=0)
    mod_name = FIGURES[name][0]
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as exc:
        if exc.name == mod_name:
            raise InvalidParameterError(
                f"The figure {name!r} is not available in this installation (module {mod_name} is missing)."
            ) from None
        raise
    from spinlens.io import run_folder

    final = Path(out_dir) / name
    with run_folder(final, kind="reproduce", force=force) as fig_dir:
        with fw.Timer() as timer:
            result = mod.run(fig_dir, quick=quick, seed=seed)
        result = dict(result or {})
        rows = list(result.get("comparison") or [])
        table = ""
        if rows:
            fw.write_comparison(rows, fig_dir)
            table = fw.format_comparison(rows)
        headline = result.get("headline_quantity")
        worst = fw.max_deviation([r for r in rows if r["quantity"] == headline] if headline else rows)
        files = sorted(str(p.relative_to(fig_dir)) for p in fig_dir.rglob("*") if p.is_file() and not p.name.startswith("."))
        if fw.RUN_FILE not in files:
            files.append(fw.RUN_FILE)
        from spinlens.vocabulary import to_symbols

        record = {
            "figure": name,
            "description": FIGURES[name][1],
            "mode": "quick" if quick else "full",
            "seed": seed,
            "parameters": to_symbols(result.get("parameters", {})),  # keys: docs/vocabulary.md
            "summary": result.get("summary", {}),
            "notes": result.get("notes", []),
            "max_deviation": worst,
            "elapsed_s": round(timer.seconds, 3),
            "files": files,
            "versions": fw.package_versions(),
            "git_sha": fw.git_sha(),
        }
        fw.write_run_json(fig_dir, record)
    fig_dir = final
    out = {**result, **record, "out_dir": str(fig_dir), "table": table}
    if echo is not None:
        echo(f"== {name} ({record['mode']}): {FIGURES[name][1]}")
        if table:
            echo(table)
        for note in record["notes"]:
            echo(f"note: {note}")
        echo(f"wrote {len(files)} files to {fig_dir} in {timer.seconds:.1f} s")
    return out


def reproduce_run(figure: str, out_dir, *, quick: bool = True, seed: int = 0, echo=None, force: bool = False,
                  announce: bool = True, device: str | None = None) -> list[dict]:
    """What ``spinlens reproduce FIG`` does: `run_figure` for ``figure`` (a name of `FIGURES`, or ``"all"``:
    every available one) into ``out_dir/<fig>/``, after checking the seed and every output folder (one line
    each, before any work). ``announce``: a start line per figure on stderr (`_framework.announce`);
    ``device``: the torch device of figS8's training.

    Returns one summary per figure: ``figure``, ``mode``, ``out_dir``, ``elapsed_s``, ``max_deviation``,
    ``summary``.
    """
    from spinlens.io import check_out_dir
    from spinlens.reproduce._framework import announce as say

    if figure == "all":
        names = [n for n in FIGURES if n in available()]
    elif figure in FIGURES:
        names = [figure]
    else:
        raise InvalidParameterError(
            f"The 'FIG' argument must be one of {{{', '.join(FIGURES)}, all}}. Got {figure!r} instead."
        )
    check_int("--seed", seed, low=0)
    check_out_dir("--out", out_dir)
    for name in names:
        check_out_dir("--out", Path(out_dir) / name, kind="reproduce", force=force)
    if device is not None:
        import importlib

        from spinlens.errors import check_device

        # through the registry, as `run_figure` loads every figure module (the package stays above them)
        figS8 = importlib.import_module(FIGURES["figS8"][0])
        setattr(figS8, "DEFAULT_DEVICE", check_device("--device", device))  # noqa: B010 (a module loaded by name)
    summaries = []
    for k, name in enumerate(names, 1):
        if announce:
            say(name, k, len(names), quick=quick, description=FIGURES[name][1])
        res = run_figure(name, out_dir, quick=quick, seed=seed, echo=echo, force=force)
        summaries.append({"figure": name, "mode": res["mode"], "out_dir": res["out_dir"], "elapsed_s": res["elapsed_s"],
                          "max_deviation": res["max_deviation"], "summary": res.get("summary", {})})
    return summaries


#: the figures of ``spinlens demo``
DEMO_FIGURES = ("fig4b", "fig2")


def demo_run(out_dir, *, figures=DEMO_FIGURES, seed: int = 0, force: bool = False, echo=print) -> list[str]:
    """What ``spinlens demo`` does: ``figures`` in quick mode into ``out_dir`` and an HTML report of them
    (`spinlens.report.build_report`). ``echo`` shows the progress; returns the closing lines: the files of each
    figure, its largest deviation from the paper against the tolerance, the report and the total time."""
    import time

    from spinlens.io import check_out_dir
    from spinlens.report import build_report

    check_int("--seed", seed, low=0)
    check_out_dir("--out", out_dir)
    for name in figures:
        check_out_dir("--out", Path(out_dir) / name, kind="reproduce", force=force)
    t0 = time.perf_counter()
    out = Path(out_dir)
    echo(f"spinlens demo: reproducing {', '.join(figures)} (quick mode) into {out}/")
    results = [run_figure(name, out, quick=True, seed=seed, echo=echo, force=force) for name in figures]
    report = build_report(out, title="spinlens demo")
    lines = ["", "outputs:"]
    for res in results:
        where = Path(res["out_dir"])
        figs = [f for f in res["files"] if f.endswith(".png")]
        data = [f for f in res["files"] if f.endswith((".csv", ".nc"))]
        lines.append(f"  {res['figure']:<6} figures: {', '.join(str(where / f) for f in figs)}")
        lines.append(f"  {'':<6} data:    {', '.join(str(where / f) for f in data)}")
        lines.append(f"  {'':<6} run:     {where / 'run.json'}")
    for res in results:
        worst = res.get("max_deviation")
        if worst:
            tol = worst.get("tolerance")
            verdict = ""
            if tol not in ("", None):
                verdict = f" (tolerance ±{tol:g}: {'ok' if worst.get('within') else 'NOT met'})"
            lines.append(f"{res['figure']}: largest |ours - paper| = {abs(worst['deviation']):.4f}{verdict}")
    lines += [f"report: {report}", f"total {time.perf_counter() - t0:.1f} s"]
    return lines
