"""`spinlens interp`: interpretability methods on spinlens transformers and local Hugging Face causal LMs.

Subcommands: lens, patch, path, circuit, attribution, neurons, flow, fv, induction, languages, control. Each writes a figure (PNG + PDF), the data
behind it (NetCDF / JSON) and run.json under ``--out``, and prints a short summary (``--json``: one object).
"""

from __future__ import annotations

import argparse

from ._common import Formatter, add_command, run_study

EXAMPLES = """  spinlens interp patch --planted regression --out runs/interp-patch
  spinlens interp circuit --checkpoint runs/tf --n-prompts 256 --threshold 0.1 --out runs/circuit
  spinlens interp lens --model path/to/hf-model --n-prompts 64 --out runs/lens --json
"""

SUB = {
    "lens": ("Read-out / logit lens: decode every layer's residual stream with the final read-out.",
             "  spinlens interp lens --planted regression --out runs/lens\n"
             "  spinlens interp lens --planted copy --json\n"
             "  spinlens interp lens --model path/to/hf-model --tuned --out runs/lens-hf\n"),
    "patch": ("Activation patching: recovery of the clean output when one head (layer, position) is patched.",
              "  spinlens interp patch --planted regression --out runs/patch\n"
              "  spinlens interp patch --checkpoint runs/tf --component z --per-position --out runs/patch-pos\n"
              "  spinlens interp patch --model path/to/hf-model --component mlp_out --json\n"),
    "path": ("Path patching: effect of every sender head through the receivers' q/k/v only (all else frozen).",
             "  spinlens interp path --planted regression --receivers output --out runs/path\n"
             "  spinlens interp path --planted regression --receivers 1.1 --input v --json\n"
             "  spinlens interp path --checkpoint runs/tf --receivers 1.0,1.2 --input k --out runs/path-k\n"),
    "circuit": ("Circuit discovery: iterate path patching backwards from the output; draw the circuit.",
                "  spinlens interp circuit --planted regression --out runs/circuit\n"
                "  spinlens interp circuit --checkpoint runs/tok/model --n-pairs 3 --corruption input_swap --out runs/induction\n"
                "  spinlens interp circuit --checkpoint runs/tf --threshold 0.05 --json\n"
                "  spinlens interp circuit --planted copy --out runs/circuit-copy\n"),
    "attribution": ("Attribution patching over all edges, checked against exact path patching; circuit faithfulness.",
                    "  spinlens interp attribution --planted regression --out runs/attr\n"
                    "  spinlens interp attribution --checkpoint runs/tf --threshold 0.05 --json\n"
                    "  spinlens interp attribution --checkpoint runs/tok --out runs/attr-tok\n"),
    "neurons": ("Neuron and head descriptions: correlations with task quantities, top prompts, templated text.",
                "  spinlens interp neurons --planted regression --out runs/neurons\n"
                "  spinlens interp neurons --checkpoint runs/tf --top 20 --json\n"
                "  spinlens interp neurons --model path/to/hf-model --out runs/neurons-hf\n"),
    "flow": ("Information flow: attention rollout from every position to the query, per layer.",
             "  spinlens interp flow --planted regression --out runs/flow\n"
             "  spinlens interp flow --planted copy --head 1 --json\n"
             "  spinlens interp flow --model path/to/hf-model --out runs/flow-hf\n"),
}


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model (one of)")
    g.add_argument("--model", default=None, help="local Hugging Face causal LM folder (GPT-2 or Llama family)")
    p.add_argument("--allow-pickle-weights", action="store_true",
                   help="also load pickled PyTorch .bin weights of a --model folder (default: .safetensors only; "
                        "a pickle can run code, so only for folders you trust)")
    g.add_argument("--checkpoint", default=None, help="spinlens model folder holding a Transformer "
                   "(`zoo train --arch tf --out DIR`, or spinlens.models.checkpoint.save_model)")
    g.add_argument("--planted", default=None, help="hand-built model with a known circuit: regression | copy "
                   "(default regression when no model is given)")
    g = p.add_argument_group("data")
    g.add_argument("--n-prompts", type=int, default=256, help="clean/corrupted prompt pairs (>= 2)")
    g.add_argument("--D", "--token-dim", dest="d", type=int, default=4, help="planted regression: token dimension D")
    g.add_argument("--N", "--context-length", dest="n_context", type=int, default=None, help="regression: context length N (default: the model's)")
    g.add_argument("--n-pairs", type=int, default=None,
                   help="token models: input→label pairs per prompt (default: the checkpoint's, or 4)")
    g.add_argument("--corruption", default="label_swap", help="token models: label_swap (what is copied changes) | "
                   "input_swap (which pair the query matches changes)")
    g.add_argument("--seed", type=int, default=0, help="seed of the prompts")
    g = p.add_argument_group("output")
    g.add_argument("--out", default=None, help="folder for figures (PNG, PDF), data (NetCDF/JSON) and run.json")
    g.add_argument("--json", action="store_true", help="print one JSON object")
    g.add_argument("--no-progress", action="store_true", help="hide progress output")


