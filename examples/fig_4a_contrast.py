"""Fig 4a of Li, Bai & Huang: contrast ratio of the cavity solution over (N, P), D=20, λ=1 (coarse grid).

Run:  python examples/fig_4a_contrast.py   (about 10 s; writes fig_4a_contrast.png)
Paper's 50×50 grid: spinlens reproduce fig4a --full
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from spinlens import PromptDistribution, build_hamiltonian, solve
from spinlens.observables import contrast_ratio
from spinlens.plotting.phase import plot_phase_map
from spinlens.plotting.style import paper_style

Ns, Ps = [10, 20, 50, 100], [100, 200, 400, 600, 800, 1000]
ratio = np.full((len(Ns), len(Ps)), np.nan)
for i, N in enumerate(Ns):
    for j, P in enumerate(Ps):
        H = build_hamiltonian(PromptDistribution(d=20, n_context=N).sample(P, rng=100 * i + j), l2_strength=1.0)
        res = solve(H, "cavity", beta=100, rng=0, compare_exact=False)
        if res.converged:  # blank where the iteration did not converge, as in the paper
            ratio[i, j] = contrast_ratio(res.W)
da = xr.DataArray(ratio, coords={"n_context": Ns, "n_prompts": Ps}, dims=("n_context", "n_prompts"),
                  name="contrast ratio")
print(da.round(3).to_pandas())
with paper_style():
    fig, ax = plot_phase_map(da, x="n_context", y="n_prompts", vmin=0, vmax=1)
    fig.savefig("fig_4a_contrast.png")
plt.close(fig)
