"""Plots of the asymptotic theory: moved to `spinlens.plotting.theory` (every plot lives in spinlens.plotting)."""

from spinlens.plotting.theory import (
    plot_learning_curve,
    plot_phase_diagram,
    plot_task_diversity,
)

__all__ = ["plot_learning_curve", "plot_task_diversity", "plot_phase_diagram"]
