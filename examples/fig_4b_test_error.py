"""Fig 4b of Li, Bai & Huang: ICL test error vs context length N (cavity solver, D=20, P=10000, λ=0.01).

Run:  python examples/fig_4b_test_error.py   (about 10 s; writes fig_4b_test_error.png)
Same figure with the paper's table: spinlens reproduce fig4b [--full]
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from spinlens import PromptDistribution, build_hamiltonian, solve
from spinlens.observables import test_error
from spinlens.plotting.curves import plot_series
from spinlens.plotting.style import paper_style

PAPER = {20: 0.534, 40: 0.362, 60: 0.277, 80: 0.224, 100: 0.192, 120: 0.166, 140: 0.148, 160: 0.135, 180: 0.123, 200: 0.113}
Ns = [20, 60, 100, 140, 200]
cavity, exact = [], []
for N in Ns:
    dist = PromptDistribution(d=20, n_context=N)
    H = build_hamiltonian(dist.sample(10000, rng=N), l2_strength=0.01)
    cavity.append(test_error(solve(H, "cavity", beta=100, rng=0, damping=0.9, max_iter=100).W, dist))
    exact.append(test_error(solve(H, "exact", beta=100).W, dist))
    print(f"N={N:4d}  cavity {cavity[-1]:.4f}  paper {PAPER[N]:.3f}  exact mean {exact[-1]:.4f}")

with paper_style():
    fig, ax = plot_series(Ns, {"cavity": cavity, "exact Boltzmann mean": exact},
                          reference={"paper": (list(PAPER), list(PAPER.values()))},
                          xlabel="context length N", ylabel="test error")
    fig.savefig("fig_4b_test_error.png")
plt.close(fig)
