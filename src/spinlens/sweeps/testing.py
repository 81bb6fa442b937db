"""A cheap stand-in point function for testing the sweep machinery (executors, store, resume).

``toy_point`` has the signature of `compute_point` and is a deterministic function of the point's
random stream, so it exercises the seeding contract without solving anything. Two environment variables
help tests: ``SPINLENS_TOY_SLEEP`` (seconds to sleep per point, to make a sweep slow enough to kill)
and ``SPINLENS_TOY_LOG`` (a file to which every call appends one line ``key pid``, to count
recomputations).
"""

from __future__ import annotations

import math
import os
import time

import numpy as np

from ._grid import point_key, point_seed_sequence
from ._point import check_observables

__all__ = ["toy_point"]


def toy_point(params: dict, observables, **options) -> dict:
    """Stand-in for `compute_point`: observables are simple functions of (N, P) plus point noise.

    ``contrast_ratio = P/(P+10N) + 0.01 g`` with g ~ N(0,1) from the point's stream; ``converged`` is
    False where P < 2N (mimicking the blank region of Fig 4a); other requested observables are further
    draws of the stream.
    """
    t0 = time.perf_counter()
    obs = check_observables(observables)
    sleep = float(os.environ.get("SPINLENS_TOY_SLEEP", "0") or 0)
    if sleep > 0:
        time.sleep(sleep)
    log = os.environ.get("SPINLENS_TOY_LOG")
    if log:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{point_key(params)} {os.getpid()}\n".encode())
        finally:
            os.close(fd)
    g = np.random.default_rng(point_seed_sequence(params))
    noise = g.standard_normal(len(obs) + 1)
    N, P = params["N"], params["P"]
    converged = bool(P >= 2 * N)
    out: dict = {"converged": converged, "n_iter": int(10 + (N * P + params["seed"]) % 90)}
    for i, name in enumerate(obs):
        if name in out or name == "elapsed_s":
            continue
        if name == "contrast_ratio":
            out[name] = P / (P + 10.0 * N) + 0.01 * float(noise[0]) if converged else math.nan
        else:
            out[name] = float(noise[i + 1])
    out["elapsed_s"] = time.perf_counter() - t0
    return out
