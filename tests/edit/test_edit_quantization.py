"""Fake quantization and bit allocation."""

import itertools

import numpy as np
import pytest
import torch
import xarray as xr

from spinlens.edit import quantization as Q
from spinlens.edit._data import mse, sample_regression_prompts
from spinlens.errors import InvalidParameterError
from spinlens.models.transformer import Transformer


def _model(seed=0):
    return Transformer(d_in=4, n_layers=2, n_heads=2, d_model=16, d_mlp=32, max_pos=16, rng=seed)


def test_fake_quantize_by_hand():
    w = torch.tensor([[0.0], [1.0], [2.0], [3.0], [10.0], [10.4], [10.6], [11.0]])  # (n_in=8, n_out=1)
    q = Q.fake_quantize(w, 2, group_size=4)  # asymmetric 2 bits: 4 levels on [min, max] of each group
    torch.testing.assert_close(q[:, 0], torch.tensor([0.0, 1.0, 2.0, 3.0, 10.0, 10 + 1 / 3, 10 + 2 / 3, 11.0]))
    qs = Q.fake_quantize(torch.tensor([0.9, -0.2, 0.5, 0.1]), 2, group_size=4, symmetric=True)
    # symmetric 2 bits: levels {-s, 0, s}, s = 0.9
    torch.testing.assert_close(qs, torch.tensor([0.9, 0.0, 0.9, 0.0]))
    # groups run along dim -2: a (4, 2) matrix with group 2 has 4 groups of 2 along rows
    x = torch.arange(8.0).reshape(4, 2)
    torch.testing.assert_close(Q.fake_quantize(x, 1, group_size=2), x)  # two values per group: exact at 1 bit
    with pytest.raises(InvalidParameterError):
        Q.fake_quantize(x, 0)


def test_error_decreases_with_bits_and_16_bit_lossless():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(64, 32, generator=g, dtype=torch.float64)
    errs = [float((Q.fake_quantize(w, b) - w).norm() / w.norm()) for b in (2, 3, 4, 5, 6, 8, 16)]
    assert all(a > b for a, b in zip(errs, errs[1:]))
    assert errs[-1] < 2e-5  # 16 bits: step (max-min)/65535
    # halving per extra bit, roughly
    assert 1.6 < errs[2] / errs[3] < 2.5
    m = _model()
    Z, y, _ = sample_regression_prompts(128, 3, 6, rng=1)
    base = mse(m, Z, y)
    comps = Q.quantization_components(m, "head")
    assert [str(c) for c in comps] == ["L0H0", "L0H1", "L1H0", "L1H1", "L0.mlp", "L1.mlp"]
    q16 = Q.quantize_model(m, {c: 16 for c in comps})
    assert abs(mse(q16, Z, y) - base) < 1e-4 * base
    dev = [abs(mse(Q.quantize_model(m, {c: b for c in comps}), Z, y) - base) for b in (8, 4, 2)]
    assert dev[0] < dev[1] < dev[2]
    # only the selected component changes
    q = Q.quantize_model(m, {"L1H0": 2})
    P0, P1 = dict(m.named_parameters()), dict(q.named_parameters())
    for n in P0:
        if n.startswith("blocks.1.attn.W_"):
            assert torch.equal(P0[n][1], P1[n][1]) and not torch.equal(P0[n][0], P1[n][0])
        else:
            assert torch.equal(P0[n], P1[n]), n
    with pytest.raises(InvalidParameterError):
        Q.quantize_model(m, {"L1H0": 4, "L1.attn": 4})  # overlapping


def _brute(vals, sizes, bits, budget):
    best = np.inf
    for ch in itertools.product(range(len(bits)), repeat=len(sizes)):
        if sum(s * bits[j] for s, j in zip(sizes, ch)) <= budget * sum(sizes) + 1e-9:
            best = min(best, sum(vals[i, j] for i, j in enumerate(ch)))
    return best


