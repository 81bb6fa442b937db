"""What the commands' library calls return: `EditResult` (``steer``, ``pinpoint``, ``merge``, ``quantize``) and
`StudyReport` (every ``interp`` study). The command line prints and writes them; `spinlens.experiment`
re-exports both. A leaf module: the experiments of every setting return these without importing the layer that
dispatches to them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EditResult", "StudyReport"]


@dataclass
class EditResult:
    """What one edit command (``steer``, ``pinpoint``, ``merge``, ``quantize``) computed, in any setting: the
    command line prints it (``summary`` as JSON, or ``rows`` / ``text`` then the ``headline``) and writes
    ``dataset`` with ``figure`` under ``OUT`` (``OUT/<stem>.csv/.nc/.png/.pdf`` and run.json with ``record``).

    Attributes
    ----------
    command, setting : str
    summary : dict
        The ``--json`` output.
    headline : dict or None
        ``text`` (one line) and, where the experiment has an uninformed baseline, ``verdict``.
    text : str
        The table or lines printed without ``--json`` (before the headline); ``rows``: a two-column table instead.
    dataset, figure, stem, record
        The experiment's Dataset and figure, its file stem and the extra keys of its run.json; ``dataset`` None:
        the setting wrote its own files (or none).
    converged : bool
        False when a fine-tune diverged (``divergence``: the reason); the command then exits 3.
    """

    command: str
    setting: str
    summary: dict
    headline: dict | None = None
    text: str = ""
    rows: list | None = None
    dataset: Any = None
    figure: Any = None
    stem: str = ""
    record: dict | None = None
    converged: bool = True
    divergence: str = ""

    def write(self, out, args=None) -> None:
        """Write ``dataset`` (CSV + NetCDF), ``figure`` (PNG + PDF) and run.json (with ``args`` and ``record``)
        under ``out``; nothing when ``out`` is None or there is no dataset (the figure is closed either way)."""
        from spinlens import io

        ds, fig, stem = self.dataset, self.figure, self.stem
        if out is None or ds is None:
            if fig is not None:
                import matplotlib.pyplot as plt

                plt.close(fig)
            return
        if "run" in ds.dims:
            run_vars = [v for v in ds.data_vars if ds[v].dims == ("run",)]
            io.save_dataframe(ds[run_vars].to_dataframe(), out, stem)
            rest = [v for v in ds.data_vars if v not in run_vars]
            if rest:
                _long_csv(ds[rest].drop_dims("run", errors="ignore"), out, f"{stem}_{'_'.join(rest)}")
        else:
            _long_csv(ds, out, stem)
        io.save_dataset(ds, out, stem)
        io.save_figure(fig, out, stem, dpi=150)
        io.write_run_json(out, io.run_record(self.command, args=args, seed=getattr(args, "seed", None),
                                             attrs=dict(ds.attrs), **(self.record or {})))


def _long_csv(ds, out, name) -> None:
    """Every variable of ``ds`` as rows ``variable, <coords>, value`` of one CSV."""
    import pandas as pd

    from spinlens.io import save_dataframe

    frames = []
    for var, da in ds.data_vars.items():
        df = da.to_dataframe(name="value").reset_index()
        df.insert(0, "variable", var)
        frames.append(df)
    save_dataframe(pd.concat(frames, ignore_index=True), out, name, index=False)


@dataclass
class StudyReport:
    """What a study (every ``interp`` method, ``interp ioi``, ``arithmetic``, ``recall``, ``fv``, ``induction``,
    ``languages``, ``control``, ``sycophancy``) returns to its command: the result, its headline and its files.

    Attributes
    ----------
    command : str
        The command for run.json (``"interp ioi"``).
    summary : dict
        The result: ``result.json``, what ``--json`` prints, and run.json's ``summary``.
    rows : list of (label, value)
        The headline table (empty: no table).
    lines : list of str
        Lines printed after the table (a verdict line; the whole headline of the ``interp`` methods).
    figures : dict
        File stem → a function making the figure (a Figure, or a tuple whose first item is one); made only by
        `write`, saved as PNG + PDF with ``figure_kw``.
    data : dict
        File stem → an xarray Dataset/DataArray (``stem.nc``), a dict of columns (``stem.csv``), or, for a stem
        ending in ``.json``, an object written as that JSON file.
    result_json : bool
        Write ``summary`` as ``result.json``.
    files_key : str or None
        Keep the written paths in ``summary[files_key]`` (after any already there) and list each one in the
        headline; otherwise a headline with a table ends with ``wrote OUT``.
    record : dict or None
        run.json fields after the standard ones (default ``{"summary": summary}``).
    """

    command: str
    summary: dict
    rows: list = field(default_factory=list)
    lines: list = field(default_factory=list)
    figures: dict[str, Callable[[], object]] = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    result_json: bool = True
    files_key: str | None = None
    record: dict | None = None
    figure_kw: dict = field(default_factory=lambda: {"bbox_inches": "tight", "dpi": 150})

    def write(self, out, args=None, *, seed: int | None = None) -> list[str]:
        """Write the figures, the data, ``result.json`` and run.json (with ``args`` and ``seed``) under ``out``;
        return the figure and data paths."""
        import os

        from spinlens import io

        os.makedirs(out, exist_ok=True)
        files: list[str] = []
        for stem, make in self.figures.items():
            fig = make()
            files += io.save_figure(fig[0] if isinstance(fig, tuple) else fig, out, stem, **self.figure_kw)
        for stem, obj in self.data.items():
            if stem.endswith(".json"):
                files.append(str(io.write_json(os.path.join(out, stem), obj)))
            elif isinstance(obj, dict):
                files.append(io.save_columns(obj, out, stem))
            else:
                files.append(io.save_dataset(obj, out, stem))
        if self.files_key is not None:
            self.summary[self.files_key] = [*self.summary.get(self.files_key, []), *files]
        if self.result_json:
            io.write_json(os.path.join(out, "result.json"), self.summary)
        io.write_run_json(out, io.run_record(self.command, args=args, seed=seed,
                                             **(self.record if self.record is not None else {"summary": self.summary})))
        return files
