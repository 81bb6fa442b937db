"""Token streams, held-out split, random training windows and perplexity for causal LMs."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from spinlens.errors import InvalidParameterError
from spinlens.random import as_generator

SPLIT_BLOCK = 2048  # tokens per block of the interleaved train / held-out split
ICL_WINDOWS = 1024  # held-out windows for `icl_score`: its early/late positions are few per window, so use many


@dataclass(frozen=True)
class TokenSplit:
    """A token stream cut into blocks of `SPLIT_BLOCK` tokens; every ``k``-th block is held out.

    Attributes
    ----------
    train, val : int64 arrays of token ids (blocks concatenated in order)
    val_fraction : float, the requested held-out fraction
    """

    train: np.ndarray
    val: np.ndarray
    val_fraction: float


def split_tokens(ids: np.ndarray, *, val_fraction: float = 0.1, n_ctx: int = 128) -> TokenSplit:
    """Interleaved train / held-out split (so that both see every part of the corpus).

    Raises a one-line `InvalidParameterError` when either part has fewer than ``n_ctx + 1`` tokens
    (the corpus is too small for the context length).
    """
    ids = np.asarray(ids, dtype=np.int64)
    if not 0 < val_fraction < 1:
        raise InvalidParameterError(f"The 'val_fraction' parameter must be in (0, 1). Got {val_fraction!r} instead.")
    need = 2 * (n_ctx + 1)
    if len(ids) < need / min(val_fraction, 1 - val_fraction):
        raise InvalidParameterError(
            f"The 'corpus' is too small for the context length: {len(ids)} tokens, need at least "
            f"{math.ceil(need / min(val_fraction, 1 - val_fraction))} for n_ctx={n_ctx} with val_fraction={val_fraction} "
            "(give more text or a smaller --n-ctx).")
    block = min(SPLIT_BLOCK, max(n_ctx + 1, len(ids) // 50))
    n_blocks = math.ceil(len(ids) / block)
    every = max(2, round(1 / val_fraction))
    is_val = (np.arange(n_blocks) % every) == every - 1
    parts = [ids[i * block:(i + 1) * block] for i in range(n_blocks)]
    train = np.concatenate([p for p, v in zip(parts, is_val) if not v])
    val = np.concatenate([p for p, v in zip(parts, is_val) if v]) if is_val.any() else ids[-0:0]
    if len(val) < n_ctx + 1 or len(train) < n_ctx + 1:
        raise InvalidParameterError(f"The 'corpus' is too small for the context length n_ctx={n_ctx}: the held-out part "
                                    f"has {len(val)} tokens, the training part {len(train)}.")
    return TokenSplit(train, val, float(val_fraction))


def random_windows(ids: np.ndarray, n: int, n_ctx: int, *, rng=None) -> torch.Tensor:
    """``n`` random windows of ``n_ctx + 1`` consecutive tokens, ``(n, n_ctx + 1)`` int64."""
    g = as_generator(rng)
    starts = g.integers(0, len(ids) - n_ctx, size=n)
    idx = starts[:, None] + np.arange(n_ctx + 1)[None, :]
    return torch.from_numpy(np.asarray(ids)[idx])


def eval_windows(ids: np.ndarray, n_ctx: int, *, max_windows: int = 64) -> torch.Tensor:
    """Non-overlapping windows of ``n_ctx + 1`` tokens, evenly spread over ``ids``, ``(n, n_ctx + 1)``."""
    n_all = (len(ids) - 1) // n_ctx
    if n_all < 1:
        raise InvalidParameterError(f"The held-out text has {len(ids)} tokens, fewer than n_ctx + 1 = {n_ctx + 1}.")
    picks = np.unique(np.linspace(0, n_all - 1, min(n_all, max_windows)).round().astype(int))
    idx = picks[:, None] * n_ctx + np.arange(n_ctx + 1)[None, :]
    return torch.from_numpy(np.asarray(ids)[idx])


def token_losses(model, windows: torch.Tensor, *, batch_size: int = 64, hooks=()) -> torch.Tensor:
    """Per-token cross-entropy (nats) of next-token prediction, ``(n, n_ctx)``; position ``t`` predicts token
    ``t + 1`` of the window from tokens ``0..t``. ``hooks``: ``[(hook_name, fn)]`` applied during the runs."""
    dev = next(model.parameters()).device
    outs = []
    with torch.no_grad(), model.hooks(list(hooks)):
        for i in range(0, len(windows), batch_size):
            w = windows[i:i + batch_size].to(dev)
            logits = model(w[:, :-1]).float()
            ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1),
                                                   reduction="none")
            outs.append(ce.reshape(w.shape[0], -1).cpu())
    return torch.cat(outs)


def perplexity(model, windows: torch.Tensor, **kw) -> float:
    """``exp`` of the mean next-token cross-entropy over ``windows``."""
    return float(math.exp(float(token_losses(model, windows, **kw).mean())))
