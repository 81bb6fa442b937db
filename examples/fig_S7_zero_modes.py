"""Fig S7 of Li, Bai & Huang: fraction of zero modes of SᵀS/P vs P, against the rank formula.

Run:  python examples/fig_S7_zero_modes.py   (a few seconds; writes fig_S7_zero_modes.png)
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from spinlens import PromptDistribution, build_hamiltonian
from spinlens.observables import expected_zero_mode_fraction, hessian_spectrum, zero_mode_fraction
from spinlens.plotting.spectrum import plot_zero_mode_fraction
from spinlens.plotting.style import paper_style

ds_, Ps = [5, 10], [5, 20, 50, 90, 110, 150, 300]
frac = np.zeros((len(ds_), len(Ps)))
for i, d in enumerate(ds_):
    for j, P in enumerate(Ps):
        H = build_hamiltonian(PromptDistribution(d=d, n_context=100).sample(P, rng=j), l2_strength=0.0)
        frac[i, j] = zero_mode_fraction(hessian_spectrum(H))
        print(f"D={d:3d} P={P:4d}: measured {frac[i, j]:.4f}, 1 − min(P, D(D+1))/(D+1)² = "
              f"{expected_zero_mode_fraction(d, P):.4f}")
da = xr.DataArray(frac, coords={"d": ds_, "n_prompts": Ps}, dims=("d", "n_prompts"))
with paper_style():
    fig, ax = plot_zero_mode_fraction(da, floors={d: 1 / (d + 1) for d in ds_}, thresholds={d: d * (d + 1) for d in ds_})
    fig.savefig("fig_S7_zero_modes.png")
plt.close(fig)
