"""Prompt-distribution flags shared by `spinlens prompts`, `solve` and `train`."""

from __future__ import annotations


class _Default(int):
    """An int default that remembers it was not typed (a typed value is a plain int): --D/--N/--P that
    contradict a --data file are refused, the defaults are not."""


def add_prompt_args(p, *, data: bool = True, P_default: int = 2000):
    g = p.add_argument_group("prompts")
    g.add_argument("--D", "--token-dim", type=int, default=_Default(10), help="token dimension D (>= 1)")
    g.add_argument("--N", "--context-length", type=int, default=_Default(50), help="context length N (>= 1)")
    g.add_argument("--P", "--train-prompts", type=int, default=_Default(P_default), help="number of pretraining prompts P (>= 1)")
    g.add_argument("--K", "--task-pool", type=int, default=None, help="finite task pool size (default: a fresh task per prompt)")
    g.add_argument("--sigma-x", "--input-std", type=float, default=1.0, help="std of input coordinates (> 0)")
    g.add_argument("--sigma-w", "--task-std", type=float, default=1.0, help="std of task coordinates (> 0)")
    g.add_argument("--sigma-eps", "--noise-std", type=float, default=0.0, help="label-noise std (>= 0)")
    g.add_argument("--corr", "--position-corr", type=float, default=0.0, help="correlation between positions, in [0, 1)")
    g.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    if data:
        g.add_argument("--data", default=None, metavar="PROMPTS.npz",
                       help="prompts from a file (keys Z, y, optionally w) instead of sampling; D and N are read from it")
    return g


def distribution_from_args(args, *, d=None, n_context=None):
    from spinlens.errors import check_int
    from spinlens.prompts import distribution_from_options

    check_int("--seed", args.seed, low=0)
    return distribution_from_options(d=args.D if d is None else d, n_context=args.N if n_context is None else n_context,
                                     sigma_x=args.sigma_x, sigma_w=args.sigma_w, sigma_eps=args.sigma_eps,
                                     corr=args.corr, n_tasks=args.K)


def check_data_agrees(args, prompts) -> None:
    """Refuse --D, --N or --P given together with --data when the file says otherwise (never ignored silently)."""
    from spinlens.errors import InvalidParameterError

    for flag, attr, value in (("--D", "D", prompts.d), ("--N", "N", prompts.n_context),
                              ("--P", "P", prompts.n_prompts)):
        given = getattr(args, attr, None)
        if given is not None and not isinstance(given, _Default) and given != value:
            raise InvalidParameterError(f"The '{flag}' parameter ({given}) contradicts the --data file, whose prompts "
                                        f"have {attr}={value}; drop {flag} (it is read from the file).")


def prompts_from_args(args, rng):
    """(distribution, prompts): from --data when given, else sampled with --P (refused before allocating when it
    does not fit in memory)."""
    from spinlens.prompts import load_prompts, sample_prompts

    if getattr(args, "data", None):
        prompts = load_prompts(args.data)
        check_data_agrees(args, prompts)
        dist = distribution_from_args(args, d=prompts.d, n_context=prompts.n_context)
        return dist, prompts
    dist = distribution_from_args(args)
    return dist, sample_prompts(dist, args.P, rng=rng)
