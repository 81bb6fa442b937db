"""Hugging Face adapters: tiny random GPT-2 and Llama from configs (offline), hook names, parity, patching."""

import numpy as np
import pytest
import torch

pytest.importorskip("transformers", reason="transformers is an optional dependency (extra [hf])")

from spinlens.errors import InvalidParameterError  # noqa: E402
from spinlens.interp import activation_patch, logit_diff_metric, logit_lens, path_patch, token_icl_pairs  # noqa: E402
from spinlens.interp.hf import HookedHF, load_hf, tiny_hf  # noqa: E402

ARCHS = [("gpt2", None), ("llama", 2), ("gemma3", 2)]


@pytest.fixture(scope="module", params=ARCHS, ids=[a for a, _ in ARCHS])
def model(request):
    arch, kv = request.param
    return tiny_hf(arch, n_layers=2, n_heads=4, d_model=32, d_vocab=40, n_kv_heads=kv, rng=0)


def _toks(n=6, t=9, seed=0):
    return torch.randint(0, 40, (n, t), generator=torch.Generator().manual_seed(seed))


def test_parity_and_shapes(model):
    toks = _toks()
    with torch.no_grad():
        ref = model.hf(input_ids=toks).logits
        out, c = model.run_with_cache(toks)
    torch.testing.assert_close(out, ref)
    b, t, H, dh, dm = 6, 9, 4, 8, 32
    kv = model.cfg.n_kv_heads
    assert c["hook_embed"].shape == (b, t, dm)
    assert c["readout.hook_out"].shape == (b, t, 40)
    for L in range(2):
        p = f"blocks.{L}."
        assert c[p + "attn.hook_q"].shape == (b, t, H, dh)
        assert c[p + "attn.hook_k"].shape == (b, t, kv, dh)
        assert c[p + "attn.hook_z"].shape == (b, t, H, dh)
        assert c[p + "attn.hook_pattern"].shape == (b, H, t, t)
        torch.testing.assert_close(c[p + "attn.hook_pattern"].sum(-1), torch.ones(b, H, t))
        assert c[p + "attn.hook_result"].shape == (b, t, H, dm)
        assert c[p + "mlp.hook_post"].shape[:2] == (b, t)
        # residual algebra: pre + attn_out = mid; mid + mlp_out = post; post(L) = pre(L+1)
        torch.testing.assert_close(c[p + "hook_resid_pre"] + c[p + "hook_attn_out"], c[p + "hook_resid_mid"])
        torch.testing.assert_close(c[p + "hook_resid_mid"] + c[p + "hook_mlp_out"], c[p + "hook_resid_post"])
        bias = (model.hf.get_submodule(("transformer.h." if model.cfg.arch == "gpt2" else "model.layers.") + str(L)
                                              + (".attn.c_proj" if model.cfg.arch == "gpt2" else ".self_attn.o_proj"))).bias
        heads = c[p + "attn.hook_result"].sum(2) + (0 if bias is None else bias)
        if model.cfg.arch == "gemma3":  # sandwich norm: the heads' sum is normed before it joins the residual
            heads = model.hf.model.layers[L].post_attention_layernorm(heads)
        torch.testing.assert_close(heads, c[p + "hook_attn_out"])
    torch.testing.assert_close(c["blocks.0.hook_resid_post"], c["blocks.1.hook_resid_pre"])
    torch.testing.assert_close(model.unembed(c["blocks.1.hook_resid_post"]), out)
    # no hooks left behind, and the permanent adapter hooks are pass-through
    torch.testing.assert_close(model(toks), ref)


