"""``spinlens interp recall``: factual recall by causal tracing (Meng et al. 2022) on a pretrained causal LM.

Registered by `spinlens.cli.interp_cmd` (one line); the study is `spinlens.llm.recall`.
"""

from __future__ import annotations

import argparse

from ._common import Formatter, run_study

HELP = ("Factual recall by causal tracing: corrupt the subject, restore single states and MLP/attention windows, "
        "indirect effect by layer and position over the facts the model knows.")
EXAMPLES = (
    "  spinlens interp recall --model smollm2-135m --out runs/recall\n"
    "  spinlens interp recall --model smollm2-135m --relations capital,continent --n-facts 20 --json\n"
    "  spinlens interp recall --model path/to/hf-model --n-seeds 5 --noise 3 --window 10 --out runs/recall-hf\n"
    "  (facts: the countryinfo package's country data, installed by pip install 'spinlens[facts]')\n"
)


def register_recall(isub) -> None:
    q = isub.add_parser("recall", help=HELP, description=HELP, epilog="examples:\n" + EXAMPLES,
                        formatter_class=Formatter)
    q.add_argument("--model", required=True, help="named pretrained model (smollm2-135m, gemma3-270m) or a local "
                   "Hugging Face causal LM folder")
    q.add_argument("--relations", default="capital", help="comma-separated: capital, continent, demonym")
    q.add_argument("--n-facts", type=int, default=40, help="known facts (prompts) traced, drawn with --seed (>= 1)")
    q.add_argument("--n-seeds", type=int, default=3, help="noise draws per fact (1..100); the spread is over these")
    q.add_argument("--noise", type=float, default=3.0, help="noise standard deviation in units of the subject "
                   "embeddings' standard deviation (>= 0; the paper: 3)")
    q.add_argument("--window", type=int, default=None, help="layers restored together for mlp/attn (default: the "
                   "paper's 10 of 48 layers scaled to the model's depth)")
    q.add_argument("--seed", type=int, default=0, help="seed of the fact draw and the noise")
    q.add_argument("--out", default=None, help="folder for causal_trace.png/.pdf, causal_trace.nc, result.json, run.json")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(func=run_recall, method="recall")


def run_recall(args: argparse.Namespace) -> int:
    from spinlens.llm.recall import recall_report

    return run_study(args, lambda log: recall_report(
        args.model, relations=args.relations, n_facts=args.n_facts, n_seeds=args.n_seeds, noise=args.noise,
        window=args.window, seed=args.seed, progress=log is not None))
