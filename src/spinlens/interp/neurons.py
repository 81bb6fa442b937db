"""Neuron (and head) description: top-activating prompts, correlations with task quantities, templated text.

Units are MLP neurons (``blocks.L.mlp.hook_post[..., i]``) and attention heads. A head's scalar activation is
its ``z`` at the position projected on its first principal component over the dataset (its dominant output
direction; the sign is arbitrary, so correlations are reported with their sign but ranked by magnitude).

Regression models are described at the query position against task quantities
(`spinlens.interp.tasks.task_quantities`: the target y, ‖w‖, the one-step-GD estimate, the query norm, ...).
Token models are described over all (prompt, position) pairs against token identity (correlation ratio η),
position, and a "label token" indicator. Descriptions are templates, no language model involved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from spinlens.errors import InvalidParameterError, check_int
from spinlens.vocabulary import act_name

if TYPE_CHECKING:
    import xarray as xr

STRONG, WEAK = 0.8, 0.5


@dataclass(frozen=True)
class UnitReport:
    """Descriptions of units.

    Attributes
    ----------
    corr : xarray.DataArray ``(unit, quantity)``
        Pearson correlation (η, the correlation ratio, for categorical quantities such as token identity).
    best_quantity, description : list of str, one per unit
    best_r : ndarray ``(n_units,)``
    top_prompts : ndarray ``(n_units, top_k)`` indices of the top-activating prompts (or prompt·pos pairs)
    activations : ndarray ``(n_samples, n_units)``
    """

    corr: xr.DataArray
    best_quantity: list
    best_r: np.ndarray
    description: list
    top_prompts: np.ndarray
    activations: np.ndarray

    @property
    def units(self) -> list[str]:
        return [str(u) for u in self.corr.coords["unit"].values]

    def describe(self, unit: str) -> str:
        return self.description[self.units.index(unit)]

    def table(self, k: int | None = None) -> list[tuple[str, str, float, str]]:
        """Rows ``(unit, best quantity, r, description)`` sorted by |r|, the ``k`` strongest."""
        order = np.argsort(-np.abs(self.best_r))[: k or len(self.best_r)]
        return [(self.units[i], self.best_quantity[i], float(self.best_r[i]), self.description[i]) for i in order]


def _pearson(a: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Correlation of every column of a ``(n, u)`` with every column of Q ``(n, q)`` -> ``(u, q)``."""
    a = a - a.mean(0)
    Q = Q - Q.mean(0)
    sa = np.sqrt((a**2).sum(0))
    sq = np.sqrt((Q**2).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a.T @ Q) / np.outer(sa, sq)
    return np.nan_to_num(r)


def _eta(a: np.ndarray, cats: np.ndarray) -> np.ndarray:
    """Correlation ratio η of each column of a ``(n, u)`` with categorical labels ``(n,)``."""
    tot = ((a - a.mean(0)) ** 2).sum(0)
    between = np.zeros(a.shape[1])
    for c in np.unique(cats):
        sel = cats == c
        between += sel.sum() * (a[sel].mean(0) - a.mean(0)) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num(np.sqrt(between / tot))


def _template(unit: str, q: str, r: float, act: np.ndarray, is_neuron: bool) -> str:
    if abs(r) >= STRONG:
        s = f"{unit}: tracks {q} ({'+' if r >= 0 else '-'}, r={r:+.2f})"
    elif abs(r) >= WEAK:
        s = f"{unit}: partly tracks {q} (r={r:+.2f})"
    else:
        s = f"{unit}: no single task quantity (max |r|={abs(r):.2f}, {q})"
    if is_neuron:
        frac = float((act > 0).mean())
        s += "; dead" if np.all(np.abs(act) < 1e-12) else f"; active on {100 * frac:.0f}% of inputs"
    return s


