"""Observables of a solution W: errors, contrast ratio, spectra and the block statistics of h and J.

Errors are exact expectations (`spinlens.limit`) where the prompt distribution allows (independent
positions), Monte-Carlo over fresh prompts otherwise.
"""

from __future__ import annotations

import numpy as np

from . import limit
from .errors import check_int
from .features import spin_features
from .random import RNGLike


def _predict(W, prompts) -> np.ndarray:
    return spin_features(prompts).predict(W)


def mc_error(W, dist, *, n_prompts: int = 20000, rng: RNGLike = None, pool=None) -> tuple[float, float]:
    """Monte-Carlo mean squared error on fresh prompts and its standard error."""
    n_prompts = check_int("n_prompts", n_prompts, low=2, owner="mc_error")
    p = dist.replace(n_tasks=None).sample(n_prompts, rng=rng, pool=pool)
    err = (p.y - _predict(W, p)) ** 2
    return float(err.mean()), float(err.std(ddof=1) / np.sqrt(n_prompts))


def test_error(W, dist, *, rng: RNGLike = None, n_mc: int = 20000) -> float:
    """ICL test error: expected squared error on fresh prompts with fresh tasks.

    Exact (closed form) when ``dist.corr == 0``; Monte-Carlo with ``n_mc`` prompts otherwise.
    """
    if dist.isotropic:
        return limit.expected_error(W, dist)
    return mc_error(limit.as_weights(W, (dist.d + 1, dist.d + 1)), dist, n_prompts=n_mc, rng=rng)[0]


setattr(test_error, "__test__", False)  # noqa: B010  (a function attribute that pytest reads: not a pytest test)


def pool_error(W, dist, pool, *, rng: RNGLike = None, n_mc: int = 20000) -> float:
    """Error on the pretraining tasks (fresh inputs and noise, tasks uniform over ``pool`` (K, D))."""
    pool = np.asarray(pool, dtype=float)
    if dist.isotropic:
        return float(np.mean(limit.expected_error_given_tasks(W, dist, pool)))
    return mc_error(W, dist, n_prompts=n_mc, rng=rng, pool=pool)[0]


def train_error(W, prompts) -> float:
    """Empirical mean squared error on the given prompts (the training set)."""
    return float(np.mean((prompts.y - _predict(W, prompts)) ** 2))


def contrast_ratio(W) -> float:
    """Cosine similarity with the identity: ⟨W, I⟩_F / (‖W‖_F ‖I‖_F) (NaN if W is not finite)."""
    W = limit.as_weights(W)
    if not np.all(np.isfinite(W)):
        return float("nan")
    big = float(np.abs(W).max(initial=0.0))
    if big > 0:
        W = W / big  # scale-free: avoids overflow of the norm for huge entries
    n = np.linalg.norm(W)
    if n == 0:
        return 0.0
    return float(np.trace(W) / (n * np.sqrt(min(W.shape))))


def cosine(A, B) -> float:
    """Cosine similarity of two weight matrices (Frobenius)."""
    A, B = np.asarray(A, float).ravel(), np.asarray(B, float).ravel()
    na, nb = np.linalg.norm(A), np.linalg.norm(B)
    return 0.0 if na == 0 or nb == 0 else float(A @ B / (na * nb))


def hessian_spectrum(H) -> np.ndarray:
    """Eigenvalues of SᵀS/P (ascending), shape (n_spins,).

    When P < n_spins the nonzero eigenvalues are computed from the P×P matrix S Sᵀ/P and the rest are
    exact zeros (rank(SᵀS) ≤ P).
    """
    K, P = H.n_spins, H.n_prompts
    if P < K:
        S = H.features.dense()
        ev = np.linalg.eigvalsh(S @ S.T / P)
        return np.sort(np.r_[np.zeros(K - P), np.clip(ev, 0, None)])
    return np.clip(np.linalg.eigvalsh(H.gram()), 0, None)


def zero_mode_fraction(eigenvalues, *, rtol: float = 1e-9) -> float:
    """Fraction of eigenvalues below ``rtol`` times the largest."""
    ev = np.asarray(eigenvalues, dtype=float)
    if ev.size == 0 or ev.max() <= 0:
        return 1.0
    return float(np.mean(ev <= rtol * ev.max()))


def expected_zero_mode_fraction(d: int, n_prompts: int) -> float:
    """Almost-sure zero-mode fraction 1 − min(P, D(D+1))/(D+1)² (docs/paper-notes.md)."""
    return 1.0 - min(n_prompts, d * (d + 1)) / (d + 1) ** 2


def block_statistics(H) -> dict:
    """The blocks of the paper's Fig. 1.

    Returns a dict of 1-D arrays: ``h1`` (h's upper-left D×D block), ``h2`` (h's last row, first D
    entries), ``J1`` (couplings among the first D(D+1) spins, off-diagonal), ``J2`` (between the first
    D(D+1) and the last D+1 spins), ``J3`` (among the last D+1 spins, off-diagonal), plus
    ``summary``: mean and std of each.
    """
    D = H.d
    h = H.h.reshape(D + 1, D + 1)
    J = H.J
    n1 = D * (D + 1)
    J1 = J[:n1, :n1][~np.eye(n1, dtype=bool)]
    J2 = J[:n1, n1:].ravel()
    J3 = J[n1:, n1:][~np.eye(D + 1, dtype=bool)]
    out = {"h1": h[:D, :D].ravel(), "h2": h[D, :D].ravel(), "J1": J1, "J2": J2, "J3": J3}
    from spinlens.verdict import mean_sd_dict

    out["summary"] = {k: mean_sd_dict(v) for k, v in list(out.items())}
    return out
