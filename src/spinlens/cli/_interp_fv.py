"""``spinlens interp fv``: function vectors (Todd et al. 2023) on a token model with fixed in-context tasks.

Registered by `spinlens.cli.interp_cmd` (kept in its own module so the interp CLI stays small).
"""

from __future__ import annotations

import argparse

from ._common import Formatter, run_study

HELP = "Function vectors: head indirect effects, FV from the top heads, FV added to zero-shot/shuffled prompts."
EXAMPLES = (
    "  spinlens interp fv --planted --out runs/fv-planted\n"
    "  spinlens interp fv --planted --corruption other_task --top-k 1 --json\n"
    "  spinlens interp fv --checkpoint runs/icl_circuit_tokens_fv/model --top-k 3 --out runs/fv\n"
    "  (the checkpoint's metadata must hold the task table 'tasks', as written by\n"
    "   examples/icl_circuit_tokens_fv.py)\n"
    "  spinlens interp fv --checkpoint runs/lm --task capitalise --n-seeds 3 --out runs/fv-lm\n"
    "  (a language model from 'spinlens lm': word tasks copy | capitalise | lowercase on words of its\n"
    "   held-out text, prompts ' file: File\\n value: Value\\n ... return:')\n"
    "  spinlens interp fv --model smollm2-135m --task capital,translate_fr,past,uppercase --n-prompts 32 --out runs/fv-smol\n"
    "  (a pretrained LLM: word tasks from offline data, see spinlens.llm.icl; the heads with the largest indirect\n"
    "   effect over all tasks are listed, as spinlens.llm.icl.locate_fv_heads returns them)\n"
)


def register_fv(isub) -> None:
    q = isub.add_parser("fv", help=HELP, description=HELP, epilog="examples:\n" + EXAMPLES, formatter_class=Formatter)
    g = q.add_argument_group("model (one of)")
    g.add_argument("--checkpoint", default=None, help="spinlens token Transformer folder whose metadata has 'tasks', "
                   "or a language model folder from 'spinlens lm' (with --task)")
    g.add_argument("--planted", action="store_true", help="hand-built model where head (0,1) carries the task "
                   "(default when no checkpoint is given)")
    g.add_argument("--model", default=None, help="a named pretrained model (smollm2-135m, gemma3-270m) or a Hugging "
                   "Face causal LM folder; with --task NAME[,NAME...] among the word tasks of spinlens.llm.icl")
    g = q.add_argument_group("method")
    g.add_argument("--n-prompts", type=int, default=256, help="prompts for choosing heads, and again for evaluation (>= 8)")
    g.add_argument("--n-pairs", type=int, default=None, help="demonstrations per prompt (default: the checkpoint's, or 3; "
                   "a language model: 4)")
    g.add_argument("--top-k", type=int, default=3, help="heads summed into the FV (>= 1)")
    g.add_argument("--corruption", default="shuffled", help="base prompts for the indirect effect: shuffled | other_task")
    g.add_argument("--strength", type=float, default=1.0, help="multiplier of the added FV")
    g.add_argument("--seed", type=int, default=0, help="seed of the prompts")
    g = q.add_argument_group("language model (--checkpoint DIR from 'spinlens lm')")
    g.add_argument("--task", default=None, help="natural-language task: copy | capitalise | lowercase; a language model without "
                   "--task runs copy")
    g.add_argument("--n-seeds", type=int, default=3, help="language model: seeds --seed, --seed+1, ... (1..100); each "
                   "splits the words into heads/FV words and evaluation words and draws the prompts")
    g = q.add_argument_group("output")
    g.add_argument("--out", default=None, help="folder for function_vectors.png/.pdf, NetCDF data, result.json, run.json")
    g.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(func=run_fv, method="fv")


def run_fv(args: argparse.Namespace) -> int:
    from spinlens.experiment import function_vector_report

    return run_study(args, lambda log: function_vector_report(
        checkpoint=args.checkpoint, planted=args.planted, model=args.model, task=args.task, n_prompts=args.n_prompts,
        n_pairs=args.n_pairs, top_k=args.top_k, corruption=args.corruption, strength=args.strength, seed=args.seed,
        n_seeds=args.n_seeds, progress=log is not None))
