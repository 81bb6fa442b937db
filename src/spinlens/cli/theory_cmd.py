"""``spinlens theory``: asymptotic ICL/IDG errors of linear attention (Lu et al., arXiv 2405.11751).

Forms:

* ``spinlens theory --alpha A --tau T [--kappa K --rho R --lam-lu L] [--json]``: one point, in Lu et al.'s units
  (docs/theory.md; ``--lam-lu`` is their ridge λ_LU, ``--lam`` is refused here: it is the λ of E(W));
* ``spinlens theory --spin-glass --D D --N N --P P --lam L [--K K --sigma-eps S] [--json]``: spin-glass
  parameters mapped with `spinlens.conventions.to_lu` (``--lam`` is the λ of E(W); the JSON has both, ``spin_glass.lam``
  and ``lam_lu``);
* ``spinlens theory curve --vary tau --from 0.1 --to 3 --num 200 ... [--out DIR]``: a curve (table or
  PNG+PDF+CSV);
* ``spinlens theory simulate --D 40 ...``: finite-d simulation next to the theory.
"""

from __future__ import annotations

from spinlens.cli._common import (
    Formatter,
    add_command,
    add_strict,
    check_out_dir,
    convergence_exit,
    map_exit,
    print_json,
    print_table,
)

EXAMPLES = """  spinlens theory --alpha 2 --tau 2 --kappa 0.5 --rho 0.1 --lam-lu 0.1 --json
  spinlens theory --alpha 10 --tau 0.99 --kappa 0.5 --rho 0.01 --lam-lu 0
  spinlens theory --spin-glass --D 20 --N 100 --P 10000 --lam 0.01 --json
  spinlens theory curve --vary tau --from 0.1 --to 3 --num 200 --alpha 10 --kappa 0.5 --rho 0.01 --lam-lu 0,0.1 --out theory-out
  spinlens theory simulate --D 40 --alpha 2 --tau 2 --kappa 0.5 --rho 0.1 --lam-lu 0.1 --seed 0 --json
  spinlens theory diversity --D 10 --N 20 --P 2000 --lam 0.01 --sigma-eps 0.5 --out div-out
  spinlens theory phase --D 10 --N 5:60:12 --K 1:1000:12:log --P 4000 --lam 0.01 --repeats 2 --seed 0 --out phase-out
"""

PHASE_EXAMPLES = """  spinlens theory phase --out phase-out      # defaults = the next line; ~4 min on 2 cores (progress bar)
  spinlens theory phase --D 10 --N 5:60:12 --K 1:1000:12:log --P 4000 --lam 0.01 --repeats 2 --seed 0 --out phase-out
  spinlens theory phase --D 8 --N 10,40 --K 2,8,64,512 --P 3000 --lam 1 --json

grid syntax (as in `spinlens sweep`): V | V1,V2,... | START:STOP:NUM (linspace, rounded) | START:STOP:NUM:log.
Cells whose cavity iteration did not converge are NaN in phase.nc and blank in the figure; the exact ridge
solution and the asymptotic theory (kappa = K/D, via to_lu) are stored next to the cavity for comparison.
"""

CURVE_EXAMPLES = """  spinlens theory curve --vary tau --from 0.1 --to 3 --num 200 --alpha 10 --kappa 0.5 --rho 0.01 --lam-lu 0,0.1
  spinlens theory curve --vary kappa --from 0.1 --to 10 --num 100 --log --alpha 10 --tau 10 --rho 0.01 --lam-lu 1e-6 --out g-task
"""

DIV_EXAMPLES = """  spinlens theory diversity --D 10 --N 20 --P 2000 --lam 0.01 --sigma-eps 0.5 --seed 0
  spinlens theory diversity --D 10 --N 20 --P 2000 --lam 0.01 --sigma-eps 0.5 --K 2,8,32,128,512 --out div-out
"""

