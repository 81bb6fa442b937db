"""Information flow: attention rollout (Abnar & Zuidema 2020, arXiv 2005.00928).

Each layer's mixing matrix is ``M_L = r·I + (1−r)·Ā_L`` with ``Ā_L`` the attention pattern averaged over heads
(or one head's pattern) and ``r`` the weight of the residual connection (0.5 in the paper); rows are
renormalised to sum to one for linear attention, whose patterns do not. The rollout after layer L is
``R_L = M_L R_{L-1}`` with ``R_{-1} = I``: ``R_L[q, k]`` is the share of position ``k``'s input that reaches
position ``q`` after layer L, averaged over the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from spinlens.errors import check_float
from spinlens.vocabulary import act_name

if TYPE_CHECKING:
    import xarray as xr


@dataclass(frozen=True)
class FlowResult:
    """Attention rollout.

    Attributes
    ----------
    rollout : xarray.DataArray ``(layer, query_pos, key_pos)``
        Cumulative flow after each layer (mean over prompts).
    per_layer : xarray.DataArray ``(layer, query_pos, key_pos)``
        Each layer's mixing matrix ``M_L`` (mean over prompts).
    query_flow : xarray.DataArray ``(layer, key_pos)``
        ``rollout[:, query_position, :]``: where the information at the query comes from.
    """

    rollout: xr.DataArray
    per_layer: xr.DataArray
    query_flow: xr.DataArray


@torch.no_grad()
def attention_rollout(model, inputs: torch.Tensor, *, residual_weight: float = 0.5, head=None,
                      query_position: int = -1) -> FlowResult:
    """Attention rollout of ``inputs`` (see module doc). ``head``: None averages heads, an int picks one."""
    import xarray as xr

    r = check_float("residual_weight", residual_weight, low=0, high=1)
    nL = model.cfg.n_layers
    names = [act_name("pattern", L) for L in range(nL)]
    _, cache = model.run_with_cache(inputs, names_filter=names)
    R = None
    rolls, mixes = [], []
    for n in names:
        A = cache[n].double()  # [b, h, q, k]
        A = A.mean(1) if head is None else A[:, int(head)]
        A = A.abs()
        A = A / A.sum(-1, keepdim=True).clamp_min(1e-30)
        T = A.shape[-1]
        M = r * torch.eye(T, dtype=A.dtype) + (1 - r) * A
        R = M if R is None else M @ R
        rolls.append(R.mean(0).cpu().numpy())
        mixes.append(M.mean(0).cpu().numpy())
    coords = {"layer": np.arange(nL), "query_pos": np.arange(T), "key_pos": np.arange(T)}
    roll = xr.DataArray(np.stack(rolls), dims=("layer", "query_pos", "key_pos"), coords=coords, name="rollout")
    per = xr.DataArray(np.stack(mixes), dims=("layer", "query_pos", "key_pos"), coords=coords, name="mixing")
    qf = roll.isel(query_pos=query_position).rename("query_flow")
    return FlowResult(roll, per, qf)
