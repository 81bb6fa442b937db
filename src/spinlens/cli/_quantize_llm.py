"""``spinlens quantize --model NAME --study``: guided quantization of a pretrained LLM, bits counted honestly.

Registered by `spinlens.cli.edit_cmd` (its own module so that the edit CLI stays small); the work is
`spinlens.llm.quantization.quantization_study`.
"""

from __future__ import annotations

import argparse

EXAMPLES = """  spinlens quantize --model smollm2-135m --study --out runs/q-smol       # guided 3.4 vs uniform 3/4, random, HQQ, torchao
  spinlens quantize --model smollm2-135m --study --budget 3.4 --group-size 96 --n-random 3 --json
  spinlens quantize --model smollm2-135m --study --include-embedding --anchors hqq --aligned 32 --out runs/q-emb
"""


def add_study_args(p) -> None:
    g = p.add_argument_group("pretrained LLM study (--model NAME --study)")
    g.add_argument("--study", action="store_true", help="guided vs uniform 3/4 bits vs random vs library anchors, "
                   "evaluated by held-out perplexity and task accuracies; models saved under OUT/models/METHOD")
    g.add_argument("--anchors", nargs="*", default=["hqq", "torchao"], choices=["hqq", "hqq-rtn", "torchao"],
                   help="library anchors at 4 bits (skipped, and said, where not installed)")
    g.add_argument("--aligned", nargs="*", type=int, default=[32, 64],
                   help="group sizes aligned with the published Q4_1 grid, run at uniform 4 and 3 bits")
    g.add_argument("--include-embedding", action="store_true",
                   help="quantize the (tied) embedding / lm_head as one more component")
    g.add_argument("--n-prompts", type=int, default=48, help="prompts per task of the general-ability evaluation")
    g.add_argument("--no-save", action="store_true", help="do not write OUT/models/METHOD folders")


def run_study(args: argparse.Namespace) -> int:
    from pathlib import Path

    from spinlens.errors import check_int
    from spinlens.io import check_out_dir, run_record, write_study
    from spinlens.llm.quantization import quantization_study
    from spinlens.plotting.edit import plot_llm_quantization

    from ._common import print_json

    check_out_dir("out", args.out)
    check_int("n_prompts", args.n_prompts, low=1, high=10_000)
    budget = args.budget if args.budget is not None else 3.4
    gran = args.granularity or "linear"
    out = Path(args.out) if args.out else None
    log = None if args.json or args.no_progress else (lambda s: print(s, flush=True))
    res = quantization_study(args.model, budget=budget, group_size=args.group_size, bits=args.bits, granularity=gran,
                             importance=args.importance, n_random=args.n_random, anchors=tuple(args.anchors),
                             aligned=tuple(args.aligned), include_embedding=args.include_embedding,
                             n_calib=args.n_seq, seq_len=args.seq_len, n_prompts=args.n_prompts, seed=args.seed,
                             save_dir=None if (out is None or args.no_save) else out / "models",
                             progress=not (args.no_progress or args.json), log=log)
    d = res.to_dict()
    if out is not None:
        write_study(out, d, run_record("quantize --study", args=args, seed=args.seed, summary=res.summary, verdict=res.verdict,
                                       elapsed_s=res.seconds), fig=plot_llm_quantization(res)[0], stem="quantization")
    if args.json:
        print_json(d)
    else:
        print(res.verdict)
        print(f"quantized {res.accounting['quantized_params']:,} of {res.accounting['total_params']:,} parameters "
              f"({res.accounting['quantized_share']:.1%}); left out: "
              f"{sum(res.accounting['left_out'].values()):,} ({', '.join(list(res.accounting['left_out'])[:3])}, ...)")
        print(f"time: search {res.seconds['search']:.0f} s, evaluation {res.seconds['evaluation']:.0f} s, "
              f"total {res.seconds['total']:.0f} s")
    return 0
