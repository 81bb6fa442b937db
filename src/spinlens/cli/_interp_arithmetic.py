"""``spinlens interp arithmetic``: accuracy and the arithmetic heads and MLPs (Zhang et al. 2024) of a pretrained LM.

Registered by `spinlens.cli.interp_cmd` (own module).
"""

from __future__ import annotations

import argparse
import os

from ._common import Formatter, check_out_dir, print_json, print_table

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
    import sys

    import torch

    from spinlens.errors import InvalidParameterError, check_float, check_int
    from spinlens.llm import arithmetic as A

    ops = tuple(o.strip() for o in args.operations.split(",") if o.strip())
    for o in ops:
        if o not in A.OPERATIONS:
            raise InvalidParameterError(f"The 'operations' parameter must be a comma-separated subset of + - *. Got {args.operations!r} instead.")
    try:
        digits = tuple(int(x) for x in args.digits.split(","))
    except ValueError:
        raise InvalidParameterError(f"The 'digits' parameter must be comma-separated integers 1..4. Got {args.digits!r} instead.") from None
    for x in digits:
        check_int("digits", x, low=1, high=4)
    check_int("locate-digits", args.locate_digits, low=1, high=4)
    n = check_int("n-prompts", args.n_prompts, low=2)
    check_int("shots", args.shots, low=0, high=16)
    check_int("seed", args.seed, low=0)
    ns = check_int("n-seeds", args.n_seeds, low=1, high=20)
    check_float("head-threshold", args.head_threshold, low=0)
    check_float("mlp-threshold", args.mlp_threshold, low=0)
    check_out_dir("out", args.out)
    from spinlens.llm.tasks import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(args.model)
    say = (lambda s: None) if args.json else (lambda s: print(f"  {s}", file=sys.stderr, flush=True))
    with torch.no_grad():
        res = A.arithmetic_study(model, tok, operations=ops, digits=digits, locate_digits=args.locate_digits,
                                 n_prompts=n, shots=args.shots, seeds=tuple(range(args.seed, args.seed + ns)),
                                 head_threshold=args.head_threshold, mlp_threshold=args.mlp_threshold, progress=say)
    d = res.to_dict()
    d["model"] = args.model
    if args.out:
        from spinlens import io
        from spinlens.plotting import interp as P

        os.makedirs(args.out, exist_ok=True)
        P.save_figure(P.plot_arithmetic(res), args.out, "arithmetic")
        P.save_data(res.dataset(), args.out, "arithmetic")
        io.write_json(os.path.join(args.out, "result.json"), d)
        io.write_run_json(args.out, io.run_record("interp arithmetic", args=args, seed=args.seed, summary=d))
    if args.json:
        print_json(d)
        return 0
    rows = [("model", args.model)]
    for key, v in d["accuracy"].items():
        rows.append((f"accuracy {key}", f"{v['mean']:.3f} ± {v['sd']:.3f}"))
    for s, lc in d["located"].items():
        rows.append((f"seed {s}: heads ({lc['fraction_heads']:.1%} of {lc['n_heads_total']})", " ".join(f"{L}.{h}" for L, h in lc["heads"]) or "-"))
        rows.append((f"seed {s}: MLPs", " ".join(map(str, lc["mlps"])) or "-"))
    rows += [("heads located in every seed", " ".join(d["heads_all_seeds"]) or "-"),
             ("fraction of heads (mean ± sd)", f"{d['fraction_heads']['mean']:.3%} ± {d['fraction_heads']['sd']:.3%}"),
             ("verdict", d["verdict"])]
    print_table(rows)
    if args.out:
        print(f"wrote {args.out}")
    return 0
