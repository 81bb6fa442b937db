"""The time estimate of `spinlens solve` against the measured time, for 10 solves across methods and sizes.

Each solve runs as its own ``spinlens solve ... --json`` process; the JSON carries ``time_estimate_s`` (the
calibrated flop count of `spinlens.progress.estimate_solve_time`, printed before the work starts) and
``elapsed_s`` (measured, from argument parsing to the result). Target: every ratio within a factor of 3.

Usage::

    python benchmarks/bench_estimate.py [--json out.json]
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", default=None, help="write the rows to this JSON file")
    args = ap.parse_args(argv)
    exe = os.path.join(os.path.dirname(sys.executable), "spinlens")
    rows = []
    print(f"{'solve':70s} {'estimate s':>10s} {'measured s':>10s} {'ratio':>6s}")
    for case in CASES:
        cmd = [exe, "solve", *case.split(), "--lam", "0.1", "--json"]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode not in (0, 3):
            print(f"{case}: failed ({p.returncode}): {p.stderr.strip()[-300:]}")
            continue
        out = json.loads(p.stdout)
        est, wall = out["time_estimate_s"], out["elapsed_s"]
        rows.append({"case": case, "estimate_s": est, "measured_s": wall, "ratio": est / wall,
                     "parts": out.get("time_parts_s")})
        print(f"{case:70s} {est:10.2f} {wall:10.2f} {est / wall:6.2f}")
    ratios = [r["ratio"] for r in rows]
    if ratios:
        print(f"ratios estimate/measured: min {min(ratios):.2f}, max {max(ratios):.2f} "
              f"(load average {os.getloadavg()[0]:.1f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
