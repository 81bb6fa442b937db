"""The language-model study: corpus checks, tokenizer, training, induction scores on planted and trained models,
and the CLI (`spinlens lm`, `spinlens interp induction`) with bad input."""

import json
import math

import numpy as np
import pytest
import torch

from spinlens.cli.main import main
from spinlens.errors import InvalidParameterError
from spinlens.interp.planted import planted_induction_model
from spinlens.lm import induction as ind
from spinlens.lm.corpus import load_corpus, pydoc_topics, read_text_file
from spinlens.lm.data import split_tokens, token_losses
from spinlens.lm.tokenizer import encode, train_tokenizer
from spinlens.lm.train import LMConfig, list_checkpoints, load_lm, train_lm

pytestmark = pytest.mark.usefixtures("audit_figures")  # every figure saved here passes the referee's checks

TINY = dict(n_layers=2, n_heads=2, d_model=16, n_ctx=16, vocab_size=300, steps=12, batch_size=4, eval_every=4,
            n_checkpoints=3, warmup=2)


@pytest.fixture(scope="module")
def small_text():
    return pydoc_topics()[:40_000]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, small_text):
    out = tmp_path_factory.mktemp("lm") / "run"
    res = train_lm(small_text, LMConfig(**TINY), out=out, corpus_name="pydoc-topics[:40000]")
    return out, res


# ------------------------------------------------------------------------------------------------ corpus
def test_corpus_bad_files(tmp_path):
    (tmp_path / "empty.txt").write_text("  \n")
    (tmp_path / "bin.dat").write_bytes(b"abc\x00\x01\x02" * 10)
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    for name, word in (("empty.txt", "empty"), ("bin.dat", "binary"), ("latin1.txt", "UTF-8"), ("nope.txt", "not a file")):
        with pytest.raises(InvalidParameterError, match=word) as e:
            read_text_file(tmp_path / name)
        assert "\n" not in str(e.value)
    assert load_corpus("pydoc-topics").startswith(pydoc_topics()[:50])


def test_split_too_small_and_interleaved():
    with pytest.raises(InvalidParameterError, match="too small"):
        split_tokens(np.arange(100), n_ctx=64)
    ids = np.arange(50_000)
    s = split_tokens(ids, val_fraction=0.1, n_ctx=32)
    assert len(s.train) + len(s.val) == len(ids)
    assert 0.05 < len(s.val) / len(ids) < 0.15
    assert not set(s.train.tolist()) & set(s.val.tolist())
    assert s.val.min() < 10_000 and s.val.max() > 40_000  # held-out blocks spread over the corpus


def test_tokenizer_roundtrip(small_text):
    tok = train_tokenizer(small_text, 300)
    assert tok.get_vocab_size() == 300
    s = "The 'assert' statement — ünïcödé ✓\n\tx = 1"
    assert tok.decode(encode(tok, s).tolist()) == s  # byte-level: lossless on any text


# ------------------------------------------------------------------------------------------------ scores
def test_planted_induction_model_scores():
    m = planted_induction_model(d_vocab=32, max_pos=32)
    rep = ind.induction_report(m, n_seq=16, half=16, rng=1)
    assert rep.induction[1, 0] == pytest.approx(1.0, abs=1e-6)
    assert rep.prev_token[0, 0] == pytest.approx(1.0, abs=1e-6)
    assert rep.heads()[0]["layer"] == 1 and rep.heads()[0]["head"] == 0
    others = np.delete(rep.induction.ravel(), 2)
    assert others.max() < 0.3
    assert rep.repeated_loss["repeat"] < 0.01 < 2.0 < rep.repeated_loss["first"]
    from spinlens.lm.analysis import head_roles

    roles = head_roles(rep)
    assert roles["L1.H0"].startswith("induction head") and roles["L0.H0"].startswith("previous-token head")
    # K-composition: the previous-token head reaches the induction head through its keys only
    kc = ind.k_composition(m, n_seq=16, half=16, receivers=[(1, 0)], rng=2)
    assert kc["top"]["k"][:2] == (0, 0) and kc["top"]["k"][2] > 0.95
    assert abs(kc["scores"]["q"][0, 0]) < 1e-6 and abs(kc["scores"]["v"][0, 0]) < 1e-6
    # ablating the induction head removes the repeat advantage
    from spinlens.lm.analysis import ablation_study

    ab = ablation_study(m, [(1, 0)], n_seq=16, half=16, exclude=[(0, 0)], rng=3)
    assert ab["repeat_advantage_before"] > 2.0
    assert abs(ab["repeat_advantage"]) < 0.1 * ab["repeat_advantage_before"]
    assert min(ab["random_repeat_advantage"]) > 0.9 * ab["repeat_advantage_before"]


