"""The work done at one grid point: sample prompts, build the Hamiltonian, solve, measure.

`compute_point` is a pure function of the point's parameters (its random stream derives from them via
`point_seed_sequence`), so a point gives the same numbers whichever worker runs it, in whatever order.
"""

from __future__ import annotations

import math
import time

import numpy as np

from spinlens.errors import InvalidParameterError

from ._grid import point_seed_sequence

__all__ = ["OBSERVABLES", "check_observables", "compute_point", "DEFAULT_OBSERVABLES"]

#: name -> (long_name, units, needs a converged solution, dtype)
OBSERVABLES: dict[str, tuple[str, str, bool, str]] = {
    "test_error": ("ICL test error on fresh tasks, E(y - ŷ)²", "1", True, "float64"),
    "pool_error": ("error on the pretraining tasks (fresh inputs), E(y - ŷ)²", "1", True, "float64"),
    "train_error": ("training error, mean over prompts (y - ŷ)²", "1", True, "float64"),
    "contrast_ratio": ("contrast ratio <W, I>_F / (|W|_F |I|_F)", "1", True, "float64"),
    "zero_mode_fraction": ("fraction of zero modes of S^T S / P", "1", False, "float64"),
    "overlap": ("cosine overlap of W with the infinite-diversity solution W*", "1", True, "float64"),
    "exact_distance": ("relative distance |W - W_exact|_F / |W_exact|_F", "1", True, "float64"),
    "converged": ("solver converged", "bool", False, "bool"),
    "n_iter": ("solver iterations", "1", False, "int64"),
    "residual": ("solver final residual", "1", False, "float64"),
    "elapsed_s": ("wall time of the point", "s", False, "float64"),
}

DEFAULT_OBSERVABLES = ("contrast_ratio", "test_error", "n_iter")

METHODS = ("cavity", "exact", "tap")


def check_observables(observables) -> list[str]:
    """Validate a list (or comma-separated string) of observable names; 'converged' is always added."""
    if isinstance(observables, str):
        observables = [o.strip() for o in observables.split(",") if o.strip()]
    if not isinstance(observables, (list, tuple)) or not all(isinstance(o, str) for o in observables):
        raise InvalidParameterError(
            f"The 'observables' parameter must be a list of names or a comma-separated string. Got {observables!r} instead."
        )
    obs = list(dict.fromkeys("elapsed_s" if o == "wall_time" else o for o in observables))  # wall_time: old name
    if not obs:
        raise InvalidParameterError(f"The 'observables' parameter needs at least one of {', '.join(OBSERVABLES)}.")
    for o in obs:
        if o not in OBSERVABLES:
            raise InvalidParameterError(
                f"The 'observables' parameter got unknown observable {o!r}; allowed: {', '.join(OBSERVABLES)}."
            )
    if "converged" not in obs:
        obs.append("converged")
    return obs


def estimate_point_bytes(params: dict, sampler: str = "auto", method: str = "cavity") -> int:
    """The peak memory of `compute_point` at one point, in bytes: `spinlens.memory.estimate_memory` for the
    point's (D, N, P), method and resolved sampler (the core sampler when the positions are correlated)."""
    from spinlens.memory import estimate_memory

    core = sampler == "core" or (sampler == "auto" and float(params.get("corr", 0.0)) != 0.0)
    return estimate_memory(method, d=int(params["D"]), n_context=int(params["N"]), n_prompts=int(params["P"]),
                           sampler="core" if core else "reduced").bytes


def _cosine(A, B) -> float:
    a = np.asarray(A, dtype=float).ravel()
    b = np.asarray(B, dtype=float).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return math.nan
    return float(a @ b / (na * nb))


SAMPLERS = ("auto", "reduced", "core")