def _unit_activations(model, inputs, position, layers, include_heads, include_neurons):
    nL = model.cfg.n_layers
    layers = list(range(nL)) if layers is None else [check_int("layer", L, low=0, high=nL - 1) for L in layers]
    names = []
    hp = model.hook_points
    for L in layers:
        if include_neurons and act_name("mlp_post", L) in hp:
            names.append(act_name("mlp_post", L))
        if include_heads:
            names.append(act_name("z", L))
    with torch.no_grad():
        _, cache = model.run_with_cache(inputs, names_filter=names)
    cols, labels, is_neuron = [], [], []
    for L in layers:
        n = act_name("mlp_post", L)
        if n in cache:
            a = cache[n]
            a = a[:, position] if position is not None else a.reshape(-1, a.shape[-1])
            a = a.double().cpu().numpy()
            cols.append(a)
            labels += [f"L{L}.N{i}" for i in range(a.shape[1])]
            is_neuron += [True] * a.shape[1]
        n = act_name("z", L)
        if n in cache:
            z = cache[n]  # [b, p, h, dh]
            z = z[:, position] if position is not None else z.reshape(-1, *z.shape[2:])
            z = z.double().cpu().numpy()
            hs = []
            for h in range(z.shape[1]):
                zh = z[:, h] - z[:, h].mean(0)
                if np.allclose(zh, 0):
                    hs.append(np.zeros(z.shape[0]))
                    continue
                _, _, vt = np.linalg.svd(zh, full_matrices=False)
                hs.append(zh @ vt[0])
            cols.append(np.stack(hs, 1))
            labels += [f"L{L}.H{h}" for h in range(z.shape[1])]
            is_neuron += [False] * z.shape[1]
    return np.concatenate(cols, 1), labels, is_neuron


def describe_units(model, inputs: torch.Tensor, quantities: dict[str, np.ndarray] | None = None, *,
                   position: int | None = -1, categorical: dict[str, np.ndarray] | None = None,
                   layers=None, heads: bool = True, neurons: bool = True, top_k: int = 5) -> UnitReport:
    """Describe MLP neurons and heads by the task quantities their activations track.

    Parameters
    ----------
    model : HookedModule
    inputs : Tensor
        A dataset of prompts (regression ``(n, D+1, N+1)``) or tokens ``(n, pos)``.
    quantities : dict name -> ``(n_samples,)``
        Real-valued quantities (Pearson r). Default for regression: `task_quantities` of ``inputs``.
    position : int or None
        Position whose activations are described (default the query/last); None: every (prompt, position)
        pair is a sample (``n_samples = n * pos``; quantities must then be per pair).
    categorical : dict name -> ``(n_samples,)``
        Categorical quantities (correlation ratio η ∈ [0, 1]), e.g. token identity.
    """
    import xarray as xr

    from spinlens.interp.tasks import task_quantities

    if quantities is None and categorical is None:
        if getattr(model.cfg, "input_kind", "tokens") != "regression":
            raise InvalidParameterError("The 'quantities' parameter is required for token models.")
        quantities = task_quantities(inputs)
    quantities = dict(quantities or {})
    categorical = dict(categorical or {})
    A, labels, is_neuron = _unit_activations(model, inputs, position, layers, heads, neurons)
    n = A.shape[0]
    for k, v in list(quantities.items()) + list(categorical.items()):
        if np.asarray(v).shape != (n,):
            raise InvalidParameterError(f"The quantity {k!r} must have shape ({n},). Got {np.asarray(v).shape} instead.")
    qn = list(quantities) + list(categorical)
    cols = []
    if quantities:
        cols.append(_pearson(A, np.stack([np.asarray(quantities[k], dtype=np.float64) for k in quantities], 1)))
    for k in categorical:
        cols.append(_eta(A, np.asarray(categorical[k]))[:, None])
    R = np.concatenate(cols, 1)
    best = np.argmax(np.abs(R), 1)
    # a head's principal direction has no intrinsic sign: orient it so that its best correlation is positive
    flip = np.where((~np.asarray(is_neuron)) & (R[np.arange(len(labels)), best] < 0), -1.0, 1.0)
    R = R * flip[:, None]
    A = A * flip[None, :]
    best_r = R[np.arange(len(labels)), best]
    best_q = [qn[i] for i in best]
    desc = [_template(u, q, r, A[:, i], nn) for i, (u, q, r, nn) in enumerate(zip(labels, best_q, best_r, is_neuron))]
    top = np.argsort(-A, axis=0)[:top_k].T
    corr = xr.DataArray(R, dims=("unit", "quantity"), coords={"unit": labels, "quantity": qn}, name="correlation")
    return UnitReport(corr, best_q, best_r, desc, top, A)
