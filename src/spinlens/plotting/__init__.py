"""Plotting: functions that take arrays / xarray objects and return ``(fig, ax)``; they never compute physics.

Every plot of spinlens lives here: `curves`, `matrices`, `landscape`, `spectrum`, `phase` (the spin glass),
`interp` (interpretability methods), `edit` (steering, pinpoint, merging, quantization), `theory`
(asymptotic theory), `lm` (the language-model study), `multilingual` (language neurons and control on pretrained LLMs). Style lives in `spinlens.plotting.style` (`paper_style`, a context manager); saving is
the caller's job, through `spinlens.io.save_figure` (PNG + PDF); `spinlens.plotting.checks` states what
a figure must show (labels, colourbar labels, legends). Matplotlib is imported inside the functions, so
importing this package stays cheap.
"""

from spinlens.plotting.style import paper_style as paper_style
