"""Interpretability-guided mixed-precision fake quantization of transformer weights.

* `fake_quantize`: group-wise round-to-nearest (RTN). A weight matrix is cut into groups of
  ``group_size`` consecutive entries along its input dimension (dimension −2 in the Transformer layout,
  ``x @ W``); each group gets its own scale (and zero point when asymmetric, the default), values are
  rounded to ``2^bits`` levels and mapped back to floats. Any bit width in [1, 16]; 16 bits is lossless
  up to float rounding.
* Components (`spinlens.edit.components`): per head (the head's slices of W_Q, W_K, W_V, W_O) plus one
  per MLP (``granularity="head"``), per attention layer and MLP (``"module"``) or per block (``"layer"``).
  Only the weight matrices of the blocks are quantized: embeddings, read-out, biases and LayerNorms stay
  in full precision and are not counted in the bit budget. The budget counts the nominal bits; the
  per-group scale/zero overhead (16 bits each) is reported separately (`Allocation.effective_bits`).
* Bit allocation (`allocate_bits`): a multiple-choice knapsack. Given a cost table ``cost[c, b]`` (the
  predicted loss increase when component c is stored with b bits) and sizes ``n_c``, choose ``b_c`` to
  minimise Σ_c cost[c, b_c] subject to Σ_c n_c b_c ≤ budget · Σ_c n_c. Solvers: "greedy" (best marginal
  cost decrease per extra bit), "dp" (exact dynamic programming over the integer budget), "brute"
  (enumeration, for tests).
* Cost tables: `importance_cost_table` (interpretability-guided: importance_c × relative weight error²
  of c at b bits, no forward pass per (c, b)) and `measured_cost_table` (Δloss when only c is quantized
  at b bits; measured directly).
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from spinlens.edit.components import Component, component_size, component_slices, list_components
from spinlens.errors import InvalidParameterError, check_choice, check_float, check_int

__all__ = [
    "fake_quantize",
    "quantization_components",
    "quantize_model",
    "relative_error_table",
    "importance_cost_table",
    "measured_cost_table",
    "allocate_bits",
    "Allocation",
    "uniform_allocation",
    "random_allocation",
    "random_allocation_from_sizes",
    "BIT_CHOICES",
]

BIT_CHOICES = (2, 3, 4, 5, 6, 8, 16)
GRANULARITIES = ("head", "module", "layer")


def fake_quantize(w, bits: int, *, group_size: int = 32, symmetric: bool = False, dim: int = -2,
                  zero_point: str = "float"):
    """Group-wise round-to-nearest fake quantization of ``w`` (returns a new tensor of the same shape/dtype).

    Parameters
    ----------
    w : tensor (..., n_in, n_out) (any shape; 1-D tensors are one row)
    bits : int in [1, 16]
    group_size : int >= 1
        Consecutive entries along ``dim`` sharing one scale (and zero point); the last group may be shorter.
    symmetric : bool
        Symmetric, b >= 2 bits: levels ``s·{−(2^(b−1)−1) … 2^(b−1)−1}`` with s = max|w| / (2^(b−1)−1).
        Symmetric, 1 bit: sign binarisation, two levels ±s: ``q = s·sign(w)`` with ``sign(0) = +1`` and
        s = mean|w| over the group, the scale that minimises the squared error ``Σ(w − s·sign(w))²``.
        Asymmetric: ``2^b`` levels spanning [min, max] of the group.
    dim : int
        The input dimension along which groups run.
    zero_point : {"float", "int"}
        Asymmetric only. "float" (default): the grid is lo + k·s, s = (hi − lo)/(2^b − 1) (the group's
        minimum is exact; HQQ's round-to-nearest without optimisation). "int": the range is widened to
        include 0, s = (max(hi, 0) − min(lo, 0))/(2^b − 1) rounded to float32, integer zero point
        z = round(−min(lo, 0)/s), grid (k − z)·s (0 is exact; torchao ``MappingType.ASYMMETRIC``).
    """
    import torch

    bits = check_int("bits", bits, low=1, high=16)
    check_choice("zero_point", zero_point, ("float", "int"), owner="fake_quantize")
    group_size = check_int("group_size", group_size, low=1)
    x = w.detach()
    if x.ndim == 0:
        return x.clone()
    work = torch.float64
    x = x.to(work)
    if x.ndim == 1:
        x = x[None, :]
        dim_ = -1
        squeeze = True
    else:
        dim_, squeeze = dim, False
    xt = x.movedim(dim_, -1)  # groups along the last dim
    shp = xt.shape
    n = shp[-1]
    group_size = min(group_size, max(n, 1))  # a group longer than the row is the whole row
    pad = (-n) % group_size
    flat = xt.reshape(-1, n)
    if pad:
        # pad by repeating the last entry: it does not change the min/max/absmax of the group
        flat = torch.cat([flat, flat[:, -1:].expand(-1, pad)], dim=1)
    g = flat.reshape(flat.shape[0], -1, group_size)
    if symmetric and bits == 1:
        valid = torch.ones(n + pad, dtype=torch.bool)
        valid[n:] = False  # padded entries do not count towards the group's mean |w|
        valid = valid.reshape(-1, group_size)
        a = g.abs() * valid
        s = a.sum(-1, keepdim=True) / valid.sum(-1, keepdim=True)
        q = torch.where(g >= 0, s, -s)
    elif symmetric:
        qmax = 2 ** (bits - 1) - 1
        s = g.abs().amax(-1, keepdim=True) / qmax
        s = torch.where(s > 0, s, torch.ones_like(s))
        q = torch.clamp(torch.round(g / s), -qmax, qmax) * s
    elif zero_point == "int":
        levels = 2**bits - 1
        lo, hi = g.amin(-1, keepdim=True).clamp(max=0.0), g.amax(-1, keepdim=True).clamp(min=0.0)
        s = ((hi - lo) / levels).to(torch.float32).to(work)
        s = torch.where(s > 0, s, torch.ones_like(s))
        z = torch.round(-lo / s)
        q = (torch.clamp(torch.round(g / s) + z, 0, levels) - z) * s
    else:
        levels = 2**bits - 1
        lo, hi = g.amin(-1, keepdim=True), g.amax(-1, keepdim=True)
        s = (hi - lo) / levels
        s = torch.where(s > 0, s, torch.ones_like(s))
        q = torch.clamp(torch.round((g - lo) / s), 0, levels) * s + lo
    q = q.reshape(flat.shape)[:, :n].reshape(shp).movedim(-1, dim_)
    if squeeze:
        q = q[0]
    return q.to(w.dtype)


def quantization_components(model, granularity: str = "head") -> list[Component]:
    """The components that `quantize_model` allocates bits to (see the module docstring)."""
    check_choice("granularity", granularity, GRANULARITIES)
    if granularity == "head":
        return list_components(model, "head") + list_components(model, "mlp")
    if granularity == "module":
        return list_components(model, "attn") + list_components(model, "mlp")
    return list_components(model, "layer")


def _quantize_slices(params: dict, model, comp, bits: int, group_size: int, symmetric: bool):
    import torch

    with torch.no_grad():
        for sl in component_slices(model, comp, weights_only=True):
            view = sl.select(params[sl.param])
            # head slices are (d_model, d_head) or (d_head, d_model): the input dim is -2 of the slice
            view.copy_(fake_quantize(view, bits, group_size=group_size, symmetric=symmetric, dim=-2))


def quantize_model(model, allocation: dict, *, group_size: int = 32, symmetric: bool = False):
    """A copy of ``model`` with each component of ``allocation`` ({component: bits}) fake-quantized.

    Components absent from ``allocation`` (and everything outside the blocks) keep full precision.
    Components must not overlap (e.g. not a head and the attention layer that contains it).
    """
    comps = {Component.parse(c): check_int("bits", b, low=1, high=16) for c, b in allocation.items()}
    _check_disjoint(model, comps)
    new = copy.deepcopy(model)
    params = dict(new.named_parameters())
    for c, b in comps.items():
        _quantize_slices(params, new, c, b, group_size, symmetric)
    return new


def _check_disjoint(model, comps):
    seen = {}
    for c in comps:
        for sl in component_slices(model, c, weights_only=True):
            key = (sl.param, sl.dim, sl.index)
            clash = [k for k in seen if k[0] == sl.param and (k == key or k[1] is None or sl.dim is None)]
            if clash:
                raise InvalidParameterError(f"Components {seen[clash[0]]} and {c} overlap on {sl.param}.")
            seen[key] = c


def relative_error_table(model, components, bits=BIT_CHOICES, *, group_size: int = 32, symmetric: bool = False):
    """Relative Frobenius error ‖Q_b(W_c) − W_c‖ / ‖W_c‖ of each component at each bit width.

    Returns xarray.DataArray (component, bits).
    """
    import torch
    import xarray as xr

    params = dict(model.named_parameters())
    comps = [Component.parse(c) for c in components]
    out = np.zeros((len(comps), len(bits)))
    with torch.no_grad():
        for i, c in enumerate(comps):
            sls = component_slices(model, c, weights_only=True)
            ref = [sl.select(params[sl.param]).to(torch.float64) for sl in sls]
            norm = math.sqrt(sum(float((r**2).sum()) for r in ref)) or 1.0
            for j, b in enumerate(bits):
                err = sum(
                    float(((fake_quantize(r, b, group_size=group_size, symmetric=symmetric) - r) ** 2).sum()) for r in ref
                )
                out[i, j] = math.sqrt(err) / norm
    return xr.DataArray(out, dims=("component", "bits"), coords={"component": [str(c) for c in comps], "bits": list(bits)},
                        name="relative_error")


def importance_cost_table(model, importance: dict, bits=BIT_CHOICES, *, group_size: int = 32, symmetric: bool = False):
    """Predicted cost importance_c × (relative weight error of c at b bits)² (xarray (component, bits)).

    ``importance`` maps each component (name or Component) to a non-negative score, e.g. the
    attribution/patching importance of heads and MLPs.
    """
    imp = {str(Component.parse(k)): float(v) for k, v in importance.items()}
    if any(v < 0 or not math.isfinite(v) for v in imp.values()):
        raise InvalidParameterError("Importance scores must be finite and >= 0 (take |score|).")
    rel = relative_error_table(model, list(imp), bits, group_size=group_size, symmetric=symmetric)
    cost = rel**2 * np.array([imp[c] for c in rel["component"].values])[:, None]
    cost.name = "predicted_cost"
    return cost


def measured_cost_table(model, components, loss_fn, bits=BIT_CHOICES, *, group_size: int = 32, symmetric: bool = False,
                        progress: bool = False):
    """Measured cost: loss_fn(model with only c quantized at b bits) − loss_fn(model), xarray (component, bits)."""
    import xarray as xr

    comps = [Component.parse(c) for c in components]
    base = float(loss_fn(model))
    out = np.zeros((len(comps), len(bits)))
    it = list(itertools.product(range(len(comps)), range(len(bits))))
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="sensitivity", leave=False)
    for i, j in it:
        q = quantize_model(model, {comps[i]: bits[j]}, group_size=group_size, symmetric=symmetric)
        out[i, j] = float(loss_fn(q)) - base
    return xr.DataArray(out, dims=("component", "bits"), coords={"component": [str(c) for c in comps], "bits": list(bits)},
                        name="measured_cost")


@dataclass(frozen=True)
class Allocation:
    """A bit allocation: ``bits`` {component name: bits}, sizes, and the predicted cost under the table used."""

    bits: dict
    sizes: dict
    predicted_cost: float
    method: str
    budget: float | None = None
    group_size: int | None = None
    extras: dict = field(default_factory=dict, repr=False)

    @property
    def average_bits(self) -> float:
        tot = sum(self.sizes.values())
        return sum(self.sizes[c] * b for c, b in self.bits.items()) / tot

    def effective_bits(self, *, symmetric: bool = False) -> float:
        """Average bits including one 16-bit scale (+ one 16-bit zero point when asymmetric) per group."""
        if self.group_size is None:
            return self.average_bits
        return self.average_bits + (16 if symmetric else 32) / self.group_size

    def to_dict(self) -> dict:
        return {"bits": dict(self.bits), "average_bits": self.average_bits, "predicted_cost": self.predicted_cost,
                "method": self.method, "budget": self.budget}


def _table(cost):
    comps = [str(c) for c in cost["component"].values]
    bits = [int(b) for b in cost["bits"].values]
    vals = np.asarray(cost.values, dtype=float)
    if not np.all(np.isfinite(vals)):
        raise InvalidParameterError("The cost table has non-finite entries.")
    return comps, bits, vals


def allocate_bits(cost, sizes: dict, budget: float, *, method: str = "greedy", group_size: int | None = None) -> Allocation:
    """Choose bits per component minimising Σ cost[c, b_c] s.t. Σ n_c b_c ≤ budget · Σ n_c.

    Parameters
    ----------
    cost : xarray.DataArray (component, bits)
        Predicted or measured cost (`importance_cost_table`, `measured_cost_table`).
    sizes : dict {component name: number of weights}
    budget : float
        Average bits per weight; at least the smallest bit width of the table.
    method : {"greedy", "dp", "brute"}
        Greedy marginal gain per bit; exact DP over the integer budget (sizes divided by their gcd);
        brute-force enumeration (≤ 12 components).
    """
    check_choice("method", method, ("greedy", "dp", "brute"))
    comps, bits, vals = _table(cost)
    order = np.argsort(bits)
    bits = [bits[i] for i in order]
    vals = vals[:, order]
    try:
        n = np.array([int(sizes[c]) for c in comps])
    except KeyError as exc:
        raise InvalidParameterError(f"The 'sizes' dict has no entry for component {exc.args[0]!r}.") from None
    budget = check_float("budget", budget, low=float(bits[0]), high=float(bits[-1]))
    cap = budget * n.sum()
    choice: list[int] | None  # the bit-width index of each component
    if method == "brute":
        if len(comps) > 12:
            raise InvalidParameterError(f"method='brute' allows at most 12 components. Got {len(comps)}.")
        best, choice = math.inf, None
        for ch in itertools.product(range(len(bits)), repeat=len(comps)):
            used = sum(n[i] * bits[j] for i, j in enumerate(ch))
            if used <= cap + 1e-9:
                c = sum(vals[i, j] for i, j in enumerate(ch))
                if c < best - 1e-15:
                    best, choice = c, list(ch)
    elif method == "dp":
        g = int(np.gcd.reduce(n))
        units = n // g
        C = int(math.floor(cap / g + 1e-9))
        INF = math.inf
        dp = np.full(C + 1, INF)
        dp[0] = 0.0
        back = []
        for i in range(len(comps)):
            new = np.full(C + 1, INF)
            arg = np.full(C + 1, -1, dtype=int)
            for j, b in enumerate(bits):
                w = int(units[i] * b)
                if w > C:
                    continue
                cand = np.full(C + 1, INF)
                cand[w:] = dp[: C + 1 - w] + vals[i, j]
                better = cand < new
                new[better], arg[better] = cand[better], j
            back.append(arg)
            dp = new
        end = int(np.argmin(dp))
        if not np.isfinite(dp[end]):
            raise InvalidParameterError(f"No allocation meets budget={budget} bits.")
        choice = [0] * len(comps)
        c_ = end
        for i in range(len(comps) - 1, -1, -1):
            j = int(back[i][c_])
            choice[i] = j
            c_ -= int(units[i] * bits[j])
        best = float(dp[end])
    else:
        choice = [0] * len(comps)
        used = float(sum(n[i] * bits[0] for i in range(len(comps))))
        while True:
            best_gain, move = 0.0, None
            for i in range(len(comps)):
                for j in range(choice[i] + 1, len(bits)):
                    extra = n[i] * (bits[j] - bits[choice[i]])
                    if used + extra > cap + 1e-9:
                        continue
                    gain = (vals[i, choice[i]] - vals[i, j]) / extra
                    if gain > best_gain + 1e-18:
                        best_gain, move = gain, (i, j, extra)
            if move is None:
                break
            i, j, extra = move
            choice[i] = j
            used += extra
        best = float(sum(vals[i, j] for i, j in enumerate(choice)))
    if choice is None:
        raise InvalidParameterError(f"No allocation meets budget={budget} bits.")
    alloc = {c: bits[j] for c, j in zip(comps, choice)}
    return Allocation(bits=alloc, sizes={c: int(s) for c, s in zip(comps, n)}, predicted_cost=float(best), method=method,
                      budget=budget, group_size=group_size)


def uniform_allocation(model, bits: int, *, granularity: str = "head", group_size: int | None = None) -> Allocation:
    """Every component at ``bits``."""
    comps = quantization_components(model, granularity)
    sizes = {str(c): component_size(model, c) for c in comps}
    return Allocation(bits={str(c): int(bits) for c in comps}, sizes=sizes, predicted_cost=float("nan"), method="uniform",
                      budget=float(bits), group_size=group_size)


def random_allocation(model, budget: float, bits=BIT_CHOICES, *, granularity: str = "head", rng=None,
                      group_size: int | None = None) -> Allocation:
    """The uninformed baseline: random costs, allocated by the greedy solver at the same budget."""
    comps = quantization_components(model, granularity)
    sizes = {str(c): component_size(model, c) for c in comps}
    return random_allocation_from_sizes(sizes, budget, bits, rng=rng, group_size=group_size)


def random_allocation_from_sizes(sizes: dict, budget: float, bits=BIT_CHOICES, *, rng=None,
                                 group_size: int | None = None) -> Allocation:
    """`random_allocation` for any components given by their sizes ({name: number of weights}).

    Each component gets a random importance s_c ~ Exp(1) and cost s_c·2^(−b); the greedy knapsack then
    spends the budget, so the allocation is feasible and uses the budget like the guided ones.
    """
    import xarray as xr

    from spinlens.random import as_generator

    g = as_generator(rng)
    imp = g.exponential(size=len(sizes))
    decay = np.array([2.0 ** (-b) for b in bits])
    cost = xr.DataArray(imp[:, None] * decay[None, :], dims=("component", "bits"),
                        coords={"component": list(sizes), "bits": list(bits)})
    a = allocate_bits(cost, sizes, budget, method="greedy", group_size=group_size)
    return Allocation(bits=a.bits, sizes=a.sizes, predicted_cost=float("nan"), method="random", budget=budget,
                      group_size=group_size)
