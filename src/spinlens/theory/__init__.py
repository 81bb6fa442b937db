"""Asymptotic theory of ICL by linear attention (Lu et al.) and Bayes baselines (ridge, dMMSE)."""

from spinlens.theory.asymptotic import M_kappa as M_kappa
from spinlens.theory.asymptotic import M_kappa_derivative as M_kappa_derivative
from spinlens.theory.asymptotic import TheoryResult as TheoryResult
from spinlens.theory.asymptotic import infinite_diversity_closed_form as infinite_diversity_closed_form
from spinlens.theory.asymptotic import learning_curve as learning_curve
from spinlens.theory.asymptotic import learning_curve_point as learning_curve_point
from spinlens.theory.asymptotic import ridgeless_closed_form as ridgeless_closed_form
from spinlens.theory.asymptotic import solve_epsilon as solve_epsilon
