"""``spinlens landscape``: the energy landscape and the spectrum of SᵀS/P, small and large P side by side."""

from __future__ import annotations

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


def _run(args) -> int:
    import os
    from pathlib import Path

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from spinlens.cli._common import print_json, print_table
    from spinlens.landscape import landscape_run

    summary = landscape_run(args.d, args.n_context, args.prompts, l2_strength=args.l2_strength, n_samples=args.samples,
                            n_grid=args.grid, n_directions=args.directions, spectrum_d=args.spectrum_d,
                            spectrum=not args.no_spectrum, out=args.out, seed=args.seed, progress=not args.json)
    if args.json:
        print_json(summary)
    else:
        for P, s in summary.items():
            if isinstance(s, dict):
                print(f"-- {P}")
                print_table(list(s.items()))
        out = Path(args.out)
        print(f"wrote {out}/landscape.png" + ("" if args.no_spectrum else f", {out}/spectrum.png")
              + ", data (.nc) and run.json")
    return 0
