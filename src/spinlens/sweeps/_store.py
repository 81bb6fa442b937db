"""The on-disk store of a sweep: one small file per finished point, consolidated into NetCDF at the end.

Layout of a sweep directory ``OUT``::

    OUT/sweep.json          what is being swept (grid + settings); written atomically
    OUT/points/<key>.json   one finished point: params, values, meta (run id, time stamp, pid, host)
    OUT/results.nc          the consolidated xarray Dataset (written at the end, atomically)
    OUT/run.json            the run record: settings, seeds, versions, timings, counts
    OUT/.lock               held while a run works on OUT (see `spinlens.sweeps._lock`)

Consistency: ``sweep.json`` is the truth about what is swept, the point files about what is done.
``results.nc`` and ``run.json`` are derived from them, and `open_sweep` returns ``results.nc`` only if its
grid and settings are those of ``sweep.json`` and every point of the grid is on disk; otherwise it assembles
the points afresh, with a ``done`` mask.

Old or new: the folder is a journal whose every change is atomic. A point file appears whole. The switches
that change more than one file go through `spinlens.io.folder_update` (the new folder is built beside the
old one as hard links plus the changed files, then exchanged in one step): a new ``sweep.json`` together
with dropping the derived files (grid extended on ``--resume``) or the old points (``--force``), and the
finished run's ``results.nc`` with its ``run.json``. A kill at any moment therefore leaves a valid sweep:
the old one, or the new one with the points finished so far, which ``--resume`` continues without losing or
repeating a finished point. Files of the user in the folder are kept.

Why one file per point: a point file is written to a temporary name in the same directory and then
``os.replace``-d onto its final name, and rename is atomic on POSIX file systems. Whatever kills the
process (Ctrl-C, SIGKILL, OOM), a point file either exists complete or does not exist, so the set of
finished points is exactly the set of files, with no journal to repair. The parent
process alone writes (workers return values), so a Dask worker on another machine needs no shared
file system. Files are not fsync-ed: they survive the death of the process, not a power cut of the
machine; a point lost that way is simply recomputed by ``--resume``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import time
from pathlib import Path

import numpy as np

from spinlens.errors import InvalidParameterError

from ._grid import PARAMETERS, SweepGrid, canonical_json, make_grid, point_key
from ._point import OBSERVABLES

__all__ = ["SweepStore", "consolidate", "open_sweep"]

STORE_VERSION = 1


def _atomic_write_text(path: Path, text: str) -> None:
    from spinlens.io import atomic_write_text

    atomic_write_text(path, text)


class SweepStore:
    """A sweep directory (see module docstring). Not thread-safe; one writer (the parent process)."""

    def __init__(self, out: str | os.PathLike, *, repair: bool = False):
        self.repair = repair  # a damaged point file is deleted (and so recomputed) instead of refused
        self.root = Path(out)
        self.points_dir = self.root / "points"
        self.spec_path = self.root / "sweep.json"
        self.results_path = self.root / "results.nc"
        self.run_path = self.root / "run.json"

    # ---- spec
    def exists(self) -> bool:
        return self.spec_path.exists() or self.points_dir.exists()

    def read_spec(self) -> dict | None:
        if not self.spec_path.exists() and not self.spec_path.is_symlink():
            return None
        try:
            rec = _read_json(self.spec_path)
            if not (isinstance(rec, dict) and isinstance(rec.get("grid"), dict) and isinstance(rec.get("settings"), dict)
                    and isinstance(rec["settings"].get("observables"), list)):
                raise ValueError("not a sweep spec object")
        except (OSError, ValueError, RecursionError, InvalidParameterError) as exc:
            raise InvalidParameterError(f"The sweep file {str(self.spec_path)!r} is damaged ({_why(exc)}); pass --force "
                                        "to start the sweep over.") from None
        return rec

    def write_spec(self, grid: SweepGrid, settings: dict, *, start_over: bool = False) -> None:
        """Write sweep.json (and an empty points/) in one atomic switch of the folder (`spinlens.io.folder_update`).

        results.nc and run.json, derived from the previous spec, go in the same switch; with ``start_over`` the
        points of the previous sweep too (``--force``): a kill leaves the old sweep whole or the new one. The
        user's other files stay. A spec equal to the stored one is left as it is (nothing to switch).
        """
        from spinlens.io import folder_update

        spec = {"store_version": STORE_VERSION, "grid": grid.to_dict(), "settings": settings}
        text = json.dumps(spec, indent=1, sort_keys=True) + "\n"
        if not start_over and self.spec_path.is_file() and self.points_dir.is_dir():
            try:
                if self.spec_path.read_text(encoding="utf-8") == text:
                    return
            except (OSError, UnicodeDecodeError):
                pass
        own = {self.results_path.name, self.run_path.name} | ({self.points_dir.name} if start_over else set())
        with folder_update(self.root, drop=own) as stage:
            (stage / self.points_dir.name).mkdir(exist_ok=True)
            _atomic_write_text(stage / self.spec_path.name, text)

    def write_products(self, ds, record: dict) -> None:
        """Write results.nc and run.json of a finished run together, in one atomic switch of the folder."""
        from spinlens.io import folder_update, write_json

        with folder_update(self.root) as stage:
            write_results(ds, stage / self.results_path.name)
            write_json(stage / self.run_path.name, record, indent=1)

    def invalidate_results(self) -> None:
        """Delete results.nc and run.json (derived files) so that no stale copy outlives a change."""
        for p in (self.results_path, self.run_path):
            p.unlink(missing_ok=True)

    def n_points_stored(self) -> int:
        return len(self.done_keys())

    def results_are_current(self, ds) -> bool:
        """True if the Dataset ``ds`` (a results.nc) matches sweep.json and every grid point is on disk."""
        spec = self.read_spec()
        if spec is None:
            return True  # a results.nc without its folder: nothing to compare with
        try:
            grid = make_grid(spec["grid"])
            same = (ds.attrs.get("grid") == canonical_json(grid.to_dict())
                    and ds.attrs.get("settings") == canonical_json(spec["settings"]) and "done" not in ds)
        except (KeyError, TypeError, ValueError):
            return False
        if not same:
            return False
        present = self.done_keys()
        return all(point_key(p) in present for p in grid.points())

    def clear(self) -> None:
        """Remove this store's own files (used by --force); other files in OUT are left alone."""
        if self.points_dir.exists():
            shutil.rmtree(self.points_dir)
        for p in (self.spec_path, self.results_path, self.run_path):
            if p.exists():
                p.unlink()

    def clean_temporaries(self) -> int:
        """Delete half-written temporary files left by a killed run; return how many."""
        n = 0
        for d in (self.points_dir, self.root):
            if d.exists():
                # ".tmp-*": older spinlens; ".NAME.XXXX.tmp": spinlens.io.atomic_path
                for p in [*d.glob(".tmp-*"), *d.glob(".*.tmp")]:
                    p.unlink(missing_ok=True)
                    n += 1
        return n

    # ---- points
    def point_path(self, params: dict) -> Path:
        return self.points_dir / f"{point_key(params)}.json"

    def has_point(self, params: dict, settings_hash: str) -> bool:
        rec = self.read_point(params)
        return rec is not None and rec.get("settings_hash") == settings_hash

    def read_point(self, params: dict) -> dict | None:
        """The stored record of a point, None when absent. A damaged file (truncated, empty, not an object, other
        parameters, non-numeric values, not a regular file) is refused in one line, or with ``repair`` deleted
        (the point is then computed again)."""
        p = self.point_path(params)
        if not p.exists() and not p.is_symlink():
            return None
        try:
            rec = _read_json(p)
            if not isinstance(rec, dict) or not isinstance(rec.get("values"), dict) \
                    or not isinstance(rec.get("params"), dict) or not isinstance(rec.get("settings_hash"), str):
                raise ValueError("not a point record")
            if canonical_json(rec["params"]) != canonical_json(params):
                raise ValueError("it holds the parameters of another point")
            bad = [k for k, v in rec["values"].items() if not (v is None or type(v) in (bool, int, float))]
            if bad:
                raise ValueError(f"non-numeric value of {bad[0]!r}")
        except (OSError, ValueError, RecursionError, InvalidParameterError) as exc:
            if self.repair:
                p.unlink(missing_ok=True)
                return None
            raise InvalidParameterError(f"The sweep point file {str(p)!r} is damaged ({_why(exc)}); pass --repair "
                                        "(with --resume) to compute that point again.") from None
        for old, new in _OLD_KEYS.items():  # point files written before the keys of docs/vocabulary.md
            for part in ("values", "meta"):
                if isinstance(rec.get(part), dict) and old in rec[part] and new not in rec[part]:
                    rec[part][new] = rec[part].pop(old)
        return rec

    def write_point(self, params: dict, values: dict, meta: dict, settings_hash: str) -> None:
        rec = {"params": params, "values": values, "meta": meta, "settings_hash": settings_hash}
        _atomic_write_text(self.point_path(params), json.dumps(rec, sort_keys=True))

    def done_keys(self) -> set[str]:
        if not self.points_dir.exists():
            return set()
        return {p.stem for p in self.points_dir.glob("*.json") if not p.name.startswith(".")}


