"""spinlens.llm.recall (causal tracing), spinlens.llm.icl (function vectors on word tasks), spinlens.llm.facts.

Tiny random Llama models check the machinery against independent computations (a restoration done by hand,
the full forward against the last-token key/value runs); a few prompts check the real SmolLM2.
"""

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from spinlens.errors import InvalidParameterError  # noqa: E402
from spinlens.interp.hf import tiny_hf  # noqa: E402
from spinlens.llm.tasks import TextTask  # noqa: E402
from spinlens.vocabulary import act_name  # noqa: E402

WORDS = ["[UNK]", "The", "capital", "of", "France", "Spain", "New", "Zealand", "is", "Paris", "Madrid", "Wellington",
         "city", "called", "x", "y"]


@pytest.fixture(scope="module")
def tok():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    t = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    t.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=t, unk_token="[UNK]")


@pytest.fixture(scope="module")
def tiny():
    return tiny_hf("llama", n_layers=4, n_heads=4, d_model=32, d_vocab=len(WORDS), n_kv_heads=2, rng=3)


def _task():
    return TextTask("recall", ["The capital of New Zealand is", "The capital of France is"], [" Wellington", " Paris"],
                    meta={"subject": ["New Zealand", "France"]})


# ------------------------------------------------------------------------------------------------ recall
def test_subject_positions(tok):
    from spinlens.llm.recall import subject_positions

    ids, pos = subject_positions(tok, "The capital of New Zealand is", "New Zealand")
    assert ids == [1, 2, 3, 6, 7, 8] and pos == [3, 4]
    with pytest.raises(InvalidParameterError, match="does not occur"):
        subject_positions(tok, "The capital of France is", "Spain")


def test_trace_matches_a_restoration_by_hand(tiny, tok):
    """One batched trace entry (MLP window at one position) equals a single run with hand-written hooks; the
    residual restored at the last layer and position gives back p_clean; zero noise gives no effect."""
    from spinlens.llm.recall import trace_fact

    ids, subj = [1, 2, 3, 6, 7, 8], [3, 4]
    g = torch.Generator().manual_seed(0)
    z = torch.randn((2, 2, 32), generator=g)
    tr = trace_fact(tiny, ids, subj, 11, z, window=2, chunk=7)
    assert tr["positions"] == [3, 4, 5]
    tokens = torch.tensor([ids])
    _, cache = tiny.run_with_cache(tokens, names_filter=lambda n: True)

    def noise(act, hook, s=1):
        act = act.clone()
        act[0, subj] += z[s]
        return act

    def restore(name, p):
        def fn(act, hook):
            act = act.clone()
            act[0, p] = cache[name][0, p]
            return act
        return name, fn

    with torch.no_grad(), tiny.hooks([("hook_embed", noise)]):
        base = torch.softmax(tiny(tokens)[0, -1].double(), -1)[11].item()
    # window 2 centred on layer 2: layers 1 and 2, position 4 (last subject token)
    with torch.no_grad(), tiny.hooks([("hook_embed", noise), restore(act_name("mlp_out", 1), 4),
                                      restore(act_name("mlp_out", 2), 4)]):
        p = torch.softmax(tiny(tokens)[0, -1].double(), -1)[11].item()
    assert tr["p_corrupt"][1] == pytest.approx(base, abs=1e-6)
    assert tr["mlp"][1, 2, 1] == pytest.approx(p - base, abs=1e-6)
    assert tr["resid"][:, 3, -1] == pytest.approx(tr["p_clean"] - tr["p_corrupt"], abs=1e-6)
    zero = trace_fact(tiny, ids, subj, 11, torch.zeros((1, 2, 32)), window=2)
    assert np.abs(zero["attn"]).max() < 1e-6 and zero["p_corrupt"][0] == pytest.approx(zero["p_clean"], abs=1e-6)


def test_causal_trace_categories_and_spread(tiny, tok):
    from spinlens.llm.recall import causal_trace

    ds, per_fact = causal_trace(tiny, tok, _task(), noise=3.0, n_seeds=2, window=2, rng=0)
    assert list(ds.category.values) == ["first subject token", "last subject token", "last token"]
    assert ds["n_facts"].values.tolist() == [1, 2, 2]
    assert ds["mean"].shape == (3, 4, 3) and np.isfinite(ds["sd"].values).all()
    # the category mean is the mean over facts of each fact's (seed-mean) value at that position
    want = np.mean([f["mlp"][:, :, -2].mean(0) for f in per_fact], axis=0)
    assert ds["mean"].sel(kind="mlp", category="last subject token").values == pytest.approx(want, abs=1e-9)


def test_no_known_fact_is_one_line(tiny, tok):
    from spinlens.llm.recall import known_facts, recall_study

    task = _task()
    ok = known_facts(tiny, tok, task)
    wrong = TextTask("recall", task.prompts, [" x", " y"], meta=task.meta)
    if ok.any() or known_facts(tiny, tok, wrong).any():
        pytest.skip("the random tiny model happens to answer")
    with pytest.raises(InvalidParameterError, match="answers none of its 2 prompts"):
        recall_study(tiny, tok, wrong, n_seeds=1)


