"""Pinpoint tuning: fine-tune only selected heads or neurons (Chen et al. 2024, arXiv 2409.01658).

The selected components' parameter slices (`spinlens.edit.components`) form boolean masks; training
multiplies every gradient by its mask and applies (decoupled) weight decay only inside the mask, so with
Adam every entry outside the mask stays bit-for-bit unchanged (a zero gradient gives zero first moment
and a zero step). Components are chosen from an importance map (activation patching from
`spinlens.interp`, or `attribution_importance` here: gradient × activation) and compared with the same
number of random components and with full fine-tuning (`pinpoint_comparison`). Only the delta is saved
(`save_delta`, safetensors: flat indices and values of the changed entries).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field

import numpy as np

from spinlens.edit.components import (
    Component,
    all_masks,
    component_masks,
    list_components,
    random_components,
    select_components,
)
from spinlens.edit.importance import attribution_importance
from spinlens.errors import InvalidParameterError, check_choice, check_float, check_int

__all__ = [
    "attribution_importance",
    "pinpoint_tune",
    "PinpointResult",
    "save_delta",
    "load_delta",
    "apply_delta",
    "pinpoint_comparison",
]


def _tensor(x, model):
    import torch

    return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=next(model.parameters()).dtype)


@dataclass(frozen=True)
class PinpointResult:
    """Result of `pinpoint_tune`.

    Attributes
    ----------
    model : torch.nn.Module
        The tuned copy (the input model is not modified).
    masks : dict {param_name: bool tensor}
        Where training was allowed.
    components : list of str
        The tuned components ("all" for full fine-tuning).
    n_trainable : int
        Number of entries inside the masks.
    history : ndarray (steps,)
        Training loss per step.
    """

    model: object
    masks: dict
    components: list
    n_trainable: int
    history: np.ndarray = field(repr=False)

    def to_dict(self) -> dict:
        return {
            "components": list(self.components),
            "n_trainable": self.n_trainable,
            "final_train_loss": float(self.history[-1]) if len(self.history) else float("nan"),
        }


def pinpoint_tune(
    model,
    components,
    Z,
    y,
    *,
    lr: float = 1e-3,
    steps: int = 200,
    batch_size: int = 64,
    weight_decay: float = 0.0,
    rng=None,
    progress: bool = False,
) -> PinpointResult:
    """Fine-tune a copy of ``model`` on (Z, y) (MSE) changing only the slices of ``components``.

    Parameters
    ----------
    model : HookedModule with the Transformer layout
    components : list of Component/str, dict of masks {param: bool tensor}, or "all"
        What may change; "all" is full fine-tuning.
    Z, y : arrays (P, D+1, N+1), (P,)
        Target-task prompts and query labels.
    lr, steps, batch_size : training settings (Adam).
    weight_decay : float
        Decoupled weight decay applied only inside the masks (AdamW would decay frozen weights too).
    rng : None, int or Generator, keyword-only
        Seed of the mini-batch order.

    Returns
    -------
    PinpointResult
    """
    import torch

    from spinlens.random import torch_generator

    lr = check_float("lr", lr, low=0.0, low_open=True)
    steps = check_int("steps", steps, low=0)
    batch_size = check_int("batch_size", batch_size, low=1)
    weight_decay = check_float("weight_decay", weight_decay, low=0.0)
    new = copy.deepcopy(model)
    if isinstance(components, str) and components == "all":
        masks, names_list = all_masks(new), ["all"]
    elif isinstance(components, dict):
        masks, names_list = {k: v.to(torch.bool) for k, v in components.items()}, ["custom mask"]
    else:
        comps = [Component.parse(c) for c in components]
        if not comps:
            raise InvalidParameterError("The 'components' parameter must name at least one component.")
        masks, names_list = component_masks(new, comps), [str(c) for c in comps]
    Zt, yt = _tensor(Z, new), _tensor(y, new)
    gen = torch_generator(rng)

    def batch_loss(m, step):
        idx = torch.randint(0, Zt.shape[0], (min(batch_size, Zt.shape[0]),), generator=gen)
        return torch.mean((m(Zt[idx]) - yt[idx]) ** 2)

    hist, n_tr = masked_finetune(new, masks, batch_loss, steps=steps, lr=lr, weight_decay=weight_decay,
                                 progress=progress, probe=Zt[: min(batch_size, Zt.shape[0])] if progress else None)
    return PinpointResult(model=new, masks=masks, components=names_list, n_trainable=n_tr, history=hist)


def masked_finetune(model, masks, batch_loss, *, steps: int, lr: float, weight_decay: float = 0.0,
                    progress: bool = False, on_step=None, probe=None, on_estimate=None):
    """Adam on ``model`` in place, with every gradient multiplied by its parameter's mask (entries outside the
    masks never change, bit for bit): the one training loop `spinlens.training.fit` with ``masks``.
    ``batch_loss(model, step)`` draws a batch and returns the loss; decoupled weight decay acts on the masked
    entries only; ``on_step(model, step)``, if given, runs after each optimiser step (``step`` = 1..steps),
    e.g. to evaluate along training; ``probe``, if given (a batch of inputs, or ``model -> output`` drawing
    nothing at random), times one step beforehand (`spinlens.progress.estimate_training_time`), shown with the
    progress and passed to ``on_estimate`` before the first step. The run stops at the first non-finite loss. Returns ``(loss history (steps taken,), number of
    trainable entries)``. Pinpoint tuning of regression prompts, trained language models and Hugging Face
    models alike runs here."""
    from spinlens.training import fit

    est = None
    if probe is not None:
        from spinlens.progress import estimate_training_time

        est = estimate_training_time(model, probe, steps=steps)
    res = fit(model, batch_loss, steps=steps, optimizer="adam", lr=lr, weight_decay=weight_decay, masks=masks,
              on_step=None if on_step is None else (lambda m, step, loss: on_step(m, step)), progress=progress,
              label="pinpoint", time_estimate=est, on_estimate=on_estimate)
    return res.losses, res.n_trainable


# ------------------------------------------------------------------------------------------------ deltas


def save_delta(path, base, tuned, masks=None, *, metadata: dict | None = None):
    """Save only the changed entries of ``tuned`` relative to ``base`` as safetensors.

    For each parameter with changes it stores ``"<name>.idx"`` (int32/int64 flat indices) and ``"<name>.val"``
    (the new values). With ``masks``, the stored entries are those inside the masks (changed or not).
    Returns the number of stored entries.
    """
    import torch
    from safetensors.torch import save_file

    b, t = dict(base.named_parameters()), dict(tuned.named_parameters())
    tensors = {}
    n = 0
    for name, pt in t.items():
        pb = b[name]
        sel = masks[name].reshape(-1) if masks is not None and name in masks else None
        if masks is not None and sel is None:
            continue
        if sel is None:
            sel = pt.detach().reshape(-1) != pb.detach().reshape(-1)
        idx = torch.nonzero(sel).reshape(-1)
        idx = idx.to(torch.int32 if pt.numel() < 2**31 else torch.int64)
        if idx.numel() == 0:
            continue
        tensors[f"{name}.idx"] = idx.contiguous()
        tensors[f"{name}.val"] = pt.detach().reshape(-1)[idx].contiguous()
        n += idx.numel()
    meta = {"format": "spinlens-delta-v1", **{k: json.dumps(v) for k, v in (metadata or {}).items()}}
    from spinlens.io import atomic_path

    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return n


def load_delta(path) -> dict:
    """Read a delta file: ``{param_name: (flat_indices, values)}``."""
    from safetensors.torch import load_file

    raw = load_file(str(path))
    out = {}
    for key in raw:
        if key.endswith(".idx"):
            name = key[: -len(".idx")]
            out[name] = (raw[key], raw[f"{name}.val"])
    return out


def apply_delta(model, delta, *, inplace: bool = False):
    """Write a delta (`load_delta` output or a path) into (a copy of) ``model``; returns the model."""
    import torch

    if not isinstance(delta, dict):
        delta = load_delta(delta)
    m = model if inplace else copy.deepcopy(model)
    params = dict(m.named_parameters())
    with torch.no_grad():
        for name, (idx, val) in delta.items():
            if name not in params:
                raise InvalidParameterError(f"The delta names parameter {name!r}, absent from the model.")
            params[name].view(-1)[idx.long()] = val.to(params[name].dtype)
    return m


# -------------------------------------------------------------------------------------------- comparison


def pinpoint_comparison(
    model,
    target,
    general,
    *,
    importance=None,
    kind: str = "head",
    k: int = 2,
    n_random: int = 3,
    lr: float = 1e-3,
    steps: int = 200,
    batch_size: int = 64,
    rng=None,
    progress: bool = False,
):
    """Pinpoint tuning of the top-``k`` components vs ``k`` random ones vs the bottom-``k`` vs full tuning.

    Parameters
    ----------
    model : the pretrained model
    target : tuple (Z_train, y_train, Z_test, y_test)
        The task to adapt to.
    general : tuple (Z_test, y_test)
        Held-out "general" prompts (e.g. the pretraining distribution) to measure side effects.
    importance : DataArray or dict, optional
        Component importance; default `attribution_importance` on the target training prompts.
    n_random : int
        Number of random draws of ``k`` components (each a separate run).

    Returns
    -------
    xarray.Dataset indexed by ``run`` with variables ``target_mse``, ``general_mse``, ``target_gain``
    (MSE before − after on the target), ``general_change`` (after − before), ``n_trainable`` and
    the coordinate ``method`` ("before", "importance", "bottom", "random", "full").
    """
    import xarray as xr

    from spinlens.edit._data import mse
    from spinlens.random import spawn

    check_choice("kind", kind, ("head", "neuron"))
    k = check_int("k", k, low=1, high=len(list_components(model, kind)))
    Ztr, ytr, Zte, yte = target
    Zg, yg = general
    if importance is None:
        importance = attribution_importance(model, Ztr[:256], ytr[:256], kind=kind)
    gens = spawn(rng, 3 + n_random)
    runs = [("importance", select_components(importance, k, kind=kind), gens[0])]
    runs.append(("bottom", select_components(importance, k, kind=kind, largest=False), gens[1]))
    for r in range(n_random):
        runs.append(("random", random_components(model, kind, k, rng=gens[3 + r]), gens[3 + r]))
    runs.append(("full", "all", gens[2]))
    t0, g0 = mse(model, Zte, yte), mse(model, Zg, yg)
    rec = [("before", "-", t0, g0, 0)]
    for method, comps, g in runs:
        res = pinpoint_tune(model, comps, Ztr, ytr, lr=lr, steps=steps, batch_size=batch_size, rng=g, progress=progress)
        rec.append((method, ",".join(res.components), mse(res.model, Zte, yte), mse(res.model, Zg, yg), res.n_trainable))
    col_method, col_comps, col_tm, col_gm, col_ntr = zip(*rec)
    tm, gm = np.array(col_tm), np.array(col_gm)
    return xr.Dataset(
        {
            "target_mse": ("run", tm),
            "general_mse": ("run", gm),
            "target_gain": ("run", t0 - tm),
            "general_change": ("run", gm - g0),
            "n_trainable": ("run", np.array(col_ntr)),
        },
        coords={"run": np.arange(len(rec)), "method": ("run", list(col_method)), "components": ("run", list(col_comps))},
    )
