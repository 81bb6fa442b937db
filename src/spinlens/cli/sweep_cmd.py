"""``spinlens sweep``: a parameter grid of the spin glass model, on a process pool or a Dask cluster."""

from __future__ import annotations

import argparse

from ._common import add_command, add_deprecated_flag, add_strict

EXAMPLES = """\
  # Fig 4a of the paper: contrast ratio of the cavity solution over (N, P), 10 repeats
  spinlens sweep --D 20 --N 2:100:50 --P 20:1000:50 --lam 1 --beta 100 --damping 0.9 --seed 0:10 \\
      --observables contrast_ratio --out sweep-fig4a --jobs 2
  # a small grid from a file, on a running Dask scheduler; continue after an interruption
  spinlens sweep --config grid.toml --scheduler tcp://127.0.0.1:8786 --out sweep-a
  spinlens sweep --config grid.toml --out sweep-a --resume
  # test error vs label noise and λ on a log grid, with the exact solver
  spinlens sweep --N 50 --P 2000 --sigma-eps 0,0.5,1 --lam 1e-3:1:4:log --method exact \\
      --observables test_error,train_error,overlap --out sweep-noise

value syntax: V | V1,V2,... | START:STOP:NUM (linspace, ints rounded) | START:STOP:NUM:log;
  --seed START:STOP is range(START, STOP) (repeats). Dims of results.nc: D, N, P, K, lam, beta,
  damping, corr, sigma_eps, seed (the symbols of docs/vocabulary.md; only the swept ones).
observables: test_error, pool_error, train_error, contrast_ratio, zero_mode_fraction, overlap,
  exact_distance, converged (always), n_iter, residual, elapsed_s.
"""

# '%(default).0s' renders as nothing but stops the formatter from appending "(default: None)"
_NO_DEFAULT = "%(default).0s"


def _grid_flag(name: str, allowed: str) -> dict:
    """add_argument settings of a grid flag: its meaning from `spinlens.vocabulary` (light: --help stays fast;
    the range is checked by `spinlens.sweeps.PARAMETERS`)."""
    from spinlens.vocabulary import by_symbol

    meaning = "repeat seeds" if name == "seed" else f"{by_symbol(name).math}: {by_symbol(name).meaning}"
    return {"metavar": "VALUES", "default": None, "help": f"{meaning} ({allowed})" + _NO_DEFAULT}


