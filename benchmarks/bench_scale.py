"""Scale benchmarks: spinlens beside a plain NumPy pipeline, and time / peak memory against D and P.

Every measurement is a fresh process (``spinlens solve ... --json`` or ``plain_numpy_pipeline.py``), timed
from the outside (wall clock, start-up included) with its peak resident memory from ``os.wait4``.

    python benchmarks/bench_scale.py compare            # D=20, N=100, P=1e4 cavity: paired runs, ratios
    python benchmarks/bench_scale.py threads            # default threads vs one thread, small and large jobs
    python benchmarks/bench_scale.py vs-D               # exact at α=1, τ=P/D²=10, D = 10…160 (D=100 is P=1e5)
    python benchmarks/bench_scale.py vs-P               # D=20, N=100, P = 1e3…1e6, exact and cavity
    python benchmarks/bench_scale.py all --out DIR      # everything; writes DIR/bench_scale.json, CSVs and plots

The machine's load average is recorded with every section: timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = sys.executable


def run_rss(cmd: list[str], env=None) -> dict:
    """Run ``cmd``; return wall seconds, the child's own peak RSS (GiB, os.wait4) and its last stdout line as JSON."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    chunks = []
    while True:
        b = p.stdout.read(65536)
        if not b:
            break
        chunks.append(b)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    out = b"".join(chunks).decode().strip().splitlines()
    try:
        js = json.loads(out[-1])
    except Exception:
        js = None
    return {"wall": wall, "rc": p.returncode, "peak_gib": ru.ru_maxrss / 1024**2, "json": js}


def spinlens_cmd(*args) -> list[str]:
    return [PY, "-m", "spinlens.cli.main", "solve", *map(str, args), "--json"]


def plain_cmd(*args) -> list[str]:
    return [PY, str(HERE / "plain_numpy_pipeline.py"), *map(str, args)]


def load() -> float:
    return round(os.getloadavg()[0], 2)


def section_compare(repeats: int = 5) -> dict:
    """D=20, N=100, P=1e4, λ=0.01, cavity, whole process: paired runs in alternating order."""
    job = ["--D", 20, "--N", 100, "--P", 10000, "--lam", 0.01, "--method", "cavity"]
    variants = {"plain_numpy": plain_cmd(*job), "spinlens": spinlens_cmd(*job),
                "spinlens_core_sampler": spinlens_cmd(*job, "--sampler", "core")}
    times = {k: [] for k in variants}
    peaks = {k: [] for k in variants}
    loads = []
    for r in range(repeats):
        order = list(variants) if r % 2 == 0 else list(variants)[::-1]
        for k in order:
            m = run_rss(variants[k])
            times[k].append(m["wall"])
            peaks[k].append(m["peak_gib"])
        loads.append(load())
    ratios = {k: statistics.median(a / b for a, b in zip(times[k], times["plain_numpy"])) for k in variants}
    return {"job": " ".join(map(str, job)), "repeats": repeats, "wall_s": times, "peak_gib": peaks,
            "median_ratio_to_plain": ratios, "load": loads}


def section_threads(repeats: int = 5) -> dict:
    """Default thread policy vs --threads 1 (and 2) for a small cavity and a large exact solve."""
    jobs = {"cavity_D20": ["--D", 20, "--N", 100, "--P", 10000, "--method", "cavity"],
            "exact_D60": ["--D", 60, "--N", 60, "--P", 36000, "--method", "exact", "--probes", 0]}
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "SPINLENS_THREADS")}
    out = {}
    for name, job in jobs.items():
        t = {"default": [], "1": [], "2": []}
        used = []
        for _ in range(repeats):
            for k in t:
                extra = [] if k == "default" else ["--threads", k]
                m = run_rss(spinlens_cmd(*job, *extra), env=env)
                t[k].append(m["json"]["solve_elapsed_s"] if m["json"] else float("nan"))
                if k == "default" and m["json"]:
                    used.append(m["json"].get("threads"))
        out[name] = {"solve_seconds": t, "threads_chosen": used,
                     "median_default_over_1": statistics.median(a / b for a, b in zip(t["default"], t["1"])),
                     "median_2_over_1": statistics.median(a / b for a, b in zip(t["2"], t["1"])), "load": load()}
    return out


