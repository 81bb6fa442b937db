"""Importance of heads, MLP neurons and MLPs for the loss of a model: one routine per method.

The loss is the squared error of a regression model (prompts ``Z``, targets ``y``) or, for a token model (a
language model, ``cfg.input_kind == "tokens"``), the next-token cross-entropy summed over the positions of
each window (``Z``: token windows ``(P, T+1)``, ``y`` unused: ``None``).

* `attribution_importance` — gradient × activation (attribution patching to zero): for a component with
  activation ``a`` and loss ``ℓ = Σ_p (model(Z_p) − y_p)²``, the first-order change of prompt p's loss
  when the component is zero-ablated is ``−Σ_{pos, d} a·∂ℓ_p/∂a``; the score is the mean over prompts of
  its absolute value (or of the signed value). One forward and one backward pass cover every component.
* `ablation_importance` — the measured increase of the MSE when a head or MLP output is mean-ablated.
* `component_importance` — either of the two as ``{component name: score}`` for heads (``L{L}H{h}``)
  and MLPs (``L{L}.mlp``), the form the quantization allocator takes.

Component hooks (``docs/design.md``): heads ``blocks.L.attn.hook_result`` ``[batch, pos, head, d_model]``,
neurons ``blocks.L.mlp.hook_post`` ``[batch, pos, d_mlp]``, MLPs ``blocks.L.hook_mlp_out``
``[batch, pos, d_model]``.
"""

from __future__ import annotations

import numpy as np

from spinlens.errors import InvalidParameterError, check_choice
from spinlens.vocabulary import act_name

__all__ = ["attribution_importance", "ablation_importance", "component_importance"]

_KINDS = {
    # kind -> (activation kind of `spinlens.vocabulary.act_name`, dims summed per prompt (besides the batch),
    # output dim name)
    "head": ("result", (1, 3), "head"),
    "neuron": ("mlp_post", (1,), "neuron"),
    "mlp": ("mlp_out", (1, 2), None),
}


def _tensor(x, model):
    import torch

    return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=next(model.parameters()).dtype)


def _first_order_ablation(model, Z, y, kinds, loss_fn=None) -> dict:
    """``{kind: (n_layers, n_prompts, ...) array}`` of −Σ a·∂ℓ_p/∂a per prompt, from one backward pass."""
    import torch

    from spinlens.edit.components import model_shape

    s = model_shape(model)
    if any(k in ("neuron", "mlp") for k in kinds) and not s["d_mlp"]:
        raise InvalidParameterError(f"kind={kinds[-1]!r} needs a model with MLPs (d_mlp > 0).")
    names = {k: [act_name(_KINDS[k][0], L) for L in range(s["n_layers"])] for k in kinds}
    acts = {}

    def keep(act, hook):
        act.retain_grad()
        acts[hook.name] = act

    tokens = getattr(model.cfg, "input_kind", "regression") == "tokens"
    if loss_fn is None and tokens:
        W = torch.as_tensor(np.asarray(Z) if not isinstance(Z, torch.Tensor) else Z).long()
        if W.ndim != 2 or W.shape[1] < 2:
            raise InvalidParameterError(f"A token model needs windows of shape (P, T+1), T >= 1. Got {tuple(W.shape)}.")
    elif loss_fn is None:
        Zt, yt = _tensor(Z, model), _tensor(y, model)
    with torch.enable_grad(), model.hooks([(n, keep) for ns in names.values() for n in ns]):
        if loss_fn is not None:
            loss = loss_fn(model)  # a sum over prompts: per-prompt gradients are those of each prompt's loss
        elif tokens:
            # next-token cross-entropy summed over each window's positions: ℓ_p of window p
            logits = model(W[:, :-1]).float()
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), W[:, 1:].reshape(-1),
                                                     reduction="sum")
        else:
            pred = model(Zt)
            # sum of per-prompt squared errors: the gradient w.r.t. prompt p's activations is ∂ℓ_p/∂a
            loss = ((pred - yt) ** 2).sum()
        model.zero_grad(set_to_none=True)
        loss.backward()
    out = {}
    for k, ns in names.items():
        dims = _KINDS[k][1]
        out[k] = np.stack([(-(acts[n].detach() * acts[n].grad).sum(dim=dims)).double().cpu().numpy() for n in ns])
    model.zero_grad(set_to_none=True)
    return out


