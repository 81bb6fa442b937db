"""Control at four levels (spinlens.llm.control) on a tiny random Gemma 3: the pieces against hand computations."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("transformers", reason="transformers is an optional dependency (extra [llm])")

from spinlens.errors import InvalidParameterError  # noqa: E402
from spinlens.interp.function_vectors import difference_of_means, mean_activation  # noqa: E402
from spinlens.interp.hf import tiny_hf  # noqa: E402
from spinlens.llm import control as C  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    return tiny_hf("gemma3", n_layers=2, n_heads=4, d_model=32, d_vocab=259, n_kv_heads=2, max_pos=128, rng=1)


def test_mean_activation_on_tokens_batched_and_sliced(tiny):
    toks = torch.randint(3, 259, (5, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        _, cache = tiny.run_with_cache(toks, names_filter=["blocks.1.hook_resid_pre"])
    a = cache["blocks.1.hook_resid_pre"]
    got = mean_activation(tiny, toks, "blocks.1.hook_resid_pre", position=slice(1, None), batch_size=2)
    torch.testing.assert_close(got, a[:, 1:].mean((0, 1)), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(mean_activation(tiny, toks, "blocks.1.hook_resid_pre", position=-1, batch_size=3),
                               a[:, -1].mean(0), rtol=1e-5, atol=1e-6)
    d = difference_of_means(tiny, toks[:2], toks[2:], "blocks.1.hook_resid_pre", position=None, batch_size=1)
    torch.testing.assert_close(d, a[:2].mean((0, 1)) - a[2:].mean((0, 1)), rtol=1e-5, atol=1e-6)


def test_locate_heads_scores_by_hand(tiny):
    tgt = torch.randint(3, 259, (3, 8), generator=torch.Generator().manual_seed(1))
    src = torch.randint(3, 259, (3, 8), generator=torch.Generator().manual_seed(2))
    heads, deltas, scores = C.locate_heads(tiny, tgt, src, k=3, batch_size=2)
    with torch.no_grad():
        _, ct = tiny.run_with_cache(tgt)
        _, cs = tiny.run_with_cache(src)
    for L in range(2):
        dz = ct[f"blocks.{L}.attn.hook_z"][:, 1:].mean((0, 1)) - cs[f"blocks.{L}.attn.hook_z"][:, 1:].mean((0, 1))
        W = tiny.W_O(L).detach()
        for h in range(4):
            assert scores[L, h] == pytest.approx(float((dz[h] @ W[h]).norm()), rel=1e-4)
    flat = np.argsort(-scores.ravel())[:3]
    assert heads == [(int(i // 4), int(i % 4)) for i in flat]
    assert set(deltas) == set(heads)


def test_equal_effect_cost_interpolates_and_says_unreached():
    st = np.array([1.0, 2.0, 4.0])
    eff = np.array([[0.0, 0.4, 0.8], [0.6, 0.9, 1.0], [0.0, 0.1, 0.2]])
    cost = np.array([[0.1, 0.2, 0.6], [0.05, 0.1, 0.3], [0.1, 0.1, 0.1]])
    r = C.equal_effect_cost(st, eff, cost, 0.5)
    assert r["values"][0] == pytest.approx(0.2 + 0.4 * 0.1 / 0.4) and r["values"][1] == pytest.approx(0.05)
    assert np.isnan(r["values"][2]) and r["reached"] == 2
    assert r["mean"] == pytest.approx(np.mean([0.3, 0.05]))


def test_prefixed_nll_scores_only_the_row(tiny):
    rows = torch.randint(3, 259, (2, 7), generator=torch.Generator().manual_seed(3))
    rows[:, 0] = 1
    prefix = [10, 11, 12]
    x = C._with_prefix(rows, prefix)
    assert x.shape == (2, 10) and x[:, 1:4].tolist() == [prefix, prefix] and torch.equal(x[:, 4:], rows[:, 1:])
    with torch.no_grad():
        lp = torch.log_softmax(tiny.hf(input_ids=x).logits, -1)
    ref = -lp[:, 3:-1].gather(-1, x[:, 4:, None]).mean()
    assert C._prefixed_nll(tiny, rows, prefix, batch_size=1) == pytest.approx(float(ref), rel=1e-5)


def test_language_control_study_on_tiny_gemma(tiny, byte_tok, toy_corpus):
    res = C.language_control_study(tiny, byte_tok, toy_corpus, source="en", target="fr", n_heads=2,
                                   alphas=(1, 4), head_alphas=(1, 4), neuron_scales=(1,), prefix_messages=(1, 2),
                                   n_ctx=16, fit_tokens=64, eval_tokens=32, n_prompts=2, prompt_tokens=6, n_new=3,
                                   seeds=(0, 1))
    d = res.to_dict()
    json.dumps(d)
    assert set(d["methods"]) == {"prefix", "residual", "neurons", "random_neurons", "heads"}
    assert {m["level"] for m in d["methods"].values()} == {"token", "activation", "neuron", "module"}
    assert d["methods"]["residual"]["units"] == 32 and d["methods"]["heads"]["units"] == 2 * 8
    st, eff, cost = res.table("residual")
    assert st.tolist() == [1.0, 4.0] and eff.shape == (2, 2) and np.isfinite(cost).all()
    assert len(res.heads) == 2 and len(res.base) == 2
    with pytest.raises(InvalidParameterError, match="'target'"):
        C.language_control_study(tiny, byte_tok, toy_corpus, source="en", target="en")
    with pytest.raises(InvalidParameterError, match="'source'"):
        C.language_control_study(tiny, byte_tok, toy_corpus, source="xx", target="en")


def test_plot_language_control(tiny, byte_tok, toy_corpus):
    from spinlens.plotting.checks import assert_figure_ok
    from spinlens.plotting.multilingual import plot_language_control

    res = C.language_control_study(tiny, byte_tok, toy_corpus, n_heads=1, alphas=(1,), head_alphas=(1,),
                                   neuron_scales=(1,), prefix_messages=(1,), n_ctx=16, fit_tokens=32, eval_tokens=16,
                                   n_prompts=1, prompt_tokens=4, n_new=2, seeds=(0, 1))
    fig, _ = plot_language_control(res)
    assert_figure_ok(fig, "language control")


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """A tiny random Gemma 3 with the real Gemma tokenizer (262k vocabulary), saved as an HF folder."""
    import shutil

    from spinlens.models import pretrained as P

    if not P.model_status("gemma3-270m").prepared:
        pytest.skip("gemma3-270m is not prepared (spinlens models prepare gemma3-270m)")
    src = P.resolve_model("gemma3-270m", auto_prepare=False)
    m = tiny_hf("gemma3", n_layers=2, n_heads=2, d_model=16, d_vocab=262_144, n_kv_heads=1, max_pos=128, rng=0)
    m.hf.config.bos_token_id, m.hf.config.eos_token_id, m.hf.config.pad_token_id = 2, 1, 0
    out = tmp_path_factory.mktemp("tinygemma")
    m.hf.save_pretrained(out)
    for f in src.iterdir():
        if f.name.startswith("tokenizer") or f.name == "special_tokens_map.json":
            shutil.copy(f, out / f.name)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("cmd", ["languages", "control"])
def test_cli_runs_end_to_end_on_a_tiny_model(tiny_folder, tmp_path, cmd):
    pytest.importorskip("django", reason="Django ships the corpus (extra [llm])")
    import subprocess
    import sys

    args = [sys.executable, "-m", "spinlens.cli.main", "interp", cmd, "--model", str(tiny_folder), "--languages", "en",
            "fr", "de", "--n-ctx", "16", "--fit-tokens", "32", "--eval-tokens", "16", "--n-prompts", "2",
            "--prompt-tokens", "4", "--new-tokens", "2", "--n-seeds", "2", "--out", str(tmp_path), "--json"]
    if cmd == "control":
        args += ["--alphas", "1", "--head-alphas", "1", "--neuron-scales", "1", "--prefix-messages", "1", "--n-heads", "1"]
    p = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    d = json.loads(p.stdout)
    stem = "language_neurons" if cmd == "languages" else "language_control"
    for ext in ("png", "pdf"):
        assert (tmp_path / f"{stem}.{ext}").exists()
    assert (tmp_path / "run.json").exists() and (tmp_path / "result.json").exists()
    if cmd == "languages":
        assert (tmp_path / "language_neurons.nc").exists() and d["corpus"]["package"] == "Django"
    else:
        assert (tmp_path / "language_control.csv").exists() and set(d["methods"]) >= {"prefix", "residual", "heads"}
