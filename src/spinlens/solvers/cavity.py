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
to the exact mean in ``extras["exact_distance"]`` (BRIEF.md §1). When the variance equation has no
positive solution the iteration diverges: the result then has ``converged=False`` and the last finite
iterate, never NaN.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from ..errors import SolverDidNotConvergeWarning, check_choice, check_float, check_int
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
        A = H.gram()  # SᵀS/P = −J
        lam = H.lam_diag
        h = H.h
        # off-diagonal parts: J0 = J with zero diagonal; J2 = J0∘J0
        J0 = -A.copy()
        np.fill_diagonal(J0, 0.0)
        J2 = J0 * J0
        g = as_generator(rng)
        if self.init == "random":
            m = g.standard_normal(K)
            v = g.standard_normal(K)
        else:
            m = np.zeros(K)
            v = np.zeros(K)
        theta = self.damping
        err = np.inf
        n_iter = 0
        converged = False
        message = f"reached max_iter={self.max_iter} without meeting tol={self.tol:g}"
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for n_iter in range(1, self.max_iter + 1):
                denom = beta * lam - beta * beta * (J2 @ v)
                m_new = beta * (h + J0 @ m) / denom
                v_new = 1.0 / denom
                if not (np.all(np.isfinite(m_new)) and np.all(np.isfinite(v_new))):
                    message = f"diverged at step {n_iter}: non-finite messages (variance equation has no positive solution)"
                    n_iter -= 1
                    break
                err = float(np.mean((m_new - m) ** 2) + np.mean((v_new - v) ** 2))
                m_next = theta * m + (1 - theta) * m_new
                v_next = theta * v + (1 - theta) * v_new
                if not (np.all(np.isfinite(m_next)) and np.all(np.isfinite(v_next))) or err > 1e300:
                    message = f"diverged at step {n_iter}: messages overflow"
                    n_iter -= 1
                    break
                m, v = m_next, v_next
                if err < self.tol:
                    if np.all(v > 0):
                        converged = True
                        message = f"converged: mean squared change {err:.3g} < tol={self.tol:g}"
                    else:
                        message = f"stopped at a fixed point with {int(np.sum(v <= 0))} non-positive variances (not a valid Gaussian measure)"
                    break
        if not converged and n_iter == self.max_iter and np.any(v <= 0):
            message += f"; {int(np.sum(v <= 0))} variances are non-positive"
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
