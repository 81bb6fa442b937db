"""Natural-language in-context tasks for a trained LM, function vectors on them (checked against hand-made hooks on
unpadded prompts), the `interp fv --checkpoint LMDIR --task` CLI, and neuron-level steering with its random control."""

import json
import re

import numpy as np
import pytest
import torch

from spinlens.cli.main import main
from spinlens.errors import InvalidParameterError
from spinlens.interp import function_vectors as FV
from spinlens.lm import icl_tasks as IT
from spinlens.lm.corpus import pydoc_topics
from spinlens.lm.train import LMConfig, load_lm, train_lm

pytestmark = pytest.mark.usefixtures("audit_figures")

TINY = dict(n_layers=2, n_heads=2, d_model=16, n_ctx=48, vocab_size=512, steps=4, batch_size=4, eval_every=4,
            n_checkpoints=0, warmup=1)


@pytest.fixture(scope="module")
def text():
    return pydoc_topics()[:60_000]


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory, text):
    out = tmp_path_factory.mktemp("lmfv") / "run"
    train_lm(text, LMConfig(**TINY), out=out, corpus_name="pydoc-topics[:60000]")
    return out


@pytest.fixture(scope="module")
def loaded(tiny_lm):
    return load_lm(tiny_lm)


def test_task_pairs_and_words(loaded, text):
    _, tok, _ = loaded
    assert IT.task_pair("copy", "file") == ("file", "file")
    assert IT.task_pair("capitalise", "file") == ("file", "File")
    assert IT.task_pair("lowercase", "file") == ("File", "file")
    with pytest.raises(InvalidParameterError, match="task"):
        IT.task_pair("reverse", "file")
    for task in IT.TEXT_TASKS:
        w = IT.task_words(text, tok, task, n_words=40, max_tokens=3)
        assert 10 <= len(w) <= 40 and len(set(w)) == len(w)
        counts = [len(re.findall(rf"(?<![A-Za-z0-9_]){x}(?![A-Za-z0-9_])", text)) for x in w]
        assert counts == sorted(counts, reverse=True) and min(counts) > 0  # most frequent first, all in the text
        for x in w:
            assert re.fullmatch(r"[a-z]{3,}", x)
            a, y = IT.task_pair(task, x)
            ty = tok.encode(" " + y).ids
            assert len(ty) <= 3 and y[0] in tok.decode(ty[:1])  # the scored token carries the first letter


@pytest.mark.parametrize("task", list(IT.TEXT_TASKS))
def test_prompts_correct_by_construction(loaded, text, task):
    _, tok, _ = loaded
    words = IT.task_words(text, tok, task, n_words=30)
    K = 3
    p = IT.text_task_prompts(20, words, tok, task, n_pairs=K, rng=1)
    for i in range(20):
        lines = {}
        for c in ("clean", "shuffled", "zero_shot"):
            ids = getattr(p, c)[i, : int(p.last[c][i]) + 1].tolist()
            assert tok.decode(ids) == p.texts[c][i]  # the tokens are the text
            assert ids == tok.encode(p.texts[c][i]).ids  # tokenized as one string
            # independent answer token: the first token after the prompt in the encoding of prompt + answer
            assert tok.encode(p.texts[c][i] + p.answers[i]).ids[len(ids)] == int(p.answer[i])
            lines[c] = p.texts[c][i].split("\n")
        demos = [ln.split(": ") for ln in lines["clean"][:K]]
        assert all(IT.task_pair(task, x.strip().lower())[1] == y for x, y in demos)  # demos follow the task
        query = lines["clean"][K].strip().rstrip(":")
        assert query == IT.task_pair(task, p.words[i])[0] and p.answers[i] == " " + IT.task_pair(task, p.words[i])[1]
        assert query not in [x.strip() for x, _ in demos]  # the query is new
        assert lines["zero_shot"] == [lines["clean"][K]]
        sh = [ln.split(": ") for ln in lines["shuffled"][:K]]
        assert [x for x, _ in sh] == [x for x, _ in demos]
        assert [y for _, y in sh] == [y for _, y in demos][1:] + [demos[0][1]]  # answers shifted by one
    with pytest.raises(InvalidParameterError, match="n_pairs"):
        IT.text_task_prompts(4, words, tok, task, n_pairs=12, max_len=48)
    with pytest.raises(InvalidParameterError, match="n_pairs"):
        IT.text_task_prompts(4, words[:3], tok, task, n_pairs=3)  # 3 words: at most 2 demonstrations + the query


