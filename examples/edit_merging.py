"""Merging two fine-tunes (inputs with correlated positions; anisotropic task prior) of one ICL base.

Task arithmetic (λ = 1/2, 1), TIES and the neuron-level merge, each evaluated on both tasks and the base task.
Usage: python examples/edit_merging.py [OUT_DIR]
"""

import sys
from pathlib import Path

from spinlens.edit.experiments import merging_experiment, pretrained_base
from spinlens.plotting.edit import plot_merging, save_figure

out = Path(sys.argv[1] if len(sys.argv) > 1 else "edit-out")
model = pretrained_base(d=5, n_context=10, steps=2000, path=out / "base", rng=0)
ds = merging_experiment(model, tasks=("corr", "aniso"), steps=300, density=0.3, rng=0)
ds["mse"].to_pandas().to_csv(out / "merging.csv")
fig, _ = plot_merging(ds)
save_figure(fig, out, "merging")
print(ds["mse"].to_pandas().to_string(float_format=lambda x: f"{x:.4f}"))
