r"""Finite-d simulation of ridge-pretrained reduced linear attention (docs/theory.md, 'Finite-d simulator'), Lu et al. conventions.

Used to test the asymptotic formulas of `spinlens.theory.asymptotic`:

1. draw ``k = round(kappa d)`` pretraining tasks on the sphere ``|w| = √d`` (``kappa = inf``: a fresh task
   per context);
2. for ``n = round(tau d²)`` contexts of length ``ℓ = round(alpha d)`` with ``x ~ N(0, I/d)`` and
   ``y = x·w + ε``, ``ε ~ N(0, rho)``, build ``h = [(d/ℓ)Σ y_i x_i ; (1/ℓ)Σ y_i²]`` and the query ``x_q``;
3. fit ``Γ = argmin Σ_μ (y_q − x_qᵀΓh)² + (n/d)λ‖Γ‖²`` (primal normal equations when ``n ≥ d(d+1)``,
   kernel form with the Gram matrix ``(X_q X_qᵀ)∘(H Hᵀ)`` otherwise; ``λ = 0`` gives least squares /
   the minimum-norm interpolator);
4. evaluate the exact test error of Γ by the trace formula (docs/theory.md) for fresh tasks (ICL) and
   for the pool (IDG) — no Monte-Carlo test set.

Contexts are drawn with an exact O(ℓ + d) sampler: writing ``x_i = a_i u + x_i^⊥`` with ``u = w/|w|``,
``Σ y_i x_i = (Σ y_i a_i) u + sqrt(Σ y_i²) P^⊥ g`` in distribution, with ``g ~ N(0, I/d)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.linalg

from spinlens.errors import check_int
from spinlens.random import RNGLike, as_generator
from spinlens.theory.asymptotic import validate_inputs
from spinlens.verdict import mean_sd

if TYPE_CHECKING:
    from spinlens.theory.results import TheoryRun

__all__ = [
    "SimulationResult",
    "sample_sphere_tasks",
    "sample_contexts",
    "sample_contexts_naive",
    "fit_gamma",
    "exact_error",
    "simulate_point",
    "simulate_run",
]


def sample_sphere_tasks(n_tasks: int, d: int, *, rng: RNGLike = None) -> np.ndarray:
    """``n_tasks`` task vectors uniform on the sphere ``|w| = √d``, shape (n_tasks, d)."""
    n_tasks = check_int("n_tasks", n_tasks, low=1, owner="sample_sphere_tasks")
    d = check_int("d", d, low=1, owner="sample_sphere_tasks")
    g = as_generator(rng).standard_normal((n_tasks, d))
    return g * (math.sqrt(d) / np.linalg.norm(g, axis=1, keepdims=True))


def sample_contexts(w: np.ndarray, n_context: int, rho: float, *, rng: RNGLike = None):
    """Draw one context per row of ``w`` with the exact fast sampler.

    Parameters
    ----------
    w : array of shape (n, d)
        Task of each context.
    n_context : int
        Context length ℓ.
    rho : float
        Label-noise variance.

    Returns
    -------
    x_query : ndarray of shape (n, d)
    h : ndarray of shape (n, d+1)
        ``[(d/ℓ) Σ y_i x_i ; (1/ℓ) Σ y_i²]``.
    y_query : ndarray of shape (n,)
    """
    gen = as_generator(rng)
    w = np.asarray(w, dtype=np.float64)
    n, d = w.shape
    ell = n_context
    norm = np.linalg.norm(w, axis=1)
    u = w / norm[:, None]
    a = gen.standard_normal((n, ell)) / math.sqrt(d)
    y = norm[:, None] * a
    if rho > 0:
        y = y + math.sqrt(rho) * gen.standard_normal((n, ell))
    s1 = np.einsum("ij,ij->i", y, a)
    s2 = np.einsum("ij,ij->i", y, y)
    g = gen.standard_normal((n, d)) / math.sqrt(d)
    g -= np.einsum("ij,ij->i", g, u)[:, None] * u
    yx = s1[:, None] * u + np.sqrt(s2)[:, None] * g
    h = np.empty((n, d + 1))
    h[:, :d] = (d / ell) * yx
    h[:, d] = s2 / ell
    xq = gen.standard_normal((n, d)) / math.sqrt(d)
    yq = np.einsum("ij,ij->i", xq, w)
    if rho > 0:
        yq = yq + math.sqrt(rho) * gen.standard_normal(n)
    return xq, h, yq


def sample_contexts_naive(w: np.ndarray, n_context: int, rho: float, *, rng: RNGLike = None):
    """Same distribution as `sample_contexts`, drawing all ``ℓ`` inputs explicitly (O(ℓ d), for tests)."""
    gen = as_generator(rng)
    w = np.asarray(w, dtype=np.float64)
    n, d = w.shape
    ell = n_context
    X = gen.standard_normal((n, ell + 1, d)) / math.sqrt(d)
    y = np.einsum("nid,nd->ni", X, w)
    if rho > 0:
        y = y + math.sqrt(rho) * gen.standard_normal((n, ell + 1))
    h = np.empty((n, d + 1))
    h[:, :d] = (d / ell) * np.einsum("ni,nid->nd", y[:, :ell], X[:, :ell])
    h[:, d] = (y[:, :ell] ** 2).sum(axis=1) / ell
    return X[:, ell], h, y[:, ell]


def fit_gamma(x_query: np.ndarray, h: np.ndarray, y_query: np.ndarray, lam_lu: float) -> np.ndarray:
    """Ridge fit ``Γ = argmin Σ (y_q − x_qᵀΓh)² + (n/d) λ ‖Γ‖_F²`` of shape (d, d+1).

    Uses the primal normal equations when ``n ≥ d(d+1)`` and the kernel (dual) form with Gram matrix
    ``(X_q X_qᵀ) ∘ (H Hᵀ)`` otherwise; ``lam_lu = 0`` gives least squares (``n ≥ p``) or the minimum-norm
    interpolator (``n < p``).
    """
    n, d = x_query.shape
    p = d * (d + 1)
    reg = (n / d) * lam_lu
    if n >= p:
        G = np.zeros((p, p))
        b = np.zeros(p)
        bs = max(1, min(n, 4_000_000 // p))
        for s in range(0, n, bs):
            F = (x_query[s : s + bs, :, None] * h[s : s + bs, None, :]).reshape(-1, p)
            G += F.T @ F
            b += F.T @ y_query[s : s + bs]
        G[np.diag_indices(p)] += reg
        try:
            vec = scipy.linalg.solve(G, b, assume_a="pos")
        except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
            vec = scipy.linalg.lstsq(G, b)[0]
        return vec.reshape(d, d + 1)
    K = (x_query @ x_query.T) * (h @ h.T)
    K[np.diag_indices(n)] += reg
    try:
        coef = scipy.linalg.solve(K, y_query, assume_a="pos")
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
        coef = scipy.linalg.lstsq(K, y_query)[0]
    return x_query.T @ (coef[:, None] * h)


def exact_error(gamma: np.ndarray, rho: float, n_context: int, pool: np.ndarray | None = None) -> float:
    r"""Exact test error of Γ for tasks on the sphere (trace formula, docs/theory.md).

    :math:`e = 1+\rho-\tfrac2d\operatorname{tr}(\Gamma A)+\tfrac1d\operatorname{tr}(\Gamma^\top\Gamma B)`.

    Parameters
    ----------
    gamma : array of shape (d, d+1)
    rho : float
        Noise variance.
    n_context : int
        Context length ℓ.
    pool : array of shape (k, d) or None
        Test tasks, uniform over the pool (IDG, rows must have ``|w|² = d``); ``None``: fresh tasks
        (ICL, ``E[w]=0``, ``E[wwᵀ]=I``).
    """
    d = gamma.shape[0]
    ell = n_context
    if pool is None:
        mu = np.zeros(d)
        R = np.eye(d)
    else:
        pool = np.asarray(pool, dtype=np.float64)
        mu = pool.mean(axis=0)
        R = pool.T @ pool / pool.shape[0]
    A = np.vstack([R, (1 + rho) * mu[None, :]])
    B = np.empty((d + 1, d + 1))
    B[:d, :d] = (1 + 1 / ell) * R + ((1 + rho) * d / ell) * np.eye(d)
    B[:d, d] = B[d, :d] = (1 + rho) * (1 + 2 / ell) * mu
    B[d, d] = (1 + rho) ** 2 * (1 + 2 / ell)
    return float(1 + rho - (2 / d) * np.trace(gamma @ A) + (1 / d) * np.sum((gamma @ B) * gamma))


@dataclass(frozen=True)
class SimulationResult:
    """Finite-d errors of one ridge-pretrained Γ (averaged over ``n_repeats``).

    Attributes
    ----------
    icl_error, idg_error, g_task : float
        Means over repeats (``idg_error = icl_error`` in expectation for ``kappa = inf``; it is then
        evaluated on fresh sphere tasks).
    icl_sd, idg_sd : float
        Standard deviations over repeats (`spinlens.verdict.mean_sd`: ddof 1, 0 for one repeat).
    d, n_context, n_prompts, n_tasks : int
        Realised sizes (``n_tasks = -1`` for a fresh task per context).
    alpha, tau, kappa, rho, lam_lu : float
        Nominal theory parameters.
    n_repeats : int
    """

    icl_error: float
    idg_error: float
    g_task: float
    icl_sd: float
    idg_sd: float
    d: int
    n_context: int
    n_prompts: int
    n_tasks: int
    alpha: float
    tau: float
    kappa: float
    rho: float
    lam_lu: float
    n_repeats: int

    def to_dict(self) -> dict:
        return asdict(self)


def simulate_point(
    d: int,
    alpha: float,
    tau: float,
    kappa: float = math.inf,
    rho: float = 0.0,
    lam_lu: float = 0.0,
    *,
    n_repeats: int = 1,
    rng: RNGLike = None,
) -> SimulationResult:
    """Simulate pretraining at finite ``d`` and return the exact ICL/IDG errors of the fitted Γ.

    Parameters
    ----------
    d : int
        Dimension (``>= 2``); the fit solves a ``d(d+1)``-dimensional ridge problem.
    alpha, tau, kappa, rho, lam_lu : float
        As in `spinlens.theory.learning_curve_point`; ``ℓ = round(alpha d)``, ``n = round(tau d²)``,
        ``k = round(kappa d)``.
    n_repeats : int, default 1
        Independent pools and pretraining sets.
    rng : None, int or Generator
        Randomness (keyword-only).

    Returns
    -------
    SimulationResult
    """
    a, t, k, r, lm = validate_inputs(alpha, tau, kappa, rho, lam_lu, owner="simulate_point")
    d = check_int("d", d, low=2, owner="simulate_point")
    n_repeats = check_int("n_repeats", n_repeats, low=1, owner="simulate_point")
    ell = max(1, round(a * d))
    n = max(1, round(t * d * d))
    n_tasks = -1 if k == math.inf else max(1, round(k * d))
    gen = as_generator(rng)
    icl, idg = [], []
    for _ in range(n_repeats):
        if n_tasks == -1:
            w = sample_sphere_tasks(n, d, rng=gen)
            pool = None
        else:
            pool = sample_sphere_tasks(n_tasks, d, rng=gen)
            w = pool[gen.integers(0, n_tasks, size=n)]
        xq, h, yq = sample_contexts(w, ell, r, rng=gen)
        gamma = fit_gamma(xq, h, yq, lm)
        e_icl = exact_error(gamma, r, ell)
        icl.append(e_icl)
        idg.append(e_icl if pool is None else exact_error(gamma, r, ell, pool))
    icl_a, idg_a = np.array(icl), np.array(idg)
    return SimulationResult(
        icl_error=float(icl_a.mean()),
        idg_error=float(idg_a.mean()),
        g_task=float((icl_a - idg_a).mean()),
        icl_sd=mean_sd(icl_a)[1],
        idg_sd=mean_sd(idg_a)[1],
        d=d,
        n_context=ell,
        n_prompts=n,
        n_tasks=n_tasks,
        alpha=a,
        tau=t,
        kappa=k,
        rho=r,
        lam_lu=lm,
        n_repeats=n_repeats,
    )


def simulate_run(d: int | float, alpha: float, tau: float, kappa: float = math.inf, rho: float = 0.0, lam_lu: float = 0.0, *,
                 n_repeats: int | float = 1, seed: int = 0) -> TheoryRun:
    """`simulate_point` next to the asymptotic theory at the same point, as a
    `spinlens.theory.results.TheoryRun` (mode ``"simulate"``).

    ``summary``: the validated ``alpha, tau, kappa, rho, lam_lu``, then ``D, seed, n_repeats, N, P, K``,
    ``sim_icl_error, sim_idg_error, sim_icl_sd, sim_idg_sd`` (the simulation), ``icl_error, idg_error, converged``
    (the theory); ``converged`` and ``message`` are the theory's.
    """
    from spinlens.theory.asymptotic import _point
    from spinlens.theory.results import TheoryRun
    from spinlens.vocabulary import to_symbols

    a, t, k, r, lm = validate_inputs(alpha, tau, kappa, rho, lam_lu)
    params = {"alpha": a, "tau": t, "kappa": k, "rho": r, "lam_lu": lm}
    d = check_int("--D", d, low=2, high=200)
    reps = check_int("repeats", n_repeats, low=1, high=1000)
    sim = simulate_point(d, **params, n_repeats=reps, rng=seed)
    th = _point(**params)
    out = dict(params)
    out.update(
        d=d, seed=seed, n_repeats=reps, n_context=sim.n_context, n_prompts=sim.n_prompts, n_tasks=sim.n_tasks,
        sim_icl_error=sim.icl_error, sim_idg_error=sim.idg_error, sim_icl_sd=sim.icl_sd, sim_idg_sd=sim.idg_sd,
        icl_error=th.icl_error, idg_error=th.idg_error, converged=th.converged,
    )
    # D, N, P, K: the keys of docs/vocabulary.md
    return TheoryRun("simulate", to_symbols(out), converged=bool(th.converged), message=th.message)
