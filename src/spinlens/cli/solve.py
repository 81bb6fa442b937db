"""`spinlens solve`: build the spin glass from prompts and solve it.

The prompts are streamed: at most one batch exists at a time and only the features (O(P·D)) are kept;
the peak memory of the method is estimated and checked before any large allocation (`spinlens.memory`).
"""

from __future__ import annotations

from ._common import add_command
from ._prompt_args import add_prompt_args

EXAMPLES = """  spinlens solve --D 20 --N 100 --P 10000 --lam 0.01 --method cavity
  spinlens solve --D 10 --N 50 --P 2000 --method exact --json
  spinlens solve --D 100 --N 100 --P 100000 --lam 0.01 --method exact --json    # matrix-free CG
  spinlens solve --D 20 --N 100 --P 10000 --lam 0.01 --method tap --tol 1e-20 --steps 5000 --json
  spinlens solve --data prompts.npz --lam 0.01 --method sample --beta 100 --save result.npz
  spinlens solve --D 20 --N 100 --method limit --lam 0.01 --json
  spinlens solve --D 8 --N 20 --P 5000 --sampler core --save-prompts prompts.npz
"""


def register(sub):
    p = add_command(sub, "solve", "Solve the spin glass of a linear-attention transformer (exact, cavity, TAP, sampling, P→∞ limit).", EXAMPLES, run)
    add_prompt_args(p)
    p.add_argument_group("prompts").add_argument(
        "--sampler", default="auto", help="auto | core | reduced: draw full prompts (core) or the same law of the "
        "features from ~3D+4 numbers a prompt (reduced, corr = 0 only); auto = reduced where allowed")
    g = p.add_argument_group("solver")
    g.add_argument("--lam", "--ridge", type=float, default=0.01, help="the Hamiltonian's ridge strength λ (>= 0)")
    g.add_argument("--method", default="exact", help="exact | cavity | tap (cavity + Onsager reaction term) | sample | langevin | limit (the P→∞ closed form)")
    g.add_argument("--beta", "--inverse-temperature", type=float, default=100.0, help="inverse temperature β (>= 1e-100)")
    g.add_argument("--damping", "--cavity-damping", type=float, default=0.9, help="cavity/tap damping θ in [0, 1)")
    g.add_argument("--steps", type=int, default=100, help="cavity/tap steps / Langevin steps (>= 1)")
    g.add_argument("--tol", type=float, default=1e-6, help="cavity/tap tolerance on the mean squared change (> 0)")
    g.add_argument("--samples", type=int, default=1000, help="samples per replica for --method sample (>= 2)")
    g.add_argument("--exact-backend", default="auto", help="auto | dense (Cholesky) | cg (matrix-free conjugate gradients)")
    g.add_argument("--preconditioner", default="kronecker", help="CG preconditioner: kronecker | jacobi | none")
    g.add_argument("--probes", type=int, default=None,
                   help="probe vectors for the CG marginal variances (>= 0; default 8 below 10^4 spins, else 0: "
                        "variances from the preconditioner's diagonal)")
    g.add_argument("--threads", type=int, default=None,
                   help="BLAS threads (>= 1; default: 1 below 2500 spins, all cores above; $SPINLENS_THREADS and "
                        "$OMP_NUM_THREADS also set it)")
    g.add_argument("--device", default="cpu", help="cpu (numpy) | cuda | cuda:N: run the feature accumulation and "
                   "the matrix-free CG in torch on that device (--method exact)")
    g.add_argument("--yes", action="store_true", help="run even if the time estimate is beyond an hour")
    o = p.add_argument_group("output")
    o.add_argument("--json", action="store_true", help="print one JSON object")
    o.add_argument("--save", default=None, metavar="RESULT.npz", help="write W, m, v, h (and J with --save-couplings)")
    o.add_argument("--save-couplings", action="store_true", help="also write the dense couplings J to --save")
    o.add_argument("--save-prompts", default=None, metavar="PROMPTS.npz",
                   help="also write the sampled prompts (materialises them all; needs --sampler core or auto with corr > 0)")
    o.add_argument("--mc-prompts", type=int, default=20000, help="fresh prompts for Monte-Carlo errors when no closed form applies")


def run(args) -> int:
    import sys
    import time

    from spinlens.solvers.run import solve_run

    from ._common import check_out_file, convergence_exit, print_json, print_table
    from ._prompt_args import check_data_agrees, distribution_from_args

    t_start = time.perf_counter()
    check_out_file("--save", args.save)
    check_out_file("--save-prompts", args.save_prompts)
    prompts = None
    if getattr(args, "data", None):
        from spinlens.prompts import load_prompts

        prompts = load_prompts(args.data)
        check_data_agrees(args, prompts)
        dist = distribution_from_args(args, d=prompts.d, n_context=prompts.n_context)
    else:
        dist = distribution_from_args(args)

    def on_estimate(t_est, est) -> None:  # with --json the estimate is in the JSON (stderr: warnings and errors)
        if not args.json:
            print(f"spinlens solve: estimate {t_est.describe()}, {est.gib:.2g} GiB", file=sys.stderr)

    out = solve_run(dist, args.method, prompts=prompts, n_prompts=args.P, sampler=args.sampler, l2_strength=args.lam,
                    beta=args.beta, damping=args.damping, steps=args.steps, tol=args.tol, n_samples=args.samples,
                    backend=args.exact_backend, preconditioner=args.preconditioner, n_probes=args.probes,
                    threads=args.threads, device=args.device, seed=args.seed, n_mc=args.mc_prompts, save=args.save,
                    save_couplings=args.save_couplings, save_prompts=args.save_prompts,
                    n_tasks_given=args.K is not None, yes=args.yes, progress=sys.stderr.isatty() and not args.json,
                    on_estimate=on_estimate, t_start=t_start)
    if args.json:
        print_json(out)
    else:
        print_table([(k, v) for k, v in out.items() if k != "memory_parts_gib"])
    return convergence_exit("spinlens solve", out["converged"], out["message"], what=out["method"])
