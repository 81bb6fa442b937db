"""``spinlens interp sycophancy``: flip rate under pushback, the heads that carry it, pinpoint tuning of them.

Registered by `spinlens.cli.interp_cmd` (own module); the work is `spinlens.llm.sycophancy.sycophancy_tuning`.
"""

from __future__ import annotations

import argparse

from ._common import Formatter, run_study

HELP = ("Sycophancy of a chat LM (Chen et al. 2024): flip rate under user pushback, heads located by patching, "
        "tuning only them vs random heads vs full fine-tuning, with the general-ability cost.")
EXAMPLES = """  spinlens interp sycophancy --model smollm2-135m --out runs/syco           # 3 seeds, 8 heads, 30 steps
  spinlens interp sycophancy --model smollm2-135m --seeds 0 --steps 10 --methods heads full --json
  spinlens interp sycophancy --model smollm2-135m --k 4 --lr 3e-4 --no-save --out runs/syco-k4
"""


def register_sycophancy(isub) -> None:
    q = isub.add_parser("sycophancy", help=HELP, description=HELP, epilog="examples:\n" + EXAMPLES,
                        formatter_class=Formatter)
    q.add_argument("--model", default="smollm2-135m", help="a named chat model or a local HF folder with a chat template")
    q.add_argument("--n-train", type=int, default=48, help="questions for locating heads and for tuning")
    q.add_argument("--n-test", type=int, default=48, help="held-out questions for the flip rate")
    q.add_argument("--k", type=int, default=8, help="heads to tune (the located ones; as many random ones)")
    q.add_argument("--steps", type=int, default=30)
    q.add_argument("--lr", type=float, default=1e-4)
    q.add_argument("--batch-size", type=int, default=8)
    q.add_argument("--methods", nargs="+", default=["heads", "random_heads", "full"],
                   choices=["heads", "random_heads", "full"])
    q.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="one tuning run per method and seed")
    q.add_argument("--seed", type=int, default=0, help="seed of the questions and their train/test split")
    q.add_argument("--n-seq", type=int, default=16, help="held-out text sequences for the perplexity")
    q.add_argument("--seq-len", type=int, default=128, help="tokens per held-out sequence")
    q.add_argument("--n-prompts", type=int, default=48, help="prompts per general-ability task")
    q.add_argument("--eval-every", type=int, default=5, help="evaluate each run every this many steps (and at the "
                   "last): the curves behind the comparison at matched falls of the flip rate")
    q.add_argument("--out", default=None, help="folder: sycophancy.png/.pdf, result.json, run.json, models/METHOD_seedS")
    q.add_argument("--no-save", action="store_true", help="do not write the tuned models")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.add_argument("--no-progress", action="store_true")
    q.set_defaults(func=run_sycophancy, method="sycophancy")


def run_sycophancy(args: argparse.Namespace) -> int:
    from pathlib import Path

    from spinlens.llm.sycophancy import sycophancy_tuning

    quiet = args.json or args.no_progress
    return run_study(args, lambda _: sycophancy_tuning(
        args.model, n_train=args.n_train, n_test=args.n_test, k=args.k, steps=args.steps, lr=args.lr,
        batch_size=args.batch_size, methods=tuple(args.methods), seeds=tuple(args.seeds), seed=args.seed,
        n_seq=args.n_seq, seq_len=args.seq_len, n_prompts=args.n_prompts, eval_every=args.eval_every,
        save_dir=None if (args.out is None or args.no_save) else Path(args.out) / "models", progress=not quiet,
        log=None if quiet else (lambda s: print(s, flush=True))).report())
