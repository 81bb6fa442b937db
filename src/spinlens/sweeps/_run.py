"""Running a sweep: pick the points not yet done, farm them out, store each as it finishes.

Executors (no scheduler of our own):

* ``jobs == 1`` and no scheduler: in this process, one point after the other;
* ``jobs > 1``: `concurrent.futures.ProcessPoolExecutor` with the ``spawn`` start method; workers start
  with ``OMP_NUM_THREADS=OPENBLAS_NUM_THREADS=MKL_NUM_THREADS=1`` in their environment (set before they
  import numpy) and ignore SIGINT, so Ctrl-C reaches only the parent, which stops cleanly;
* ``scheduler="tcp://host:port"``: `dask.distributed.Client` to that scheduler, ``submit`` +
  ``as_completed``.

Points travel in chunks (a few seconds of work each) to keep the per-task overhead small; every point
of a finished chunk is written to its own file at once.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import platform
import signal
import sys
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from spinlens.errors import InvalidParameterError, check_float, check_int

from ._grid import SweepGrid, make_grid, point_key
from ._lock import SweepLock, SweepLockedError
from ._point import METHODS, SAMPLERS, check_observables
from ._store import SweepStore, consolidate, point_meta, settings_hash

__all__ = ["run_sweep", "SweepInterrupted", "SweepLockedError", "PointFunctionError", "BUILTIN_POINT_FNS",
           "check_point_fn", "sweep_run"]

#: spinlens' own point functions: a config file may name these without an explicit opt-in.
BUILTIN_POINT_FNS = ("spinlens.sweeps._point:compute_point", "spinlens.sweeps.testing:toy_point")

_BLAS_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


class SweepInterrupted(KeyboardInterrupt):
    """Raised by `run_sweep` after Ctrl-C, once every finished point is safely stored."""


class PointFunctionError(InvalidParameterError):
    """A custom point function failed, or returned something other than a mapping of observables."""


def resolve_point_fn(ref: str):
    """Import ``"module:function"`` (the point function of a sweep)."""
    if not isinstance(ref, str):
        raise InvalidParameterError(f"The 'point_fn' parameter must be a string 'module:function'. Got {ref!r} instead.")
    mod, _, name = ref.partition(":")
    if not mod or not name:
        raise InvalidParameterError(f"The 'point_fn' parameter must look like 'module:function'. Got {ref!r} instead.")
    try:
        fn = getattr(importlib.import_module(mod), name)
    except Exception as exc:  # ImportError, AttributeError, or whatever the module raises on import
        raise InvalidParameterError(f"The 'point_fn' {ref!r} cannot be imported: {exc}".splitlines()[0]) from None
    if not callable(fn):
        raise InvalidParameterError(f"The 'point_fn' {ref!r} is not a function.")
    return fn


_OPTION_NAMES = ("method", "max_iter", "tol", "n_mc", "sampler")


def check_point_fn(ref: str, observables=("converged",)):
    """Import a point function and check it can be called as ``fn(params, observables, **options)``."""
    import inspect

    fn = resolve_point_fn(ref)
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return fn  # builtins without a signature: checked by the first call
    try:
        sig.bind({}, list(observables), **{k: None for k in _OPTION_NAMES})
    except TypeError:
        raise InvalidParameterError(
            f"The 'point_fn' {ref!r} cannot be called as fn(params, observables, method=, max_iter=, tol=, "
            f"n_mc=, sampler=); its signature is {sig}."
        ) from None
    return fn


def _check_values(ref: str, params: dict, values) -> dict:
    import math
    import numbers

    import numpy as np

    if not isinstance(values, dict) or "converged" not in values:
        raise PointFunctionError(
            f"The 'point_fn' {ref!r} must return a dict of observables with a 'converged' entry. "
            f"Got {type(values).__name__} at point {params}."
        )
    out: dict[str, bool | int | float | None] = {}
    for k, v in values.items():
        if v is None or isinstance(v, (bool, np.bool_)):
            out[str(k)] = None if v is None else bool(v)
        elif isinstance(v, (numbers.Integral, np.integer)):
            out[str(k)] = int(v)
        elif isinstance(v, (numbers.Real, np.floating)):
            out[str(k)] = None if math.isnan(float(v)) else float(v)
        else:
            raise PointFunctionError(
                f"The 'point_fn' {ref!r} returned {k}={v!r} at point {params}; observables must be numbers or bools."
            )
    return out


def _run_chunk(point_fn_ref: str, chunk: list[dict], observables: list[str], options: dict) -> list[tuple]:
    """Worker side: compute a chunk of points; returns [(params, values, meta)]."""
    fn = resolve_point_fn(point_fn_ref)
    builtin = point_fn_ref in BUILTIN_POINT_FNS
    out = []
    for params in chunk:
        t0, c0 = time.perf_counter(), time.process_time()
        if builtin:
            values = fn(dict(params), list(observables), **options)
        else:
            try:
                values = fn(dict(params), list(observables), **options)
            except Exception as exc:
                raise PointFunctionError(
                    f"The 'point_fn' {point_fn_ref!r} failed at point {params}: {type(exc).__name__}: {exc}".splitlines()[0]
                ) from None
            values = _check_values(point_fn_ref, params, values)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        values = dict(values)
        values.setdefault("elapsed_s", wall)
        meta = point_meta("", wall)
        meta["cpu_s"] = cpu
        out.append((params, values, meta))
    return out


@contextlib.contextmanager
def _blas_single_thread_here():
    """In-process runs: one BLAS thread, like the pool workers (threadpoolctl if installed)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _worker_init() -> None:
    """Pool worker start-up: ignore Ctrl-C (the parent handles it) and die with the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import threading

    parent = os.getppid()

    def watch():
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:  # parent gone (e.g. SIGKILL): do not linger as an orphan
                os._exit(0)

    threading.Thread(target=watch, daemon=True, name="spinlens-parent-watch").start()


@contextlib.contextmanager
def _single_thread_env():
    old = {k: os.environ.get(k) for k in _BLAS_ENV}
    try:
        for k in _BLAS_ENV:
            os.environ[k] = "1"
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _chunks(points: list[dict], size: int) -> list[list[dict]]:
    return [points[i : i + size] for i in range(0, len(points), size)]


def _versions() -> dict:
    import numpy
    import xarray

    import spinlens

    v = {"spinlens": spinlens.__version__, "numpy": numpy.__version__, "xarray": xarray.__version__,
         "python": platform.python_version()}
    try:
        import scipy

        v["scipy"] = scipy.__version__
    except ImportError:  # pragma: no cover
        pass
    return v


def _git_sha() -> str | None:
    from spinlens.io import git_sha

    return git_sha()


def run_sweep(
    grid: SweepGrid | dict,
    observables=("contrast_ratio", "test_error", "n_iter"),
    out: str | os.PathLike = "sweep-out",
    *,
    method: str = "cavity",
    max_iter: int = 100,
    tol: float = 1e-6,
    n_mc: int = 4096,
    sampler: str = "auto",
    jobs: int | None = None,
    scheduler: str | None = None,
    scheduler_timeout: float = 5.0,
    resume: bool = False,
    force: bool = False,
    repair: bool = False,
    progress: bool = True,
    point_fn: str = "spinlens.sweeps._point:compute_point",
    chunk_size: int | None = None,
    log=None,
    yes: bool = True,
):
    """Run (or resume) a sweep and return its consolidated `xarray.Dataset`.

    Parameters
    ----------
    grid : SweepGrid or dict
        The grid (a dict goes through `make_grid`).
    observables : sequence of str
        Names from `spinlens.sweeps.OBSERVABLES`; ``converged`` is always recorded.
    out : path
        Sweep directory (see `spinlens.sweeps._store`). Must not hold another sweep unless ``force``.
    method, max_iter, tol, n_mc, sampler
        Passed to the point function (see `compute_point`); part of the sweep's identity.
    jobs : int, optional
        Worker processes (default: the number of CPU cores). 1 runs in this process.
    scheduler : str, optional
        Address of a Dask distributed scheduler (``tcp://host:port``); overrides ``jobs``. What travels
        to it is pickled (functions, points, results): use only a cluster you trust (see docs/sweep.md).
    scheduler_timeout : float
        Seconds to wait when connecting to ``scheduler`` (default 5): an unreachable scheduler is reported
        after this long.
    resume : bool
        Continue the sweep stored in ``out``: points already stored are not recomputed. The settings must
        match; the grid may differ (e.g. more seeds), stored points are reused where they fall on it.
    force : bool
        Delete a sweep stored in ``out`` (its own files only) and start over.
    repair : bool
        With ``resume``: a damaged point file (truncated, empty, edited) is computed again instead of refused.

        While it runs, a sweep holds the advisory lock ``out/.lock``: a second run on the same folder
        raises `SweepLockedError` (a lock left by a killed process of this host is taken over).
    progress : bool
        Show a tqdm progress bar with ETA on stderr.
    point_fn : str
        ``"module:function"`` computing one point, called as ``fn(params, observables, **options)``.
    chunk_size : int, optional
        Points per task (default: about 1/16 of each worker's share, at most 64).
    log : callable, optional
        Where the one-line messages go (default: print to stderr).
    yes : bool
        Run even if the time estimate (`spinlens.progress.estimate_sweep_time`, logged before the work and
        written to run.json as ``time_estimate_s``) is beyond an hour; False refuses such a sweep
        (`spinlens.progress.check_duration`). The CLI passes ``--yes``.

    Returns
    -------
    xarray.Dataset
        As written to ``out/results.nc``.

    Raises
    ------
    InvalidParameterError
        Bad settings, or ``out`` holds a different sweep (without ``resume``/``force``).
    SweepInterrupted
        On Ctrl-C, after the finished points are stored (resume with ``resume=True``).
    """
    log = log or (lambda msg: print(msg, file=sys.stderr))
    t_start = time.time()
    if not isinstance(grid, SweepGrid):
        grid = make_grid(grid)
    obs = check_observables(observables)
    if method not in METHODS:
        raise InvalidParameterError(f"The 'method' parameter must be one of {METHODS}. Got {method!r} instead.")
    max_iter = check_int("max_iter", max_iter, low=1, owner="sweep")
    tol = check_float("tol", tol, low=0.0, low_open=True, owner="sweep")
    n_mc = check_int("n_mc", n_mc, low=1, owner="sweep")
    if sampler not in SAMPLERS:
        raise InvalidParameterError(f"The 'sampler' parameter must be one of {SAMPLERS}. Got {sampler!r} instead.")
    if sampler == "reduced" and any(c != 0 for c in grid.mapping["corr"]):
        raise InvalidParameterError("The 'reduced' sampler needs corr = 0 at every point; use --sampler auto or core.")
    if scheduler is None:
        jobs = (os.cpu_count() or 1) if jobs is None else check_int("jobs", jobs, low=1, high=1024, owner="sweep")
    if chunk_size is not None:
        chunk_size = check_int("chunk_size", chunk_size, low=1, owner="sweep")
    scheduler_timeout = check_float("scheduler_timeout", scheduler_timeout, low=0.0, low_open=True, high=3600.0,
                                    owner="sweep")
    if scheduler is not None and not isinstance(scheduler, str):
        raise InvalidParameterError(f"The 'scheduler' parameter must be an address like tcp://HOST:PORT. Got {scheduler!r} instead.")
    check_point_fn(point_fn, obs)  # fail early on a bad reference or signature
    if not str(out).strip():
        raise InvalidParameterError("The 'out' parameter must name a folder. Got an empty string instead.")
    if scheduler is None:
        assert jobs is not None  # set above for a local run
        _check_memory(grid, sampler, jobs, method)
    t_est = None
    if point_fn in BUILTIN_POINT_FNS and scheduler is None:
        from spinlens.progress import check_duration, estimate_sweep_time

        t_est = estimate_sweep_time(grid.points(), method=method, max_iter=max_iter, jobs=jobs or 1)
        check_duration(t_est, yes=yes, what=f"sweep of {grid.n_points} points on {jobs} processes",
                       shrink="fewer points (a coarser grid, fewer seeds), a smaller D or P, or more --jobs")
    if resume and force:
        raise InvalidParameterError("Pass either 'resume' or 'force', not both.")

    settings = {"observables": obs, "method": method, "max_iter": max_iter, "tol": tol, "n_mc": n_mc,
                "sampler": sampler, "point_fn": point_fn}
    shash = settings_hash(settings)
    if repair and not resume:
        raise InvalidParameterError("The 'repair' option recomputes damaged points of a sweep being resumed; pass it "
                                    "with --resume.")
    store = SweepStore(out, repair=repair)
    existed = store.root.exists()
    lock = SweepLock(store.root)
    try:
        lock.acquire()  # a second run on this folder stops here, with one line
    except OSError as exc:
        raise InvalidParameterError(
            f"The 'out' directory {str(store.root)!r} cannot be created or written: {exc.strerror or exc}."
        ) from None
    created_spec = False
    try:
        if store.exists() and store.n_points_stored() > 0:
            old = None if force else store.read_spec()
            if force:
                pass  # the new sweep replaces the old one in one switch (write_spec below)
            elif not resume:
                what = "a different sweep" if old is None or old.get("settings") != settings or old.get("grid") != grid.to_dict() else "this sweep"
                raise InvalidParameterError(
                    f"The 'out' directory {str(store.root)!r} already holds {what}; pass --resume to continue it "
                    "or --force to delete it and start over."
                )
            elif old is not None and old.get("settings") != settings:
                diff = sorted(k for k in set(settings) | set(old.get("settings", {})) if settings.get(k) != old["settings"].get(k))
                raise InvalidParameterError(
                    f"Cannot resume {str(store.root)!r}: it was run with other settings ({', '.join(diff)} differ); "
                    "use another --out or --force."
                )
        elif store.exists():
            store.clear()  # a sweep.json with no point stored (e.g. died at its first point): nothing to keep
        store.clean_temporaries()
        store.write_spec(grid, settings, start_over=force)
        created_spec = True
        return _run_locked(store, grid, settings, shash, point_fn, obs, jobs, scheduler, scheduler_timeout,
                           chunk_size, progress, log, t_start, t_est)
    except BaseException as exc:
        if created_spec and not isinstance(exc, KeyboardInterrupt) and store.n_points_stored() == 0:
            # failed before storing any point: leave nothing that would block a plain retry
            store.clear()
            if not existed:
                with contextlib.suppress(OSError):
                    lock.release()
                    store.root.rmdir()
        raise
    finally:
        lock.release()


def _run_locked(store, grid, settings, shash, point_fn, obs, jobs, scheduler, scheduler_timeout, chunk_size,
                progress, log, t_start, t_est=None):
    points = list(grid.points())
    present = store.done_keys()
    todo = []
    for p in points:
        if point_key(p) in present and store.has_point(p, shash):
            continue
        todo.append(p)
    n_reused = len(points) - len(todo)
    where = f"Dask scheduler {scheduler}" if scheduler else f"{jobs} process{'es' if jobs > 1 else ''}"
    log(f"sweep: {grid!r} -> {store.root}; {len(todo)} to compute, {n_reused} stored, on {where}"
        + (f"; estimate {t_est.describe()} for all points" if t_est is not None else ""))
    run_id = uuid.uuid4().hex[:12]
    options = {k: settings[k] for k in ("method", "max_iter", "tol", "n_mc", "sampler")}
    n_workers = jobs if scheduler is None else None

    from tqdm.auto import tqdm

    bar = tqdm(total=len(points), initial=n_reused, unit="pt", desc="sweep", disable=not progress,
               smoothing=0.05, dynamic_ncols=True, file=sys.stderr)
    n_computed = 0
    cpu_total = 0.0

    def save(results):
        nonlocal n_computed, cpu_total
        for params, values, meta in results:
            meta["run_id"] = run_id
            store.write_point(params, values, meta, shash)
            n_computed += 1
            cpu_total += float(meta.get("cpu_s") or 0.0)
        bar.update(len(results))

    interrupted = False
    try:
        if todo:
            if scheduler is not None:
                _run_dask(scheduler, todo, point_fn, obs, options, chunk_size, save, timeout=scheduler_timeout)
            elif jobs == 1:
                size = chunk_size or 1
                with _blas_single_thread_here():
                    for chunk in _chunks(todo, size):
                        save(_run_chunk(point_fn, chunk, obs, options))
            else:
                _run_pool(jobs, todo, point_fn, obs, options, chunk_size, save)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    n_done = n_reused + n_computed
    if interrupted:
        log(
            f"sweep interrupted: {n_done}/{len(points)} points stored in {store.points_dir} "
            f"({n_computed} this run); continue with --resume"
        )
        raise SweepInterrupted()

    t_cons = time.perf_counter()
    ds = consolidate(store)
    t_cons = time.perf_counter() - t_cons
    wall = time.time() - t_start
    n_conv = int(ds["converged"].sum())
    record = {
        "command": "sweep",
        "grid": grid.to_dict(),
        "swept": grid.swept,
        "n_points": len(points),
        "settings": settings,
        "executor": {"scheduler": scheduler} if scheduler else {"jobs": n_workers},
        "run_id": run_id,
        "n_computed": n_computed,
        "n_reused": n_reused,
        "n_converged": n_conv,
        "elapsed_s": wall,
        "points_cpu_s": cpu_total,
        "consolidate_s": t_cons,
        **(t_est.to_dict() if t_est is not None else {}),
        "started_at": t_start,
        "seeds": sorted({int(s) for s in grid.mapping["seed"]}),
        "seed_derivation": ds.attrs["seed_derivation"],
        "versions": _versions(),
        "git_sha": _git_sha(),
        "argv": sys.argv,
    }
    store.write_products(ds, record)  # results.nc and run.json switched in together
    log(
        f"sweep done: {len(points)} points ({n_computed} computed, {n_reused} reused) in {wall:.1f} s; "
        f"{n_conv}/{len(points)} converged ({100.0 * n_conv / max(1, len(points)):.1f}%); "
        f"results in {store.results_path}"
    )
    return ds


def _total_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return None


def _check_memory(grid: SweepGrid, sampler: str, jobs: int, method: str = "cavity") -> None:
    """Refuse a grid whose largest point cannot fit in this machine's memory (``jobs`` points at a time)."""
    from ._point import estimate_point_bytes

    total = _total_memory()
    if total is None:
        return
    big = {k: max(v) for k, v in grid.values if k in ("D", "N", "P")}
    big["corr"] = max(grid.mapping["corr"])
    need = estimate_point_bytes(big, sampler, method)
    at_once = need * min(jobs, grid.n_points)
    if at_once > total:
        gib = 2.0**30
        raise InvalidParameterError(
            f"The sweep grid's largest point (D={big['D']}, N={big['N']}, P={big['P']}) needs about "
            f"{need / gib:.3g} GiB ({at_once / gib:.3g} GiB for {min(jobs, grid.n_points)} at once), more than this "
            f"machine's {total / gib:.3g} GiB: lower P or D, or --jobs."
        )


def _auto_chunk(n_todo: int, n_workers: int) -> int:
    return max(1, min(64, n_todo // (16 * max(1, n_workers))))


def _run_pool(jobs, todo, point_fn, obs, options, chunk_size, save) -> None:
    import multiprocessing as mp

    size = chunk_size or _auto_chunk(len(todo), jobs)
    it = iter(_chunks(todo, size))
    with _single_thread_env():
        ex = ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"), initializer=_worker_init)
    submitted: list = []
    saved: set = set()

    def submit_next() -> bool:
        chunk = next(it, None)
        if chunk is None:
            return False
        with _single_thread_env():  # workers are spawned lazily, on submit, and inherit this environment
            submitted.append(ex.submit(_run_chunk, point_fn, chunk, obs, options))
        return True

    try:
        # a bounded queue (2 chunks per worker) so that an interrupt leaves little half-done work
        pending = set()
        for _ in range(2 * jobs):
            if submit_next():
                pending.add(submitted[-1])
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                save(f.result())
                saved.add(f)
                if submit_next():
                    pending.add(submitted[-1])
    except KeyboardInterrupt:
        # lose nothing: drop the queued chunks, let the running ones end, store every finished one
        ex.shutdown(wait=True, cancel_futures=True)
        for f in submitted:
            if f not in saved and f.done() and not f.cancelled() and f.exception() is None:
                save(f.result())
        raise
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def _run_dask(address, todo, point_fn, obs, options, chunk_size, save, *, timeout: float = 5.0) -> None:
    try:
        from dask.distributed import Client, as_completed
    except ImportError as exc:  # pragma: no cover
        raise InvalidParameterError(f"--scheduler needs dask.distributed ({exc}).") from None
    if not str(address).startswith(("tcp://", "tls://", "inproc://", "ucx://", "ws://", "wss://")):
        raise InvalidParameterError(f"The 'scheduler' parameter must be an address like tcp://HOST:PORT. Got {address!r} instead.")
    import dask

    t = f"{float(timeout)}s"
    try:
        with dask.config.set({"distributed.comm.timeouts.connect": t}):
            client = Client(address, timeout=t, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise InvalidParameterError(
            f"Cannot reach the Dask scheduler at {address!r} within {float(timeout):g} s "
            f"(--scheduler-timeout): {first}"
        ) from None
    try:
        n_workers = max(1, sum(w.get("nthreads", 1) for w in client.scheduler_info().get("workers", {}).values()))
        size = chunk_size or _auto_chunk(len(todo), n_workers)
        futures = [client.submit(_run_chunk, point_fn, chunk, obs, options, pure=False) for chunk in _chunks(todo, size)]
        try:
            for fut in as_completed(futures, loop=client.loop):
                save(fut.result())
        except KeyboardInterrupt:
            client.cancel(futures)
            raise
    finally:
        client.close()


#: the settings of a sweep (a config file's [settings] table, or the command's flags)
SETTINGS = ("observables", "method", "max_iter", "tol", "n_mc", "sampler", "jobs", "scheduler", "scheduler_timeout",
            "chunk_size", "point_fn")


def _check_not_foreign(out: str, *, force: bool) -> None:
    """Refuse, before any work, a folder that holds files but no sweep, unless ``force`` (they are kept)."""
    from pathlib import Path

    p = Path(out)
    if force or not p.is_dir() or (p / "sweep.json").exists() or (p / "points").exists():
        return
    others = sorted(e.name for e in os.scandir(p) if e.name != ".lock")
    if others:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise InvalidParameterError(
            f"The '--out' parameter must be a new or empty folder, or a sweep folder. Got {out!r}, which holds "
            f"files that are not a sweep ({shown}); choose another folder or pass --force (they are then kept)."
        )


def sweep_run(out: str, *, config: str | None = None, grid: dict | None = None, settings: dict | None = None,
              allow_point_fn: bool = False, resume: bool = False, force: bool = False, repair: bool = False,
              progress: bool = True, yes: bool = False):
    """What ``spinlens sweep`` does: `run_sweep` over the grid of a config file (`load_config`: its [grid] and
    [settings]) with ``grid`` and ``settings`` (the command's flags, None = not given) taking precedence.

    Refused in one line, before any work: an ``out`` folder that holds files but no sweep (unless ``force``),
    unknown config keys, bad observables or jobs, and a point function outside spinlens without
    ``allow_point_fn`` (it would run with the user's rights). A point function of the user that fails is
    reported as bad input (nothing left behind when nothing finished). Returns the consolidated dataset.
    """
    from pathlib import Path

    from spinlens.io import check_out_dir

    from ._grid import PARAMETERS, load_config
    from ._point import DEFAULT_OBSERVABLES

    check_out_dir("--out", out)
    _check_not_foreign(out, force=force)
    if config is not None and not config.strip():
        raise InvalidParameterError("The 'config' parameter got an empty file name.")
    cfg = load_config(config) if config else {"grid": {}, "settings": {}}
    grid_spec = dict(cfg["grid"])
    grid_spec.update({k: v for k, v in (grid or {}).items() if v is not None})
    merged = dict(cfg["settings"])
    unknown = sorted(set(merged) - set(SETTINGS))
    if unknown:
        raise InvalidParameterError(
            f"The 'config' file has unknown keys {unknown}; grid parameters are {', '.join(PARAMETERS)} "
            f"and settings are {sorted(SETTINGS)}."
        )
    flags = {k: v for k, v in (settings or {}).items() if v is not None}
    merged.update(flags)
    point_fn = merged.get("point_fn")
    if point_fn is not None:
        if not isinstance(point_fn, str):
            raise InvalidParameterError(f"The 'point_fn' setting must be a string 'module:function'. Got {point_fn!r} instead.")
        if point_fn not in BUILTIN_POINT_FNS and not allow_point_fn:
            where = "--point-fn" if "point_fn" in flags else f"the 'config' file {config!r}"
            raise InvalidParameterError(
                f"The 'point_fn' {point_fn!r} from {where} is not one of spinlens' own point functions "
                f"({', '.join(BUILTIN_POINT_FNS)}); it would be imported and run with your rights: pass "
                "--allow-point-fn if you trust it."
            )
    the_grid = make_grid(grid_spec)
    obs = merged.get("observables", list(DEFAULT_OBSERVABLES))
    if isinstance(obs, str):
        obs = [o.strip() for o in obs.split(",")]
    if not isinstance(obs, (list, tuple)) or not obs or not all(isinstance(o, str) and o.strip() for o in obs):
        raise InvalidParameterError(f"The 'observables' setting must be a non-empty list of names (or a comma-separated "
                                    f"string) without empty items. Got {merged.get('observables')!r} instead.")
    if flags.get("jobs") is not None and flags["jobs"] < 1:
        raise InvalidParameterError(f"The 'jobs' parameter must be an integer >= 1. Got {flags['jobs']} instead.")
    kwargs = {k: merged[k] for k in SETTINGS if k in merged and k != "observables"}
    custom_fn = point_fn if point_fn not in BUILTIN_POINT_FNS else None  # user code, not ours
    fresh = not Path(out).exists()
    try:
        return run_sweep(the_grid, obs, out, resume=resume, force=force, repair=repair, progress=progress, yes=yes,
                         **kwargs)
    except (InvalidParameterError, KeyboardInterrupt, OSError, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - user code: a point function that fails is bad input, not our bug
        if not custom_fn:
            raise
        points = Path(out) / "points"
        if fresh and not (points.is_dir() and any(points.iterdir())):  # nothing finished: leave nothing behind
            import shutil

            shutil.rmtree(out, ignore_errors=True)
        raise InvalidParameterError(
            f"The 'point_fn' {custom_fn!r} failed: {type(exc).__name__}: {exc}; a point function takes "
            "(params: dict, observables: list, **options) and returns a dict of observables."
        ) from None
