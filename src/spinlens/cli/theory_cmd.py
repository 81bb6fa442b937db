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
# each mode: parse the text arguments (spinlens.errors.parse_float(s)) -> one call of spinlens.theory -> report
def _lu_point_args(args) -> dict:
    from spinlens.errors import InvalidParameterError, parse_float

    for name in ("alpha", "tau"):
        if getattr(args, name) is None:
            raise InvalidParameterError(f"The '{name}' parameter is required (--{name}), or use --spin-glass.")
    _check_no_lam(args)
    return {n: parse_float(n, getattr(args, n), allow_inf=(n == "kappa")) for n in _PARAMS}


def _report(args, run, wrote: str) -> None:
    """Print a map's table (or its JSON with --json), and write its files under --out."""
    if args.json:
        print_json(run.summary)
    else:
        print(run.table.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
        if run.mode == "phase":
            print(run.message)
    if args.out is not None:
        run.write(args.out, config=_config(args), seed=args.seed)
        if not args.json:
            print(f"wrote {args.out}/{wrote}, run.json")


def _config(args) -> dict:
    return {k: v for k, v in vars(args).items() if k != "func"}


def _run_point(args) -> int:
    from spinlens.errors import InvalidParameterError, parse_float
    from spinlens.theory.asymptotic import point_run, spin_glass_point

    if args.spin_glass:
        missing = [n for n in ("D", "N", "P") if getattr(args, n) is None]
        if missing:
            raise InvalidParameterError(f"The '{missing[0]}' parameter is required with --spin-glass (--{missing[0]}).")
        if args.lam_lu != "0":
            raise InvalidParameterError("With --spin-glass the ridge is --lam (the λ of E(W)); --lam-lu is Lu et al.'s "
                                        f"λ_LU, computed from it. Got --lam-lu {args.lam_lu} instead.")
        K = None if args.K is None or str(args.K).lower() in ("none", "inf") else parse_float("K", args.K)
        run = spin_glass_point(parse_float("D", args.D), parse_float("N", args.N), parse_float("P", args.P),
                               parse_float("lam", "0" if args.lam is None else args.lam), n_tasks=K,
                               sigma_eps=parse_float("sigma_eps", args.sigma_eps))
    else:
        run = point_run(**_lu_point_args(args))
    out = run.summary
    if args.json:
        print_json(out)
    else:
        rows = [(f"spin glass {k}", v if v is not None else "fresh task per prompt")
                for k, v in out.get("spin_glass", {}).items()]
        print_table(rows + [(k, v) for k, v in out.items() if k != "spin_glass"])
    return convergence_exit("spinlens theory", run.converged, run.message)


def _run_curve(args) -> int:
    from spinlens.errors import InvalidParameterError, check_int, parse_float, parse_floats
    from spinlens.theory.asymptotic import curve_run

    check_int("--seed", args.seed, low=0)
    check_out_dir("--out", args.out)
    _check_no_lam(args)
    num = parse_float("num", args.num)
    start, stop = parse_float("from", args.start), parse_float("to", args.stop)
    fixed = {}
    for n in (n for n in _PARAMS if n != args.vary):
        if getattr(args, n) is None:
            raise InvalidParameterError(f"The '{n}' parameter is required (--{n.replace('_', '-')}).")
        fixed[n] = parse_floats(n, getattr(args, n), allow_inf=(n == "kappa"))
    run = curve_run(args.vary, start, stop, num, log=args.log, logy=args.logy, **fixed)
    if args.out is None:
        print(run.table.to_string(index=False, float_format=lambda x: f"{x:.6g}"))
    else:
        run.write(args.out, config=_config(args), seed=args.seed)
        print(f"wrote {args.out}/curve.csv, curve.png, curve.pdf, run.json ({len(run.table)} rows)")
    return map_exit("spinlens theory curve", run.n_bad, run.n_total, strict=args.strict, mask="the 'converged' column")


def _run_simulate(args) -> int:
    from spinlens.errors import InvalidParameterError, check_int, parse_float
    from spinlens.theory.simulate import simulate_run

    check_int("--seed", args.seed, low=0)
    params = _lu_point_args(args)
    if args.d is None:
        raise InvalidParameterError("The 'D' parameter is required (--D).")
    run = simulate_run(parse_float("--D", args.d), **params, n_repeats=parse_float("repeats", args.repeats),
                       seed=args.seed)
    if args.json:
        print_json(run.summary)
    else:
        print_table(list(run.summary.items()))
    return convergence_exit("spinlens theory simulate", run.converged, run.message, what="theory")


def _run_diversity(args) -> int:
    from spinlens.errors import check_int, parse_float, parse_floats
    from spinlens.theory.comparison import diversity_run

    check_int("--seed", args.seed, low=0)
    check_out_dir("--out", args.out)
    run = diversity_run(parse_float("D", args.D), parse_float("N", args.N), parse_float("P", args.P),
                        parse_float("lam", args.lam), parse_floats("K", args.K),
                        sigma_eps=parse_float("sigma_eps", args.sigma_eps), n_test=parse_float("n_test", args.n_test),
                        seed=args.seed, progress=True)
    _report(args, run, "diversity.csv, diversity.nc, diversity.png, diversity.pdf")
    return 0


def _run_phase(args) -> int:
    from spinlens.errors import check_int, parse_float
    from spinlens.sweeps import parse_int_values
    from spinlens.theory.phase import phase_run

    check_int("--seed", args.seed, low=0)
    check_out_dir("--out", args.out)
    run = phase_run(parse_float("D", args.D), parse_int_values("N", args.N), parse_int_values("K", args.K),
                    parse_float("P", args.P), parse_float("lam", args.lam), beta=parse_float("beta", args.beta),
                    damping=parse_float("damping", args.damping), max_iter=parse_float("max_iter", args.max_iter),
                    n_repeats=parse_float("repeats", args.repeats), sigma_eps=parse_float("sigma_eps", args.sigma_eps),
                    exact=not args.no_exact, seed=args.seed, progress=True)
    _report(args, run, "phase.nc, phase.csv, phase.png, phase.pdf")
    return map_exit("spinlens theory phase", run.n_bad, run.n_total, strict=args.strict, unit="cavity runs",
                    mask="'converged' and 'converged_fraction' of phase.nc; blank cells of the figure")


__all__ = ["register"]
