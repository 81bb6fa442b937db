"""How many BLAS threads a solve uses: chosen by problem size, overridable.

Small matrices (a few hundred spins) run slower with several BLAS threads on a busy machine: the threads
wait for each other more than they compute. `thread_policy` therefore limits BLAS to one thread below
`SMALL_SPINS` spins. Above, it uses the cores that are free: the available cores minus the 1-minute load
average of the other processes (at least 1), since a BLAS thread that has to share its core with another
process stalls every other thread at each synchronisation (measured: a 0.26 s product took 2-3 s with 2
threads on a 2-core machine at load 6.5). Overrides, first match wins:

1. an explicit ``threads`` argument (``--threads`` on the command line);
2. ``$SPINLENS_THREADS``;
3. any of ``$OMP_NUM_THREADS``, ``$OPENBLAS_NUM_THREADS``, ``$MKL_NUM_THREADS``: the BLAS is left as
   those configured it.

>>> from spinlens.threads import choose_threads
>>> choose_threads(441, threads=3)
3
"""

from __future__ import annotations

import contextlib
import os

from .errors import check_int

#: below this many spins ((D+1)² < 2500, i.e. D < 49) a solve uses one BLAS thread
SMALL_SPINS = 2500
ENV = "SPINLENS_THREADS"
_BLAS_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def available_cores() -> int:
    """Cores this process may run on (its affinity mask)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def choose_threads(n_spins: int, *, threads: int | None = None) -> int | None:
    """BLAS threads for a problem of ``n_spins`` spins; None means "leave the BLAS as configured"."""
    if threads is not None:
        return check_int("threads", threads, low=1)
    env = os.environ.get(ENV)
    if env:
        return check_int(f"${ENV}", int(env) if env.strip().isdigit() else env, low=1)
    if any(os.environ.get(k) for k in _BLAS_ENV):
        return None
    if n_spins < SMALL_SPINS:
        return 1
    return free_cores()


def free_cores() -> int:
    """Available cores minus the load of other processes (1-minute load average), at least 1."""
    cores = available_cores()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover
        return cores
    return max(1, min(cores, int(cores - load + 1.0)))


@contextlib.contextmanager
def thread_policy(n_spins: int, *, threads: int | None = None):
    """Context manager: limit BLAS (and OpenMP) to `choose_threads` threads; yields the number (or None)."""
    n = choose_threads(n_spins, threads=threads)
    if n is None:
        yield None
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n):
        yield n
