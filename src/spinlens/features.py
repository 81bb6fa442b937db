"""Spin features s = c ⊗ q of the simplified linear attention, computed in O(P·N·D).

The merged model predicts ŷ = [Z Zᵀ W Z]_{D,N}/(N+1) = cᵀ W q with
c = Z Zᵀ[D, :]/(N+1) = Σ_{i<N} y_i [x_i; y_i]/(N+1) (shape D+1) and q = Z[:, N] = [x_query; 0],
so ŷ = Σ_ab W_ab c_a q_b = s · W.reshape(-1) with s = (c ⊗ q).reshape(-1) (`conventions.flat_index`).
Z Zᵀ is never formed.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from . import conventions
from .errors import InvalidParameterError

#: prompts per streamed batch (`stream_features`, `PromptDistribution.iter_batches`); the draws of more
#: than BATCH_SIZE prompts depend on it
BATCH_SIZE = 4096


@dataclasses.dataclass(frozen=True)
class SpinFeatures:
    """Factored spin features. ``C`` (P, D+1) and ``Q`` (P, D+1); s_μ = C_μ ⊗ Q_μ (never stored)."""

    C: np.ndarray
    Q: np.ndarray

    @property
    def n_prompts(self) -> int:
        return self.C.shape[0]

    @property
    def d(self) -> int:
        return self.C.shape[1] - 1

    @property
    def n_spins(self) -> int:
        return self.C.shape[1] ** 2

    def dense(self, rows=slice(None)) -> np.ndarray:
        """The feature matrix S of shape (P, (D+1)²) (or a row block of it)."""
        C, Q = self.C[rows], self.Q[rows]
        return (C[:, :, None] * Q[:, None, :]).reshape(C.shape[0], -1)

    def predict(self, W: np.ndarray, *, chunk: int = 8192) -> np.ndarray:
        """ŷ_μ = C_μᵀ W Q_μ for W of shape (D+1, D+1) (or flattened), shape (P,); row chunks bound the temporaries."""
        W = np.asarray(W).reshape(self.C.shape[1], self.C.shape[1])
        out = np.empty(self.C.shape[0])
        for s in range(0, self.C.shape[0], chunk):
            out[s:s + chunk] = np.einsum("pb,pb->p", self.C[s:s + chunk] @ W, self.Q[s:s + chunk])
        return out

    def rmatvec(self, u: np.ndarray, *, chunk: int = 8192) -> np.ndarray:
        """Sᵀ u as a (D+1, D+1) matrix: Σ_μ u_μ C_μ Q_μᵀ (row chunks bound the temporaries)."""
        D1 = self.C.shape[1]
        out = np.zeros((D1, D1))
        for s in range(0, self.C.shape[0], chunk):
            out += (self.C[s:s + chunk] * u[s:s + chunk, None]).T @ self.Q[s:s + chunk]
        return out


def spin_features(prompts_or_Z) -> SpinFeatures:
    """Factored features of prompts (a `Prompts` or an array Z of shape (P, D+1, N+1))."""
    Z = getattr(prompts_or_Z, "Z", prompts_or_Z)
    Z = np.asarray(Z)
    D = Z.shape[1] - 1
    N = Z.shape[2] - 1
    ctx = Z[:, :, :N]  # the query column has label 0, so it does not contribute to Z Zᵀ[D, :]
    C = np.einsum("pn,pan->pa", ctx[:, D, :], ctx, optimize=True) * conventions.token_average(N)
    Q = np.array(Z[:, :, N])
    return SpinFeatures(C, Q)


@dataclasses.dataclass(frozen=True)
class FeatureSample:
    """Features, targets and tasks of sampled prompts (without the prompts themselves).

    ``w`` (n_prompts, d) is None when the tasks were not kept (`stream_features` with ``keep_tasks=False``).
    """

    features: SpinFeatures
    y: np.ndarray
    w: np.ndarray | None
    pool: np.ndarray | None


SAMPLERS = ("auto", "core", "reduced")


def resolve_sampler(sampler: str, dist) -> str:
    """"core" or "reduced" for ``sampler`` ∈ {"auto", "core", "reduced"}: auto is reduced where corr = 0."""
    if sampler not in SAMPLERS:
        raise InvalidParameterError(f"The 'sampler' parameter must be one of {SAMPLERS}. Got {sampler!r} instead.")
    if sampler == "reduced" and dist.corr != 0:
        raise InvalidParameterError(
            f"The 'reduced' sampler needs independent positions (corr = 0); got corr = {dist.corr}. Use 'core' or 'auto'."
        )
    if sampler == "auto":
        return "reduced" if dist.corr == 0 else "core"
    return sampler


def stream_features(dist, n_prompts: int, *, rng, sampler: str = "core", batch_size: int | None = None,
                    pool: np.ndarray | None = None, keep_tasks: bool = False, on_batch=None,
                    progress: bool = False) -> FeatureSample:
    """Draw ``n_prompts`` prompts batch by batch and keep only their features (C, Q), targets and tasks.

    At most one batch of prompts exists at a time; the features are written into arrays allocated once
    (memory (2(D+1)+1)·P numbers, plus P·D for the tasks with ``keep_tasks``).

    Parameters
    ----------
    dist : PromptDistribution
    n_prompts : int
    rng : seed or numpy Generator
        One generator feeds every batch in order, so the result depends on ``batch_size`` (default
        `BATCH_SIZE`) but not on anything else: with the "core" sampler it equals
        `spin_features` of ``dist.sample_batched(n_prompts, rng=rng, batch_size=batch_size)``.
    sampler : {"core", "reduced", "auto"}
        "core": full prompts (`PromptDistribution.iter_batches`). "reduced": the same law of the features
        from about 3D+4 numbers per prompt (`sample_reduced_features`, corr = 0 only). "auto": reduced where
        corr = 0.
    pool : array (n_tasks, d), optional
        The task pool (drawn first from ``rng`` when the distribution has ``n_tasks`` and none is given).
    keep_tasks : bool
        Keep each prompt's task vector (``w``).
    on_batch : callable, optional
        Called with each `Prompts` batch ("core" only), e.g. to write the prompts out.
    progress : bool
        tqdm progress bar over batches.
    """
    from .errors import check_int
    from .random import as_generator

    P = check_int("n_prompts", n_prompts, low=1, owner="stream_features")
    bs = check_int("batch_size", BATCH_SIZE if batch_size is None else batch_size, low=1, owner="stream_features")
    kind = resolve_sampler(sampler, dist)
    g = as_generator(rng)
    if pool is None and dist.n_tasks is not None:
        pool = dist.sample_pool(rng=g)
    D1 = dist.d + 1
    C = np.empty((P, D1))
    Q = np.empty((P, D1))
    y = np.empty(P)
    w = np.empty((P, dist.d)) if keep_tasks else None
    starts = range(0, P, bs)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="features", unit="batch")
    for s in starts:
        b = min(bs, P - s)
        if kind == "reduced":
            fs = sample_reduced_features(dist, b, rng=g, pool=pool)
            f, yb, wb = fs.features, fs.y, fs.w
        else:
            p = dist.sample(b, rng=g, pool=pool)
            if on_batch is not None:
                on_batch(p)
            f, yb, wb = spin_features(p), p.y, p.w
        C[s:s + b], Q[s:s + b], y[s:s + b] = f.C, f.Q, yb
        if w is not None:
            w[s:s + b] = wb
    return FeatureSample(SpinFeatures(C, Q), y, w, pool)


def sample_reduced_features(dist, n_prompts: int, *, rng, pool: np.ndarray | None = None) -> FeatureSample:
    r"""Draw spin features, targets and tasks without drawing the context inputs (``corr == 0`` only).

    Exact in distribution, not in sample path, compared with `PromptDistribution.sample` followed by
    `spin_features`. Write x_i = σ_x(u_i ŵ + r_i) with u_i ~ N(0, 1) along ŵ = w/|w| and
    r_i ~ N(0, I − ŵŵᵀ); then y_i = a u_i + ε_i with a = σ_x|w|/√D and
    Σ y_i x_i = σ_x(S_yu ŵ + √S_yy r̃) with r̃ ~ N(0, I − ŵŵᵀ), S_yu = aΣu² + Σuε,
    S_yy = Σy² = a²Σu² + 2aΣuε + Σε². The triple (Σu², Σuε, Σε²) is a 2×2 Wishart W₂(N, diag(1, σ_ε²)),
    drawn by Bartlett's decomposition. A prompt costs about 3D + 4 random numbers instead of D(N + 2).

    Parameters
    ----------
    dist : PromptDistribution
        With ``corr == 0`` (independent positions).
    n_prompts : int
    rng : numpy Generator
    pool : array of shape (n_tasks, d), optional
        Task pool; drawn from ``rng`` when ``dist.n_tasks`` is set and no pool is given.

    Returns
    -------
    FeatureSample
        ``features`` (C, Q of shape (n_prompts, d+1)), ``y`` (n_prompts,), ``w`` (n_prompts, d),
        ``pool`` (n_tasks, d) or None.
    """
    if dist.corr != 0:
        raise InvalidParameterError(
            f"sample_reduced_features needs independent positions (corr = 0); got corr = {dist.corr}."
        )
    g = rng
    P, D, N = int(n_prompts), dist.d, dist.n_context
    if pool is None and dist.n_tasks is not None:
        pool = dist.sample_pool(rng=g)
    if pool is not None:
        w = np.asarray(pool, dtype=float)[g.integers(0, pool.shape[0], size=P)]
    else:
        w = dist.sample_tasks(P, rng=g)
    sx, se = dist.sigma_x, dist.sigma_eps
    norm = np.linalg.norm(w, axis=1)
    safe = np.where(norm > 0, norm, 1.0)
    what = w / safe[:, None]
    what[norm == 0] = np.eye(D)[0]
    a = sx * norm / math.sqrt(D)
    c1sq = g.chisquare(N, size=P)
    if se > 0:
        n21 = g.standard_normal(P)
        c2sq = g.chisquare(N - 1, size=P) if N > 1 else np.zeros(P)
        suu, sue, see = c1sq, se * np.sqrt(c1sq) * n21, se * se * (n21 * n21 + c2sq)
    else:
        suu, sue, see = c1sq, np.zeros(P), np.zeros(P)
    syu = a * suu + sue
    syy = a * a * suu + 2.0 * a * sue + see
    z = g.standard_normal((P, D))
    r = z - np.sum(z * what, axis=1, keepdims=True) * what  # N(0, I - ŵŵᵀ)
    inv = 1.0 / (N + 1)  # conventions.token_average(N)
    C = np.empty((P, D + 1))
    C[:, :D] = sx * (syu[:, None] * what + np.sqrt(np.maximum(syy, 0.0))[:, None] * r) * inv
    C[:, D] = syy * inv
    xq = sx * g.standard_normal((P, D))
    Q = np.zeros((P, D + 1))
    Q[:, :D] = xq
    y = np.sum(w * xq, axis=1) / math.sqrt(D)  # conventions.label_scale(D)
    if se > 0:
        y = y + se * g.standard_normal(P)
    return FeatureSample(SpinFeatures(C, Q), y, w, pool)


def stream_features_torch(dist, n_prompts: int, *, seed: int, device="cpu", batch_size: int = 65536,
                          pool: np.ndarray | None = None) -> FeatureSample:
    """`stream_features` with the "core" sampler run in torch on ``device`` (float64); features returned as numpy.

    Each batch's prompts are drawn and reduced to (C, Q) on the device, then copied into host arrays, so a
    GPU does the O(P·D·N) part. The random stream is torch's (``torch.Generator`` seeded with ``seed``): same
    law as the numpy samplers, different draws. torch is imported only here.
    """
    import torch

    from .errors import check_int

    P = check_int("n_prompts", n_prompts, low=1, owner="stream_features_torch")
    bs = check_int("batch_size", batch_size, low=1, owner="stream_features_torch")
    dev = torch.device(device)
    g = torch.Generator(device=dev)
    g.manual_seed(int(seed))
    D, N, f64 = dist.d, dist.n_context, torch.float64
    if pool is None and dist.n_tasks is not None:
        pool = (dist.sigma_w * torch.randn(dist.n_tasks, D, generator=g, device=dev, dtype=f64)).cpu().numpy()
    pool_t = None if pool is None else torch.as_tensor(pool, dtype=f64, device=dev)
    D1 = D + 1
    C, Q, y = np.empty((P, D1)), np.empty((P, D1)), np.empty(P)
    inv, ls = conventions.token_average(N), conventions.label_scale(D)
    for s in range(0, P, bs):
        b = min(bs, P - s)
        if pool_t is not None:
            w = pool_t[torch.randint(0, pool_t.shape[0], (b,), generator=g, device=dev)]
        else:
            w = dist.sigma_w * torch.randn(b, D, generator=g, device=dev, dtype=f64)
        x = torch.randn(b, D, N + 1, generator=g, device=dev, dtype=f64)
        if dist.corr > 0:
            x = math.sqrt(1 - dist.corr) * x + math.sqrt(dist.corr) * torch.randn(b, D, 1, generator=g, device=dev, dtype=f64)
        x = dist.sigma_x * x
        yy = torch.einsum("pd,pdn->pn", w, x) * ls
        if dist.sigma_eps > 0:
            yy = yy + dist.sigma_eps * torch.randn(b, N + 1, generator=g, device=dev, dtype=f64)
        yc = yy[:, :N]
        Cb = torch.empty(b, D1, dtype=f64, device=dev)
        Cb[:, :D] = torch.einsum("pn,pdn->pd", yc, x[:, :, :N]) * inv
        Cb[:, D] = (yc * yc).sum(1) * inv
        C[s:s + b] = Cb.cpu().numpy()
        Q[s:s + b, :D] = x[:, :, N].cpu().numpy()
        Q[s:s + b, D] = 0.0
        y[s:s + b] = yy[:, N].cpu().numpy()
    return FeatureSample(SpinFeatures(C, Q), y, None, pool)
