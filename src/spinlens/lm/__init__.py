"""Language models trained on real text, and their induction circuit.

* `spinlens.lm.corpus`: a user's text file or a built-in offline source (``stdlib-docs``, ``pydoc-topics``),
  checked (empty, binary, not UTF-8);
* `spinlens.lm.tokenizer`: byte-level BPE trained on the corpus (Hugging Face ``tokenizers``), saved with the model;
* `spinlens.lm.data`: interleaved held-out split, training windows, per-token loss, perplexity;
* `spinlens.lm.train`: `LMConfig`, `train_lm`, `save_lm` / `load_lm` (spinlens' transformer folder format +
  ``tokenizer.json``), checkpoints along training;
* `spinlens.lm.induction`: induction / previous-token scores, repeated-token loss, ICL score, ablation hooks,
  K-composition path patching;
* `spinlens.lm.analysis`: ``spinlens interp induction`` (ablation study, logit lens on text, unit snippets);
* `spinlens.lm.experiments`: steering, pinpoint tuning, merging and quantization of a trained LM;
* `spinlens.lm.icl_tasks`: natural-language in-context word tasks (copy, capitalise, lowercase) and function
  vectors on them (``spinlens interp fv --checkpoint DIR --task T``).

See ``docs/lm.md``.
"""

_LAZY = {"induction_report": "spinlens.lm.induction", "LMConfig": "spinlens.lm.config",
         "load_lm": "spinlens.lm.train", "save_lm": "spinlens.lm.train", "train_lm": "spinlens.lm.train"}
__all__ = sorted(_LAZY)


def __getattr__(name):  # lazy, so that importing spinlens.lm (e.g. for `--help`) does not import torch
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'spinlens.lm' has no attribute {name!r}")