SIM_EXAMPLES = """  spinlens theory simulate --D 40 --alpha 2 --tau 2 --kappa 0.5 --rho 0.1 --lam-lu 0.1 --seed 0 --json
  spinlens theory simulate --D 30 --alpha 5 --tau 25 --kappa inf --lam-lu 0.2 --repeats 3
"""

_PARAMS = ("alpha", "tau", "kappa", "rho", "lam_lu")


def _add_lu_args(p, *, lists: bool = False, required_note: str = "") -> None:
    kind = "value or comma-separated list" if lists else "value"
    p.add_argument("--alpha", "--context-ratio", default=None, help=f"context length l/d > 0 ({kind}){required_note}")
    p.add_argument("--tau", "--prompt-ratio", default=None, help=f"pretraining contexts n/d^2 > 0 ({kind}){required_note}")
    p.add_argument("--kappa", "--task-ratio", default="inf", help=f"task diversity k/d in (0, inf], 'inf' allowed ({kind})")
    p.add_argument("--rho", "--noise-ratio", default="0", help=f"label-noise variance >= 0 ({kind})")
    p.add_argument("--lam-lu", "--lu-ridge", default="0",
                   help=f"Lu et al.'s ridge strength λ_LU >= 0 ({kind}); not the λ of E(W) (--lam, with --spin-glass)")


def _refuse_lam(p) -> None:
    """``--lam`` on a command in Lu et al.'s units: refused in one line (`_check_no_lam`), hidden from --help."""
    import argparse

    p.add_argument("--lam", "--ridge", dest="lam", default=None, help=argparse.SUPPRESS)


def _check_no_lam(args) -> None:
    """``--lam`` is the λ of E(W) (docs/vocabulary.md); the theory's own modes take Lu et al.'s λ_LU as --lam-lu.

    Refused rather than read as λ_LU: before 2026-12 these modes read --lam as λ_LU, and the same number under
    the new meaning would be a different ridge; the message says what to write instead.
    """
    from spinlens.errors import InvalidParameterError

    if getattr(args, "lam", None) is not None:
        raise InvalidParameterError(
            f"The '--lam' parameter is the ridge λ of E(W) and needs --spin-glass with D and N; Lu et al.'s ridge "
            f"of this mode is --lam-lu (λ_LU = D·λ·(1+1/N)², spinlens.conventions.lam_lu_from_lam). Got --lam "
            f"{args.lam} instead.")


