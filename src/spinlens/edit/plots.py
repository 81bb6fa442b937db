"""Figures of the edit experiments: moved to `spinlens.plotting.edit` (every plot lives in spinlens.plotting)."""

from spinlens.plotting.edit import (
    plot_merging,
    plot_pinpoint,
    plot_quantization,
    plot_steering,
    plot_steering_sweep,
    save_figure,
)

__all__ = ["plot_steering", "plot_steering_sweep", "plot_pinpoint", "plot_merging", "plot_quantization",
           "save_figure"]
