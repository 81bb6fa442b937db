"""`spinlens prompts`: sample prompts and write them to an .npz file."""

from __future__ import annotations

from ._common import add_command
from ._prompt_args import add_prompt_args

EXAMPLES = """  spinlens prompts --D 20 --N 100 --P 10000 --seed 0 -o prompts.npz
  spinlens prompts --D 8 --N 16 --P 4096 --K 64 --sigma-eps 0.5 -o pool.npz --json
  spinlens solve --data prompts.npz --lam 0.01 --method cavity
"""


def register(sub):
    p = add_command(sub, "prompts", "Sample in-context regression prompts and save them (.npz with Z, y, w).", EXAMPLES, run)
    add_prompt_args(p, data=False, P_default=10000)
    p.add_argument("-o", "--output", required=True, help="output .npz path")
    p.add_argument("--json", action="store_true", help="print one JSON object (path and sizes)")


def run(args) -> int:
    from ._common import check_out_file
    from ._prompt_args import prompts_from_args

    check_out_file("--output", args.output)
    dist, prompts = prompts_from_args(args, args.seed)
    path = prompts.save(args.output)
    if getattr(args, "json", False):
        from ._common import print_json

        print_json({"path": str(path), "P": prompts.n_prompts, "D": prompts.d, "N": prompts.n_context,
                    "K": dist.n_tasks, "seed": args.seed})  # keys: the symbols of docs/vocabulary.md
    else:
        print(f"wrote {prompts!r} to {path}")
    return 0
