"""``spinlens demo``: the main job on a small default — two paper figures beside the published numbers, and a report."""

from __future__ import annotations

from spinlens.cli._common import add_command
from spinlens.reproduce import DEMO_FIGURES

EXAMPLES = """  spinlens demo --out demo-out          # about 20 s on 2 cores
  spinlens demo --out demo-out --seed 3
"""

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

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import matplotlib

    matplotlib.use("Agg")
    from spinlens.reproduce import demo_run

    for line in demo_run(args.out, figures=DEMO_FIGURES, seed=args.seed, force=args.force, echo=print):
        print(line)
    return 0
