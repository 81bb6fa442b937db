"""Fig 1 of Li, Bai & Huang: couplings J and fields h (P=1000, D=5, N=100) and the blocks' distributions.

Run:  python examples/fig_1_couplings.py   (a second; writes fig_1_couplings.png)
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from spinlens import PromptDistribution, build_hamiltonian, limit
from spinlens.observables import block_statistics
from spinlens.plotting.matrices import plot_histograms, plot_matrix
from spinlens.plotting.style import paper_style

dist = PromptDistribution(d=5, n_context=100)
H = build_hamiltonian(dist.sample(1000, rng=0), l2_strength=0.0)
blocks = block_statistics(H)
for name, s in blocks["summary"].items():
    print(f"{name}: mean {s['mean']:+.4f}  std {s['std']:.4f}")
h = H.h.reshape(6, 6)
print(f"mean diagonal of h's D×D block {np.mean(np.diag(h[:5, :5])):.4f}; closed form E[y s] = "
      f"{limit.moments(dist).ys[0, 0]:.4f}")

with paper_style():
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    plot_matrix(H.J, title="J", ax=axes[0])
    plot_matrix(h, title="h", ax=axes[1])
    plot_histograms({k: blocks[k] for k in ("J1", "J2", "J3")}, xlabel="J", logy=True, bins=30, ax=axes[2])
    fig.savefig("fig_1_couplings.png")
plt.close(fig)
