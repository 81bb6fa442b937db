"""Every command line of the README at full size, in order, timed against the duration its comment states.

The README's lines each start their comment with a wall time on 2 free CPU cores (``# ~3 s: ...``,
``# ~7 min: ...``; `tests/project/test_readme.py` checks that every line has one and runs them all shrunk).
This runs them as written, in a scratch copy of ``examples/`` (outputs under ``runs/`` there), and prints
measured vs stated; a line over 2x its stated time, or a line that fails, is flagged and makes the exit code 1.

    taskset -c 0,1 python benchmarks/bench_readme.py                   # everything: about 1.5 h on 2 cores
    python benchmarks/bench_readme.py --max-stated 120                 # only lines stated at <= 2 min
    python benchmarks/bench_readme.py --json timings.json              # also write the table
    python benchmarks/bench_readme.py --only 'prompts|method sample'   # only the lines matching a regex

After the run it lists anything the lines wrote outside ``runs/`` and ``examples/`` (README outputs belong
under ``runs/``, which .gitignore covers).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_helpers():
    spec = importlib.util.spec_from_file_location("test_readme", ROOT / "tests" / "project" / "test_readme.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _children_cpu() -> float:
    """User + system CPU seconds of the finished child processes (on a loaded machine a better guide to the
    wall time on free cores than the wall time itself, for a command that uses one core)."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-stated", type=float, default=None, help="skip lines stated above this many seconds")
    ap.add_argument("--json", default=None, help="write the table as JSON here")
    ap.add_argument("--only", default=None, help="run only the lines matching this regular expression (a line "
                    "that needs an earlier line's output needs that line matched too)")
    args = ap.parse_args(argv)
    t = _readme_helpers()
    lines = [(part, seconds if i == 0 else 0.0) for parts, seconds in t.readme_durations() for i, part in enumerate(parts)]
    print(f"load average (1, 5, 15 min) at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    rows, bad = [], 0  # a line 'A && B' states the time of both: counted on A, B is stated 0 (not judged)
    with tempfile.TemporaryDirectory(prefix="spinlens-readme-") as tmp:
        shutil.copytree(ROOT / "examples", Path(tmp) / "examples")
        shutil.copy(ROOT / "constraints.txt", Path(tmp) / "constraints.txt")
        for line, want in lines:
            if args.max_stated is not None and want is not None and want > args.max_stated:
                print(f"  skip   {want:8.0f} s stated  {line}", flush=True)
                continue
            if args.only is not None and not re.search(args.only, line):
                continue
            argv_ = shlex.split(line)
            env = dict(os.environ)
            while "=" in argv_[0]:
                k, v = argv_.pop(0).split("=", 1)
                env[k] = v
            if argv_[0] == "spinlens":
                argv_ = [sys.executable, "-m", "spinlens.cli.main", *argv_[1:]]
            elif argv_[0] == "python":
                argv_ = [sys.executable, *argv_[1:]]
            t0, c0 = time.perf_counter(), _children_cpu()
            r = subprocess.run(argv_, cwd=tmp, env=env, capture_output=True, text=True)
            dt, cpu = time.perf_counter() - t0, _children_cpu() - c0
            ok = r.returncode == 0 and (not want or dt <= 2 * want)
            bad += not ok
            rows.append({"line": line, "stated_s": want, "measured_s": round(dt, 1), "cpu_s": round(cpu, 1),
                         "exit": r.returncode, "load_1min": round(os.getloadavg()[0], 2)})
            flag = "" if ok else ("  <-- FAILED" if r.returncode else "  <-- over 2x the stated time")
            print(f"{dt:8.1f} s measured ({cpu:7.1f} s CPU) {want or float('nan'):8.0f} s stated  (load {os.getloadavg()[0]:4.1f})  {line}{flag}",
                  flush=True)
        stray = sorted(p.name for p in Path(tmp).iterdir() if p.name not in ("runs", "examples", "constraints.txt"))
        print("written outside runs/: " + (", ".join(stray) if stray else "nothing"))
        bad += bool(stray)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
