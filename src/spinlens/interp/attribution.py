"""Attribution patching over edges (a first-order version of path patching), and circuit discovery with it.

Edge attribution patching (Nanda 2023, "attribution patching"; Syed, Rager, Conmy 2023, arXiv 2310.10348):
the path-patching score of the edge sender head S → receiver head R's q (k, v) input is approximated by

    Δm ≈ Σ_{prompts, positions} ∂m/∂(q-input of R) · (result_S(source) − result_S(base))

where the gradient is taken on the base run at R's *own* per-head q input (``attn.hook_q_input`` of the
`Transformer` with ``split_qkv_input``), so it follows only that route, and everything downstream of R is
recomputed as in step 2 of exact path patching. The edge S → read-out uses the gradient at the final
residual stream. One forward and one backward pass give every edge at once. With a metric linear in the
output (`spinlens.interp.metrics.projection_metric`, `logit_diff_metric`) the approximation is exact when
the output is linear in the patched path (e.g. linear attention without LayerNorm, value routes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from spinlens.errors import InvalidParameterError, check_float
from spinlens.interp.patching import Circuit, _base_source, _check_pair, _ref_metrics, circuit_faithfulness
from spinlens.vocabulary import act_name

if TYPE_CHECKING:
    import xarray as xr


@dataclass(frozen=True)
class EdgeAttribution:
    """Attribution scores of all head → head-input and head → read-out edges (normalised like patching).

    Attributes
    ----------
    edges : xarray.DataArray ``(receiver_layer, receiver_head, receiver_input, sender_layer, sender_head)``
        NaN where the sender is not below the receiver.
    output : xarray.DataArray ``(sender_layer, sender_head)``
        Edges head → read-out (direct effect).
    metric_base, metric_source : float
    """

    edges: xr.DataArray
    output: xr.DataArray
    metric_base: float
    metric_source: float

    def edge_list(self, threshold: float = 0.0) -> list[tuple]:
        """``[(sender, receiver, input, score), ...]`` with ``|score| > threshold``, largest first."""
        out: list[tuple] = []
        o = self.output.values
        for L in range(o.shape[0]):
            for h in range(o.shape[1]):
                if abs(o[L, h]) > threshold:
                    out.append(((L, h), "output", "out", float(o[L, h])))
        e = self.edges.values
        inputs = list(self.edges.coords["receiver_input"].values)
        for R, hr, i, S, hs in zip(*np.nonzero(np.nan_to_num(np.abs(e), nan=0.0) > threshold)):
            out.append(((int(S), int(hs)), (int(R), int(hr)), str(inputs[i]), float(e[R, hr, i, S, hs])))
        return sorted(out, key=lambda t: -abs(t[3]))


def _split_model(model):
    if "blocks.0.attn.hook_q_input" in model.hook_points:
        return model
    if hasattr(model, "with_split_qkv_input"):
        return model.with_split_qkv_input(True)
    raise InvalidParameterError(
        "edge_attribution needs per-head q/k/v input hook points (attn.hook_q_input): use a spinlens Transformer."
    )


def edge_attribution(model, clean: torch.Tensor, corrupt: torch.Tensor, *, metric, direction: str = "denoise") -> EdgeAttribution:
    """All edge attribution scores in one forward/backward pass (see module doc)."""
    import xarray as xr

    _check_pair(clean, corrupt)
    model = _split_model(model)
    base, source = _base_source(clean, corrupt, direction)
    m_b, m_s = _ref_metrics(model, metric, base, source)
    nL, nH = model.cfg.n_layers, model.cfg.n_heads
    res_names = [act_name("result", L) for L in range(nL)]
    with torch.no_grad():
        _, cs = model.run_with_cache(source, names_filter=res_names)
        _, cb = model.run_with_cache(base, names_filter=res_names)
    dres = [cs[n] - cb[n] for n in res_names]  # [b, p, h, d]
    grads_of = [act_name(f"{x}_input", L) for L in range(nL) for x in "qkv"] + [act_name("resid_post", nL - 1)]
    saved = {}

    def keep(act, hook):
        act.retain_grad()
        saved[hook.name] = act

    with torch.enable_grad():
        with model.hooks([(n, keep) for n in grads_of]):
            out = model(base)
        metric(out).mean().backward()
    for p in model.parameters():
        p.grad = None
    norm = m_s - m_b  # the gradient of the batch mean already carries 1/B
    E = np.full((nL, nH, 3, nL, nH), np.nan)
    for R in range(nL):
        for i, x in enumerate("qkv"):
            g = saved[act_name(f"{x}_input", R)].grad  # [b, p, h_recv, d]
            for S in range(R):
                E[R, :, i, S, :] = (torch.einsum("bprd,bpsd->rs", g, dres[S]) / norm).detach().double().cpu().numpy()
    gf = saved[act_name("resid_post", nL - 1)].grad  # [b, p, d]
    O = np.stack([(torch.einsum("bpd,bpsd->s", gf, dres[S]) / norm).detach().double().cpu().numpy() for S in range(nL)])
    edges = xr.DataArray(
        E, dims=("receiver_layer", "receiver_head", "receiver_input", "sender_layer", "sender_head"),
        coords={"receiver_layer": np.arange(nL), "receiver_head": np.arange(nH), "receiver_input": ["q", "k", "v"],
                "sender_layer": np.arange(nL), "sender_head": np.arange(nH)}, name="edge_attribution",
    )
    output = xr.DataArray(O, dims=("sender_layer", "sender_head"),
                          coords={"sender_layer": np.arange(nL), "sender_head": np.arange(nH)}, name="output_attribution")
    return EdgeAttribution(edges, output, m_b, m_s)


@dataclass(frozen=True)
class AttributionCircuit:
    """A circuit kept by thresholding edge attributions, with its faithfulness.

    Attributes
    ----------
    circuit : Circuit
    faithfulness : float
        `circuit_faithfulness` of the circuit's heads.
    faithfulness_empty : float
        The same with no head kept (the baseline carried by embeddings/MLPs alone).
    attribution : EdgeAttribution
    """

    circuit: Circuit
    faithfulness: float
    faithfulness_empty: float
    attribution: EdgeAttribution


def attribution_circuit(model, clean, corrupt, *, metric, threshold: float = 0.1) -> AttributionCircuit:
    """Keep edges with ``|attribution| > threshold`` that connect (backwards) to the read-out."""
    check_float("threshold", threshold, low=0)
    ea = edge_attribution(model, clean, corrupt, metric=metric)
    kept = ea.edge_list(threshold)
    nodes = {s for s, r, _, _ in kept if r == "output"}
    changed = True
    while changed:  # keep only edges whose receiver is already connected to the output
        changed = False
        for s, r, _, _ in kept:
            if r != "output" and r in nodes and s not in nodes:
                nodes.add(s)
                changed = True
    edges = tuple(e for e in kept if e[1] == "output" or e[1] in nodes)
    circ = Circuit(tuple(sorted(nodes)), edges, float(threshold), model.cfg.n_layers, model.cfg.n_heads)
    f = circuit_faithfulness(model, clean, corrupt, circ.nodes, metric=metric)
    f0 = circuit_faithfulness(model, clean, corrupt, [], metric=metric)
    return AttributionCircuit(circ, f, f0, ea)


def head_attribution(model, clean: torch.Tensor, corrupt: torch.Tensor, *, metric, direction: str = "denoise",
                     position: int | None = None):
    """Attribution patching of every head's ``z`` (Nanda 2023): the first-order estimate of `activation_patch`
    with ``component="z"``, from one forward and one backward pass on the base run:

        score(L, h) ≈ Σ_{positions, d_head} ∂m/∂z_{L,h} · (z_{L,h}(source) − z_{L,h}(base)) / (m_source − m_base)

    (``m`` averaged over prompts; ``position``: that position only, the estimate of patching ``z`` there).
    The gradient is taken with respect to activations only: the weights are
    frozen during the pass and the embedding is the leaf, so no weight gradient is computed. Works on any
    hooked model with ``hook_embed`` and ``attn.hook_z`` (`Transformer`, `HookedHF`).

    Returns
    -------
    `spinlens.interp.patching.PatchingResult` with ``scores`` ``(layer, head)`` and ``component="z"``.
    """
    import xarray as xr

    from spinlens.interp.patching import PatchingResult

    _check_pair(clean, corrupt)
    base, source = _base_source(clean, corrupt, direction)
    nL = model.cfg.n_layers
    names = [act_name("z", L) for L in range(nL)]
    with torch.no_grad():
        out_s, cs = model.run_with_cache(source, names_filter=names)
        m_s = float(metric(out_s).mean())
    saved = {}

    def leaf(act, hook):
        return act.detach().requires_grad_(True)

    def keep(act, hook):
        act.retain_grad()
        saved[hook.name] = act

    params = list(model.parameters())
    req = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        with torch.enable_grad(), model.hooks([("hook_embed", leaf)] + [(n, keep) for n in names]):
            out = model(base)
            m = metric(out).mean()
            m.backward()
    finally:
        for p, r in zip(params, req):
            p.requires_grad_(r)
    m_b = float(m.detach())
    from spinlens.interp.patching import _check_metrics

    m_b, m_s = _check_metrics(m_b, m_s)
    sl = slice(None) if position is None else slice(position, None if position == -1 else position + 1)
    scores = np.stack([
        torch.einsum("bphd,bphd->h", saved[n].grad[:, sl], (cs[n] - saved[n].detach()).to(saved[n].dtype)[:, sl])
        .double().numpy() for n in names]) / (m_s - m_b)
    da = xr.DataArray(scores, dims=("layer", "head"), coords={"layer": np.arange(nL), "head": np.arange(scores.shape[1])},
                      name="attribution_score", attrs={"long_name": f"attribution patching score ({direction}, z)",
                                                       "component": "z"})
    return PatchingResult(da, m_b, m_s, "z", direction, int(clean.shape[0]))
