"""Cross-checks of `spinlens.interp` against TransformerLens 4.x and nnsight 0.8 (run only where installed).

Both libraries are optional oracles (extra ``[crosscheck]``; they are *not* in the project venv, see
``docs/interp.md`` § Cross-checks). Each test builds a tiny random HF GPT-2 from a config, saves it to a
temporary folder (TransformerLens only loads offline from a local folder) and compares on the same weights:

(a) cached activations: residual stream before/after every layer, per-head ``z``, q, attention pattern;
(b) activation patching of one head (``z`` from the clean run into the corrupted run): patched logits, and our
    batched `activation_patch` score for that head;
(c) logit lens: every layer's residual decoded with the final LayerNorm + unembedding.

    python -m pytest tests/interp/test_interp_crosscheck.py -q -p no:cacheprovider
"""

import numpy as np
import pytest
import torch

pytest.importorskip("transformers", reason="transformers is an optional dependency (extra [hf])")

from spinlens.interp import activation_patch, logit_diff_metric, logit_lens, token_icl_pairs  # noqa: E402
from spinlens.interp.hf import tiny_hf  # noqa: E402

N_LAYERS, N_HEADS, D_MODEL, D_VOCAB = 2, 4, 32, 40
D_HEAD = D_MODEL // N_HEADS
ATOL = 2e-5  # float32 on identical weights; the two sides differ only in summation order


@pytest.fixture(scope="module")
def ours():
    return tiny_hf("gpt2", n_layers=N_LAYERS, n_heads=N_HEADS, d_model=D_MODEL, d_vocab=D_VOCAB, rng=3)


def _save(model, folder):
    """save_pretrained plus a word-level tokenizer over the vocabulary, so nothing is looked up on the hub."""
    import tokenizers
    import transformers

    model.hf.save_pretrained(folder)
    V = model.hf.config.vocab_size
    tk = tokenizers.Tokenizer(tokenizers.models.WordLevel({f"t{i}": i for i in range(V)}, unk_token="t0"))
    tk.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    transformers.PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="t0", eos_token="t0", unk_token="t0",
                                         pad_token="t0").save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def saved(ours, tmp_path_factory):
    return _save(ours, tmp_path_factory.mktemp("tiny_gpt2"))


@pytest.fixture(scope="module")
def pairs():
    # token ICL prompts (vocab 12 inputs + 6 labels < D_VOCAB) with the queried label swapped
    return token_icl_pairs(16, n_pairs=4, n_inputs=12, n_labels=6, rng=5)


def _fresh_hf(path):
    import transformers

    return transformers.AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager", local_files_only=True).eval()


def _patch_z_hook(z_clean, head):
    def fn(z, hook):
        z = z.clone()
        z[:, :, head] = z_clean[:, :, head]
        return z

    return fn


# ------------------------------------------------------------------------------------------------------
# TransformerLens 4.x (TransformerBridge)


@pytest.fixture(scope="module")
def bridge(saved):
    pytest.importorskip("transformer_lens", reason="TransformerLens is an optional cross-check (extra [crosscheck])")
    from transformer_lens.model_bridge import TransformerBridge

    return TransformerBridge.boot_transformers(str(saved), hf_model=_fresh_hf(saved), device="cpu")


def test_tl_cache_matches(ours, bridge, pairs):
    toks = pairs.clean
    with torch.no_grad():
        lt, ct = bridge.run_with_cache(toks)
        lo, co = ours.run_with_cache(toks)
    torch.testing.assert_close(lo, lt, atol=ATOL, rtol=0)
    # the one shared name with a different meaning: our hook_embed includes the positions (docs/design.md),
    # TransformerLens splits it into hook_embed (tokens) + hook_pos_embed
    torch.testing.assert_close(co["hook_embed"], ct["hook_embed"] + ct["hook_pos_embed"], atol=ATOL, rtol=0)
    assert (co["hook_embed"] - ct["hook_embed"]).abs().max() > 1e-3
    for L in range(N_LAYERS):
        for name in ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_out",
                     "attn.hook_z", "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_pattern",
                     "mlp.hook_pre", "mlp.hook_post"):
            key = f"blocks.{L}.{name}"
            a, b = co[key], ct[key]
            if b.ndim == 3 and a.ndim == 4:  # [b, t, h*dh] on their side
                b = b.reshape(a.shape)
            assert a.shape == b.shape, key
            torch.testing.assert_close(a, b, atol=ATOL, rtol=0, msg=key)


