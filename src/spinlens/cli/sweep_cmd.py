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


def run(args: argparse.Namespace) -> int:
    import json

    from spinlens.sweeps import PARAMETERS, sweep_run
    from spinlens.sweeps._run import SETTINGS

    from ._common import map_exit

    ds = sweep_run(args.out, config=args.config, grid={name: getattr(args, f"grid_{name}") for name in PARAMETERS},
                   settings={key: getattr(args, key, None) for key in SETTINGS}, allow_point_fn=args.allow_point_fn,
                   resume=args.resume, force=args.force, repair=args.repair, progress=not args.no_progress,
                   yes=args.yes)
    if args.json:
        with open(f"{args.out}/run.json") as f:
            print(json.dumps(json.load(f)))
    conv = ds["converged"].values.astype(bool) if "converged" in ds else None
    n_bad = 0 if conv is None else int((~conv).sum())
    return map_exit("spinlens sweep", n_bad, 0 if conv is None else conv.size, strict=args.strict,
                    mask="the 'converged' mask of results.nc")
