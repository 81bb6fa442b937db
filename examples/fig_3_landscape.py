"""Fig 3 of Li, Bai & Huang: the energy landscape through a t-SNE of random W, P=10 vs P=1000.

Run:  python examples/fig_3_landscape.py   (about 10 s; writes fig_3_landscape.png)
More (eigen-direction profiles, spectra): spinlens landscape --out land
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from spinlens.landscape import landscape_dataset
from spinlens.plotting.landscape import plot_energy_surface
from spinlens.plotting.style import paper_style

ds = landscape_dataset(d=10, n_context=50, n_prompts_list=[10, 1000], l2_strength=0.01, n_samples=300, n_grid=60, rng=0)
print(ds[["n_zero_modes", "expected_zero_modes", "n_local_minima"]].to_dataframe())
with paper_style():
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, P in zip(axes, ds["n_prompts"].values):
        sub = ds.sel(n_prompts=P)
        plot_energy_surface(sub["grid_x"], sub["grid_y"], sub["surface"], points=sub["embedding"].values,
                            title=f"P={P}", ax=ax)
    fig.savefig("fig_3_landscape.png")
plt.close(fig)
