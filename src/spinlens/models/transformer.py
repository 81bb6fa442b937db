"""A small GPT-2-style transformer with TransformerLens-style hook points.

Two input kinds share one body (blocks of attention + MLP with pre-LayerNorm):

* ``input_kind="regression"``: the prompt matrix ``Z`` of shape ``(batch, D+1, N+1)`` is read as a
  sequence of ``N+1`` tokens (its columns ``[x_i; y_i]``, the query ``[x_query; 0]`` last), each mapped
  to ``d_model`` by a linear read-in; a scalar linear read-out at every position gives
  ``readout.hook_out`` ``[batch, pos, 1]`` and ``forward(Z)`` returns its value at the query,
  shape ``(batch,)`` — the interface of every spinlens model.
* ``input_kind="tokens"``: ``forward(tokens)`` with integer tokens ``(batch, pos)`` returns logits
  ``(batch, pos, d_vocab)`` (token embedding + unembedding).

Hook names and shapes (``docs/design.md``, "Hook names"); ``L`` is the layer index:

==================================  ===========================================================
name                                shape
==================================  ===========================================================
``hook_embed``                      ``[batch, pos, d_model]`` read-in plus positions
``blocks.L.hook_resid_pre``         ``[batch, pos, d_model]``
``blocks.L.attn.hook_q_input``      ``[batch, pos, head, d_model]`` (only with ``split_qkv_input``;
(also ``hook_k_input``,             a per-head copy of the residual stream before ``ln1``, so a
``hook_v_input``)                   change reaches one head's q (k, v) only)
``blocks.L.attn.hook_q/k/v/z``      ``[batch, pos, head, d_head]``
``blocks.L.attn.hook_attn_scores``  ``[batch, head, query_pos, key_pos]`` (before softmax/mask)
``blocks.L.attn.hook_pattern``      ``[batch, head, query_pos, key_pos]``
``blocks.L.attn.hook_result``       ``[batch, pos, head, d_model]`` each head's output after W_O
``blocks.L.hook_attn_out``          ``[batch, pos, d_model]`` sum of heads + b_O
``blocks.L.hook_resid_mid``         ``[batch, pos, d_model]``
``blocks.L.mlp.hook_pre/hook_post`` ``[batch, pos, d_mlp]`` (absent when ``d_mlp == 0``)
``blocks.L.hook_mlp_out``           ``[batch, pos, d_model]`` (absent when ``d_mlp == 0``)
``blocks.L.hook_resid_post``        ``[batch, pos, d_model]``
``hook_resid_final``                ``[batch, pos, d_model]`` after the final LayerNorm
``readout.hook_out``                ``[batch, pos, n_out]`` (regression: 1; tokens: d_vocab)
==================================  ===========================================================

Attention: ``attention="softmax"`` is the usual scaled dot-product softmax attention;
``attention="linear"`` drops the softmax: pattern = scores / (number of keys the query sees), so at the
query of a prompt with ``N+1`` columns the average is ``1/(N+1)`` as in the paper's linear attention
(`spinlens.conventions.token_average`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn

from spinlens.errors import InvalidParameterError, check_choice, check_int
from spinlens.models.hooks import HookedModule, HookPoint, ModuleSeq

ACTIVATIONS = ("gelu", "relu", "silu", "tanh", "identity")
ATTENTIONS = ("softmax", "linear")
INPUT_KINDS = ("regression", "tokens")
POSITIONALS = ("learned", "none")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class TransformerConfig:
    """Hyperparameters of `Transformer`.

    Parameters
    ----------
    n_layers, n_heads, d_model : int
        Depth, heads per layer, width of the residual stream.
    d_head : int or None
        Width of each head; None means ``d_model // n_heads``.
    d_mlp : int or None
        Hidden width of the MLP; None means ``4 * d_model``; 0 means no MLP (attention-only).
    act : {"gelu", "relu", "silu", "tanh", "identity"}
        MLP activation.
    layernorm : bool
        Pre-LayerNorm in each block and a final LayerNorm (False: none anywhere).
    causal : bool
        Causal attention mask.
    attention : {"softmax", "linear"}
        Softmax attention or linear attention (no softmax, average over the visible keys).
    max_pos : int
        Number of learned positions (longest sequence).
    positional : {"learned", "none"}
        Learned positional embedding or none.
    input_kind : {"regression", "tokens"}
        Prompt matrices ``Z`` with a scalar read-out, or integer tokens with vocabulary logits.
    d_in : int or None
        Regression only: the token dimension ``D + 1`` (rows of ``Z``).
    d_vocab : int or None
        Tokens only: vocabulary size.
    split_qkv_input : bool
        Expose per-head q/k/v inputs (``attn.hook_q_input`` ...), needed for path patching.
    attn_bias, mlp_bias : bool
        Biases in the attention projections / the MLP.
    init_scale : float
        Weights are N(0, init_scale² / fan_in).
    dtype : {"float32", "float64"}
    """

    n_layers: int = 2
    n_heads: int = 4
    d_model: int = 64
    d_head: int | None = None
    d_mlp: int | None = None
    act: str = "gelu"
    layernorm: bool = True
    causal: bool = True
    attention: str = "softmax"
    max_pos: int = 256
    positional: str = "learned"
    input_kind: str = "regression"
    d_in: int | None = None
    d_vocab: int | None = None
    split_qkv_input: bool = False
    attn_bias: bool = True
    mlp_bias: bool = True
    init_scale: float = 1.0
    dtype: str = "float32"

    def __post_init__(self) -> None:
        o = "TransformerConfig"
        check_int("n_layers", self.n_layers, low=0, owner=o)
        check_int("n_heads", self.n_heads, low=1, owner=o)
        check_int("d_model", self.d_model, low=1, owner=o)
        if self.d_head is None:
            if self.d_model % self.n_heads:
                raise InvalidParameterError(
                    f"The 'd_model' parameter of {o} must be divisible by n_heads={self.n_heads} when d_head "
                    f"is None. Got {self.d_model!r} instead."
                )
            object.__setattr__(self, "d_head", self.d_model // self.n_heads)
        check_int("d_head", self.d_head, low=1, owner=o)
        if self.d_mlp is None:
            object.__setattr__(self, "d_mlp", 4 * self.d_model)
        check_int("d_mlp", self.d_mlp, low=0, owner=o)
        check_choice("act", self.act, ACTIVATIONS, owner=o)
        check_choice("attention", self.attention, ATTENTIONS, owner=o)
        check_choice("positional", self.positional, POSITIONALS, owner=o)
        check_choice("input_kind", self.input_kind, INPUT_KINDS, owner=o)
        check_choice("dtype", self.dtype, tuple(DTYPES), owner=o)
        check_int("max_pos", self.max_pos, low=1, owner=o)
        if self.input_kind == "regression":
            if self.d_in is None:
                raise InvalidParameterError(
                    f"The 'd_in' parameter of {o} must be an integer >= 2 (D+1) for input_kind='regression'. "
                    "Got None instead."
                )
            check_int("d_in", self.d_in, low=2, owner=o)
        else:
            if self.d_vocab is None:
                raise InvalidParameterError(
                    f"The 'd_vocab' parameter of {o} must be an integer >= 2 for input_kind='tokens'. Got None instead."
                )
            check_int("d_vocab", self.d_vocab, low=2, owner=o)
        if not (isinstance(self.init_scale, (int, float)) and math.isfinite(self.init_scale) and self.init_scale >= 0):
            raise InvalidParameterError(
                f"The 'init_scale' parameter of {o} must be a real number in [0, inf). Got {self.init_scale!r} instead."
            )

    @property
    def n_out(self) -> int:
        if self.input_kind == "regression":
            return 1
        assert self.d_vocab is not None  # checked in __post_init__
        return self.d_vocab

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def to_dict(self) -> dict:
        return asdict(self)

    def replace(self, **changes) -> TransformerConfig:
        return replace(self, **changes)


def _act(name: str):
    return {
        "gelu": nn.functional.gelu,
        "relu": torch.relu,
        "silu": nn.functional.silu,
        "tanh": torch.tanh,
        "identity": lambda x: x,
    }[name]


class LayerNorm(nn.Module):
    """LayerNorm over the last dim (any leading dims, so it also works on per-head copies)."""

    def __init__(self, d: int, *, eps: float = 1e-5, dtype=torch.float32) -> None:
        super().__init__()
        self.eps = eps
        self.w = nn.Parameter(torch.ones(d, dtype=dtype))
        self.b = nn.Parameter(torch.zeros(d, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.layer_norm(x, (x.shape[-1],), self.w, self.b, self.eps)


class Attention(nn.Module):
    """Multi-head attention with per-head hook points.

    Weights: ``W_Q, W_K, W_V`` ``(head, d_model, d_head)``, ``b_Q, b_K, b_V`` ``(head, d_head)``,
    ``W_O`` ``(head, d_head, d_model)``, ``b_O`` ``(d_model,)``.
    """

    ln: nn.Module  # the block's ln1, not registered here

    def __init__(self, cfg: TransformerConfig, ln: nn.Module) -> None:
        super().__init__()
        self.cfg = cfg
        assert cfg.d_head is not None  # filled in by TransformerConfig.__post_init__
        h, dm, dh, dt = cfg.n_heads, cfg.d_model, cfg.d_head, cfg.torch_dtype
        self.d_head = dh
        self.W_Q = nn.Parameter(torch.zeros(h, dm, dh, dtype=dt))
        self.W_K = nn.Parameter(torch.zeros(h, dm, dh, dtype=dt))
        self.W_V = nn.Parameter(torch.zeros(h, dm, dh, dtype=dt))
        self.W_O = nn.Parameter(torch.zeros(h, dh, dm, dtype=dt))
        if cfg.attn_bias:
            self.b_Q = nn.Parameter(torch.zeros(h, dh, dtype=dt))
            self.b_K = nn.Parameter(torch.zeros(h, dh, dtype=dt))
            self.b_V = nn.Parameter(torch.zeros(h, dh, dtype=dt))
            self.b_O = nn.Parameter(torch.zeros(dm, dtype=dt))
        else:
            self.register_buffer("b_Q", torch.zeros(h, dh, dtype=dt), persistent=False)
            self.register_buffer("b_K", torch.zeros(h, dh, dtype=dt), persistent=False)
            self.register_buffer("b_V", torch.zeros(h, dh, dtype=dt), persistent=False)
            self.register_buffer("b_O", torch.zeros(dm, dtype=dt), persistent=False)
        # the block's ln1 (registered there), applied here so that split q/k/v inputs go through it per head
        self.__dict__["ln"] = ln
        if cfg.split_qkv_input:
            self.hook_q_input = HookPoint()  # [batch, pos, head, d_model]
            self.hook_k_input = HookPoint()
            self.hook_v_input = HookPoint()
        self.hook_q = HookPoint()  # [batch, pos, head, d_head]
        self.hook_k = HookPoint()
        self.hook_v = HookPoint()
        self.hook_attn_scores = HookPoint()  # [batch, head, query_pos, key_pos]
        self.hook_pattern = HookPoint()  # [batch, head, query_pos, key_pos]
        self.hook_z = HookPoint()  # [batch, pos, head, d_head]
        self.hook_result = HookPoint()  # [batch, pos, head, d_model]

    def _active(self, *hps) -> bool:
        return any(hp._forward_hooks for hp in hps)

    def forward(self, resid: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        H, dh = cfg.n_heads, self.d_head
        if cfg.split_qkv_input:
            # three distinct per-head copies (separate autograd nodes, so gradients stay per route)
            def rep():
                return resid[:, :, None, :].expand(-1, -1, H, -1)

            xq = self.ln(self.hook_q_input(rep()))
            xk = self.ln(self.hook_k_input(rep()))
            xv = self.ln(self.hook_v_input(rep()))
            q = torch.einsum("bphd,hde->bphe", xq, self.W_Q)
            k = torch.einsum("bphd,hde->bphe", xk, self.W_K)
            v = torch.einsum("bphd,hde->bphe", xv, self.W_V)
        else:
            x = self.ln(resid)
            W = torch.stack([self.W_Q, self.W_K, self.W_V]).permute(2, 0, 1, 3).reshape(cfg.d_model, 3 * H * dh)
            b = torch.stack([self.b_Q, self.b_K, self.b_V]).reshape(3 * H * dh)
            qkv = torch.addmm(b, x.reshape(-1, cfg.d_model), W).reshape(*x.shape[:-1], 3, H, dh)
            q, k, v = qkv[..., 0, :, :], qkv[..., 1, :, :], qkv[..., 2, :, :]
        if cfg.split_qkv_input:
            q, k, v = q + self.b_Q, k + self.b_K, v + self.b_V
        q = self.hook_q(q)
        k = self.hook_k(k)
        v = self.hook_v(v)
        if cfg.attention == "softmax" and not self._active(self.hook_attn_scores, self.hook_pattern):
            # fast path (no one reads the pattern): fused scaled dot-product attention
            z = nn.functional.scaled_dot_product_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=cfg.causal
            ).transpose(1, 2)
        else:
            scores = torch.einsum("bqhe,bkhe->bhqk", q, k) / math.sqrt(dh)
            scores = self.hook_attn_scores(scores)
            T = scores.shape[-1]
            if cfg.attention == "softmax":
                if cfg.causal:
                    mask = torch.ones(T, T, dtype=torch.bool, device=scores.device).triu(1)
                    scores = scores.masked_fill(mask, float("-inf"))
                pattern = torch.softmax(scores, dim=-1)
            else:
                if cfg.causal:
                    keep = torch.ones(T, T, dtype=scores.dtype, device=scores.device).tril()
                    n_keys = torch.arange(1, T + 1, dtype=scores.dtype, device=scores.device)
                    pattern = scores * keep / n_keys[:, None]
                else:
                    pattern = scores / T
            pattern = self.hook_pattern(pattern)
            z = torch.einsum("bhqk,bkhe->bqhe", pattern, v)
        z = self.hook_z(z)
        if self._active(self.hook_result):  # per-head results only when someone reads/writes them (memory)
            result = self.hook_result(torch.einsum("bqhe,hem->bqhm", z, self.W_O))
            return result.sum(dim=2) + self.b_O
        return z.reshape(*z.shape[:-2], H * dh) @ self.W_O.reshape(H * dh, cfg.d_model) + self.b_O


    def forward_last(self, resid: torch.Tensor) -> torch.Tensor:
        """The attention output ``[batch, 1, d_model]`` at the last position only (no hook points).

        Keys and values of every position, the query of the last one: the same numbers as ``forward(resid)[:, -1:]``
        up to rounding. The last position sees every key with or without the causal mask.
        """
        cfg = self.cfg
        H, dh = cfg.n_heads, cfg.d_head
        assert dh is not None  # set by the config
        x = self.ln(resid)
        q = torch.einsum("bd,hde->bhe", x[:, -1], self.W_Q) + self.b_Q  # [batch, head, d_head]
        k = torch.einsum("bpd,hde->bhpe", x, self.W_K) + self.b_K[:, None]  # [batch, head, pos, d_head]
        v = torch.einsum("bpd,hde->bhpe", x, self.W_V) + self.b_V[:, None]
        scores = torch.einsum("bhe,bhpe->bhp", q, k) / math.sqrt(dh)
        if cfg.attention == "softmax":
            pattern = torch.softmax(scores, dim=-1)
        else:
            pattern = scores / scores.shape[-1]
        z = torch.einsum("bhp,bhpe->bhe", pattern, v)
        return (z.reshape(z.shape[0], 1, H * dh) @ self.W_O.reshape(H * dh, cfg.d_model)) + self.b_O


class MLP(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        dt, d_mlp = cfg.torch_dtype, cfg.d_mlp
        assert d_mlp is not None  # filled in by TransformerConfig.__post_init__
        self.W_in = nn.Parameter(torch.zeros(cfg.d_model, d_mlp, dtype=dt))
        self.W_out = nn.Parameter(torch.zeros(d_mlp, cfg.d_model, dtype=dt))
        if cfg.mlp_bias:
            self.b_in = nn.Parameter(torch.zeros(d_mlp, dtype=dt))
            self.b_out = nn.Parameter(torch.zeros(cfg.d_model, dtype=dt))
        else:
            self.register_buffer("b_in", torch.zeros(d_mlp, dtype=dt), persistent=False)
            self.register_buffer("b_out", torch.zeros(cfg.d_model, dtype=dt), persistent=False)
        self.act = _act(cfg.act)
        self.hook_pre = HookPoint()  # [batch, pos, d_mlp]
        self.hook_post = HookPoint()  # [batch, pos, d_mlp]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = torch.addmm(self.b_in, x.reshape(-1, x.shape[-1]), self.W_in).reshape(*x.shape[:-1], -1)
        post = self.hook_post(self.act(self.hook_pre(pre)))
        return torch.addmm(self.b_out, post.reshape(-1, post.shape[-1]), self.W_out).reshape(*x.shape)


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        dt = cfg.torch_dtype
        self.ln1 = LayerNorm(cfg.d_model, dtype=dt) if cfg.layernorm else nn.Identity()
        self.attn = Attention(cfg, self.ln1)
        self.has_mlp = bool(cfg.d_mlp)
        if self.has_mlp:
            self.ln2 = LayerNorm(cfg.d_model, dtype=dt) if cfg.layernorm else nn.Identity()
            self.mlp = MLP(cfg)
            self.hook_mlp_out = HookPoint()  # [batch, pos, d_model]
        self.hook_resid_pre = HookPoint()  # [batch, pos, d_model]
        self.hook_attn_out = HookPoint()
        self.hook_resid_mid = HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(self, resid: torch.Tensor) -> torch.Tensor:
        resid = self.hook_resid_pre(resid)
        resid = self.hook_resid_mid(resid + self.hook_attn_out(self.attn(resid)))
        if self.has_mlp:
            resid = resid + self.hook_mlp_out(self.mlp(self.ln2(resid)))
        return self.hook_resid_post(resid)

    def forward_last(self, resid: torch.Tensor) -> torch.Tensor:
        """The residual stream after this block at the last position only, ``[batch, 1, d_model]`` (no hooks)."""
        out = resid[:, -1:] + self.attn.forward_last(resid)
        if self.has_mlp:
            out = out + self.mlp(self.ln2(out))
        return out


class Readout(nn.Module):
    """Linear read-out ``d_model -> n_out`` at every position; ``hook_out`` ``[batch, pos, n_out]``."""

    def __init__(self, d_model: int, n_out: int, *, dtype=torch.float32) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.zeros(d_model, n_out, dtype=dtype))
        self.b = nn.Parameter(torch.zeros(n_out, dtype=dtype))
        self.hook_out = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hook_out(x @ self.W + self.b)


class Transformer(HookedModule):
    """GPT-2-style transformer (pre-LN) with hook points; see the module docstring for names and shapes.

    Parameters
    ----------
    config : TransformerConfig
        Architecture. Keyword arguments override its fields (``Transformer(cfg, n_layers=3)``) or build
        one from scratch (``Transformer(d_in=6, n_layers=2)``).
    rng : None, int or numpy Generator, keyword-only
        Seed of the deterministic initialisation.

    Examples
    --------
    >>> m = Transformer(TransformerConfig(n_layers=1, n_heads=2, d_model=8, d_in=4), rng=0)
    >>> m(torch.zeros(3, 4, 5)).shape
    torch.Size([3])
    """

    config: Any  # a ZooConfig, set (only) on the zoo's "tf" models, by `spinlens.models.zoo.build_model`

    def __init__(self, config: TransformerConfig | None = None, *, rng=None, **overrides) -> None:
        super().__init__()
        if config is None:
            config = TransformerConfig(**overrides)
        elif overrides:
            config = replace(config, **overrides)
        self.cfg = config
        cfg, dt = config, config.torch_dtype
        if cfg.input_kind == "regression":
            assert cfg.d_in is not None  # checked in TransformerConfig.__post_init__
            self.W_in = nn.Parameter(torch.zeros(cfg.d_in, cfg.d_model, dtype=dt))
            self.b_in = nn.Parameter(torch.zeros(cfg.d_model, dtype=dt))
        else:
            self.W_E = nn.Parameter(torch.zeros(cfg.n_out, cfg.d_model, dtype=dt))
        if cfg.positional == "learned":
            self.W_pos = nn.Parameter(torch.zeros(cfg.max_pos, cfg.d_model, dtype=dt))
        self.hook_embed = HookPoint()  # [batch, pos, d_model]
        self.blocks = ModuleSeq([Block(cfg) for _ in range(cfg.n_layers)])
        self.ln_final = LayerNorm(cfg.d_model, dtype=dt) if cfg.layernorm else nn.Identity()
        self.hook_resid_final = HookPoint()  # [batch, pos, d_model]
        self.readout = Readout(cfg.d_model, cfg.n_out, dtype=dt)
        self.reset_parameters(rng=rng)
        self.setup_hooks()

    # ------------------------------------------------------------------ init
    @torch.no_grad()
    def reset_parameters(self, *, rng=None) -> None:
        """Deterministic init from ``rng``: matrices N(0, init_scale²/fan_in), biases 0, LayerNorm 1/0."""
        from spinlens.random import torch_generator

        g = torch_generator(rng)
        s = self.cfg.init_scale
        for name, p in self.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf in ("W_Q", "W_K", "W_V"):
                p.normal_(0.0, s / math.sqrt(p.shape[1]), generator=g)
            elif leaf == "W_O":
                p.normal_(0.0, s / math.sqrt(p.shape[0] * p.shape[1]), generator=g)
            elif leaf in ("W_in", "W_out", "W"):
                p.normal_(0.0, s / math.sqrt(p.shape[0]), generator=g)
            elif leaf in ("W_E", "W_pos"):
                p.normal_(0.0, s / math.sqrt(self.cfg.d_model), generator=g)
            elif leaf == "w":  # LayerNorm gain
                p.fill_(1.0)
            else:  # biases
                p.zero_()

    # --------------------------------------------------------------- forward
    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        """Read-in plus positions (before ``hook_embed``): ``[batch, pos, d_model]``."""
        cfg = self.cfg
        if cfg.input_kind == "regression":
            if inputs.ndim != 3 or inputs.shape[1] != cfg.d_in:
                raise InvalidParameterError(
                    f"The 'Z' parameter of Transformer.forward must have shape (batch, {cfg.d_in}, n_context+1). "
                    f"Got {tuple(inputs.shape)} instead."
                )
            x = inputs.to(self.W_in.dtype).transpose(1, 2) @ self.W_in + self.b_in
        else:
            if inputs.ndim != 2 or inputs.dtype.is_floating_point:
                raise InvalidParameterError(
                    "The 'tokens' parameter of Transformer.forward must be an integer tensor of shape (batch, pos). "
                    f"Got dtype {inputs.dtype} and shape {tuple(inputs.shape)} instead."
                )
            x = self.W_E[inputs]
        T = x.shape[1]
        if T > cfg.max_pos:
            raise InvalidParameterError(
                f"The sequence length must be <= max_pos={cfg.max_pos}. Got {T} instead."
            )
        if cfg.positional == "learned":
            x = x + self.W_pos[:T]
        return x

    def unembed(self, resid: torch.Tensor) -> torch.Tensor:
        """Final LayerNorm + read-out of any residual stream ``[..., d_model] -> [..., n_out]``.

        Applied to intermediate residual streams this is the logit / read-out lens.
        """
        return self.ln_final(resid) @ self.readout.W + self.readout.b

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Regression: ``Z (batch, D+1, N+1) -> (batch,)``; tokens: ``(batch, pos) -> (batch, pos, d_vocab)``."""
        return self.forward_from(self.hook_embed(self.embed(inputs)), 0)

    def forward_from(self, resid: torch.Tensor, start_layer: int) -> torch.Tensor:
        """Run blocks ``start_layer, ...`` on the residual stream ``resid`` ``[batch, pos, d_model]`` (the input of
        ``blocks.{start_layer}.hook_resid_pre``) and return the model output; hooks of earlier layers do not fire."""
        blocks = list(self.blocks[start_layer:])
        if self.cfg.input_kind == "regression" and blocks and not self.cfg.split_qkv_input and torch.is_grad_enabled() \
                and not any(hp._forward_hooks for hp in self._hook_points.values()):
            # training: only the query's prediction is returned, so the last block runs at the last position
            # only (same numbers up to rounding; about half the cost of a 2-layer model at N = 170). Without
            # gradients (evaluation, interpretability) every run takes the full pass, so that a hooked run and
            # an unhooked one differ only by what the hooks do
            for block in blocks[:-1]:
                resid = block(resid)
            last = blocks[-1].forward_last(resid)
            return (self.ln_final(last) @ self.readout.W + self.readout.b)[:, -1, 0]
        for block in blocks:
            resid = block(resid)
        out = self.readout(self.hook_resid_final(self.ln_final(resid)))
        if self.cfg.input_kind == "regression":
            return out[:, -1, 0]
        return out

    # ----------------------------------------------------------- utilities
    def with_split_qkv_input(self, on: bool = True) -> Transformer:
        """A copy of this model (same weights) with ``split_qkv_input`` switched ``on``/off."""
        new = Transformer(self.cfg.replace(split_qkv_input=on))
        new.load_state_dict(self.state_dict())
        return new

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
