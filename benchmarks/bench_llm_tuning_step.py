"""Step time of precise tuning vs full fine-tuning vs LoRA on SmolLM2-135M, without evaluation.

A few Adam steps of each method on the arithmetic training prompts (batch 8, ~12 tokens), timed as wall and as
process CPU time (the latter is the honest number on a shared, oversubscribed CPU), and the peak RSS.
The precise set is 6 heads + 2 MLPs (the size `spinlens pinpoint --model ... --task arithmetic` locates by
default; which ones barely matters for the time, except that backward stops at the earliest tuned layer —
so the set is drawn at random, seed 0, and printed).

    SPINLENS_CACHE=/work/cache python benchmarks/bench_llm_tuning_step.py --steps 3
"""

from __future__ import annotations

import argparse
import json
import resource
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--methods", nargs="+", default=["located", "full", "lora"])
    a = ap.parse_args(argv)
    import numpy as np
    import torch

    torch.set_num_threads(a.threads)
    from transformers import AutoTokenizer

    from spinlens.edit.components import Component, all_masks, component_masks
    from spinlens.edit.pinpoint import masked_finetune
    from spinlens.interp.hf import load_hf
    from spinlens.llm import tuning as T
    from spinlens.models.pretrained import resolve_model

    model = load_hf(a.model)
    tok = AutoTokenizer.from_pretrained(str(resolve_model(a.model)), local_files_only=True)
    train = T.encode_pairs(T.arithmetic_data(seed=0).train, tok)
    g = np.random.default_rng(0)
    L = model.cfg.n_layers
    heads = [Component("head", int(x // model.cfg.n_heads), int(x % model.cfg.n_heads))
             for x in g.choice(L * model.cfg.n_heads, 6, replace=False)]
    comps = sorted(heads) + [Component("mlp", int(x)) for x in sorted(g.choice(L, 2, replace=False))]
    n_loc = sum(int(m.sum()) for m in component_masks(model, comps).values())
    out = {"components": [str(c) for c in comps]}
    for method in a.methods:
        if method == "lora":
            new, masks, r = T._lora(model.plain_copy(), n_loc, 0)
        else:
            new = model.clone()
            masks = all_masks(new) if method == "full" else component_masks(new, comps)
        gen = torch.Generator().manual_seed(0)
        marks = []

        def loss(m, step, gen=gen):
            idx = torch.randint(0, len(train), (8,), generator=gen)
            return T.answer_loss(m, train.rows(idx))

        def tick(m, step, marks=marks):
            marks.append((time.perf_counter(), time.process_time()))

        marks.append((time.perf_counter(), time.process_time()))
        _, n = masked_finetune(new, masks, loss, steps=a.steps, lr=3e-4, on_step=tick)
        wall = np.diff([x[0] for x in marks])
        cpu = np.diff([x[1] for x in marks])
        # the first step includes Adam's state allocation: report the mean of the later ones too
        out[method] = {"n_trainable": n, "wall_s_per_step": wall.tolist(), "cpu_s_per_step": cpu.tolist(),
                       "wall_s_mean_after_first": float(wall[1:].mean()) if len(wall) > 1 else float(wall[0]),
                       "cpu_s_mean_after_first": float(cpu[1:].mean()) if len(cpu) > 1 else float(cpu[0])}
        print(method, json.dumps(out[method]), flush=True)
        del new, masks
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    import os

    out["loadavg"] = os.getloadavg()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
