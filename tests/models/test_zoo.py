"""Zoo models: shapes, hook names, brute-force forward passes, effective weights, GD step, checkpoints."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from spinlens.bridge import (
    agreement,
    effective_form,
    effective_weights,
    fit_gd_eta,
    gd_optimal_eta,
    gd_step_predict,
    gd_step_weights,
    live_cosine,
)
from spinlens.errors import InvalidParameterError
from spinlens.features import spin_features
from spinlens.limit import expected_error, infinite_diversity_solution
from spinlens.models.checkpoint import load_checkpoint, read_checkpoint_config, save_checkpoint
from spinlens.models.zoo import ARCH_NAMES, LINEAR_ARCHS, ZooConfig, build_model, default_config
from spinlens.prompts import PromptDistribution

D, N = 4, 7
COMMON_HOOKS = [
    "hook_embed",
    "blocks.0.hook_resid_pre",
    "blocks.0.attn.hook_q",
    "blocks.0.attn.hook_k",
    "blocks.0.attn.hook_v",
    "blocks.0.attn.hook_pattern",
    "blocks.0.attn.hook_z",
    "blocks.0.attn.hook_result",
    "blocks.0.hook_attn_out",
    "blocks.0.hook_resid_post",
    "hook_resid_final",
    "readout.hook_out",
]


def _Z(n=3, d=D, n_context=N, seed=0, dtype=torch.float64):
    p = PromptDistribution(d, n_context).sample(n, rng=seed)
    return torch.as_tensor(p.Z, dtype=dtype), p


def _model(arch, dtype="float64", seed=0, **kw):
    return build_model(ZooConfig(arch=arch, d=D, dtype=dtype, **kw), rng=seed)


@pytest.mark.parametrize("arch", ARCH_NAMES)
def test_forward_shape_and_dtype(arch):
    m = _model(arch, dtype="float32")
    Z, _ = _Z(5, dtype=torch.float32)
    out = m(Z)
    assert out.shape == (5,) and out.dtype == torch.float32
    assert torch.all(torch.isfinite(out))
    assert m.config.arch == arch


@pytest.mark.parametrize("arch", ARCH_NAMES)
def test_hook_names_and_shapes(arch):
    m = _model(arch)
    names = m.hook_names()
    for name in COMMON_HOOKS:
        assert name in names, f"{arch} lacks {name}"
    Z, _ = _Z(3)
    out, cache = m.run_with_cache(Z)
    T = N + 1
    cfg = m.config
    H = cfg.n_heads or 1
    d_model = cfg.d_model or D + 1
    assert cache["hook_embed"].shape == (3, T, d_model)
    assert cache["blocks.0.attn.hook_q"].shape[:3] == (3, T, H)
    assert cache["blocks.0.attn.hook_pattern"].shape == (3, H, T, T)
    assert cache["blocks.0.attn.hook_result"].shape == (3, T, H, d_model)
    assert cache["blocks.0.hook_resid_post"].shape == (3, T, d_model)
    assert cache["readout.hook_out"].shape == (3, T, 1)
    torch.testing.assert_close(cache["readout.hook_out"][:, -1, 0], out)
    # the heads' results add up to the attention output
    torch.testing.assert_close(cache["blocks.0.attn.hook_result"].sum(2) + (
        m.blocks[0].attn.b_O if arch == "tf" else 0), cache["blocks.0.hook_attn_out"])
    if arch == "tf":
        assert "blocks.1.mlp.hook_post" in names and "blocks.1.hook_resid_mid" in names


@pytest.mark.parametrize("arch", ["sla", "sla-separate", "fla", "mhla", "sa"])
def test_query_fast_path_equals_full_pass(arch):
    m = _model(arch)
    Z, _ = _Z(6)
    torch.testing.assert_close(m(Z), m.forward_full(Z), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("arch", ["sla", "fla", "mhla"])
def test_hooks_intervene(arch):
    """With a hook active the full pass runs: zeroing the attention pattern leaves ŷ = query label = 0."""
    m = _model(arch)
    Z, _ = _Z(4)
    out = m.run_with_hooks(Z, fwd_hooks=[("blocks.0.attn.hook_pattern", lambda a, hook: torch.zeros_like(a))])
    assert torch.all(out == 0)
    assert not torch.all(m(Z) == 0)


def test_sla_wrapper_matches_core_literal_forward():
    for arch in ("sla", "sla-separate"):
        m = _model(arch)
        Z, _ = _Z(5)
        torch.testing.assert_close(m(Z), m.core(Z), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(m.forward_full(Z), m.core(Z), rtol=1e-12, atol=1e-12)


def _brute_force(m, Z, softmax):
    """Per prompt, per head, in the paper's matrix form (Z columns are tokens), plain numpy loops."""
    a = m.blocks[0].attn
    WQ, WK, WV, WO = (t.detach().numpy() for t in (a.W_Q, a.W_K, a.W_V, a.W_O))
    out = []
    for z in Z.numpy():
        T = z.shape[1]
        f = np.zeros_like(z)
        for h in range(WQ.shape[0]):
            Q, K, V = WQ[h].T @ z, WK[h].T @ z, WV[h].T @ z  # (d_head, T)
            S = K.T @ Q  # S[k, q]
            if softmax:
                S = S / math.sqrt(WQ.shape[2])
                A = np.exp(S - S.max(axis=0, keepdims=True))
                A = A / A.sum(axis=0, keepdims=True)
            else:
                A = S / T
            f += WO[h].T @ V @ A
        out.append((z + f)[-1, -1])
    return np.array(out)


