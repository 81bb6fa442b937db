"""A language model trained on real text, its induction circuit, and acting on it (all on CPU).

1. Train a small attention-only GPT-style model on the standard library's documentation (offline), with a BPE
   tokenizer trained on the same text; checkpoints along training.
2. Induction and previous-token scores per head on repeated random tokens, the in-context loss (first
   occurrence vs repeat), the ICL score on held-out text, ablation of the induction heads and K-composition
   path patching (previous-token head -> induction head keys).
3. Steering, pinpoint tuning, merging and mixed-precision quantization measured on held-out text.
4. One HTML page with every figure and table.

    OMP_NUM_THREADS=2 python examples/lm_induction.py --out runs/lm-study          # about 10-20 CPU minutes
    OMP_NUM_THREADS=2 python examples/lm_induction.py --out runs/lm-quick --steps 300 --quick
"""

from __future__ import annotations

import argparse
import os

from spinlens.cli.main import main


def run(*argv):
    print("$ spinlens", " ".join(argv), flush=True)
    code = main(list(argv))
    if code:
        raise SystemExit(code)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/lm-study")
    ap.add_argument("--steps", default=None, help="training steps (default: spinlens lm's)")
    ap.add_argument("--quick", action="store_true", help="fewer seeds and fine-tuning steps")
    a = ap.parse_args()
    lm = os.path.join(a.out, "lm")
    run("lm", "--out", lm, "--no-progress", *(["--steps", a.steps] if a.steps else []))
    run("interp", "induction", "--checkpoint", lm, "--out", os.path.join(a.out, "induction"))
    seeds = ["--n-seeds", "1" if a.quick else "3"]
    steps = ["--steps", "20" if a.quick else "100"]
    run("steer", "--checkpoint", lm, *seeds, "--out", os.path.join(a.out, "steer"), "--no-progress")
    run("quantize", "--checkpoint", lm, *seeds, "--budgets", "3", "3.4", "4", "--uniform-bits", "3", "4", "8",
        "--bits", "2", "3", "4", "8", "--out", os.path.join(a.out, "quantize"), "--no-progress")
    run("pinpoint", "--checkpoint", lm, *seeds, *steps, "--out", os.path.join(a.out, "pinpoint"), "--no-progress")
    run("merge", "--checkpoint", lm, *seeds, *steps, "--out", os.path.join(a.out, "merge"), "--no-progress")
    run("report", a.out, "--title", "spinlens: a language model of the Python docs and its induction heads")
