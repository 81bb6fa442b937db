"""``spinlens interp arithmetic``: accuracy and the arithmetic heads and MLPs (Zhang et al. 2024) of a pretrained LM.

Registered by `spinlens.cli.interp_cmd` (own module).
"""

from __future__ import annotations

import argparse

from ._common import Formatter, run_study

HELP = ("Arithmetic in a pretrained LM: accuracy by operation, digits and prompt format; the heads that move "
        "operand information to the answer (direct path patching with corrupted operands), their attention to "
        "operands and operator, the fraction of heads involved, and the MLPs after them.")
EXAMPLES = (
    "  spinlens interp arithmetic --model smollm2-135m --out runs/arith\n"
    "  spinlens interp arithmetic --model smollm2-135m --operations +,- --digits 1,2 --n-prompts 48 --json\n"
    "  spinlens interp arithmetic --model smollm2-135m --shots 0 --head-threshold 0.03\n"
)


def register_arithmetic(isub) -> None:
    q = isub.add_parser("arithmetic", help=HELP, description=HELP, epilog="examples:\n" + EXAMPLES,
                        formatter_class=Formatter)
    q.add_argument("--model", required=True, help="named pretrained model (smollm2-135m, gemma3-270m) or a local HF folder")
    q.add_argument("--operations", default="+,-,*", help="comma-separated subset of + - *")
    q.add_argument("--digits", default="1,2", help="operand digit counts for the accuracy table (1..4)")
    q.add_argument("--locate-digits", type=int, default=2, help="operand digits of the prompts used to locate (1..4)")
    q.add_argument("--n-prompts", type=int, default=48, help="prompts per format for the accuracy, and for locating (>= 2)")
    q.add_argument("--shots", type=int, default=3, help="solved examples before each question (0..16)")
    q.add_argument("--seed", type=int, default=0, help="first seed of the prompt draws")
    q.add_argument("--n-seeds", type=int, default=3, help="prompt draws (seeds --seed, --seed+1, ...; 1..20)")
    q.add_argument("--head-threshold", type=float, default=0.05, help="located head: direct path score >= this")
    q.add_argument("--mlp-threshold", type=float, default=0.1, help="located MLP: activation patching score >= this")
    q.add_argument("--out", default=None, help="folder for arithmetic.png/.pdf, arithmetic.nc, result.json, run.json")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(func=run_arithmetic, method="arithmetic")


def run_arithmetic(args: argparse.Namespace) -> int:
    from spinlens.llm.arithmetic import arithmetic_report

    return run_study(args, lambda log: arithmetic_report(
        args.model, operations=args.operations, digits=args.digits, locate_digits=args.locate_digits,
        n_prompts=args.n_prompts, shots=args.shots, seed=args.seed, n_seeds=args.n_seeds,
        head_threshold=args.head_threshold, mlp_threshold=args.mlp_threshold, progress=log))
