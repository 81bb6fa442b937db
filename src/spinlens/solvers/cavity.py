r"""The cavity method (message passing) of Li, Bai & Huang, exactly as published, vectorised.

Jacobi updates with damping θ:

.. math::
    m_i \leftarrow \frac{\beta (h_i + \sum_{j\ne i} J_{ij} m_j)}{\beta\lambda_i - \beta^2 \sum_{j\ne i} J_{ij}^2 v_j},
    \qquad v_i \leftarrow \frac{1}{\beta\lambda_i - \beta^2 \sum_{j\ne i} J_{ij}^2 v_j},

new = θ·old + (1−θ)·update, stopping when the mean squared change of m plus that of v (before damping)
is below ``tol``, or after ``max_iter`` steps. The initial (m, v) are standard normal draws (the
published code) or zeros.

This update has no Onsager reaction term in the numerator, so its fixed point is *not* the exact
Boltzmann mean (a ridge solution with a weaker effective λ); the result reports the relative distance
to the exact mean in ``extras["exact_distance"]`` (docs/paper-notes.md). When the variance equation has no
positive solution the iteration diverges: the result then has ``converged=False`` and the last finite
iterate, never NaN.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

import dataclasses
import math

from ..errors import InvalidParameterError, SolverDidNotConvergeWarning, check_choice, check_float, check_int
from ..random import RNGLike, as_generator
from .result import SolverResult


class CavitySolver:
    """The paper's message passing.

    Parameters
    ----------
    damping : float in [0, 1)
        θ: new = θ old + (1−θ) update (paper: 0.9).
    max_iter : int >= 1
        Step cap (paper: 100).
    tol : float > 0
        Threshold on the mean squared change of m plus that of v (paper: 1e-6).
    init : {"random", "zeros"}
        Initial messages: standard normal (as published; drawn from ``rng``) or zeros.
    compare_exact : bool
        Also compute the exact Boltzmann mean and report the relative distance (``extras``).
    """

    def __init__(self, damping=0.9, max_iter=100, tol=1e-6, init="random", compare_exact=True):
        own = "CavitySolver"
        self.damping = check_float("damping", damping, low=0.0, high=1.0, high_open=True, owner=own)
        self.max_iter = check_int("max_iter", max_iter, low=1, owner=own)
        self.tol = check_float("tol", tol, low=0.0, low_open=True, owner=own)
        self.init = check_choice("init", init, ("random", "zeros"), owner=own)
        self.compare_exact = bool(compare_exact)

    def solve(self, H, *, beta: float = 100.0, rng: RNGLike = None, warn: bool = True) -> SolverResult:
        beta = check_float("beta", beta, low=0.0, low_open=True, owner="CavitySolver")
        t0 = time.perf_counter()
        K = H.n_spins
        g = as_generator(rng)
        if self.init == "random":
            m0 = g.standard_normal(K)
            v0 = g.standard_normal(K)
        else:
            m0 = np.zeros(K)
            v0 = np.zeros(K)
        st = cavity_iterate(
            H.gram(), H.h, H.lam_diag, beta=beta, damping=self.damping, max_iter=self.max_iter, tol=self.tol, m0=m0, v0=v0
        )
        m, v, n_iter, err, converged = st.m, st.v, st.n_iter, st.err, st.converged
        n_neg = int(np.sum(v <= 0))
        message = {
            "converged": f"converged: mean squared change {err:.3g} < tol={self.tol:g}",
            "diverged": f"diverged at step {n_iter + 1}: messages overflow (the variance equation has no positive solution)",
            "nonpositive": f"stopped at a fixed point with {n_neg} non-positive variances (not a valid Gaussian measure)",
            "max_iter": f"reached max_iter={self.max_iter} without meeting tol={self.tol:g}"
            + (f"; {n_neg} variances are non-positive" if n_neg else ""),
        }[st.status]
        extras: dict = {}
        if self.compare_exact:
            from .exact import ExactSolver

            ex = ExactSolver(n_probes=0).solve(H, beta=beta)
            m_ex = ex.m.reshape(-1)
            extras["exact_distance"] = float(np.linalg.norm(m - m_ex) / max(np.linalg.norm(m_ex), 1e-300))
        if not converged and warn:
            warnings.warn(f"cavity: {message}", SolverDidNotConvergeWarning, stacklevel=2)
        D1 = H.d + 1
        return SolverResult(
            W=m.reshape(D1, D1),
            m=m.reshape(D1, D1).copy(),
            v=v.reshape(D1, D1),
            n_iter=int(n_iter),
            residual=float(err),
            converged=bool(converged),
            message=message,
            seconds=time.perf_counter() - t0,
            method="cavity",
            beta=beta,
            extras=extras,
        )


@dataclasses.dataclass(frozen=True)
class CavityState:
    """Output of `cavity_iterate`: messages (n_spins,), steps taken, last mean squared change, status.

    ``status`` is "converged", "max_iter", "diverged" (overflow; m, v are the last finite iterate) or
    "nonpositive" (the change fell below tol with some variances ≤ 0).
    """

    m: np.ndarray
    v: np.ndarray
    n_iter: int
    err: float
    status: str

    @property
    def converged(self) -> bool:
        return self.status == "converged"


def cavity_iterate(A, h, lam_diag, *, beta: float, damping: float, max_iter: int, tol: float,
                   m0: np.ndarray, v0: np.ndarray, kernel: str = "symv") -> CavityState:
    """The damped cavity iteration (the loop of `CavitySolver`), on plain arrays.

    Parameters
    ----------
    A : ndarray of shape (n_spins, n_spins)
        The Gram matrix SᵀS/P (= −J).
    h, lam_diag : ndarray of shape (n_spins,)
        Fields and self-couplings λ_i = λ − J_ii.
    beta, damping, max_iter, tol : as in `CavitySolver`.
    m0, v0 : initial messages, shape (n_spins,).
    kernel : {"symv", "gemv"}
        "symv" (default) uses BLAS ``dsymv``, which reads one triangle of the symmetric J₀ and J₀∘J₀:
        about 3x faster per step than "gemv" (plain ``@``), the loop being memory-bound. The two differ
        by rounding only; where the paper's loose stopping rule fires the iterate still carries slowly
        growing modes that amplify it, to ~1e-6 relative in W at D = 20.
    """
    J0 = -np.asarray(A, dtype=float)  # a fresh array: A is not modified
    np.fill_diagonal(J0, 0.0)
    J2 = J0 * J0
    if kernel == "symv":
        from scipy.linalg.blas import dsymv

        J0f, J2f = J0.T, J2.T  # symmetric: the transposes are the same matrices in Fortran order

        def mv0(x):
            return dsymv(1.0, J0f, x)

        def mv2(x):
            return dsymv(1.0, J2f, x)
    elif kernel == "gemv":
        def mv0(x):
            return J0 @ x

        def mv2(x):
            return J2 @ x
    else:
        raise InvalidParameterError(f"The 'kernel' parameter of cavity_iterate must be one of {{'symv', 'gemv'}}. Got {kernel!r} instead.")
    m, v = np.array(m0, dtype=float), np.array(v0, dtype=float)
    theta, one_m = damping, 1.0 - damping
    bl, bb = beta * np.asarray(lam_diag), beta * beta
    err, n_iter, status = math.inf, 0, "max_iter"
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for n_iter in range(1, max_iter + 1):
            denom = bl - bb * mv2(v)
            m_new = beta * (h + mv0(m)) / denom
            v_new = 1.0 / denom
            e = float(np.mean((m_new - m) ** 2) + np.mean((v_new - v) ** 2))
            if not e <= 1e300:  # non-finite or overflowing messages: keep the last finite iterate
                n_iter -= 1
                status = "diverged"
                break
            err = e
            m = theta * m + one_m * m_new
            v = theta * v + one_m * v_new
            if err < tol:
                status = "converged" if bool(np.all(v > 0)) else "nonpositive"
                break
    return CavityState(m=m, v=v, n_iter=int(n_iter), err=float(err), status=status)
