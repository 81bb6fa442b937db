"""Components of a transformer (heads, neurons, MLPs, attention layers, blocks) and their weight slices.

The weight-space edits (pinpoint tuning, merging, quantization) act on *components*; this module maps a
component to the slices of the parameters that implement it, for models with the TransformerLens
parameter layout of `spinlens.models.transformer.Transformer`:

=================  ==========================================================================================
component          parameter slices (``L`` = layer)
=================  ==========================================================================================
``L1H0`` head      ``blocks.L.attn.W_Q[h]``, ``W_K[h]``, ``W_V[h]`` ``(d_model, d_head)``, ``W_O[h]``
                   ``(d_head, d_model)``, ``b_Q[h]``, ``b_K[h]``, ``b_V[h]`` (``b_O`` is shared: attn only)
``L0N5`` neuron    ``blocks.L.mlp.W_in[:, n]``, ``b_in[n]``, ``W_out[n, :]``
``L0.mlp``         every parameter of ``blocks.L.mlp``
``L0.attn``        every parameter of ``blocks.L.attn``
``L0`` layer       every parameter of ``blocks.L`` (LayerNorms included)
=================  ==========================================================================================

Names are the strings in the first column (`Component.parse` / ``str(component)``).

Hugging Face causal LMs wrapped as `spinlens.interp.hf.HookedHF` (parameters ``hf.<HF name>``) have the same
components, as slices of HF's own matrices (``P`` = the layer's prefix, e.g. ``hf.model.layers.L.``; ``dh`` =
d_head; torch ``Linear`` weights are ``(out, in)``):

=================  ==========================================================================================
component          Llama / Gemma 3 (``self_attn.q_proj`` ...)         GPT-2 (``attn.c_attn``, Conv1D ``(in, out)``)
=================  ==========================================================================================
head ``h``         rows ``h·dh:(h+1)·dh`` of ``q_proj``; columns of    columns ``h·dh``, ``d + h·dh``,
                   ``o_proj``; rows ``g·dh:(g+1)·dh`` of ``k_proj``,    ``2d + h·dh`` (+ dh) of ``c_attn``
                   ``v_proj`` for its kv group ``g = h // (H / H_kv)``  (and bias); rows of ``c_proj``
                   (grouped-query attention: the kv slice is shared
                   by the group's H / H_kv query heads); biases alike
neuron ``n``       row ``n`` of ``gate_proj`` and ``up_proj``, column   column ``n`` of ``mlp.c_fc`` (+ bias),
                   ``n`` of ``down_proj``                              row ``n`` of ``mlp.c_proj``
mlp / attn / layer every parameter under ``P + mlp.`` / ``P + self_attn.`` (``attn.``) / ``P``
=================  ==========================================================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from spinlens.errors import InvalidParameterError, check_choice

KINDS = ("head", "neuron", "mlp", "attn", "layer")
_RE = {
    "head": re.compile(r"^L(\d+)H(\d+)$"),
    "neuron": re.compile(r"^L(\d+)N(\d+)$"),
    "mlp": re.compile(r"^L(\d+)\.mlp$"),
    "attn": re.compile(r"^L(\d+)\.attn$"),
    "layer": re.compile(r"^L(\d+)$"),
}


@dataclass(frozen=True, order=True)
class Component:
    """A head (``kind="head"``, ``index`` = head), an MLP neuron, an MLP, an attention layer or a block."""

    kind: str
    layer: int
    index: int | None = None

    def __str__(self) -> str:
        if self.kind == "head":
            return f"L{self.layer}H{self.index}"
        if self.kind == "neuron":
            return f"L{self.layer}N{self.index}"
        if self.kind in ("mlp", "attn"):
            return f"L{self.layer}.{self.kind}"
        return f"L{self.layer}"

    @classmethod
    def parse(cls, name) -> Component:
        """Parse ``"L1H0"``, ``"L0N5"``, ``"L0.mlp"``, ``"L0.attn"`` or ``"L2"`` (a Component passes through)."""
        if isinstance(name, Component):
            return name
        for kind, rx in _RE.items():
            m = rx.match(str(name).strip())
            if m:
                g = [int(x) for x in m.groups()]
                return cls(kind, g[0], g[1] if len(g) > 1 else None)
        raise InvalidParameterError(
            f"A component name must look like 'L1H0' (head), 'L0N5' (neuron), 'L0.mlp', 'L0.attn' or 'L2'. Got {name!r}."
        )


@dataclass(frozen=True)
class ParamSlice:
    """``param[index]`` along dimension ``dim`` (``dim=None``: the whole parameter)."""

    param: str
    dim: int | None = None
    index: int | None = None
    length: int | None = None  #: with ``length``: the block ``index:index+length`` along ``dim`` (HF models)

    def select(self, tensor):
        """The view of ``tensor`` that this slice addresses."""
        if self.dim is None:
            return tensor
        if self.length is not None:
            return tensor.narrow(self.dim, self.index, self.length)
        return tensor.select(self.dim, self.index)


def _hf_spec(model):
    """(adapter spec, cfg) of a `HookedHF`, or None for spinlens' own Transformer layout."""
    spec, cfg = getattr(model, "spec", None), getattr(model, "cfg", None)
    if isinstance(spec, dict) and "layers" in spec and getattr(cfg, "arch", None) is not None:
        return spec, cfg
    return None


