"""Steering an ICL-regression transformer: function vectors, task vectors, mean-difference vectors.

Usage: python examples/edit_steering.py [OUT_DIR]   (about 30 s on one core; the base is cached in OUT_DIR)
"""

import sys
from pathlib import Path

from spinlens.edit.experiments import pretrained_base, steering_experiment
from spinlens.plotting.edit import plot_steering, save_figure

out = Path(sys.argv[1] if len(sys.argv) > 1 else "edit-out")
model = pretrained_base(d=5, n_context=10, steps=2000, path=out / "base", rng=0)
ds = steering_experiment(model, strengths=(0, 0.5, 1, 2, 3, 4), n_top_heads=3, rng=0)
ds.to_netcdf(out / "steering.nc")
ds["recovery"].to_dataframe().to_csv(out / "steering_recovery.csv")
fig, _ = plot_steering(ds)
save_figure(fig, out, "steering")
print(f"ICL recovery {ds.attrs['recovery_icl']:.3f}; best FV recovery {float(ds['recovery'].max()):.3f}; "
      f"best task-vector recovery {float(ds['recovery_task_vector'].max()):.3f}")
