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
    from spinlens.errors import check_float, check_int
    from spinlens.prompts import PromptDistribution

    check_int("--seed", args.seed, low=0)
    # (D+1)^2 spins: D beyond 10^4 is 10^8 spins and more, far past what any solver or model here can hold
    d = check_int("--D", args.D if d is None else d, low=1, high=10_000)
    n_context = check_int("--N", args.N if n_context is None else n_context, low=1, high=10**7)
    K = None if args.K is None else check_int("--K", args.K, low=1, high=10**12)
    return PromptDistribution(
        d=d,
        n_context=n_context,
        # scales beyond 1e±30 overflow float64 in the sixth powers of the theory (σ_x⁶σ_w²) and in E(W)
        sigma_x=check_float("--sigma-x", args.sigma_x, low=1e-30, high=1e30),
        sigma_w=check_float("--sigma-w", args.sigma_w, low=1e-30, high=1e30),
        sigma_eps=check_float("--sigma-eps", args.sigma_eps, low=0, high=1e30),
        corr=check_float("--corr", args.corr, low=0, high=1, high_open=True),
        n_tasks=K,
    )


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
    """(distribution, prompts): from --data when given, else sampled with --P."""
    from spinlens.errors import check_int
    from spinlens.prompts import load_prompts

    if getattr(args, "data", None):
        prompts = load_prompts(args.data)
        check_data_agrees(args, prompts)
        dist = distribution_from_args(args, d=prompts.d, n_context=prompts.n_context)
        return dist, prompts
    dist = distribution_from_args(args)
    P = check_int("--P", args.P, low=1)
    check_prompts_memory(dist, P)
    # the batches `spinlens solve --sampler core` streams with the same generator (one batch when P <= 4096)
    return dist, dist.sample_batched(P, rng=rng)


def check_prompts_memory(dist, n_prompts: int) -> None:
    """Refuse, before allocating, P prompts that do not fit in memory (the budget of `spinlens.memory`).

    The prompts are drawn in batches and joined: Z (P, D+1, N+1), y (P,), w (P, D) in float64, twice at the peak.
    """
    from spinlens.errors import InvalidParameterError
    from spinlens.memory import BASE_BYTES, GIB, SAFETY, available_memory

    d, n = dist.d, dist.n_context
    need = BASE_BYTES + 2 * 8 * int(n_prompts) * ((d + 1) * (n + 1) + d + 1)
    avail = available_memory()
    if need > SAFETY * avail:
        raise InvalidParameterError(
            f"The '--P' parameter asks for {n_prompts} prompts at D={d}, N={n}: about {need / GIB:.2f} GiB, but only "
            f"{avail / GIB:.2f} GiB is available (a job may use {SAFETY:.0%} of it); use a smaller --P, D or N."
        )
