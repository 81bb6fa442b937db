"""The simplified linear attention of the paper, merged and separate, as torch modules.

Merged: f(Z) = Z Zᵀ W Z/(N+1), prediction ŷ = f(Z)[D, N] (0-based), W of shape (D+1, D+1).
Separate: W = W_qᵀ W_k with W_q, W_k of shape (d_k, D+1): the same function class, non-convex in
(W_q, W_k). Both take Z of shape (batch, D+1, N+1) and return ŷ of shape (batch,). The forward pass
evaluates the definition literally (the full matrix products), so it is an independent check of the
factored features of `spinlens.features`.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import conventions
from ..random import RNGLike, torch_generator
from .hooks import HookedModule, HookPoint


class _SimplifiedLinearAttention(HookedModule):
    d: int
    hook_attn_out: HookPoint
    readout_hook_out: HookPoint

    def effective_W(self) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, Z: torch.Tensor) -> torch.Tensor:
        N = Z.shape[-1] - 1
        W = self.effective_W()
        out = Z @ Z.transpose(-1, -2) @ W @ Z * conventions.token_average(N)  # [batch, D+1, N+1]
        out = self.hook_attn_out(out)
        return self.readout_hook_out(out[:, self.d, N])  # [batch]


class MergedLinearAttention(_SimplifiedLinearAttention):
    """ŷ = [Z Zᵀ W Z/(N+1)]_{D,N} with one matrix W (D+1, D+1).

    Parameters
    ----------
    d : int
        Token dimension D.
    init_std : float or None
        W ~ N(0, init_std²) (default 1/√(D+1), the paper's); 0 gives W = 0.
    rng : seed for the initialisation.
    dtype : torch dtype (default float64).
    """

    def __init__(self, d: int, *, init_std: float | None = None, rng: RNGLike = None, dtype=torch.float64):
        super().__init__()
        self.d = d
        std = (d + 1) ** -0.5 if init_std is None else init_std
        W = torch.randn(d + 1, d + 1, generator=torch_generator(rng), dtype=dtype) * std
        self.W = nn.Parameter(W)
        self.hook_attn_out = HookPoint()  # [batch, D+1, N+1]
        self.readout_hook_out = HookPoint()  # [batch]
        self.setup_hooks()

    def effective_W(self) -> torch.Tensor:
        return self.W


class SeparateLinearAttention(_SimplifiedLinearAttention):
    """ŷ with W = W_qᵀ W_k, W_q and W_k of shape (d_k, D+1) (default d_k = D+1)."""

    def __init__(self, d: int, d_k: int | None = None, *, init_std: float | None = None, rng: RNGLike = None, dtype=torch.float64):
        super().__init__()
        self.d = d
        d_k = d + 1 if d_k is None else d_k
        std = (d + 1) ** -0.5 if init_std is None else init_std
        g = torch_generator(rng)
        self.W_q = nn.Parameter(torch.randn(d_k, d + 1, generator=g, dtype=dtype) * std)
        self.W_k = nn.Parameter(torch.randn(d_k, d + 1, generator=g, dtype=dtype) * std)
        self.hook_attn_out = HookPoint()
        self.readout_hook_out = HookPoint()
        self.setup_hooks()

    def effective_W(self) -> torch.Tensor:
        return self.W_q.T @ self.W_k
