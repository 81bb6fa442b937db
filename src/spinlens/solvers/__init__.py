"""Solvers of the spin glass: Hamiltonian → weights (+ marginal variances). All return `SolverResult`.

Every solver subclasses `Solver` (validation, timing and result assembly) and implements its iteration.
"""

from ..errors import check_choice as _check_choice
from .base import Solver as Solver
from .cavity import CavitySolver as CavitySolver
from .cavity import TapSolver as TapSolver
from .exact import ExactSolver as ExactSolver
from .limit import LimitSolver as LimitSolver
from .result import SolverResult as SolverResult
from .sampling import GaussianSampler as GaussianSampler
from .sampling import LangevinSampler as LangevinSampler

METHODS = ("exact", "cavity", "tap", "sample", "langevin", "limit")

SOLVERS = {"exact": ExactSolver, "cavity": CavitySolver, "tap": TapSolver, "sample": GaussianSampler,
           "langevin": LangevinSampler, "limit": LimitSolver}


def solve(H, method: str = "exact", *, beta: float = 100.0, rng=None, warn: bool = True, progress=None,
          **options) -> SolverResult:
    """Solve the Hamiltonian ``H`` with ``method`` ∈ {"exact", "cavity", "tap", "sample", "langevin", "limit"}.

    ``options`` go to the solver's constructor, so every option of every solver is reachable: e.g.
    ``backend``, ``n_probes``, ``preconditioner``, ``device`` for exact; ``damping``, ``max_iter``, ``tol``,
    ``init``, ``compare_exact`` for cavity and tap; ``n_samples`` for sample; ``n_steps``, ``n_chains``,
    ``step_size``, ``compare_exact`` for langevin; ``distribution`` (and ``l2_strength`` when ``H`` is None)
    for limit. ``warn=False`` silences the non-convergence warning; ``progress(step, value)`` is called as the
    iterative solvers go (`Solver.solve`).

    Examples
    --------
    >>> from spinlens import PromptDistribution, build_hamiltonian
    >>> H = build_hamiltonian(PromptDistribution(d=3, n_context=20).sample(500, rng=0), l2_strength=0.1)
    >>> solve(H, "exact").converged
    True
    >>> solve(H, "tap", tol=1e-20, max_iter=3000, warn=False).extras["exact_distance"] < 1e-8
    True
    """
    _check_choice("method", method, METHODS, owner="solve")
    return SOLVERS[method](**options).solve(H, beta=beta, rng=rng, warn=warn, progress=progress)
