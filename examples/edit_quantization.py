"""Interpretability-guided mixed-precision quantization vs uniform bits, over several trained bases.

Tests the claim "guided ≈3.4 bits matches uniform 4-bit, uniform 3-bit is clearly worse" on our models.
Usage: python examples/edit_quantization.py [OUT_DIR] [N_SEEDS]   (≈1 min per seed on one core)
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from spinlens.edit.experiments import pretrained_base, quantization_experiment
from spinlens.plotting.edit import plot_quantization, save_figure

out = Path(sys.argv[1] if len(sys.argv) > 1 else "edit-out")
n_seeds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
rows = []
for seed in range(n_seeds):
    path = out / ("base" if seed == 0 else f"base_seed{seed}")
    model = pretrained_base(d=5, n_context=10, steps=2000, path=path, rng=seed)
    ds = quantization_experiment(model, budgets=(2.5, 3.0, 3.4, 4.0, 5.0), group_size=32, rng=seed)
    if seed == 0:
        fig, _ = plot_quantization(ds)
        save_figure(fig, out, "quantization")
    df = ds.drop_vars("bits_json").to_dataframe().reset_index()
    df["seed"], df["rel_mse"] = seed, df["mse"] / ds.attrs["fp_mse"]
    rows.append(df)
df = pd.concat(rows)
df.to_csv(out / "quantization.csv", index=False)


def rel(scheme, bits):
    sel = df[(df.scheme == scheme) & np.isclose(df.average_bits, bits, atol=0.13)]
    return sel.groupby("seed").rel_mse.mean().values


print("MSE / full-precision MSE per seed")
for name, scheme, bits in [("uniform 4 bit", "uniform", 4), ("uniform 3 bit", "uniform", 3),
                           ("guided (ablation) ~3.4", "guided_ablation", 3.4),
                           ("guided (attribution) ~3.4", "guided_attribution", 3.4),
                           ("guided (measured) ~3.4", "guided_measured", 3.4), ("random ~3.4", "random", 3.4)]:
    print(f"{name:28s}", np.round(rel(scheme, bits), 4))
