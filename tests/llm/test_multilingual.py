"""Language-specific neurons (spinlens.llm.multilingual): corpus reader, LAPE selection, statistics and
interventions on a tiny random Gemma 3 (fast); the real Gemma 3 270M behind the slow marker."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("transformers", reason="transformers is an optional dependency (extra [llm])")

from spinlens.errors import InvalidParameterError  # noqa: E402
from spinlens.interp.hf import tiny_hf  # noqa: E402
from spinlens.interp.interventions import SetNeurons, steer  # noqa: E402
from spinlens.llm import multilingual as ML  # noqa: E402


def _mo(entries: dict[str, str]) -> bytes:
    """A little-endian GNU .mo catalog written by hand (the format: header, two tables of (length, offset))."""
    keys = sorted(entries)
    ids = [k.encode() for k in keys]
    strs = [entries[k].encode() for k in keys]
    n = len(keys)
    o_orig, o_trans = 28, 28 + 8 * n
    pos = 28 + 16 * n
    table_o, table_t, blob = [], [], b""
    for b in ids:
        table_o.append((len(b), pos + len(blob)))
        blob += b + b"\0"
    for b in strs:
        table_t.append((len(b), pos + len(blob)))
        blob += b + b"\0"
    head = struct.pack("<7I", 0x950412DE, 0, n, o_orig, o_trans, 0, 0)
    return head + b"".join(struct.pack("<2I", *t) for t in table_o) + b"".join(struct.pack("<2I", *t) for t in table_t) + blob


def test_read_mo_plurals_context_and_header():
    data = _mo({"": "Content-Type: text/plain", "Save": "Enregistrer", "one file\0%d files": "un fichier\0%d fichiers",
                "month\x04May": "mai"})
    cat = ML.read_mo(data)
    assert cat == {"Save": "Enregistrer", "one file": "un fichier", "month\x04May": "mai"}
    with pytest.raises(InvalidParameterError, match="GNU .mo"):
        ML.read_mo(b"not a catalog at all, just some bytes")


def test_clean_removes_placeholders_and_tags():
    assert ML._clean("Ensure this value has at most %(limit_value)d characters (it has %(show_value)d).") == \
        "Ensure this value has at most characters (it has )."
    assert ML._clean("Add {name} <b>now</b> %s") == "Add now"
    assert ML._clean("ctx\x04Hello  world") == "Hello world"


def test_read_mo_matches_gettext_on_django():
    django = pytest.importorskip("django", reason="Django ships the corpus (extra [llm])")
    import gettext
    from pathlib import Path

    mo = Path(django.__file__).parent / "conf/locale/fr/LC_MESSAGES/django.mo"
    ref = gettext.GNUTranslations(mo.open("rb"))._catalog  # the standard library's reader, independent of ours
    ours = ML.read_mo(mo.read_bytes())
    single = {k: v for k, v in ref.items() if isinstance(k, str) and k}
    assert len(single) > 100
    for k, v in single.items():
        assert ours[k] == v
    plural_first = {k[0]: v for k, v in ref.items() if isinstance(k, tuple) and k[1] == 0}
    assert plural_first
    for k, v in plural_first.items():
        assert ours[k] == v


def test_django_corpus_is_aligned_and_clean():
    pytest.importorskip("django", reason="Django ships the corpus (extra [llm])")
    c = ML.django_corpus(["en", "fr", "de", "zh"])
    assert len(c) > 250 and c.source["package"] == "Django" and c.source["licence"].startswith("BSD")
    assert all(len(c.texts[x]) == len(c) for x in c.languages)
    assert all("%(" not in t and "{" not in t for x in c.languages for t in c.texts[x])
    assert all(len(t.split()) >= 2 for t in c.texts["en"])
    assert sum(a != b for a, b in zip(c.texts["en"], c.texts["fr"])) == len(c)  # translated, not copied
    fit, held = c.split(0)
    assert len(set(fit) & set(held)) == 0 and len(fit) + len(held) == len(c)
    assert np.array_equal(c.split(0)[1], held) and not np.array_equal(c.split(1)[1], held)
    with pytest.raises(InvalidParameterError, match="'languages'"):
        ML.django_corpus(["en", "xx"])
    with pytest.raises(InvalidParameterError, match="at least 2"):
        ML.django_corpus(["en"])


def test_lape_closed_forms():
    p = np.array([[0.5, 0.9, 0.0], [0.5, 0.0, 0.0], [0.5, 0.0, 0.0], [0.5, 0.0, 0.0]])  # [lang=4, neuron=3]
    H = ML.lape(p)
    np.testing.assert_allclose(H, [np.log(4), 0.0, 0.0])
    q = np.array([0.2, 0.6])
    np.testing.assert_allclose(ML.lape(q[:, None])[0], -(0.25 * np.log(0.25) + 0.75 * np.log(0.75)))


def test_selection_finds_planted_neurons_and_follows_the_quantiles():
    rng = np.random.default_rng(0)
    n_lang, n_layers, d = 4, 3, 200
    p = rng.uniform(0.05, 0.5, size=(n_lang, n_layers, d))
    for (layer, j, k) in [(1, 7, 0), (2, 30, 1), (0, 99, 2), (2, 150, 3)]:
        p[:, layer, j] = 0.001
        p[k, layer, j] = 0.95
    p[:2, 1, 50] = 0.9  # shared by languages 0 and 1: low entropy (log 2), assigned to both
    p[2:, 1, 50] = 0.001
    mask, H, thr = ML.select_language_neurons(p, top_fraction=5 / (n_layers * d))
    assert thr["n_selected"] == 5
    assert thr["filter"] == pytest.approx(np.quantile(p, 0.95)) and thr["bar"] == pytest.approx(np.quantile(p, 0.95))
    for (layer, j, k) in [(1, 7, 0), (2, 30, 1), (0, 99, 2), (2, 150, 3)]:
        assert mask[k, layer, j] and mask[:, layer, j].sum() == 1
    assert mask[0, 1, 50] and mask[1, 1, 50] and not mask[2:, 1, 50].any()
    assert mask.any(0).sum() == 5
    # a neuron of low entropy but low probability everywhere is filtered out
    p2 = p.copy()
    p2[:, 0, 0] = 0.0
    p2[0, 0, 0] = 0.2  # entropy 0, but 0.2 is below the 0.95 quantile
    m2, _, _ = ML.select_language_neurons(p2, top_fraction=5 / (n_layers * d))
    assert not m2[:, 0, 0].any()


def test_random_neurons_like_matches_layer_counts_outside_exclusion():
    mask = np.zeros((3, 50), dtype=bool)
    mask[0, :5] = True
    mask[2, 10:12] = True
    r = ML.random_neurons_like(mask, exclude=mask, seed=1)
    assert r.sum(1).tolist() == [5, 0, 2] and not (r & mask).any()
    assert not np.array_equal(r, ML.random_neurons_like(mask, exclude=mask, seed=2))


def test_language_identifier():
    fit = {"a": ["the cat sat on the mat", "the dog and the cat"], "b": ["le chat est sur le tapis", "le chien et le chat"]}
    lid = ML.LanguageIdentifier().fit(fit)
    assert lid.predict(["the mat and the dog", "le tapis et le chien", "123 !!"]) == ["a", "b", "none"]
    assert lid.accuracy({"a": ["the cat"], "b": ["le chat"]}) == {"a": 1.0, "b": 1.0}


@pytest.fixture(scope="module")
def tiny():
    return tiny_hf("gemma3", n_layers=2, n_heads=4, d_model=32, d_vocab=259, n_kv_heads=2, max_pos=128, rng=0)


def test_token_rows_bos_and_caps(byte_tok):
    rows = ML.token_rows(["abc", "defg", "hi"], byte_tok, n_ctx=4, max_tokens=8, seed=0)
    assert rows.shape == (2, 4) and (rows[:, 0] == 1).all()
    with pytest.raises(InvalidParameterError, match="n_ctx"):
        ML.token_rows(["ab"], byte_tok, n_ctx=64, max_tokens=64)


def test_activation_statistics_equal_a_cached_run(tiny, byte_tok, toy_corpus):
    tok = byte_tok
    c = toy_corpus
    rows = {x: ML.token_rows(c.texts[x], tok, n_ctx=16, max_tokens=64, seed=0) for x in c.languages}
    prob, mpost, n = ML.activation_statistics(tiny, rows, batch_size=3)
    assert prob.shape == (3, 2, tiny.cfg.d_mlp) and n.tolist() == [r[:, 1:].numel() for r in rows.values()]
    for i, x in enumerate(c.languages):
        with torch.no_grad():
            _, cache = tiny.run_with_cache(rows[x])
        for L in range(2):
            pre = cache[f"blocks.{L}.mlp.hook_pre"][:, 1:]
            post = cache[f"blocks.{L}.mlp.hook_post"][:, 1:]
            np.testing.assert_allclose(prob[i, L], (pre > 0).double().mean((0, 1)).numpy(), atol=1e-12)
            np.testing.assert_allclose(mpost[i, L], post.double().mean((0, 1)).numpy(), rtol=1e-5, atol=1e-6)
            # gelu(gate) > 0 exactly where gate > 0: the criterion is the activation function's output
            act = torch.nn.functional.gelu(pre, approximate="tanh")
            assert torch.equal(act > 0, pre > 0)


def test_set_neurons_per_neuron_values_and_nll(tiny):
    toks = torch.randint(3, 259, (2, 10), generator=torch.Generator().manual_seed(0))
    vals = [0.5, -1.25, 2.0]
    seen = {}
    with torch.no_grad(), steer(tiny, [SetNeurons("blocks.1.mlp.hook_post", [3, 7, 11], value=vals)]):
        _, cache = tiny.run_with_cache(toks, names_filter=["blocks.1.mlp.hook_post"])
        seen = cache["blocks.1.mlp.hook_post"][..., [3, 7, 11]]
    assert torch.allclose(seen, torch.tensor(vals).expand_as(seen))
    with pytest.raises(InvalidParameterError, match="one per neuron"):
        SetNeurons("blocks.1.mlp.hook_post", [3, 7], value=[1.0, 2.0, 3.0]).hook_fns()
    # mean_nll against a cross-entropy computed by hand from the plain HF logits
    with torch.no_grad():
        logits = tiny.hf(input_ids=toks).logits[:, :-1]
    lp = torch.log_softmax(logits, -1).gather(-1, toks[:, 1:, None])[..., 0]
    assert ML.mean_nll(tiny, toks, batch_size=1) == pytest.approx(float(-lp.mean()), rel=1e-5)


def test_study_end_to_end_on_tiny_gemma(tiny, byte_tok, toy_corpus):
    res = ML.language_neurons_study(tiny, byte_tok, toy_corpus, n_ctx=16, fit_tokens=64, eval_tokens=32,
                                    n_prompts=2, prompt_tokens=6, n_new=4, top_fraction=0.05, seeds=(0, 1))
    n = 3
    assert res.mask.shape == (n, 2, tiny.cfg.d_mlp) and res.off_loss.shape == (n, n)
    assert res.random_off_loss.shape == (2, n, n) and res.switch_rate.shape == (n, n)
    assert ((0 <= res.switch_rate) & (res.switch_rate <= 1)).all()
    d = res.to_dict()
    json.dumps(d)
    assert set(d["lid_accuracy"]) == {"en", "fr", "de"} and min(d["lid_accuracy"].values()) > 0.9
    # switching off nothing is the baseline; the off matrix is recomputed independently here for one language
    empty = np.zeros_like(res.mask[0])
    base, off = ML.perplexity_matrix(tiny, {"en": ML.token_rows(toy_corpus.texts["en"], byte_tok, n_ctx=16,
                                                                      max_tokens=32, seed=0)}, {"none": empty})
    assert off[0, 0] == pytest.approx(base[0])
    ds = ML.result_dataset(res)
    assert ds["off_loss"].shape == (n, n)
    from spinlens.plotting.checks import assert_figure_ok
    from spinlens.plotting.multilingual import plot_language_neurons

    fig, _ = plot_language_neurons(res)
    assert_figure_ok(fig, "language neurons")


def test_cli_bad_language_is_one_line():
    pytest.importorskip("django", reason="Django ships the corpus (extra [llm])")
    p = subprocess.run([sys.executable, "-m", "spinlens.cli.main", "interp", "languages", "--model", "gemma3-270m",
                        "--languages", "en", "xx"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "'languages'" in p.stderr and len(p.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------------------ real Gemma 3
@pytest.fixture(scope="module")
def gemma():
    from transformers import AutoTokenizer

    from spinlens.interp.hf import load_hf
    from spinlens.models.pretrained import resolve_model

    path = resolve_model("gemma3-270m")
    return load_hf(path), AutoTokenizer.from_pretrained(str(path), local_files_only=True)


@pytest.mark.slow
def test_gemma_language_neurons_are_language_specific(gemma):
    """Switching a language's neurons off costs that language more than the others and than random neurons."""
    pytest.importorskip("django", reason="Django ships the corpus (extra [llm])")
    model, tok = gemma
    corpus = ML.django_corpus(["en", "fr", "ru", "zh"])  # the documented run's settings, its first seed
    res = ML.language_neurons_study(model, tok, corpus, n_ctx=64, fit_tokens=1024, eval_tokens=128, n_prompts=2,
                                    prompt_tokens=8, n_new=4, seeds=(0,), batch_size=4)
    d = res.delta_loss
    assert res.mask.sum() > 0
    assert np.diag(d).mean() > d[~np.eye(4, dtype=bool)].mean()
    assert np.diag(d).mean() > np.diag(res.random_delta_loss[0]).mean()
    assert min(res.lid_accuracy.values()) > 0.9
