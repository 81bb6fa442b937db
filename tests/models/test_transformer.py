"""Tests of spinlens.models.transformer: hook shapes, masking, interventions, init, config validation."""

import math

import pytest
import torch

from spinlens.errors import InvalidParameterError
from spinlens.models.transformer import Transformer, TransformerConfig

B, D, N = 3, 4, 6  # batch, token dim (rows of Z = D+1), context


def _reg(**kw):
    base = dict(n_layers=2, n_heads=2, d_model=8, d_mlp=12, d_in=D + 1, split_qkv_input=True)
    base.update(kw)
    return Transformer(TransformerConfig(**base), rng=0)


def _Z(seed=0, b=B):
    g = torch.Generator().manual_seed(seed)
    Z = torch.randn(b, D + 1, N + 1, generator=g)
    Z[:, -1, -1] = 0.0
    return Z


def test_hook_shapes_regression():
    m = _reg()
    out, cache = m.run_with_cache(_Z())
    assert out.shape == (B,)
    T, h, dh, dm, dmlp = N + 1, 2, 4, 8, 12
    expected = {
        "hook_embed": (B, T, dm),
        "hook_resid_final": (B, T, dm),
        "readout.hook_out": (B, T, 1),
    }
    for L in range(2):
        p = f"blocks.{L}."
        expected.update(
            {
                p + "hook_resid_pre": (B, T, dm),
                p + "attn.hook_q_input": (B, T, h, dm),
                p + "attn.hook_k_input": (B, T, h, dm),
                p + "attn.hook_v_input": (B, T, h, dm),
                p + "attn.hook_q": (B, T, h, dh),
                p + "attn.hook_k": (B, T, h, dh),
                p + "attn.hook_v": (B, T, h, dh),
                p + "attn.hook_attn_scores": (B, h, T, T),
                p + "attn.hook_pattern": (B, h, T, T),
                p + "attn.hook_z": (B, T, h, dh),
                p + "attn.hook_result": (B, T, h, dm),
                p + "hook_attn_out": (B, T, dm),
                p + "hook_resid_mid": (B, T, dm),
                p + "mlp.hook_pre": (B, T, dmlp),
                p + "mlp.hook_post": (B, T, dmlp),
                p + "hook_mlp_out": (B, T, dm),
                p + "hook_resid_post": (B, T, dm),
            }
        )
    assert set(cache) == set(expected)
    for k, shp in expected.items():
        assert tuple(cache[k].shape) == shp, k
    # the read-out at the query is the output
    torch.testing.assert_close(cache["readout.hook_out"][:, -1, 0], out.detach())


def test_hook_shapes_tokens_and_residual_algebra():
    m = Transformer(TransformerConfig(n_layers=2, n_heads=3, d_model=12, input_kind="tokens", d_vocab=7), rng=1)
    toks = torch.randint(0, 7, (2, 5), generator=torch.Generator().manual_seed(0))
    logits, c = m.run_with_cache(toks)
    assert logits.shape == (2, 5, 7)
    assert c["readout.hook_out"].shape == (2, 5, 7)
    for L in range(2):
        p = f"blocks.{L}."
        # attn_out = sum over heads of result + b_O; resid_post = resid_pre + attn_out + mlp_out
        attn = m.blocks[L].attn
        torch.testing.assert_close(c[p + "attn.hook_result"].sum(2) + attn.b_O, c[p + "hook_attn_out"])
        torch.testing.assert_close(
            c[p + "hook_resid_pre"] + c[p + "hook_attn_out"] + c[p + "hook_mlp_out"], c[p + "hook_resid_post"]
        )
        # softmax rows sum to one
        torch.testing.assert_close(c[p + "attn.hook_pattern"].sum(-1), torch.ones(2, 3, 5))
    assert "blocks.0.attn.hook_q_input" not in c  # split off by default
    torch.testing.assert_close(m.unembed(c["blocks.1.hook_resid_post"]), logits.detach())


def test_causal_masking():
    m = _reg()
    _, c = m.run_with_cache(_Z(), names_filter="*hook_pattern")
    pat = c["blocks.0.attn.hook_pattern"]
    upper = torch.ones(N + 1, N + 1, dtype=torch.bool).triu(1)
    assert torch.all(pat[..., upper] == 0)
    # changing a late column does not change earlier positions' read-outs
    Z1, Z2 = _Z(), _Z()
    Z2[:, :, -1] += 5.0
    _, c1 = m.run_with_cache(Z1, names_filter="readout.hook_out")
    _, c2 = m.run_with_cache(Z2, names_filter="readout.hook_out")
    torch.testing.assert_close(c1["readout.hook_out"][:, :-1], c2["readout.hook_out"][:, :-1])
    assert not torch.allclose(c1["readout.hook_out"][:, -1], c2["readout.hook_out"][:, -1])
    # non-causal: the pattern is dense
    mn = _reg(causal=False)
    _, cn = mn.run_with_cache(_Z(), names_filter="*hook_pattern")
    assert torch.all(cn["blocks.0.attn.hook_pattern"] > 0)


