"""``spinlens pinpoint --model NAME|DIR --task arithmetic|icl``: precise tuning of a pretrained LM.

`attach_llm_edit` gives ``pinpoint`` and ``merge`` the flags of the ``hf`` setting of `spinlens.experiment`
(``--model``: a named pretrained model such as ``smollm2-135m``, or a Hugging Face folder); the run is
`spinlens.llm.tuning.run_edit_command` (defaults `spinlens.llm.tuning.COMMAND_DEFAULTS`).
"""

from __future__ import annotations

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


def attach_llm_edit(sub) -> None:
    """Add the pretrained-LM flags to ``pinpoint`` and ``merge`` (the ``hf`` setting)."""
    p = sub.choices.get("pinpoint")
    if p is None:
        return
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
    p.epilog = (p.epilog or "") + LLM_PINPOINT_EXAMPLES
    for a in p._actions:
        if a.dest == "model":
            a.help = ("a named pretrained LM (smollm2-135m, gemma3-270m) or a Hugging Face folder: precise tuning "
                      "(--task); quantize: a Hugging Face causal-LM folder")
    p = sub.choices.get("merge")
    if p is not None:
        for a in p._actions:
            if a.dest == "method":
                a.choices = [*a.choices, "module"]
                a.help = ("task_arithmetic | ties | module (heads and MLPs whole from one expert; pretrained LMs "
                          "only); with --model NAME and no --method: all three")
        p.epilog = (p.epilog or "") + LLM_MERGE_EXAMPLES
