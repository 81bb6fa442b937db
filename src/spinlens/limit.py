r"""The limit P → ∞ (infinite task diversity) for isotropic Gaussian prompts, in closed form.

For x ~ N(0, σ_x² I), w ~ N(0, σ_w² I), y = w·x/√D + ε (ε ~ N(0, σ_ε²)), independent positions, the
features s = c ⊗ q have (Wick/Isserlis; q is independent of c):

* E[y s]_{ab} = κ₁ δ_ab for a, b < D, 0 otherwise, with κ₁ = σ_x⁴σ_w² N/((N+1)D);
* E[s sᵀ] = E[c cᵀ] ⊗ diag(σ_x² I_D, 0), and E[c cᵀ] is diagonal:
  E[c_a²] = [N(σ_x⁴ t(D+2) + σ_ε²σ_x²) + N(N−1)σ_x⁴ t]/(N+1)² for a < D (t = σ_w²/D),
  E[c_D²] = N(N+2) Q₄/(N+1)² with Q₄ = σ_x⁴t²D(D+2) + 2σ_x²σ_w²σ_ε² + σ_ε⁴.

Hence the infinite-diversity solution W* = (λ + E[ssᵀ])⁻¹E[ys] is κ₁/(λ + σ_x²E[c_a²]) times the
identity on the upper-left D×D block and zero elsewhere, and the expected test error of any W on
fresh prompts is the quadratic form e(W) = E[y²] − 2⟨W, E[ys]⟩ + Σ_{ab} E[s_ab²] W_ab².
`expected_error_given_tasks` gives the same expectation conditional on each task w (used for the
error on a finite pool of pretraining tasks).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .errors import InvalidParameterError, check_float


@dataclasses.dataclass(frozen=True)
class Moments:
    """E[y²], E[y s] and the diagonal of E[s sᵀ] (both as (D+1)×(D+1) arrays)."""

    y2: float
    ys: np.ndarray
    ss_diag: np.ndarray


def _require_isotropic(dist):
    if dist.corr != 0:
        raise InvalidParameterError(
            f"closed forms need independent positions (corr = 0); got corr = {dist.corr}. Use Monte-Carlo "
            "(spinlens.observables.test_error with corr > 0 falls back to it)."
        )


def moments(dist) -> Moments:
    """Closed-form moments of the features for a `PromptDistribution` with ``corr == 0``."""
    _require_isotropic(dist)
    D, N = dist.d, dist.n_context
    sx2, sw2, se2 = dist.sigma_x**2, dist.sigma_w**2, dist.sigma_eps**2
    t = sw2 / D
    k1 = sx2 * sx2 * sw2 * N / ((N + 1) * D)
    cxx = (N * (sx2 * sx2 * t * (D + 2) + se2 * sx2) + N * (N - 1) * sx2 * sx2 * t) / (N + 1) ** 2
    q4 = sx2 * sx2 * t * t * D * (D + 2) + 2 * sx2 * sw2 * se2 + se2 * se2
    cyy = N * (N + 2) * q4 / (N + 1) ** 2
    ys = np.zeros((D + 1, D + 1))
    ys[np.arange(D), np.arange(D)] = k1
    cdiag = np.r_[np.full(D, cxx), cyy]
    qdiag = np.r_[np.full(D, sx2), 0.0]
    return Moments(y2=sx2 * sw2 + se2, ys=ys, ss_diag=np.outer(cdiag, qdiag))


def infinite_diversity_solution(dist, l2_strength: float) -> np.ndarray:
    """W*(N, D, λ): the minimiser of the expected energy over fresh prompts, shape (D+1, D+1).

    λ = 0 is allowed: the dead entries (zero second moment) are then set to 0 (minimum norm).
    """
    lam = check_float("l2_strength", l2_strength, low=0.0, owner="infinite_diversity_solution")
    mom = moments(dist)
    den = lam + mom.ss_diag
    with np.errstate(divide="ignore", invalid="ignore"):
        W = np.where(den > 0, mom.ys / np.where(den > 0, den, 1.0), 0.0)
    return W


def as_weights(W, shape=None, *, name: str = "W") -> np.ndarray:
    """``W`` as a float array of ``shape`` (default: any square matrix), or `InvalidParameterError`.

    Non-finite entries are allowed (the observables of such a W are NaN or inf, never an exception).
    """
    from .errors import InvalidParameterError

    try:
        A = np.asarray(W, dtype=float)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"The '{name}' parameter must be an array of real numbers. Got {type(W).__name__} instead.") from None
    if shape is not None and A.size == int(np.prod(shape)):
        return A.reshape(shape)
    if shape is not None or A.ndim != 2 or A.shape[0] != A.shape[1] or A.size == 0:
        want = f"shape {tuple(shape)}" if shape is not None else "a non-empty square matrix"
        raise InvalidParameterError(f"The '{name}' parameter must be {want}. Got shape {A.shape} instead.")
    return A


def expected_error(W, dist) -> float:
    """Exact expected squared error of the merged model W on fresh prompts with fresh tasks."""
    mom = moments(dist)
    W = as_weights(W, mom.ys.shape)
    with np.errstate(over="ignore", invalid="ignore"):  # weights near the float64 limit: the error is +inf
        err = float(mom.y2 - 2 * np.sum(W * mom.ys) + np.sum(mom.ss_diag * W * W))
    if not np.isfinite(err) and np.all(np.isfinite(W)):
        return math.inf  # a squared error, >= 0: it overflowed (inf - inf would read as NaN)
    return err


def expected_error_given_tasks(W, dist, w) -> np.ndarray:
    """Exact expected squared error of W on fresh inputs and noise, conditional on each task.

    Parameters
    ----------
    W : array of shape (D+1, D+1)
    dist : PromptDistribution with corr = 0
    w : array of shape (n_tasks, D)

    Returns
    -------
    ndarray of shape (n_tasks,)
    """
    _require_isotropic(dist)
    D, N = dist.d, dist.n_context
    W = np.asarray(W, dtype=float).reshape(D + 1, D + 1)
    w = np.atleast_2d(np.asarray(w, dtype=float))
    if w.shape[1] != D:
        raise InvalidParameterError(f"w has shape {w.shape}; expected (n_tasks, d) with d = {D}.")
    sx2, se2 = dist.sigma_x**2, dist.sigma_eps**2
    g = w / np.sqrt(D)
    r = np.sum(g * g, axis=1)
    y2 = sx2 * r + se2
    m = np.concatenate([sx2 * g, y2[:, None]], axis=1)  # E[y_i z_i | w], (K, D+1)
    u = np.concatenate([sx2 * g, np.zeros((len(g), 1))], axis=1)  # E[y_q q | w]
    cross = N / (N + 1) * np.einsum("ka,ab,kb->k", m, W, u)
    Sq = np.r_[np.full(D, sx2), 0.0]
    B = (W * Sq[None, :]) @ W.T
    Bxx, Bxy, Byy = B[:D, :D], B[:D, D], B[D, D]
    trM2 = (
        (sx2 * sx2 * r + se2 * sx2) * np.trace(Bxx)
        + 2 * sx2 * sx2 * np.einsum("ka,ab,kb->k", g, Bxx, g)
        + 2 * 3 * (sx2 * sx2 * r + se2 * sx2) * (g @ Bxy)
        + 3 * Byy * y2**2
    )
    mBm = np.einsum("ka,ab,kb->k", m, B, m)
    yhat2 = (N * trM2 + N * (N - 1) * mBm) / (N + 1) ** 2
    return y2 - 2 * cross + yhat2