def attribution_importance(model, Z, y, *, kind: str = "head", absolute: bool = True, loss_fn=None):
    """Gradient × activation importance of every head, MLP neuron or MLP (attribution patching to zero).

    Parameters
    ----------
    model : spinlens Transformer (regression, or a token model: a language model)
    Z, y : prompts ``(P, D+1, N+1)`` and targets ``(P,)``; for a token model, token windows ``(P, T+1)`` and
        ``None`` (the loss is the next-token cross-entropy, summed over each window)
    kind : {"head", "neuron", "mlp"}
    absolute : bool
        Mean of |score| over prompts (default) or of the signed score (positive: ablating the component
        raises the loss).
    loss_fn : callable, optional
        ``loss_fn(model) -> scalar``: a loss summed over prompts (prompts independent, batch dim first) that
        replaces the default loss; ``Z`` and ``y`` are then unused (e.g. the answer-token loss of a text
        task on a Hugging Face model, `spinlens.llm.tuning`).

    Returns
    -------
    xarray.DataArray, dims (layer, head), (layer, neuron) or (layer,)
    """
    import xarray as xr

    check_choice("kind", kind, tuple(_KINDS))
    per = _first_order_ablation(model, Z, y, (kind,), loss_fn)[kind]  # (layer, batch, ...)
    vals = (np.abs(per) if absolute else per).mean(axis=1)
    dim = _KINDS[kind][2]
    dims = ("layer",) if dim is None else ("layer", dim)
    coords = {"layer": np.arange(vals.shape[0])}
    if dim is not None:
        coords[dim] = np.arange(vals.shape[1])
    return xr.DataArray(
        vals, dims=dims, coords=coords, name="attribution",
        attrs={"long_name": ("|grad × activation|" if absolute else "grad × activation")
               + " (loss change on zero ablation, 1st order)",
               "units": "nats per window" if getattr(model.cfg, "input_kind", "") == "tokens" else "squared label units"},
    )


def ablation_importance(model, Z, y) -> dict:
    """Increase of the MSE when each head / MLP output is mean-ablated, clipped at 0: ``{name: score}``."""
    import torch

    from spinlens.edit.components import model_shape
    from spinlens.interp.interventions import Ablate, run_steered

    s = model_shape(model)
    Zt, yt = _tensor(Z, model), _tensor(y, model)
    base = float(torch.mean((run_steered(model, Zt) - yt) ** 2))
    out = {}
    for L in range(s["n_layers"]):
        hk = act_name("result", L)
        ref = Ablate.from_model(model, Zt, hk, "mean").reference
        for h in range(s["n_heads"]):
            e = float(torch.mean((run_steered(model, Zt, [Ablate(hk, "mean", ref, head=h)]) - yt) ** 2))
            out[f"L{L}H{h}"] = max(e - base, 0.0)
    for L in range(s["n_layers"] if s["d_mlp"] else 0):
        ab = Ablate.from_model(model, Zt, act_name("mlp_out", L), "mean")
        out[f"L{L}.mlp"] = max(float(torch.mean((run_steered(model, Zt, [ab]) - yt) ** 2)) - base, 0.0)
    return out


def component_importance(model, Z, y, *, method: str = "attribution") -> dict:
    """Importance of each head and each MLP: ``{component name: score >= 0}``.

    ``method="attribution"``: `attribution_importance` (absolute) of the head outputs and MLP outputs;
    ``method="ablation"``: `ablation_importance`.
    """
    from spinlens.edit.components import model_shape

    check_choice("method", method, ("attribution", "ablation"))
    if method == "ablation":
        return ablation_importance(model, Z, y)
    kinds = ("head", "mlp") if model_shape(model)["d_mlp"] else ("head",)
    per = _first_order_ablation(model, Z, y, kinds)
    out = {}
    heads = np.abs(per["head"]).mean(axis=1)  # (layer, head)
    for L in range(heads.shape[0]):
        for h in range(heads.shape[1]):
            out[f"L{L}H{h}"] = float(heads[L, h])
    if "mlp" in per:
        for L, v in enumerate(np.abs(per["mlp"]).mean(axis=1)):
            out[f"L{L}.mlp"] = float(v)
    return out
