"""``spinlens interp languages``: language-specific neurons (Tang et al. 2024, LAPE) of a pretrained LLM.

Registered by `spinlens.cli.interp_cmd` (kept in its own module so the interp CLI stays small). The study is
`spinlens.llm.multilingual.language_neurons_study`; this module parses, calls it once and reports.
"""

from __future__ import annotations

import argparse
import os
import sys

from ._common import Formatter, print_json, print_table

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
    from spinlens import io
    from spinlens.errors import check_float, check_int
    from spinlens.llm import multilingual as ML

    check_int("seed", args.seed, low=0)
    n_seeds = check_int("n-seeds", args.n_seeds, low=1, high=100)
    for name in ("n_ctx", "fit_tokens", "eval_tokens", "n_prompts", "prompt_tokens", "new_tokens", "batch_size"):
        check_int(name.replace("_", "-"), getattr(args, name), low=1)
    check_float("top-fraction", args.top_fraction, low=0.0, high=1.0, low_open=True)
    check_float("quantile", args.quantile, low=0.0, high=1.0)
    io.check_out_dir("out", args.out)
    corpus = ML.django_corpus(args.languages)
    from transformers import AutoTokenizer

    from spinlens.interp.hf import load_hf
    from spinlens.models.pretrained import resolve_model

    path = resolve_model(args.model)
    model = load_hf(path)
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    say = (lambda m: print(f"[languages] {m}", file=sys.stderr, flush=True)) if not args.json else None
    res = ML.language_neurons_study(
        model, tok, corpus, n_ctx=args.n_ctx, fit_tokens=args.fit_tokens, eval_tokens=args.eval_tokens,
        n_prompts=args.n_prompts, prompt_tokens=args.prompt_tokens, n_new=args.new_tokens,
        top_fraction=args.top_fraction, filter_quantile=args.quantile, bar_quantile=args.quantile,
        seeds=range(args.seed, args.seed + n_seeds), batch_size=args.batch_size, parts=args.parts,
        progress=say)
    d = res.to_dict()
    d["model"] = str(args.model)
    if args.out:
        from spinlens.plotting.multilingual import plot_language_neurons

        os.makedirs(args.out, exist_ok=True)
        fig, _ = plot_language_neurons(res)
        io.save_figure(fig, args.out, "language_neurons", bbox_inches="tight", dpi=150)
        io.save_dataset(ML.result_dataset(res), args.out, "language_neurons")
        io.write_json(os.path.join(args.out, "result.json"), d)
        io.write_run_json(args.out, io.run_record("interp languages", args=args, seed=args.seed, summary=d))
    if args.json:
        print_json(d)
        return 0
    f = lambda m: f"{m['mean']:.3f} ± {m['sd']:.3f}"  # noqa: E731
    rows = [("model", d["model"]), ("corpus", f"{d['corpus']['corpus']} (Django {d['corpus']['version']}, "
                                              f"{d['corpus']['n_messages']} aligned messages)"),
            ("language identifier accuracy", " ".join(f"{c} {a:.3f}" for c, a in d["lid_accuracy"].items())),
            ("language-specific neurons", " ".join(f"{c} {v['total']}" for c, v in d["language_neurons"].items()))]
    if "off" in args.parts:
        rows += [("Δ loss, own language off (mean of diagonal)", f"{d['diagonal_delta_loss']:.3f} nats/token"),
                 ("Δ loss, other languages (off-diagonal)", f"{d['off_diagonal_delta_loss']:.3f} nats/token"),
                 ("Δ loss, random neurons, diagonal", f(d["random_diagonal_delta_loss"]))]
    if "on" in args.parts:
        rows += [("switch rate, neurons on (off-diagonal)", f"{d['switch_rate_mean']:.3f}"),
                 ("switch rate, no intervention", f"{d['switch_base_mean']:.3f}"),
                 ("switch rate, random neurons on", f(d["switch_random_mean"]))]
    print_table(rows)
    if args.out:
        print(f"wrote {args.out}")
    return 0
