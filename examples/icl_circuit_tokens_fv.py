"""The ICL story, part 3: function vectors (Todd et al. 2023) in a small token transformer.

Task mixture (vocabulary of `spinlens.interp.token_icl_pairs`: 8 inputs, 4 labels, 3 demonstrations):

* half of each batch: `token_icl_pairs` prompts — every prompt has its own random input→label map and the
  query repeats a demonstrated input (induction / copying; loss at the query);
* half: prompts of 4 **fixed tasks** (`spinlens.interp.function_vectors.fixed_task_prompts`) whose query is
  new, so the answer needs task recognition from the demonstrations (loss at every input position, so the
  query alone — the zero-shot prompt — is an input the model has seen).

A function vector needs a task shared across prompts: on the random-map prompts the mean head output over
prompts carries no prompt's answer, so the FV is measured on the fixed tasks.

1. Train a 2-layer, 4-head transformer (d_model 64, MLP 128) on CPU (~2 min, one thread).
2. Head indirect effects (shuffled-label prompts as the base), FV from the top-k heads, FV added to the
   residual stream before each layer of zero-shot and shuffled prompts; accuracy and p(answer), for
   k = 1..4, the ``other_task`` corruption, and a strength sweep.

    OMP_NUM_THREADS=1 python examples/icl_circuit_tokens_fv.py --out runs/icl_circuit_tokens_fv
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from spinlens import interp as I
from spinlens.interp import function_vectors as FV
from spinlens.models.checkpoint import load_model, save_model
from spinlens.models.transformer import Transformer, TransformerConfig
from spinlens.plotting import interp as P
from spinlens.progress import bar
from spinlens.random import as_generator


def batch_loss(model, tasks, args, g):
    kw = dict(n_pairs=args.n_pairs, n_inputs=args.n_inputs, n_labels=args.n_labels)
    h = args.batch // 2
    tp = I.token_icl_pairs(h, rng=g, **kw)
    loss_copy = torch.nn.functional.cross_entropy(model(tp.clean)[:, -1], tp.answer)
    fp = FV.fixed_task_prompts(args.batch - h, tasks, n_pairs=args.n_pairs, rng=g)
    x_pos = torch.arange(0, 2 * args.n_pairs + 1, 2)
    targets = torch.cat([fp.clean[:, 1::2], fp.answer[:, None]], 1)  # label after each input; answer at the query
    logits = model(fp.clean)[:, x_pos]
    loss_task = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    return loss_copy, loss_task


def train(model, tasks, args, summary) -> None:
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.05)
    g = as_generator(args.seed + 1)
    t0 = time.perf_counter()
    hist = []
    for step in bar(range(args.steps), desc="train", unit="step"):  # progress on a terminal
        lc, lt = batch_loss(model, tasks, args, g)
        opt.zero_grad()
        (lc + lt).backward()
        opt.step()
        sched.step()
        hist.append((lc.item(), lt.item()))
        if step % 500 == 0:
            print(f"step {step}: copy loss {lc.item():.3f}, task loss {lt.item():.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    h = np.array(hist[-100:])
    summary["train_seconds"] = time.perf_counter() - t0
    summary["final_train_loss_copy"], summary["final_train_loss_task"] = map(float, h.mean(0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-pairs", type=int, default=3)
    ap.add_argument("--n-inputs", type=int, default=8)
    ap.add_argument("--n-labels", type=int, default=4)
    ap.add_argument("--n-tasks", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--n-prompts", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/icl_circuit_tokens_fv")
    ap.add_argument("--load", default=None, help="analyse a saved model folder instead of training")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    tasks = FV.fixed_token_tasks(args.n_tasks, args.n_inputs, args.n_labels, rng=args.seed + 7)
    V = args.n_inputs + args.n_labels
    T = 2 * args.n_pairs + 1
    summary: dict = {"n_pairs": args.n_pairs, "n_inputs": args.n_inputs, "n_labels": args.n_labels, "tasks": tasks.tolist()}
    if args.load:
        model = load_model(args.load)
    else:
        cfg = TransformerConfig(n_layers=2, n_heads=4, d_model=64, d_mlp=128, input_kind="tokens", d_vocab=V, max_pos=T)
        model = Transformer(cfg, rng=args.seed)
        train(model, tasks, args, summary)
        save_model(model, os.path.join(args.out, "model"),
                         metadata={"task": "icl-tokens-fixed-tasks", "tasks": tasks.tolist(), "n_pairs": args.n_pairs})
    model.eval()
    with torch.no_grad():
        tp = I.token_icl_pairs(args.n_prompts, n_pairs=args.n_pairs, n_inputs=args.n_inputs, n_labels=args.n_labels, rng=args.seed + 3)
        summary["copy_task_accuracy"] = float((model(tp.clean)[:, -1].argmax(-1) == tp.answer).double().mean())
    # reference accuracies on fresh-query prompts (query uniform over inputs, task uniform):
    # best zero-shot guess knows only x (mode of tasks[:, x]); best guess knowing only the task (its commonest label)
    summary["bayes_zero_shot_accuracy"] = float(np.mean([np.bincount(tasks[:, x]).max() / len(tasks) for x in range(tasks.shape[1])]))
    summary["task_only_accuracy"] = float(np.mean([np.bincount(r).max() / len(r) for r in tasks]))
    t0 = time.perf_counter()
    runs = {}
    for k in (1, 2, 3, 4):
        runs[f"shuffled_top{k}"] = FV.function_vector_experiment(model, tasks, n_prompts=args.n_prompts, n_pairs=args.n_pairs,
                                                                  top_k=k, rng=args.seed + 11)
    runs["other_task_top3"] = FV.function_vector_experiment(model, tasks, n_prompts=args.n_prompts, n_pairs=args.n_pairs,
                                                            top_k=3, corruption="other_task", rng=args.seed + 11)
    for s in (2.0, 4.0):
        runs[f"shuffled_top3_strength{s:g}"] = FV.function_vector_experiment(
            model, tasks, n_prompts=args.n_prompts, n_pairs=args.n_pairs, top_k=3, strength=s, rng=args.seed + 11)
    summary["analysis_seconds"] = time.perf_counter() - t0
    summary["fv"] = {name: r.to_dict() for name, r in runs.items()}
    main_run = runs["shuffled_top3"]
    P.save_figure(P.plot_function_vectors(main_run, title="FV (top 3 heads)"), args.out, "function_vectors")
    P.save_data(main_run.evaluation, args.out, "function_vectors_eval")
    P.save_data(main_run.indirect_effect, args.out, "function_vectors_indirect_effect")
    with open(os.path.join(args.out, "summary.json"), "w") as fh:
        json.dump(summary, fh, indent=2)
    print(json.dumps({k: v for k, v in summary.items() if k != "fv"}, indent=2))
    for name, r in runs.items():
        d = r.to_dict()
        print(name, "heads", d["heads"], f"clean acc {d['clean_accuracy']:.3f}")
        for c in ("zero_shot", "shuffled"):
            print(f"  {c}: base acc {d[c]['base_accuracy']:.3f} p {d[c]['base_prob']:.3f} | +FV acc by layer",
                  {L: round(a, 3) for L, a in d[c]["accuracy_by_layer"].items()},
                  "p", {L: round(a, 3) for L, a in d[c]["prob_by_layer"].items()})


if __name__ == "__main__":
    main()
