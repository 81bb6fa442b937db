"""The solver interface: validation, timing and result assembly in one place.

A solver subclasses `Solver`, sets ``method`` and implements `Solver._run` (its iteration only); `Solver.solve`
checks β, times the run, reshapes the flat means and variances, warns when the run did not converge and
returns a `SolverResult`.
"""

from __future__ import annotations

import dataclasses
import time
import warnings

import numpy as np

from ..errors import SolverDidNotConvergeWarning, check_float
from ..random import RNGLike, as_generator
from .result import SolverResult


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


class Solver:
    """Base class of the spin glass solvers (exact, cavity, tap, sample, langevin, limit).

    Subclasses implement ``_run(H, beta, rng) -> RunOutput``; `solve` does the rest.
    """

    method: str = ""

    def _run(self, H, beta: float, rng: np.random.Generator) -> RunOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def _shape(self, H) -> tuple[int, int]:
        return (H.d + 1, H.d + 1)

    def _n_prompts(self, H) -> int | None:
        return int(H.n_prompts)

    def solve(self, H, *, beta: float = 100.0, rng: RNGLike = None, warn: bool = True) -> SolverResult:
        """Solve the Hamiltonian ``H`` at inverse temperature ``beta`` (> 0).

        ``rng`` seeds any random draw (initial messages, probes, samples); ``warn=False`` silences the
        `SolverDidNotConvergeWarning` (the result still says ``converged=False``).
        """
        beta = check_float("beta", beta, low=0.0, low_open=True, owner=type(self).__name__)
        t0 = time.perf_counter()
        out = self._run(H, beta, as_generator(rng))
        shape = self._shape(H)
        m = np.asarray(out.m, dtype=float).reshape(shape)
        v = np.asarray(out.v, dtype=float).reshape(shape)
        converged = bool(out.converged) and bool(np.all(np.isfinite(m)))
        if not converged and warn:
            warnings.warn(f"{self.method}: {out.message}", SolverDidNotConvergeWarning, stacklevel=2)
        return SolverResult(
            m=m, v=v, n_iter=int(out.n_iter), residual=float(out.residual), converged=converged,
            message=out.message, seconds=time.perf_counter() - t0, method=self.method, beta=beta,
            n_prompts=self._n_prompts(H), extras=dict(out.extras),
        )
