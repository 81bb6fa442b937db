"""Logit lens / read-out lens: decode every intermediate residual stream with the model's final read-out.

Stages are ``embed`` (= ``blocks.0.hook_resid_pre``), then ``L.mid`` (after layer L's attention) and ``L.post``
(after its MLP) for each layer; the last stage equals the model's output. Decoding applies the final
LayerNorm and the read-out (`model.unembed`): the scalar read-out of regression models, the unembedding of
language models (nostalgebraist 2020, "interpreting GPT: the logit lens"). A tuned lens (a learned affine map
per stage before decoding, Belrose et al. 2023) is available through `fit_tuned_lens`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from spinlens.errors import InvalidParameterError
from spinlens.vocabulary import act_name

if TYPE_CHECKING:
    import xarray as xr


def lens_stages(model) -> list[tuple[str, str]]:
    """``[(stage label, hook name), ...]`` of the residual streams decoded by the lens."""
    st = [("embed", "blocks.0.hook_resid_pre")]
    hp = model.hook_points
    for L in range(model.cfg.n_layers):
        if act_name("resid_mid", L) in hp and act_name("mlp_out", L) in hp:
            st.append((f"{L}.mid", act_name("resid_mid", L)))
        st.append((f"{L}.post", act_name("resid_post", L)))
    return st


@dataclass(frozen=True)
class LensResult:
    """Read-out lens of a batch of prompts.

    Attributes
    ----------
    decoded : xarray.DataArray
        Regression: dims ``(stage, prompt)`` — the prediction decoded at each stage.
        Tokens: dims ``(stage, prompt)`` — the probability of the target token (``target`` given) or of
        the final top token.
    summary : xarray.Dataset
        Per stage. Regression: ``mse`` to the target (if given), ``mse_to_final``, ``corr_to_final``.
        Tokens: ``prob``, ``rank`` (mean rank of the target, 0 = top), ``logit``.
    kind : {"regression", "tokens"}
    """

    decoded: xr.DataArray
    summary: xr.Dataset
    kind: str


@torch.no_grad()
def logit_lens(model, inputs: torch.Tensor, *, target: torch.Tensor | None = None, position: int = -1,
               tuned=None) -> LensResult:
    """Decode each stage's residual stream at ``position`` with the final read-out.

    Parameters
    ----------
    model : HookedModule with ``unembed``
    inputs : Tensor
        Prompt matrices ``(batch, D+1, N+1)`` or tokens ``(batch, pos)``.
    target : Tensor ``(batch,)`` or None
        Regression: the true labels; tokens: the correct token ids.
    position : int
        Sequence position to decode (default: the last / query position).
    tuned : TunedLens or None
        Apply the tuned lens' affine map per stage before decoding.
    """
    import xarray as xr

    stages = lens_stages(model)
    names = sorted({n for _, n in stages})
    out, cache = model.run_with_cache(inputs, names_filter=names)
    labels = [s for s, _ in stages]
    res = torch.stack([cache[n][:, position] for _, n in stages])  # [stage, batch, d_model]
    if tuned is not None:
        res = tuned(res)
    B = res.shape[1]
    kind = getattr(model.cfg, "input_kind", "tokens")
    if kind == "regression":
        pred = model.unembed(res)[..., 0].double().cpu().numpy()  # [stage, batch]
        final = pred[-1]
        ds = {
            "mse_to_final": ("stage", ((pred - final) ** 2).mean(1)),
            "corr_to_final": ("stage", np.array([_corr(p, final) for p in pred])),
        }
        if target is not None:
            y = np.asarray(target.detach().cpu(), dtype=np.float64)
            if y.shape != (B,):
                raise InvalidParameterError(f"The 'target' parameter must have shape ({B},). Got {y.shape} instead.")
            ds["mse"] = ("stage", ((pred - y) ** 2).mean(1))
        decoded = xr.DataArray(pred, dims=("stage", "prompt"), coords={"stage": labels}, name="prediction")
    else:
        # one stage at a time: a vocabulary of 50k-260k tokens makes [stage, batch, vocab] in float64 gigabytes
        tgt = (unembed_stage(model, res, -1).argmax(-1) if target is None else target.long()).to(res.device)
        lps, tls, ranks = [], [], []
        for i in range(len(labels)):
            d = unembed_stage(model, res, i)  # [batch, vocab]
            t = d.gather(-1, tgt[:, None])[:, 0]
            lps.append(torch.log_softmax(d.double(), -1).gather(-1, tgt[:, None])[:, 0])
            tls.append(t)
            ranks.append((d > t[:, None]).sum(-1))
            del d
        lp, tl, rank = torch.stack(lps), torch.stack(tls), torch.stack(ranks)
        decoded = xr.DataArray(lp.exp().cpu().numpy(), dims=("stage", "prompt"), coords={"stage": labels}, name="prob")
        ds = {
            "prob": ("stage", lp.exp().mean(1).cpu().numpy()),
            "rank": ("stage", rank.double().mean(1).cpu().numpy()),
            "logit": ("stage", tl.double().mean(1).cpu().numpy()),
        }
    summary = xr.Dataset(ds, coords={"stage": labels})
    return LensResult(decoded, summary, kind)


def unembed_stage(model, res: torch.Tensor, i: int) -> torch.Tensor:
    """The read-out of stage ``i`` of ``res`` ``[stage, batch, d_model]``: ``[batch, n_out]``."""
    return model.unembed(res[i])


def _corr(a, b) -> float:
    sa, sb = a.std(), b.std()
    if sa < 1e-12 or sb < 1e-12:
        return 0.0
    return float(((a - a.mean()) * (b - b.mean())).mean() / (sa * sb))


class TunedLens(torch.nn.Module):
    """One affine map ``d_model -> d_model`` per stage (initialised at the identity), trained so that the
    decoded stage matches the model's final output (`fit_tuned_lens`). ``lens(res)`` maps the residual
    streams ``[stage, batch, d_model]`` stage by stage."""

    def __init__(self, n_stages: int, d_model: int, dtype=torch.float32) -> None:
        super().__init__()
        self.A = torch.nn.Parameter(torch.zeros(n_stages, d_model, d_model, dtype=dtype))
        self.b = torch.nn.Parameter(torch.zeros(n_stages, d_model, dtype=dtype))

    def forward(self, res: torch.Tensor) -> torch.Tensor:  # [stage, batch, d]
        return res + torch.einsum("sbd,sde->sbe", res, self.A) + self.b[:, None]


def fit_tuned_lens(model, inputs: torch.Tensor, *, position: int = -1, steps: int = 200, lr: float = 1e-2) -> TunedLens:
    """Fit a `TunedLens` on ``inputs``: per stage, minimise the squared error (regression) or the KL
    divergence (tokens) between the decoded stage and the final output. The model stays frozen."""
    stages = lens_stages(model)
    with torch.no_grad():
        out, cache = model.run_with_cache(inputs, names_filter=[n for _, n in stages])
        res = torch.stack([cache[n][:, position] for _, n in stages])
        final = model.unembed(res[-1])
    from spinlens.training import fit

    lens = TunedLens(len(stages), res.shape[-1], dtype=res.dtype)
    kind = getattr(model.cfg, "input_kind", "tokens")

    def loss(ln, step):
        dec = model.unembed(ln(res))
        if kind == "regression":
            return ((dec - final) ** 2).mean()
        lp = torch.log_softmax(dec, -1)
        pf = torch.softmax(final, -1)
        return (pf * (torch.log(pf + 1e-12) - lp)).sum(-1).mean()

    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        fit(lens, loss, steps=steps, optimizer="adam", lr=lr, label="tuned lens")
    finally:
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)
    return lens