def register(subparsers) -> None:
    p = add_command(
        subparsers,
        "theory",
        "Asymptotic ICL/IDG errors of ridge-pretrained linear attention (Lu et al. 2024) and finite-d checks.",
        EXAMPLES,
        _run_point,
    )
    _add_lu_args(p, required_note="; required unless --spin-glass")
    p.add_argument("--spin-glass", action="store_true", help="take spin-glass parameters --D --N --P --lam [--K --sigma-eps]")
    p.add_argument("--lam", "--ridge", default=None, help="spin glass: the ridge λ of E(W) (>= 0; default 0)%(default).0s")
    p.add_argument("--D", "--token-dim", dest="D", default=None, help="spin glass: token dimension D")
    p.add_argument("--N", "--context-length", dest="N", default=None, help="spin glass: context length N")
    p.add_argument("--P", "--train-prompts", dest="P", default=None, help="spin glass: number of pretraining prompts P")
    p.add_argument("--K", "--task-pool", dest="K", default=None, help="spin glass: task-pool size K (default: a fresh task per prompt)")
    p.add_argument("--sigma-eps", "--noise-std", default="0", help="spin glass: label-noise std")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    sub = p.add_subparsers(dest="theory_mode", metavar="MODE")

    c = sub.add_parser(
        "curve", help="a learning curve: one parameter swept, the others fixed (lists give several lines)",
        description="Sweep one parameter of the asymptotic theory; print a table or write PNG+PDF+CSV.",
        epilog="examples:\n" + CURVE_EXAMPLES, formatter_class=Formatter,
    )
    c.add_argument("--vary", required=True, choices=_PARAMS, help="the swept parameter")
    c.add_argument("--from", dest="start", required=True, help="first value")
    c.add_argument("--to", dest="stop", required=True, help="last value")
    c.add_argument("--num", default="200", help="number of points")
    c.add_argument("--log", action="store_true", help="log-spaced values (and log x axis)")
    c.add_argument("--logy", action="store_true", help="log y axis in the figure (default: log when the curves are "
                   "positive and span more than a factor of 30)")
    _add_lu_args(c, lists=True)
    _refuse_lam(c)
    c.add_argument("--out", default=None, help="folder for curve.csv, curve.png, curve.pdf, run.json")
    c.add_argument("--seed", type=int, default=0, help="recorded in run.json (the theory is deterministic)")
    add_strict(c)
    c.set_defaults(func=_run_curve)

    s = sub.add_parser(
        "simulate", help="finite-d ridge pretraining (exact test errors) next to the asymptotic theory",
        description="Simulate ridge-pretrained linear attention at dimension d (docs/theory.md, finite-d simulator) and compare with the theory.",
        epilog="examples:\n" + SIM_EXAMPLES, formatter_class=Formatter,
    )
    s.add_argument("--D", "--token-dim", dest="d", default=None,
                   help="dimension D, Lu et al.'s d (required; the fit is a D(D+1)-dimensional ridge problem)%(default).0s")
    _add_lu_args(s)
    _refuse_lam(s)
    s.add_argument("--repeats", default="1", help="independent repeats")
    s.add_argument("--seed", type=int, default=0, help="random seed")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=_run_simulate)

    v = sub.add_parser(
        "diversity",
        help="ICL/IDG error vs task-pool size K: exact spin-glass ridge, Bayes ridge, dMMSE and the theory",
        description="Sweep the task-pool size K in the spin glass (exact solver) and compare with the Bayes "
        "baselines and the asymptotic theory (kappa = K/D).",
        epilog="examples:\n" + DIV_EXAMPLES, formatter_class=Formatter,
    )
    v.add_argument("--D", "--token-dim", dest="D", default="10", help="token dimension D")
    v.add_argument("--N", "--context-length", dest="N", default="20", help="context length N")
    v.add_argument("--P", "--train-prompts", dest="P", default="2000", help="pretraining prompts P")
    v.add_argument("--lam", "--ridge", default="0.01", help="l2_strength of E(W)")
    v.add_argument("--sigma-eps", "--noise-std", default="0.5", help="label-noise std")
    v.add_argument("--K", "--task-pool", dest="K", default="2,4,8,16,32,64,128,256,512,1024", help="comma-separated pool sizes")
    v.add_argument("--n-test", default="4000", help="Monte-Carlo test prompts for the baselines")
    v.add_argument("--seed", type=int, default=0, help="random seed")
    v.add_argument("--out", default=None, help="folder for diversity.csv, diversity.nc, diversity.png/.pdf, run.json")
    v.add_argument("--json", action="store_true", help="print the table as one JSON object")
    v.set_defaults(func=_run_diversity)

    ph = sub.add_parser(
        "phase",
        help="phase diagram of the cavity solution over task-pool size K and context length N",
        description="Solve the spin glass with the paper's cavity method on a (K, N) grid of finite task pools: "
        "ICL error, pool error, g_task = ICL - pool, contrast ratio, convergence; with the exact ridge "
        "solution and the asymptotic theory at kappa = K/D for comparison.",
        epilog="examples:\n" + PHASE_EXAMPLES, formatter_class=Formatter,
    )
    ph.add_argument("--D", "--token-dim", dest="D", default="10", help="token dimension D (1..40)")
    ph.add_argument("--N", "--context-length", dest="N", default="5:60:12", help="context lengths N (grid syntax)")
    ph.add_argument("--K", "--task-pool", dest="K", default="1:1000:12:log", help="task-pool sizes K (grid syntax)")
    ph.add_argument("--P", "--train-prompts", dest="P", default="4000", help="pretraining prompts P per cell")
    ph.add_argument("--lam", "--ridge", default="0.01", help="l2_strength of E(W)")
    ph.add_argument("--sigma-eps", "--noise-std", default="0", help="label-noise std")
    ph.add_argument("--beta", "--inverse-temperature", default="100", help="inverse temperature of the cavity solver")
    ph.add_argument("--damping", "--cavity-damping", default="0.9", help="cavity damping in [0, 1)")
    ph.add_argument("--max-iter", default="100", help="cavity iterations at most")
    ph.add_argument("--repeats", default="2", help="independent repeats per cell")
    ph.add_argument("--no-exact", action="store_true", help="skip the exact ridge solution of each cell")
    ph.add_argument("--seed", type=int, default=0, help="random seed")
    ph.add_argument("--out", default=None, help="folder for phase.nc, phase.csv, phase.png/.pdf, run.json")
    ph.add_argument("--json", action="store_true", help="print the averaged table as one JSON object")
    add_strict(ph)
    ph.set_defaults(func=_run_phase)


