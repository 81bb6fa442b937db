"""Parameter sweeps of the spin glass model: grids, per-point computation, executors, storage.

>>> from spinlens.sweeps import make_grid, run_sweep, open_sweep            # doctest: +SKIP
>>> grid = make_grid({"N": "10:100:10", "P": "100:1000:10", "seed": "0:3"})  # doctest: +SKIP
>>> ds = run_sweep(grid, ["contrast_ratio"], "sweep-out", jobs=2)            # doctest: +SKIP

See ``docs/sweep.md``.
"""

from ._grid import PARAMETERS as PARAMETERS
from ._grid import SweepGrid as SweepGrid
from ._grid import load_config as load_config
from ._grid import make_grid as make_grid
from ._grid import parse_int_values as parse_int_values
from ._grid import parse_values as parse_values
from ._grid import point_key as point_key
from ._grid import point_seed_sequence as point_seed_sequence
from ._lock import SweepLockedError as SweepLockedError
from ._point import DEFAULT_OBSERVABLES as DEFAULT_OBSERVABLES
from ._point import OBSERVABLES as OBSERVABLES
from ._point import compute_point as compute_point
from ._run import PointFunctionError as PointFunctionError
from ._run import SweepInterrupted as SweepInterrupted
from ._run import run_sweep as run_sweep
from ._run import sweep_run as sweep_run
from ._store import SweepStore as SweepStore
from ._store import consolidate as consolidate
from ._store import open_sweep as open_sweep

__all__ = [
    "PARAMETERS",
    "OBSERVABLES",
    "DEFAULT_OBSERVABLES",
    "SweepGrid",
    "SweepStore",
    "SweepInterrupted",
    "SweepLockedError",
    "PointFunctionError",
    "make_grid",
    "parse_values",
    "parse_int_values",
    "load_config",
    "point_key",
    "point_seed_sequence",
    "compute_point",
    "run_sweep",
    "sweep_run",
    "consolidate",
    "open_sweep",
]
