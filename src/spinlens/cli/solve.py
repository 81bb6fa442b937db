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

METHODS = ("exact", "cavity", "tap", "sample", "langevin", "limit")


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

    import numpy as np

    from spinlens import observables as ob
    from spinlens.errors import InvalidParameterError, check_choice, check_float, check_int
    from spinlens.features import resolve_sampler, spin_features, stream_features
    from spinlens.hamiltonian import build_hamiltonian
    from spinlens.memory import check_memory, estimate_memory
    from spinlens.prompts import Prompts
    from spinlens.random import spawn
    from spinlens.solvers import SOLVERS
    from spinlens.solvers.base import BETA_MIN
    from spinlens.threads import thread_policy

    from ._common import all_finite, check_out_file, convergence_exit, print_json, print_table
    from ._prompt_args import check_data_agrees, distribution_from_args

    t_start = time.perf_counter()
    check_int("--seed", args.seed, low=0)
    method = check_choice("--method", args.method, METHODS)
    lam = check_float("--lam", args.lam, low=0)
    beta = check_float("--beta", args.beta, low=BETA_MIN)
    if method in ("sample", "langevin") and not lam > 0:
        raise InvalidParameterError(f"The '--lam' parameter must be > 0 with --method {method}: at --lam 0 the Boltzmann "
                                    f"measure is improper (zero modes) and cannot be sampled. Got {args.lam!r} instead.")
    damping = check_float("--damping", args.damping, low=0, high=1, high_open=True)
    steps = check_int("--steps", args.steps, low=1, high=10**7)
    tol = check_float("--tol", args.tol, low=0, low_open=True)
    samples = check_int("--samples", args.samples, low=2)
    mc = check_int("--mc-prompts", args.mc_prompts, low=2)
    backend = check_choice("--exact-backend", args.exact_backend, ("auto", "dense", "cg"))
    precond = check_choice("--preconditioner", args.preconditioner, ("kronecker", "jacobi", "none"))
    threads = None if args.threads is None else check_int("--threads", args.threads, low=1)
    device = str(args.device)
    if device != "cpu" and not (device == "torch-cpu" or device.startswith("cuda")):
        raise InvalidParameterError(f"The '--device' parameter must be cpu, torch-cpu, cuda or cuda:N. Got {device!r} instead.")
    if device != "cpu" and method != "exact":
        raise InvalidParameterError(f"'--device {device}' runs the matrix-free CG: use it with --method exact (got --method {method}).")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise InvalidParameterError(f"'--device {device}': torch {torch.__version__} sees no CUDA device here; use --device cpu.")
    check_out_file("--save", args.save)
    check_out_file("--save-prompts", args.save_prompts)
    if method == "limit" and args.K is not None:
        raise InvalidParameterError("The '--K' parameter has no effect with --method limit (the P → ∞ closed form "
                                    "assumes a fresh task per prompt); drop --K or choose another method.")
    r_prompts, r_solve, r_eval = spawn(args.seed, 3)

    prompts = None
    if getattr(args, "data", None):
        from spinlens.prompts import load_prompts

        prompts = load_prompts(args.data)
        check_data_agrees(args, prompts)
        dist = distribution_from_args(args, d=prompts.d, n_context=prompts.n_context)
        P, sampler = prompts.n_prompts, "file"
    else:
        dist = distribution_from_args(args)
        P = check_int("--P", args.P, low=1)
        sampler = check_choice("--sampler", args.sampler, ("auto", "core", "reduced"))
        if args.save_prompts and sampler == "reduced":
            raise InvalidParameterError("'--save-prompts' needs the prompts themselves: use --sampler core (the reduced sampler draws only features).")
        sampler = "core" if args.save_prompts else resolve_sampler(sampler, dist)
        if device != "cpu":
            sampler = "core (torch)"  # the prompts are drawn in torch on the device
    D1 = dist.d + 1
    K = D1 * D1
    n_probes = (8 if K < 10_000 else 0) if args.probes is None else check_int("--probes", args.probes, low=0)

    est = estimate_memory(method, d=dist.d, n_context=dist.n_context, n_prompts=P,
                          sampler="reduced" if sampler == "reduced" else "core", backend=backend, n_probes=n_probes,
                          n_samples=samples, n_steps=steps, save_prompts=bool(args.save_prompts))
    if prompts is not None:  # the features come from the loaded prompts, not from streamed batches
        est.parts.pop("prompt_batch", None)
        est.parts["loaded_prompts"] = prompts.Z.nbytes + prompts.y.nbytes
    check_memory(est, what=f"spinlens solve --method {method} at D={dist.d}, N={dist.n_context}"
                 + ("" if method == "limit" else f", P={P}"))
    from spinlens.progress import ProgressLine, check_duration, estimate_solve_time

    t_est = estimate_solve_time(method, d=dist.d, n_context=dist.n_context, n_prompts=None if method == "limit" else P,
                                sampler="reduced" if sampler == "reduced" else "core", backend=est.backend or "dense",
                                n_probes=n_probes, n_samples=samples, n_steps=steps, max_iter=steps,
                                overhead_s=time.perf_counter() - t_start + 0.3)  # so far + evaluation
    check_duration(t_est, yes=args.yes, what=f"spinlens solve --method {method} at D={dist.d}, N={dist.n_context}"
                   + ("" if method == "limit" else f", P={P}"),
                   shrink="fewer prompts --P, a smaller --D, fewer --steps, or --method exact with --exact-backend cg")
    if not args.json:  # with --json the estimate is in the JSON (stderr keeps only warnings and errors)
        print(f"spinlens solve: estimate {t_est.describe()}, {est.gib:.2g} GiB", file=sys.stderr)
    line = ProgressLine(f"solve {method}", total={"cavity": steps, "tap": steps, "langevin": steps + steps // 2}.get(method),
                        enabled=sys.stderr.isatty() and not args.json)

    out: dict = {"method": method, "D": dist.d, "N": dist.n_context}
    if method == "limit":
        from spinlens.solvers import LimitSolver

        r = LimitSolver(dist, l2_strength=lam).solve(None, beta=beta)
        W = r.m
        out.update(lam=lam, beta=beta, test_error=ob.test_error(W, dist, rng=r_eval, n_mc=mc),
                   test_error_kind="exact" if dist.isotropic else f"monte-carlo ({mc} prompts)",
                   contrast_ratio=ob.contrast_ratio(W), converged=True, n_iter=0, solve_elapsed_s=r.seconds,
                   message=r.message)
        H = None
    else:
        t0 = time.perf_counter()
        if prompts is not None:
            feats, y, pool = spin_features(prompts), prompts.y, prompts.pool
        elif device != "cpu":
            from spinlens.features import stream_features_torch

            fs = stream_features_torch(dist, P, seed=int(r_prompts.integers(2**62)), device="cpu" if device == "torch-cpu" else device)
            feats, y, pool = fs.features, fs.y, fs.pool
        else:
            batches: list[Prompts] | None = [] if args.save_prompts else None
            progress = P >= 200_000 and sys.stderr.isatty() and not args.json
            fs = stream_features(dist, P, rng=r_prompts, sampler=sampler, on_batch=None if batches is None else batches.append,
                                 progress=progress)
            feats, y, pool = fs.features, fs.y, fs.pool
            if batches is not None:
                Prompts.concatenate(batches).save(args.save_prompts)
                del batches
        t_features = time.perf_counter() - t0
        H = build_hamiltonian(feats, y, l2_strength=lam)
        opts = {
            "exact": dict(backend=backend, n_probes=n_probes, preconditioner=precond, device=device),
            "cavity": dict(damping=damping, max_iter=steps, tol=tol),
            "tap": dict(damping=damping, max_iter=steps, tol=tol),
            "sample": dict(n_samples=samples),
            "langevin": dict(n_steps=steps),
        }[method]
        with thread_policy(K, threads=threads) as n_threads:
            if method in ("cavity", "tap", "sample") and K >= 4000 and sys.stderr.isatty() and not args.json:
                H.gram(progress=True)  # the dense couplings: the long part at large D
            step_name = {"exact": "residual"}.get(method, "change")
            with line:
                r = SOLVERS[method](**opts).solve(
                    H, beta=beta, rng=r_solve, warn=False,
                    progress=lambda i, v: line(i, v, step_name))
            W = r.m
            out.update(P=P, lam=lam, beta=beta, sampler=sampler,
                       test_error=ob.test_error(W, dist, rng=r_eval, n_mc=mc),
                       test_error_kind="exact" if dist.isotropic else f"monte-carlo ({mc} prompts)",
                       train_error=float(np.mean((y - feats.predict(W)) ** 2)),
                       contrast_ratio=ob.contrast_ratio(W), converged=bool(r.converged), n_iter=int(r.n_iter),
                       solve_elapsed_s=float(r.seconds), message=r.message,
                       **{k: v for k, v in r.extras.items() if np.ndim(v) == 0})
            if pool is not None:
                out["pool_error"] = ob.pool_error(W, dist, pool, rng=r_eval, n_mc=mc)
        out["threads"] = n_threads
        out["features_elapsed_s"] = t_features
    if args.save:
        arrays = {"W": r.m, "m": r.m, "v": r.v}
        if H is not None:
            arrays["h"] = H.h
            if args.save_couplings:
                arrays["J"] = H.J
        from spinlens.io import atomic_savez

        atomic_savez(args.save, **arrays)
        out["saved"] = args.save
    if args.save_prompts:
        out["saved_prompts"] = args.save_prompts
    out.update(est.to_dict())
    out.update(t_est.to_dict())
    out["peak_memory_gib"] = _peak_rss_gib()
    out["elapsed_s"] = time.perf_counter() - t_start
    if out["converged"] and not all_finite(W, out.get("test_error"), out.get("train_error"), out.get("pool_error")):
        out["converged"] = False  # a non-finite answer is never a converged one
        out["message"] = ("non-finite result (test/train error or W is inf/NaN): the prompts or parameters "
                          "overflow float64; rescale the data or choose smaller sizes")
    if args.json:
        print_json(out)
    else:
        print_table([(k, v) for k, v in out.items() if k != "memory_parts_gib"])
    return convergence_exit("spinlens solve", out["converged"], out["message"], what=method)


def _peak_rss_gib() -> float:
    """Peak resident memory of this process so far (ru_maxrss), GiB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1024**3
