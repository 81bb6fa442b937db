"""Precise tuning of SmolLM2-135M: gain and cost along training, every method, 3 seeds.

Runs `spinlens.llm.tuning.precise_tuning` (the library call behind ``spinlens pinpoint --model smollm2-135m
--task arithmetic``), appends every evaluation row to ``OUT/rows.jsonl`` as it comes (a long run on a shared
CPU can be read while it goes), then writes ``OUT/summary.json`` (the ``--json`` of the command), the headline,
and the wall time, peak memory (ru_maxrss) and per-method step times (the issue's targets).

    SPINLENS_CACHE=/work/cache python benchmarks/bench_llm_tuning.py --out /tmp/tune-arith
    python benchmarks/bench_llm_tuning.py --task icl --methods located random full --out /tmp/tune-icl
    python benchmarks/bench_llm_tuning.py --seeds 0 --out /tmp/tune-one      # the one-seed timing target
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--task", choices=("arithmetic", "icl"), default="arithmetic")
    ap.add_argument("--methods", nargs="+", default=["located", "random", "full", "lora"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--k-heads", type=int, default=6)
    ap.add_argument("--k-mlps", type=int, default=2)
    ap.add_argument("--locate", choices=("study", "attribution"), default="study")
    ap.add_argument("--n-eval", type=int, default=32, help="prompts per held-out gain set")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--save-models", action="store_true", help="also write OUT/models/METHOD/seedS")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)

    import torch

    torch.set_num_threads(a.threads)
    from transformers import AutoTokenizer

    from spinlens.cli._edit_llm import headline, summarize
    from spinlens.interp.hf import load_hf
    from spinlens.llm import tuning
    from spinlens.models.pretrained import resolve_model

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model = load_hf(a.model)
    tok = AutoTokenizer.from_pretrained(str(resolve_model(a.model)), local_files_only=True)
    t_load = time.perf_counter() - t0
    data = (tuning.arithmetic_data(n_eval=a.n_eval, seed=0) if a.task == "arithmetic"
            else tuning.icl_data(n_eval=a.n_eval, seed=0))
    log = open(out / "rows.jsonl", "a")

    def on_eval(row):
        log.write(json.dumps(row) + "\n")
        log.flush()

    def say(s):
        print(f"[{time.strftime('%H:%M:%S')}] {s}", flush=True)

    t1 = time.perf_counter()
    res = tuning.precise_tuning(model, tok, data, methods=a.methods, seeds=a.seeds, steps=a.steps, lr=a.lr,
                                batch_size=a.batch_size, eval_every=a.eval_every, k_heads=a.k_heads,
                                k_mlps=a.k_mlps, locate=a.locate, save_dir=out / "models" if a.save_models else None,
                                progress=say, on_eval=on_eval)
    wall = time.perf_counter() - t1
    summary = summarize(res)
    summary["timing"] = {"load_s": t_load, "tuning_wall_s": wall, "peak_rss_mb": resource.getrusage(
        resource.RUSAGE_SELF).ru_maxrss / 1024, "threads": a.threads, "loadavg": os.getloadavg(),
        "step_time_s": res.step_time}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    text = headline(res) + f"\nwall {wall:.0f} s (load {t_load:.0f} s), peak RSS {summary['timing']['peak_rss_mb']:.0f} MB, " \
        f"load average {os.getloadavg()[0]:.1f}"
    (out / "headline.txt").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
