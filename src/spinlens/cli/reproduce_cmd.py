"""``spinlens reproduce FIG``: regenerate a figure of the spin glass paper beside its published numbers."""

from __future__ import annotations

from spinlens.cli._common import add_command

EXAMPLES = """  spinlens reproduce fig4b --out repro            # quick: about 10 s, table vs the paper
  spinlens reproduce fig4b --full --out repro     # the paper's parameters (P=10000, N=20..200)
  spinlens reproduce all --out repro && spinlens report repro
"""


def register(sub) -> None:
    import argparse

    from spinlens.reproduce import FIGURES

    p = add_command(
        sub,
        "reproduce",
        "Reproduce a figure of Li, Bai & Huang (arXiv 2408.02288): figure, data, run.json, paper-vs-ours table.",
        EXAMPLES,
        _run,
    )
    p.add_argument("figure", metavar="FIG", help=f"one of: {', '.join(FIGURES)}, all")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="full", action="store_false", default=argparse.SUPPRESS,
                      help="small parameters, seconds to half a minute per figure (figS8, which trains six models: about 3 minutes) (the default mode)")
    mode.add_argument("--full", dest="full", action="store_true", default=argparse.SUPPRESS,
                      help="the paper's parameters (slow: fig4a --full is 25000 cavity solves)")
    p.add_argument("--out", default="repro-out", help="output folder; the figure goes to OUT/FIG/")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    p.add_argument("--force", action="store_true", help="write into an OUT/FIG folder that holds files the figure did not write (they are kept)")
    p.add_argument("--json", action="store_true", help="print a JSON summary instead of the tables")


def _run(args) -> int:
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import matplotlib

    matplotlib.use("Agg")
    from spinlens.cli._common import print_json
    from spinlens.reproduce import reproduce_run

    summaries = reproduce_run(args.figure, args.out, quick=not getattr(args, "full", False), seed=args.seed,
                              echo=None if args.json else print, force=args.force)
    if args.json:
        print_json(summaries if len(summaries) != 1 else summaries[0])
    elif len(summaries) > 1:
        print(f"done: {len(summaries)} figures under {args.out}; view them with: spinlens report {args.out}")
    return 0