# ----------------------------------------------------------------------------------------------------
def _floats(name: str, text, *, allow_inf: bool = False) -> list[float]:
    from spinlens.errors import InvalidParameterError

    parts = [t.strip() for t in str(text).split(",")]
    if not any(parts):
        raise InvalidParameterError(f"The '{name}' parameter must be a number. Got {text!r} instead.")
    if not all(parts):
        raise InvalidParameterError(f"The '{name}' parameter must be a comma-separated list of numbers without empty "
                                    f"items. Got {text!r} instead.")
    out = []
    for t in parts:
        try:
            v = float(t)
        except ValueError:
            raise InvalidParameterError(f"The '{name}' parameter must be a number. Got {t!r} instead.") from None
        if v != v or (v in (float("inf"), float("-inf")) and not (allow_inf and v > 0)):
            raise InvalidParameterError(f"The '{name}' parameter must be a finite number. Got {t!r} instead.")
        out.append(v)
    return out


def _one(name: str, text, **kw) -> float:
    from spinlens.errors import InvalidParameterError

    vals = _floats(name, text, **kw)
    if len(vals) != 1:
        raise InvalidParameterError(f"The '{name}' parameter must be a single number here. Got {text!r} instead.")
    return vals[0]


def _check_seed(args) -> None:
    from spinlens.errors import check_int

    check_int("--seed", args.seed, low=0)


def _lu_point_args(args) -> dict:
    from spinlens.errors import InvalidParameterError
    from spinlens.theory.asymptotic import validate_inputs

    for name in ("alpha", "tau"):
        if getattr(args, name) is None:
            raise InvalidParameterError(f"The '{name}' parameter is required (--{name}), or use --spin-glass.")
    _check_no_lam(args)
    vals = {n: _one(n, getattr(args, n), allow_inf=(n == "kappa")) for n in _PARAMS}
    a, t, k, r, lm = validate_inputs(vals["alpha"], vals["tau"], vals["kappa"], vals["rho"], vals["lam_lu"])
    return {"alpha": a, "tau": t, "kappa": k, "rho": r, "lam_lu": lm}


