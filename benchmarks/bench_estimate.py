"""The time estimate against the measured time, for 10 solves and 10 trainings across methods and sizes.

Each run is its own ``spinlens ...`` process. A solve's JSON carries ``time_estimate_s`` (the calibrated flop
count of `spinlens.progress.estimate_solve_time`, printed before the work starts) and ``elapsed_s``
(measured, from argument parsing to the result). A training (``train``, ``zoo train``, ``lm``) carries
``time_estimate_s`` (`spinlens.progress.estimate_training_time`: the flops, torch calls and bytes of one
counted step, times the steps, plus the evaluations) and the measured seconds of the training loop
(``train_elapsed_s``; ``elapsed_s`` for ``zoo train``). Target: every ratio within a factor of 3.

Usage::

    python benchmarks/bench_estimate.py [--only solve|train] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CASES = [
    "--D 10 --N 50 --P 2000 --method exact",
    "--D 20 --N 100 --P 10000 --method exact",
    "--D 40 --N 40 --P 16000 --method exact",
    "--D 60 --N 60 --P 100000 --method exact --exact-backend cg --probes 0",
    "--D 20 --N 100 --P 10000 --method cavity",
    "--D 30 --N 100 --P 20000 --method cavity",
    "--D 20 --N 100 --P 10000 --method tap --steps 300",
    "--D 20 --N 50 --P 5000 --method sample",
    "--D 30 --N 50 --P 20000 --method sample --samples 2000",
    "--D 10 --N 50 --P 5000 --method langevin --steps 2000",
]

TRAININGS = [
    "train --D 5 --N 20 --P 2000 --epochs 100 --batch-size 100",
    "train --model separate --D 10 --N 50 --P 5000 --epochs 100",
    "zoo train --arch sla --D 10 --N 50 --P 5000 --steps 500",
    "zoo train --arch fla --D 5 --N 20 --P 2000 --steps 300",
    "zoo train --arch mhla --D 5 --N 40 --P 2000 --steps 300",
    "zoo train --arch sa --D 5 --N 20 --P 2000 --steps 300",
    "zoo train --arch tf --D 5 --N 20 --online --steps 60",
    "zoo train --arch tf --D 10 --N 50 --d-model 64 --online --steps 30 --batch-size 128",
    "lm --steps 60 --n-checkpoints 2 --eval-every 30 --max-chars 200000",
    "lm --steps 150 --d-model 64 --n-ctx 32 --batch-size 16 --n-checkpoints 2 --eval-every 50 --max-chars 200000",
]


def _training(case: str, exe: str, tmp: str):
    """(estimate, measured) of one training command, from its JSON output or run.json."""
    out = os.path.join(tmp, "out")
    cmd = [exe, *case.split(), "--out", out, "--force", "--no-progress"]
    if not case.startswith("train "):
        cmd.append("--json")
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode not in (0, 3):
        raise RuntimeError(f"failed ({p.returncode}): {p.stderr.strip()[-300:]}")
    if case.startswith("train "):
        with open(os.path.join(out, "run.json")) as f:
            rec = json.load(f)["summary"]
    else:
        rec = json.loads(p.stdout)
    wall = rec.get("train_elapsed_s", rec.get("elapsed_s"))
    return rec["time_estimate_s"], wall, rec.get("time_parts_s")


def main(argv=None) -> int:
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", default=None, help="write the rows to this JSON file")
    ap.add_argument("--only", default=None, choices=("solve", "train"), help="only the solves or the trainings")
    args = ap.parse_args(argv)
    exe = os.path.join(os.path.dirname(sys.executable), "spinlens")
    rows = []
    print(f"{'run':82s} {'estimate s':>10s} {'measured s':>10s} {'ratio':>6s}")
    jobs = ([("solve", c) for c in CASES] if args.only != "train" else []) + \
           ([("train", c) for c in TRAININGS] if args.only != "solve" else [])
    with tempfile.TemporaryDirectory() as tmp:
        for kind, case in jobs:
            try:
                if kind == "solve":
                    p = subprocess.run([exe, "solve", *case.split(), "--lam", "0.1", "--json"], capture_output=True,
                                       text=True)
                    if p.returncode not in (0, 3):
                        raise RuntimeError(f"failed ({p.returncode}): {p.stderr.strip()[-300:]}")
                    out = json.loads(p.stdout)
                    est, wall, parts = out["time_estimate_s"], out["elapsed_s"], out.get("time_parts_s")
                    label = "solve " + case
                else:
                    est, wall, parts = _training(case, exe, tmp)
                    label = case
            except RuntimeError as exc:
                print(f"{case}: {exc}")
                continue
            rows.append({"kind": kind, "case": label, "estimate_s": est, "measured_s": wall, "ratio": est / wall,
                         "parts": parts})
            print(f"{label:82s} {est:10.2f} {wall:10.2f} {est / wall:6.2f}", flush=True)
    for kind in ("solve", "train"):
        ratios = [r["ratio"] for r in rows if r["kind"] == kind]
        if ratios:
            inside = sum(1 / 3 <= x <= 3 for x in ratios)
            print(f"{kind}: ratios estimate/measured min {min(ratios):.2f}, max {max(ratios):.2f}; {inside} of "
                  f"{len(ratios)} within a factor of 3")
    print(f"load average {os.getloadavg()[0]:.1f} (1 min), OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
