r"""A zoo of attention architectures with one interface, for the paper's Fig S8 and for interpretability.

Every model maps a batch of prompt matrices ``Z`` of shape ``(batch, D+1, N+1)`` (column ``i`` =
``[x_i; y_i]``, last column ``[x_query; 0]``) to the prediction at the query, shape ``(batch,)``; every
model is a `spinlens.models.hooks.HookedModule` with the hook names of ``docs/design.md``, and carries
its `ZooConfig` as ``model.config`` so that `build_model(model.config)` rebuilds it.

Registry (`ARCHITECTURES`)
==================  =========================================================================================
name                model
==================  =========================================================================================
``"sla"``           simplified (merged) linear attention of the paper, f(Z) = Z Zᵀ W Z/(N+1)
                    (`spinlens.models.linear_attention.MergedLinearAttention`, wrapped with hook points)
``"sla-separate"``  the same with W = W_qᵀ W_k (`SeparateLinearAttention`)
``"fla"``           full linear attention: query, key, value and projection matrices, one head
``"mhla"``          multi-head linear attention (``n_heads`` heads of the FLA kind, summed)
``"sa"``            one layer of softmax attention (query, key, value, projection; ``n_heads`` heads)
``"tf"``            the GPT-2-style transformer of `spinlens.models.transformer` (read-in, L blocks of
                    attention + MLP + LayerNorm, scalar read-out at the query)
==================  =========================================================================================

The attention-only models (``sla``, ``sla-separate``, ``fla``, ``mhla``, ``sa``) have no read-in: the residual
stream is the token itself (``d_model = D+1``), the attention output is added to it, and the prediction is
the label coordinate ``D`` of the residual stream at the query position ``N``. Since the query's label is
0, this is exactly the entry ``[D, N]`` of the attention output, as in the paper. For the linear models,
with ``x_t = Z[:, t]`` (a row vector in the layout of the hooks) and heads ``h``,

.. math::

    \hat y = \frac{1}{N+1}\sum_h \sum_{t=0}^{N} (x_N W_Q^h)\cdot(x_t W_K^h)\; (x_t W_V^h W_O^h)_D ,

(`spinlens.conventions.token_average`), a trilinear form of ``Z`` that `spinlens.bridge.effective_form`
reads off the weights.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, fields, replace
from typing import Generic, TypeVar

import torch
from torch import nn

from spinlens import conventions
from spinlens.errors import InvalidParameterError, check_choice, check_float, check_int
from spinlens.models.hooks import HookedModule, HookPoint, ModuleSeq
from spinlens.models.transformer import Transformer, TransformerConfig

DTYPES = {"float32": torch.float32, "float64": torch.float64}
POSITIONALS = ("learned", "none")

#: registry name -> short description (the classes are in `_CLASSES`, filled below)
ARCH_DESCRIPTIONS = {
    "sla": "simplified merged linear attention (the paper's model, W)",
    "sla-separate": "simplified linear attention with W = W_q^T W_k",
    "fla": "full linear attention (query, key, value, projection), one head",
    "mhla": "multi-head linear attention",
    "sa": "one layer of softmax attention",
    "tf": "GPT-2-style transformer (read-in, attention + MLP + LayerNorm blocks, read-out)",
}
ARCH_NAMES = tuple(ARCH_DESCRIPTIONS)
LINEAR_ARCHS = ("sla", "sla-separate", "fla", "mhla")


@dataclass(frozen=True)
class ZooConfig:
    """Architecture of a zoo model; JSON-serialisable (`to_dict` / `from_dict`).

    Fields that an architecture does not use are ignored by it (and set to None by `resolve`).

    Parameters
    ----------
    arch : {"sla", "sla-separate", "fla", "mhla", "sa", "tf"}
        Registry name.
    d : int >= 1
        Token dimension D (the prompts have D+1 rows).
    n_heads : int >= 1 or None
        Heads (default: 1 for fla/sa, 4 for mhla, 2 for tf).
    d_head : int >= 1 or None
        Width of a head (default D+1 for the attention-only models, d_model // n_heads for tf; for
        sla-separate the inner width d_k of W_q, W_k).
    n_layers, d_model, d_mlp : int or None
        Transformer only (defaults 2, 32, 4·d_model; d_mlp = 0 removes the MLP).
    causal : bool
        Causal mask (sa, tf). The query is the last token, so its prediction sees every token either way.
    positional : {"none", "learned"}
        Transformer only: learned positional embedding or none.
    max_pos : int
        Transformer only, with learned positions: longest sequence (N+1).
    layernorm : bool
        Transformer only.
    init_scale : float > 0
        Multiplies the default initialisation std (1/sqrt(fan_in) for every matrix).
    dtype : {"float32", "float64"}
    """

    arch: str
    d: int
    n_heads: int | None = None
    d_head: int | None = None
    n_layers: int | None = None
    d_model: int | None = None
    d_mlp: int | None = None
    causal: bool = False
    positional: str = "none"
    max_pos: int = 512
    layernorm: bool = True
    init_scale: float = 1.0
    dtype: str = "float32"

    def __post_init__(self) -> None:
        own = "ZooConfig"
        check_choice("arch", self.arch, ARCH_NAMES, owner=own)
        check_int("d", self.d, low=1, owner=own)
        for name in ("n_heads", "d_head", "n_layers", "d_model"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), low=1, owner=own)
        if self.d_mlp is not None:
            check_int("d_mlp", self.d_mlp, low=0, owner=own)
        check_choice("positional", self.positional, POSITIONALS, owner=own)
        check_int("max_pos", self.max_pos, low=2, owner=own)
        check_float("init_scale", self.init_scale, low=0, low_open=True, owner=own)
        check_choice("dtype", self.dtype, tuple(DTYPES), owner=own)
        if not isinstance(self.causal, bool) or not isinstance(self.layernorm, bool):
            raise InvalidParameterError("The 'causal' and 'layernorm' parameters of ZooConfig must be booleans.")

    def resolve(self) -> ZooConfig:
        """The config with every architecture default filled in (and unused fields set to None)."""
        a, d1 = self.arch, self.d + 1
        n_heads, d_head = self.n_heads, self.d_head
        if a == "sla":
            n_heads, d_head = None, None
        elif a == "sla-separate":
            n_heads, d_head = None, self.d_head or d1
        elif a in ("fla", "mhla", "sa"):
            n_heads, d_head = self.n_heads or (4 if a == "mhla" else 1), self.d_head or d1
        if a != "tf":
            return replace(self, n_heads=n_heads, d_head=d_head, n_layers=None, d_model=None, d_mlp=None)
        d_model = self.d_model or 32
        n_heads = self.n_heads or 2
        if self.d_head is None and d_model % n_heads:
            raise InvalidParameterError(
                f"The 'd_model' parameter of ZooConfig must be divisible by n_heads={n_heads} when d_head "
                f"is None. Got {d_model!r} instead."
            )
        return replace(
            self,
            n_heads=n_heads,
            d_model=d_model,
            d_head=self.d_head or d_model // n_heads,
            n_layers=self.n_layers or 2,
            d_mlp=4 * d_model if self.d_mlp is None else self.d_mlp,
        )

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def to_dict(self) -> dict:
        """Plain dict of JSON types."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ZooConfig:
        """Inverse of `to_dict`; unknown keys raise `InvalidParameterError`."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InvalidParameterError(f"unknown ZooConfig field(s) {unknown}; valid fields: {sorted(names)}.")
        required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
        missing = sorted(required - set(data))
        if missing:
            raise InvalidParameterError(f"ZooConfig field(s) {missing} are missing; required fields: {sorted(required)}.")
        return cls(**data)

    def replace(self, **changes) -> ZooConfig:
        return replace(self, **changes)


# ----------------------------------------------------------------------------------------------- pieces
def _check_Z(Z: torch.Tensor, d: int, owner: str) -> None:
    if not isinstance(Z, torch.Tensor) or Z.ndim != 3 or Z.shape[1] != d + 1 or Z.shape[2] < 2:
        shape = tuple(Z.shape) if isinstance(Z, torch.Tensor) else type(Z).__name__
        raise InvalidParameterError(
            f"The 'Z' parameter of {owner}.forward must be a tensor of shape (batch, {d + 1}, n_context+1) "
            f"with n_context >= 1. Got {shape} instead."
        )


class LabelReadout(nn.Module):
    """Reads the label coordinate D of the residual stream; ``hook_out`` ``[batch, pos, 1]``."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.d = d
        self.hook_out = HookPoint()  # [batch, pos, 1]

    def forward(self, resid: torch.Tensor) -> torch.Tensor:
        return self.hook_out(resid[..., self.d : self.d + 1])


