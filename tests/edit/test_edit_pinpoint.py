"""Pinpoint tuning: bit-exact freezing outside the mask, importance, deltas."""

import numpy as np
import pytest
import torch

from spinlens.edit import components as C
from spinlens.edit._data import mse, sample_regression_prompts
from spinlens.edit.pinpoint import apply_delta, attribution_importance, load_delta, pinpoint_tune, save_delta
from spinlens.errors import InvalidParameterError
from spinlens.models.transformer import Transformer


def _model(seed=0, **kw):
    cfg = dict(d_in=4, n_layers=2, n_heads=2, d_model=8, d_mlp=16, max_pos=16, rng=seed)
    cfg.update(kw)
    return Transformer(**cfg)


def _data(n=64, seed=0, **kw):
    Z, y, _ = sample_regression_prompts(n, 3, 6, rng=seed, **kw)
    return Z, y


def test_components_and_masks():
    m = _model()
    assert [str(c) for c in C.list_components(m, "head")] == ["L0H0", "L0H1", "L1H0", "L1H1"]
    assert C.Component.parse("L1N7") == C.Component("neuron", 1, 7)
    assert str(C.Component.parse("L0.mlp")) == "L0.mlp"
    with pytest.raises(InvalidParameterError):
        C.Component.parse("head3")
    masks = C.component_masks(m, ["L1H0", "L0N3"])
    assert masks["blocks.1.attn.W_Q"][0].all() and not masks["blocks.1.attn.W_Q"][1].any()
    assert masks["blocks.1.attn.W_O"][0].all() and not masks["blocks.1.attn.W_O"][1].any()
    assert masks["blocks.0.mlp.W_in"][:, 3].all() and int(masks["blocks.0.mlp.W_in"].sum()) == 8
    assert masks["blocks.0.mlp.W_out"][3].all() and int(masks["blocks.0.mlp.W_out"].sum()) == 8
    assert "blocks.0.attn.W_Q" not in masks
    # a head has 4 matrices (8×4) + 3 biases (4) ; a neuron has 8 + 8 + 1
    assert C.component_size(m, "L0H0", weights_only=False) == 4 * 32 + 3 * 4
    assert C.component_size(m, "L0N0", weights_only=False) == 17
    with pytest.raises(InvalidParameterError):
        C.component_slices(m, "L5H0")
    with pytest.raises(InvalidParameterError, match="head must be in"):  # a head built without its index
        C.component_slices(m, C.Component("head", 0))


def test_pinpoint_touches_nothing_outside_mask_bit_for_bit():
    m = _model()
    Z, y = _data(seed=1, corr=0.5)
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    res = pinpoint_tune(m, ["L1H0", "L0N3"], Z, y, lr=1e-2, steps=30, batch_size=16, weight_decay=0.1, rng=0)
    after = dict(res.model.named_parameters())
    changed_inside = 0
    for n, p0 in before.items():
        mask = res.masks.get(n, torch.zeros_like(p0, dtype=torch.bool))
        p1 = after[n].detach()
        # outside the mask: identical bits
        assert torch.equal(p1[~mask], p0[~mask]), n
        changed_inside += int((p1[mask] != p0[mask]).sum())
    assert changed_inside > 0.9 * res.n_trainable  # training did move the selected slices
    # the input model is not modified
    for n, p in m.named_parameters():
        assert torch.equal(p.detach(), before[n])
    assert res.n_trainable == 4 * 32 + 3 * 4 + 17


def test_adamw_would_break_the_mask():
    # the check above can fail: plain AdamW with masked gradients still decays frozen weights
    m = _model()
    Z, y = _data(seed=1)
    masks = C.component_masks(m, ["L1H0"])
    w0 = m.blocks[0].attn.W_Q.detach().clone()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.1)
    loss = torch.mean((m(torch.as_tensor(Z, dtype=torch.float32)) - torch.as_tensor(y, dtype=torch.float32)) ** 2)
    loss.backward()
    for n, p in m.named_parameters():
        p.grad.mul_(masks[n].float() if n in masks else 0.0)
    opt.step()
    assert not torch.equal(m.blocks[0].attn.W_Q.detach(), w0)


def test_pinpoint_improves_target_and_full_changes_everything():
    m = _model(seed=2)
    Z, y = _data(256, seed=3, corr=0.6)
    res = pinpoint_tune(m, ["L0H0", "L0H1", "L1H0", "L1H1"], Z, y, lr=1e-2, steps=60, batch_size=64, rng=0)
    assert mse(res.model, Z, y) < mse(m, Z, y)
    full = pinpoint_tune(m, "all", Z, y, lr=1e-2, steps=5, rng=0)
    assert full.n_trainable == sum(p.numel() for p in m.parameters())


def test_attribution_importance_planted():
    # zero the output weights of head L1H1 and of neuron L0N2: their gradient×activation is exactly 0
    m = _model(seed=4, dtype="float64")
    with torch.no_grad():
        m.blocks[1].attn.W_O[1].zero_()
        m.blocks[0].mlp.W_out[2].zero_()
    Z, y = _data(32, seed=5)
    imp = attribution_importance(m, Z, y, kind="head")
    assert imp.dims == ("layer", "head") and imp.sel(layer=1, head=1).item() == 0.0
    assert imp.sel(layer=1, head=0).item() > 0
    impn = attribution_importance(m, Z, y, kind="neuron")
    assert impn.dims == ("layer", "neuron") and impn.sel(layer=0, neuron=2).item() == 0.0
    # first-order check against finite differences: scaling a last-layer head output by (1-ε)
    from spinlens.interp.steering import Scale, run_steered

    Zt, yt = torch.as_tensor(Z), torch.as_tensor(y)
    eps = 1e-6
    base = float(((run_steered(m, Zt) - yt) ** 2).sum())
    pert = float(((run_steered(m, Zt, [Scale("blocks.1.attn.hook_result", 1 - eps, head=0)]) - yt) ** 2).sum())
    signed = attribution_importance(m, Z, y, kind="head", absolute=False)
    np.testing.assert_allclose((pert - base) / eps / len(y), signed.sel(layer=1, head=0).item(), rtol=1e-4)
    top = C.select_components(imp, 2)
    assert C.Component("head", 1, 1) not in top and len(top) == 2
    assert C.select_components({"L0H0": 3.0, "L0H1": -5.0}, 1) == [C.Component("head", 0, 1)]


def test_delta_roundtrip(tmp_path):
    m = _model()
    Z, y = _data(seed=1)
    res = pinpoint_tune(m, ["L1H1"], Z, y, lr=1e-2, steps=10, rng=0)
    n = save_delta(tmp_path / "d.safetensors", m, res.model, metadata={"components": res.components})
    assert n <= res.n_trainable
    d = load_delta(tmp_path / "d.safetensors")
    assert set(d) <= set(res.masks)
    rebuilt = apply_delta(m, tmp_path / "d.safetensors")
    for (n1, p1), (_, p2) in zip(rebuilt.named_parameters(), res.model.named_parameters()):
        assert torch.equal(p1, p2), n1
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in res.model.state_dict().items()}, str(tmp_path / "full.safetensors"))
    assert (tmp_path / "d.safetensors").stat().st_size < 0.5 * (tmp_path / "full.safetensors").stat().st_size