# ------------------------------------------------------------------------------------------------ icl
def test_last_token_runs_equal_full_forwards(tiny, monkeypatch):
    """The key/value-cached last-token path of the head indirect effect and of the FV evaluation equals full
    forward passes (right-padded prompts of different lengths)."""
    from spinlens.interp import function_vectors as FV

    g = torch.Generator().manual_seed(1)
    clean = torch.randint(1, len(WORDS), (6, 7), generator=g)
    corrupt = torch.randint(1, len(WORDS), (6, 7), generator=g)
    last = torch.tensor([6, 4, 6, 5, 4, 6])
    answer = torch.randint(1, len(WORDS), (6,), generator=g)
    groups = torch.tensor([0, 1, 0, 1, 0, 1])
    fast = FV.token_head_indirect_effect(tiny, clean, corrupt, answer, groups=groups, position=last)
    vec = torch.randn((2, 32), generator=g)
    ev_fast = FV.evaluate_function_vector(tiny, corrupt, answer, vec, layers=[0, 2, 4], groups=groups, position=last)
    monkeypatch.setattr(FV, "_fast", lambda model: False)
    slow = FV.token_head_indirect_effect(tiny, clean, corrupt, answer, groups=groups, position=last)
    ev_slow = FV.evaluate_function_vector(tiny, corrupt, answer, vec, layers=[0, 2, 4], groups=groups, position=last)
    assert np.abs(fast.values).max() > 1e-4
    np.testing.assert_allclose(fast.values, slow.values, atol=1e-6)
    np.testing.assert_allclose(ev_fast["prob"], ev_slow["prob"], atol=1e-6)
    assert ev_fast["base_accuracy"] == ev_slow["base_accuracy"]


def test_word_task_prompts_on_a_hf_tokenizer(tok):
    from spinlens.lm.icl_tasks import WordTask, task_words, text_task_prompts

    task = WordTask("capital", {"France": "Paris", "Spain": "Madrid", "New Zealand": "Wellington"}, "test")
    words = task_words(None, tok, task, n_words=10)
    assert words == ["France", "Spain", "New Zealand"]
    pr = text_task_prompts(2, words, tok, task, n_pairs=1, template=(" {x}", " {y}", " is"), rng=0)
    for text, a, ans in zip(pr.texts["clean"], pr.answer.tolist(), pr.answers):
        assert tok.convert_ids_to_tokens(a) == ans.split()[0]


def test_bad_task_names():
    from spinlens.llm.icl import word_tasks

    with pytest.raises(InvalidParameterError, match="antonyms"):
        word_tasks(None, ["antonyms"])


# ------------------------------------------------------------------------------------------------ facts
def test_country_facts_come_from_the_package():
    pytest.importorskip("countryinfo")
    from spinlens.llm import facts as F

    caps = {f.subject: f.object for f in F.country_facts(("capital",))}
    assert caps["France"] == "Paris" and len(caps) > 200
    cont = {f.subject: f.object for f in F.country_facts(("continent",))}
    assert cont["Brazil"] == "South America" and cont["Mexico"] == "North America" and cont["Japan"] == "Asia"
    assert F.facts_source().startswith("countryinfo ")
    task = F.recall_task([F.Fact("France", "capital", "Paris")])
    assert task.prompts[0] == "The capital of France is" and task.answers == [" Paris"] * 3


# ------------------------------------------------------------------------------------------------ SmolLM2
@pytest.fixture(scope="module")
def smollm2():
    pytest.importorskip("gguf", reason="preparing needs the gguf reader (extra [llm])")
    pytest.importorskip("countryinfo")
    from transformers import AutoTokenizer

    from spinlens.interp.hf import load_hf
    from spinlens.models.pretrained import resolve_model

    folder = resolve_model("smollm2-135m", progress=False)
    return load_hf("smollm2-135m"), AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def test_smollm2_knows_capitals_and_the_trace_runs(smollm2):
    from spinlens.llm import facts as F
    from spinlens.llm.recall import known_facts, recall_study

    model, tok = smollm2
    facts = [f for f in F.country_facts(("capital",)) if f.subject in ("France", "Japan", "Germany")]
    task = F.recall_task(facts, templates={"capital": ("The capital of {} is",)})
    ok = known_facts(model, tok, task)
    assert ok.sum() >= 2
    res = recall_study(model, tok, task, n_facts=1, n_seeds=2, rng=0)
    d = res.to_dict()
    assert d["known"]["n_known"] == int(ok.sum()) and d["window"] == 6
    assert d["p_clean"] > d["p_corrupt"]["mean"]  # the noise removes the fact
    # restoring the whole residual at the last layer and token gives back the clean answer
    last = res.indirect_effect["mean"].sel(kind="resid", category="last token").values[-1]
    assert last == pytest.approx(d["p_clean"] - d["p_corrupt"]["mean"], abs=1e-6)


