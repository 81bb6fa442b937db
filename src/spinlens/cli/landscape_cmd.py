"""``spinlens landscape``: the energy landscape and the spectrum of SᵀS/P, small and large P side by side."""

from __future__ import annotations

from typing import Any

from spinlens.cli._common import add_command, add_deprecated_flag

EXAMPLES = """  spinlens landscape --out land                          # D=10, N=50, P=10 and 1000 (the paper's Fig 3)
  spinlens landscape --D 20 --N 100 --P 50 420 2000 --samples 500 --out land20
  spinlens landscape --P 10 1000 --json                    # numbers only: zero modes, minima, eigenvalues
"""


def register(sub) -> None:
    p = add_command(
        sub,
        "landscape",
        "Energy landscape (t-SNE of random W, interpolated surface), energy along the softest and stiffest "
        "Hessian eigen-directions, zero modes, and spectra of S^T S/P (density, zero-mode fraction vs P and D, "
        "Marchenko-Pastur for the token covariance).",
        EXAMPLES,
        _run,
    )
    p.add_argument("--D", "--token-dim", dest="d", type=int, default=10, help="token dimension D")
    p.add_argument("--N", "--context-length", dest="n_context", type=int, default=50, help="context length N")
    P = p.add_argument("--P", "--train-prompts", dest="prompts", type=int, nargs="+", default=[10, 1000],
                       help="values of P, side by side")
    add_deprecated_flag(p, "--prompts", P)
    p.add_argument("--lam", "--ridge", dest="l2_strength", type=float, default=0.01, help="λ of E(W)")
    p.add_argument("--samples", type=int, default=300, help="random W per P for the t-SNE picture")
    p.add_argument("--grid", type=int, default=60, help="interpolation grid size")
    p.add_argument("--directions", type=int, default=3, help="softest and stiffest eigen-directions to profile")
    p.add_argument("--spectrum-d", type=int, nargs="+", default=[5, 10, 15],
                   help="values of D for the zero-mode fraction vs P panel")
    p.add_argument("--no-spectrum", action="store_true", help="skip the spectrum figure")
    p.add_argument("--out", default="landscape-out", help="output folder")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def _validate(args):
    from spinlens.errors import check_float, check_int

    check_int("--D", args.d, low=1, high=60)
    check_int("--N", args.n_context, low=1, high=100_000)
    for P in args.prompts:
        check_int("--P", P, low=1, high=200000)
    check_float("--lam", args.l2_strength, low=0.0)
    check_int("samples", args.samples, low=10, high=20000)
    check_int("grid", args.grid, low=4, high=1000)
    check_int("directions", args.directions, low=1, high=(args.d + 1) ** 2 // 2)
    for d in args.spectrum_d:
        check_int("spectrum_d", d, low=1, high=60)
    check_int("seed", args.seed, low=0)
    from spinlens.cli._common import check_out_dir

    check_out_dir("--out", args.out)


def _run(args) -> int:
    import os
    import time
    from pathlib import Path

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _validate(args)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from spinlens.cli._common import print_json, print_table
    from spinlens.landscape import landscape_dataset, marchenko_pastur_density, spectrum_dataset
    from spinlens.plotting.landscape import plot_landscape_grid
    from spinlens.plotting.spectrum import plot_eigen_density, plot_mp_comparison, plot_zero_mode_fraction
    from spinlens.plotting.style import paper_style
    from spinlens.random import spawn
    from spinlens.reproduce import _framework as fw

    t0 = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    g_land, g_spec, g_zero, g_mp = spawn(args.seed, 4)
    ds = landscape_dataset(args.d, args.n_context, args.prompts, l2_strength=args.l2_strength,
                           n_samples=args.samples, n_grid=args.grid, n_directions=args.directions, rng=g_land,
                           progress=not args.json)
    fw.save_dataset(ds, out, "landscape")
    Ps = list(ds["n_prompts"].values)
    with paper_style():
        fig, _ = plot_landscape_grid(
            ds, surface_title=lambda P, sub: f"P={P}: t-SNE of {args.samples} random W",
            suptitle=f"energy landscape: D={args.d}, N={args.n_context}, λ={args.l2_strength}")
        fw.save_figure(fig, out, "landscape")

    summary: dict[str, Any] = {}
    for k, P in enumerate(Ps):
        sub = ds.isel(n_prompts=k)
        mu = sub["eigenvalues"].values
        summary[f"P={P}"] = {
            "zero_modes": int(sub["n_zero_modes"]), "expected_zero_modes": int(sub["expected_zero_modes"]),
            "local_minima_surface": int(sub["n_local_minima"]),
            "softest_nonzero_eigenvalue": float(mu[mu > 1e-9 * mu.max()].min()), "stiffest_eigenvalue": float(mu.max()),
        }
    if not args.no_spectrum:
        from spinlens.reproduce.figS7 import compute as zero_compute

        k = args.d * (args.d + 1)
        spec_P = sorted({max(1, k // 4), k // 2, k, 2 * k, *Ps})
        spec = spectrum_dataset(args.d, args.n_context, spec_P, rng=g_spec)
        zero = zero_compute(tuple(args.spectrum_d), n_context=args.n_context, n_points=10, rng=g_zero)
        fw.save_dataset(spec, out, "spectrum")
        fw.save_dataset(zero, out, "zero_modes")
        # token covariance X Xᵀ/N of one prompt's inputs against Marchenko–Pastur (ratio D/N)
        from spinlens import PromptDistribution

        n_tok = max(args.n_context, 2)
        X = PromptDistribution(d=args.d, n_context=n_tok).sample_inputs(max(20, 4000 // args.d), n_tok, rng=g_mp)
        ev = np.linalg.eigvalsh(X @ X.transpose(0, 2, 1) / n_tok).ravel()
        q = args.d / n_tok
        mp_x = np.linspace(0, 1.1 * (1 + np.sqrt(q)) ** 2, 400)
        fw.save_columns({"x": mp_x, "mp_density": marchenko_pastur_density(mp_x, q)}, out, "marchenko_pastur")
        with paper_style():
            fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
            plot_eigen_density({f"P={P}": spec["eigenvalues"].sel(n_prompts=P).values for P in spec_P},
                               title=f"spectrum of SᵀS/P, D={args.d}", ax=axes[0])
            plot_zero_mode_fraction(zero["zero_mode_fraction"], x="n_prompts", hue="d",
                                    floors={d: 1 / (d + 1) for d in args.spectrum_d},
                                    thresholds={d: d * (d + 1) for d in args.spectrum_d},
                                    title="zero-mode fraction vs P and D", ax=axes[1])
            plot_mp_comparison(ev, mp_x, marchenko_pastur_density(mp_x, q), label=f"X Xᵀ/N, D/N={q:.3g}",
                               title="token covariance vs Marchenko–Pastur", ax=axes[2])
            fig.tight_layout()
            fw.save_figure(fig, out, "spectrum")
        summary["zero_mode_fraction_max_abs_difference_from_rank_formula"] = float(
            np.nanmax(np.abs(zero["zero_mode_fraction"].values - zero["zero_mode_fraction_expected"].values)))
    record = {
        "command": "landscape", "description": "energy landscape and spectra of S^T S/P", "mode": "custom",
        "seed": args.seed,
        "parameters": {"D": args.d, "N": args.n_context, "P": Ps, "lam": args.l2_strength,
                       "samples": args.samples, "grid": args.grid, "directions": args.directions,
                       "spectrum_d": list(args.spectrum_d)},
        "summary": summary, "elapsed_s": round(time.perf_counter() - t0, 3),
        "files": sorted(p.name for p in out.iterdir() if p.is_file() and not p.name.startswith(".")),
        "versions": fw.package_versions(), "git_sha": fw.git_sha(),
    }
    fw.write_run_json(out, record)
    if args.json:
        print_json(summary)
    else:
        for P, s in summary.items():
            if isinstance(s, dict):
                print(f"-- {P}")
                print_table(list(s.items()))
        print(f"wrote {out}/landscape.png" + ("" if args.no_spectrum else f", {out}/spectrum.png") + ", data (.nc) and run.json")
    return 0
