"""The solver interface: validation, timing and result assembly in one place.

A solver subclasses `Solver`, sets ``method`` and implements `Solver._run` (its iteration only); `Solver.solve`
checks β (≥ `BETA_MIN`), times the run, reshapes the flat means and variances, applies the convergence rule
(`finite_problem`), warns when the run did not converge and returns a `SolverResult`.

The convergence rule holds for every solver: a result whose residual, means or variances are not finite is
never ``converged=True``; the one exception is an infinite variance along the zero modes of an improper
measure (λ = 0), which a run declares with ``RunOutput.zero_modes`` (the exact and limit solvers).
"""

from __future__ import annotations

import dataclasses
import time
import warnings

import numpy as np

from ..errors import SolverDidNotConvergeWarning, check_float
from ..random import RNGLike, as_generator
from .result import SolverResult

BETA_MIN = 1e-100
"""Smallest accepted inverse temperature. Below it the thermal spread 1/√(βa) exceeds 1e50 times the scale of
the weights, so samples, energies and overlaps overflow float64 and the means are lost in the noise."""


@dataclasses.dataclass
class RunOutput:
    """What `Solver._run` returns: flat means and variances (n_spins,) and how the run went."""

    m: np.ndarray
    v: np.ndarray
    n_iter: int = 0
    residual: float = 0.0
    converged: bool = True
    message: str = ""
    extras: dict = dataclasses.field(default_factory=dict)
    zero_modes: bool = False  # True: +inf variances along zero modes of an improper measure (λ = 0) are exact


def finite_problem(m: np.ndarray, v: np.ndarray, residual: float, *, zero_modes: bool = False) -> str:
    """Why a result cannot count as converged ("" when it can): a non-finite residual, mean or variance.

    With ``zero_modes`` a +inf variance is allowed (the documented answer along zero modes of an improper
    measure); NaN or −inf never is.
    """
    if not np.isfinite(residual):
        return f"residual is {residual}"
    n_bad = int(np.sum(~np.isfinite(m)))
    if n_bad:
        return f"{n_bad} means are not finite"
    bad_v = np.isnan(v) | (v == -np.inf) if zero_modes else ~np.isfinite(v)
    n_bad = int(np.sum(bad_v))
    if n_bad:
        return f"{n_bad} variances are not finite"
    return ""


def check_beta(beta, *, owner: str = "") -> float:
    """Validate an inverse temperature: a finite real number ≥ `BETA_MIN`."""
    return check_float("beta", beta, low=BETA_MIN, high=None, owner=owner)


class Solver:
    """Base class of the spin glass solvers (exact, cavity, tap, sample, langevin, limit).

    Subclasses implement ``_run(H, beta, rng) -> RunOutput``; `solve` does the rest.
    """

    method: str = ""
    #: ``callback(step, value)`` set by `solve` for the duration of a run (``progress=``); None otherwise
    _progress = None

    def _run(self, H, beta: float, rng: np.random.Generator) -> RunOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def _shape(self, H) -> tuple[int, int]:
        return (H.d + 1, H.d + 1)

    def _n_prompts(self, H) -> int | None:
        return int(H.n_prompts)

    def solve(self, H, *, beta: float = 100.0, rng: RNGLike = None, warn: bool = True, progress=None) -> SolverResult:
        """Solve the Hamiltonian ``H`` at inverse temperature ``beta`` (≥ `BETA_MIN` = 1e-100).

        ``rng`` seeds any random draw (initial messages, probes, samples); ``warn=False`` silences the
        `SolverDidNotConvergeWarning` (the result still says ``converged=False``). ``progress``: a callable
        ``progress(step, value)`` the iterative solvers call as they go (cavity/tap: step and mean squared
        change; CG: iteration and largest relative residual; langevin: step), e.g. a
        `spinlens.progress.ProgressLine`.
        """
        beta = check_beta(beta, owner=type(self).__name__)
        t0 = time.perf_counter()
        self._progress = progress
        try:
            out = self._run(H, beta, as_generator(rng))
        finally:
            self._progress = None
        shape = self._shape(H)
        m = np.asarray(out.m, dtype=float).reshape(shape)
        v = np.asarray(out.v, dtype=float).reshape(shape)
        residual = float(out.residual)
        message = out.message
        problem = finite_problem(m, v, residual, zero_modes=out.zero_modes)
        converged = bool(out.converged) and not problem
        if problem:
            message = f"{message}; not converged: {problem} (float64 overflow or an ill-posed problem)"
        if not converged and warn:
            warnings.warn(f"{self.method}: {message}", SolverDidNotConvergeWarning, stacklevel=2)
        return SolverResult(
            m=m, v=v, n_iter=int(out.n_iter), residual=residual, converged=converged,
            message=message, seconds=time.perf_counter() - t0, method=self.method, beta=beta,
            n_prompts=self._n_prompts(H), extras=dict(out.extras),
        )