def _run_point(args) -> int:
    from spinlens.errors import InvalidParameterError, check_float, check_int
    from spinlens.theory.asymptotic import _point, validate_inputs

    out: dict = {}
    if args.spin_glass:
        from spinlens.conventions import to_lu

        missing = [n for n in ("D", "N", "P") if getattr(args, n) is None]
        if missing:
            raise InvalidParameterError(f"The '{missing[0]}' parameter is required with --spin-glass (--{missing[0]}).")
        D = check_int("D", _one("D", args.D), low=1)
        N = check_int("N", _one("N", args.N), low=1)
        P = check_int("P", _one("P", args.P), low=1)
        K = None if args.K is None or str(args.K).lower() in ("none", "inf") else check_int("K", _one("K", args.K), low=1)
        if args.lam_lu != "0":
            raise InvalidParameterError("With --spin-glass the ridge is --lam (the λ of E(W)); --lam-lu is Lu et al.'s "
                                        f"λ_LU, computed from it. Got --lam-lu {args.lam_lu} instead.")
        l2 = check_float("lam", _one("lam", "0" if args.lam is None else args.lam), low=0.0)
        sig = check_float("sigma_eps", _one("sigma_eps", args.sigma_eps), low=0.0)
        lu = to_lu(D, N, P, l2, n_tasks=K, sigma_eps=sig)
        a, t, k, r, lm = validate_inputs(lu["alpha"], lu["tau"], lu["kappa"], lu["rho"], lu["lam_lu"])
        params = {"alpha": a, "tau": t, "kappa": k, "rho": r, "lam_lu": lm}
        out["spin_glass"] = {"D": D, "N": N, "P": P, "lam": l2, "K": K, "sigma_eps": sig}
    else:
        params = _lu_point_args(args)
    res = _point(**params)
    out.update(params)
    out.update(
        icl_error=res.icl_error, idg_error=res.idg_error, g_task=res.g_task, epsilon=res.epsilon,
        converged=res.converged, divergent=res.divergent, message=res.message,
    )
    if args.json:
        print_json(out)
    else:
        rows = []
        if "spin_glass" in out:
            rows += [(f"spin glass {k}", v if v is not None else "fresh task per prompt") for k, v in out["spin_glass"].items()]
        rows += [(k, v) for k, v in out.items() if k != "spin_glass"]
        print_table(rows)
    return convergence_exit("spinlens theory", bool(res.converged), res.message)


def _run_curve(args) -> int:
    _check_seed(args)
    import numpy as np

    from spinlens.errors import InvalidParameterError, check_int
    from spinlens.theory.asymptotic import learning_curve

    check_out_dir("--out", args.out)
    _check_no_lam(args)
    num = check_int("num", _one("num", args.num), low=2, high=100_000)
    start = _one("from", args.start, allow_inf=False)
    stop = _one("to", args.stop, allow_inf=False)
    if args.log:
        if start <= 0 or stop <= 0:
            raise InvalidParameterError(f"With --log the '--from'/'--to' values must be > 0. Got {start!r}, {stop!r}.")
        grid = np.geomspace(start, stop, num)
    else:
        grid = np.linspace(start, stop, num)
    vals: dict = {}
    for n in _PARAMS:
        if n == args.vary:
            vals[n] = grid
            continue
        text = getattr(args, n)
        if text is None:
            raise InvalidParameterError(f"The '{n}' parameter is required (--{n.replace('_', '-')}).")
        v = _floats(n, text, allow_inf=(n == "kappa"))
        vals[n] = v[0] if len(v) == 1 else np.array(v)
    ds = learning_curve(**vals)
    df = ds.to_dataframe().reset_index()
    cols = [c for c in _PARAMS if c in df.columns] + ["icl_error", "idg_error", "g_task", "epsilon", "converged", "divergent"]
    df = df[cols]
    if args.out is None:
        print(df.to_string(index=False, float_format=lambda x: f"{x:.6g}"))
    else:
        from spinlens.plotting.theory import plot_learning_curve

        _write_outputs(args, "curve", df, lambda: plot_learning_curve(ds, args.vary, logx=args.log, logy=args.logy or None))
        print(f"wrote {args.out}/curve.csv, curve.png, curve.pdf, run.json ({len(df)} rows)")
    n_bad = int((~ds.converged.values.astype(bool)).sum())
    return map_exit("spinlens theory curve", n_bad, ds.converged.size, strict=args.strict,
                    mask="the 'converged' column")