@pytest.mark.slow
def test_smollm2_fv_heads(smollm2):
    from spinlens.llm.icl import locate_fv_heads

    model, tok = smollm2
    loc = locate_fv_heads(model, tok, ("capital",), top_k=3, n_prompts=8, n_pairs=3, seeds=(0,))
    assert len(loc.heads) == 3 and loc.indirect_effect.shape == (30, 9)
    assert loc.indirect_effect.values[loc.heads[0]] >= loc.indirect_effect.values[loc.heads[-1]]


# ------------------------------------------------------------------------------------------------ editing
def test_edit_reaches_the_new_object_and_restores_the_model(tiny, tok):
    from spinlens.llm.editing import EditCase, editing_study

    prompt = "The capital of France is"
    top = int(tiny(torch.tensor([tok(prompt)["input_ids"]]))[0, -1].argmax())
    true = " " + tok.convert_ids_to_tokens(top)
    new = " Madrid" if true != " Madrid" else " Paris"
    case = EditCase(prompt, true, new, ["The capital city of France is"], [("The capital of Spain is", " x")])
    before = {k: v.clone() for k, v in tiny.hf.state_dict().items()}
    res = editing_study(tiny, tok, [case], layers=[1, 2], other_layers=[3], lr=0.05, full_lr=0.01, max_steps=60)
    s = res.summary
    assert s["located"]["efficacy"]["mean"] == 1.0 and s["located"]["p_new"]["mean"] > 1 / len(WORDS)
    assert s["located"]["n_params"] == 2 * 32 * 64 and s["full"]["n_params"] > s["located"]["n_params"]
    assert all(torch.equal(before[k], v) for k, v in tiny.hf.state_dict().items())  # restored after each edit
    bad = EditCase(prompt, new, true, [], [])
    with pytest.raises(InvalidParameterError, match="does not know this fact"):
        editing_study(tiny, tok, [bad], layers=[1], other_layers=[2])


def test_recall_task_for_the_general_evaluation():
    pytest.importorskip("countryinfo")
    from spinlens.llm.recall import recall_task

    t = recall_task(10, rng=1)
    assert len(t) == 10 and all(p.startswith("The capital of ") for p in t.prompts)
    assert t.source.startswith("countryinfo") and recall_task(10, rng=1).prompts == t.prompts


def test_fv_study_reports_the_best_layer_of_the_zero_shot_gain(monkeypatch):
    """`fv_study` keeps, per task, the layer where the FV's zero-shot gain (mean over seeds) is largest and the
    accuracy and gain there (the real SmolLM2 run crashed here: the per-layer table was overwritten first)."""
    import types

    import xarray as xr

    from spinlens.llm import icl as ICL
    from spinlens.lm import icl_tasks as IT

    seeds, conds, layers, L, H = [0, 1], ["zero_shot", "shuffled"], [0, 1, 2], 3, 2
    gain = np.zeros((2, 2, 3))
    gain[:, 0, :] = [[0.1, 0.5, 0.2], [0.2, 0.3, 0.1]]  # zero-shot: best layer 1 (mean 0.4)
    gain[:, 1, :] = [[0.9, 0.0, 0.0], [0.9, 0.0, 0.0]]  # shuffled: best layer 0, not the one reported
    base = np.full((2, 2), 0.1)
    ds = xr.Dataset(
        {"clean_accuracy": ("seed", [0.5, 0.6]), "clean_logprob": ("seed", [-1.0, -1.1]),
         "majority_accuracy": ("seed", [0.1, 0.1]), "heads": ("rank", ["1.0", "2.1"]),
         "base_accuracy": (("seed", "condition"), base), "base_logprob": (("seed", "condition"), -base),
         "accuracy": (("seed", "condition", "layer"), base[..., None] + gain), "gain": (("seed", "condition", "layer"), gain),
         "logprob_gain": (("seed", "condition", "layer"), gain),
         "indirect_effect": (("seed", "layer", "head"), np.ones((2, L, H)))},  # L = len(layers) here
        coords={"seed": seeds, "condition": conds, "layer": layers},
        attrs={"task": "capital", "n_pairs": 5, "n_words": 20, "example_prompt": "x"})
    monkeypatch.setattr(IT, "text_fv_experiment", lambda *a, **k: (ds, None))
    monkeypatch.setattr(ICL, "word_tasks", lambda tok, tasks: {"capital": types.SimpleNamespace(pairs=[1] * 20,
                                                                                                 source="test")})
    model = types.SimpleNamespace(cfg=types.SimpleNamespace(n_layers=L, n_heads=H))
    res = ICL.fv_study(model, None, ["capital"], top_k=1, fv_heads=1, seeds=seeds)
    s = res.summaries["capital"]
    assert s["best_layer"] == 1
    assert s["zero_shot_fv"]["gain"]["mean"] == pytest.approx(0.4)