def test_uniform_attention_closed_form():
    """q = k = 0: every head attends uniformly, so its induction score is mean_i 1/(i+1) over the repeat."""
    from spinlens.models.transformer import Transformer, TransformerConfig

    m = Transformer(TransformerConfig(n_layers=2, n_heads=2, d_model=16, d_mlp=0, input_kind="tokens", d_vocab=40,
                                      max_pos=24, positional="none"), rng=0)
    with torch.no_grad():
        for b in m.blocks:
            b.attn.W_Q.zero_(); b.attn.W_K.zero_(); b.attn.b_Q.zero_(); b.attn.b_K.zero_(); b.attn.W_O.zero_()
    T = 12
    tok = ind.repeated_tokens(8, T, 40, rng=0)
    i_s, p_s = ind.head_scores(m, tok)
    want_ind = np.mean([1 / (i + 1) for i in range(T, 2 * T)])
    want_prev = np.mean([1 / (i + 1) for i in range(1, 2 * T)])
    np.testing.assert_allclose(i_s, want_ind, rtol=1e-5)
    np.testing.assert_allclose(p_s, want_prev, rtol=1e-5)
    # no information moves between positions and no positions: the repeat is no easier than the first half
    rl = ind.repeated_loss(m, tok)
    assert rl["first"] == pytest.approx(rl["repeat"], rel=1e-6)


def test_repeated_tokens_distinct_halves():
    t = ind.repeated_tokens(5, 10, 50, rng=0)
    assert t.shape == (5, 20) and torch.equal(t[:, :10], t[:, 10:])
    assert all(len(set(r[:10].tolist())) == 10 for r in t) and int(t.min()) >= 1  # token 0 (special) excluded


def test_icl_score_sign_and_positions():
    m = planted_induction_model(d_vocab=32, max_pos=32)
    w = ind.repeated_tokens(8, 16, 32, rng=0)[:, :32]
    w = torch.cat([w, w[:, :1]], 1)  # (n, n_ctx + 1)
    r = ind.icl_score(m, w)
    ce = token_losses(m, w).mean(0)
    assert r["icl_score"] == pytest.approx(float(ce[24:].mean() - ce[2:4].mean()))
    assert r["icl_score"] < -1.0  # the repeat is predicted, the start is not


# ------------------------------------------------------------------------------------------------ training
def test_train_and_load(tiny_run):
    out, res = tiny_run
    model, tok, meta = load_lm(out)
    assert meta["kind"] == "lm" and meta["step"] == TINY["steps"] and tok.get_vocab_size() == 300
    assert model.cfg.d_mlp == 0 and model.cfg.max_pos == 16
    steps = [s for s, _ in list_checkpoints(out)]
    assert steps[-1] == TINY["steps"] and len(steps) >= 2
    x = torch.randint(0, 300, (2, 16))
    torch.testing.assert_close(model(x), res.model(x))
    h = res.history
    assert h[0]["step"] == 1 and h[-1]["step"] == TINY["steps"]
    assert h[-1]["val_loss"] < h[0]["val_loss"] < math.log(300) + 1.0
    assert h[-1]["val_ppl"] == pytest.approx(math.exp(h[-1]["val_loss"]))