class AttentionHead(nn.Module):
    """Multi-head attention on the raw tokens (d_model = D+1), linear or softmax, with hook points.

    Weights (TransformerLens layout, tokens are row vectors): ``W_Q, W_K, W_V`` ``(head, D+1, d_head)``,
    ``W_O`` ``(head, d_head, D+1)``; no biases.

    * linear: ``pattern[q, k] = (q_q · k_k) / (N+1)`` (no softmax; the paper's average over all N+1 tokens);
    * softmax: ``pattern = softmax_k(q_q · k_k / sqrt(d_head))`` (masked above the diagonal if causal).
    """

    def __init__(self, d_model: int, n_heads: int, d_head: int, *, kind: str, causal: bool, dtype) -> None:
        super().__init__()
        self.kind, self.causal, self.d_head = kind, causal, d_head
        self.W_Q = nn.Parameter(torch.zeros(n_heads, d_model, d_head, dtype=dtype))
        self.W_K = nn.Parameter(torch.zeros(n_heads, d_model, d_head, dtype=dtype))
        self.W_V = nn.Parameter(torch.zeros(n_heads, d_model, d_head, dtype=dtype))
        self.W_O = nn.Parameter(torch.zeros(n_heads, d_head, d_model, dtype=dtype))
        self.hook_q = HookPoint()  # [batch, pos, head, d_head]
        self.hook_k = HookPoint()  # [batch, pos, head, d_head]
        self.hook_v = HookPoint()  # [batch, pos, head, d_head]
        self.hook_attn_scores = HookPoint()  # [batch, head, query_pos, key_pos]
        self.hook_pattern = HookPoint()  # [batch, head, query_pos, key_pos]
        self.hook_z = HookPoint()  # [batch, pos, head, d_head]
        self.hook_result = HookPoint()  # [batch, pos, head, d_model]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.hook_q(torch.einsum("bpd,hde->bphe", x, self.W_Q))
        k = self.hook_k(torch.einsum("bpd,hde->bphe", x, self.W_K))
        v = self.hook_v(torch.einsum("bpd,hde->bphe", x, self.W_V))
        scores = torch.einsum("bqhe,bkhe->bhqk", q, k)
        T = x.shape[1]
        if self.kind == "linear":
            scores = self.hook_attn_scores(scores)
            pattern = scores * conventions.token_average(T - 1)
        else:
            scores = self.hook_attn_scores(scores / math.sqrt(self.d_head))
            if self.causal:
                mask = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
                scores = scores.masked_fill(mask, float("-inf"))
            pattern = torch.softmax(scores, dim=-1)
        pattern = self.hook_pattern(pattern)
        z = self.hook_z(torch.einsum("bhqk,bkhe->bqhe", pattern, v))
        result = self.hook_result(torch.einsum("bqhe,hem->bqhm", z, self.W_O))
        return result.sum(dim=2)