def register(sub) -> None:
    p = add_command(sub, "sweep", "Sweep a grid of spin-glass parameters and store the observables per point.",
                    EXAMPLES, run)
    g = p.add_argument_group("grid (each: V, V1,V2,..., START:STOP:NUM or START:STOP:NUM:log)")
    # under the symbols of spinlens.vocabulary (apply_vocabulary checks them and adds the old spellings); the
    # meaning, range and default of each come from spinlens.sweeps.PARAMETERS
    g.add_argument("--D", "--token-dim", dest="grid_D", **_grid_flag("D", "int >= 1; default 20"))
    g.add_argument("--N", "--context-length", dest="grid_N", **_grid_flag("N", "int >= 1; default 100"))
    P = g.add_argument("--P", "--train-prompts", dest="grid_P", **_grid_flag("P", "int >= 1; default 1000"))
    add_deprecated_flag(p, "--n-prompts", P)
    g.add_argument("--K", "--task-pool", dest="grid_K", **_grid_flag("K", "int >= 1 or inf: a fresh task per prompt; default inf"))
    g.add_argument("--lam", "--ridge", dest="grid_lam", **_grid_flag("lam", ">= 0; default 1"))
    g.add_argument("--beta", "--inverse-temperature", dest="grid_beta", **_grid_flag("beta", ">= 1e-100; default 100"))
    g.add_argument("--damping", "--cavity-damping", dest="grid_damping", **_grid_flag("damping", "in [0, 1); default 0.9"))
    g.add_argument("--corr", "--position-corr", dest="grid_corr", **_grid_flag("corr", "in [0, 1); default 0"))
    g.add_argument("--sigma-eps", "--noise-std", dest="grid_sigma_eps", **_grid_flag("sigma_eps", ">= 0; default 0"))
    g.add_argument("--seed", dest="grid_seed", **_grid_flag("seed", "int >= 0; START:STOP = repeats START..STOP-1; default 0"))
    p.add_argument("--config", default=None, metavar="FILE",
                   help="TOML/YAML/JSON file with a [grid] and an optional [settings] table; flags override it" + _NO_DEFAULT)
    p.add_argument("--observables", default=None,
                   help="comma-separated observables (default: contrast_ratio,test_error,n_iter)" + _NO_DEFAULT)
    p.add_argument("--method", default=None, choices=["cavity", "exact", "tap"],
                   help="solver giving W: cavity (default), exact, or tap (cavity plus the Onsager reaction term)" + _NO_DEFAULT)
    p.add_argument("--max-iter", type=int, default=None, help="cavity iterations at most (default 100)" + _NO_DEFAULT)
    p.add_argument("--tol", type=float, default=None, help="cavity tolerance on the mean squared change (default 1e-6)" + _NO_DEFAULT)
    p.add_argument("--n-mc", type=int, default=None,
                   help="Monte-Carlo prompts for errors without a closed form (corr > 0; default 4096)" + _NO_DEFAULT)
    p.add_argument("--sampler", default=None, choices=["auto", "reduced", "core"],
                   help="training features: 'core' draws full prompts; 'reduced' the same feature distribution "
                        "from ~3D+4 numbers per prompt (corr = 0); 'auto' (default) reduced where corr = 0" + _NO_DEFAULT)
    p.add_argument("--out", default="sweep-out", metavar="DIR", help="sweep directory")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: number of CPU cores)" + _NO_DEFAULT)
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run on a Dask distributed scheduler, e.g. tcp://127.0.0.1:8786" + _NO_DEFAULT)
    p.add_argument("--scheduler-timeout", type=float, default=None, metavar="SECONDS",
                   help="seconds to wait for the Dask scheduler before giving up (default 5)" + _NO_DEFAULT)
    p.add_argument("--chunk-size", type=int, default=None, help="points per task (default: automatic)" + _NO_DEFAULT)
    p.add_argument("--resume", action="store_true", help="continue the sweep in --out; finished points are kept")
    p.add_argument("--force", action="store_true", help="replace the sweep in --out and start over (one switch: old or new; your other files are kept)")
    p.add_argument("--repair", action="store_true", help="with --resume: compute damaged point files again "
                                                          "(refused in one line otherwise)")
    p.add_argument("--point-fn", default=None, metavar="MODULE:FUNC",
                   help="custom point function fn(params, observables, **options) -> dict (advanced; a function "
                        "outside spinlens also needs --allow-point-fn)" + _NO_DEFAULT)
    p.add_argument("--allow-point-fn", action="store_true",
                   help="allow a point function outside spinlens (from --point-fn or the config file): it is "
                        "imported and run with your rights, so only for code you trust")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--yes", action="store_true", help="run even if the time estimate is beyond an hour")
    p.add_argument("--json", action="store_true", help="print the run summary (run.json) as JSON on stdout")
    add_strict(p)


def _check_not_foreign(out: str, *, force: bool) -> None:
    """Refuse, before any work, a folder that holds files but no sweep, unless ``--force`` (they are kept)."""
    import os
    from pathlib import Path

    from spinlens.errors import InvalidParameterError

    p = Path(out)
    if force or not p.is_dir() or (p / "sweep.json").exists() or (p / "points").exists():
        return
    others = sorted(e.name for e in os.scandir(p) if e.name != ".lock")
    if others:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise InvalidParameterError(
            f"The '--out' parameter must be a new or empty folder, or a sweep folder. Got {out!r}, which holds "
            f"files that are not a sweep ({shown}); choose another folder or pass --force (they are then kept)."
        )


