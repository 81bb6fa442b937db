"""``spinlens interp ioi``: the indirect-object-identification circuit (Wang et al. 2022) of a pretrained LM.

Registered by `spinlens.cli.interp_cmd` (own module so that parallel work on the interp CLI does not collide).
"""

from __future__ import annotations

import argparse

from ._common import Formatter, run_study

HELP = ("IOI circuit of a pretrained LM: logit difference over seeds, name movers (direct path to the logits), "
        "S-inhibition heads (path patching into the name movers' queries), induction / duplicate-token / "
        "previous-token heads, circuit graph, faithfulness against random circuits; circuits found by effect.")
EXAMPLES = (
    "  spinlens interp ioi --model smollm2-135m --out runs/ioi\n"
    "  spinlens interp ioi --model smollm2-135m --n-prompts 32 --seed 3 --json\n"
    "  spinlens interp ioi --model path/to/hf-llama --n-patching 8 --out runs/ioi-small\n"
    "  spinlens interp ioi --model smollm2-135m --search-sizes 48 24 12 --out runs/ioi-search   # circuits by effect\n"
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
    q.add_argument("--search-sizes", type=int, nargs="*", default=[64, 32, 16, 8],
                   help="sizes of the circuits found by effect (pruning of mean-ablation gates; each against "
                   "--n-random random sets); none: no search")
    q.add_argument("--out", default=None, help="folder for ioi_circuit.png/.pdf, ioi_heads.png/.pdf, ioi.nc, "
                   "result.json, run.json")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(func=run_ioi, method="ioi")


def run_ioi(args: argparse.Namespace) -> int:
    from spinlens.llm.ioi import ioi_report

    return run_study(args, lambda log: ioi_report(args.model, n_prompts=args.n_prompts, seed=args.seed,
                                                  n_seeds=args.n_seeds, n_patching=args.n_patching,
                                                  n_random=args.n_random, search_sizes=args.search_sizes,
                                                  progress=log))