def _why(exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
    return text


def _read_json(path: Path):
    """A JSON file of the store, strictly: a regular file (never a FIFO), UTF-8, no duplicate keys."""
    from spinlens.io import check_regular_file, no_duplicate_keys

    check_regular_file("sweep file", path)
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise ValueError("empty file")
    return json.loads(text, object_pairs_hook=no_duplicate_keys)


def _coord_values(name: str, values: tuple):
    if name == "K":
        return np.array([math.inf if v is None else float(v) for v in values], dtype=float)
    if PARAMETERS[name].kind == "int":
        return np.array(values, dtype=np.int64)
    return np.array(values, dtype=float)


def consolidate(store: SweepStore, *, allow_missing: bool = False):
    """Assemble the point files of a store into an `xarray.Dataset`.

    Dims are the long names of the swept parameters (more than one value), in grid order; parameters held
    fixed are scalar coordinates. One variable per observable with ``long_name``/``units`` attrs; the
    boolean ``converged`` mask; W-dependent observables are NaN where not converged.

    Parameters
    ----------
    store : SweepStore
    allow_missing : bool
        False (default) raises if a grid point has no file; True leaves it NaN (``converged`` False) and
        adds a boolean ``done`` variable.
    """
    import xarray as xr

    spec = store.read_spec()
    if spec is None:
        raise InvalidParameterError(f"{str(store.root)!r} is not a sweep directory (no sweep.json).")
    grid = make_grid(spec["grid"])
    settings = spec["settings"]
    shash = settings_hash(settings)
    obs = list(settings["observables"])
    shape = grid.shape
    arrays = {}
    for o in obs:
        dt = OBSERVABLES[o][3] if o in OBSERVABLES else "float64"
        fill = False if dt == "bool" else (-1 if dt == "int64" else math.nan)
        arrays[o] = np.full(shape, fill, dtype=dt)
    done = np.zeros(shape, dtype=bool)
    missing = 0
    for flat, params in enumerate(grid.points()):
        idx = np.unravel_index(flat, shape)
        rec = store.read_point(params)
        if rec is None or rec.get("settings_hash") != shash:
            missing += 1
            continue
        done[idx] = True
        vals = rec["values"]
        for o in obs:
            v = vals.get(o, math.nan)
            arrays[o][idx] = (math.nan if v is None else v) if arrays[o].dtype.kind == "f" else v
    if missing and not allow_missing:
        raise RuntimeError(f"{missing} of {grid.n_points} points of {store.root} are not computed yet")
    conv = arrays["converged"]
    for o in obs:
        if o in OBSERVABLES and OBSERVABLES[o][2]:
            arrays[o][~conv] = math.nan
    names = [k for k, _ in grid.values]
    dims = [PARAMETERS[k].dim for k in names]
    keep = [i for i, k in enumerate(names) if len(grid.mapping[k]) > 1]
    squeeze_axes = tuple(i for i in range(len(names)) if i not in keep)
    kept_dims = [dims[i] for i in keep]
    data_vars = {}
    for o in obs:
        long_name, units = (OBSERVABLES[o][0], OBSERVABLES[o][1]) if o in OBSERVABLES else (o, "1")
        data_vars[o] = xr.Variable(kept_dims, arrays[o].squeeze(axis=squeeze_axes), {"long_name": long_name, "units": units})
    if allow_missing:
        data_vars["done"] = xr.Variable(kept_dims, done.squeeze(axis=squeeze_axes), {"long_name": "point computed"})
    coords = {}
    for k, dim in zip(names, dims):
        vals = _coord_values(k, grid.mapping[k])
        attrs = {"long_name": PARAMETERS[k].long_name, "short_name": k}
        coords[dim] = xr.Variable([dim], vals, attrs) if len(vals) > 1 else xr.Variable([], vals[0], attrs)
    attrs = {
        "title": "spinlens sweep",
        "method": settings.get("method", ""),
        "observables": ",".join(obs),
        "settings": canonical_json(settings),
        "grid": canonical_json(grid.to_dict()),
        "seed_derivation": "SeedSequence([seed, sha256(other params)[:16] as 4 uint32]).spawn(3)",
    }
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def settings_hash(settings: dict) -> str:
    import hashlib

    return hashlib.sha256(canonical_json(settings).encode()).hexdigest()[:16]


def write_results(ds, path: Path) -> None:
    """Write the Dataset to NetCDF atomically."""
    from spinlens.io import atomic_path

    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp)