def test_zero_head_equals_zeroing_weights(model):
    """Zeroing head 2 of layer 1 through hook_z equals zeroing its slice of the output projection."""
    import copy

    toks = _toks(seed=1)
    out = model.run_with_hooks(toks, fwd_hooks=[("blocks.1.attn.hook_z", lambda z, hook: z.index_fill(2, torch.tensor([2]), 0.0))])
    m2 = copy.deepcopy(model.hf)
    sl = slice(2 * 8, 3 * 8)
    with torch.no_grad():
        if model.cfg.arch == "gpt2":
            m2.transformer.h[1].attn.c_proj.weight[sl, :] = 0.0
        else:
            m2.model.layers[1].self_attn.o_proj.weight[:, sl] = 0.0
        ref = m2(input_ids=toks).logits
    torch.testing.assert_close(out, ref)
    # writing a result hook goes through the recomputed projection
    out2 = model.run_with_hooks(toks, fwd_hooks=[("blocks.1.attn.hook_result", lambda r, hook: r.index_fill(2, torch.tensor([2]), 0.0))])
    torch.testing.assert_close(out2, ref)


def test_read_only_hooks_refuse_writes(model):
    with pytest.raises(InvalidParameterError, match="read-only"):
        model.run_with_hooks(_toks(), fwd_hooks=[("blocks.0.attn.hook_pattern", lambda p, hook: p * 0)])


def test_patching_on_hf_matches_hand_patch(model):
    tp = token_icl_pairs(8, n_pairs=3, n_inputs=10, n_labels=6, rng=0)
    met = logit_diff_metric(tp.answer, tp.corrupt_answer)
    res = activation_patch(model, tp.clean, tp.corrupt, metric=met)
    assert res.scores.shape == (2, 4)
    with torch.no_grad():
        _, cc = model.run_with_cache(tp.clean, names_filter="blocks.1.attn.hook_z")

        def hook(z, hook):
            z = z.clone()
            z[:, :, 3] = cc["blocks.1.attn.hook_z"][:, :, 3]
            return z

        m = float(met(model.run_with_hooks(tp.corrupt, fwd_hooks=[("blocks.1.attn.hook_z", hook)])).mean())
    expect = (m - res.metric_base) / (res.metric_source - res.metric_base)
    assert res.scores.values[1, 3] == pytest.approx(expect, rel=1e-6, abs=1e-9)
    # patching the whole final residual stream restores the clean metric exactly
    r2 = activation_patch(model, tp.clean, tp.corrupt, metric=met, component="resid_post")
    assert r2.scores.values[-1] == pytest.approx(1.0, abs=1e-5)
    pp = path_patch(model, tp.clean, tp.corrupt, metric=met, receivers=[(1, 0)], receiver_input="q")
    assert np.all(np.isfinite(pp.scores.values[0])) and np.all(np.isnan(pp.scores.values[1]))
    lens = logit_lens(model, tp.clean, target=tp.answer)
    assert lens.summary["prob"].shape == (5,)


def test_load_hf_roundtrip(tmp_path):
    m = tiny_hf("gpt2", n_layers=1, n_heads=2, d_model=16, d_vocab=30, rng=3)
    m.hf.save_pretrained(tmp_path)
    m2 = load_hf(str(tmp_path))
    toks = torch.randint(0, 30, (2, 5), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(m2(toks), m(toks))
    assert isinstance(m2, HookedHF) and m2.cfg.arch == "gpt2"
    with pytest.raises(InvalidParameterError, match="local directory"):
        load_hf(str(tmp_path / "missing"))
    # deterministic init from rng, global RNG untouched
    state = torch.random.get_rng_state()
    a = tiny_hf("llama", n_layers=1, n_heads=2, d_model=16, d_vocab=30, rng=7)
    b = tiny_hf("llama", n_layers=1, n_heads=2, d_model=16, d_vocab=30, rng=7)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def test_circuit_on_gqa_model():
    from spinlens.interp import find_circuit

    m = tiny_hf("llama", n_layers=2, n_heads=4, d_model=32, d_vocab=40, n_kv_heads=2, rng=1)
    tp = token_icl_pairs(8, n_pairs=3, n_inputs=10, n_labels=6, rng=1)
    met = logit_diff_metric(tp.answer, tp.corrupt_answer)
    s = path_patch(m, tp.clean, tp.corrupt, metric=met, receivers=[(1, 3)], receiver_input="k").scores.values
    assert np.all(np.isfinite(s[0]))
    c = find_circuit(m, tp.clean, tp.corrupt, metric=met, threshold=0.0, max_nodes=3)
    assert len(c.nodes) <= 3
