"""Plotting: functions that take arrays / xarray objects and return ``(fig, ax)``; they never compute physics.

Style lives in `spinlens.plotting.style` (`paper_style`, a context manager); saving is the caller's job.
Matplotlib is imported inside the functions, so importing this package stays cheap.
"""

from spinlens.plotting.style import paper_style as paper_style
