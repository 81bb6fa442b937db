"""Exact solve of a large spin glass on a torch device: feature accumulation and matrix-free CG in torch.

Draws P prompts of dimension D on the device (`spinlens.features.stream_features_torch`, float64), reduces
each batch to its factored features, and solves (λI + SᵀS/P)m = h by Kronecker-preconditioned CG in torch
(`spinlens.solvers.ExactSolver(device=...)`). Prints one JSON object: wall time of each stage, peak device
memory, peak host RSS, CG iterations, the exact ICL test error (closed form) and the asymptotic theory.

    python benchmarks/bench_gpu.py --device cuda                      # D=160, N=160, P=1e6 (< 5 min on an H100)
    python benchmarks/bench_gpu.py --device cpu --D 20 --P 2000       # smoke test on the CPU (torch)
"""

from __future__ import annotations

import argparse
import json
import resource
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--D", type=int, default=160)
    ap.add_argument("--N", type=int, default=None, help="context length (default: D)")
    ap.add_argument("--P", type=int, default=1_000_000)
    ap.add_argument("--lam", type=float, default=None, help="λ (default: λ_LU = 1 mapped, 1/(D(1+1/N)²))")
    ap.add_argument("--batch", type=int, default=16384)
    ap.add_argument("--probes", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    import numpy as np
    import torch

    from spinlens import observables as ob
    from spinlens.conventions import to_lu
    from spinlens.features import stream_features_torch
    from spinlens.hamiltonian import build_hamiltonian
    from spinlens.prompts import PromptDistribution
    from spinlens.solvers import ExactSolver
    from spinlens.theory.asymptotic import learning_curve_point

    N = a.N or a.D
    lam = a.lam if a.lam is not None else 1.0 / (a.D * (1 + 1 / N) ** 2)
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
    dist = PromptDistribution(d=a.D, n_context=N)
    t0 = time.perf_counter()
    fs = stream_features_torch(dist, a.P, seed=a.seed, device=dev, batch_size=a.batch)
    if cuda:
        torch.cuda.synchronize(dev)
    t_feat = time.perf_counter() - t0
    H = build_hamiltonian(fs.features, fs.y, l2_strength=lam)
    t1 = time.perf_counter()
    solver = ExactSolver(backend="cg", n_probes=a.probes, device=a.device if cuda else "torch-cpu",
                         chunk=262144 if cuda else 4096)
    r = solver.solve(H, rng=a.seed)
    if cuda:
        torch.cuda.synchronize(dev)
    t_solve = time.perf_counter() - t1
    lu = to_lu(a.D, N, a.P, lam)
    th = learning_curve_point(lu["alpha"], lu["tau"], lu["kappa"], lu["rho"], lu["lam_lu"]).icl_error
    err = ob.test_error(r.m, dist)
    out = {
        "device": str(dev), "device_name": torch.cuda.get_device_name(dev) if cuda else "cpu",
        "D": a.D, "N": N, "P": a.P, "lam": lam, "n_spins": (a.D + 1) ** 2,
        "features_seconds": t_feat, "solve_seconds": t_solve, "total_seconds": time.perf_counter() - t0,
        "cg_iterations": r.n_iter, "converged": r.converged, "residual": r.residual, "message": r.message,
        "test_error": err, "theory_icl_error": th, "relative_gap": (err - th) / th,
        "peak_device_gib": torch.cuda.max_memory_allocated(dev) / 1024**3 if cuda else None,
        "peak_host_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
        "torch": torch.__version__, "numpy": np.__version__,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