def open_sweep(path: str | os.PathLike):
    """Open a sweep as an `xarray.Dataset` (loaded into memory, file closed).

    ``path`` is a sweep directory or its ``results.nc``. ``results.nc`` is returned only if it matches
    the folder's ``sweep.json`` and point files; for an unfinished sweep (no ``results.nc`` yet, or one
    left from before the grid was extended) the stored points are assembled on the fly: missing points
    are NaN and a boolean ``done`` mask is added.

    Examples
    --------
    >>> ds = open_sweep("sweep-out")                              # doctest: +SKIP
    >>> ds.contrast_ratio.where(ds.converged).mean("seed").plot()  # doctest: +SKIP
    """
    import xarray as xr

    p = Path(path)
    if p.is_file():
        store = SweepStore(p.parent)
        if p.name != store.results_path.name or not store.spec_path.exists():
            with xr.open_dataset(p) as ds:
                return ds.load()
    else:
        store = SweepStore(p)
    if store.results_path.exists():
        with xr.open_dataset(store.results_path) as ds:
            ds = ds.load()
        if store.results_are_current(ds):
            return ds
    if store.spec_path.exists():
        return consolidate(store, allow_missing=True)
    raise InvalidParameterError(f"The 'path' {str(p)!r} is neither a sweep directory nor a results.nc file.")


#: keys of point files written by older versions -> the key read now (one key per quantity)
_OLD_KEYS = {"wall_time": "elapsed_s", "cpu_time": "cpu_s"}


def point_meta(run_id: str, elapsed_s: float | None = None) -> dict:
    return {"run_id": run_id, "computed_at": time.time(), "pid": os.getpid(), "host": socket.gethostname(),
            "elapsed_s": elapsed_s}