def _run_simulate(args) -> int:
    _check_seed(args)
    from spinlens.errors import check_int
    from spinlens.theory.asymptotic import _point
    from spinlens.theory.simulate import simulate_point

    params = _lu_point_args(args)
    if args.d is None:
        from spinlens.errors import InvalidParameterError

        raise InvalidParameterError("The 'D' parameter is required (--D).")
    d = check_int("--D", _one("--D", args.d), low=2, high=200)
    reps = check_int("repeats", _one("repeats", args.repeats), low=1, high=1000)
    sim = simulate_point(d, **params, n_repeats=reps, rng=args.seed)
    th = _point(**params)
    out = dict(params)
    out.update(
        d=d, seed=args.seed, n_repeats=reps, n_context=sim.n_context, n_prompts=sim.n_prompts, n_tasks=sim.n_tasks,
        sim_icl_error=sim.icl_error, sim_idg_error=sim.idg_error, sim_icl_sd=sim.icl_sd, sim_idg_sd=sim.idg_sd,
        icl_error=th.icl_error, idg_error=th.idg_error, converged=th.converged,
    )
    from spinlens.vocabulary import to_symbols

    out = to_symbols(out)  # D, N, P, K: the keys of docs/vocabulary.md
    if args.json:
        print_json(out)
    else:
        print_table(list(out.items()))
    return convergence_exit("spinlens theory simulate", bool(th.converged), th.message, what="theory")


