"""Figures of the interpretability methods: moved to `spinlens.plotting.interp` (every plot lives in
spinlens.plotting); the names stay importable from here."""

from spinlens.plotting.interp import (  # noqa: F401
    plot_attribution_vs_exact,
    plot_circuit,
    plot_flow,
    plot_function_vectors,
    plot_heatmap,
    plot_lens,
    plot_patching,
    plot_units,
    save_data,
    save_figure,
)

__all__ = ["save_figure", "save_data", "plot_heatmap", "plot_patching", "plot_lens", "plot_circuit", "plot_flow", "plot_units", "plot_attribution_vs_exact", "plot_function_vectors"]
