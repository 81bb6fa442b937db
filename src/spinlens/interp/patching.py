"""Activation patching and path patching, batched over prompts *and* over patch variants.

Idea. Run the model on a *base* input (default: the corrupted prompts) and copy one activation from a
*source* run (default: the clean prompts) into it; the normalised change of a metric
(`spinlens.interp.metrics`) says how much that activation carries the difference between the two.
Every variant (a head, a head at one position, a layer, ...) is a copy of the whole prompt batch: variants are
stacked along the batch dimension (``n_variants * n_prompts`` sequences per forward, chunked by
``max_batch``), so there is no Python loop over prompts.

Path patching (Wang et al. 2022, arXiv 2211.00593; Goldowsky-Dill et al. 2023, arXiv 2304.05969) isolates the
effect of a *sender* head on a *receiver* through one route only:

1. run the base input with the sender's ``z`` taken from the source run and *every other* head's ``z`` and
   every MLP output frozen to their base values; record the receiver's q (or k, v) — it now differs from
   base only by the sender's direct contribution;
2. run the base input with only the receiver's q (k, v) replaced by the recorded one; measure the metric.

For the receiver ``"output"`` step 1 alone gives the sender's direct effect on the read-out.
`find_circuit` starts from the output and walks backwards: heads whose path score exceeds a threshold
become nodes, and each node's q, k and v are path-patched from all earlier heads.

Works for any `HookedModule` with ``cfg.n_layers``, ``cfg.n_heads`` and the hook names of ``docs/design.md``
(`spinlens.models.transformer.Transformer`, `spinlens.interp.hf.HookedHF`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from spinlens.errors import InvalidParameterError, check_choice, check_int
from spinlens.vocabulary import act_name

if TYPE_CHECKING:
    import xarray as xr

HEAD_COMPONENTS = {
    "z": "attn.hook_z",
    "q": "attn.hook_q",
    "k": "attn.hook_k",
    "v": "attn.hook_v",
    "result": "attn.hook_result",
    "pattern": "attn.hook_pattern",
}
LAYER_COMPONENTS = {
    "resid_pre": "hook_resid_pre",
    "resid_mid": "hook_resid_mid",
    "resid_post": "hook_resid_post",
    "attn_out": "hook_attn_out",
    "mlp_out": "hook_mlp_out",
}

# a patch: (hook name, index into one prompt batch's activation after the batch dim, values [B, ...]);
# the activation slice ``act[v][:, *index]`` of variant v is set to ``values[:, *index]``
Patch = tuple[str, tuple, torch.Tensor]


def _index(component: str, head: int | None, pos: int | None) -> tuple:
    """Index (after the batch dim) of one head / position in a component's activation."""
    s = slice(None)
    p = s if pos is None else pos
    if component == "pattern":  # [b, head, q, k]
        return (s if head is None else head, p)
    if component in HEAD_COMPONENTS:  # [b, pos, head, d]
        return (p,) if head is None else (p, head)
    return (p,)  # [b, pos, d]


def _hook_name(component: str, layer: int) -> str:
    if component in HEAD_COMPONENTS:
        return f"blocks.{layer}.{HEAD_COMPONENTS[component]}"
    return f"blocks.{layer}.{LAYER_COMPONENTS[component]}"


def _repeat(x: torch.Tensor, n: int) -> torch.Tensor:
    return x.repeat(n, *([1] * (x.ndim - 1)))


def _layer_of(name: str) -> int:
    """Layer index of a ``blocks.{L}....`` hook name (0 for names outside the blocks)."""
    if name.startswith("blocks."):
        return int(name.split(".")[1])
    return 0


