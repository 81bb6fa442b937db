"""``spinlens quantize --model NAME --study``: guided quantization of a pretrained LLM, bits counted honestly.

Registered by `spinlens.cli.edit_cmd`; the run is `spinlens.llm.quantization.run_study_command`
(`spinlens.llm.quantization.quantization_study`).
"""

from __future__ import annotations

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