def _hf_slices(model, c, spec, cfg, names, weights_only: bool) -> list:
    P = f"hf.{spec['layers']}.{c.layer}."
    H, dh, d = cfg.n_heads, cfg.d_head, cfg.d_model
    suffixes = ("weight",) if weights_only else ("weight", "bias")
    if c.kind == "head":
        h = c.index
        if "qkv_fused" in spec:  # GPT-2: Conv1D (in, out); q | k | v along the output dim
            out = [ParamSlice(f"{P}{spec['qkv_fused']}.{sx}", 1 if sx == "weight" else 0, off * d + h * dh, dh)
                   for off in range(3) for sx in suffixes]
            out.append(ParamSlice(f"{P}{spec['o_proj']}.weight", 0, h * dh, dh))
            return out
        g = h // (H // cfg.n_kv_heads)
        out = []
        for key, row in (("q", h), ("k", g), ("v", g)):
            out += [ParamSlice(f"{P}{spec[key]}.{sx}", 0, row * dh, dh) for sx in suffixes]
        out.append(ParamSlice(f"{P}{spec['o_proj']}.weight", 1, h * dh, dh))
        return out
    if c.kind == "neuron":
        n = c.index
        if spec.get("o_conv1d"):  # GPT-2: c_fc (in, out) columns, c_proj (in, out) rows
            out = [ParamSlice(f"{P}{spec['mlp_in']}.weight", 1, n, 1), ParamSlice(f"{P}{spec['mlp_down']}.weight", 0, n, 1)]
            if not weights_only:
                out.append(ParamSlice(f"{P}{spec['mlp_in']}.bias", 0, n, 1))
            return out
        up = spec["mlp_in"].replace("gate_proj", "up_proj")
        out = [ParamSlice(f"{P}{nm}.{sx}", 0, n, 1) for nm in (spec["mlp_in"], up) for sx in suffixes]
        out.append(ParamSlice(f"{P}{spec['mlp_down']}.weight", 1, n, 1))
        return out
    prefix = {"mlp": P + spec["mlp"] + ".", "attn": P + spec["attn"] + ".", "layer": P}[c.kind]
    return [ParamSlice(n) for n in names
            if n.startswith(prefix) and (not weights_only or (n.endswith("weight") and names[n].ndim >= 2))]