@torch.no_grad()
def run_variants(
    model,
    base: torch.Tensor,
    variants: Sequence[Sequence[Patch]],
    *,
    record: Sequence[str] = (),
    max_batch: int = 8192,
    skip_unpatched_layers: bool = True,
    progress: bool = False,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
):
    """Run ``base`` once per variant (stacked on the batch dim) with each variant's patches applied.

    Parameters
    ----------
    model : HookedModule
    base : Tensor ``(batch, ...)``
        Base inputs (prompt matrices or tokens).
    variants : list of lists of ``(hook_name, index, values)``
        Patches per variant; ``values`` has the activation's full shape ``(batch, ...)``; patches of one
        hook are applied in list order (so "freeze all, then set one head" works).
    record : names of hook points whose (patched) activations to return, ``(n_variants, batch, ...)``.
    max_batch : int
        Largest number of sequences per forward pass.
    reduce : callable, optional
        Applied to each variant's output ``(batch, ...)`` as soon as its chunk has run (e.g. the metric of a
        patching experiment); only the reduced values are kept, so the outputs of all variants (a language
        model's logits: batch × positions × vocabulary each) are never held at once.
    skip_unpatched_layers : bool
        For models with ``forward_from`` (`spinlens.models.transformer.Transformer`, `spinlens.interp.hf.HookedHF`
        of the Llama and Gemma families): variants whose patches
        and records all sit in layers >= L start from the base run's cached ``blocks.L.hook_resid_pre``
        instead of recomputing the identical layers below L.

    Returns
    -------
    outputs : Tensor ``(n_variants, batch, ...)``, or ``(n_variants, ...)`` of the reduced values
    records : dict name -> Tensor ``(n_variants, batch, ...)``
    """
    B = base.shape[0]
    V = len(variants)
    per = max(1, max_batch // B)
    rec_start = min([_layer_of(n) for n in record], default=10**9)
    starts = []
    for patches in variants:
        st = min([_layer_of(n) for n, _, _ in patches] + [rec_start])
        starts.append(0 if st == 10**9 else st)
    can_skip = skip_unpatched_layers and getattr(model, "supports_forward_from", hasattr(model, "forward_from"))
    if not can_skip:
        starts = [0] * V
    resid_cache = {}
    if can_skip and any(st > 0 for st in starts):
        names = sorted({act_name("resid_pre", st) for st in starts if st > 0})
        _, resid_cache = model.run_with_cache(base, names_filter=names)
    order = sorted(range(V), key=lambda i: starts[i])
    chunks = []
    i = 0
    while i < V:
        st = starts[order[i]]
        j = i
        while j < V and j - i < per and starts[order[j]] == st:
            j += 1
        chunks.append((st, order[i:j]))
        i = j
    outs: list = [None] * V
    recs: dict[str, list] = {n: [None] * V for n in record}
    it = chunks
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(chunks, desc="patching", unit="chunk")
    for st, idxs in it:
        chunk = [variants[i] for i in idxs]
        Vc = len(chunk)
        by_name: dict[str, list] = {}
        for vi, patches in enumerate(chunk):
            for name, idx, vals in patches:
                by_name.setdefault(name, []).append((vi, idx, vals))

        def make_hook(items, Vc=Vc):
            def hook(act, hook):
                a = act.reshape(Vc, B, *act.shape[1:]).clone()
                for vi, idx, vals in items:
                    sl = (slice(None),) + tuple(idx)
                    a[vi][sl] = vals[sl].to(a.dtype)
                return a.reshape(act.shape)

            return hook

        fwd = [(n, make_hook(items)) for n, items in by_name.items()]
        saved = {}

        def saver(act, hook, Vc=Vc):
            saved[hook.name] = act.reshape(Vc, B, *act.shape[1:])

        fwd += [(n, saver) for n in record]
        with model.hooks(fwd):
            if st > 0:
                out = model.forward_from(_repeat(resid_cache[act_name("resid_pre", st)], Vc), st)
            else:
                out = model(_repeat(base, Vc))
        out = out.reshape(Vc, B, *out.shape[1:])
        for k, i in enumerate(idxs):
            outs[i] = out[k] if reduce is None else reduce(out[k]).detach()
            for n in record:
                recs[n][i] = saved[n][k]
    return torch.stack(outs), {n: torch.stack(v) for n, v in recs.items()}


def _variant_means(values: torch.Tensor) -> np.ndarray:
    """The mean over the prompts of each variant's metric (``run_variants(..., reduce=metric)``)."""
    return values.reshape(values.shape[0], -1).double().mean(1).numpy()


@dataclass(frozen=True)
class PatchingResult:
    """Normalised patching scores.

    Attributes
    ----------
    scores : xarray.DataArray
        dims ``(layer, head)``, ``(layer, head, pos)``, ``(layer,)`` or ``(layer, pos)``;
        ``(m_patched - m_base) / (m_source - m_base)``.
    metric_base, metric_source : float
        Mean metric of the unpatched base and source runs.
    component : str
    direction : {"denoise", "noise"}
    n_prompts : int
    """

    scores: xr.DataArray
    metric_base: float
    metric_source: float
    component: str
    direction: str
    n_prompts: int

    def top(self, k: int = 5) -> list[tuple[dict, float]]:
        """The ``k`` entries with the largest |score|: ``[({dim: value}, score), ...]``."""
        s = self.scores
        flat = np.nan_to_num(np.abs(s.values.ravel()), nan=-1.0)
        order = np.argsort(-flat)[:k]
        res = []
        for i in order:
            idx = np.unravel_index(i, s.shape)
            res.append(({d: int(s.coords[d].values[j]) for d, j in zip(s.dims, idx)}, float(s.values[idx])))
        return res


def _base_source(clean, corrupt, direction):
    check_choice("direction", direction, ("denoise", "noise"))
    return (corrupt, clean) if direction == "denoise" else (clean, corrupt)


def _check_pair(clean, corrupt):
    if clean.shape != corrupt.shape:
        raise InvalidParameterError(
            f"The 'corrupt' inputs must have the shape of 'clean' {tuple(clean.shape)}. Got {tuple(corrupt.shape)} instead."
        )


def _ref_metrics(model, metric, base, source):
    with torch.no_grad():
        m_b = float(metric(model(base)).mean())
        m_s = float(metric(model(source)).mean())
    return _check_metrics(m_b, m_s)


def _check_metrics(m_b: float, m_s: float) -> tuple[float, float]:
    if not np.isfinite(m_b) or not np.isfinite(m_s) or abs(m_s - m_b) < 1e-12 * max(1.0, abs(m_s)):
        raise InvalidParameterError(
            "The 'metric' must differ between the clean and corrupted runs to normalise patching scores. "
            f"Got base {m_b!r} and source {m_s!r} instead."
        )
    return m_b, m_s


def activation_patch(
    model,
    clean: torch.Tensor,
    corrupt: torch.Tensor,
    *,
    metric: Callable[[torch.Tensor], torch.Tensor],
    component: str = "z",
    per_position: bool = False,
    direction: str = "denoise",
    max_batch: int = 8192,
    progress: bool = False,
) -> PatchingResult:
    """Patch each head (or layer) — optionally each position — from the source run into the base run.

    Parameters
    ----------
    model : HookedModule
    clean, corrupt : Tensor ``(batch, ...)``
        Paired inputs (prompt matrices or tokens).
    metric : callable
        ``metric(output) -> (batch,)`` (`spinlens.interp.metrics`).
    component : {"z", "q", "k", "v", "result", "pattern", "resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out"}
        Head components give dims ``(layer, head[, pos])``, layer components ``(layer[, pos])``.
    per_position : bool
        Patch each position separately (``pattern``: each query position).
    direction : {"denoise", "noise"}
        denoise: base = corrupt, source = clean (score = recovery); noise: the reverse (score = damage).

    Returns
    -------
    PatchingResult
    """
    import xarray as xr

    check_choice("component", component, tuple(HEAD_COMPONENTS) + tuple(LAYER_COMPONENTS))
    _check_pair(clean, corrupt)
    base, source = _base_source(clean, corrupt, direction)
    m_b, m_s = _ref_metrics(model, metric, base, source)
    cfg = model.cfg
    n_layers = cfg.n_layers
    is_head = component in HEAD_COMPONENTS
    names = [_hook_name(component, L) for L in range(n_layers)]
    with torch.no_grad():
        _, src_cache = model.run_with_cache(source, names_filter=names)
    a0 = src_cache[names[0]]
    n_heads = (a0.shape[1] if component == "pattern" else a0.shape[2]) if is_head else 0
    n_pos = a0.shape[2] if component == "pattern" else a0.shape[1]
    coords = {"layer": np.arange(n_layers)}
    keys = []
    for L in range(n_layers):
        for h in range(n_heads) if is_head else [None]:
            for p in range(n_pos) if per_position else [None]:
                keys.append((L, h, p))
    variants = [[(names[L], _index(component, h, p), src_cache[names[L]])] for L, h, p in keys]
    outs, _ = run_variants(model, base, variants, max_batch=max_batch, progress=progress, reduce=metric)
    scores = (_variant_means(outs) - m_b) / (m_s - m_b)
    dims = ["layer"]
    shape = [n_layers]
    if is_head:
        dims.append("head")
        shape.append(n_heads)
        coords["head"] = np.arange(n_heads)
    if per_position:
        dims.append("pos")
        shape.append(n_pos)
        coords["pos"] = np.arange(n_pos)
    da = xr.DataArray(
        scores.reshape(shape), dims=dims, coords=coords, name="patching_score",
        attrs={"long_name": f"normalised {direction} score ({component})", "component": component},
    )
    return PatchingResult(da, m_b, m_s, component, direction, int(clean.shape[0]))


# ----------------------------------------------------------------------------------------- path patching
def _has_mlp(model) -> bool:
    return f"blocks.0.{LAYER_COMPONENTS['mlp_out']}" in model.hook_points


def _freeze_patches(model, base_cache, sender, src_cache) -> list[Patch]:
    """Step-1 patches: every head's z and MLP output frozen to base, the sender's z from the source."""
    L_s, h_s = sender
    patches = []
    for L in range(L_s, model.cfg.n_layers):
        zn = _hook_name("z", L)
        patches.append((zn, (), base_cache[zn]))
        if L == L_s:
            patches.append((zn, _index("z", h_s, None), src_cache[zn]))
        if _has_mlp(model):
            mn = _hook_name("mlp_out", L)
            patches.append((mn, (), base_cache[mn]))
    return patches


def _kv_head(cfg, h: int, inp: str) -> int:
    """On grouped-query models k/v of query head h live in key/value head h // (n_heads / n_kv_heads)."""
    n_kv = getattr(cfg, "n_kv_heads", cfg.n_heads)
    if inp in ("k", "v") and n_kv < cfg.n_heads:
        return h // (cfg.n_heads // n_kv)
    return h


def path_patch(
    model,
    clean: torch.Tensor,
    corrupt: torch.Tensor,
    *,
    metric: Callable[[torch.Tensor], torch.Tensor],
    receivers="output",
    receiver_input: str = "q",
    senders: Sequence[tuple[int, int]] | None = None,
    direction: str = "denoise",
    max_batch: int = 8192,
) -> PatchingResult:
    """Path-patching score of each sender head through ``receivers`` only (all else frozen).

    Parameters
    ----------
    receivers : "output" or list of ``(layer, head)``
        The read-out (direct effect) or receiver heads (patched together).
    receiver_input : {"q", "k", "v"}
        Which input of the receiver heads the path enters (ignored for ``"output"``). On grouped-query
        (GQA) models the k/v of a query head are those of its key/value head, shared with the other query
        heads of its group: patching them reaches the whole group.
    senders : list of ``(layer, head)`` or None
        Default: every head in a layer below the lowest receiver (all heads for ``"output"``).

    Returns
    -------
    PatchingResult with ``scores`` of dims ``(layer, head)`` over sender heads (NaN where not a sender).
    """
    import xarray as xr

    check_choice("receiver_input", receiver_input, ("q", "k", "v"))
    _check_pair(clean, corrupt)
    base, source = _base_source(clean, corrupt, direction)
    m_b, m_s = _ref_metrics(model, metric, base, source)
    cfg = model.cfg
    nL, nH = cfg.n_layers, cfg.n_heads
    if isinstance(receivers, str):
        if receivers != "output":
            raise InvalidParameterError(f"The 'receivers' parameter must be 'output' or a list of (layer, head). Got {receivers!r} instead.")
        rec_list = None
        top = nL
    else:
        rec_list = [(check_int("receiver layer", L, low=0, high=nL - 1), check_int("receiver head", h, low=0, high=nH - 1)) for L, h in receivers]
        if not rec_list:
            raise InvalidParameterError("The 'receivers' parameter must not be empty.")
        top = min(L for L, _ in rec_list)
    if senders is None:
        senders = [(L, h) for L in range(top) for h in range(nH)]
    senders = [(int(L), int(h)) for L, h in senders]
    for L, h in senders:
        if not (0 <= L < top and 0 <= h < nH):
            raise InvalidParameterError(
                f"Each sender must be a head (layer, head) with layer < {top} (below the receivers) and head < {nH}. Got {(L, h)!r} instead."
            )
    names = [_hook_name("z", L) for L in range(nL)]
    if _has_mlp(model):
        names += [_hook_name("mlp_out", L) for L in range(nL)]
    rec_names = sorted({_hook_name(receiver_input, L) for L, _ in rec_list}) if rec_list else []
    with torch.no_grad():
        _, base_cache = model.run_with_cache(base, names_filter=names + rec_names)
        _, src_cache = model.run_with_cache(source, names_filter=names)
    step1 = [_freeze_patches(model, base_cache, s, src_cache) for s in senders]
    scores = np.full((nL, nH), np.nan)
    if not senders:
        pass
    elif rec_list is None:
        outs, _ = run_variants(model, base, step1, max_batch=max_batch, reduce=metric)
        vals = (_variant_means(outs) - m_b) / (m_s - m_b)
        for (L, h), v in zip(senders, vals):
            scores[L, h] = v
    else:
        _, recs = run_variants(model, base, step1, record=rec_names, max_batch=max_batch, reduce=metric)  # outputs unused
        step2 = []
        for vi in range(len(senders)):
            patches = []
            for L, h in rec_list:
                n = _hook_name(receiver_input, L)
                patches.append((n, _index(receiver_input, _kv_head(cfg, h, receiver_input), None), recs[n][vi]))
            step2.append(patches)
        outs, _ = run_variants(model, base, step2, max_batch=max_batch, reduce=metric)
        vals = (_variant_means(outs) - m_b) / (m_s - m_b)
        for (L, h), v in zip(senders, vals):
            scores[L, h] = v
    da = xr.DataArray(
        scores, dims=("layer", "head"), coords={"layer": np.arange(nL), "head": np.arange(nH)}, name="path_score",
        attrs={"long_name": f"path patching score → {receivers if rec_list is None else rec_list} ({receiver_input})",
               "receivers": str(receivers), "receiver_input": receiver_input},
    )
    return PatchingResult(da, m_b, m_s, f"path:{receiver_input}", direction, int(clean.shape[0]))


def direct_path_patch(
    model,
    clean: torch.Tensor,
    corrupt: torch.Tensor,
    *,
    metric: Callable[[torch.Tensor], torch.Tensor],
    direction: str = "denoise",
) -> PatchingResult:
    """`path_patch` with ``receivers="output"`` computed without patched forward passes (same scores).

    With every other head's ``z`` and every MLP output frozen, the final residual stream of the base run
    changes only by the sender's own output, ``result_S(source) - result_S(base)``; so the patched logits are
    ``unembed(resid_final_base + Δresult_S)`` (on sandwich-norm models, Gemma, Δ of the normed attention
    output with only S changed: `HookedHF.attn_out_from_heads`). One cached run of each input replaces ``n_heads * n_layers``
    patched forwards. Only the last position is unembedded: ``metric`` must read position -1 (as the
    metrics of `spinlens.interp.metrics` do by default). Needs a model with ``unembed`` (`HookedHF`).
    """
    import xarray as xr

    _check_pair(clean, corrupt)
    if not hasattr(model, "unembed"):
        raise InvalidParameterError("direct_path_patch needs a model with 'unembed' (a HookedHF); use path_patch.")
    base, source = _base_source(clean, corrupt, direction)
    nL, nH = model.cfg.n_layers, model.cfg.n_heads
    res_names = [_hook_name("result", L) for L in range(nL)]
    fin = _hook_name("resid_post", nL - 1)
    with torch.no_grad():
        out_b, cb = model.run_with_cache(base, names_filter=res_names + [fin], positions=-1)
        out_s, cs = model.run_with_cache(source, names_filter=res_names, positions=-1)
        m_b, m_s = _check_metrics(float(metric(out_b).mean()), float(metric(out_s).mean()))
        resid = cb[fin][:, -1]  # [b, d]
        scores = np.zeros((nL, nH))
        to_resid = getattr(model, "attn_out_from_heads", lambda L, x: x)
        for L in range(nL):
            rb = cb[res_names[L]][:, -1]  # [b, h, d]
            d = (cs[res_names[L]][:, -1] - rb).transpose(0, 1)  # [h, b, d]
            pre = rb.sum(1)  # [b, d]
            d = to_resid(L, pre[None] + d) - to_resid(L, pre)[None]  # what reaches the residual stream
            lg = model.unembed(resid[None] + d)  # [h, b, vocab]
            scores[L] = [(float(metric(lg[h][:, None]).mean()) - m_b) / (m_s - m_b) for h in range(nH)]
    da = xr.DataArray(
        scores, dims=("layer", "head"), coords={"layer": np.arange(nL), "head": np.arange(nH)}, name="path_score",
        attrs={"long_name": "path patching score → output (direct)", "receivers": "output", "receiver_input": "q"},
    )
    return PatchingResult(da, m_b, m_s, "path:q", direction, int(clean.shape[0]))


@dataclass(frozen=True)
class Circuit:
    """A circuit found by path patching: nodes are heads ``(layer, head)`` (plus ``"output"``).

    Attributes
    ----------
    nodes : tuple of (layer, head)
    edges : tuple of (sender, receiver, receiver_input, score)
        ``receiver`` is ``"output"`` or ``(layer, head)``; ``receiver_input`` is ``"out"``, ``"q"``, ``"k"`` or ``"v"``.
    threshold : float
    """

    nodes: tuple
    edges: tuple
    threshold: float
    n_layers: int = 0
    n_heads: int = 0
    path_scores: dict = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict:
        return {
            "nodes": [list(n) for n in self.nodes],
            "edges": [
                {"sender": list(s), "receiver": r if r == "output" else list(r), "input": i, "score": float(v)}
                for s, r, i, v in self.edges
            ],
            "threshold": self.threshold,
        }


def find_circuit(
    model,
    clean: torch.Tensor,
    corrupt: torch.Tensor,
    *,
    metric: Callable[[torch.Tensor], torch.Tensor],
    threshold: float = 0.1,
    inputs: Sequence[str] = ("q", "k", "v"),
    max_nodes: int = 32,
    direction: str = "denoise",
    max_batch: int = 8192,
    progress: bool = False,
) -> Circuit:
    """Iterate path patching backwards from the output to a circuit of heads.

    Heads whose direct path score to the read-out has ``|score| > threshold`` are the first nodes; then each
    node's ``inputs`` are path-patched from all heads of earlier layers and senders above the threshold are
    added (and expanded in turn), until no new node appears; at most ``max_nodes`` nodes, strongest first.
    """
    queue = []
    edges: list[tuple] = []
    nodes: list = []
    path_scores: dict[tuple, xr.DataArray] = {}
    res = path_patch(model, clean, corrupt, metric=metric, receivers="output", direction=direction, max_batch=max_batch)
    path_scores[("output", "out")] = res.scores
    for (L, h), v in _above(res.scores, threshold):
        if len(nodes) >= max_nodes:
            break
        edges.append(((L, h), "output", "out", v))
        nodes.append((L, h))
        queue.append((L, h))
    it = 0
    while queue and len(nodes) < max_nodes:
        rec = queue.pop(0)
        it += 1
        if rec[0] == 0:
            continue
        for inp in inputs:
            r = path_patch(model, clean, corrupt, metric=metric, receivers=[rec], receiver_input=inp,
                           direction=direction, max_batch=max_batch)
            path_scores[(rec, inp)] = r.scores
            for (L, h), v in _above(r.scores, threshold):
                if (L, h) not in nodes:
                    if len(nodes) >= max_nodes:
                        continue
                    nodes.append((L, h))
                    queue.append((L, h))
                edges.append(((L, h), rec, inp, v))
        if progress:
            print(f"circuit: expanded {rec}, {len(nodes)} nodes, {len(edges)} edges")
    return Circuit(tuple(sorted(nodes)), tuple(edges), float(threshold), model.cfg.n_layers, model.cfg.n_heads, path_scores)


def _above(scores, threshold):
    """``[((layer, head), score), ...]`` with ``|score| > threshold``, largest |score| first."""
    v = scores.values
    out = []
    for L in range(v.shape[0]):
        for h in range(v.shape[1]):
            if np.isfinite(v[L, h]) and abs(v[L, h]) > threshold:
                out.append(((L, h), float(v[L, h])))
    return sorted(out, key=lambda t: -abs(t[1]))


def circuit_faithfulness(
    model,
    clean: torch.Tensor,
    corrupt: torch.Tensor,
    heads: Sequence[tuple[int, int]],
    *,
    metric: Callable[[torch.Tensor], torch.Tensor],
) -> float:
    """Faithfulness of a set of heads: run the clean input with every head *outside* the set given its
    corrupted ``z``; return ``(m_circuit - m_corrupt) / (m_clean - m_corrupt)`` (1: the circuit alone
    carries the clean behaviour, 0: it carries none of it).
    """
    m_b, m_s = _ref_metrics(model, metric, corrupt, clean)
    keep = {(int(L), int(h)) for L, h in heads}
    nL, nH = model.cfg.n_layers, model.cfg.n_heads
    names = [_hook_name("z", L) for L in range(nL)]
    with torch.no_grad():
        _, cc = model.run_with_cache(corrupt, names_filter=names)
    patches = [(names[L], _index("z", h, None), cc[names[L]]) for L in range(nL) for h in range(nH) if (L, h) not in keep]
    outs, _ = run_variants(model, clean, [patches], reduce=metric)
    return float((_variant_means(outs)[0] - m_b) / (m_s - m_b))


def cache_in_batches(model, inputs: torch.Tensor, *, names_filter=None, batch_size: int = 256, device="cpu",
                     positions=None, progress: bool = False):
    """`run_with_cache` over ``inputs`` in batches of ``batch_size`` (memory-bounded streaming); activations are
    moved to ``device`` batch by batch and concatenated. Returns ``(outputs, ActivationCache)``."""
    from spinlens.models.hooks import ActivationCache

    check_int("batch_size", batch_size, low=1)
    outs: list[torch.Tensor] = []
    parts: dict[str, list[torch.Tensor]] = {}
    starts = range(0, inputs.shape[0], batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="caching", unit="batch")
    with torch.no_grad():
        for s in starts:
            out, c = model.run_with_cache(inputs[s : s + batch_size], names_filter=names_filter, device=device,
                                          positions=positions)
            outs.append(out.to(device))
            for k, v in c.items():
                parts.setdefault(k, []).append(v)
    return torch.cat(outs), ActivationCache({k: torch.cat(v) for k, v in parts.items()})
