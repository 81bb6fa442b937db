"""Model merging of models fine-tuned from one base: task arithmetic, TIES and a neuron-level merge.

With base weights θ₀ and fine-tuned weights θ_t (t = 1..T), the task vectors are τ_t = θ_t − θ₀.

* Task arithmetic (Ilharco et al. 2023, arXiv 2212.04089): θ = θ₀ + λ Σ_t τ_t. ``scale=None`` uses
  λ = 1/T (the average of the fine-tuned models).
* TIES (Yadav et al. 2023, arXiv 2306.01708): per parameter tensor, keep the top ``density`` fraction
  of each |τ_t| (trim); elect the sign of each entry as sign(Σ_t trimmed τ_t); average the trimmed
  entries whose sign agrees with the elected sign (disjoint mean); θ = θ₀ + λ · that mean (λ = ``scale``).
  Trimming is per tensor (mergekit does the same); the paper trims the whole flattened task vector.
* Neuron merge (in the spirit of NeuronMerge, Gu et al. 2025): every MLP neuron is given to the task that
  it serves most (largest importance score for that task, e.g. `attribution_importance` on that task's
  prompts with the fine-tuned model); its input weights ``W_in[:, n]``, bias ``b_in[n]`` and output
  weights ``W_out[n, :]`` are taken whole from that task's model (θ₀ + τ_t on those slices); every other
  parameter is merged by task arithmetic (or TIES).
* Module merge (submodule granularity; `module_merge`): every head and MLP (`spinlens.edit.components`, on
  spinlens' Transformer or a Hugging Face model through `spinlens.interp.hf.HookedHF`) is taken whole from the
  one expert whose task vector is largest on its slices (or from a given assignment); the rest by task
  arithmetic. An expert tuned only on a located subset then keeps its subset intact.

All functions work on state dicts of tensors (``{name: tensor}``) and return a new state dict; `merge_models`
wraps them for modules.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np

from spinlens.errors import InvalidParameterError, check_choice, check_float

__all__ = ["task_vectors", "task_arithmetic", "ties_merge", "neuron_merge", "neuron_assignment", "module_merge",
           "merge_models"]


def _sd(x) -> dict:
    if isinstance(x, dict):
        return x
    if not hasattr(x, "state_dict"):
        raise InvalidParameterError(f"Models to merge must be torch modules or state dicts. Got {type(x).__name__} instead.")
    return {k: v.detach() for k, v in x.state_dict().items()}


def _check_compatible(base, models):
    if len(models) == 0:
        raise InvalidParameterError("The 'models' parameter must hold at least one fine-tuned model.")
    for i, m in enumerate(models):
        if set(m) != set(base):
            raise InvalidParameterError(f"models[{i}] does not have the same parameter names as the base.")
        for k in base:
            if m[k].shape != base[k].shape:
                raise InvalidParameterError(f"models[{i}][{k!r}] has shape {tuple(m[k].shape)}, base {tuple(base[k].shape)}.")


def task_vectors(base, models) -> list[dict]:
    """τ_t = θ_t − θ₀ for each fine-tuned model (state dicts or modules)."""
    b = _sd(base)
    ms = [_sd(m) for m in models]
    _check_compatible(b, ms)
    return [{k: m[k] - b[k] if b[k].is_floating_point() else m[k] for k in b} for m in ms]


def task_arithmetic(base, models, *, scale=None) -> dict:
    """θ₀ + λ Σ_t τ_t (``scale`` λ: float or one weight per model; None: 1/T)."""
    b = _sd(base)
    taus = task_vectors(b, models)
    T = len(taus)
    if scale is None:
        lam = [1.0 / T] * T
    elif np.isscalar(scale) and not isinstance(scale, str):
        lam = [check_float("scale", scale, owner="task_arithmetic")] * T
    else:
        try:
            lam = [check_float("scale", s, owner="task_arithmetic") for s in scale]
        except TypeError:
            lam = []
    if len(lam) != T:
        raise InvalidParameterError(f"The 'scale' parameter must be a float or {T} floats. Got {scale!r} instead.")
    out = {}
    for k, v in b.items():
        if not v.is_floating_point():
            out[k] = v.clone()
            continue
        acc = v.clone()
        for w, tau in zip(lam, taus):
            acc = acc + w * tau[k]
        out[k] = acc
    _check_finite(out, "scale")
    return out


def _check_finite(sd: dict, knob: str) -> None:
    import torch

    for k, v in sd.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise InvalidParameterError(
                f"The merged weights {k!r} are not finite (overflow or non-finite inputs); check the models and lower '{knob}'."
            )


def _trim(t, density: float):
    """Keep the ``density`` fraction of entries of largest |t| (ties at the threshold kept), zero the rest."""
    import torch

    if density >= 1.0:
        return t.clone()
    n = t.numel()
    k = int(np.ceil(density * n))
    if k <= 0:
        return torch.zeros_like(t)
    thr = t.abs().reshape(-1).kthvalue(n - k + 1).values
    return torch.where(t.abs() >= thr, t, torch.zeros_like(t))


def ties_merge(base, models, *, density: float = 0.2, scale: float = 1.0) -> dict:
    """TIES merging: trim to ``density``, elect signs by total mass, disjoint mean, θ₀ + ``scale`` · mean."""
    import torch

    density = check_float("density", density, low=0.0, high=1.0, low_open=True)
    scale = check_float("scale", scale)
    b = _sd(base)
    taus = task_vectors(b, models)
    out = {}
    for k, v in b.items():
        if not v.is_floating_point():
            out[k] = v.clone()
            continue
        tr = torch.stack([_trim(t[k], density) for t in taus])  # (T, ...)
        sign = torch.sign(tr.sum(0))
        agree = (torch.sign(tr) == sign) & (tr != 0)
        cnt = agree.sum(0)
        mean = torch.where(cnt > 0, (tr * agree).sum(0) / cnt.clamp(min=1), torch.zeros_like(v))
        out[k] = v + scale * mean
    _check_finite(out, "scale")
    return out


def neuron_assignment(importances, *, kind_dim: str = "neuron"):
    """Task index per (layer, neuron): argmax over tasks of the importance maps (DataArrays layer × neuron).

    Returns an int ndarray (layer, neuron); ties go to the lower task index.
    """
    arrs = [np.asarray(getattr(a, "values", a), dtype=float) for a in importances]
    shapes = {a.shape for a in arrs}
    if len(shapes) != 1:
        raise InvalidParameterError(f"All importance maps must have the same (layer, neuron) shape. Got {shapes}.")
    return np.argmax(np.stack(arrs), axis=0)


def neuron_merge(base, models, importances, *, others: str = "task_arithmetic", scale=None, density: float = 0.2) -> dict:
    """Neuron-level merge: each MLP neuron's in/out weights come from the task it serves most.

    Parameters
    ----------
    base, models : state dicts or modules (Transformer layout: ``blocks.L.mlp.W_in`` ``(d_model, d_mlp)``)
    importances : list of DataArray/array (layer, neuron), one per model
        How much each neuron serves each task (e.g. `attribution_importance(model_t, Z_t, y_t, kind="neuron")`).
    others : {"task_arithmetic", "ties"}
        Merge of every parameter that is not a neuron slice.
    """
    check_choice("others", others, ("task_arithmetic", "ties"))
    b = _sd(base)
    ms = [_sd(m) for m in models]
    if len(importances) != len(ms):
        raise InvalidParameterError(f"Need one importance map per model ({len(ms)}). Got {len(importances)}.")
    merged = task_arithmetic(b, ms, scale=scale) if others == "task_arithmetic" else ties_merge(b, ms, density=density)
    assign = neuron_assignment(importances)
    n_layers, d_mlp = assign.shape
    for L in range(n_layers):
        win, bin_, wout = f"blocks.{L}.mlp.W_in", f"blocks.{L}.mlp.b_in", f"blocks.{L}.mlp.W_out"
        if win not in b:
            raise InvalidParameterError(f"The base has no {win!r}: neuron merge needs MLPs with the Transformer layout.")
        if b[win].shape[1] != d_mlp:
            raise InvalidParameterError(f"Importance maps have {d_mlp} neurons, {win} has {b[win].shape[1]}.")
        for n in range(d_mlp):
            src = ms[int(assign[L, n])]
            merged[win][:, n] = src[win][:, n]
            merged[wout][n, :] = src[wout][n, :]
            if bin_ in b:
                merged[bin_][n] = src[bin_][n]
    return merged


def module_merge(base, models, *, layout, kinds=("head", "mlp"), assignment=None, scale=None) -> tuple:
    """Module-level merge: each component of ``kinds`` comes whole from one expert, the rest by task arithmetic.

    Parameters
    ----------
    base, models : state dicts or modules whose parameter names are those of ``layout``
    layout : the model whose component slices name the parameters (`spinlens.edit.components`; a `HookedHF`
        for Hugging Face models: names ``hf.…``, matched to plain HF state dicts without the ``hf.`` prefix)
    kinds : component kinds assigned whole (``"head"``, ``"mlp"``, ``"neuron"``, ``"attn"``)
    assignment : dict {component name: expert index}, optional
        Default: the expert with the largest ‖τ_t‖ on the component's slices (``-1``: no expert changed it, the
        task-arithmetic value stays).
    scale : task-arithmetic λ for the rest (None: 1/T)

    Returns
    -------
    (state dict, {component name: expert index})
    """
    import torch

    from spinlens.edit.components import Component, component_slices, list_components

    b = _sd(base)
    ms = [_sd(m) for m in models]
    taus = task_vectors(b, ms)
    merged = task_arithmetic(b, ms, scale=scale)
    lay = {n for n, _ in layout.named_parameters()}
    strip = "hf." if not (set(b) & lay) and all(n.startswith("hf.") for n in lay) else ""

    def key(name):
        k = name[len(strip):] if strip and name.startswith(strip) else name
        if k not in b:
            raise InvalidParameterError(f"The models have no parameter {k!r} (named by the layout model).")
        return k

    comps = [c for kd in kinds for c in list_components(layout, kd)]
    chosen = {}
    for c in comps:
        sls = component_slices(layout, c)
        if assignment is not None:
            t = int(assignment.get(str(c), -1))
            if not -1 <= t < len(ms):
                raise InvalidParameterError(f"assignment[{str(c)!r}] must be in [-1, {len(ms) - 1}]. Got {t}.")
        else:
            norms = [float(sum(float(torch.sum(sl.select(tau[key(sl.param)]) ** 2)) for sl in sls)) for tau in taus]
            t = int(np.argmax(norms)) if max(norms) > 0 else -1
        chosen[str(Component.parse(c))] = t
        if t < 0:
            continue
        for sl in sls:
            k = key(sl.param)
            sl.select(merged[k]).copy_(sl.select(ms[t][k]))
    return merged, chosen


def merge_models(base, models, method: str = "task_arithmetic", **kwargs):
    """Merge modules: returns a copy of ``base`` loaded with the merged state dict.

    ``method`` in {"task_arithmetic", "ties", "neuron"}; keyword arguments go to the merge function.
    """
    check_choice("method", method, ("task_arithmetic", "ties", "neuron"))
    if not hasattr(base, "load_state_dict"):
        raise InvalidParameterError(
            f"The 'base' parameter of merge_models must be a torch module (for state dicts use task_arithmetic, "
            f"ties_merge or neuron_merge). Got {type(base).__name__} instead."
        )
    methods: dict[str, Callable[..., dict]] = {"task_arithmetic": task_arithmetic, "ties": ties_merge,
                                               "neuron": neuron_merge}
    fn = methods[method]
    sd = fn(base, models, **kwargs)
    out = copy.deepcopy(base)
    out.load_state_dict(sd)
    return out