def model_shape(model) -> dict:
    """``n_layers, n_heads, d_mlp`` of a model with the Transformer layout (read from its parameters) or a
    `HookedHF` (read from its adapter config)."""
    hf = _hf_spec(model)
    if hf is not None:
        cfg = hf[1]
        return {"n_layers": int(cfg.n_layers), "n_heads": int(cfg.n_heads), "d_mlp": int(cfg.d_mlp)}
    names = dict(model.named_parameters())
    layers = sorted({int(m.group(1)) for n in names if (m := re.match(r"^blocks\.(\d+)\.", n))})
    if not layers or f"blocks.{layers[0]}.attn.W_Q" not in names:
        raise InvalidParameterError(
            "The 'model' parameter must have the Transformer parameter layout (blocks.L.attn.W_Q ...)."
        )
    n_heads = names[f"blocks.{layers[0]}.attn.W_Q"].shape[0]
    w_in = names.get(f"blocks.{layers[0]}.mlp.W_in")
    return {"n_layers": len(layers), "n_heads": int(n_heads), "d_mlp": 0 if w_in is None else int(w_in.shape[1])}


def list_components(model, kind: str) -> list[Component]:
    """All components of one ``kind`` in the model, in (layer, index) order."""
    check_choice("kind", kind, KINDS)
    s = model_shape(model)
    if kind == "head":
        return [Component("head", L, h) for L in range(s["n_layers"]) for h in range(s["n_heads"])]
    if kind == "neuron":
        return [Component("neuron", L, n) for L in range(s["n_layers"]) for n in range(s["d_mlp"])]
    if kind == "mlp":
        return [Component("mlp", L) for L in range(s["n_layers"])] if s["d_mlp"] else []
    return [Component(kind, L) for L in range(s["n_layers"])]


def component_slices(model, component, *, weights_only: bool = False) -> list[ParamSlice]:
    """The parameter slices of ``component`` (``weights_only``: only the matrices ``W_*``)."""
    c = Component.parse(component)
    names = dict(model.named_parameters())
    s = model_shape(model)
    if not 0 <= c.layer < s["n_layers"]:
        raise InvalidParameterError(f"Component {c}: layer must be in [0, {s['n_layers'] - 1}]. Got {c.layer}.")
    L = c.layer
    if c.kind in ("head", "neuron"):
        hi = s["n_heads"] if c.kind == "head" else s["d_mlp"]
        if c.index is None or not 0 <= c.index < hi:
            raise InvalidParameterError(f"Component {c}: {c.kind} must be in [0, {hi - 1}]. Got {c.index}.")
    hf = _hf_spec(model)
    if hf is not None:
        out = _hf_slices(model, c, hf[0], hf[1], names, weights_only)
        if not out:
            raise InvalidParameterError(f"Component {c} has no parameters in this model.")
        return [sl for sl in out if sl.param in names]
    if c.kind == "head":
        if c.index is None or not 0 <= c.index < s["n_heads"]:
            raise InvalidParameterError(f"Component {c}: head must be in [0, {s['n_heads'] - 1}]. Got {c.index}.")
        leaves = ["W_Q", "W_K", "W_V", "W_O"] + ([] if weights_only else ["b_Q", "b_K", "b_V"])
        out = [ParamSlice(f"blocks.{L}.attn.{leaf}", 0, c.index) for leaf in leaves]
    elif c.kind == "neuron":
        if c.index is None or not 0 <= c.index < s["d_mlp"]:
            raise InvalidParameterError(f"Component {c}: neuron must be in [0, {s['d_mlp'] - 1}]. Got {c.index}.")
        out = [ParamSlice(f"blocks.{L}.mlp.W_in", 1, c.index), ParamSlice(f"blocks.{L}.mlp.W_out", 0, c.index)]
        if not weights_only:
            out.append(ParamSlice(f"blocks.{L}.mlp.b_in", 0, c.index))
    else:
        prefix = {"mlp": f"blocks.{L}.mlp.", "attn": f"blocks.{L}.attn.", "layer": f"blocks.{L}."}[c.kind]
        out = [
            ParamSlice(n)
            for n in names
            if n.startswith(prefix) and (not weights_only or (n.rsplit(".", 1)[-1].startswith("W_") and names[n].ndim >= 2))
        ]
        if not out:
            raise InvalidParameterError(f"Component {c} has no parameters in this model.")
    return [sl for sl in out if sl.param in names]


