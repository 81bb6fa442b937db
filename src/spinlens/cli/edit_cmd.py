"""``spinlens steer | pinpoint | merge | quantize``: act on what interpretability found.

Each command is parse → one library call → report, through the one experiment layer (`spinlens.experiment`):
`resolve_source` decides the setting from the model arguments — ``lm`` (the default: the language-model
experiments of `spinlens.lm.experiments.run_edit` on held-out text of ``--checkpoint DIR`` from ``spinlens lm``
or of the default LM trained here), ``regression`` (the ICL-regression transformer of `spinlens.edit.experiments`:
``--checkpoint DIR`` or a base trained here in seconds, cached in ``OUT/base``), or ``hf`` (``--model DIR|NAME``:
a Hugging Face causal LM or a named pretrained model: precise tuning and merging of `spinlens.llm.tuning`, the
quantization study of `spinlens.llm.quantization`) — and `check_setting_options` refuses, in one line, the flags
of another setting; the run is one call, `spinlens.experiment.run_edit_command` (`spinlens.cli._edit_settings`).
Heavy imports happen inside the command functions.
"""

from __future__ import annotations

import argparse

from spinlens.cli._common import add_command

STEER_EXAMPLES = """  spinlens steer --out steer-out                      # default LM (trained once, cached in steer-out/base): steering on held-out text
  spinlens steer --setting regression --out steer-reg # ICL-regression transformer: function/task vectors
  spinlens steer --setting regression --spec spec.yaml --out steer-spec --json   # apply a spec file of interventions
  # spec.yaml:
  #   interventions:
  #     - {type: add, hook: blocks.1.hook_resid_pre, vector: v.npy, strength: 2.0, positions: -1}
  #     - {type: ablate, hook: blocks.0.attn.hook_result, head: 1, mode: mean}
  #     - {type: neurons, hook: blocks.0.mlp.hook_post, neurons: [3, 7], scale: 0}
  #     - {type: tokens, op: shuffle_labels}
"""
PINPOINT_EXAMPLES = """  spinlens pinpoint --out pin-out                     # default LM: 2 heads chosen by importance on stdlib-code vs induction / random heads vs full
  spinlens pinpoint --setting regression --out pin-reg  # regression: top-2 heads vs random vs bottom vs full fine-tuning
  spinlens pinpoint --setting regression --target noisy --k 1 --importance attribution --steps 200 --out pin-noisy
  spinlens pinpoint --setting regression --importance-file scores.nc --out pin-custom   # DataArray (layer, head)
"""
MERGE_EXAMPLES = """  spinlens merge --out merge-out                      # default LM: fine-tune on stdlib-code and stdlib-comments, merge (task arithmetic λ, TIES)
  spinlens merge --setting regression --out merge-reg # regression: two task families, merged 4 ways
  spinlens merge --setting regression --tasks corr noisy --density 0.5 --out merge-cn
  spinlens merge --checkpoint runs/base --models runs/ft-a runs/ft-b --method ties --save runs/merged
"""
QUANTIZE_EXAMPLES = """  spinlens quantize --out quant-out                   # default LM: held-out perplexity vs average bits, guided vs uniform vs random
  spinlens quantize --budgets 3 3.4 4 --group-size 16 --out quant-g16
  spinlens quantize --setting regression --out quant-reg   # the ICL-regression transformer: MSE vs average bits
  spinlens quantize --setting regression --budget 3.4 --json --out quant-one    # one guided allocation, as JSON
  spinlens quantize --setting regression --granularity layer --out quant-layer  # one bit width per block
  # a local Hugging Face causal LM (save_pretrained folder): one bit width per Linear per layer,
  # costs = measured KL increase on 8 random-token sequences (or --calib-text / --calib-tokens)
  spinlens quantize --model ./tiny-gpt2 --budgets 3 3.4 4 --out quant-hf
  spinlens quantize --model ./tiny-gpt2 --budget 3.4 --json --save ./tiny-gpt2-q3.4   # guided bits, saved model
  spinlens quantize --model ./tiny-gpt2 --granularity module --importance fisher --calib-tokens ids.npy --out quant-hf2
  spinlens quantize --model ./tiny-llama --crosscheck torchao hqq --json   # our RTN vs torchao / HQQ (if installed)
  spinlens quantize --model smollm2-135m --study --out runs/q-smol    # pretrained LLM: guided 3.4 vs uniform, random, HQQ, torchao
  spinlens quantize --model smollm2-135m --study --budget 3.4 --group-size 96 --n-random 3 --json
  spinlens quantize --model smollm2-135m --study --include-embedding --anchors hqq --aligned 32 --out runs/q-emb
"""
LLM_PINPOINT_EXAMPLES = """
pretrained language model (--model NAME or a Hugging Face folder):
  spinlens pinpoint --model smollm2-135m --task arithmetic --out pin-arith    # located heads+MLPs vs random heads, full, LoRA
  spinlens pinpoint --model smollm2-135m --task arithmetic --methods located full --n-seeds 1 --steps 10 --json
  spinlens pinpoint --model smollm2-135m --task icl --methods located random full --out pin-icl
  spinlens pinpoint --model smollm2-135m --task arithmetic --components L20H3 L21.mlp --out pin-given
"""
LLM_MERGE_EXAMPLES = """
pretrained language model (--model NAME: the base; --models: tuned Hugging Face folders, e.g. from pinpoint):
  spinlens merge --model smollm2-135m --models pin-arith/models/full/seed0 pin-icl/models/full/seed0 --out merge-llm
  spinlens merge --model smollm2-135m --models A B --method ties --density 0.3 --save merged-ties --json
"""