def test_linear_attention_matches_formula():
    """Linear attention, one head, no LN/MLP/pos: the query output is (1/(N+1)) sum_k (q.k/sqrt(dh)) v_k W_O."""
    cfg = TransformerConfig(
        n_layers=1, n_heads=1, d_model=5, d_mlp=0, d_in=D + 1, layernorm=False, attention="linear",
        positional="none", causal=True, dtype="float64",
    )
    m = Transformer(cfg, rng=3)
    Z = _Z().double()
    out, c = m.run_with_cache(Z)
    a = m.blocks[0].attn
    X = Z.transpose(1, 2) @ m.W_in + m.b_in  # [b, T, dm]
    q = X @ a.W_Q[0] + a.b_Q[0]
    k = X @ a.W_K[0] + a.b_K[0]
    v = X @ a.W_V[0] + a.b_V[0]
    s = (q[:, -1:, :] @ k.transpose(1, 2)) / math.sqrt(a.W_Q.shape[-1]) / (N + 1)  # [b,1,T]
    attn_q = (s @ v) @ a.W_O[0] + a.b_O
    resid = X[:, -1] + attn_q[:, 0]
    ref = resid @ m.readout.W[:, 0] + m.readout.b[0]
    torch.testing.assert_close(out, ref)
    assert out.dtype == torch.float64


def test_hooks_modify_outputs_and_are_removed():
    m = _reg()
    Z = _Z()
    base = m(Z).detach()

    def zero_head0(z, hook):
        z = z.clone()
        z[:, :, 0] = 0.0
        return z

    patched = m.run_with_hooks(Z, fwd_hooks=[("blocks.1.attn.hook_z", zero_head0)]).detach()
    assert not torch.allclose(patched, base)
    # equivalent: remove head 0's result from the residual stream by hand
    _, c = m.run_with_cache(Z)

    def drop_res0(attn_out, hook):
        return attn_out - c["blocks.1.attn.hook_result"][:, :, 0]

    torch.testing.assert_close(m.run_with_hooks(Z, fwd_hooks=[("blocks.1.hook_attn_out", drop_res0)]).detach(), patched)
    torch.testing.assert_close(m(Z).detach(), base)  # hooks gone after the call

    # split q input: perturbing head 1's q input changes only head 1's q
    def bump(x, hook):
        x = x.clone()
        x[:, :, 1] += torch.linspace(-1.0, 2.0, x.shape[-1])  # not constant: LayerNorm removes constants
        return x

    _, c2 = m.run_with_cache(Z, names_filter="blocks.0.attn.hook_*")
    with m.hooks([("blocks.0.attn.hook_q_input", bump)]):
        _, c3 = m.run_with_cache(Z, names_filter="blocks.0.attn.hook_*")
    torch.testing.assert_close(c3["blocks.0.attn.hook_q"][:, :, 0], c2["blocks.0.attn.hook_q"][:, :, 0])
    assert not torch.allclose(c3["blocks.0.attn.hook_q"][:, :, 1], c2["blocks.0.attn.hook_q"][:, :, 1])
    torch.testing.assert_close(c3["blocks.0.attn.hook_k"], c2["blocks.0.attn.hook_k"])


def test_names_filter_and_split_equivalence():
    m = _reg()
    Z = _Z()
    _, c = m.run_with_cache(Z, names_filter=["blocks.0.*", "hook_embed"])
    assert "hook_embed" in c and all(k.startswith("blocks.0.") or k == "hook_embed" for k in c)
    _, c = m.run_with_cache(Z, names_filter=lambda n: n.endswith("hook_z"))
    assert sorted(c) == ["blocks.0.attn.hook_z", "blocks.1.attn.hook_z"]
    with pytest.raises(KeyError, match="unknown hook name"):
        m.run_with_hooks(Z, fwd_hooks=[("blocks.9.attn.hook_z", lambda a, hook: a)])
    unsplit = m.with_split_qkv_input(False)
    torch.testing.assert_close(unsplit(Z), m(Z))
    assert "blocks.0.attn.hook_q_input" not in unsplit.hook_names()


