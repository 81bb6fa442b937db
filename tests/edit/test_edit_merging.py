"""Merging: identities, hand-computed task arithmetic and TIES, neuron assignment."""

import numpy as np
import pytest
import torch

from spinlens.edit import merging as M
from spinlens.errors import InvalidParameterError
from spinlens.models.transformer import Transformer


def _model(seed):
    return Transformer(d_in=4, n_layers=2, n_heads=2, d_model=8, d_mlp=16, max_pos=16, dtype="float64", rng=seed)


def _perturbed(base, seed, scale=0.1):
    g = torch.Generator().manual_seed(seed)
    out = Transformer(base.cfg)
    out.load_state_dict({k: v + scale * torch.randn(v.shape, generator=g, dtype=v.dtype) for k, v in base.state_dict().items()})
    return out


def test_merging_two_copies_returns_the_model():
    base = _model(0)
    ft = _perturbed(base, 1)
    for method, kw in [("task_arithmetic", {}), ("ties", {"density": 1.0}), ("neuron", {"importances": [np.random.default_rng(0).random((2, 16))] * 2})]:
        merged = M.merge_models(base, [ft, ft], method, **kw)
        for (n, a), (_, b) in zip(merged.state_dict().items(), ft.state_dict().items()):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-15, msg=f"{method} {n}")
    # TIES with trimming keeps only the largest entries of the task vector
    merged = M.ties_merge(base, [ft, ft], density=0.5)
    tau = ft.state_dict()["blocks.0.attn.W_Q"] - base.state_dict()["blocks.0.attn.W_Q"]
    kept = (merged["blocks.0.attn.W_Q"] - base.state_dict()["blocks.0.attn.W_Q"]) != 0
    assert kept.sum() == tau.numel() // 2
    assert tau.abs()[kept].min() >= tau.abs()[~kept].max()


def test_task_arithmetic_and_ties_by_hand():
    base = {"w": torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0])}
    m1 = {"w": torch.tensor([1.0, -2.0, 0.1, 3.0, 1.0])}
    m2 = {"w": torch.tensor([3.0, 1.0, -0.2, -1.0, 1.0])}
    # task arithmetic: base + λ (τ1 + τ2)
    ta = M.task_arithmetic(base, [m1, m2], scale=0.5)["w"]
    torch.testing.assert_close(ta, torch.tensor([2.0, -0.5, -0.05, 1.0, 1.0]))
    ta2 = M.task_arithmetic(base, [m1, m2], scale=[1.0, 0.0])["w"]
    torch.testing.assert_close(ta2, m1["w"])
    # TIES, density 0.6 of 5 entries -> keep 3 per task vector
    # τ1 = [1, -2, .1, 3, 0] -> keep [1, -2, 0, 3, 0] ; τ2 = [3, 1, -.2, -1, 0] -> keep [3, 1, 0, -1, 0]
    # elected sign of sums [4, -1, 0, 2, 0] = [+, -, 0, +, 0]
    # disjoint means: [(1+3)/2, -2, 0, 3, 0]
    ties = M.ties_merge(base, [m1, m2], density=0.6, scale=1.0)["w"]
    torch.testing.assert_close(ties, torch.tensor([2.0, -2.0, 0.0, 3.0, 1.0]))
    ties_half = M.ties_merge(base, [m1, m2], density=0.6, scale=0.5)["w"]
    torch.testing.assert_close(ties_half, torch.tensor([1.0, -1.0, 0.0, 1.5, 1.0]))
    with pytest.raises(InvalidParameterError):
        M.ties_merge(base, [m1], density=0.0)
    with pytest.raises(InvalidParameterError):
        M.task_arithmetic(base, [{"v": torch.zeros(5)}])


def test_neuron_merge_assigns_slices():
    base = _model(0)
    a, b = _perturbed(base, 1), _perturbed(base, 2)
    imp_a = np.zeros((2, 16))
    imp_b = np.zeros((2, 16))
    imp_a[:, :8] = 1.0  # neurons 0..7 serve task a
    imp_b[:, 8:] = 1.0
    merged = M.neuron_merge(base, [a, b], [imp_a, imp_b])
    sa, sb = a.state_dict(), b.state_dict()
    ta = M.task_arithmetic(base, [a, b])
    for L in range(2):
        w = merged[f"blocks.{L}.mlp.W_in"]
        assert torch.equal(w[:, :8], sa[f"blocks.{L}.mlp.W_in"][:, :8])
        assert torch.equal(w[:, 8:], sb[f"blocks.{L}.mlp.W_in"][:, 8:])
        assert torch.equal(merged[f"blocks.{L}.mlp.W_out"][:8], sa[f"blocks.{L}.mlp.W_out"][:8])
        assert torch.equal(merged[f"blocks.{L}.mlp.b_in"][8:], sb[f"blocks.{L}.mlp.b_in"][8:])
        assert torch.equal(merged[f"blocks.{L}.mlp.b_out"], ta[f"blocks.{L}.mlp.b_out"])  # shared: averaged
        assert torch.equal(merged[f"blocks.{L}.attn.W_Q"], ta[f"blocks.{L}.attn.W_Q"])
    assert M.neuron_assignment([imp_a, imp_b])[0].tolist() == [0] * 8 + [1] * 8
