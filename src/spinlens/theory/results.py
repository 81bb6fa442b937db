"""The result of one mode of ``spinlens theory`` and its one writer.

Each mode is one library call returning a `TheoryRun`: `asymptotic.point_run` / `asymptotic.spin_glass_point`
(one point), `asymptotic.curve_run` (a learning curve), `simulate.simulate_run` (finite d next to the theory),
`comparison.diversity_run` (task-pool size K) and `phase.phase_run` ((K, N) phase diagram). `TheoryRun.write`
puts its table, dataset, figure and run.json under a folder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TheoryRun", "symbol_columns"]


@dataclass
class TheoryRun:
    """What one mode of the theory computed.

    Attributes
    ----------
    mode : str
        ``"point"``, ``"simulate"``, ``"curve"``, ``"diversity"`` or ``"phase"``; the stem of the files written.
    summary : dict
        The JSON object of the mode (keys under the symbols of docs/vocabulary.md where they name a quantity).
    table : pandas.DataFrame or None
        The rows of a curve or map (columns under their symbols); None for one point.
    dataset : xarray.Dataset or None
        The full result of a map, written as ``<mode>.nc``.
    converged : bool
        Whether every solve converged (a point: the theory's root; a map: every point).
    message : str
        Why not, when not converged (a point).
    n_bad, n_total : int
        Points (maps) that did not converge, and all points.
    make_figure : callable or None
        ``() -> (fig, ax)``: the figure of the run (`spinlens.plotting.theory`).
    record : dict
        Further run.json fields (phase: the grid, the elapsed time and the one-line summary).
    """

    mode: str
    summary: dict
    table: Any = None
    dataset: Any = None
    converged: bool = True
    message: str = ""
    n_bad: int = 0
    n_total: int = 1
    make_figure: Callable | None = None
    record: dict = field(default_factory=dict)

    def write(self, out, *, config: dict, seed: int) -> list[str]:
        """Write ``<mode>.csv`` (and ``.nc`` when there is a dataset), the figure as PNG and PDF, and run.json
        (``config``: the command's arguments, keys written under their symbols) under ``out``; the file names."""
        import matplotlib

        matplotlib.use("Agg")

        from spinlens import io
        from spinlens.vocabulary import to_symbols

        stem = self.mode
        files = [f"{stem}.csv"]
        io.save_dataframe(self.table, out, stem, index=False)
        if self.dataset is not None:
            io.save_dataset(self.dataset, out, stem)
            files.append(f"{stem}.nc")
        if self.make_figure is not None:
            fig, _ = self.make_figure()
            io.save_figure(fig, out, stem, dpi=150)
            files += [f"{stem}.png", f"{stem}.pdf"]
        io.write_run_json(out, io.run_record(f"theory {stem}", seed=seed, config=to_symbols(config), **self.record,
                                             files=files))
        return files


def symbol_columns(df):
    """``df`` with the columns named by a quantity's Python name under its symbol (``n_context`` → ``N``), as in
    JSON and datasets (docs/vocabulary.md)."""
    from spinlens.vocabulary import to_symbols

    return df.rename(columns={c: next(iter(to_symbols({c: None}))) for c in df.columns})
