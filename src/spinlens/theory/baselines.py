r"""Bayes baselines on prompts in the spin-glass layout (Raventós et al. 2023; Lu et al. §dMMSE).

A prompt is ``Z`` of shape ``(P, D+1, N+1)``: column ``i < N`` is ``[x_i; y_i]``, the last column is
``[x_query; 0]``. Labels follow the spin-glass convention ``y = w·x/√D + ε``, ``ε ~ N(0, σ_ε²)``
(`spinlens.conventions.label_scale`). With ``A = X/√D`` (rows ``x_i/√D``) the context is the linear
model ``y = A w + ε``.

* `ridge_predict`: posterior mean under the Gaussian prior ``w ~ N(0, σ_w² I_D)``,
  :math:`\hat w = (A^\top A + (\sigma_\varepsilon^2/\sigma_w^2) I)^{-1} A^\top y`, prediction
  :math:`x_q\cdot\hat w/\sqrt D`. Bayes-optimal for fresh tasks (the ICL test distribution).
* `dmmse_predict`: posterior mean under the uniform prior on a finite pool ``{w_1..w_K}``:
  :math:`\pi_j \propto \exp(-|y - A w_j|^2 / (2\sigma_\varepsilon^2))`, :math:`\hat w = \sum_j \pi_j w_j`.
  Bayes-optimal for tasks drawn from the pool (the IDG test distribution).

Both are vectorised over prompts and exact in float64. ``σ_ε = 0`` is the limit ``σ_ε → 0⁺``: ridge
becomes least squares / the minimum-norm interpolator, dMMSE the uniform average over the pool members
with the smallest residual.
"""

from __future__ import annotations

import numpy as np

from spinlens.conventions import label_scale
from spinlens.errors import InvalidParameterError, InvalidPromptsError, check_float, check_int

__all__ = ["split_prompts", "ridge_predict", "ridge_posterior_mean", "dmmse_predict", "dmmse_posterior_mean"]


def split_prompts(Z, d: int | None = None):
    """Split prompts into contexts and queries.

    Parameters
    ----------
    Z : array of shape (P, D+1, N+1), or an object with attribute ``Z``
        Prompts in the spin-glass layout (query label, ``Z[:, D, N]``, ignored).
    d : int, optional
        Token dimension D; checked against ``Z.shape[1] - 1``.

    Returns
    -------
    X : ndarray of shape (P, N, D)
    y : ndarray of shape (P, N)
    x_query : ndarray of shape (P, D)
    """
    Z = getattr(Z, "Z", Z)
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim == 2:
        Z = Z[None]
    if Z.ndim != 3 or Z.shape[1] < 2 or Z.shape[2] < 1:
        raise InvalidPromptsError(f"Z has shape {Z.shape}; expected (n_prompts, d+1, n_context+1).")
    D = Z.shape[1] - 1
    if d is not None:
        d = check_int("d", d, low=1)
        if d != D:
            raise InvalidPromptsError(f"Z has shape {Z.shape}; expected (n_prompts, d+1, n_context+1) with d = {d}.")
    if not np.all(np.isfinite(Z[:, :, :-1])) or not np.all(np.isfinite(Z[:, :D, -1])):
        raise InvalidPromptsError("Z contains non-finite values.")
    N = Z.shape[2] - 1
    X = np.transpose(Z[:, :D, :N], (0, 2, 1))
    y = Z[:, D, :N]
    return X, y, Z[:, :D, N]


def ridge_posterior_mean(Z, sigma_w: float = 1.0, sigma_eps: float = 0.0, d: int | None = None) -> np.ndarray:
    """Posterior mean of the task ``w`` under ``N(0, σ_w² I)``, shape (P, D). See `ridge_predict`."""
    sigma_w = check_float("sigma_w", sigma_w, low=0.0, low_open=True, owner="ridge_predict")
    sigma_eps = check_float("sigma_eps", sigma_eps, low=0.0, owner="ridge_predict")
    X, y, _ = split_prompts(Z, d)
    P, N, D = X.shape
    if N == 0:
        return np.zeros((P, D))
    A = X * label_scale(D)
    r = (sigma_eps / sigma_w) ** 2
    if r == 0.0:  # σ_ε → 0⁺: (AᵀA + rI)⁻¹Aᵀ → A⁺ (least squares / minimum-norm interpolator)
        return np.einsum("pdn,pn->pd", np.linalg.pinv(A), y)
    if N >= D:  # primal: (AᵀA + r I)⁻¹ Aᵀ y
        G = np.einsum("pni,pnj->pij", A, A) + r * np.eye(D)
        b = np.einsum("pni,pn->pi", A, y)
        return np.linalg.solve(G, b[..., None])[..., 0]
    # dual: Aᵀ (AAᵀ + r I)⁻¹ y, cheaper for N < D
    K = np.einsum("pid,pjd->pij", A, A) + r * np.eye(N)
    coef = np.linalg.solve(K, y[..., None])[..., 0]
    return np.einsum("pnd,pn->pd", A, coef)