def component_masks(model, components) -> dict:
    """Boolean masks ``{param_name: bool tensor}`` that are True on the slices of ``components``.

    Parameters untouched by any component are absent from the dict.
    """
    import torch

    names = dict(model.named_parameters())
    masks: dict = {}
    for comp in components:
        for sl in component_slices(model, comp):
            m = masks.setdefault(sl.param, torch.zeros_like(names[sl.param], dtype=torch.bool))
            sl.select(m).fill_(True)
    return masks


def all_masks(model) -> dict:
    """Masks covering every parameter (full fine-tuning)."""
    import torch

    return {n: torch.ones_like(p, dtype=torch.bool) for n, p in model.named_parameters()}


def component_size(model, component, *, weights_only: bool = True) -> int:
    """Number of parameters in the component's slices."""
    names = dict(model.named_parameters())
    return int(sum(sl.select(names[sl.param]).numel() for sl in component_slices(model, component, weights_only=weights_only)))


def select_components(importance, k: int, *, kind: str | None = None, largest: bool = True, absolute: bool = True):
    """The ``k`` most (``largest``) or least important components.

    Parameters
    ----------
    importance : xarray.DataArray with dims (layer, head) or (layer, neuron), or dict {component: score}
        E.g. the head × layer map of activation patching, or `attribution_importance`.
    k : int
    kind : {"head", "neuron"}, optional
        Needed only when a DataArray's second dim is not named ``head``/``neuron``.
    absolute : bool
        Rank by |score|.
    """
    scores = importance_to_dict(importance, kind=kind)
    if not 1 <= k <= len(scores):
        raise InvalidParameterError(f"The 'k' parameter must be an integer in [1, {len(scores)}]. Got {k!r} instead.")
    items = sorted(scores.items(), key=lambda kv: (abs(kv[1]) if absolute else kv[1], kv[0]), reverse=largest)
    return [c for c, _ in items[:k]]


def importance_to_dict(importance, *, kind: str | None = None) -> dict:
    """``{Component: float}`` from a DataArray (layer × head/neuron) or a dict keyed by names/Components."""
    if isinstance(importance, dict):
        return {Component.parse(k): float(v) for k, v in importance.items()}
    dims = tuple(importance.dims)
    if len(dims) != 2 or dims[0] != "layer":
        raise InvalidParameterError(f"An importance DataArray must have dims (layer, head|neuron). Got {dims}.")
    kind = kind or {"head": "head", "neuron": "neuron"}.get(dims[1])
    if kind not in ("head", "neuron"):
        raise InvalidParameterError(f"Cannot tell the component kind of dims {dims}: pass kind='head' or 'neuron'.")
    vals = np.asarray(importance.values, dtype=float)
    layers = importance.coords["layer"].values if "layer" in importance.coords else np.arange(vals.shape[0])
    idx = importance.coords[dims[1]].values if dims[1] in importance.coords else np.arange(vals.shape[1])
    return {Component(kind, int(L), int(i)): float(vals[a, b]) for a, L in enumerate(layers) for b, i in enumerate(idx)}


def random_components(model, kind: str, k: int, *, rng=None) -> list[Component]:
    """``k`` components of ``kind`` drawn uniformly without replacement (the uninformed baseline)."""
    from spinlens.random import as_generator

    comps = list_components(model, kind)
    if not 1 <= k <= len(comps):
        raise InvalidParameterError(f"The 'k' parameter must be an integer in [1, {len(comps)}]. Got {k!r} instead.")
    pick = as_generator(rng).choice(len(comps), size=k, replace=False)
    return sorted(comps[i] for i in pick)