@pytest.mark.parametrize("arch,softmax", [("fla", False), ("mhla", False), ("sa", True)])
def test_attention_against_brute_force(arch, softmax):
    m = _model(arch)
    Z, _ = _Z(4)
    np.testing.assert_allclose(m(Z).detach().numpy(), _brute_force(m, Z, softmax), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("arch", LINEAR_ARCHS)
def test_effective_form_reproduces_predictions(arch):
    m = _model(arch, seed=3)
    Z, p = _Z(20, seed=1)
    form = effective_form(m)
    np.testing.assert_allclose(form.predict(p), m(Z).detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("arch", ["fla", "mhla"])
def test_effective_W_exact_without_value_leak(arch):
    """When the value rows read by the label have no x part, the merged W_eff gives the model's predictions."""
    m = _model(arch, seed=4)
    with torch.no_grad():
        m.blocks[0].attn.W_V[:, :D, :] = 0.0
    Z, p = _Z(20, seed=2)
    form = effective_form(m)
    assert form.leak == pytest.approx(0.0, abs=1e-14)
    np.testing.assert_allclose(spin_features(p).predict(form.W), m(Z).detach().numpy(), rtol=1e-10, atol=1e-12)
    # with the leak, W_eff alone is not exact
    m2 = _model(arch, seed=4)
    assert effective_form(m2).leak > 0.05
    assert not np.allclose(spin_features(p).predict(effective_weights(m2)), m2(Z).detach().numpy())


@pytest.mark.parametrize("arch", ["fla", "mhla"])
def test_effective_W_plus_xx_remainder_is_exact(arch):
    """Model = merged W_eff + the trilinear remainder of the symmetrised x-x block, for any weights."""
    m = _model(arch, seed=5)
    Z, p = _Z(20, seed=3)
    form = effective_form(m)
    rem = form.T_sym.copy()
    rem[D] = 0.0
    rem[:, D] = 0.0
    remainder = dataclasses.replace(form, T=rem).predict(p)
    np.testing.assert_allclose(spin_features(p).predict(form.W) + remainder, m(Z).detach().numpy(),
                               rtol=1e-10, atol=1e-12)


def test_effective_W_exact_through_the_label_row_of_the_key_query_form():
    """A value row with only an x part still gives an exact merged W through B's label row (b = D)."""
    m = _model("fla", seed=6)
    with torch.no_grad():
        a = m.blocks[0].attn
        a.W_V[:, D, :] = 0.0  # value row read by the label: x part only
        a.W_K[:, :D, :] = 0.0  # key-query form B = W_K W_Qᵀ: only its label row b = D is nonzero
    Z, p = _Z(20, seed=4)
    form = effective_form(m)
    assert form.leak == pytest.approx(0.0, abs=1e-14)
    assert np.linalg.norm(form.W[:D, :D]) > 0.1
    np.testing.assert_allclose(spin_features(p).predict(form.W), m(Z).detach().numpy(), rtol=1e-10, atol=1e-12)


def test_effective_W_of_sla_is_W():
    m = _model("sla")
    np.testing.assert_array_equal(effective_weights(m), m.core.W.detach().numpy())
    ms = _model("sla-separate")
    np.testing.assert_allclose(effective_weights(ms), (ms.core.W_q.T @ ms.core.W_k).detach().numpy())
    with pytest.raises(InvalidParameterError):
        effective_form(_model("sa"))


def test_gd_step_closed_form():
    dist = PromptDistribution(5, 20)
    eta = gd_optimal_eta(dist)
    assert eta == pytest.approx(20 / 26)
    W = gd_step_weights(dist)
    # at λ = 0 the optimal GD step is the infinite-diversity solution, error (D+1)/(N+D+1)
    np.testing.assert_allclose(W, infinite_diversity_solution(dist, 0.0), atol=1e-14)
    assert expected_error(W, dist) == pytest.approx(6 / 26, rel=1e-12)
    # the GD predictor and its merged-W representation agree
    p = dist.sample(50, rng=0)
    np.testing.assert_allclose(gd_step_predict(p, 0.3), spin_features(p).predict(gd_step_weights(dist, 0.3)),
                               rtol=1e-12, atol=1e-12)


def test_gd_eta_closed_form_vs_least_squares_with_noise():
    dist = PromptDistribution(4, 12, sigma_x=1.3, sigma_w=0.8, sigma_eps=0.5)
    fit = fit_gd_eta(dist.sample(100_000, rng=1))
    assert fit == pytest.approx(gd_optimal_eta(dist), rel=0.02)
    # and the closed-form η minimises the exact expected error over the GD family
    e = [expected_error(gd_step_weights(dist, gd_optimal_eta(dist) * s), dist) for s in (0.9, 1.0, 1.1)]
    assert e[1] < e[0] and e[1] < e[2]


def test_agreement_and_cosine():
    a = np.array([1.0, 2.0, 3.0])
    assert agreement(a, a) == {"r2": 1.0, "rel_mse": 0.0}
    assert agreement(np.zeros(3), a)["rel_mse"] == pytest.approx(1.0)
    W = np.arange(25.0).reshape(5, 5)
    W2 = W.copy()
    W2[:, -1] = -7  # the dead last column is ignored
    assert live_cosine(W, W2) == pytest.approx(1.0)


@pytest.mark.parametrize("arch", ARCH_NAMES)
def test_checkpoint_round_trip_bit_exact(arch, tmp_path):
    m = build_model(ZooConfig(arch=arch, d=D, n_heads=2 if arch in ("mhla", "tf") else None), rng=7)
    folder = save_checkpoint(m, tmp_path / arch, metadata={"note": "test"})
    m2 = load_checkpoint(folder)
    assert m2.config == m.config
    sd1, sd2 = m.state_dict(), m2.state_dict()
    assert list(sd1) == list(sd2)
    for k in sd1:
        assert torch.equal(sd1[k], sd2[k]), k
    Z, _ = _Z(4, dtype=torch.float32)
    assert torch.equal(m(Z), m2(Z))
    # the .safetensors file alone is enough (config in its metadata), and it is not a pickle
    m3 = load_checkpoint(folder / "model.safetensors")
    assert torch.equal(m(Z), m3(Z))
    raw = (folder / "model.safetensors").read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_len])
    assert json.loads(header["__metadata__"]["spinlens_config"])["arch"] == arch
    assert read_checkpoint_config(folder) == m.config


def test_checkpoint_errors(tmp_path):
    with pytest.raises(InvalidParameterError, match="does not exist"):
        load_checkpoint(tmp_path / "nothing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(InvalidParameterError, match="format 'other'"):
        load_checkpoint(tmp_path / "bad")
    with pytest.raises(InvalidParameterError):
        save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "lin")


def test_config_validation_and_json():
    cfg = default_config("tf", 5)
    assert cfg.d_model == 32 and cfg.n_layers == 2 and cfg.d_mlp == 128
    assert ZooConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(InvalidParameterError, match="'arch'"):
        ZooConfig("gpt", d=3)
    with pytest.raises(InvalidParameterError, match="'d'"):
        ZooConfig("fla", d=0)
    with pytest.raises(InvalidParameterError, match="unknown ZooConfig field"):
        ZooConfig.from_dict({"arch": "fla", "d": 3, "width": 2})
    m = _model("fla")
    with pytest.raises(InvalidParameterError, match="'Z'"):
        m(torch.zeros(2, D, N + 1))
