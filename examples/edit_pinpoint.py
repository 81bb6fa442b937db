"""Pinpoint tuning: adapt a pretrained ICL model to inputs with correlated positions by tuning only the most important heads.

Compares the top-k heads (activation patching) with k random heads, the bottom-k heads and full fine-tuning:
target-task gain vs change on the original (isotropic) ICL task. Saves the delta of the top-k run.
Usage: python examples/edit_pinpoint.py [OUT_DIR]
"""

import sys
from pathlib import Path

from spinlens.edit._data import sample_regression_prompts
from spinlens.edit.experiments import pinpoint_experiment, pretrained_base
from spinlens.edit.pinpoint import pinpoint_tune, save_delta
from spinlens.plotting.edit import plot_pinpoint, save_figure

out = Path(sys.argv[1] if len(sys.argv) > 1 else "edit-out")
model = pretrained_base(d=5, n_context=10, steps=2000, path=out / "base", rng=0)
ds = pinpoint_experiment(model, target="corr", k=2, n_random=3, steps=300, importance="patching", rng=0)
runs = ds.drop_vars(["importance", "imp_layer", "head"])
runs.to_dataframe().to_csv(out / "pinpoint.csv")
fig, _ = plot_pinpoint(ds)
save_figure(fig, out, "pinpoint")
print(runs[["method", "components", "target_gain", "general_change", "n_trainable"]].to_dataframe().to_string())

top = str(ds["components"].values[1]).split(",")
Z, y, _ = sample_regression_prompts(8192, 5, 10, corr=0.7, rng=1)
res = pinpoint_tune(model, top, Z, y, lr=3e-3, steps=300, rng=0)
n = save_delta(out / "pinpoint_delta.safetensors", model, res.model, res.masks, metadata={"components": top})
print(f"delta: {n} entries (the tuned heads) of {sum(p.numel() for p in model.parameters())} parameters")