def section_vs_d(Ds=(10, 20, 40, 60, 80, 100, 120, 160)) -> dict:
    rows = []
    for D in Ds:
        N, P = D, 10 * D * D
        lam = 1.0 / (D * (1 + 1 / N) ** 2)
        m = run_rss(spinlens_cmd("--D", D, "--N", N, "--P", P, "--lam", lam, "--method", "exact", "--probes", 0))
        j = m["json"] or {}
        th = subprocess.run([PY, "-m", "spinlens.cli.main", "theory", "--spin-glass", "--D", str(D), "--N", str(N), "--P", str(P),
                             "--lam", str(lam), "--json"], capture_output=True, text=True)
        theory = json.loads(th.stdout)["icl_error"] if th.returncode == 0 else None
        rows.append({"D": D, "N": N, "P": P, "lam": lam, "wall_s": m["wall"], "peak_gib": m["peak_gib"],
                     "solve_s": j.get("solve_elapsed_s"), "features_s": j.get("features_elapsed_s"), "backend": j.get("backend"),
                     "n_iter": j.get("n_iter"), "threads": j.get("threads"), "test_error": j.get("test_error"),
                     "theory": theory, "estimate_gib": j.get("memory_estimate_gib"), "load": load()})
        print(json.dumps(rows[-1]), file=sys.stderr)
    return {"rows": rows}


def section_vs_p(Ps=(1000, 10000, 100000, 1000000)) -> dict:
    rows = []
    for method in ("exact", "cavity"):
        for P in Ps:
            m = run_rss(spinlens_cmd("--D", 20, "--N", 100, "--P", P, "--lam", 0.01, "--method", method))
            j = m["json"] or {}
            row = {"method": method, "P": P, "wall_s": m["wall"], "peak_gib": m["peak_gib"], "solve_s": j.get("solve_elapsed_s"),
                   "features_s": j.get("features_elapsed_s"), "backend": j.get("backend"), "test_error": j.get("test_error"),
                   "estimate_gib": j.get("memory_estimate_gib"), "load": load()}
            if P <= 100000:
                mp = run_rss(plain_cmd("--D", 20, "--N", 100, "--P", P, "--method", method))
                row.update(plain_wall_s=mp["wall"], plain_peak_gib=mp["peak_gib"])
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    return {"rows": rows}


def plots(res: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spinlens.plotting.scaling import plot_cost_curves

    if "vs-D" in res:
        r = res["vs-D"]["rows"]
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        plot_cost_curves([x["D"] for x in r], {"wall time (process)": [x["wall_s"] for x in r],
                                               "solve": [x["solve_s"] for x in r]},
                         xlabel="token dimension D (P = 10 D², N = D)", ylabel="seconds", ax=axes[0])
        plot_cost_curves([x["D"] for x in r], {"peak RSS": [x["peak_gib"] for x in r], "estimate": [x["estimate_gib"] for x in r]},
                         xlabel="token dimension D (P = 10 D², N = D)", ylabel="memory (GiB)", ax=axes[1])
        fig.tight_layout()
        for ext in ("png", "pdf"):
            fig.savefig(out / f"bench_vs_D.{ext}")
    if "vs-P" in res:
        r = res["vs-P"]["rows"]
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        ser_t, ser_m = {}, {}
        for meth in ("exact", "cavity"):
            rr = [x for x in r if x["method"] == meth]
            ser_t[f"spinlens {meth}"] = [x["wall_s"] for x in rr]
            ser_t[f"plain NumPy {meth}"] = [x.get("plain_wall_s", float("nan")) for x in rr]
            ser_m[f"spinlens {meth}"] = [x["peak_gib"] for x in rr]
            ser_m[f"plain NumPy {meth}"] = [x.get("plain_peak_gib", float("nan")) for x in rr]
        Ps = sorted({x["P"] for x in r})
        plot_cost_curves(Ps, ser_t, xlabel="prompts P (D = 20, N = 100)", ylabel="wall seconds (process)", ax=axes[0])
        plot_cost_curves(Ps, ser_m, xlabel="prompts P (D = 20, N = 100)", ylabel="peak RSS (GiB)", ax=axes[1])
        fig.tight_layout()
        for ext in ("png", "pdf"):
            fig.savefig(out / f"bench_vs_P.{ext}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("section", choices=["compare", "threads", "vs-D", "vs-P", "all"])
    ap.add_argument("--out", default="bench-scale-out")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--Ds", default="10,20,40,60,80,100,120,160")
    ap.add_argument("--Ps", default="1000,10000,100000,1000000")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "bench_scale.json"
    res = json.loads(path.read_text()) if path.exists() else {}
    res["machine"] = {"cores": os.cpu_count(), "load_at_start": load(),
                      "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}
    secs = ["compare", "threads", "vs-D", "vs-P"] if a.section == "all" else [a.section]
    for s in secs:
        if s == "compare":
            res[s] = section_compare(a.repeats)
        elif s == "threads":
            res[s] = section_threads(a.repeats)
        elif s == "vs-D":
            res[s] = section_vs_d([int(x) for x in a.Ds.split(",")])
        else:
            res[s] = section_vs_p([int(x) for x in a.Ps.split(",")])
        path.write_text(json.dumps(res, indent=1))
    plots(res, out)
    print(json.dumps({k: v for k, v in res.items() if k in ("machine", "compare")}, indent=1))


if __name__ == "__main__":
    main()