def test_padded_prompts_read_at_their_last_token(loaded, text):
    model, tok, _ = loaded
    p = IT.text_task_prompts(6, IT.task_words(text, tok, "capitalise", n_words=30), tok, "capitalise", n_pairs=3, rng=2)
    with torch.no_grad():
        batch = model(p.clean)[torch.arange(6), p.last["clean"]]
        for i in range(6):
            single = model(p.clean[i : i + 1, : int(p.last["clean"][i]) + 1])[0, -1]
            torch.testing.assert_close(batch[i], single, rtol=1e-5, atol=1e-5)


def test_fv_pipeline_equals_manual_hooks(loaded, text):
    """Indirect effect of one head, the FV and the FV-added accuracy / log-prob recomputed prompt by prompt,
    unpadded, with hand-written hooks."""
    model, tok, _ = loaded
    words = IT.task_words(text, tok, "capitalise", n_words=40)
    fit = IT.text_task_prompts(12, words[:20], tok, "capitalise", n_pairs=3, rng=3)
    ev = IT.text_task_prompts(12, words[20:], tok, "capitalise", n_pairs=3, rng=4)
    with torch.no_grad():
        res = FV.function_vector_on_prompts(model, fit, ev, top_k=2, strength=3.0)

    def unpadded(p, c, i):
        return getattr(p, c)[i : i + 1, : int(p.last[c][i]) + 1]

    with torch.no_grad():
        # head outputs at the last clean token
        outs = []
        for i in range(12):
            _, cache = model.run_with_cache(unpadded(fit, "clean", i), names_filter=lambda n: n.endswith("hook_result"))
            outs.append(torch.stack([cache[f"blocks.{L}.attn.hook_result"][0, -1] for L in range(2)]))
        outs = torch.stack(outs)  # (prompt, layer, head, d)
        fv = sum(outs[:, L, h].mean(0) for L, h in res.heads)
        torch.testing.assert_close(res.vectors[0], fv, rtol=1e-5, atol=1e-6)
        # indirect effect of head (1, 0)
        mean = outs[:, 1, 0].mean(0)

        def set_head(act, hook):
            act = act.clone()
            act[:, -1, 0] = mean
            return act

        d = []
        for i in range(12):
            x = unpadded(fit, "shuffled", i)
            p0 = torch.softmax(model(x)[0, -1].double(), -1)[fit.answer[i]]
            with model.hooks([("blocks.1.attn.hook_result", set_head)]):
                p1 = torch.softmax(model(x)[0, -1].double(), -1)[fit.answer[i]]
            d.append(float(p1 - p0))
        assert float(res.indirect_effect.sel(layer=1, head=0)) == pytest.approx(np.mean(d), abs=1e-6)

        # FV added before layer 1 on zero-shot prompts
        def add(act, hook):
            act = act.clone()
            act[:, -1] += 3.0 * res.vectors[0]
            return act

        hits, lps = [], []
        for i in range(12):
            with model.hooks([("blocks.1.hook_resid_pre", add)]):
                lg = model(unpadded(ev, "zero_shot", i))[0, -1]
            hits.append(int(lg.argmax()) == int(ev.answer[i]))
            lps.append(float(torch.log_softmax(lg.double(), -1)[ev.answer[i]]))
    e = res.evaluation.sel(condition="zero_shot", layer=1)
    assert float(e.accuracy) == pytest.approx(np.mean(hits), abs=1e-12)
    assert float(e.logprob) == pytest.approx(np.mean(lps), abs=1e-5)
    with pytest.raises(InvalidParameterError, match="corruption"):
        FV.function_vector_on_prompts(model, fit, ev, corruption="other_task")


