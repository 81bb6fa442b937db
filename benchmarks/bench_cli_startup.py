"""Start-up time of the command line: ``spinlens --help`` and one sub-command's help, in fresh interpreters.

The target is under 1 s of wall time on a free 2-core machine. A unit test checks the cause instead
(tests/cli/test_cli_audit.py: ``--help`` imports no heavy library), since a timed test fails whenever the
machine is loaded. This prints wall and CPU seconds (the CPU time of the child process, which load inflates
far less than the wall time) and the 1-minute load average, best and median of ``--repeats`` runs.

    python benchmarks/bench_cli_startup.py              # 5 repeats
    python benchmarks/bench_cli_startup.py --repeats 10
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

COMMANDS = (["--help"], ["sweep", "--help"], ["reproduce", "--help"])


def run_once(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system of the child) of ``python -m spinlens.cli.main ARGV``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "spinlens.cli.main", *argv], check=True, capture_output=True,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print(f"load average (1 min) at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"{'command':32s} {'wall best':>10s} {'wall median':>12s} {'cpu best':>9s} {'cpu median':>11s}")
    for argv in COMMANDS:
        runs = [run_once(argv) for _ in range(args.repeats)]
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        print(f"{'spinlens ' + ' '.join(argv):32s} {min(walls):9.2f}s {statistics.median(walls):11.2f}s "
              f"{min(cpus):8.2f}s {statistics.median(cpus):10.2f}s")


if __name__ == "__main__":
    main()
