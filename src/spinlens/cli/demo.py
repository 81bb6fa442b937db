"""``spinlens demo``: the main job on a small default — two paper figures beside the published numbers, and a report."""

from __future__ import annotations

from spinlens.cli._common import add_command

EXAMPLES = """  spinlens demo --out demo-out          # about 20 s on 2 cores
  spinlens demo --out demo-out --seed 3
"""

DEMO_FIGURES = ("fig4b", "fig2")


def register(sub) -> None:
    p = add_command(
        sub,
        "demo",
        "Reproduce Fig 4b and Fig 2 of the spin glass paper (quick mode) and write an HTML report.",
        EXAMPLES,
        _run,
    )
    p.add_argument("--out", default="demo-out", help="output folder")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    p.add_argument("--force", action="store_true", help="write into an OUT/FIG folder that holds files the figure did not write (they are kept)")


def _run(args) -> int:
    import os
    import time
    from pathlib import Path

    from spinlens.cli._common import check_out_dir
    from spinlens.errors import check_int

    check_int("--seed", args.seed, low=0)
    check_out_dir("--out", args.out)
    for name in DEMO_FIGURES:
        check_out_dir("--out", Path(args.out) / name, kind="reproduce", force=args.force)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import matplotlib

    matplotlib.use("Agg")
    from spinlens.report import build_report
    from spinlens.reproduce import run_figure

    t0 = time.perf_counter()
    out = Path(args.out)
    print(f"spinlens demo: reproducing {', '.join(DEMO_FIGURES)} (quick mode) into {out}/")
    results = [run_figure(name, out, quick=True, seed=args.seed, echo=print, force=args.force) for name in DEMO_FIGURES]
    report = build_report(out, title="spinlens demo")
    print()
    print("outputs:")
    for res in results:
        figs = [f for f in res["files"] if f.endswith(".png")]
        data = [f for f in res["files"] if f.endswith((".csv", ".nc"))]
        print(f"  {res['figure']:<6} figures: {', '.join(str(Path(res['out_dir']) / f) for f in figs)}")
        print(f"  {'':<6} data:    {', '.join(str(Path(res['out_dir']) / f) for f in data)}")
        print(f"  {'':<6} run:     {Path(res['out_dir']) / 'run.json'}")
    for res in results:
        worst = res.get("max_deviation")
        if worst:
            tol = worst.get("tolerance")
            verdict = ""
            if tol not in ("", None):
                verdict = f" (tolerance ±{tol:g}: {'ok' if worst.get('within') else 'NOT met'})"
            print(f"{res['figure']}: largest |ours - paper| = {abs(worst['deviation']):.4f}{verdict}")
    print(f"report: {report}")
    print(f"total {time.perf_counter() - t0:.1f} s")
    return 0