A = TypeVar("A", bound=nn.Module)


class AttentionBlock(nn.Module, Generic[A]):
    """Residual block ``resid_post = resid_pre + attn(resid_pre)`` with the design's hook names."""

    attn: A

    def __init__(self, attn: A) -> None:
        super().__init__()
        self.attn = attn
        self.hook_resid_pre = HookPoint()  # [batch, pos, d_model]
        self.hook_attn_out = HookPoint()  # [batch, pos, d_model]
        self.hook_resid_post = HookPoint()  # [batch, pos, d_model]

    def forward(self, resid: torch.Tensor) -> torch.Tensor:
        resid = self.hook_resid_pre(resid)
        return self.hook_resid_post(resid + self.hook_attn_out(self.attn(resid)))


class _AttentionOnlyModel(HookedModule):
    """Common body of fla/mhla/sa: tokens -> one attention block -> label coordinate at the query."""

    kind = "linear"

    def __init__(self, config: ZooConfig, *, rng=None) -> None:
        super().__init__()
        cfg = config.resolve()
        self.config = cfg
        d1 = cfg.d + 1
        assert cfg.n_heads is not None and cfg.d_head is not None  # set by resolve() for these architectures
        self.hook_embed = HookPoint()  # [batch, pos, D+1] the tokens (columns of Z)
        attn = AttentionHead(
            d1, cfg.n_heads, cfg.d_head, kind=self.kind, causal=cfg.causal, dtype=cfg.torch_dtype
        )
        self.blocks = ModuleSeq([AttentionBlock(attn)])
        self.hook_resid_final = HookPoint()  # [batch, pos, D+1]
        self.readout = LabelReadout(cfg.d)
        self.reset_parameters(rng=rng)
        self.setup_hooks()

    @torch.no_grad()
    def reset_parameters(self, *, rng=None) -> None:
        """Deterministic init from ``rng``: N(0, init_scale²/fan_in) for every matrix."""
        from spinlens.random import torch_generator

        g = torch_generator(rng)
        s = self.config.init_scale
        a = self.blocks[0].attn
        for p in (a.W_Q, a.W_K, a.W_V):
            p.normal_(0.0, s / math.sqrt(p.shape[1]), generator=g)
        a.W_O.normal_(0.0, s / math.sqrt(a.W_O.shape[0] * a.W_O.shape[1]), generator=g)

    def forward(self, Z: torch.Tensor) -> torch.Tensor:
        """``Z (batch, D+1, N+1) -> ŷ (batch,)``, the label coordinate of the residual stream at the query.

        Without active hooks only the query's output is computed (O(N) instead of O(N²) per prompt; the
        same numbers up to rounding, see `forward_full`).
        """
        _check_Z(Z, self.config.d, type(self).__name__)
        if not _any_hook_active(self):
            return self.forward_query(Z)
        return self.forward_full(Z)

    def forward_full(self, Z: torch.Tensor) -> torch.Tensor:
        """Every position through every hook point; the prediction at the query."""
        x = self.hook_embed(Z.to(self.blocks[0].attn.W_Q.dtype).transpose(1, 2))
        resid = self.hook_resid_final(self.blocks[0](x))
        return self.readout(resid)[:, -1, 0]

    def forward_query(self, Z: torch.Tensor) -> torch.Tensor:
        """The prediction computed at the query position only (no hook points)."""
        a = self.blocks[0].attn
        x = Z.to(a.W_Q.dtype).transpose(1, 2)  # [batch, pos, D+1]
        d = self.config.d
        q = torch.einsum("bd,hde->bhe", x[:, -1], a.W_Q)
        u = torch.einsum("hde,he->hd", a.W_V, a.W_O[:, :, d])  # value row read by the label coordinate
        if self.kind == "linear":
            # Σ_t (q_h·k_th)(x_t·u_h) = (W_K^h q_h)ᵀ (Σ_t x_t x_tᵀ) u_h: one second-moment matrix per prompt,
            # shared by every head, instead of per-head keys (the same numbers up to rounding, ~5x faster)
            second_moment = x.transpose(1, 2) @ x  # [batch, D+1, D+1]
            key_dir = torch.einsum("bhe,hfe->bhf", q, a.W_K)
            moment_u = torch.einsum("bfg,hg->bhf", second_moment, u)
            total = (key_dir * moment_u).sum(dim=(1, 2))
            return x[:, -1, d] + total * conventions.token_average(x.shape[1] - 1)
        k = torch.einsum("bpd,hde->bphe", x, a.W_K)
        scores = torch.einsum("bhe,bphe->bhp", q, k)
        pattern = torch.softmax(scores / math.sqrt(a.d_head), dim=-1)
        vals = torch.einsum("bpd,hd->bhp", x, u)
        return x[:, -1, d] + (pattern * vals).sum(dim=(1, 2))