def _run_diversity(args) -> int:
    _check_seed(args)
    from spinlens.errors import check_float, check_int
    from spinlens.theory.comparison import task_diversity_sweep

    check_out_dir("--out", args.out)
    D = check_int("D", _one("D", args.D), low=1, high=60)
    N = check_int("N", _one("N", args.N), low=1)
    P = check_int("P", _one("P", args.P), low=1)
    l2 = check_float("lam", _one("lam", args.lam), low=0.0)
    sig = check_float("sigma_eps", _one("sigma_eps", args.sigma_eps), low=0.0)
    ks = [check_int("K", k, low=1) for k in _floats("K", args.K)]
    n_test = check_int("n_test", _one("n_test", args.n_test), low=10)
    ds = task_diversity_sweep(D, N, P, l2, ks, sigma_eps=sig, n_test=n_test, rng=args.seed, progress=True)
    df = _symbol_columns(ds.to_dataframe().reset_index())
    if args.json:
        print_json({"config": {"D": D, "N": N, "P": P, "lam": l2, "sigma_eps": sig, "seed": args.seed},
                    "rows": df.to_dict(orient="records")})
    else:
        print(df.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    if args.out is not None:
        from spinlens.plotting.theory import plot_task_diversity
        from spinlens.theory.comparison import diversity_theory_curve

        curve = diversity_theory_curve(ds)
        _write_outputs(args, "diversity", df, lambda: plot_task_diversity(ds, theory=curve), ds=ds)
        if not args.json:
            print(f"wrote {args.out}/diversity.csv, diversity.nc, diversity.png, diversity.pdf, run.json")
    return 0


def _grid_ints(name: str, text, flag: str) -> list[int]:
    from spinlens.errors import InvalidParameterError
    from spinlens.sweeps import parse_values

    vals = parse_values(flag, text)
    if any(v is None for v in vals):
        raise InvalidParameterError(f"The '{name}' parameter must list finite integers >= 1 here (no 'inf'). Got {text!r}.")
    return [int(v) for v in vals]


def _run_phase(args) -> int:
    _check_seed(args)
    import time

    from spinlens.errors import check_float, check_int
    from spinlens.theory.phase import task_pool_phase_diagram

    check_out_dir("--out", args.out)
    D = check_int("D", _one("D", args.D), low=1, high=40)
    ns = _grid_ints("N", args.N, "N")
    ks = _grid_ints("K", args.K, "K")
    P = check_int("P", _one("P", args.P), low=1)
    l2 = check_float("lam", _one("lam", args.lam), low=0.0)
    sig = check_float("sigma_eps", _one("sigma_eps", args.sigma_eps), low=0.0)
    beta = check_float("beta", _one("beta", args.beta), low=0.0, low_open=True)
    damping = check_float("damping", _one("damping", args.damping), low=0.0, high=1.0, high_open=True)
    max_iter = check_int("max_iter", _one("max_iter", args.max_iter), low=1)
    reps = check_int("repeats", _one("repeats", args.repeats), low=1, high=1000)
    t0 = time.perf_counter()
    ds = task_pool_phase_diagram(D, ns, ks, P, l2, beta=beta, damping=damping, max_iter=max_iter, n_repeats=reps,
                                 sigma_eps=sig, exact=not args.no_exact, rng=args.seed, progress=True)
    seconds = time.perf_counter() - t0
    cols = [v for v in ("icl_error", "pool_error", "g_task", "contrast_ratio", "converged_fraction",
                        "exact_icl_error", "exact_pool_error", "exact_g_task", "theory_icl_error",
                        "theory_idg_error", "theory_g_task") if v in ds]
    df = ds[cols].to_dataframe().reset_index()
    df = _symbol_columns(df[["n_tasks", "n_context", "kappa", "alpha"] + cols])
    n_conv = int((ds.converged_fraction.values > 0).sum())
    summary = (f"{ds.converged_fraction.size} cells, {n_conv} with a converged cavity run, "
               f"{float(ds.converged.values.mean()):.0%} of runs converged, {seconds:.1f} s")
    if args.json:
        print_json({"config": {"D": D, "N": ns, "K": ks, "P": P, "lam": l2, "sigma_eps": sig, "beta": beta,
                               "damping": damping, "max_iter": max_iter, "repeats": reps, "seed": args.seed},
                    "rows": df.to_dict(orient="records")})
    else:
        print(df.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
        print(summary)
    if args.out is not None:
        from spinlens.plotting.theory import plot_phase_diagram

        _write_outputs(args, "phase", df, lambda: plot_phase_diagram(ds), ds=ds,
                       extra={"grid": {"D": D, "N": ns, "K": ks}, "elapsed_s": seconds, "summary": summary})
        if not args.json:
            print(f"wrote {args.out}/phase.nc, phase.csv, phase.png, phase.pdf, run.json")
    n_bad = int((~ds.converged.values.astype(bool)).sum())
    return map_exit("spinlens theory phase", n_bad, ds.converged.size, strict=args.strict, unit="cavity runs",
                    mask="'converged' and 'converged_fraction' of phase.nc; blank cells of the figure")


def _write_outputs(args, stem: str, df, make_figure, *, ds=None, extra: dict | None = None) -> list[str]:
    """Write ``stem``.csv (and .nc when ``ds`` is given), the figure as PNG and PDF, and run.json under --out."""
    import matplotlib

    matplotlib.use("Agg")

    from spinlens import io

    files = [f"{stem}.csv"]
    io.save_dataframe(df, args.out, stem, index=False)
    if ds is not None:
        io.save_dataset(ds, args.out, stem)
        files.append(f"{stem}.nc")
    fig, _ = make_figure()
    io.save_figure(fig, args.out, stem, dpi=150)
    files += [f"{stem}.png", f"{stem}.pdf"]
    from spinlens.vocabulary import to_symbols

    cfg = to_symbols({k: v for k, v in vars(args).items() if k != "func"})  # run.json keys: docs/vocabulary.md
    io.write_run_json(args.out, io.run_record(f"theory {stem}", seed=args.seed, config=cfg, **(extra or {}),
                                              files=files))
    return files


__all__ = ["register"]


def _symbol_columns(df):
    """Table columns named by a quantity's Python name carry its symbol (n_context -> N), as in JSON and datasets."""
    from spinlens.vocabulary import to_symbols

    return df.rename(columns={c: next(iter(to_symbols({c: None}))) for c in df.columns})
