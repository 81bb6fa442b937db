"""``spinlens interp control``: output-language control of a pretrained LLM at four levels (token, activation,
neuron, module), effect and held-out-loss cost, sparse against dense at equal effect.

Registered by `spinlens.cli.interp_cmd` (own module). The study is `spinlens.llm.control.language_control_report`;
its interventions are those of `spinlens.interp.interventions` (the ones `spinlens steer` applies).
"""

from __future__ import annotations

import argparse

from ._common import Formatter, run_study

HELP = ("Control the output language at four levels: a prompt prefix, a residual mean-difference vector, the "
        "target language's LAPE neurons, a few located heads; effect (switch rate) and cost (Δ held-out loss).")
EXAMPLES = (
    "  spinlens interp control --model gemma3-270m --source en --target fr --out runs/control --json\n"
    "  spinlens interp control --model gemma3-270m --target zh --alphas 1 2 4 --n-seeds 3\n"
)


def register_control(isub) -> None:
    q = isub.add_parser("control", help=HELP, description=HELP, epilog="examples:\n" + EXAMPLES,
                        formatter_class=Formatter)
    q.add_argument("--model", required=True, help="a named pretrained model (gemma3-270m) or a local HF folder")
    q.add_argument("--languages", nargs="+", default=["en", "fr", "ru", "zh"],
                   help="corpus languages (LAPE neurons and the language identifier use all of them)")
    q.add_argument("--source", default="en", help="language of the prompts")
    q.add_argument("--target", default="fr", help="language to steer the continuations to")
    q.add_argument("--layer", type=int, default=None, help="layer of the residual vector (default n_layers // 3)")
    q.add_argument("--n-heads", type=int, default=4, help="located heads steered at the module level")
    q.add_argument("--alphas", type=float, nargs="+", default=[1, 2, 4], help="strengths of the residual vector")
    q.add_argument("--head-alphas", type=float, nargs="+", default=[2, 4, 8], help="strengths of the head vectors")
    q.add_argument("--neuron-scales", type=float, nargs="+", default=[1, 4],
                   help="multiples of the target-language mean the neurons are set to")
    q.add_argument("--prefix-messages", type=int, nargs="+", default=[1, 3], help="target messages in the prefix")
    q.add_argument("--n-ctx", type=int, default=64, help="tokens per row")
    q.add_argument("--fit-tokens", type=int, default=512, help="tokens per language for vectors, heads and neurons")
    q.add_argument("--eval-tokens", type=int, default=64, help="held-out target-language tokens for the cost")
    q.add_argument("--n-prompts", type=int, default=4, help="prompts per seed")
    q.add_argument("--prompt-tokens", type=int, default=8, help="tokens per prompt (BOS included)")
    q.add_argument("--new-tokens", type=int, default=8, help="tokens generated per prompt")
    q.add_argument("--effect", type=float, default=0.5, help="switch rate at which the methods' costs are compared")
    q.add_argument("--batch-size", type=int, default=4, help="rows per forward pass")
    q.add_argument("--seed", type=int, default=0, help="first seed (split, rows, prompts, prefix, random neurons)")
    q.add_argument("--n-seeds", type=int, default=3, help="seeds --seed .. --seed + n-seeds - 1 (1..100)")
    q.add_argument("--out", default=None, help="folder for language_control.png/.pdf, CSV data, result.json, run.json")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(func=run_control, method="control")


def run_control(args: argparse.Namespace) -> int:
    from spinlens.llm.control import language_control_report

    return run_study(args, lambda log: language_control_report(
        args.model, languages=args.languages, source=args.source, target=args.target, layer=args.layer,
        n_heads=args.n_heads, alphas=args.alphas, head_alphas=args.head_alphas, neuron_scales=args.neuron_scales,
        prefix_messages=args.prefix_messages, n_ctx=args.n_ctx, fit_tokens=args.fit_tokens,
        eval_tokens=args.eval_tokens, n_prompts=args.n_prompts, prompt_tokens=args.prompt_tokens,
        new_tokens=args.new_tokens, effect=args.effect, batch_size=args.batch_size, seed=args.seed,
        n_seeds=args.n_seeds, progress=log), prefix="[control] ")
