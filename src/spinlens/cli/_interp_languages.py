"""``spinlens interp languages``: language-specific neurons (Tang et al. 2024, LAPE) of a pretrained LLM.

Registered by `spinlens.cli.interp_cmd` (kept in its own module so the interp CLI stays small). The study is
`spinlens.llm.multilingual.language_neurons_report`; this module parses, calls it once and reports.
"""

from __future__ import annotations

import argparse

from ._common import Formatter, run_study

HELP = ("Language-specific neurons (LAPE): activation probability per neuron and language, the neurons of low "
        "entropy, the loss change from switching them off, and the language switch from switching them on.")
EXAMPLES = (
    "  spinlens interp languages --model gemma3-270m --out runs/languages --json\n"
    "  spinlens interp languages --model gemma3-270m --languages en fr de es --fit-tokens 2048 --n-seeds 3\n"
    "  (text: Django's translation catalogs, a parallel corpus installed with Django; nothing is downloaded)\n"
)


def register_languages(isub) -> None:
    q = isub.add_parser("languages", help=HELP, description=HELP, epilog="examples:\n" + EXAMPLES,
                        formatter_class=Formatter)
    q.add_argument("--model", required=True, help="a named pretrained model (gemma3-270m, smollm2-135m) or a local "
                   "Hugging Face folder with its tokenizer")
    q.add_argument("--languages", nargs="+", default=["en", "fr", "de", "es", "ru", "zh"],
                   help="language codes (>= 2) of the corpus: en fr de es it pt nl pl ru uk cs sv fi tr el ar he fa hi "
                        "id vi ja ko zh")
    q.add_argument("--n-ctx", type=int, default=128, help="tokens per row (BOS + text)")
    q.add_argument("--fit-tokens", type=int, default=4096, help="tokens per language for the activation statistics")
    q.add_argument("--eval-tokens", type=int, default=512, help="held-out tokens per language for the loss matrix")
    q.add_argument("--n-prompts", type=int, default=8, help="generation prompts per language")
    q.add_argument("--prompt-tokens", type=int, default=16, help="tokens per prompt (BOS included)")
    q.add_argument("--new-tokens", type=int, default=16, help="tokens generated per prompt")
    q.add_argument("--top-fraction", type=float, default=0.01, help="fraction of all neurons kept by lowest entropy")
    q.add_argument("--quantile", type=float, default=0.95, help="activation-probability quantile of the filter and "
                   "the per-language bar (the paper's 0.95)")
    q.add_argument("--batch-size", type=int, default=4, help="rows per forward pass")
    q.add_argument("--parts", nargs="+", choices=["off", "on"], default=["off", "on"],
                   help="off: the loss matrix from switching neurons off; on: the language switch from switching them on")
    q.add_argument("--seed", type=int, default=0, help="first seed: the split and the rows; random controls use "
                   "--seed .. --seed + n-seeds - 1")
    q.add_argument("--n-seeds", type=int, default=3, help="random control draws (1..100)")
    q.add_argument("--out", default=None, help="folder for language_neurons.png/.pdf, NetCDF data, result.json, run.json")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(func=run_languages, method="languages")


def run_languages(args: argparse.Namespace) -> int:
    from spinlens.llm.multilingual import language_neurons_report

    return run_study(args, lambda log: language_neurons_report(
        args.model, languages=args.languages, n_ctx=args.n_ctx, fit_tokens=args.fit_tokens,
        eval_tokens=args.eval_tokens, n_prompts=args.n_prompts, prompt_tokens=args.prompt_tokens,
        new_tokens=args.new_tokens, top_fraction=args.top_fraction, quantile=args.quantile,
        batch_size=args.batch_size, parts=args.parts, seed=args.seed, n_seeds=args.n_seeds, progress=log), prefix="[languages] ")