def register(sub) -> None:
    p = add_command(sub, "interp", "Interpretability: lens, activation/path patching, circuits, neurons, flow.",
                    EXAMPLES, None)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    isub = p.add_subparsers(dest="interp_command", metavar="METHOD")
    for name, (help_, ex) in SUB.items():
        q = isub.add_parser(name, help=help_, description=help_, epilog="examples:\n" + ex, formatter_class=Formatter)
        _common(q)
        q.set_defaults(func=_run, method=name)
        if name == "lens":
            q.add_argument("--tuned", action="store_true", help="also fit a tuned lens (affine map per stage)")
        if name == "patch":
            q.add_argument("--component", default="z", help="z | q | k | v | result | pattern | resid_pre | "
                           "resid_mid | resid_post | attn_out | mlp_out")
            q.add_argument("--per-position", action="store_true", help="patch each position separately")
            q.add_argument("--direction", default="denoise", help="denoise (clean into corrupt) | noise")
        if name == "path":
            q.add_argument("--receivers", default="output", help="'output' or heads 'L.H,L.H'")
            q.add_argument("--input", default="q", help="receiver input: q | k | v")
        if name in ("circuit", "attribution"):
            q.add_argument("--threshold", type=float, default=0.1, help="keep edges with |score| above this (>= 0)")
        if name == "neurons":
            q.add_argument("--top", type=int, default=12, help="units shown in the table and figure (>= 1)")
        if name == "flow":
            q.add_argument("--head", type=int, default=None, help="one head's rollout (default: mean over heads)")
            q.add_argument("--residual-weight", type=float, default=0.5, help="weight of the residual in [0, 1]")
    from ._interp_fv import register_fv  # function vectors: own arguments (no --model), own module

    register_fv(isub)
    from ._interp_languages import register_languages  # language-specific neurons of a pretrained LLM

    register_languages(isub)
    from ._interp_control import register_control  # output-language control at four levels

    register_control(isub)

    from ._interp_sycophancy import register_sycophancy  # pretrained chat LM: own module

    register_sycophancy(isub)
    _register_induction(isub)
    from ._interp_arithmetic import register_arithmetic
    from ._interp_ioi import register_ioi

    register_ioi(isub)
    register_arithmetic(isub)
    from ._interp_recall import register_recall  # factual recall by causal tracing (spinlens.llm.recall)

    register_recall(isub)


# ------------------------------------------------------------------------------------------------ induction
INDUCTION_HELP = ("Induction heads of a language model (spinlens lm): per-head induction and previous-token scores, "
                  "repeated-token loss, held-out ICL score, ablation and K-composition path patching.")
INDUCTION_EXAMPLES = """  spinlens interp induction --checkpoint runs/lm --json
  spinlens interp induction --checkpoint runs/lm --out runs/lm-induction    # + figures, snippets, lens
  spinlens interp induction --checkpoint runs/lm/checkpoints/step-000100 --no-ablation --no-path
  spinlens interp induction --model smollm2-135m --n-seq 32 --json
"""


def _register_induction(isub) -> None:
    q = isub.add_parser("induction", help=INDUCTION_HELP, description=INDUCTION_HELP,
                        epilog="examples:\n" + INDUCTION_EXAMPLES, formatter_class=Formatter)
    q.add_argument("--checkpoint", default=None, help="language-model folder written by 'spinlens lm' (or one of its "
                   "checkpoints/step-* folders)")
    q.add_argument("--model", default=None, help="or: a named pretrained model (smollm2-135m, gemma3-270m) or a Hugging "
                   "Face causal LM folder (default --half 64; no K-composition)")
    q.add_argument("--n-seq", type=int, default=64, help="repeated random token sequences (>= 1; the default is the one "
                   "`spinlens lm` uses, so both print the same scores for the same model)")
    q.add_argument("--half", type=int, default=None, help="tokens per half of a repeated sequence (default: n_ctx/2, "
                   "at most 64)")
    q.add_argument("--text", default=None, help="held-out UTF-8 text for icl_score (default: the held-out split saved "
                   "with the model)")
    q.add_argument("--threshold", type=float, default=0.1, help="heads with induction score >= this are ablated "
                   "together (default: the induction_head_formed score, 0.1)")
    q.add_argument("--prev-threshold", type=float, default=0.3, help="heads with previous-token score >= this (the "
                   "circuit's other half) are kept out of the random-head ablation control")
    q.add_argument("--no-ablation", action="store_true", help="skip ablating the induction heads")
    q.add_argument("--no-path", action="store_true", help="skip K-composition path patching")
    q.add_argument("--top-k", type=int, default=5, help="text snippets per unit in --out (>= 1)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--device", default="cpu")
    q.add_argument("--out", default=None, help="folder: figures (PNG, PDF), CSVs, snippets, run.json; "
                   "then 'spinlens report DIR' gathers them in one HTML page")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(func=_run_induction, method="induction")


def _run_induction(args) -> int:
    from spinlens.lm.analysis import induction_study_report

    return run_study(args, lambda log: induction_study_report(
        args.checkpoint, args.model, n_seq=args.n_seq, half=args.half, text=args.text, threshold=args.threshold,
        prev_threshold=args.prev_threshold, ablation=not args.no_ablation, path=not args.no_path, top_k=args.top_k,
        seed=args.seed, device=args.device, out=args.out))


# ------------------------------------------------------------------------------------------------ run
def _run(args) -> int:
    from spinlens.experiment import interp_method

    return run_study(args, lambda log: interp_method(
        args.method, threshold=getattr(args, "threshold", None), top=getattr(args, "top", None),
        head=getattr(args, "head", None), tuned=getattr(args, "tuned", False),
        component=getattr(args, "component", "z"), per_position=getattr(args, "per_position", False),
        direction=getattr(args, "direction", "denoise"), receivers=getattr(args, "receivers", "output"),
        receiver_input=getattr(args, "input", "q"), residual_weight=getattr(args, "residual_weight", 0.5),
        progress=not args.no_progress, model=args.model, checkpoint=args.checkpoint, planted=args.planted,
        n_prompts=args.n_prompts, n_pairs=args.n_pairs, d=args.d, n_context=args.n_context,
        corruption=args.corruption, seed=args.seed, allow_pickle_weights=args.allow_pickle_weights))
