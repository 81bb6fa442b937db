"""Fig 2 of Li, Bai & Huang: the cavity solution W for many tasks is close to c·I on its D×D block.

Run:  python examples/fig_2_weights.py   (a few seconds; writes fig_2_weights.png)
Full figure with Adam-trained weights: spinlens reproduce fig2
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from spinlens import PromptDistribution, build_hamiltonian, solve
from spinlens.observables import contrast_ratio
from spinlens.plotting.matrices import plot_matrix
from spinlens.plotting.style import paper_style

dist = PromptDistribution(d=10, n_context=100)
H = build_hamiltonian(dist.sample(5000, rng=0), l2_strength=0.01)
res = solve(H, "cavity", beta=100, rng=1, damping=0.9)
W = res.W
print(res)
print(f"contrast ratio {contrast_ratio(W):.3f}; mean diagonal of the D×D block {np.mean(np.diag(W[:10, :10])):.3f}")
print(f"relative distance to the exact Boltzmann mean: {res.extras['exact_distance']:.3f}")

with paper_style():
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
    plot_matrix(res.m, title="cavity m", ax=axes[0])
    plot_matrix(res.v, title="cavity v", diverging=False, ax=axes[1])
    fig.savefig("fig_2_weights.png")
plt.close(fig)
