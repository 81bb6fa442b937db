"""spinlens: the spin glass model of in-context learning, and an interpretability toolbox.

Import cost is kept small: heavy modules (torch, matplotlib) load only when their names are used.
"""

from importlib import import_module as _import_module

__version__ = "0.1.0"

# name -> module that defines it (lazy re-exports keep `import spinlens` and `spinlens --help` fast)
_LAZY = {
    "PromptDistribution": "spinlens.prompts",
    "Prompts": "spinlens.prompts",
    "load_prompts": "spinlens.prompts",
    "spin_features": "spinlens.features",
    "SpinFeatures": "spinlens.features",
    "Hamiltonian": "spinlens.hamiltonian",
    "build_hamiltonian": "spinlens.hamiltonian",
    "SolverResult": "spinlens.solvers",
    "ExactSolver": "spinlens.solvers",
    "CavitySolver": "spinlens.solvers",
    "TapSolver": "spinlens.solvers",
    "LimitSolver": "spinlens.solvers",
    "Solver": "spinlens.solvers",
    "GaussianSampler": "spinlens.solvers",
    "LangevinSampler": "spinlens.solvers",
    "solve": "spinlens.solvers",
    "observables": "spinlens.observables",
    "limit": "spinlens.limit",
    "conventions": "spinlens.conventions",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        mod = _import_module(_LAZY[name])
        return mod if mod.__name__.endswith("." + name) else getattr(mod, name)
    raise AttributeError(f"module 'spinlens' has no attribute {name!r}")