def test_text_fv_experiment_over_seeds(loaded, text):
    model, tok, _ = loaded
    ds, res = IT.text_fv_experiment(model, tok, text, "copy", n_prompts=8, n_pairs=2, n_words=40, top_k=1, seeds=(0, 1))
    assert ds.sizes["seed"] == 2 and set(ds.condition.values) == {"zero_shot", "shuffled"}
    assert list(ds.layer.values) == [0, 1, 2]
    np.testing.assert_allclose(ds.gain.values, ds.accuracy.values - ds.base_accuracy.values[..., None])
    np.testing.assert_allclose(ds.accuracy.sel(seed=1).values, res[1].evaluation.accuracy.values)
    s = IT.summarise_fv(ds)
    a = ds.gain.sel(condition="zero_shot", layer=1).values
    assert s["zero_shot_fv"][1]["gain"]["mean"] == pytest.approx(a.mean())
    assert s["zero_shot_fv"][1]["gain"]["sd"] == pytest.approx(a.std(ddof=1))
    assert (ds.accuracy.values >= 0).all() and (ds.accuracy.values <= 1).all()
    # the no-mapping baseline recomputed: the fit half's most frequent answer token, scored on the eval half
    g = np.random.default_rng(1)
    words = IT.task_words(text, tok, "copy", n_words=40)
    perm = g.permutation(len(words))
    fit = IT.text_task_prompts(8, [words[i] for i in perm[:20]], tok, "copy", n_pairs=2, max_len=48, rng=g)
    ev = IT.text_task_prompts(8, [words[i] for i in perm[20:]], tok, "copy", n_pairs=2, max_len=48, rng=g)
    vals, counts = np.unique(fit.answer.numpy(), return_counts=True)
    top = vals[counts == counts.max()].min()
    assert float(ds.majority_accuracy.sel(seed=1)) == pytest.approx(np.mean(ev.answer.numpy() == top))


def test_cli_interp_fv_language_model(tiny_lm, tmp_path, capsys):
    out = tmp_path / "fv"
    args = ["interp", "fv", "--checkpoint", str(tiny_lm), "--task", "capitalise", "--n-seeds", "2", "--n-prompts", "8",
            "--n-pairs", "2", "--top-k", "2", "--out", str(out), "--json"]
    assert main(args) == 0
    d = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert d["task"] == "capitalise" and d["seeds"] == [0, 1] and len(d["heads"]) == 2
    assert set(d) >= {"few_shot_accuracy", "zero_shot_accuracy", "shuffled_accuracy", "zero_shot_fv", "shuffled_fv"}
    for f in ("function_vectors_lm.png", "function_vectors_lm.pdf", "function_vectors_lm.nc", "result.json", "run.json"):
        assert (out / f).exists(), f
    import xarray as xr

    with xr.open_dataset(out / "function_vectors_lm.nc") as ds:
        assert d["few_shot_accuracy"]["mean"] == pytest.approx(float(ds.clean_accuracy.mean()))
    assert main(["interp", "fv", "--checkpoint", str(tiny_lm), "--task", "copy", "--n-seeds", "1", "--n-prompts", "8",
                 "--n-pairs", "2"]) == 0
    assert "zero_shot + FV before layer 1" in capsys.readouterr().out
    for bad, word in ((["--task", "reverse"], "task"), (["--n-pairs", "14"], "n-pairs"), (["--n-seeds", "0"], "n-seeds"),
                      (["--corruption", "other_task"], "corruption")):
        assert main(["interp", "fv", "--checkpoint", str(tiny_lm), "--n-prompts", "8", "--out", str(tmp_path / "bad"),
                     *bad]) == 2
        err = capsys.readouterr().err.strip()
        assert word in err.replace("_", "-") and len(err.splitlines()) == 1
        assert not (tmp_path / "bad").exists()
    assert main(["interp", "fv", "--planted", "--task", "copy"]) == 2
    assert "task" in capsys.readouterr().err


