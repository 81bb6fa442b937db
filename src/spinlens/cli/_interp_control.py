"""``spinlens interp control``: output-language control of a pretrained LLM at four levels (token, activation,
neuron, module), effect and held-out-loss cost, sparse against dense at equal effect.

Registered by `spinlens.cli.interp_cmd` (own module). The study is `spinlens.llm.control.language_control_study`;
its interventions are those of `spinlens.interp.interventions` (the ones `spinlens steer` applies).
"""

from __future__ import annotations

import argparse
import os
import sys

from ._common import Formatter, print_json, print_table

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
    from spinlens import io
    from spinlens.errors import check_float, check_int
    from spinlens.llm import control as C
    from spinlens.llm import multilingual as ML

    check_int("seed", args.seed, low=0)
    n_seeds = check_int("n-seeds", args.n_seeds, low=1, high=100)
    for name in ("n_ctx", "fit_tokens", "eval_tokens", "n_prompts", "prompt_tokens", "new_tokens", "batch_size",
                 "n_heads"):
        check_int(name.replace("_", "-"), getattr(args, name), low=1)
    for k in args.prefix_messages:
        check_int("prefix-messages", k, low=1)
    for a in [*args.alphas, *args.head_alphas, *args.neuron_scales]:
        check_float("alphas", a)
    check_float("effect", args.effect, low=0.0, high=1.0)
    io.check_out_dir("out", args.out)
    corpus = ML.django_corpus(args.languages)
    for name in ("source", "target"):
        if getattr(args, name) not in corpus.languages:
            from spinlens.errors import InvalidParameterError

            raise InvalidParameterError(f"The '{name}' parameter must be one of --languages {list(corpus.languages)}. "
                                        f"Got {getattr(args, name)!r}.")
    from transformers import AutoTokenizer

    from spinlens.interp.hf import load_hf
    from spinlens.models.pretrained import resolve_model

    path = resolve_model(args.model)
    model = load_hf(path)
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    say = (lambda m: print(f"[control] {m}", file=sys.stderr, flush=True)) if not args.json else None
    res = C.language_control_study(
        model, tok, corpus, source=args.source, target=args.target, layer=args.layer, n_heads=args.n_heads,
        alphas=args.alphas, head_alphas=args.head_alphas, neuron_scales=args.neuron_scales,
        prefix_messages=args.prefix_messages, n_ctx=args.n_ctx, fit_tokens=args.fit_tokens,
        eval_tokens=args.eval_tokens, n_prompts=args.n_prompts, prompt_tokens=args.prompt_tokens,
        n_new=args.new_tokens, seeds=range(args.seed, args.seed + n_seeds), batch_size=args.batch_size, progress=say)
    d = res.to_dict(args.effect)
    d["model"] = str(args.model)
    if args.out:
        from spinlens.plotting.multilingual import plot_language_control

        os.makedirs(args.out, exist_ok=True)
        fig, _ = plot_language_control(res, args.effect)
        io.save_figure(fig, args.out, "language_control", bbox_inches="tight", dpi=150)
        keys = ["method", "level", "strength", "units", "seed", "switch_rate", "loss", "delta_loss", "sample"]
        io.save_columns({k: [r[k] for r in res.rows] for k in keys}, args.out, "language_control")
        io.write_json(os.path.join(args.out, "result.json"), d)
        io.write_run_json(args.out, io.run_record("interp control", args=args, seed=args.seed, summary=d))
    if args.json:
        print_json(d)
        return 0
    key = f"delta_loss_at_switch_{args.effect:g}"
    rows = [("model", d["model"]), ("behaviour", f"output language {args.source} → {args.target}"),
            ("switch rate, no intervention", f"{d['base_switch_rate']['mean']:.3f} ± {d['base_switch_rate']['sd']:.3f}")]
    for m, e in d["methods"].items():
        at = e[key]
        rows.append((f"{m} ({e['level']}, {e['units']} units): max switch rate",
                     f"{e['max_switch_rate']['mean']:.3f} ± {e['max_switch_rate']['sd']:.3f}"))
        rows.append((f"{m}: Δ loss at switch rate {args.effect:g}",
                     f"{at['mean']:.3f} ± {at['sd']:.3f} ({at['reached']} seeds reach it)"))
    print_table(rows)
    if args.out:
        print(f"wrote {args.out}")
    return 0
