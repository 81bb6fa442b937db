"""Named pretrained models: time of `spinlens models prepare NAME` from an empty cache, and of loading the
prepared folder (manifest check included), with peak memory.

    python benchmarks/bench_models.py                      # smollm2-135m into a fresh temporary cache
    python benchmarks/bench_models.py --name gemma3-270m --cache /path/to/cache   # reuse / fill a cache

Each phase runs in a fresh subprocess so that the load time includes importing torch and transformers, as a
new user's command would. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

PROBE = r"""
import json, resource, sys, time
t0 = time.perf_counter()
phase, name = sys.argv[1], sys.argv[2]
if phase == "prepare":
    from spinlens.models.pretrained import prepare
    prepare(name, force=True, progress=False)
else:
    from spinlens.interp.hf import load_hf
    m = load_hf(name)
    import torch
    with torch.no_grad():
        m(torch.tensor([[1, 2, 3]]))
print(json.dumps({"seconds": time.perf_counter() - t0,
                  "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""


def run(phase: str, name: str, env: dict) -> dict:
    r = subprocess.run([sys.executable, "-c", PROBE, phase, name], env=env, capture_output=True, text=True,
                       check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", default="smollm2-135m")
    ap.add_argument("--cache", default=None, help="cache folder (default: a new temporary one)")
    ap.add_argument("--loads", type=int, default=3, help="load repeats")
    a = ap.parse_args()
    cache = a.cache or tempfile.mkdtemp(prefix="spinlens-bench-cache-")
    env = {**os.environ, "SPINLENS_CACHE": cache}
    t = time.perf_counter()
    prep = run("prepare", a.name, env)
    loads = [run("load", a.name, env) for _ in range(a.loads)]
    print(json.dumps({"name": a.name, "cache": cache, "prepare": prep, "load": loads,
                      "load_seconds_min": min(x["seconds"] for x in loads), "wall_s": time.perf_counter() - t,
                      "loadavg": os.getloadavg()}))


if __name__ == "__main__":
    main()
