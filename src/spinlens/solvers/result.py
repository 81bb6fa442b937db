"""The result object shared by all solvers."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class SolverResult:
    """What a solver returns.

    Attributes
    ----------
    m : ndarray of shape (d+1, d+1)
        The marginal means: the solver's estimate of the Boltzmann mean, which is also the weight matrix
        of the merged attention. ``W`` is a read-only alias of it (the same array).
    v : ndarray of shape (d+1, d+1)
        Marginal variances at inverse temperature ``beta`` (``inf`` along zero modes when λ = 0).
    n_iter : int
        Iterations (cavity steps, CG iterations, sampler steps; 0 for a direct factorisation or a closed form).
    residual : float
        Final residual: relative ‖(λ+SᵀS/P) m − h‖/‖h‖ for exact and samplers; the last mean squared
        change of (m, v) for the cavity and TAP iterations; 0 for the closed form.
    converged : bool
        False when the tolerance was not met or the iteration diverged (see ``message``).
    message : str
        How the solver stopped.
    seconds : float
        Wall time.
    method : str
        "exact", "cavity", "tap", "sample", "langevin" or "limit".
    beta : float
        Inverse temperature.
    n_prompts : int or None
        P of the Hamiltonian solved; None for the P → ∞ limit.
    extras : dict
        Method-specific numbers (e.g. ``exact_distance`` for cavity/tap, replica overlaps for samplers,
        ``backend`` and ``preconditioner`` for exact).
    """

    m: np.ndarray
    v: np.ndarray
    n_iter: int
    residual: float
    converged: bool
    message: str
    seconds: float
    method: str
    beta: float
    n_prompts: int | None = None
    extras: dict = dataclasses.field(default_factory=dict)

    @property
    def W(self) -> np.ndarray:
        """Read-only alias of ``m``: the weights of the merged attention are the marginal means."""
        return self.m

    def to_dict(self) -> dict:
        """Scalars only (arrays omitted), JSON-friendly."""
        d = {k: getattr(self, k) for k in ("method", "beta", "n_prompts", "n_iter", "residual", "converged", "message")}
        d["elapsed_s"] = self.seconds  # JSON key of every measured time (docs/vocabulary.md)
        d.update({k: v for k, v in self.extras.items() if np.ndim(v) == 0})
        return d

    def __repr__(self) -> str:
        extra = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.extras.items() if np.ndim(v) == 0)
        return (
            f"SolverResult(method={self.method!r}, converged={self.converged}, n_iter={self.n_iter}, "
            f"residual={self.residual:.3g}, message={self.message!r}, seconds={self.seconds:.3g}, "
            f"m=<{self.m.shape}>{', ' + extra if extra else ''})"
        )