@pytest.mark.parametrize("seed", range(6))
def test_allocation_dp_exact_and_budget(seed):
    rng = np.random.default_rng(seed)
    n_c = 5
    bits = [2, 3, 4, 8]
    sizes = rng.choice([64, 128, 256], size=n_c)
    imp = rng.exponential(size=n_c)
    vals = imp[:, None] * np.array([4.0**-b for b in bits])[None] * rng.uniform(0.5, 2, size=(n_c, len(bits)))
    cost = xr.DataArray(vals, dims=("component", "bits"), coords={"component": [f"c{i}" for i in range(n_c)], "bits": bits})
    sz = {f"c{i}": int(s) for i, s in enumerate(sizes)}
    for budget in (2.0, 3.0, 3.4, 4.5):
        dp = Q.allocate_bits(cost, sz, budget, method="dp")
        br = Q.allocate_bits(cost, sz, budget, method="brute")
        gr = Q.allocate_bits(cost, sz, budget, method="greedy")
        np.testing.assert_allclose(dp.predicted_cost, _brute(vals, sizes, bits, budget), rtol=1e-12)
        np.testing.assert_allclose(br.predicted_cost, dp.predicted_cost, rtol=1e-12)
        for a in (dp, br, gr):
            assert a.average_bits <= budget + 1e-9
            np.testing.assert_allclose(a.predicted_cost, sum(vals[i, bits.index(a.bits[f"c{i}"])] for i in range(n_c)))
        assert gr.predicted_cost >= dp.predicted_cost - 1e-12
    with pytest.raises(InvalidParameterError):
        Q.allocate_bits(cost, sz, 1.5)


def test_guided_allocation_prefers_important_components():
    m = _model()
    imp = {"L0H0": 10.0, "L0H1": 0.01, "L1H0": 0.01, "L1H1": 0.01, "L0.mlp": 0.01, "L1.mlp": 0.01}
    cost = Q.importance_cost_table(m, imp, bits=(2, 3, 4, 8))
    sizes = {c: Q.component_size(m, c) for c in imp}
    a = Q.allocate_bits(cost, sizes, 3.0, method="dp")
    assert a.bits["L0H0"] == max(a.bits.values()) and a.average_bits <= 3.0
    u = Q.uniform_allocation(m, 4, group_size=32)
    assert u.average_bits == 4.0 and u.effective_bits() == 5.0
    r = Q.random_allocation(m, 3.4, rng=0)
    assert r.average_bits <= 3.4 + 1e-12
    rel = Q.relative_error_table(m, ["L0H0", "L1.mlp"], bits=(2, 4, 8))
    assert np.all(np.diff(rel.values, axis=1) < 0)


def test_quantization_experiment_granularities():
    from spinlens.edit.experiments import quantization_experiment

    m = Transformer(d_in=4, n_layers=2, n_heads=2, d_model=8, d_mlp=16, max_pos=8, rng=0)
    for gran, n_comp in (("module", 4), ("layer", 2)):
        ds = quantization_experiment(m, budgets=(3.0,), uniform_bits=(4,), bits=(2, 4), group_size=8, n_test=64,
                                     n_random=1, granularity=gran, rng=0)
        assert list(ds["scheme"].values) == ["fp32", "uniform", "guided_attribution", "guided_ablation",
                                             "guided_measured", "random"]
        assert np.all(ds["average_bits"].values[2:] <= 3.0 + 1e-12)
        import json

        assert len(json.loads(str(ds["bits_json"].values[2]))) == n_comp


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_symmetric_per_channel_matches_torch_fake_quantize(bits):
    # independent implementation: torch's per-channel affine fake quantization with zero point 0
    g = torch.Generator().manual_seed(bits)
    w = torch.randn(24, 5, generator=g)  # (n_in, n_out): one group = one output column
    ours = Q.fake_quantize(w, bits, group_size=24, symmetric=True)
    qmax = 2 ** (bits - 1) - 1
    scale = (w.abs().amax(0) / qmax).double()
    ref = torch.fake_quantize_per_channel_affine(w, scale.float(), torch.zeros(5, dtype=torch.int32), 1, -qmax, qmax)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)
