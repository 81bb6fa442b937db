"""Interventions (model control) at four levels, applied temporarily through hook points.

* token level: edit the prompt matrix ``Z`` itself (`TokenEdit`: shuffle / zero / replace labels, drop
  context pairs, scale the query);
* activation level: add a vector at chosen hook names and positions with a strength (`AddVector`), or
  overwrite the activation (`SetActivation`, used by task vectors);
* neuron level: set or scale chosen neurons (`SetNeurons`);
* module level: zero / mean / resample ablation or scaling of a head or a whole module (`Ablate`, `Scale`).

Every intervention is a frozen dataclass with ``hook_fns() -> [(hook_name, fn), ...]``; lists of them are
composed and applied only inside ``with steer(model, interventions):`` (hooks are removed on exit, also on
error). `run_steered` applies token edits and hooks in one call; `steering_sweep` measures the effect of one
vector over hooks × strengths.

Related modules: `spinlens.interp.specs` reads interventions from a JSON/YAML file;
`spinlens.interp.function_vectors` builds vectors from data (difference of means, function and task
vectors, causal indirect effects); `spinlens.plotting.edit` draws the results.

Activation shapes are batch first (``docs/design.md``): positions are dimension 1 of every
``[batch, pos, ...]`` hook; head hooks are ``[batch, pos, head, d]``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from spinlens.errors import InvalidParameterError, check_choice, check_float, check_int
from spinlens.random import as_generator

__all__ = [
    "AddVector",
    "SetActivation",
    "SetNeurons",
    "Scale",
    "Ablate",
    "TokenEdit",
    "Positions",
    "steer",
    "run_steered",
    "hook_fns",
    "steering_sweep",
]

Positions = None | int | Sequence[int]


def _pos_index(positions: Positions):
    if positions is None:
        return slice(None)
    if isinstance(positions, (int, np.integer)):
        return [int(positions)]
    return [int(p) for p in positions]


def _sel(pos, head):
    """Index of positions ``pos`` (and head ``head``, when set) of a [batch, pos, (head,) d] activation."""
    return (slice(None), pos) + ((head,) if head is not None else ())


def _edited(act, pos, head, update):
    """A copy of ``act`` whose selection `_sel(pos, head)` is replaced by ``update(selection)``."""
    out = act.clone()
    sel = _sel(pos, head)
    out[sel] = update(out[sel])
    return out


def _as_tensor(x, like):
    import torch

    return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).to(like.dtype).to(like.device)


# --------------------------------------------------------------------------------------------------------
# activation-level, neuron-level and module-level interventions


@dataclass(frozen=True)
class AddVector:
    """Add ``strength * vector`` to the activation at ``hook`` (activation-level steering, ActAdd/CAA).

    Parameters
    ----------
    hook : str
        Hook name or glob (``blocks.1.hook_resid_pre``, ``blocks.*.hook_resid_pre``).
    vector : array (d,)
        Added to the last dimension (or to ``[..., head, :]`` when ``head`` is set).
    strength : float
        Coefficient α.
    positions : None, int or list of int
        Positions (dimension 1) to steer; None: all; ``-1``: the query.
    head : int, optional
        For ``[batch, pos, head, d]`` hooks: steer only this head.
    """

    hook: str
    vector: Any
    strength: float = 1.0
    positions: Positions = None
    head: int | None = None

    def hook_fns(self):
        pos = _pos_index(self.positions)
        strength = check_float("strength", self.strength)

        def fn(act, hook):
            v = _as_tensor(self.vector, act)
            return _edited(act, pos, self.head, lambda a: a + strength * v)

        return [(self.hook, fn)]


@dataclass(frozen=True)
class SetActivation:
    """Overwrite the activation at ``hook`` and ``positions`` by ``value`` (shape (d,) or (batch, d)).

    Used to patch a task vector (Hendel et al. 2023) into a zero-shot forward pass.
    """

    hook: str
    value: Any
    positions: Positions = -1
    head: int | None = None

    def hook_fns(self):
        pos = _pos_index(self.positions)

        def fn(act, hook):
            v = _as_tensor(self.value, act)
            if v.ndim == 2:  # (batch, d): one value per prompt, broadcast over positions
                v = v[:, None, :]
            return _edited(act, pos, self.head, lambda a: v.expand_as(a))

        return [(self.hook, fn)]


@dataclass(frozen=True)
class SetNeurons:
    """Set (``value``) or scale (``scale``) neurons ``neurons`` of the last dimension at ``hook``.

    Knowledge-neuron style control (Dai et al. 2022): ``scale=0`` suppresses, ``scale=2`` amplifies.
    Exactly one of ``value`` and ``scale`` must be given. ``value`` is one number for every neuron or one per
    neuron (a sequence as long as ``neurons``: e.g. each neuron's mean activation on some text).
    """

    hook: str
    neurons: Sequence[int]
    value: Any = None
    scale: float | None = None
    positions: Positions = None
    head: int | None = None

    def hook_fns(self):
        if (self.value is None) == (self.scale is None):
            raise InvalidParameterError("SetNeurons needs exactly one of 'value' and 'scale'. Got both or neither.")
        pos = _pos_index(self.positions)
        idx = [int(i) for i in self.neurons]

        if self.value is not None and np.ndim(self.value) != 0 and np.shape(self.value) != (len(idx),):
            raise InvalidParameterError(f"SetNeurons 'value' must be one number or one per neuron ({len(idx)}). "
                                        f"Got shape {np.shape(self.value)}.")

        def update(view):
            if self.value is not None:
                view[..., idx] = _as_tensor(self.value, view) if np.ndim(self.value) else float(self.value)
            else:
                view[..., idx] = view[..., idx] * float(self.scale)
            return view

        def fn(act, hook):
            return _edited(act, pos, self.head, update)

        return [(self.hook, fn)]


@dataclass(frozen=True)
class Scale:
    """Multiply the activation at ``hook`` (one head with ``head``) by ``factor`` (module-level control)."""

    hook: str
    factor: float
    positions: Positions = None
    head: int | None = None

    def hook_fns(self):
        pos = _pos_index(self.positions)
        f = check_float("factor", self.factor)

        def fn(act, hook):
            return _edited(act, pos, self.head, lambda a: a * f)

        return [(self.hook, fn)]


@dataclass(frozen=True)
class Ablate:
    """Zero, mean or resample ablation of a module (``hook``) or one head of it (``head``).

    Parameters
    ----------
    hook : str
        Exact hook name (e.g. ``blocks.0.attn.hook_z`` for a head, ``blocks.1.hook_mlp_out`` for an MLP).
    mode : {"zero", "mean", "resample"}
    reference : tensor, optional
        Cached activations of the same hook on reference prompts, shape ``[n_ref, pos, ...]``; required for
        "mean" (replaced by the mean over prompts, per position) and "resample" (each prompt gets the
        activation of a random reference prompt). Build it with `Ablate.from_model`.
    positions, head : see `AddVector`
    seed : int
        Seed of the resampling.
    """

    hook: str
    mode: str = "zero"
    reference: Any = None
    positions: Positions = None
    head: int | None = None
    seed: int = 0

    @classmethod
    def from_model(cls, model, Z_ref, hook: str, mode: str = "mean", **kw) -> Ablate:
        """Build an ablation whose reference activations are cached from ``model(Z_ref)``."""
        import torch

        with torch.no_grad():
            _, cache = model.run_with_cache(Z_ref, names_filter=[hook])
        if hook not in cache:
            raise InvalidParameterError(f"The 'hook' parameter must be an exact hook name of the model. Got {hook!r}.")
        return cls(hook=hook, mode=mode, reference=cache[hook], **kw)

    def hook_fns(self):
        import torch

        check_choice("mode", self.mode, ("zero", "mean", "resample"), owner="Ablate")
        if self.mode != "zero" and self.reference is None:
            raise InvalidParameterError(f"Ablate(mode={self.mode!r}) needs 'reference' activations (see Ablate.from_model).")
        pos = _pos_index(self.positions)

        def fn(act, hook):
            if self.mode == "zero":
                return _edited(act, pos, self.head, torch.zeros_like)
            ref = _as_tensor(self.reference, act)
            if ref.shape[1:] != act.shape[1:]:
                raise InvalidParameterError(
                    f"Ablate reference of shape {tuple(ref.shape)} does not match activations {tuple(act.shape)} at {hook.name}."
                )
            if self.mode == "mean":
                new = ref.mean(0, keepdim=True).expand_as(act)
            else:
                g = torch.Generator().manual_seed(int(self.seed))
                rows = torch.randint(0, ref.shape[0], (act.shape[0],), generator=g)
                new = ref[rows]
            sel = _sel(pos, self.head)
            return _edited(act, pos, self.head, lambda a: new[sel])

        return [(self.hook, fn)]


# --------------------------------------------------------------------------------------------------------
# token level


@dataclass(frozen=True)
class TokenEdit:
    """Token-level intervention: a transformation of the prompt matrix ``Z`` (B, D+1, N+1).

    ops:
      * ``"shuffle_labels"``: permute the context labels within each prompt (Todd et al.'s corrupted prompts);
      * ``"zero_labels"``: set the context labels to 0;
      * ``"replace_labels"``: relabel the context with task ``w`` (``value``: array (D,)), y = w·x/√D;
      * ``"drop_context"``: keep only the last ``n_keep`` context pairs (zero the others; shape kept);
      * ``"scale_labels"``: multiply the context labels by ``value``;
      * ``"scale_query"``: multiply x_query by ``value``.
    """

    op: str
    value: Any = None
    n_keep: int = 0
    seed: int = 0

    OPS = ("shuffle_labels", "zero_labels", "replace_labels", "drop_context", "scale_labels", "scale_query")

    def apply(self, Z):
        import torch

        check_choice("op", self.op, self.OPS, owner="TokenEdit")
        is_t = isinstance(Z, torch.Tensor)
        Zn = Z.detach().cpu().numpy().copy() if is_t else np.array(Z, dtype=float, copy=True)
        d = Zn.shape[1] - 1
        n = Zn.shape[2] - 1
        if self.op == "shuffle_labels":
            g = as_generator(self.seed)
            for p in range(Zn.shape[0]):
                Zn[p, d, :n] = Zn[p, d, g.permutation(n)]
        elif self.op == "zero_labels":
            Zn[:, d, :n] = 0.0
        elif self.op == "replace_labels":
            w = np.asarray(self.value, dtype=float)
            if w.shape != (d,):
                raise InvalidParameterError(f"TokenEdit 'replace_labels' needs value of shape ({d},). Got {w.shape}.")
            Zn[:, d, :n] = np.einsum("pdn,d->pn", Zn[:, :d, :n], w) / np.sqrt(d)
        elif self.op == "drop_context":
            k = check_int("n_keep", self.n_keep, low=0, high=n, owner="TokenEdit")
            Zn[:, :, : n - k] = 0.0
        elif self.op == "scale_labels":
            Zn[:, d, :n] *= float(self.value)
        elif self.op == "scale_query":
            Zn[:, :d, n] *= float(self.value)
        if is_t:
            return torch.as_tensor(Zn, dtype=Z.dtype, device=Z.device)
        return Zn

    def hook_fns(self):
        return []


# --------------------------------------------------------------------------------------------------------
# composition


def hook_fns(interventions) -> list:
    """Flatten interventions (objects with ``hook_fns()``, or raw ``(name, fn)`` pairs) into one hook list."""
    out = []
    for iv in interventions:
        if isinstance(iv, tuple) and len(iv) == 2 and isinstance(iv[0], str):
            out.append(iv)
        elif hasattr(iv, "hook_fns"):
            out.extend(iv.hook_fns())
        else:
            raise InvalidParameterError(f"Each intervention must have hook_fns() or be a (name, fn) pair. Got {iv!r}.")
    return out


@contextlib.contextmanager
def steer(model, interventions):
    """Apply the hook-level interventions inside a ``with`` block; they are removed on exit.

    Token edits in the list are ignored here (they act on the input: use `run_steered` or
    ``TokenEdit.apply``). Interventions on the same hook run in list order.
    """
    with model.hooks(hook_fns(interventions)):
        yield model


def run_steered(model, Z, interventions=(), *, grad: bool = False):
    """Run ``model`` on ``Z`` with token edits applied to the input and hook interventions attached."""
    import torch

    dtype = next(model.parameters()).dtype
    Zt = torch.as_tensor(Z, dtype=dtype) if not isinstance(Z, torch.Tensor) else Z
    for iv in interventions:
        if isinstance(iv, TokenEdit):
            Zt = iv.apply(Zt)
    ctx = contextlib.nullcontext() if grad else torch.no_grad()
    with ctx, steer(model, interventions):
        return model(Zt)


def steering_sweep(
    model,
    Z,
    vector,
    hooks: Sequence[str],
    strengths: Sequence[float],
    *,
    positions: Positions = -1,
    target=None,
    token_edits: Sequence[TokenEdit] = (),
):
    """Effect of ``AddVector(hook, vector, strength, positions)`` for every hook and strength.

    Returns
    -------
    xarray.Dataset with dims (hook, strength) and variables ``shift`` (mean ŷ_steered − ŷ_unsteered),
    ``abs_shift`` (mean |ŷ_steered − ŷ_unsteered|) and, when ``target`` is given, ``mse``.
    """
    import torch
    import xarray as xr

    dtype = next(model.parameters()).dtype
    Zt = torch.as_tensor(Z, dtype=dtype)
    for te in token_edits:
        Zt = te.apply(Zt)
    base = run_steered(model, Zt)
    shift = np.zeros((len(hooks), len(strengths)))
    ashift = np.zeros_like(shift)
    err = np.full_like(shift, np.nan)
    tt = None if target is None else torch.as_tensor(np.asarray(target), dtype=dtype)
    for i, hk in enumerate(hooks):
        vec = vector[hk] if isinstance(vector, dict) else vector
        for j, s in enumerate(strengths):
            pred = run_steered(model, Zt, [AddVector(hk, vec, float(s), positions)])
            shift[i, j] = float((pred - base).mean())
            ashift[i, j] = float((pred - base).abs().mean())
            if tt is not None:
                err[i, j] = float(torch.mean((pred - tt) ** 2))
    coords = {"hook": list(hooks), "strength": np.asarray(strengths, dtype=float)}
    ds = xr.Dataset(
        {
            "shift": (("hook", "strength"), shift, {"long_name": "mean output shift"}),
            "abs_shift": (("hook", "strength"), ashift, {"long_name": "mean |output shift|"}),
        },
        coords=coords,
    )
    if tt is not None:
        ds["mse"] = (("hook", "strength"), err, {"long_name": "MSE to target"})
    return ds