def run(args: argparse.Namespace) -> int:
    import json

    from spinlens.errors import InvalidParameterError
    from spinlens.sweeps import DEFAULT_OBSERVABLES, PARAMETERS, load_config, make_grid, run_sweep
    from spinlens.sweeps._run import BUILTIN_POINT_FNS

    from ._common import check_out_dir, map_exit

    check_out_dir("--out", args.out)
    _check_not_foreign(args.out, force=args.force)
    if args.config is not None and not args.config.strip():
        raise InvalidParameterError("The 'config' parameter got an empty file name.")
    cfg = load_config(args.config) if args.config else {"grid": {}, "settings": {}}
    grid_spec = dict(cfg["grid"])
    for name in PARAMETERS:
        v = getattr(args, f"grid_{name}")
        if v is not None:
            grid_spec[name] = v
    settings = dict(cfg["settings"])
    allowed = {"observables", "method", "max_iter", "tol", "n_mc", "sampler", "jobs", "scheduler", "scheduler_timeout",
               "chunk_size", "point_fn"}
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise InvalidParameterError(
            f"The 'config' file has unknown keys {unknown}; grid parameters are {', '.join(PARAMETERS)} "
            f"and settings are {sorted(allowed)}."
        )
    for key in allowed:
        v = getattr(args, key, None)
        if v is not None:
            settings[key] = v
    point_fn = settings.get("point_fn")
    if point_fn is not None:
        if not isinstance(point_fn, str):
            raise InvalidParameterError(f"The 'point_fn' setting must be a string 'module:function'. Got {point_fn!r} instead.")
        if point_fn not in BUILTIN_POINT_FNS and not args.allow_point_fn:
            where = "--point-fn" if args.point_fn is not None else f"the 'config' file {args.config!r}"
            raise InvalidParameterError(
                f"The 'point_fn' {point_fn!r} from {where} is not one of spinlens' own point functions "
                f"({', '.join(BUILTIN_POINT_FNS)}); it would be imported and run with your rights: pass "
                "--allow-point-fn if you trust it."
            )
    grid = make_grid(grid_spec)
    obs = settings.get("observables", list(DEFAULT_OBSERVABLES))
    if isinstance(obs, str):
        obs = [o.strip() for o in obs.split(",")]
    if not isinstance(obs, (list, tuple)) or not obs or not all(isinstance(o, str) and o.strip() for o in obs):
        raise InvalidParameterError(f"The 'observables' setting must be a non-empty list of names (or a comma-separated "
                                    f"string) without empty items. Got {settings.get('observables')!r} instead.")
    if args.jobs is not None and args.jobs < 1:
        raise InvalidParameterError(f"The 'jobs' parameter must be an integer >= 1. Got {args.jobs} instead.")
    kwargs = {k: settings[k] for k in ("method", "max_iter", "tol", "n_mc", "sampler", "jobs", "scheduler",
                                       "scheduler_timeout", "chunk_size", "point_fn") if k in settings}
    custom_fn = point_fn if point_fn not in BUILTIN_POINT_FNS else None  # user code, not ours
    from pathlib import Path

    fresh = not Path(args.out).exists()
    try:
        ds = run_sweep(grid, obs, args.out, resume=args.resume, force=args.force, repair=args.repair,
                       progress=not args.no_progress, yes=args.yes, **kwargs)
    except (InvalidParameterError, KeyboardInterrupt, OSError, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - user code: a point function that fails is bad input, not our bug
        if not custom_fn:
            raise
        points = Path(args.out) / "points"
        if fresh and not (points.is_dir() and any(points.iterdir())):  # nothing finished: leave nothing behind
            import shutil

            shutil.rmtree(args.out, ignore_errors=True)
        raise InvalidParameterError(
            f"The 'point_fn' {custom_fn!r} failed: {type(exc).__name__}: {exc}; a point function takes "
            "(params: dict, observables: list, **options) and returns a dict of observables."
        ) from None
    if args.json:
        with open(f"{args.out}/run.json") as f:
            print(json.dumps(json.load(f)))
    conv = ds["converged"].values.astype(bool) if "converged" in ds else None
    n_bad = 0 if conv is None else int((~conv).sum())
    return map_exit("spinlens sweep", n_bad, 0 if conv is None else conv.size, strict=args.strict,
                    mask="the 'converged' mask of results.nc")
