"""Prompt helpers of the edit/steering code: thin wrappers over `spinlens.prompts.PromptDistribution`.

The core distribution draws inputs (``corr`` = correlation between the *positions* of one prompt, as
everywhere in spinlens), labels and noise. The task-distribution shifts the experiments need are built
here as task matrices W and passed to `PromptDistribution.prompts_from_tasks`:

* a fixed task (``w``), shared by every prompt (steering towards one task w_A);
* an anisotropic task prior w ~ N(0, σ_w² Σ_w) (``task_cov``).

The returned target is the noise-free query label w·x_q/√D, so that a noisy-context target ("noisy")
measures how well the context is used, not the irreducible label noise.
"""

from __future__ import annotations

import numpy as np

from spinlens import conventions
from spinlens.errors import InvalidParameterError, check_int
from spinlens.prompts import PromptDistribution
from spinlens.random import as_generator


def shifted_tasks(dist: PromptDistribution, n: int, *, w=None, task_cov=None, rng=None) -> np.ndarray:
    """Task matrix (n, D) for `PromptDistribution.prompts_from_tasks`.

    Parameters
    ----------
    dist : PromptDistribution
        Gives D and σ_w.
    n : int >= 1
        Number of tasks (one per prompt).
    w : array (D,) or (n, D), optional
        Fixed task(s), broadcast to (n, D); excludes ``task_cov``.
    task_cov : array (D, D), optional
        Covariance Σ_w of the task prior (symmetric positive definite); default identity
        (the core prior w ~ N(0, σ_w² I)).
    rng : None, int or Generator, keyword-only

    Returns
    -------
    ndarray (n, D), the distribution's dtype
    """
    n = check_int("n", n, low=1, owner="shifted_tasks")
    D = dist.d
    if w is not None:
        if task_cov is not None:
            raise InvalidParameterError("Give at most one of 'w' (fixed task) and 'task_cov' (task prior).")
        w = np.asarray(w, dtype=dist.dtype)
        if w.shape not in ((D,), (n, D)):
            raise InvalidParameterError(f"The 'w' parameter must have shape ({D},) or ({n}, {D}). Got {w.shape}.")
        return np.broadcast_to(w, (n, D)).copy()
    W = dist.sample_tasks(n, rng=rng)
    if task_cov is not None:
        cov = np.asarray(task_cov, dtype=float)
        if cov.shape != (D, D):
            raise InvalidParameterError(f"The 'task_cov' parameter must have shape ({D}, {D}). Got {cov.shape}.")
        try:
            chol = np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            raise InvalidParameterError("The 'task_cov' parameter must be symmetric positive definite.") from None
        W = (W @ chol.T).astype(dist.dtype, copy=False)
    return W


def sample_regression_prompts(
    n_prompts: int,
    d: int,
    n_context: int,
    *,
    w=None,
    corr: float = 0.0,
    sigma_w: float = 1.0,
    sigma_eps: float = 0.0,
    task_cov=None,
    rng=None,
):
    """Sample ICL linear-regression prompts (`PromptDistribution` plus the task shifts above).

    Parameters
    ----------
    n_prompts, d, n_context : int
        P >= 1, D >= 1, N >= 1.
    w : array (D,) or (P, D), optional
        Fixed task vector(s); default a fresh w ~ N(0, σ_w² Σ_w) per prompt.
    corr : float in [0, 1)
        Correlation between the positions of one prompt (`PromptDistribution.corr`).
    sigma_w, sigma_eps : float
        Task scale (> 0) and label-noise std (>= 0) of the context labels.
    task_cov : array (D, D), optional
        Covariance Σ_w of the task prior (default identity).
    rng : None, int or Generator, keyword-only

    Returns
    -------
    Z : ndarray (P, D+1, N+1), float64
        Prompts (``docs/design.md`` layout, query label 0).
    y : ndarray (P,)
        Noise-free query target w·x_q/√D.
    W : ndarray (P, D)
        Tasks.
    """
    n_prompts = check_int("n_prompts", n_prompts, low=1, owner="sample_regression_prompts")
    dist = PromptDistribution(d, n_context, sigma_w=sigma_w, sigma_eps=sigma_eps, corr=corr)
    g = as_generator(rng)
    W = shifted_tasks(dist, n_prompts, w=w, task_cov=task_cov, rng=g)
    p = dist.prompts_from_tasks(W, rng=g)
    y = p.y
    if dist.sigma_eps > 0:  # the core target includes the query's noise; ours is the clean w·x_q/√D
        y = np.einsum("pd,pd->p", p.Z[:, :d, n_context], W) * conventions.label_scale(d)
    return p.Z, y, W


def mse(model, Z, y) -> float:
    """Mean squared error of ``model(Z)`` against ``y`` (no grad)."""
    import torch

    dtype = next(model.parameters()).dtype
    with torch.no_grad():
        pred = model(torch.as_tensor(np.asarray(Z), dtype=dtype))
    return float(torch.mean((pred - torch.as_tensor(np.asarray(y), dtype=dtype)) ** 2))