class FullLinearAttention(_AttentionOnlyModel):
    """Full linear attention (FLA): query, key, value and projection matrices, ``n_heads`` heads (default 1).

    ``ŷ = (1/(N+1)) Σ_h Σ_t (x_N W_Q^h)·(x_t W_K^h) (x_t W_V^h W_O^h)_D`` with ``x_t`` the t-th column of Z.

    Parameters
    ----------
    config : ZooConfig with arch "fla"
    rng : None, int or Generator, keyword-only
        Seed of the initialisation.

    Examples
    --------
    >>> m = FullLinearAttention(ZooConfig("fla", d=3), rng=0)
    >>> m(torch.zeros(2, 4, 6)).shape
    torch.Size([2])
    """

    kind = "linear"


class MultiHeadLinearAttention(FullLinearAttention):
    """Multi-head linear attention (MHLA): the FLA form with ``n_heads`` heads (default 4), outputs summed."""


class SoftmaxAttention(_AttentionOnlyModel):
    """One layer of softmax attention (SA) on the raw tokens, with projection; ``n_heads`` heads (default 1)."""

    kind = "softmax"


class SimplifiedLinearAttention(HookedModule):
    """The paper's simplified linear attention (SLA) with hook points, merged or separate.

    The parameters live in ``self.core``, a `spinlens.models.linear_attention.MergedLinearAttention`
    (``arch="sla"``) or `SeparateLinearAttention` (``arch="sla-separate"``). Written as attention:
    ``pattern[q, k] = x_k W x_qᵀ/(N+1)``, values = the tokens, no projection, so that
    ``ŷ = [Z Zᵀ W Z/(N+1)]_{D, N}``. Hooks: ``hook_q`` holds ``x W̃_q`` and ``hook_k`` holds ``x W̃_k``
    with ``W̃_q W̃_kᵀ = Wᵀ`` (merged: ``W̃_q = Wᵀ``, ``W̃_k = I``; separate with ``W = W_qᵀ W_k``:
    ``W̃_q = W_kᵀ``, ``W̃_k = W_qᵀ``), one head.
    """

    def __init__(self, config: ZooConfig, *, rng=None) -> None:
        super().__init__()
        from spinlens.models import linear_attention as la

        cfg = config.resolve()
        self.config = cfg
        self.separate = cfg.arch == "sla-separate"
        std = cfg.init_scale / math.sqrt(cfg.d + 1)
        core: la.MergedLinearAttention | la.SeparateLinearAttention
        if self.separate:
            core = la.SeparateLinearAttention(cfg.d, cfg.d_head, init_std=std, rng=rng, dtype=cfg.torch_dtype)
        else:
            core = la.MergedLinearAttention(cfg.d, init_std=std, rng=rng, dtype=cfg.torch_dtype)
        self.core = core
        self.hook_embed = HookPoint()  # [batch, pos, D+1]
        self.blocks = ModuleSeq([AttentionBlock(_SLAAttention(self))])
        self.hook_resid_final = HookPoint()  # [batch, pos, D+1]
        self.readout = LabelReadout(cfg.d)
        self.setup_hooks()
        # the core's own hook points never fire here (its forward is not used): keep them out of the names
        self._hook_points = {n: hp for n, hp in self._hook_points.items() if not n.startswith("core.")}

    def qk_matrices(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W̃_q, W̃_k)`` of shape ``(D+1, d_head)`` with ``W̃_q W̃_kᵀ = Wᵀ``."""
        from spinlens.models.linear_attention import SeparateLinearAttention

        c = self.core
        if isinstance(c, SeparateLinearAttention):
            return c.W_k.T, c.W_q.T
        W = c.W
        return W.T, torch.eye(W.shape[0], dtype=W.dtype, device=W.device)

    def merged_weights(self) -> torch.Tensor:
        """The merged matrix W, shape (D+1, D+1) (``W_qᵀ W_k`` for the separate form)."""
        return self.core.effective_W()

    def forward(self, Z: torch.Tensor) -> torch.Tensor:
        """``Z (batch, D+1, N+1) -> ŷ (batch,)``; query-only computation when no hook is active."""
        _check_Z(Z, self.config.d, type(self).__name__)
        if not _any_hook_active(self):
            return self.forward_query(Z)
        return self.forward_full(Z)

    def forward_full(self, Z: torch.Tensor) -> torch.Tensor:
        """Every position through every hook point; the prediction at the query."""
        dtype = self.merged_weights().dtype
        x = self.hook_embed(Z.to(dtype).transpose(1, 2))
        resid = self.hook_resid_final(self.blocks[0](x))
        return self.readout(resid)[:, -1, 0]

    def forward_query(self, Z: torch.Tensor) -> torch.Tensor:
        """``ŷ = Σ_t y_t (x_t · W x_N)/(N+1)``: the query entry of Z Zᵀ W Z/(N+1), no hook points."""
        W = self.merged_weights()
        Z = Z.to(W.dtype)
        d = self.config.d
        wq = Z[:, :, -1] @ W.T  # [batch, D+1] = W x_N
        label_moment = (Z * Z[:, d : d + 1, :]).sum(dim=2)  # [batch, D+1] = Σ_t x_t y_t: no weights in it
        return Z[:, d, -1] + (wq * label_moment).sum(dim=1) * conventions.token_average(Z.shape[2] - 1)


class _SLAAttention(nn.Module):
    _owner: SimplifiedLinearAttention

    def __init__(self, owner: SimplifiedLinearAttention) -> None:
        super().__init__()
        self.__dict__["_owner"] = owner  # not a submodule (no parameter duplication)
        self.hook_q = HookPoint()  # [batch, pos, 1, d_head]
        self.hook_k = HookPoint()  # [batch, pos, 1, d_head]
        self.hook_v = HookPoint()  # [batch, pos, 1, D+1] (the tokens)
        self.hook_attn_scores = HookPoint()  # [batch, 1, query_pos, key_pos]
        self.hook_pattern = HookPoint()  # [batch, 1, query_pos, key_pos]
        self.hook_z = HookPoint()  # [batch, pos, 1, D+1]
        self.hook_result = HookPoint()  # [batch, pos, 1, D+1] (no projection: result = z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        Wq, Wk = self._owner.qk_matrices()
        q = self.hook_q((x @ Wq)[:, :, None, :])
        k = self.hook_k((x @ Wk)[:, :, None, :])
        v = self.hook_v(x[:, :, None, :])
        scores = self.hook_attn_scores(torch.einsum("bqhe,bkhe->bhqk", q, k))
        pattern = self.hook_pattern(scores * conventions.token_average(x.shape[1] - 1))
        z = self.hook_z(torch.einsum("bhqk,bkhe->bqhe", pattern, v))
        return self.hook_result(z).sum(dim=2)


def _any_hook_active(model: HookedModule) -> bool:
    return any(hp._forward_hooks for hp in model._hook_points.values())


def _build_tf(cfg: ZooConfig, rng) -> nn.Module:
    assert cfg.n_layers is not None and cfg.n_heads is not None and cfg.d_model is not None  # cfg is resolved
    tcfg = TransformerConfig(
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        d_model=cfg.d_model,
        d_head=cfg.d_head,
        d_mlp=cfg.d_mlp,
        layernorm=cfg.layernorm,
        causal=cfg.causal,
        attention="softmax",
        max_pos=cfg.max_pos,
        positional=cfg.positional,
        input_kind="regression",
        d_in=cfg.d + 1,
        init_scale=cfg.init_scale,
        dtype=cfg.dtype,
    )
    model = Transformer(tcfg, rng=rng)
    model.config = cfg
    return model


_CLASSES = {
    "sla": SimplifiedLinearAttention,
    "sla-separate": SimplifiedLinearAttention,
    "fla": FullLinearAttention,
    "mhla": MultiHeadLinearAttention,
    "sa": SoftmaxAttention,
    "tf": Transformer,  # built by _build_tf from the ZooConfig
}

#: registry name -> class
ARCHITECTURES = dict(_CLASSES)


def architecture_class(arch: str):
    """The class behind a registry name (``"tf"`` -> `spinlens.models.transformer.Transformer`)."""
    check_choice("arch", arch, ARCH_NAMES)
    return _CLASSES[arch]


def build_model(config: ZooConfig | dict, *, rng=None) -> nn.Module:
    """Build the zoo model described by ``config`` (a `ZooConfig` or its dict), initialised from ``rng``.

    Examples
    --------
    >>> m = build_model(ZooConfig("mhla", d=4), rng=0)
    >>> m.config.n_heads, m(torch.randn(8, 5, 11)).shape
    (4, torch.Size([8]))
    """
    if isinstance(config, dict):
        config = ZooConfig.from_dict(config)
    if not isinstance(config, ZooConfig):
        raise InvalidParameterError(f"The 'config' parameter of build_model must be a ZooConfig or dict. Got {config!r}.")
    cfg = config.resolve()
    if cfg.arch == "tf":
        return _build_tf(cfg, rng)
    return _CLASSES[cfg.arch](cfg, rng=rng)


def default_config(arch: str, d: int, **overrides) -> ZooConfig:
    """`ZooConfig` of ``arch`` at dimension ``d`` with every default resolved (``overrides`` first)."""
    return ZooConfig(arch=arch, d=d, **overrides).resolve()