def test_deterministic_init_and_dtype():
    a, b, c = _reg(), _reg(), Transformer(TransformerConfig(n_layers=2, n_heads=2, d_model=8, d_mlp=12, d_in=D + 1), rng=1)
    for (n1, p1), (_, p2), (_, p3) in zip(a.named_parameters(), b.named_parameters(), c.named_parameters()):
        assert torch.equal(p1, p2), n1
    assert any(not torch.equal(p1, p3) for p1, p3 in zip(a.parameters(), c.parameters()))
    m64 = _reg(dtype="float64")
    assert all(p.dtype == torch.float64 for p in m64.parameters())
    assert m64(_Z()).dtype == torch.float64


def test_bad_config_and_inputs():
    with pytest.raises(InvalidParameterError, match="attention"):
        TransformerConfig(d_in=3, attention="cosine")
    with pytest.raises(InvalidParameterError, match="d_in"):
        TransformerConfig()
    with pytest.raises(InvalidParameterError, match="d_vocab"):
        TransformerConfig(input_kind="tokens")
    with pytest.raises(InvalidParameterError, match="n_heads"):
        TransformerConfig(d_in=3, n_heads=0)
    with pytest.raises(InvalidParameterError, match="divisible"):
        TransformerConfig(d_in=3, d_model=10, n_heads=3)
    m = _reg(max_pos=4)
    with pytest.raises(InvalidParameterError, match="max_pos"):
        m(_Z())
    with pytest.raises(InvalidParameterError, match="'Z'"):
        m(torch.zeros(2, D, 3))


def test_attention_only_and_gradients():
    m = _reg(d_mlp=0, layernorm=False)
    names = m.hook_names()
    assert not any("mlp" in n for n in names)
    loss = m(_Z()).pow(2).mean()
    loss.backward()
    assert all(p.grad is not None for p in m.parameters())


def test_fast_paths_match_explicit_attention():
    """The fused (SDPA, no per-head result) path equals the explicit pattern/result path."""
    for causal in (True, False):
        m = _reg(dtype="float64", causal=causal, split_qkv_input=False)
        Z = _Z().double()
        fast = m(Z)
        slow = m.run_with_hooks(Z, fwd_hooks=[("*hook_pattern", lambda p, hook: None),
                                              ("*hook_result", lambda r, hook: None)])
        torch.testing.assert_close(fast, slow, rtol=1e-12, atol=1e-12)
    # forward_from a cached residual stream reproduces the output
    _, c = m.run_with_cache(Z, names_filter="blocks.1.hook_resid_pre")
    torch.testing.assert_close(m.forward_from(c["blocks.1.hook_resid_pre"], 1), m(Z))


@pytest.mark.parametrize("attention", ["softmax", "linear"])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("extra", [{}, {"d_mlp": 0, "layernorm": False}, {"n_layers": 1, "attn_bias": False},
                                   {"positional": "none", "mlp_bias": False, "n_layers": 3}])
def test_query_only_last_block_equals_full_pass(attention, causal, extra):
    """Without hooks the last block runs at the query only: the same prediction and gradients as the full pass."""
    m = _reg(dtype="float64", causal=causal, attention=attention, split_qkv_input=False, **extra)
    Z = _Z(b=5).double()
    fast = m(Z)
    full = m.run_with_hooks(Z, fwd_hooks=[("hook_resid_final", lambda r, hook: None)])
    torch.testing.assert_close(fast, full, rtol=1e-12, atol=1e-12)
    g_fast = torch.autograd.grad(fast.pow(2).sum(), list(m.parameters()), allow_unused=True)
    full = m.run_with_hooks(Z, fwd_hooks=[("hook_resid_final", lambda r, hook: None)])
    g_full = torch.autograd.grad(full.pow(2).sum(), list(m.parameters()), allow_unused=True)
    for a, b in zip(g_fast, g_full, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    # forward_from a middle layer takes the same path
    if m.cfg.n_layers > 1:
        _, c = m.run_with_cache(Z, names_filter="blocks.1.hook_resid_pre")
        torch.testing.assert_close(m.forward_from(c["blocks.1.hook_resid_pre"], 1), fast, rtol=1e-12, atol=1e-12)


def test_save_load_roundtrip(tmp_path):
    from spinlens.models.checkpoint import load_transformer, save_transformer

    m = _reg()
    save_transformer(m, tmp_path / "m", metadata={"note": "x"})
    m2 = load_transformer(tmp_path / "m")
    torch.testing.assert_close(m2(_Z()), m(_Z()))
    assert m2.cfg == m.cfg
    with pytest.raises(InvalidParameterError, match="checkpoint"):
        load_transformer(tmp_path / "missing")
