"""Benchmark of the core pipeline: prompts → fields → couplings → exact → cavity.

Prints a table of wall time and peak traced memory (tracemalloc: numpy allocations), and compares
with the straightforward dense construction that stacks the P outer products s sᵀ
(a P × (D+1)² × (D+1)² tensor) before averaging.

    python benchmarks/bench_core.py            # the issue's two sizes + the dense comparison
    python benchmarks/bench_core.py --large    # also D=100, P=10⁵ matrix-free (CG), a few minutes
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
import warnings

import numpy as np

from spinlens.hamiltonian import build_hamiltonian
from spinlens.prompts import PromptDistribution
from spinlens.solvers import CavitySolver, ExactSolver


def measure(fn):
    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, dt, peak / 2**20


def pipeline(D, N, P, seed=0):
    timings = {}
    t = time.perf_counter()
    dist = PromptDistribution(d=D, n_context=N)
    prompts = dist.sample(P, rng=seed)
    timings["prompts"] = time.perf_counter() - t
    t = time.perf_counter()
    H = build_hamiltonian(prompts, l2_strength=0.01)
    H.h, H.lam_diag
    timings["fields"] = time.perf_counter() - t
    t = time.perf_counter()
    H.gram()
    timings["couplings"] = time.perf_counter() - t
    t = time.perf_counter()
    ex = ExactSolver().solve(H)
    timings["exact"] = time.perf_counter() - t
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cav = CavitySolver(compare_exact=False).solve(H, rng=seed)
    timings["cavity"] = time.perf_counter() - t
    return timings, ex, cav


def dense_construction(D, N, P, seed=0):
    p = PromptDistribution(d=D, n_context=N).sample(P, rng=seed)
    Z = p.Z
    c = np.einsum("pn,pan->pa", Z[:, D, :N], Z[:, :, :N]) / (N + 1)
    s = (c[:, :, None] * Z[:, None, :, N]).reshape(P, -1)
    stacked = s[:, :, None] * s[:, None, :]  # P × K × K
    return -stacked.mean(0)


def ours_couplings(D, N, P, seed=0):
    p = PromptDistribution(d=D, n_context=N).sample(P, rng=seed)
    return build_hamiltonian(p, l2_strength=0.0).J


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--large", action="store_true")
    args = ap.parse_args()
    print("## pipeline (prompts + fields + couplings + exact + cavity)")
    print(f"{'D':>4} {'N':>4} {'P':>7} | {'prompts':>8} {'fields':>8} {'coupl.':>8} {'exact':>8} {'cavity':>8} | {'total s':>8} {'peak MB':>8} | target")
    for D, N, P, target in [(20, 100, 10_000, "< 1 s"), (50, 100, 20_000, "< 15 s, < 2048 MB")]:
        pipeline(D, N, min(P, 500))  # warm-up
        (timings, ex, cav), dt, peak = measure(lambda: pipeline(D, N, P))
        print(f"{D:>4} {N:>4} {P:>7} | " + " ".join(f"{timings[k]:8.3f}" for k in ("prompts", "fields", "couplings", "exact", "cavity")) + f" | {dt:8.3f} {peak:8.0f} | {target}  (cavity converged={cav.converged}, {cav.n_iter} it)")
    print()
    print("## couplings: dense stacking of P outer products vs ours (D=20, N=100)")
    print(f"{'P':>6} | {'dense s':>8} {'dense MB':>9} | {'ours s':>8} {'ours MB':>8} | {'time ratio':>10} {'mem ratio':>9} | max|ΔJ|")
    for P in (250, 500, 1000):
        Jd, td, md = measure(lambda: dense_construction(20, 100, P))
        Jo, to, mo = measure(lambda: ours_couplings(20, 100, P))
        print(f"{P:>6} | {td:8.3f} {md:9.0f} | {to:8.3f} {mo:8.0f} | {td / to:10.1f} {md / mo:9.1f} | {np.abs(Jd - Jo).max():.1e}")
    print()
    print("## memory growth of ours (fields + matrix-free operator, no dense J): P·D² expected")
    print(f"{'D':>4} {'P':>7} | {'peak MB':>8} | {'MB/(P·(D+1)²·8B)':>18}")
    for D, P in [(20, 5000), (20, 20000), (40, 5000), (40, 20000)]:
        def mf():
            f, y = PromptDistribution(d=D, n_context=100).sample_features(P, rng=0, chunk_size=1024)
            H = build_hamiltonian(f, y, l2_strength=0.01)
            return H.gram_matvec(H.h)
        _, dt, peak = measure(mf)
        print(f"{D:>4} {P:>7} | {peak:8.1f} | {peak * 2**20 / (P * (D + 1) ** 2 * 8):18.3f}")
    if args.large:
        print()
        print("## D=100 (10,201 spins), P=10⁵, N=100: matrix-free exact solve by conjugate gradients")
        def big():
            f, y = PromptDistribution(d=100, n_context=100).sample_features(100_000, rng=0, chunk_size=2048)
            H = build_hamiltonian(f, y, l2_strength=0.01)
            return ExactSolver(backend="cg", tol=1e-8, n_probes=0).solve(H)
        r, dt, peak = measure(big)
        print(f"wall {dt:.1f} s, peak {peak:.0f} MB, CG iterations {r.n_iter}, converged {r.converged}, residual {r.residual:.1e}")


if __name__ == "__main__":
    main()
