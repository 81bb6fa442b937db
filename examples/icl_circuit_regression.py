"""The ICL story, part 1: the circuit of a 2-layer softmax transformer trained on in-context linear regression.

1. Train a 2-layer, 4-head GPT-2-style transformer on fresh prompts (D=5, N=20, online, CPU, ~1 min).
2. Find its circuit: activation patching (heads; heads x positions), path patching iterated backwards from the
   read-out, edge attribution patching checked against exact path patching, circuit faithfulness.
3. Describe units (correlation with y, ||w||, the one-step-GD estimate, the query norm), read-out lens,
   attention rollout.
4. Compare the model and its circuit alone (non-circuit heads mean-ablated) with the spin glass theory's
   W* (infinite task diversity, `spinlens.limit.infinite_diversity_solution`) and with one GD step:
   agreement of predictions on fresh prompts.

    OMP_NUM_THREADS=1 python examples/icl_circuit_regression.py --out runs/icl_circuit_regression
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


def train(model, d, n_context, *, steps, batch, lr, rng):
    from spinlens.prompts import PromptDistribution

    dist = PromptDistribution(d, n_context)
    g = as_generator(rng)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    losses = []
    for _ in bar(range(steps), desc="train", unit="step"):  # progress on a terminal
        p = dist.sample(batch, rng=g)
        Z = torch.as_tensor(p.Z, dtype=torch.float32)
        y = torch.as_tensor(p.y, dtype=torch.float32)
        loss = ((model(Z) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


def r2(a, b) -> float:
    """Fraction of the variance of b explained by a (1 - mean (a-b)^2 / var b)."""
    return float(1 - np.mean((a - b) ** 2) / np.var(b))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d", type=int, default=5)
    ap.add_argument("--n-context", type=int, default=20)
    ap.add_argument("--steps", type=int, default=2500)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threshold", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/icl_circuit_regression")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    D, N = args.d, args.n_context
    summary: dict = {"d": D, "n_context": N}

    cfg = TransformerConfig(n_layers=2, n_heads=4, d_model=32, d_mlp=64, d_in=D + 1, max_pos=N + 1, causal=True)
    model = Transformer(cfg, rng=args.seed)
    t0 = time.perf_counter()
    losses = train(model, D, N, steps=args.steps, batch=args.batch, lr=args.lr, rng=args.seed + 1)
    summary["train_seconds"] = time.perf_counter() - t0
    summary["final_train_loss"] = float(np.mean(losses[-100:]))
    model.eval()
    save_model(model, os.path.join(args.out, "model"), metadata={"task": "icl-regression", "D": D, "N": N})

    # ---------------------------------------------------------------- predictions vs theory
    from spinlens.features import spin_features
    from spinlens.limit import infinite_diversity_solution
    from spinlens.prompts import PromptDistribution

    dist = PromptDistribution(D, N)
    test = dist.sample(4096, rng=args.seed + 2)
    Zt = torch.as_tensor(test.Z, dtype=torch.float32)
    with torch.no_grad():
        y_model = model(Zt).double().numpy()
    W_star = infinite_diversity_solution(dist, 0.0)
    y_star = spin_features(test).predict(W_star)
    q = I.task_quantities(test.Z, test.y, test.w)
    gd = q["gd_estimate"]
    scale = float(gd @ test.y / (gd @ gd))  # best step size of the one GD step
    y_gd = scale * gd
    X = test.Z[:, :D, :N]
    ols = np.array([np.linalg.lstsq(X[i].T, test.Z[i, D, :N], rcond=None)[0] for i in range(len(X))])
    y_ols = np.einsum("pd,pd->p", ols, test.Z[:, :D, N])
    summary["test_mse"] = {
        "model": float(np.mean((y_model - test.y) ** 2)),
        "W_star": float(np.mean((y_star - test.y) ** 2)),
        "gd_step": float(np.mean((y_gd - test.y) ** 2)),
        "least_squares": float(np.mean((y_ols - test.y) ** 2)),
    }
    summary["agreement_r2_model_vs"] = {"W_star": r2(y_model, y_star), "gd_step": r2(y_model, y_gd),
                                        "least_squares": r2(y_model, y_ols)}

    # ---------------------------------------------------------------- circuit
    pr = I.regression_pairs(D, N, 256, rng=args.seed + 3)
    with torch.no_grad():
        met = I.projection_metric(model(pr.clean), model(pr.corrupt))
    t0 = time.perf_counter()
    ap_heads = I.activation_patch(model, pr.clean, pr.corrupt, metric=met)
    ap_pos = I.activation_patch(model, pr.clean, pr.corrupt, metric=met, per_position=True)
    ap_mlp = I.activation_patch(model, pr.clean, pr.corrupt, metric=met, component="mlp_out", per_position=True)
    summary["patch_seconds"] = time.perf_counter() - t0
    P.save_figure(P.plot_patching(ap_heads), args.out, "patch_heads")
    P.save_data(ap_heads.scores, args.out, "patch_heads")
    P.save_data(ap_pos.scores, args.out, "patch_heads_pos")
    P.save_figure(P.plot_patching(ap_mlp), args.out, "patch_mlp_pos")
    summary["patch_top_heads"] = [{**k, "score": v} for k, v in ap_heads.top(5)]
    summary["patch_mlp_query"] = [float(v) for v in ap_mlp.scores.isel(pos=-1).values]
    pos_q = ap_pos.scores.isel(pos=-1).values
    pos_ctx = np.abs(ap_pos.scores.isel(pos=slice(0, -1)).values).sum(-1)
    summary["head_score_at_query_vs_context_sum"] = {f"{L}.{h}": [float(pos_q[L, h]), float(pos_ctx[L, h])]
                                                     for L in range(2) for h in range(4)}

    circ = I.find_circuit(model, pr.clean, pr.corrupt, metric=met, threshold=args.threshold)
    f = I.circuit_faithfulness(model, pr.clean, pr.corrupt, circ.nodes, metric=met)
    summary["circuit"] = circ.to_dict() | {"faithfulness": f,
                                           "faithfulness_no_heads": I.circuit_faithfulness(model, pr.clean, pr.corrupt, [], metric=met)}
    P.save_figure(P.plot_circuit(circ, title=f"ICL regression circuit (faithfulness {f:.2f})"), args.out, "circuit")

    # attribution patching vs exact path patching, on every edge into the last layer and into the read-out
    ea = I.edge_attribution(model, pr.clean, pr.corrupt, metric=met)
    exact_out = I.path_patch(model, pr.clean, pr.corrupt, metric=met).scores.values
    a_list, e_list = list(ea.output.values.ravel()), list(exact_out.ravel())
    for h in range(4):
        for inp in "qkv":
            ex = I.path_patch(model, pr.clean, pr.corrupt, metric=met, receivers=[(1, h)], receiver_input=inp).scores.values[0]
            a_list += list(ea.edges.sel(receiver_layer=1, receiver_head=h, receiver_input=inp).values[0])
            e_list += list(ex)
    a_arr, e_arr = np.array(a_list), np.array(e_list)
    summary["attribution_vs_exact"] = {"n_edges": len(a_arr), "pearson_r": float(np.corrcoef(a_arr, e_arr)[0, 1]),
                                       "max_abs_diff": float(np.max(np.abs(a_arr - e_arr)))}
    P.save_figure(P.plot_attribution_vs_exact(a_arr, e_arr), args.out, "attribution_vs_exact")
    ac = I.attribution_circuit(model, pr.clean, pr.corrupt, metric=met, threshold=args.threshold)
    summary["attribution_circuit"] = {"nodes": [list(n) for n in ac.circuit.nodes], "faithfulness": ac.faithfulness}

    # ---------------------------------------------------------------- circuit alone vs theory
    names = [f"blocks.{L}.attn.hook_z" for L in range(2)]
    with torch.no_grad():
        _, cz = model.run_with_cache(Zt, names_filter=names)
    keep = set(circ.nodes)

    def ablate(L):
        def hook(z, hook):
            z = z.clone()
            for h in range(4):
                if (L, h) not in keep:
                    z[:, :, h] = cz[names[L]][:, :, h].mean(0)
            return z

        return hook

    with torch.no_grad():
        y_circ = model.run_with_hooks(Zt, fwd_hooks=[(names[L], ablate(L)) for L in range(2)]).double().numpy()
    summary["circuit_only_mean_ablation"] = {
        "test_mse": float(np.mean((y_circ - test.y) ** 2)),
        "r2_vs_model": r2(y_circ, y_model), "r2_vs_W_star": r2(y_circ, y_star), "r2_vs_gd_step": r2(y_circ, y_gd),
    }

    # ---------------------------------------------------------------- units, lens, flow
    sub = slice(0, 1024)
    rep = I.describe_units(model, Zt[sub], {k: v[sub] for k, v in q.items()} | {"W_star_prediction": y_star[sub]})
    summary["units"] = [{"unit": u, "quantity": qq, "r": r, "description": d} for u, qq, r, d in rep.table(10)]
    P.save_figure(P.plot_units(rep, k=12), args.out, "units")
    P.save_data(rep.corr, args.out, "units")
    lens = I.logit_lens(model, Zt[sub], target=torch.as_tensor(test.y[sub]))
    summary["lens_mse"] = dict(zip([str(s) for s in lens.summary.coords["stage"].values], map(float, lens.summary["mse"].values)))
    P.save_figure(P.plot_lens(lens), args.out, "lens")
    P.save_data(lens.summary, args.out, "lens")
    flow = I.attention_rollout(model, Zt[sub])
    summary["rollout_query_self_share"] = float(flow.query_flow.values[-1, -1])
    P.save_figure(P.plot_flow(flow), args.out, "flow")
    P.save_data(flow.rollout, args.out, "flow")

    with open(os.path.join(args.out, "summary.json"), "w") as fh:
        json.dump(summary, fh, indent=2)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