def _common(p, *, model_help="quantize: a Hugging Face causal-LM folder (a spinlens model here is deprecated: use "
                                "--checkpoint)"):
    p.add_argument("--checkpoint", help="spinlens model folder: a language model from `spinlens lm`, or a regression "
                   "Transformer (e.g. from `spinlens zoo train --arch tf --out DIR`); default: train the base of "
                   "the setting, cached in OUT/base")
    p.add_argument("--model", help=model_help)
    p.add_argument("--allow-pickle-weights", action="store_true",
                   help="also load pickled PyTorch .bin weights of a Hugging Face --model folder (default: "
                        ".safetensors only; a pickle can run code, so only for folders you trust)")
    p.add_argument("--D", "--token-dim", dest="d", type=int, default=5, help="token dimension D of the default base")
    p.add_argument("--N", "--context-length", dest="n_context", type=int, default=10, help="context length N of the default base")
    p.add_argument("--base-steps", type=int, default=2000, help="training steps of the default base")  # help: lm_cmd
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output folder (figures PNG+PDF, data, run.json)")
    p.add_argument("--json", action="store_true", help="print the main result as one JSON line")
    p.add_argument("--no-progress", action="store_true")


def register(sub) -> None:
    p = add_command(sub, "steer", "Steer a model: token/activation/neuron/module interventions, function vectors",
                    STEER_EXAMPLES, None)
    _common(p)
    p.add_argument("--spec", help="JSON/YAML intervention spec; without it, run the function-vector experiment")
    p.add_argument("--strengths", type=float, nargs="+", default=[0, 0.5, 1, 2, 3, 4])
    p.add_argument("--n-top-heads", type=int, default=3)
    p.add_argument("--n-prompts", type=int, default=256)

    p = add_command(sub, "pinpoint", "Pinpoint tuning of important heads vs random heads vs full fine-tuning",
                    PINPOINT_EXAMPLES + LLM_PINPOINT_EXAMPLES, None)
    _common(p, model_help="a named pretrained LM (smollm2-135m, gemma3-270m) or a Hugging Face folder: precise "
                          "tuning (--task); quantize: a Hugging Face causal-LM folder")
    p.add_argument("--target", choices=["corr", "noisy", "aniso"], default="corr",
                   help="shifted task: positions correlated (corr 0.7), noisy context labels (σ 0.5), anisotropic task prior")
    p.add_argument("--k", type=int, default=2, help="number of heads to tune")
    p.add_argument("--n-random", type=int, default=3, help="random draws of k heads")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--importance", choices=["patching", "attribution"], default="patching")
    p.add_argument("--importance-file", help="NetCDF DataArray (layer, head) of importance scores")
    g = p.add_argument_group("pretrained language model (--model NAME or HF folder): precise tuning")
    g.add_argument("--task", choices=("arithmetic", "icl"), default=None,
                   help="skill to tune (default arithmetic): arithmetic (2-digit addition; gain on held-out numbers "
                        "and a second prompt format) or icl (few-shot tasks; gain on held-out tasks)")
    g.add_argument("--methods", nargs="+", choices=("located", "random", "full", "lora"), default=None,
                   help="methods to compare (default all four; lora needs peft)")
    g.add_argument("--k-mlps", type=int, default=None, help="MLPs in the located set (default 2; --k: heads, default 6)")
    g.add_argument("--components", nargs="+", default=None,
                   help="the located set, given (e.g. L20H3 L21.mlp) instead of located by --locate")
    g.add_argument("--locate", choices=("study", "attribution"), default=None,
                   help="how the located set is found (default study): the skill's interpretability study (the "
                        "arithmetic study's heads and MLPs; the function-vector heads for icl) or attribution "
                        "importance of the answer loss (faster)")
    g.add_argument("--batch-size", type=int, default=None, help="prompts per step (default 8)")
    g.add_argument("--eval-every", type=int, default=None, help="evaluate gain and cost every N steps (default 10)")
    g.add_argument("--no-save-models", action="store_true", default=None,
                   help="do not write the tuned models (default: OUT/models/METHOD/seedS, Hugging Face folders)")

    p = add_command(sub, "merge", "Merge fine-tunes of one base: task arithmetic, TIES, neuron-level merge",
                    MERGE_EXAMPLES + LLM_MERGE_EXAMPLES, None)
    _common(p)
    p.add_argument("--tasks", nargs=2, choices=["corr", "noisy", "aniso"], default=["corr", "aniso"])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--density", type=float, default=0.3, help="TIES: fraction of each task vector kept")
    p.add_argument("--base", help=argparse.SUPPRESS)  # deprecated spelling of --checkpoint
    p.add_argument("--models", nargs="+", help="fine-tuned spinlens model folders to merge into --checkpoint (the base)")
    p.add_argument("--method", choices=["task_arithmetic", "ties", "module"], default="task_arithmetic",
                   help="task_arithmetic | ties | module (heads and MLPs whole from one expert; pretrained LMs only); "
                        "with --model NAME and no --method: all three")
    p.add_argument("--scale", type=float, default=None, help="λ (default 1/T for task arithmetic, 1 for TIES)")
    p.add_argument("--save", help="with --models: folder for the merged model")

    p = add_command(sub, "quantize", "Importance-guided mixed-precision fake quantization vs uniform bits",
                    QUANTIZE_EXAMPLES, None)
    _common(p)
    p.add_argument("--budgets", type=float, nargs="+", default=[2.5, 3.0, 3.4, 4.0, 5.0])
    p.add_argument("--budget", type=float, help="only this budget: print its guided allocation (with --json)")
    p.add_argument("--uniform-bits", type=int, nargs="+", default=[2, 3, 4, 5, 6, 8])
    p.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4, 5, 6, 8], help="bit widths to choose from")
    p.add_argument("--group-size", type=int, default=None,
                   help="weights per quantization group (default: 32; with --study 48, off the published models' "
                        "4-bit grid of 32)")
    p.add_argument("--granularity", choices=["head", "module", "layer", "linear"], default=None,
                   help="components: heads + MLPs (default), attention layers + MLPs, or blocks; for an HF "
                        "model: each Linear per layer (default), attention + MLP per layer, or layers")
    p.add_argument("--n-random", type=int, default=3)
    hf = p.add_argument_group("Hugging Face models (--model DIR)")
    hf.add_argument("--importance", choices=["measured", "fisher"], default="measured",
                    help="cost per (component, bits): measured metric increase, or empirical-Fisher estimate")
    hf.add_argument("--metric", choices=["kl", "loss"], default="kl",
                    help="measured cost and evaluation: KL to the full-precision model, or the LM loss")
    hf.add_argument("--calib-text", help="text file, tokenized by the tokenizer saved with the model")
    hf.add_argument("--calib-tokens", help="token ids: .npy or whitespace-separated integers")
    hf.add_argument("--n-seq", type=int, default=8, help="calibration (and evaluation) sequences")
    hf.add_argument("--seq-len", type=int, default=32, help="tokens per sequence")
    hf.add_argument("--save", help="write the model fake-quantized with the guided allocation at the first budget "
                                   "(save_pretrained folder + spinlens_quantization.json)")
    hf.add_argument("--crosscheck", nargs="+", choices=["torchao", "hqq", "hqq-opt"],
                    help="only compare our RTN with these libraries at --bits/--group-size (optional packages; "
                         "hqq-opt: HQQ with its half-quadratic optimisation)")

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

    from spinlens.cli._edit_settings import settings  # the settings (lm / regression / hf), parse -> run -> report

    for name in ("steer", "pinpoint", "merge", "quantize"):
        settings(sub.choices[name], name)
