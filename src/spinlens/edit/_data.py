"""Small helpers shared by the edit/steering code: ICL-regression prompts and training loops.

`sample_regression_prompts` builds prompt matrices with the convention of ``docs/design.md``
(column i = [x_i; y_i], y = w·x/√D, last column [x_query; 0]); it uses `spinlens.prompts` when it is there.
"""

from __future__ import annotations

import numpy as np

from spinlens.errors import check_float, check_int
from spinlens.random import as_generator


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
    """Sample ICL linear-regression prompts.

    Parameters
    ----------
    n_prompts, d, n_context : int
        P, D, N.
    w : array (D,) or (P, D), optional
        Fixed task vector(s); default a fresh w ~ N(0, sigma_w² Σ_w) per prompt.
    corr : float in [0, 1)
        Correlation between the coordinates of x (equicorrelated covariance (1-c) I + c 11ᵀ).
    sigma_w, sigma_eps : float
        Task scale and label-noise std.
    task_cov : array (D, D), optional
        Covariance Σ_w of the task prior (default identity).
    rng : None, int or Generator, keyword-only

    Returns
    -------
    Z : ndarray (P, D+1, N+1), float64
    y : ndarray (P,)  target at the query (noise-free)
    W : ndarray (P, D)  tasks
    """
    n_prompts = check_int("n_prompts", n_prompts, low=1)
    d = check_int("d", d, low=1)
    n_context = check_int("n_context", n_context, low=0)
    corr = check_float("corr", corr, low=0.0, high=1.0, high_open=True)
    g = as_generator(rng)
    x = g.standard_normal((n_prompts, n_context + 1, d))
    if corr > 0:
        # x = sqrt(1-c) ξ + sqrt(c) η 1, η shared by all coordinates of one token
        x = np.sqrt(1 - corr) * x + np.sqrt(corr) * g.standard_normal((n_prompts, n_context + 1, 1))
    if w is None:
        W = g.standard_normal((n_prompts, d)) * sigma_w
        if task_cov is not None:
            W = W @ np.linalg.cholesky(np.asarray(task_cov, dtype=float)).T
    else:
        W = np.broadcast_to(np.asarray(w, dtype=float), (n_prompts, d)).copy()
    ys = np.einsum("ptd,pd->pt", x, W) / np.sqrt(d)
    noisy = ys + sigma_eps * g.standard_normal(ys.shape)
    Z = np.zeros((n_prompts, d + 1, n_context + 1))
    Z[:, :d, :] = x.transpose(0, 2, 1)
    Z[:, d, :n_context] = noisy[:, :n_context]
    return Z, ys[:, n_context], W


def train_regression(model, Z, y, *, lr=3e-3, steps=300, batch_size=64, rng=None, params=None, grad_masks=None,
                     progress=False):
    """Minimal Adam MSE loop (no weight decay) used by examples and tests; returns the loss history.

    ``params`` restricts the optimised parameters; ``grad_masks`` ({name: bool tensor}) zeroes the
    gradient outside each mask (see `spinlens.edit.pinpoint`).
    """
    import torch

    from spinlens.random import torch_generator

    dtype = next(model.parameters()).dtype
    Zt = torch.as_tensor(np.asarray(Z), dtype=dtype)
    yt = torch.as_tensor(np.asarray(y), dtype=dtype)
    named = dict(model.named_parameters())
    if params is None:
        params = list(named)
    opt = torch.optim.Adam([named[n] for n in params], lr=lr)
    gen = torch_generator(rng)
    hist = []
    it = range(steps)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="train base", leave=False)
    for _ in it:
        idx = torch.randint(0, Zt.shape[0], (min(batch_size, Zt.shape[0]),), generator=gen)
        loss = torch.mean((model(Zt[idx]) - yt[idx]) ** 2)
        opt.zero_grad()
        loss.backward()
        if grad_masks:
            for n, m in grad_masks.items():
                if named[n].grad is not None:
                    named[n].grad.mul_(m.to(named[n].grad.dtype))
        opt.step()
        hist.append(float(loss.detach()))
    return hist


def mse(model, Z, y) -> float:
    """Mean squared error of ``model(Z)`` against ``y`` (no grad)."""
    import torch

    dtype = next(model.parameters()).dtype
    with torch.no_grad():
        pred = model(torch.as_tensor(np.asarray(Z), dtype=dtype))
    return float(torch.mean((pred - torch.as_tensor(np.asarray(y), dtype=dtype)) ** 2))
