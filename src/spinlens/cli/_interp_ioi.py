"""``spinlens interp ioi``: the indirect-object-identification circuit (Wang et al. 2022) of a pretrained LM.

Registered by `spinlens.cli.interp_cmd` (own module so that parallel work on the interp CLI does not collide).
"""

from __future__ import annotations

import argparse
import os

from ._common import Formatter, check_out_dir, print_json, print_table

HELP = ("IOI circuit of a pretrained LM: logit difference over seeds, name movers (direct path to the logits), "
        "S-inhibition heads (path patching into the name movers' queries), induction / duplicate-token / "
        "previous-token heads, circuit graph, faithfulness against random circuits.")
EXAMPLES = (
    "  spinlens interp ioi --model smollm2-135m --out runs/ioi\n"
    "  spinlens interp ioi --model smollm2-135m --n-prompts 32 --seed 3 --json\n"
    "  spinlens interp ioi --model path/to/hf-llama --n-patching 8 --out runs/ioi-small\n"
)


def register_ioi(isub) -> None:
    q = isub.add_parser("ioi", help=HELP, description=HELP, epilog="examples:\n" + EXAMPLES, formatter_class=Formatter)
    q.add_argument("--model", required=True, help="named pretrained model (smollm2-135m, gemma3-270m) or a local HF folder")
    q.add_argument("--n-prompts", type=int, default=64, help="IOI prompts per seed (>= 2)")
    q.add_argument("--seed", type=int, default=0, help="first seed of the dataset draws")
    q.add_argument("--n-seeds", type=int, default=3, help="dataset draws (seeds --seed, --seed+1, ...; 1..20)")
    q.add_argument("--n-patching", type=int, default=16, help="prompts for path patching into the name movers' "
                   "queries (one patched forward per earlier head; >= 1)")
    q.add_argument("--n-random", type=int, default=5, help="random circuits of the same size (>= 2)")
    q.add_argument("--out", default=None, help="folder for ioi_circuit.png/.pdf, ioi_heads.png/.pdf, ioi.nc, "
                   "result.json, run.json")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(func=run_ioi, method="ioi")


def run_ioi(args: argparse.Namespace) -> int:
    import sys

    import torch

    from spinlens.errors import check_int
    from spinlens.llm import ioi as I

    n = check_int("n-prompts", args.n_prompts, low=2)
    check_int("seed", args.seed, low=0)
    ns = check_int("n-seeds", args.n_seeds, low=1, high=20)
    check_int("n-patching", args.n_patching, low=1)
    check_int("n-random", args.n_random, low=2)
    check_out_dir("out", args.out)
    from spinlens.llm.tasks import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(args.model)
    say = None if args.json else (lambda s: print(f"  {s}", file=sys.stderr, flush=True))
    with torch.no_grad():
        res = I.ioi_study(model, tok, n_prompts=n, seeds=tuple(range(args.seed, args.seed + ns)),
                          n_prompts_patching=args.n_patching, n_random=args.n_random, progress=say)
    d = res.to_dict()
    d["model"] = args.model
    if args.out:
        import xarray as xr

        from spinlens import io
        from spinlens.plotting import interp as P

        os.makedirs(args.out, exist_ok=True)
        P.save_figure(P.plot_circuit(res.circuit_object(), roles=res.roles, title="IOI circuit"), args.out, "ioi_circuit")
        P.save_figure(P.plot_ioi_heads(res), args.out, "ioi_heads")
        ds = xr.Dataset({"direct_path_score": res.direct, "q_path_score_to_name_movers": res.to_name_movers_q,
                         "attention": res.attention, "head_score": res.head_scores})
        P.save_data(ds, args.out, "ioi")
        io.write_json(os.path.join(args.out, "result.json"), d)
        io.write_run_json(args.out, io.run_record("interp ioi", args=args, seed=args.seed, summary=d))
    if args.json:
        print_json(d)
        return 0
    ld = d["logit_diff"]
    rows = [("model", args.model), ("prompts", f"{n} per seed, seeds {d['seeds']}")]
    for s in d["seeds"]:
        v = ld[str(s)]
        rows.append((f"logit difference, seed {s}", f"{v['mean']:.3f} ± {v['sd']:.3f} (IO above S: {v['accuracy']:.2f})"))
    rows.append(("logit difference over seeds", f"{ld['over_seeds']['mean']:.3f} ± {ld['over_seeds']['sd']:.3f}"))
    rows.append(("logit difference, ABC prompts", f"{d['logit_diff_corrupt']:.3f}"))
    for k, v in d["roles"].items():
        rows.append((k.replace("_", " ") + " heads", " ".join(v[:12]) + (" ..." if len(v) > 12 else "") or "-"))
    fr = d["faithfulness_random"]
    rows += [("circuit", " ".join(d["circuit"])), ("faithfulness", f"{d['faithfulness']:.3f}"),
             ("random circuits (same size)", f"{fr['mean']:.3f} ± {fr['sd']:.3f} over {len(fr['values'])}"),
             ("no head kept", f"{d['faithfulness_empty']:.3f}"), ("verdict", d["verdict"])]
    print_table(rows)
    if args.out:
        print(f"wrote {args.out}")
    return 0
