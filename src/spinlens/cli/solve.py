"""`spinlens solve`: build the spin glass from prompts and solve it."""

from __future__ import annotations

from ._common import add_command
from ._prompt_args import add_prompt_args

EXAMPLES = """  spinlens solve --D 20 --N 100 --P 10000 --lam 0.01 --method cavity
  spinlens solve --D 10 --N 50 --P 2000 --method exact --json
  spinlens solve --data prompts.npz --lam 0.01 --method sample --beta 100 --save result.npz
  spinlens solve --D 20 --N 100 --method limit --lam 0.01 --json
"""


def register(sub):
    p = add_command(sub, "solve", "Solve the spin glass of a linear-attention transformer (exact, cavity, sampling, P→∞ limit).", EXAMPLES, run)
    add_prompt_args(p)
    g = p.add_argument_group("solver")
    g.add_argument("--lam", type=float, default=0.01, help="the Hamiltonian's ridge strength λ (>= 0)")
    g.add_argument("--method", default="exact", help="exact | cavity | sample | langevin | limit (the P→∞ closed form)")
    g.add_argument("--beta", type=float, default=100.0, help="inverse temperature β (> 0)")
    g.add_argument("--damping", type=float, default=0.9, help="cavity damping θ in [0, 1)")
    g.add_argument("--steps", type=int, default=100, help="cavity steps / Langevin steps (>= 1)")
    g.add_argument("--tol", type=float, default=1e-6, help="cavity tolerance on the mean squared change (> 0)")
    g.add_argument("--samples", type=int, default=1000, help="samples per replica for --method sample (>= 2)")
    o = p.add_argument_group("output")
    o.add_argument("--json", action="store_true", help="print one JSON object")
    o.add_argument("--save", default=None, metavar="RESULT.npz", help="write W, m, v, h (and J with --save-couplings)")
    o.add_argument("--save-couplings", action="store_true", help="also write the dense couplings J to --save")
    o.add_argument("--mc-prompts", type=int, default=20000, help="fresh prompts for Monte-Carlo errors when no closed form applies")


def run(args) -> int:
    import warnings

    import numpy as np

    from spinlens import observables as ob
    from spinlens.errors import check_choice, check_float, check_int
    from spinlens.hamiltonian import build_hamiltonian
    from spinlens.limit import infinite_diversity_solution
    from spinlens.random import spawn
    from spinlens.solvers import solve

    from ._common import all_finite, check_out_file, convergence_exit, print_json, print_table
    from ._prompt_args import prompts_from_args

    check_int("--seed", args.seed, low=0)
    method = check_choice("--method", args.method, ("exact", "cavity", "sample", "langevin", "limit"))
    lam = check_float("--lam", args.lam, low=0)
    beta = check_float("--beta", args.beta, low=0, low_open=True)
    damping = check_float("--damping", args.damping, low=0, high=1, high_open=True)
    steps = check_int("--steps", args.steps, low=1, high=10**7)
    tol = check_float("--tol", args.tol, low=0, low_open=True)
    samples = check_int("--samples", args.samples, low=2)
    mc = check_int("--mc-prompts", args.mc_prompts, low=2)
    check_out_file("--save", args.save)
    if method == "limit" and args.K is not None:
        from spinlens.errors import InvalidParameterError

        raise InvalidParameterError("The '--K' parameter has no effect with --method limit (the P → ∞ closed form "
                                    "assumes a fresh task per prompt); drop --K or choose another method.")
    r_prompts, r_solve, r_eval = spawn(args.seed, 3)
    dist, prompts = prompts_from_args(args, r_prompts)
    H = build_hamiltonian(prompts, l2_strength=lam)
    opts = {"cavity": dict(damping=damping, max_iter=steps, tol=tol), "sample": dict(n_samples=samples), "langevin": dict(n_steps=steps)}
    if method == "limit":
        import time

        t0 = time.perf_counter()
        W = infinite_diversity_solution(dist, lam)
        res = dict(W=W, m=W, v=None, converged=True, iterations=0, seconds=time.perf_counter() - t0, message="closed form (P → ∞)")
        extras = {}
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = solve(H, method, beta=beta, rng=r_solve, **opts.get(method, {}))
        res = dict(W=r.W, m=r.m, v=r.v, converged=r.converged, iterations=r.n_iter, seconds=r.seconds, message=r.message)
        extras = {k: v for k, v in r.extras.items() if np.ndim(v) == 0}
    W = res["W"]
    out = {
        "method": method,
        "D": dist.d,
        "N": dist.n_context,
        "P": prompts.n_prompts,
        "lam": lam,
        "beta": beta,
        "test_error": ob.test_error(W, dist, rng=r_eval, n_mc=mc),
        "test_error_kind": "exact" if dist.isotropic else f"monte-carlo ({mc} prompts)",
        "train_error": ob.train_error(W, prompts),
        "contrast_ratio": ob.contrast_ratio(W),
        "converged": bool(res["converged"]),
        "iterations": int(res["iterations"]),
        "seconds": float(res["seconds"]),
        "message": res["message"],
        **extras,
    }
    if prompts.pool is not None:
        out["pool_error"] = ob.pool_error(W, dist, prompts.pool, rng=r_eval, n_mc=mc)
    if args.save:
        _save(args.save, res, H, args.save_couplings)
        out["saved"] = args.save
    if out["converged"] and not all_finite(W, out["test_error"], out["train_error"], out.get("pool_error")):
        out["converged"] = False  # a non-finite answer is never a converged one
        out["message"] = ("non-finite result (test/train error or W is inf/NaN): the prompts or parameters "
                          "overflow float64; rescale the data or choose smaller sizes")
    if args.json:
        print_json(out)
    else:
        print_table([(k, v) for k, v in out.items()])
    return convergence_exit("spinlens solve", out["converged"], out["message"], what=method)


def _save(path, res, H, couplings):
    from spinlens.io import atomic_savez

    arrays = {"W": res["W"], "m": res["m"], "h": H.h}
    if res["v"] is not None:
        arrays["v"] = res["v"]
    if couplings:
        arrays["J"] = H.J
    atomic_savez(path, **arrays)
