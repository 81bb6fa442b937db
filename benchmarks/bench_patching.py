"""Benchmark: activation patching of every head of a 4-layer, 8-head transformer over 256 prompt pairs.

Target: under 30 s on 2 CPU cores, batched over prompts and variants (no Python loop over prompts).

    OMP_NUM_THREADS=2 python benchmarks/bench_patching.py            # regression prompts, heads
    OMP_NUM_THREADS=2 python benchmarks/bench_patching.py --per-position --tokens
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from spinlens.interp import (
    activation_patch,
    logit_diff_metric,
    path_patch,
    projection_metric,
    regression_pairs,
    token_icl_pairs,
)
from spinlens.models.transformer import Transformer, TransformerConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-prompts", type=int, default=256)
    ap.add_argument("--d", type=int, default=10)
    ap.add_argument("--n-context", type=int, default=32)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", action="store_true", help="token model on the in-context token task instead")
    ap.add_argument("--per-position", action="store_true", help="also patch every (head, position)")
    ap.add_argument("--path", action="store_true", help="also path-patch every head → output")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.tokens:
        tp = token_icl_pairs(args.n_prompts, n_pairs=8, n_inputs=24, n_labels=8, rng=0)
        cfg = TransformerConfig(n_layers=4, n_heads=8, d_model=args.d_model, input_kind="tokens", d_vocab=tp.d_vocab, max_pos=64)
        model = Transformer(cfg, rng=0).eval()
        clean, corrupt = tp.clean, tp.corrupt
        metric = logit_diff_metric(tp.answer, tp.corrupt_answer)
    else:
        cfg = TransformerConfig(n_layers=4, n_heads=8, d_model=args.d_model, d_in=args.d + 1, max_pos=args.n_context + 1)
        model = Transformer(cfg, rng=0).eval()
        pr = regression_pairs(args.d, args.n_context, args.n_prompts, rng=0)
        clean, corrupt = pr.clean, pr.corrupt
        with torch.no_grad():
            metric = projection_metric(model(clean), model(corrupt))
    res = {"n_layers": 4, "n_heads": 8, "d_model": args.d_model, "n_prompts": args.n_prompts,
           "seq_len": int(clean.shape[-1]), "threads": args.threads, "kind": "tokens" if args.tokens else "regression"}
    t, c = time.perf_counter(), time.process_time()
    activation_patch(model, clean, corrupt, metric=metric)
    res["heads_seconds"] = time.perf_counter() - t
    res["heads_cpu_seconds"] = time.process_time() - c  # summed over threads: <= threads x wall on an idle machine
    res["load_average_1min"] = __import__("os").getloadavg()[0]
    if args.per_position:
        t = time.perf_counter()
        activation_patch(model, clean, corrupt, metric=metric, per_position=True)
        res["heads_x_positions_seconds"] = time.perf_counter() - t
    if args.path:
        t = time.perf_counter()
        path_patch(model, clean, corrupt, metric=metric)
        res["path_to_output_seconds"] = time.perf_counter() - t
    print(json.dumps(res))


if __name__ == "__main__":
    main()
