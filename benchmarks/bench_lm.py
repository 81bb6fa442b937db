"""Benchmark: `spinlens lm` with its defaults (time, peak memory, induction heads), with the machine's load.

Target: an induction head (`induction_head_formed`: max induction score >= 0.1 and a repeat advantage >= 1 nat)
in under 10 minutes and 4 GiB on 2 CPU cores. The load average is printed before and after: on a shared machine the
wall time is an upper bound of what a free machine gives.

    OMP_NUM_THREADS=2 python benchmarks/bench_lm.py --out /tmp/bench-lm
    python benchmarks/bench_lm.py --out /tmp/bench-lm-gpu --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

from spinlens.cli.main import main as cli


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="/tmp/bench-lm")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more 'spinlens lm' flags")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    code = cli(["lm", "--out", a.out, "--device", a.device, "--no-progress", *a.extra])
    wall = time.perf_counter() - t0
    load1 = os.getloadavg()
    run = json.load(open(os.path.join(a.out, "run.json")))
    s = run["summary"]
    res = {"exit_code": code, "wall_seconds": wall, "train_elapsed_s": s["train_elapsed_s"],
           "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "threads": a.threads,
           "cpu_count": os.cpu_count(), "loadavg_before": load0, "loadavg_after": load1, "device": a.device,
           "top_head": s["top_head"], "induction_head_formed": s["induction_head_formed"],
           "phase_change_step": s["phase_change_step"], "repeated_loss": s["repeated_loss"], "icl_score": s["icl_score"],
           "val_ppl": s["val_ppl"]}
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
