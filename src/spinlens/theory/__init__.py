"""Asymptotic theory of ICL by linear attention (Lu et al.) and Bayes baselines (ridge, dMMSE).

See ``docs/theory.md``. Submodules: `asymptotic` (formulas), `simulate` (finite-d checks), `baselines`
(ridge / dMMSE predictors), `comparison` (task-diversity sweep against the core solver), `phase`
((K, N) phase diagram of the cavity solution), `figures`.
"""

from spinlens.theory.asymptotic import M_kappa as M_kappa
from spinlens.theory.asymptotic import M_kappa_derivative as M_kappa_derivative
from spinlens.theory.asymptotic import TheoryResult as TheoryResult
from spinlens.theory.asymptotic import infinite_diversity_closed_form as infinite_diversity_closed_form
from spinlens.theory.asymptotic import learning_curve as learning_curve
from spinlens.theory.asymptotic import learning_curve_point as learning_curve_point
from spinlens.theory.asymptotic import ridgeless_closed_form as ridgeless_closed_form
from spinlens.theory.asymptotic import solve_epsilon as solve_epsilon
from spinlens.theory.baselines import dmmse_predict as dmmse_predict
from spinlens.theory.baselines import ridge_predict as ridge_predict
from spinlens.theory.phase import task_pool_phase_diagram as task_pool_phase_diagram
from spinlens.theory.simulate import SimulationResult as SimulationResult
from spinlens.theory.simulate import simulate_point as simulate_point
