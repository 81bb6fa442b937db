"""Prompt distributions for in-context linear regression, and the `Prompts` container.

A prompt is the matrix Z of shape (D+1, N+1): column i = [x_i; y_i] for i < N, last column [x_query; 0]
(the query label hidden). Labels are y = w·x/√D + ε (`spinlens.conventions.label_scale`); the target of a
prompt is the query's label y_query (noise included).
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import numpy as np

from . import conventions
from .errors import InvalidParameterError, InvalidPromptsError, check_float, check_int
from .features import BATCH_SIZE
from .io import atomic_savez
from .random import RNGLike, as_generator


@dataclasses.dataclass(frozen=True)
class Prompts:
    """A batch of regression prompts.

    Attributes
    ----------
    Z : ndarray of shape (n_prompts, d+1, n_context+1)
        Prompt matrices; ``Z[:, d, n_context] == 0`` (hidden query label).
    y : ndarray of shape (n_prompts,)
        Targets (the query labels).
    w : ndarray of shape (n_prompts, d) or None
        The task vector of each prompt, when known.
    task_index : ndarray of shape (n_prompts,) or None
        Index into ``pool`` of each prompt's task, for a finite task pool.
    pool : ndarray of shape (n_tasks, d) or None
        The finite pool of pretraining tasks, if any.
    """

    Z: np.ndarray
    y: np.ndarray
    w: np.ndarray | None = None
    task_index: np.ndarray | None = None
    pool: np.ndarray | None = None

    def __post_init__(self):
        validate_prompts(self.Z, self.y, self.w)

    @property
    def n_prompts(self) -> int:
        return self.Z.shape[0]

    @property
    def d(self) -> int:
        return self.Z.shape[1] - 1

    @property
    def n_context(self) -> int:
        return self.Z.shape[2] - 1

    def __len__(self) -> int:
        return self.n_prompts

    def __repr__(self) -> str:
        return (
            f"Prompts(n_prompts={self.n_prompts}, d={self.d}, n_context={self.n_context}, "
            f"dtype={self.Z.dtype}, tasks={'yes' if self.w is not None else 'no'}"
            f"{', pool=' + str(len(self.pool)) if self.pool is not None else ''})"
        )

    def subset(self, idx) -> Prompts:
        idx = np.asarray(idx)
        return Prompts(
            self.Z[idx],
            self.y[idx],
            None if self.w is None else self.w[idx],
            None if self.task_index is None else self.task_index[idx],
            self.pool,
        )

    @classmethod
    def concatenate(cls, batches: list[Prompts]) -> Prompts:
        """The prompts of ``batches`` in order, as one `Prompts` (``w`` and ``task_index`` when every batch has
        them; the pool of the first batch, which the batches of one draw share)."""

        def cat(parts: list[np.ndarray | None]) -> np.ndarray | None:
            arrays = [a for a in parts if a is not None]
            return np.concatenate(arrays) if len(arrays) == len(parts) else None

        return cls(np.concatenate([b.Z for b in batches]), np.concatenate([b.y for b in batches]),
                   cat([b.w for b in batches]), cat([b.task_index for b in batches]), batches[0].pool)

    def save(self, path: str | os.PathLike) -> Path:
        """Write to ``.npz`` with keys Z, y and (when known) w, task_index, pool; atomically."""
        path = Path(path)
        arrays = {"Z": self.Z, "y": self.y}
        for k in ("w", "task_index", "pool"):
            if getattr(self, k) is not None:
                arrays[k] = getattr(self, k)
        return atomic_savez(path, **arrays)


def validate_prompts(Z, y, w=None) -> None:
    """Check the Prompts contract; raise `InvalidPromptsError` saying exactly what is wrong."""
    if not isinstance(Z, np.ndarray) or Z.ndim != 3:
        raise InvalidPromptsError(
            f"Z must be an array of shape (n_prompts, d+1, n_context+1); got {getattr(Z, 'shape', type(Z))}."
        )
    P, D1, N1 = Z.shape
    if P < 1 or D1 < 2 or N1 < 2:
        raise InvalidPromptsError(
            f"Z has shape {Z.shape}; need n_prompts >= 1, d+1 >= 2 and n_context+1 >= 2."
        )
    if not np.issubdtype(Z.dtype, np.floating):
        raise InvalidPromptsError(f"Z must hold floating-point numbers; got dtype {Z.dtype}.")
    if not isinstance(y, np.ndarray) or y.shape != (P,):
        raise InvalidPromptsError(f"y has shape {getattr(y, 'shape', None)}; expected (n_prompts,) = ({P},).")
    if not np.all(np.isfinite(Z)):
        bad = np.argwhere(~np.isfinite(Z))[0]
        raise InvalidPromptsError(f"Z has a non-finite value (first at index {tuple(int(i) for i in bad)}).")
    if not np.all(np.isfinite(y)):
        raise InvalidPromptsError(f"y has a non-finite value (first at index {int(np.argmax(~np.isfinite(y)))}).")
    nz = np.flatnonzero(Z[:, D1 - 1, N1 - 1] != 0)
    if nz.size:
        raise InvalidPromptsError(
            f"the query label Z[:, d, n_context] must be 0 (it is hidden); prompt {int(nz[0])} has "
            f"{Z[nz[0], D1 - 1, N1 - 1]!r} ({nz.size} prompts affected)."
        )
    if w is not None:
        if not isinstance(w, np.ndarray) or w.shape != (P, D1 - 1):
            raise InvalidPromptsError(
                f"w has shape {getattr(w, 'shape', None)}; expected (n_prompts, d) = ({P}, {D1 - 1})."
            )
        if not np.all(np.isfinite(w)):
            raise InvalidPromptsError("w has a non-finite value.")


def load_prompts(path: str | os.PathLike, *, dtype=np.float64) -> Prompts:
    """Load prompts from an ``.npz`` with keys ``Z``, ``y`` and optionally ``w`` (validated)."""
    path = Path(path)
    if not path.exists():
        raise InvalidPromptsError(f"prompts file {str(path)!r} does not exist.")
    if path.is_dir():
        raise InvalidPromptsError(f"prompts file {str(path)!r} is a folder; expected an .npz file.")
    from spinlens.io import check_regular_file

    check_regular_file("data", path)  # a FIFO or device would block the read below
    with open(path, "rb") as fh:
        head = fh.read(6)
    if not head.startswith(b"PK"):  # np.load falls back to unpickling, whose message would mislead
        what = "a single .npy array" if head.startswith(b"\x93NUMPY") else "not an .npz archive (a zip of .npy arrays)"
        raise InvalidPromptsError(f"cannot read prompts file {str(path)!r}: it is {what}; expected an .npz with keys "
                                  "'Z' and 'y' (see `spinlens prompts`).")
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except Exception as exc:  # zip/npz errors of many kinds
        raise InvalidPromptsError(f"cannot read {str(path)!r} as .npz: {exc}") from None
    missing = [k for k in ("Z", "y") if k not in data]
    if missing:
        raise InvalidPromptsError(
            f"{str(path)!r} lacks key(s) {missing}; a prompts file needs 'Z' (n_prompts, d+1, n_context+1) "
            f"and 'y' (n_prompts,), optionally 'w' (n_prompts, d). Found keys: {sorted(data)}."
        )
    for k in ("Z", "y", "w", "pool"):
        if k in data:
            if not (np.issubdtype(data[k].dtype, np.floating) or np.issubdtype(data[k].dtype, np.integer)):
                raise InvalidPromptsError(f"key {k!r} has non-numeric dtype {data[k].dtype}.")
            data[k] = data[k].astype(dtype, copy=False)  # no second copy of Z when it is float64 already
    return Prompts(
        data["Z"],
        data["y"],
        data.get("w"),
        data.get("task_index"),
        data.get("pool"),
    )


@dataclasses.dataclass(frozen=True)
class PromptDistribution:
    """The distribution of in-context regression prompts (Li, Bai, Huang 2024, with extensions).

    x_i ~ N(0, σ_x² I_D) (positions correlated with coefficient ``corr``), w ~ N(0, σ_w² I_D),
    y_i = w·x_i/√D + ε_i with ε_i ~ N(0, σ_ε²).

    Parameters
    ----------
    d : int >= 1
        Token dimension D.
    n_context : int >= 1
        Number of context pairs N.
    sigma_x, sigma_w : float > 0
        Standard deviations of input and task coordinates (paper: 1).
    sigma_eps : float >= 0
        Label-noise standard deviation (default 0, noiseless).
    corr : float in [0, 1)
        Correlation between any two positions of a prompt (default 0): x_i = σ_x(√c g + √(1−c) z_i).
    n_tasks : int >= 1 or None
        Size K of a finite task pool; None (default) draws a fresh task for every prompt.
    dtype : numpy float dtype, default float64.
    """

    d: int
    n_context: int
    sigma_x: float = 1.0
    sigma_w: float = 1.0
    sigma_eps: float = 0.0
    corr: float = 0.0
    n_tasks: int | None = None
    dtype: type = np.float64

    def __post_init__(self):
        own = "PromptDistribution"
        object.__setattr__(self, "d", check_int("d", self.d, low=1, owner=own))
        object.__setattr__(self, "n_context", check_int("n_context", self.n_context, low=1, owner=own))
        object.__setattr__(self, "sigma_x", check_float("sigma_x", self.sigma_x, low=0, low_open=True, owner=own))
        object.__setattr__(self, "sigma_w", check_float("sigma_w", self.sigma_w, low=0, low_open=True, owner=own))
        object.__setattr__(self, "sigma_eps", check_float("sigma_eps", self.sigma_eps, low=0, owner=own))
        object.__setattr__(self, "corr", check_float("corr", self.corr, low=0, high=1, high_open=True, owner=own))
        if self.n_tasks is not None:
            object.__setattr__(self, "n_tasks", check_int("n_tasks", self.n_tasks, low=1, owner=own))

    @property
    def isotropic(self) -> bool:
        """True when the closed forms of `spinlens.limit` apply (independent positions)."""
        return self.corr == 0.0

    def replace(self, **changes) -> PromptDistribution:
        return dataclasses.replace(self, **changes)

    def sample_tasks(self, n: int, *, rng: RNGLike = None) -> np.ndarray:
        """Draw n task vectors w ~ N(0, σ_w² I_D), shape (n, d)."""
        g = as_generator(rng)
        return (self.sigma_w * g.standard_normal((n, self.d))).astype(self.dtype, copy=False)

    def sample_pool(self, *, rng: RNGLike = None) -> np.ndarray:
        """Draw the finite task pool (n_tasks, d); raises if this distribution has no pool."""
        if self.n_tasks is None:
            raise InvalidParameterError("sample_pool needs a finite pool: set 'n_tasks' to an integer >= 1.")
        return self.sample_tasks(self.n_tasks, rng=rng)

    def sample_inputs(self, n_prompts: int, n_positions: int, *, rng: RNGLike = None) -> np.ndarray:
        """Inputs of shape (n_prompts, d, n_positions) with position correlation ``corr``."""
        g = as_generator(rng)
        z = g.standard_normal((n_prompts, self.d, n_positions))
        if self.corr > 0:
            shared = g.standard_normal((n_prompts, self.d, 1))
            z *= math.sqrt(1.0 - self.corr)
            z += math.sqrt(self.corr) * shared
        if self.sigma_x != 1.0:
            z *= self.sigma_x
        return z.astype(self.dtype, copy=False)

    def prompts_from_tasks(self, w: np.ndarray, *, rng: RNGLike = None) -> Prompts:
        """One prompt per row of ``w`` (n, d): fresh inputs and noise."""
        g = as_generator(rng)
        n = w.shape[0]
        D, N = self.d, self.n_context
        x = self.sample_inputs(n, N + 1, rng=g)  # (n, D, N+1)
        w = np.asarray(w, dtype=self.dtype)
        y_all = (w[:, None, :] @ x)[:, 0, :] * conventions.label_scale(D)
        if self.sigma_eps > 0:
            y_all = y_all + self.sigma_eps * g.standard_normal(y_all.shape)
        Z: np.ndarray = np.empty((n, D + 1, N + 1), dtype=self.dtype)
        Z[:, :D, :] = x
        Z[:, D, :N] = y_all[:, :N]
        Z[:, D, N] = 0.0
        return Prompts(Z, y_all[:, N].astype(self.dtype, copy=False), w)

    def sample_features(self, n_prompts: int, *, rng: RNGLike = None, chunk_size: int = BATCH_SIZE, pool=None):
        """Stream prompts in chunks and keep only their factored spin features and targets.

        Memory O(P·D) instead of the O(P·D·N) of the prompts themselves: use this for large P·D·N
        (e.g. D = 100, P = 10⁵). The draws are those of `sample_batched` with the same ``rng`` and
        ``chunk_size`` (and of `sample` when P ≤ ``chunk_size``). Returns ``(SpinFeatures, y)``; see
        `spinlens.features.stream_features` for the reduced sampler and the tasks.
        """
        from .features import stream_features

        n_prompts = check_int("n_prompts", n_prompts, low=1, owner="PromptDistribution.sample_features")
        chunk_size = check_int("chunk_size", chunk_size, low=1, owner="PromptDistribution.sample_features")
        fs = stream_features(self, n_prompts, rng=rng, sampler="core", batch_size=chunk_size, pool=pool)
        return fs.features, fs.y

    def iter_batches(self, n_prompts: int, *, rng: RNGLike = None, batch_size: int = BATCH_SIZE, pool=None):
        """Yield `Prompts` batches of at most ``batch_size`` prompts, ``n_prompts`` in all, from one generator.

        The finite pool (``n_tasks`` set and no ``pool`` given) is drawn first; every batch then draws its
        tasks, inputs and noise as `sample` does. Only one batch exists at a time.
        """
        n_prompts = check_int("n_prompts", n_prompts, low=1, owner="PromptDistribution.iter_batches")
        batch_size = check_int("batch_size", batch_size, low=1, owner="PromptDistribution.iter_batches")
        g = as_generator(rng)
        if pool is None and self.n_tasks is not None:
            pool = self.sample_pool(rng=g)
        for start in range(0, n_prompts, batch_size):
            yield self.sample(min(batch_size, n_prompts - start), rng=g, pool=pool)

    def sample_batched(self, n_prompts: int, *, rng: RNGLike = None, batch_size: int = BATCH_SIZE, pool=None) -> Prompts:
        """The prompts of `iter_batches`, all in memory (what the streaming entry points see batch by batch)."""
        batches = list(self.iter_batches(n_prompts, rng=rng, batch_size=batch_size, pool=pool))
        if len(batches) == 1:
            return batches[0]
        return Prompts.concatenate(batches)

    def sample(self, n_prompts: int, *, rng: RNGLike = None, pool: np.ndarray | None = None) -> Prompts:
        """Draw ``n_prompts`` prompts.

        With a finite pool (``n_tasks`` set, or ``pool`` given), each prompt's task is drawn uniformly
        from the pool; the pool itself is drawn from ``rng`` first when not given.
        """
        n_prompts = check_int("n_prompts", n_prompts, low=1, owner="PromptDistribution.sample")
        g = as_generator(rng)
        task_index = None
        if pool is None and self.n_tasks is not None:
            pool = self.sample_pool(rng=g)
        if pool is not None:
            pool = np.asarray(pool, dtype=self.dtype)
            if pool.ndim != 2 or pool.shape[1] != self.d:
                raise InvalidParameterError(f"pool has shape {pool.shape}; expected (n_tasks, d) with d = {self.d}.")
            task_index = g.integers(0, pool.shape[0], size=n_prompts)
            w = pool[task_index]
        else:
            w = self.sample_tasks(n_prompts, rng=g)
        p = self.prompts_from_tasks(w, rng=g)
        return dataclasses.replace(p, task_index=task_index, pool=pool)


def distribution_from_options(*, d: int, n_context: int, sigma_x: float = 1.0, sigma_w: float = 1.0,
                              sigma_eps: float = 0.0, corr: float = 0.0, n_tasks: int | None = None) -> PromptDistribution:
    """The `PromptDistribution` of the command line's prompt options, each checked under its flag (``--D``,
    ``--N``, ``--K``, ``--sigma-x`` ...) with the command line's bounds: D <= 10^4 ((D+1)^2 spins: beyond that
    no solver or model here holds them), N <= 10^7, K <= 10^12, scales in [1e-30, 1e30] (beyond them float64
    overflows in the sixth powers of the theory, σ_x⁶σ_w², and in E(W))."""
    d = check_int("--D", d, low=1, high=10_000)
    n_context = check_int("--N", n_context, low=1, high=10**7)
    n_tasks = None if n_tasks is None else check_int("--K", n_tasks, low=1, high=10**12)
    return PromptDistribution(
        d=d,
        n_context=n_context,
        sigma_x=check_float("--sigma-x", sigma_x, low=1e-30, high=1e30),
        sigma_w=check_float("--sigma-w", sigma_w, low=1e-30, high=1e30),
        sigma_eps=check_float("--sigma-eps", sigma_eps, low=0, high=1e30),
        corr=check_float("--corr", corr, low=0, high=1, high_open=True),
        n_tasks=n_tasks,
    )


def sample_prompts(dist: PromptDistribution, n_prompts: int, *, rng: RNGLike = None) -> Prompts:
    """``n_prompts`` prompts of ``dist`` drawn in batches (`PromptDistribution.sample_batched`, the batches
    ``spinlens solve --sampler core`` streams with the same generator), after refusing, before allocating, a
    ``--P`` that does not fit in memory (the budget of `spinlens.memory`: Z (P, D+1, N+1), y (P,), w (P, D) in
    float64, twice at the peak)."""
    from spinlens.memory import BASE_BYTES, GIB, SAFETY, available_memory

    P = check_int("--P", n_prompts, low=1)
    d, n = dist.d, dist.n_context
    need = BASE_BYTES + 2 * 8 * int(P) * ((d + 1) * (n + 1) + d + 1)
    avail = available_memory()
    if need > SAFETY * avail:
        raise InvalidParameterError(
            f"The '--P' parameter asks for {P} prompts at D={d}, N={n}: about {need / GIB:.2f} GiB, but only "
            f"{avail / GIB:.2f} GiB is available (a job may use {SAFETY:.0%} of it); use a smaller --P, D or N."
        )
    return dist.sample_batched(P, rng=rng)