def ridge_predict(
    Z, sigma_w: float = 1.0, sigma_x: float = 1.0, sigma_eps: float = 0.0, d: int | None = None
) -> np.ndarray:
    r"""Bayes-optimal prediction for fresh Gaussian tasks (ridge regression on the context).

    Parameters
    ----------
    Z : array of shape (P, D+1, N+1)
        Prompts (spin-glass layout, labels ``y = w·x/√D + ε``).
    sigma_w : float, default 1
        Prior std of the task coordinates, ``> 0``.
    sigma_x : float, default 1
        Std of the inputs, ``> 0``. The inputs are observed, so it does not enter the posterior mean;
        it is checked and kept for a uniform signature.
    sigma_eps : float, default 0
        Label-noise std, ``>= 0`` (``0``: the noiseless limit).
    d : int, optional
        Token dimension D, checked against ``Z``.

    Returns
    -------
    ndarray of shape (P,)
        :math:`x_q\cdot\hat w/\sqrt D`, :math:`\hat w=(A^\top A+(\sigma_\varepsilon/\sigma_w)^2 I)^{-1}A^\top y`.

    Examples
    --------
    >>> import numpy as np
    >>> Z = np.zeros((1, 3, 3)); Z[0, :2, 0] = [2.0, 0.0]; Z[0, 2, 0] = 1.0; Z[0, :2, 2] = [1.0, 0.0]
    >>> float(ridge_predict(Z, sigma_eps=0.0)[0])  # y = w₁·2/√2 = 1 ⇒ w₁ = 1/√2; ŷ = w₁·1/√2
    0.5
    """
    check_float("sigma_x", sigma_x, low=0.0, low_open=True, owner="ridge_predict")
    w_hat = ridge_posterior_mean(Z, sigma_w, sigma_eps, d)
    _, _, xq = split_prompts(Z, d)
    return np.einsum("pd,pd->p", xq, w_hat) * label_scale(xq.shape[1])


def _check_pool(pool, D: int) -> np.ndarray:
    pool = np.asarray(pool, dtype=np.float64)
    if pool.ndim != 2 or pool.shape[1] != D or pool.shape[0] < 1:
        raise InvalidParameterError(f"pool has shape {pool.shape}; expected (n_tasks, d) = (K, {D}) with K >= 1.")
    if not np.all(np.isfinite(pool)):
        raise InvalidParameterError("pool contains non-finite values.")
    return pool


def dmmse_posterior_mean(Z, pool, sigma_eps: float, d: int | None = None, *, chunk_elems: int = 4_000_000) -> np.ndarray:
    """Posterior mean of ``w`` under the uniform prior on ``pool``, shape (P, D). See `dmmse_predict`."""
    sigma_eps = check_float("sigma_eps", sigma_eps, low=0.0, owner="dmmse_predict")
    X, y, _ = split_prompts(Z, d)
    P, N, D = X.shape
    pool = _check_pool(pool, D)
    K = pool.shape[0]
    if N == 0:
        return np.broadcast_to(pool.mean(axis=0), (P, D)).copy()
    A = X * label_scale(D)
    out = np.empty((P, D))
    pc = max(1, min(P, chunk_elems // max(1, K)))
    kc = max(1, min(K, chunk_elems // max(1, pc * N)))
    for s in range(0, P, pc):
        Ap, yp = A[s : s + pc], y[s : s + pc]
        # squared residuals |y − A w_j|², computed directly (no cancellation), shape (pc, K)
        r = np.empty((Ap.shape[0], K))
        for t in range(0, K, kc):
            res = yp[:, :, None] - np.einsum("pnd,kd->pnk", Ap, pool[t : t + kc])
            r[:, t : t + kc] = np.einsum("pnk,pnk->pk", res, res)
        r_min = r.min(axis=1, keepdims=True)
        if sigma_eps > 0:
            logits = -(r - r_min) / (2.0 * sigma_eps**2)  # max-subtracted softmax
            wts = np.exp(logits)
        else:  # σ_ε → 0⁺: uniform over the minimisers of the residual
            scale = np.einsum("pn,pn->p", yp, yp)[:, None] + 1.0
            wts = (r <= r_min + 1e-12 * scale).astype(np.float64)
        wts /= wts.sum(axis=1, keepdims=True)
        out[s : s + pc] = wts @ pool
    return out


def dmmse_predict(Z, pool, sigma_eps: float, d: int | None = None) -> np.ndarray:
    r"""Bayes-optimal prediction when tasks are drawn uniformly from a finite pool (dMMSE).

    Parameters
    ----------
    Z : array of shape (P, D+1, N+1)
        Prompts (spin-glass layout, labels ``y = w·x/√D + ε``).
    pool : array of shape (K, D)
        The task pool.
    sigma_eps : float
        Label-noise std, ``>= 0``. ``0`` is the limit ``σ_ε → 0⁺``: the posterior is uniform over the
        pool members whose residual is minimal (relative tolerance 1e-12).
    d : int, optional
        Token dimension D, checked against ``Z``.

    Returns
    -------
    ndarray of shape (P,)
        :math:`x_q\cdot\sum_j\pi_j w_j/\sqrt D`, :math:`\pi_j\propto\exp(-|y-Aw_j|^2/(2\sigma_\varepsilon^2))`
        (softmax with max-subtraction, so it never overflows).

    Examples
    --------
    >>> import numpy as np
    >>> pool = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> Z = np.zeros((1, 3, 2)); Z[0, :2, 0] = [1.0, 0.0]; Z[0, 2, 0] = 1 / np.sqrt(2); Z[0, :2, 1] = [2.0, 0.0]
    >>> round(float(dmmse_predict(Z, pool, sigma_eps=0.0)[0]), 12)  # w = e₁, query 2e₁ ⇒ 2/√2
    1.414213562373
    """
    w_hat = dmmse_posterior_mean(Z, pool, sigma_eps, d)
    _, _, xq = split_prompts(Z, d)
    return np.einsum("pd,pd->p", xq, w_hat) * label_scale(xq.shape[1])
