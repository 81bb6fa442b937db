"""The P → ∞ limit (infinite task diversity) as a solver: the closed form of `spinlens.limit`."""

from __future__ import annotations

import numpy as np

from ..errors import InvalidParameterError, check_float
from .base import RunOutput, Solver


class LimitSolver(Solver):
    """Solve the P → ∞ Hamiltonian E_∞(W) = ½E(y − s·W)² + λ/2‖W‖² in closed form (isotropic prompts).

    Its Hessian E[ssᵀ] + λ is diagonal, so the Boltzmann measure factorises: mean
    W* = `spinlens.limit.infinite_diversity_solution` and variances 1/(β(λ + E[s_i²])) (infinite where
    λ = 0 and E[s_i²] = 0). There is no P, no training set and no train error: the result has
    ``n_prompts=None``.

    Parameters
    ----------
    distribution : PromptDistribution
        The prompt law (``corr == 0``).
    l2_strength : float, optional
        λ; taken from the Hamiltonian when `solve` is given one (only its λ and D are used).

    Examples
    --------
    >>> from spinlens import PromptDistribution
    >>> r = LimitSolver(PromptDistribution(d=4, n_context=20), l2_strength=0.01).solve(None)
    >>> r.n_prompts is None, r.m.shape
    (True, (5, 5))
    """

    method = "limit"

    def __init__(self, distribution, l2_strength: float | None = None):
        from ..limit import _require_isotropic

        _require_isotropic(distribution)
        self.distribution = distribution
        self.l2_strength = None if l2_strength is None else check_float("l2_strength", l2_strength, low=0.0, owner="LimitSolver")

    def _lam(self, H) -> float:
        if H is not None:
            if H.d != self.distribution.d:
                raise InvalidParameterError(f"LimitSolver: the Hamiltonian has D = {H.d}, the distribution d = {self.distribution.d}.")
            return float(H.l2_strength)
        if self.l2_strength is None:
            raise InvalidParameterError("LimitSolver needs 'l2_strength' when solve() is given no Hamiltonian.")
        return self.l2_strength

    def _shape(self, H):
        return (self.distribution.d + 1, self.distribution.d + 1)

    def _n_prompts(self, H):
        return None

    def _run(self, H, beta, rng):
        from ..limit import infinite_diversity_solution, moments

        lam = self._lam(H)
        W = infinite_diversity_solution(self.distribution, lam)
        den = lam + moments(self.distribution).ss_diag
        with np.errstate(divide="ignore"):
            v = np.where(den > 0, 1.0 / (beta * np.where(den > 0, den, 1.0)), np.inf)
        return RunOutput(m=W, v=v, n_iter=0, residual=0.0, converged=True, message="closed form (P → ∞)",
                         extras={"l2_strength": lam}, zero_modes=bool(np.any(den <= 0)))
