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
* `spinlens.lm.experiments`: steering, pinpoint tuning, merging and quantization of a trained LM.

See ``docs/lm.md``.
"""

from spinlens.lm.induction import induction_report as induction_report
from spinlens.lm.train import LMConfig as LMConfig
from spinlens.lm.train import load_lm as load_lm
from spinlens.lm.train import save_lm as save_lm
from spinlens.lm.train import train_lm as train_lm
