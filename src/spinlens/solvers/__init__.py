"""Solvers of the spin glass: Hamiltonian → weights (+ marginal variances). All return `SolverResult`."""

from .cavity import CavitySolver as CavitySolver
from .exact import ExactSolver as ExactSolver
from .result import SolverResult as SolverResult
from .sampling import GaussianSampler as GaussianSampler
from .sampling import LangevinSampler as LangevinSampler

from ..errors import check_choice as _check_choice

METHODS = ("exact", "cavity", "sample", "langevin")


def solve(H, method: str = "exact", *, beta: float = 100.0, rng=None, **options) -> SolverResult:
    """Solve the Hamiltonian ``H`` with ``method`` ∈ {"exact", "cavity", "sample", "langevin"}.

    ``options`` go to the solver's constructor (e.g. ``damping``, ``max_iter``, ``tol`` for cavity;
    ``n_samples`` for sample; ``n_steps``, ``n_chains``, ``step_size`` for langevin).

    Examples
    --------
    >>> from spinlens import PromptDistribution, build_hamiltonian
    >>> H = build_hamiltonian(PromptDistribution(d=3, n_context=20).sample(500, rng=0), l2_strength=0.1)
    >>> solve(H, "exact").converged
    True
    """
    _check_choice("method", method, METHODS, owner="solve")
    cls = {"exact": ExactSolver, "cavity": CavitySolver, "sample": GaussianSampler, "langevin": LangevinSampler}[method]
    return cls(**options).solve(H, beta=beta, rng=rng)
