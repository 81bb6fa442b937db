"""Benchmark: guided quantization of SmolLM2-135M, search plus evaluation, with the load.

Runs `spinlens quantize --model smollm2-135m --study` (guided 3.4 bits vs uniform 3/4, random allocations,
HQQ and torchao at 4 bits, the Q4_1-aligned group sizes 32 and 64) and prints the wall time of the search
(cost table + knapsack) and of the evaluations, peak memory and the load average before and after: on a
shared machine the wall time is an upper bound of what a free machine gives.

    OMP_NUM_THREADS=2 python benchmarks/bench_llm_quant.py --out /tmp/bench-llm-quant
    python benchmarks/bench_llm_quant.py --out /tmp/q96 --extra --group-size 96
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
    ap.add_argument("--out", default="/tmp/bench-llm-quant")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more 'spinlens quantize' flags")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    code = cli(["quantize", "--model", "smollm2-135m", "--study", "--importance", "fisher", "--budget", "3.4",
                "--group-size", "48", "--n-random", "3", "--n-seq", "8", "--seq-len", "128", "--out", a.out,
                "--no-progress", *a.extra])
    wall = time.perf_counter() - t0
    res = json.load(open(os.path.join(a.out, "result.json")))
    print(json.dumps({"exit_code": code, "wall_seconds": wall, **{f"{k}_seconds": v for k, v in res["seconds"].items()},
                      "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                      "threads": a.threads, "load_before": load0, "load_after": os.getloadavg()}, indent=1))


if __name__ == "__main__":
    main()