def test_tl_cache_matches_llama_gqa(pairs, tmp_path):
    """Second architecture: Llama with grouped-query attention (4 query heads, 2 key/value heads), RMSNorm, RoPE."""
    pytest.importorskip("transformer_lens", reason="TransformerLens is an optional cross-check (extra [crosscheck])")
    from transformer_lens.model_bridge import TransformerBridge

    m = tiny_hf("llama", n_layers=N_LAYERS, n_heads=N_HEADS, d_model=D_MODEL, d_vocab=D_VOCAB, n_kv_heads=2, rng=4)
    d = _save(m, tmp_path / "tiny_llama")
    br = TransformerBridge.boot_transformers(str(d), hf_model=_fresh_hf(d), device="cpu")
    with torch.no_grad():
        lt, ct = br.run_with_cache(pairs.clean)
        lo, co = m.run_with_cache(pairs.clean)
    torch.testing.assert_close(lo, lt, atol=ATOL, rtol=0)
    assert co["blocks.0.attn.hook_k"].shape[2] == 2
    for L in range(N_LAYERS):
        for name in ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_out",
                     "attn.hook_z", "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_pattern",
                     "mlp.hook_pre", "mlp.hook_post"):
            key = f"blocks.{L}.{name}"
            assert co[key].shape == ct[key].shape, key
            torch.testing.assert_close(co[key], ct[key], atol=ATOL, rtol=0, msg=key)


def test_tl_head_patch_matches(ours, bridge, pairs):
    L, h = 1, 2
    with torch.no_grad():
        _, ct = bridge.run_with_cache(pairs.clean, names_filter=lambda n: n == f"blocks.{L}.attn.hook_z")
        zt = ct[f"blocks.{L}.attn.hook_z"]
        zt = zt.reshape(*zt.shape[:2], N_HEADS, D_HEAD) if zt.ndim == 3 else zt

        def tl_fn(z, hook):
            shp = z.shape
            z = z.reshape(*shp[:2], N_HEADS, D_HEAD).clone()
            z[:, :, h] = zt[:, :, h]
            return z.reshape(shp)

        lt = bridge.run_with_hooks(pairs.corrupt, fwd_hooks=[(f"blocks.{L}.attn.hook_z", tl_fn)])
        _, co = ours.run_with_cache(pairs.clean, names_filter=f"blocks.{L}.attn.hook_z")
        lo = ours.run_with_hooks(pairs.corrupt, fwd_hooks=[(f"blocks.{L}.attn.hook_z", _patch_z_hook(co[f"blocks.{L}.attn.hook_z"], h))])
        l_corrupt = ours(pairs.corrupt)
    assert (lo - l_corrupt).abs().max() > 1e-3  # the patch does something
    torch.testing.assert_close(lo, lt, atol=ATOL, rtol=0)
    # our batched activation_patch score for (L, h) equals the normalised metric of TL's patched run
    met = logit_diff_metric(pairs.answer, pairs.corrupt_answer)
    with torch.no_grad():
        m_c, m_x = met(ours(pairs.clean)).mean(), met(l_corrupt).mean()
    ref = float((met(lt).mean() - m_x) / (m_c - m_x))
    res = activation_patch(ours, pairs.clean, pairs.corrupt, metric=met)
    np.testing.assert_allclose(float(res.scores.sel(layer=L, head=h)), ref, atol=1e-4)


def test_tl_logit_lens_matches(ours, bridge, pairs):
    toks, tgt = pairs.clean, pairs.answer
    with torch.no_grad():
        _, ct = bridge.run_with_cache(toks)
        acc = ct.accumulated_resid(layer=-1, incl_mid=False, apply_ln=False)  # [n_layers+1, b, t, d]
        # their decoding: final LayerNorm (the HF ln_f) then the unembedding, position -1
        dec = bridge.unembed(bridge.ln_final(acc[:, :, -1]))
    assert dec.shape == (N_LAYERS + 1, len(toks), D_VOCAB)
    p_tl = torch.softmax(dec.double(), -1).gather(-1, tgt[None, :, None].expand(N_LAYERS + 1, -1, 1))[..., 0]
    lens = logit_lens(ours, toks, target=tgt)
    post = [s for s in lens.decoded.coords["stage"].values if not s.endswith(".mid")]
    assert post == ["embed"] + [f"{L}.post" for L in range(N_LAYERS)]
    np.testing.assert_allclose(lens.decoded.sel(stage=post).values, p_tl.numpy(), atol=1e-5)


# ------------------------------------------------------------------------------------------------------
# nnsight 0.8 — run in a child process: importing nnsight patches globals (a `.save()` on every object,
# `Tensor.backward`), which must not leak into the rest of the test session.