def compute_point(
    params: dict,
    observables,
    *,
    method: str = "cavity",
    max_iter: int = 100,
    tol: float = 1e-6,
    n_mc: int = 4096,
    sampler: str = "auto",
) -> dict:
    """Compute the requested observables at one grid point.

    Parameters
    ----------
    params : dict
        The point: ``D, N, P, K, lam, beta, damping, corr, sigma_eps, seed`` (short names of
        `spinlens.sweeps.PARAMETERS`; K = None for a fresh task per prompt).
    observables : list of str
        Names from `OBSERVABLES`. W-dependent observables are NaN when the solver did not converge.
    method : {"cavity", "exact", "tap"}
        The solver giving W (cavity: the paper's damped message passing with ``damping``, ``max_iter``,
        ``tol``, random initial messages; tap: the same plus the Onsager reaction term (`spinlens.solvers.TapSolver`);
        exact: the Boltzmann mean, i.e. the ridge solution).
    max_iter, tol : cavity stopping rule (paper: 100 steps, mean squared change < 1e-6).
    n_mc : int
        Monte-Carlo prompts for test/pool errors when no closed form applies (corr > 0).
    sampler : {"auto", "reduced", "core"}
        How the point's training features are drawn, streamed in batches (`spinlens.features.stream_features`).
        "core": `PromptDistribution.sample` then `spin_features` (all D(N+2) numbers of each prompt). "reduced": the same distribution of
        features from about 3D+4 numbers per prompt (`spinlens.features.sample_reduced_features`; needs
        corr = 0). "auto" (default): reduced where corr = 0, core otherwise.

    Returns
    -------
    dict
        {observable: value} for every requested observable, plus ``converged``, ``n_iter``,
        ``residual`` and ``elapsed_s`` (always).

    Notes
    -----
    Random streams: the point's `~numpy.random.SeedSequence` (from its seed and a hash of its other
    parameters) spawns three children: training features, solver initialisation, Monte-Carlo test
    prompts. Adding an observable therefore never changes the features or W of a point.
    The cavity iteration is `spinlens.solvers.cavity.cavity_iterate`, the loop of
    `spinlens.solvers.CavitySolver` with ``init="random"`` and the same generator.

    Examples
    --------
    >>> from spinlens.sweeps import make_grid
    >>> p = next(make_grid({"D": 5, "N": 20, "P": 400}).points())
    >>> r = compute_point(p, ["contrast_ratio"])
    >>> r["converged"], round(r["contrast_ratio"], 2)  # doctest: +SKIP
    (True, 0.7)
    """
    from spinlens import limit
    from spinlens import observables as obs_mod
    from spinlens.features import resolve_sampler, stream_features
    from spinlens.hamiltonian import build_hamiltonian
    from spinlens.prompts import PromptDistribution
    from spinlens.solvers import ExactSolver
    from spinlens.solvers.cavity import cavity_iterate

    t0 = time.perf_counter()
    observables = check_observables(observables)
    if method not in METHODS:
        raise InvalidParameterError(f"The 'method' parameter must be one of {METHODS}. Got {method!r} instead.")
    ss_prompts, ss_solver, ss_mc = point_seed_sequence(params).spawn(3)
    dist = PromptDistribution(
        d=params["D"],
        n_context=params["N"],
        sigma_eps=params["sigma_eps"],
        corr=params["corr"],
        n_tasks=params["K"],
    )
    g = np.random.default_rng(ss_prompts)
    kind = resolve_sampler(sampler, dist)
    keep = "pool_error" in observables and dist.n_tasks is None
    fs = stream_features(dist, params["P"], rng=g, sampler=kind, keep_tasks=keep)
    feats, y, w, pool = fs.features, fs.y, fs.w, fs.pool
    H = build_hamiltonian(feats, y, l2_strength=params["lam"])
    beta = float(params["beta"])
    exact_W = None
    if method in ("cavity", "tap"):
        gs = np.random.default_rng(ss_solver)
        K = H.n_spins
        m0 = gs.standard_normal(K)  # the initial messages of CavitySolver(init="random")
        v0 = gs.standard_normal(K)
        H.pair_gram()  # first: the diagonal and the couplings are read off it
        st = cavity_iterate(
            H, H.h, H.lam_diag, beta=beta, damping=float(params["damping"]), max_iter=max_iter, tol=tol,
            m0=m0, v0=v0, reaction=method == "tap",
        )
        W = st.m.reshape(H.d + 1, H.d + 1)
        n_iter, residual, converged = st.n_iter, st.err, st.converged
    else:
        res = ExactSolver().solve(H, beta=beta, rng=np.random.default_rng(ss_solver))
        W, n_iter, converged, residual = np.asarray(res.W, dtype=float), res.n_iter, bool(res.converged), res.residual
        exact_W = W
    converged = bool(converged) and bool(np.all(np.isfinite(W)))
    out: dict = {"converged": converged, "n_iter": int(n_iter), "residual": float(residual)}
    nan = math.nan
    for name in observables:
        if name in out or name == "elapsed_s":
            continue
        needs_w = OBSERVABLES[name][2]
        if needs_w and not converged:
            out[name] = nan
            continue
        if name == "test_error":
            out[name] = float(obs_mod.test_error(W, dist, rng=np.random.default_rng(ss_mc), n_mc=n_mc))
        elif name == "pool_error":
            tasks = pool if pool is not None else w
            out[name] = float(obs_mod.pool_error(W, dist, tasks, rng=np.random.default_rng(ss_mc), n_mc=n_mc))
        elif name == "train_error":
            out[name] = float(np.mean((y - feats.predict(W)) ** 2))
        elif name == "contrast_ratio":
            out[name] = float(obs_mod.contrast_ratio(W))
        elif name == "zero_mode_fraction":
            out[name] = float(obs_mod.zero_mode_fraction(obs_mod.hessian_spectrum(H)))
        elif name == "overlap":
            if dist.corr != 0.0:
                out[name] = nan  # W* has a closed form only for independent positions
            else:
                out[name] = _cosine(W, limit.infinite_diversity_solution(dist, params["lam"]))
        elif name == "exact_distance":
            if exact_W is None:
                exact_W = ExactSolver(n_probes=0).solve(H, beta=beta).W
            ex = np.asarray(exact_W, dtype=float)
            out[name] = float(np.linalg.norm(W - ex) / max(float(np.linalg.norm(ex)), 1e-300))
    out["elapsed_s"] = time.perf_counter() - t0
    return out