def test_neuron_steering_with_random_control(text, tmp_path, capsys):
    from spinlens.lm.data import eval_windows
    from spinlens.lm.experiments import _class_prob, steering_experiment, token_class
    from spinlens.lm.tokenizer import encode

    r = train_lm(text, LMConfig(**{**TINY, "variant": "mlp", "n_ctx": 16, "steps": 3}), out=tmp_path / "mlp")
    model, tok = r.model, r.tokenizer
    val = eval_windows(encode(tok, text[-20_000:]), 16, max_windows=24)
    ds = steering_experiment(model, tok, val, strengths=(0, 2), seeds=(0, 1), n_fit=8)
    lv = np.asarray(ds.level.values)
    for level in ("neuron", "neuron_random"):
        sel = lv == level
        assert sel.sum() == 4 and set(ds.strength.values[sel]) == {0.0, 2.0}
    # strength 0 is the unsteered model at every level
    base = ds.class_prob.values[(lv == "activation") & (ds.strength.values == 0)]
    for level in ("neuron", "neuron_random"):
        np.testing.assert_allclose(ds.class_prob.values[(lv == level) & (ds.strength.values == 0)], base)
    # the neuron row recomputed with a hand-written hook: the 8 neurons with the largest class difference of means
    g = np.random.default_rng(0)
    perm = g.permutation(len(val))
    fit, ev = val[perm[:8]], val[perm[8:]]
    mask = token_class(tok, "capitalised")
    with torch.no_grad():
        _, c = model.run_with_cache(fit[:, :-1], names_filter=["blocks.0.mlp.hook_post"])
    a = c["blocks.0.mlp.hook_post"].reshape(-1, model.cfg.d_mlp)
    nxt = torch.as_tensor(mask)[fit[:, 1:].reshape(-1)]
    top = torch.argsort(-(a[nxt].mean(0) - a[~nxt].mean(0)))[:8]
    val2 = 2.0 * float(a[nxt][:, top].mean())

    def hook(act, hook):
        act = act.clone()
        act[..., top] = val2
        return act

    k = min(20, a.shape[0])
    share = np.mean([nxt[np.argsort(-a[:, int(i)].numpy(), kind="stable")[:k]].float().mean() for i in top])
    row0 = (lv == "neuron") & (ds.seed.values == 0)
    np.testing.assert_allclose(ds.top_context_class_share.values[row0], share, rtol=1e-6)
    assert np.isnan(ds.top_context_class_share.values[lv == "activation"]).all()
    cp, loss = _class_prob(model, ev, mask, [("blocks.0.mlp.hook_post", hook)])
    row = (lv == "neuron") & (ds.strength.values == 2) & (ds.seed.values == 0)
    assert float(ds.class_prob.values[row][0]) == pytest.approx(cp, rel=1e-6)
    assert float(ds.loss.values[row][0]) == pytest.approx(loss, rel=1e-6)
    # a class that never follows a fit position: one clear error, not NaN vectors
    empty = int(np.setdiff1d(np.arange(tok.get_vocab_size()), val.numpy().ravel())[0])  # a token no window holds
    import spinlens.lm.experiments as E

    real = E.token_class
    try:
        E.token_class = lambda t, name: np.arange(t.get_vocab_size()) == empty
        with pytest.raises(InvalidParameterError, match="follows 0 of"):
            steering_experiment(model, tok, val, strengths=(0,), seeds=(0,), n_fit=8)
    finally:
        E.token_class = real
    # the CLI summary of the neuron level
    assert main(["steer", "--checkpoint", str(tmp_path / "mlp"), "--strengths", "0", "2", "--n-seeds", "2", "--json",
                 "--no-progress"]) == 0
    j = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("neuron_class_prob", "neuron_random_class_prob", "neuron_loss", "neuron_random_loss"):
        assert [x["strength"] for x in j[key]] == [0.0, 2.0] and j[key][0]["n"] == 2
    assert {x["level"] for x in j["neuron_top_context_class_share"]} == {"neuron", "neuron_random"}
