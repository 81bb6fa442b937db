"""The ICL story, part 2: a token-level transformer on a synthetic in-context task, and its circuit.

Task (`spinlens.interp.token_icl_pairs`): ``x1 l1 x2 l2 ... xk lk x_q`` → the label paired with ``x_q``; every
prompt has its own arbitrary input→label map, so the answer must be copied from the context (induction).
Corrupted prompts swap the queried pair's label (label swap); metric = logit(clean label) − logit(swapped).

1. Train a 2-layer attention-only transformer (CPU, ~1 min).
2. Read-out lens (probability of the answer per stage), activation patching (heads; heads x positions),
   path patching iterated backwards to a circuit, attribution patching vs exact, attention rollout.
3. Check the circuit against the induction mechanism: the layer-1 circuit head should attend from the query to
   the answer's position, a layer-0 head (the k/v sender) should attend to the previous token.

    OMP_NUM_THREADS=1 python examples/icl_circuit_tokens.py --out runs/icl_circuit_tokens
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from spinlens import interp as I
from spinlens.models.checkpoint import save_model
from spinlens.models.transformer import Transformer, TransformerConfig
from spinlens.plotting import interp as P
from spinlens.progress import bar
from spinlens.random import as_generator


def train(model, args, kw, summary) -> None:
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.05)
    g = as_generator(args.seed + 1)
    t0 = time.perf_counter()
    hist = []
    for step in bar(range(args.steps), desc="train", unit="step"):  # progress on a terminal
        tp = I.token_icl_pairs(args.batch, rng=g, **kw)
        logits = model(tp.clean)[:, -1]
        loss = torch.nn.functional.cross_entropy(logits, tp.answer)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        hist.append(loss.item())
    summary["train_seconds"] = time.perf_counter() - t0
    summary["final_train_loss"] = float(np.mean(hist[-100:]))


def analyse(model, tp, args, tag: str, T: int) -> dict:
    """Lens, patching, circuit, attribution vs exact and attention checks for one corruption."""
    out: dict = {}
    with torch.no_grad():
        out["accuracy_clean"] = float((model(tp.clean)[:, -1].argmax(-1) == tp.answer).float().mean())
        out["accuracy_corrupt_vs_its_answer"] = float((model(tp.corrupt)[:, -1].argmax(-1) == tp.corrupt_answer).float().mean())
    keep = tp.corrupt_answer != tp.answer  # prompts where the corruption changes the answer
    tp = I.tasks.TokenICLPairs(tp.clean[keep], tp.corrupt[keep], tp.answer[keep], tp.corrupt_answer[keep],
                               tp.query_source[keep], tp.d_vocab)
    out["n_prompts"] = int(keep.sum())
    met = I.logit_diff_metric(tp.answer, tp.corrupt_answer)
    lens = I.logit_lens(model, tp.clean, target=tp.answer)
    out["lens_prob_answer"] = dict(zip([str(s) for s in lens.summary.coords["stage"].values], map(float, lens.summary["prob"].values)))
    P.save_figure(P.plot_lens(lens, title="logit lens: p(answer) per stage"), args.out, f"lens_{tag}")
    P.save_data(lens.summary, args.out, f"lens_{tag}")
    heads = I.activation_patch(model, tp.clean, tp.corrupt, metric=met)
    pos = I.activation_patch(model, tp.clean, tp.corrupt, metric=met, per_position=True)
    resid = I.activation_patch(model, tp.clean, tp.corrupt, metric=met, component="resid_pre", per_position=True)
    out["patch_top_heads"] = [{**k, "score": v} for k, v in heads.top(5)]
    out["patch_resid_pre_by_pos"] = [[float(v) for v in row] for row in resid.scores.values]
    P.save_figure(P.plot_patching(heads), args.out, f"patch_heads_{tag}")
    P.save_figure(P.plot_patching(resid), args.out, f"patch_resid_pos_{tag}")
    P.save_data(heads.scores, args.out, f"patch_heads_{tag}")
    P.save_data(pos.scores, args.out, f"patch_heads_pos_{tag}")
    circ = I.find_circuit(model, tp.clean, tp.corrupt, metric=met, threshold=args.threshold)
    f = I.circuit_faithfulness(model, tp.clean, tp.corrupt, circ.nodes, metric=met)
    out["circuit"] = circ.to_dict() | {"faithfulness": f}
    P.save_figure(P.plot_circuit(circ, title=f"{tag}: circuit (faithfulness {f:.2f})"), args.out, f"circuit_{tag}")
    ea = I.edge_attribution(model, tp.clean, tp.corrupt, metric=met)
    a_list = list(ea.output.values.ravel())
    e_list = list(I.path_patch(model, tp.clean, tp.corrupt, metric=met).scores.values.ravel())
    for h in range(model.cfg.n_heads):
        for inp in "qkv":
            e_list += list(I.path_patch(model, tp.clean, tp.corrupt, metric=met, receivers=[(1, h)], receiver_input=inp).scores.values[0])
            a_list += list(ea.edges.sel(receiver_layer=1, receiver_head=h, receiver_input=inp).values[0])
    a_arr, e_arr = np.array(a_list), np.array(e_list)
    out["attribution_vs_exact"] = {"n_edges": len(a_arr), "pearson_r": float(np.corrcoef(a_arr, e_arr)[0, 1]),
                                   "max_abs_diff": float(np.max(np.abs(a_arr - e_arr)))}
    P.save_figure(P.plot_attribution_vs_exact(a_arr, e_arr), args.out, f"attribution_vs_exact_{tag}")
    # the induction mechanism, read from attention patterns
    with torch.no_grad():
        _, c = model.run_with_cache(tp.clean, names_filter="*hook_pattern")
    idx = torch.arange(len(tp.clean))
    p1 = c["blocks.1.attn.hook_pattern"][idx, :, -1, :]  # [b, head, key]
    to_answer = p1[idx, :, tp.query_source].mean(0)
    p0 = c["blocks.0.attn.hook_pattern"]
    prev = torch.stack([p0[:, :, t, t - 1] for t in range(1, T)], -1).mean((0, 2))
    out["induction"] = {"layer1_attention_query_to_answer": [float(v) for v in to_answer],
                        "layer0_previous_token_attention": [float(v) for v in prev]}
    flow = I.attention_rollout(model, tp.clean)
    out["rollout_query_from_answer_position"] = float(np.mean([flow.rollout.values[-1, -1, int(s)] for s in tp.query_source]))
    P.save_figure(P.plot_flow(flow), args.out, f"flow_{tag}")
    P.save_data(flow.rollout, args.out, f"flow_{tag}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-pairs", type=int, default=3)
    ap.add_argument("--n-inputs", type=int, default=8)
    ap.add_argument("--n-labels", type=int, default=4)
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threshold", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/icl_circuit_tokens")
    ap.add_argument("--load", default=None, help="analyse a saved model folder instead of training")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    kw = dict(n_pairs=args.n_pairs, n_inputs=args.n_inputs, n_labels=args.n_labels)
    V = args.n_inputs + args.n_labels
    T = 2 * args.n_pairs + 1
    cfg = TransformerConfig(n_layers=2, n_heads=4, d_model=64, d_mlp=0, input_kind="tokens", d_vocab=V, max_pos=T)
    model = Transformer(cfg, rng=args.seed)
    summary: dict = {"task": kw, "seq_len": T}
    if args.load:
        from spinlens.models.checkpoint import load_model

        model = load_model(args.load)
    else:
        train(model, args, kw, summary)
        save_model(model, os.path.join(args.out, "model"), metadata={"task": "icl-tokens", **kw})
    model.eval()

    for corruption in ("label_swap", "input_swap"):
        summary[corruption] = analyse(model, I.token_icl_pairs(512, rng=args.seed + 2, corruption=corruption, **kw),
                                      args, corruption, T)
    with open(os.path.join(args.out, "summary.json"), "w") as fh:
        json.dump(summary, fh, indent=2)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