def test_mlp_variant_and_seed(small_text):
    cfg = LMConfig(**{**TINY, "variant": "mlp", "steps": 3, "n_checkpoints": 0})
    a = train_lm(small_text, cfg)
    b = train_lm(small_text, cfg, tokenizer=a.tokenizer)
    assert a.model.cfg.d_mlp == 64
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(p, q)  # same seed, same tokenizer: same model
    with pytest.raises(InvalidParameterError, match="variant"):
        LMConfig(variant="rnn")


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_lm_and_induction(tmp_path, small_text, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text(small_text)
    out = tmp_path / "lm"
    args = ["lm", "--corpus", str(corpus), "--vocab-size", "300", "--n-ctx", "16", "--d-model", "16", "--n-heads", "2",
            "--steps", "8", "--batch-size", "4", "--eval-every", "4", "--n-checkpoints", "2", "--out", str(out), "--json"]
    assert main(args) == 0
    cap = capsys.readouterr()
    s = json.loads(cap.out.strip().splitlines()[-1])
    assert s["n_checkpoints"] >= 1 and s["train_elapsed_s"] > 0
    assert s["induction_head_formed"] is False and s["phase_change_step"] is None  # 8 steps: no induction head
    assert "no induction head formed" in cap.err
    for f in ("model.safetensors", "config.json", "tokenizer.json", "heldout_tokens.npy", "curves.csv", "curves.png",
              "curves.pdf", "induction_curve.csv", "induction_curve.png", "induction_curve.pdf", "run.json"):
        assert (out / f).exists(), f
    res = tmp_path / "ind"
    assert main(["interp", "induction", "--checkpoint", str(out), "--n-seq", "4", "--top-k", "2", "--out", str(res),
                 "--json"]) == 0
    j = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(j) >= {"heads", "repeated_loss", "icl_score", "ablation", "k_composition"}
    assert len(j["heads"]) == 4 and set(j["heads"][0]) == {"layer", "head", "induction_score", "prev_token_score"}
    sc = [h["induction_score"] for h in j["heads"]]
    assert sc == sorted(sc, reverse=True)
    assert set(j["repeated_loss"]) == {"first", "repeat"} and isinstance(j["icl_score"], float)
    for f in ("heads.csv", "head_scores.png", "logit_lens.csv", "unit_snippets.csv", "k_composition.csv", "run.json"):
        assert (res / f).exists(), f
    assert main(["report", str(res)]) == 0
    assert "unit_snippets" in (res / "report.html").read_text()
    # one evaluation per quantity: with its defaults, interp induction reports lm's numbers for the same model
    assert main(["interp", "induction", "--checkpoint", str(out), "--no-ablation", "--no-path", "--json"]) == 0
    d = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert d["heads"][0]["induction_score"] == s["top_head"]["induction_score"]
    assert d["repeated_loss"] == s["repeated_loss"] and d["icl_score"] == s["icl_score"]
    # loss_by_position.png: its title is the ICL score of the windows it draws, the reported one
    import csv

    from spinlens.lm.induction import icl_score_of_losses

    lbp = [float(r["loss"]) for r in csv.DictReader(open(res / "loss_by_position.csv"))]
    assert icl_score_of_losses(lbp)["icl_score"] == pytest.approx(j["icl_score"], abs=1e-6)


def test_cli_bad_input(tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "bin.txt").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "small.txt").write_text("tiny text " * 20)
    for f, word in (("empty.txt", "empty"), ("bin.txt", "binary"), ("small.txt", "too small")):
        out = tmp_path / ("out-" + f)
        assert main(["lm", "--corpus", str(tmp_path / f), "--vocab-size", "260", "--out", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert word in err and len(err.splitlines()) == 1
        assert not out.exists()  # nothing half-written
    (tmp_path / "latin.txt").write_bytes(b"na\xefve " * 100)
    assert main(["lm", "--corpus", str(tmp_path / "latin.txt"), "--out", str(tmp_path / "o")]) == 2
    assert "UTF-8" in capsys.readouterr().err
    assert main(["lm", "--corpus", "no-such-source", "--out", str(tmp_path / "o")]) == 2
    capsys.readouterr()
    assert main(["lm", "--steps", "0"]) == 2
    assert "steps" in capsys.readouterr().err
    # a checkpoint that is not a language model
    from spinlens.interp.planted import planted_copy_model
    from spinlens.models.checkpoint import save_transformer

    save_transformer(planted_copy_model(), tmp_path / "copy")
    for ck in (tmp_path / "copy", tmp_path / "missing"):
        assert main(["interp", "induction", "--checkpoint", str(ck)]) == 2
        err = capsys.readouterr().err.strip()
        assert "language model" in err and len(err.splitlines()) == 1


def test_edit_commands_on_lm(tiny_run, tmp_path, small_text, capsys):
    out, _ = tiny_run
    (tmp_path / "a.txt").write_text(small_text[:12_000])
    (tmp_path / "b.txt").write_text(small_text[-12_000:])
    common = ["--checkpoint", str(out), "--n-seeds", "1", "--json", "--no-progress"]
    assert main(["steer", *common, "--strengths", "0", "2", "--out", str(tmp_path / "s")]) == 0
    s = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [r["strength"] for r in s["activation_class_prob"]] == [0.0, 2.0]
    assert {r["intervention"] for r in s["module_repeat_loss"]} >= {"none", "ablate induction heads"}
    assert (tmp_path / "s" / "steer_lm.csv").exists() and (tmp_path / "s" / "steer_lm.png").exists()
    assert main(["quantize", *common, "--budgets", "3.4", "--uniform-bits", "4", "--bits", "2", "4", "--n-random", "1",
                 "--group-size", "8"]) == 0
    q = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    ab = {r["scheme"]: r["mean"] for r in q["average_bits"]}
    assert ab["uniform_4"] == 4.0 and ab["guided_3.4"] <= 3.4 + 1e-9
    assert main(["pinpoint", *common, "--domain", str(tmp_path / "a.txt"), "--steps", "2", "--n-random", "1"]) == 0
    p = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {r["method"] for r in p["target_gain"]} == {"before", "importance_heads", "induction_heads", "random_heads", "full"}
    assert main(["merge", *common, "--domains", str(tmp_path / "a.txt"), str(tmp_path / "b.txt"), "--steps", "2"]) == 0
    m = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {r["method"] for r in m["loss_general"]} >= {"base", "finetune_a", "ties"}
    # a folder that is not a model: one line, exit 2
    assert main(["steer", "--checkpoint", str(tmp_path), "--json"]) == 2
    err = capsys.readouterr().err.strip()
    assert "checkpoint" in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_defaults_grow_induction_heads(tmp_path, capsys):
    """`spinlens lm` with its defaults (a few CPU minutes): an induction head, a repeat advantage, a negative
    ICL score, a phase change over the checkpoints, and the ablation / K-composition checks."""
    out = tmp_path / "lm"
    assert main(["lm", "--out", str(out), "--no-progress", "--json"]) == 0
    s = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert s["top_head"]["induction_score"] > 0.15 and s["top_head"]["layer"] >= 1  # 0.21-0.33 over 12 seed/corpus runs
    assert s["induction_head_formed"] and s["phase_change_step"] <= 4000  # formed by step 1000-3000 in those runs
    assert s["repeated_loss"]["first"] - s["repeated_loss"]["repeat"] > 1.0
    assert s["icl_score"] < 0
    import csv

    rows = list(csv.DictReader(open(out / "induction_curve.csv")))
    first, last = float(rows[0]["max_induction_score"]), float(rows[-1]["max_induction_score"])
    assert first < 0.05 < 0.15 < last  # the phase change: no induction head at the start, one at the end
    assert main(["interp", "induction", "--checkpoint", str(out), "--json"]) == 0
    j = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    ab = j["ablation"]
    assert ab["repeat_advantage"] < 0.5 * ab["repeat_advantage_before"]
    assert j["k_composition"]["k"]["score"] > max(j["k_composition"]["q"]["score"], j["k_composition"]["v"]["score"])


# ------------------------------------------------------------------------------------------------ formation verdict
def test_uniform_baseline_is_what_a_uniform_head_scores():
    """A model with zero query/key weights attends uniformly to every earlier position: its heads' induction score
    must equal `uniform_induction_baseline` (a closed form against a forward pass)."""
    from spinlens.models.transformer import Transformer

    model = Transformer(LMConfig(**TINY).transformer_config(300), rng=0)
    with torch.no_grad():
        for blk in model.blocks:
            for name in ("W_Q", "W_K", "b_Q", "b_K"):
                getattr(blk.attn, name).zero_()
    for half in (3, 8):
        toks = ind.repeated_tokens(4, half, 300, rng=1)
        scores, _ = ind.head_scores(model, toks)
        np.testing.assert_allclose(scores, ind.uniform_induction_baseline(half), rtol=1e-5)
    assert ind.uniform_induction_baseline(1) == 0.5  # one query position (i = 1) sees 2 positions
    with pytest.raises(InvalidParameterError, match="half"):
        ind.uniform_induction_baseline(0)


def test_induction_formed_needs_score_and_advantage():
    assert ind.induction_formed(0.25, {"first": 13.5, "repeat": 11.0})
    assert not ind.induction_formed(0.05, {"first": 13.5, "repeat": 11.0})  # weak head
    assert not ind.induction_formed(0.25, {"first": 13.5, "repeat": 12.9})  # no repeat advantage
    assert ind.induction_formed(ind.FORMED_SCORE, {"first": 1.0 + ind.FORMED_ADVANTAGE, "repeat": 1.0})
    rep = ind.induction_report(planted_induction_model(), n_seq=8, half=8)  # a hand-built induction circuit
    assert rep.formed and rep.to_dict()["induction_head_formed"] is True