_NNSIGHT_CHILD = r"""
import sys, torch, transformers
from nnsight import NNsight
folder, inp, out, n_layers, d_head, L_patch, h_patch = sys.argv[1:8]
n_layers, d_head, L_patch, h_patch = int(n_layers), int(d_head), int(L_patch), int(h_patch)
data = torch.load(inp)
hf = transformers.AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager", local_files_only=True).eval()
m = NNsight(hf)
res = {"pre": [], "z": [], "post": [], "lens": []}
with torch.no_grad():
    with m.trace(input_ids=data["clean"]):          # accesses in execution order, into outer lists
        for L in range(n_layers):
            res["pre"].append(m.transformer.h[L].input.save())
            res["z"].append(m.transformer.h[L].attn.c_proj.input.save())
            res["post"].append(m.transformer.h[L].output.save())
        res["logits"] = m.lm_head.output.save()
    with m.trace(input_ids=data["clean"]):          # logit lens: ln_f + lm_head on the input of each layer
        for L in range(n_layers):
            res["lens"].append(m.lm_head(m.transformer.ln_f(m.transformer.h[L].input[:, -1])).save())
        res["lens"].append(m.lm_head.output[:, -1].save())
    sl = slice(h_patch * d_head, (h_patch + 1) * d_head)
    with m.trace(input_ids=data["clean"]):
        zc = m.transformer.h[L_patch].attn.c_proj.input.save()
    with m.trace(input_ids=data["corrupt"]):         # head patch: clean z of one head into the corrupted run
        m.transformer.h[L_patch].attn.c_proj.input[:, :, sl] = zc[:, :, sl]
        res["patched"] = m.lm_head.output.save()
clean = lambda v: (v[0] if isinstance(v, tuple) else v).detach().clone()
torch.save({k: ([clean(x) for x in v] if isinstance(v, list) else clean(v)) for k, v in res.items()}, out)
"""

NN_PATCH = (0, 1)


@pytest.fixture(scope="module")
def nn_results(saved, pairs, tmp_path_factory):
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("nnsight") is None:
        pytest.skip("nnsight is an optional cross-check (extra [crosscheck])")
    d = tmp_path_factory.mktemp("nnsight")
    torch.save({"clean": pairs.clean, "corrupt": pairs.corrupt}, d / "in.pt")
    args = [str(saved), str(d / "in.pt"), str(d / "out.pt"), str(N_LAYERS), str(D_HEAD), *map(str, NN_PATCH)]
    r = subprocess.run([sys.executable, "-c", _NNSIGHT_CHILD, *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return torch.load(d / "out.pt")


def test_nnsight_cache_matches(ours, nn_results, pairs):
    toks = pairs.clean
    with torch.no_grad():
        lo, co = ours.run_with_cache(toks)
    torch.testing.assert_close(lo, nn_results["logits"], atol=ATOL, rtol=0)
    for L in range(N_LAYERS):
        torch.testing.assert_close(co[f"blocks.{L}.hook_resid_pre"], nn_results["pre"][L], atol=ATOL, rtol=0)
        torch.testing.assert_close(co[f"blocks.{L}.hook_resid_post"], nn_results["post"][L], atol=ATOL, rtol=0)
        torch.testing.assert_close(co[f"blocks.{L}.attn.hook_z"], nn_results["z"][L].reshape(*toks.shape, N_HEADS, D_HEAD),
                                   atol=ATOL, rtol=0)


def test_nnsight_head_patch_matches(ours, nn_results, pairs):
    L, h = NN_PATCH
    with torch.no_grad():
        _, co = ours.run_with_cache(pairs.clean, names_filter=f"blocks.{L}.attn.hook_z")
        lo = ours.run_with_hooks(pairs.corrupt, fwd_hooks=[(f"blocks.{L}.attn.hook_z", _patch_z_hook(co[f"blocks.{L}.attn.hook_z"], h))])
        assert (lo - ours(pairs.corrupt)).abs().max() > 1e-3
    torch.testing.assert_close(lo, nn_results["patched"], atol=ATOL, rtol=0)


def test_nnsight_logit_lens_matches(ours, nn_results, pairs):
    toks, tgt = pairs.clean, pairs.answer
    dec = torch.stack(nn_results["lens"]).double()
    p_nn = torch.softmax(dec, -1).gather(-1, tgt[None, :, None].expand(N_LAYERS + 1, -1, 1))[..., 0]
    lens = logit_lens(ours, toks, target=tgt)
    post = ["embed"] + [f"{L}.post" for L in range(N_LAYERS)]
    np.testing.assert_allclose(lens.decoded.sel(stage=post).values, p_nn.numpy(), atol=1e-5)
