"""Time the Fig 4a sweep of the paper (contrast ratio of the cavity solution over N × P, 10 repeats).

Full grid: N = linspace(2, 100, 50), P = linspace(20, 1000, 50) (integers), 10 seeds, D = 20, λ = 1,
β = 100, θ = 0.9, cavity solver (100 steps, tol 1e-6), observables contrast_ratio + converged:
25 000 points. Target: under 10 minutes on 2 cores.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_sweep.py                  # 1 repeat of 10 (2 500 points), extrapolated
    OMP_NUM_THREADS=1 python benchmarks/bench_sweep.py --repeats 10     # the full grid
    OMP_NUM_THREADS=1 python benchmarks/bench_sweep.py --thin 5 --repeats 2   # every 5th N and P, 2 seeds
    OMP_NUM_THREADS=1 python benchmarks/bench_sweep.py --profile        # where the time of one point goes

The fraction run uses every ``thin``-th N and P value and ``repeats`` seeds, so it samples the cost of the
whole (N, P) plane evenly; the full-grid time is extrapolated linearly in the number of points.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

# the published (saved) Fig 4a map, (N, P) -> ratio; the published code gives about 0.09 less (docs/paper-notes.md)
PAPER_SAMPLES = {(10, 200): 0.34, (10, 1000): 0.71, (20, 400): 0.58, (50, 800): 0.81, (100, 600): 0.77,
                 (100, 1000): 0.87}

N_FULL = [int(v) for v in np.rint(np.linspace(2, 100, 50))]
P_FULL = [int(v) for v in np.rint(np.linspace(20, 1000, 50))]


def profile_point(N: int = 100, P: int = 1000, n: int = 5) -> None:
    import cProfile
    import pstats

    from spinlens.sweeps import compute_point, make_grid

    params = dict(next(make_grid({"N": N, "P": P}).points()))
    compute_point(params, ["contrast_ratio"])  # imports
    t = time.perf_counter()
    for s in range(n):
        compute_point({**params, "seed": s}, ["contrast_ratio"])
    print(f"one point at N={N}, P={P}: {(time.perf_counter() - t) / n * 1e3:.1f} ms (mean of {n})")
    pr = cProfile.Profile()
    pr.enable()
    for s in range(n):
        compute_point({**params, "seed": s}, ["contrast_ratio"])
    pr.disable()
    pstats.Stats(pr).sort_stats("tottime").print_stats(10)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=1, help="seeds 0..R-1 (full grid: 10)")
    ap.add_argument("--thin", type=int, default=1, help="take every k-th N and P value (full grid: 1)")
    ap.add_argument("--jobs", type=int, default=None, help="worker processes (default: the cores this process may run on)")
    ap.add_argument("--out", default=None, help="sweep directory (default: a temporary one, deleted)")
    ap.add_argument("--profile", action="store_true", help="profile single points instead of sweeping")
    ap.add_argument("--json", default=None, help="write the timing summary to this JSON file")
    args = ap.parse_args(argv)
    if args.profile:
        profile_point(100, 1000)
        profile_point(50, 500)
        return 0

    from spinlens.sweeps import make_grid, run_sweep

    Ns, Ps = N_FULL[:: args.thin], P_FULL[:: args.thin]
    grid = make_grid({"D": 20, "N": Ns, "P": Ps, "lam": 1.0, "beta": 100.0, "damping": 0.9,
                      "seed": f"0:{args.repeats}"})
    out = args.out or tempfile.mkdtemp(prefix="bench-sweep-")
    jobs = args.jobs or len(os.sched_getaffinity(0))
    print(f"bench_sweep: {grid.n_points} points ({len(Ns)} N × {len(Ps)} P × {args.repeats} seeds), "
          f"jobs={jobs}, cpu_count={os.cpu_count()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    t0 = time.perf_counter()
    ds = run_sweep(grid, ["contrast_ratio"], out, method="cavity", max_iter=100, tol=1e-6, jobs=jobs,
                   force=True, progress=sys.stderr.isatty())
    wall = time.perf_counter() - t0
    full = len(N_FULL) * len(P_FULL) * 10
    extrapolated = wall * full / grid.n_points
    with open(os.path.join(out, "run.json")) as f:
        cpu = json.load(f)["points_cpu_s"]
    cpu_per_point = cpu / grid.n_points
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover
        load = float("nan")
    mean = ds.contrast_ratio.where(ds.converged).mean("seed") if "seed" in ds.dims else ds.contrast_ratio
    rows = []
    for (N, P), paper in PAPER_SAMPLES.items():
        if N in Ns and P in Ps:
            rows.append((N, P, float(mean.sel(N=N, P=P)), paper))
    summary = {
        "n_points": grid.n_points,
        "wall_s": wall,
        "points_per_s": grid.n_points / wall,
        "full_grid_points": full,
        "full_grid_extrapolated_s": extrapolated,
        "cpu_s_per_point": cpu_per_point,
        "full_grid_cpu_s": cpu_per_point * full,
        "load_average_1min_at_end": load,
        "converged_fraction": float(ds.converged.mean()),
        "jobs": jobs,
        "samples_vs_saved_paper_map": [{"N": n, "P": p, "ours": o, "paper_saved": q} for n, p, o, q in rows],
    }
    print(f"wall {wall:.1f} s for {grid.n_points} points ({grid.n_points / wall:.1f} points/s); "
          f"full Fig 4a grid ({full} points) extrapolated: {extrapolated:.0f} s = {extrapolated / 60:.1f} min "
          f"(target < 10 min)")
    print(f"CPU time in the point function: {1e3 * cpu_per_point:.1f} ms per point; full grid "
          f"{cpu_per_point * full:.0f} CPU s = {cpu_per_point * full / jobs / 60:.1f} min on {jobs} free cores "
          f"(load average now {load:.1f}; other processes on the machine slow the wall time)")
    print(f"converged: {100 * summary['converged_fraction']:.1f}% of points")
    for n, p, o, q in rows:
        print(f"  N={n:3d} P={p:4d}: contrast ratio {o:.3f}  (saved paper map {q:.2f}; published code ≈ 0.09 less)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    if not args.out:
        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
