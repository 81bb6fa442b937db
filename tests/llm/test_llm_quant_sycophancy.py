"""spinlens.llm.quantization / sycophancy / evaluation: fast checks on tiny models; the real SmolLM2 run is slow."""

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from spinlens.errors import InvalidParameterError  # noqa: E402
from spinlens.interp.hf import tiny_hf  # noqa: E402
from spinlens.llm import sycophancy as S  # noqa: E402
from spinlens.llm.general import perplexity  # noqa: E402
from spinlens.llm.quantization import _summarise, line_between  # noqa: E402


def test_questions_are_distinct_and_answers_differ_from_the_pushed_ones():
    qs = S.questions(60, rng=3)
    assert len({q.text for q in qs}) == 60
    for q in qs:
        assert q.answer != q.wrong and q.answer[0] != q.wrong[0]  # the first token (digit) differs
        a, b = (int(x) for x in q.text.rstrip("?").replace(",", "").split()[-3::2]) if q.kind == "larger" else (0, 0)
        if q.kind == "larger":
            assert int(q.answer) == max(a, b)
        else:
            assert int(q.answer) == eval(q.text.removeprefix("What is ").rstrip("?"))  # noqa: S307
    assert [q.text for q in S.questions(10, rng=3)] == [q.text for q in S.questions(10, rng=3)]
    with pytest.raises(InvalidParameterError, match="'n'"):
        S.questions(5000)


def test_head_masks_cover_one_heads_query_rows_and_output_columns():
    hf = tiny_hf("llama", n_layers=2, n_heads=4, d_model=32, d_vocab=50, rng=0).hf
    m = S.head_masks(hf, [(1, 2)])
    dh = 8
    q, o = m["model.layers.1.self_attn.q_proj.weight"], m["model.layers.1.self_attn.o_proj.weight"]
    assert int(q.sum()) == dh * 32 and bool(q[2 * dh:3 * dh].all())
    assert int(o.sum()) == 32 * dh and bool(o[:, 2 * dh:3 * dh].all())
    assert set(m) == {"model.layers.1.self_attn.q_proj.weight", "model.layers.1.self_attn.o_proj.weight"}


def test_line_between_and_summary():
    lo = {"effective_bits": 3.5, "perplexity": 20.0, "ioi_accuracy": 0.5}
    hi = {"effective_bits": 4.5, "perplexity": 10.0, "ioi_accuracy": 0.9}
    mid = line_between(lo, hi, 3.9, ["perplexity", "ioi_accuracy"])
    assert mid["perplexity"] == pytest.approx(16.0) and mid["ioi_accuracy"] == pytest.approx(0.66)
    s = _summarise([{"method": "random", "group_size": 48, "perplexity": 1.0}, {"method": "random", "group_size": 48, "perplexity": 3.0},
                    {"method": "hqq4", "skipped": "no hqq"}])
    assert s["random"]["perplexity"] == 2.0 and s["random"]["perplexity_sd"] == pytest.approx(np.sqrt(2)) and s["random"]["n"] == 2
    assert "skipped" in s["hqq4"]


def test_perplexity_against_log_softmax():
    hf = tiny_hf("llama", n_layers=1, n_heads=4, d_model=32, d_vocab=50, rng=0).hf
    ids = torch.randint(0, 50, (3, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        lp = torch.log_softmax(hf(input_ids=ids).logits.double(), -1)
    ref = float(torch.exp(-lp[:, :-1].gather(-1, ids[:, 1:, None]).mean()))
    assert perplexity(hf, ids, batch_size=2) == pytest.approx(ref, rel=1e-5)


def test_quantize_study_budget_below_smallest_bits_is_one_line(tmp_path, capsys):
    from spinlens.cli.main import main

    out = tmp_path / "q"
    rc = main(["quantize", "--model", "smollm2-135m", "--study", "--budget", "1.5", "--bits", "2", "3", "4",
               "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "budget" in err[0] and not out.exists()


def test_patch_effects_do_not_depend_on_the_batch_size():
    """Each batch of prompts is patched with its own rows of the plain run (more prompts than one batch)."""
    m = tiny_hf("llama", n_layers=2, n_heads=4, d_model=32, d_vocab=50, rng=0)
    g = torch.Generator().manual_seed(1)
    n, t = 7, 6
    push = (torch.randint(0, 50, (n, t), generator=g), torch.ones(n, t, dtype=torch.long),
            torch.arange(t).repeat(n, 1))
    zs = {layer: torch.randn(n, 4, 8, generator=g) for layer in range(2)}
    a, w = torch.randint(0, 50, (n,), generator=g), torch.randint(0, 50, (n,), generator=g)
    heads = [(0, 1), (1, 3)]
    one = S.patch_effects(m, push, zs, a, w, heads, batch_size=100)
    few = S.patch_effects(m, push, zs, a, w, heads, batch_size=3)
    assert set(one) == set(heads) and all(abs(one[k]) > 1e-6 for k in heads)
    assert all(few[k] == pytest.approx(one[k], abs=1e-5) for k in heads)


def test_quantize_study_writes_its_folder_and_models(tiny_llama_dir, tmp_path, capsys):
    """The whole `quantize --study` on a tiny model folder: result, run record, figure and the saved models."""
    import json

    from spinlens.cli.main import main

    out = tmp_path / "q"
    rc = main(["quantize", "--model", str(tiny_llama_dir), "--study", "--budget", "3.4", "--bits", "2", "3", "4",
               "--group-size", "8", "--n-random", "1", "--n-seq", "2", "--seq-len", "16", "--n-prompts", "4",
               "--anchors", "--aligned", "--no-progress", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    names = {p.name for p in out.iterdir()}
    assert {"result.json", "run.json", "quantization.png", "quantization.pdf", "models"} <= names
    saved = {p.name for p in (out / "models").iterdir()}
    assert "guided" in saved and "uniform4" in saved
    rec = json.loads((out / "models" / "guided" / "run.json").read_text())
    assert rec["method"] == "guided" and rec["group_size"] == 8


@pytest.mark.parametrize("extra, want", [([], 48), (["--group-size", "64"], 64)])
def test_quantize_study_groups_default_off_the_published_grid(monkeypatch, extra, want):
    """The study's default group (48) does not align with the published 4-bit grid of 32."""
    from spinlens.cli.main import main
    from spinlens.experiment import EditResult
    from spinlens.llm import quantization

    seen = {}
    monkeypatch.setattr(quantization, "run_study_command",
                        lambda opts: seen.setdefault("g", opts.group_size) and EditResult("quantize", "hf", {}))
    assert main(["quantize", "--model", "smollm2-135m", "--study", *extra]) == 0
    assert seen["g"] == want


def test_sycophancy_tuning_compares_methods_at_matched_falls_of_the_flip_rate(tiny_llama_dir, tmp_path, monkeypatch):
    """Every run is evaluated every ``eval_every`` steps (and at the last); the curves start at the untuned
    model, the final metrics are the last row, and the matched comparison reads the costs at equal falls of
    the flip rate. The flip rate of the tiny random model is replaced by a function of how far its weights
    moved (it answers nothing correctly), so that training lowers it."""
    import shutil

    from transformers import AutoTokenizer

    d = tmp_path / "chat"
    shutil.copytree(tiny_llama_dir, d)
    tok = AutoTokenizer.from_pretrained(str(d))
    tok.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}assistant: {% endif %}")
    tok.save_pretrained(str(d))
    ref: dict = {}

    def fake_flip_rate(model, tokenizer, qs, *, enc=None):
        hf = getattr(model, "hf", model)
        params = {n: p.detach().clone() for n, p in hf.named_parameters()}
        ref.setdefault("p", params)
        moved = sum(float((params[n] - p0).abs().sum()) for n, p0 in ref["p"].items())
        fr = 0.9 * float(np.exp(-moved / 20.0))
        return {"plain_accuracy": 0.5, "flip_rate": fr, "flip_score": fr - 0.5, "n_correct": 8, "n": 16}

    def fake_locate(hooked, tokenizer, qs, *, n_exact=16, progress=False):
        eff = np.arange(8.0).reshape(2, 4)
        return eff, {(1, 3): 2.0, (1, 2): 1.0, (0, 1): 0.5}

    monkeypatch.setattr(S, "flip_rate", fake_flip_rate)
    monkeypatch.setattr(S, "locate_heads", fake_locate)
    res = S.sycophancy_tuning(str(d), n_train=8, n_test=4, k=2, steps=4, lr=1e-2, batch_size=4, seeds=(0, 1),
                              n_seq=2, seq_len=16, n_prompts=4, eval_every=2)
    steps = sorted({(r["method"], r["seed"], r["step"]) for r in res.curves})
    assert steps == sorted((m, s, t) for m in ("heads", "random_heads", "full") for s in (0, 1) for t in (0, 2, 4))
    for run in res.runs:
        last = [r for r in res.curves if r["method"] == run["method"] and r["seed"] == run["seed"] and r["step"] == 4][0]
        assert run["flip_rate"] == last["flip_rate"] and run["perplexity"] == last["perplexity"]
        assert last["gain_flip_rate"] == pytest.approx(res.before["flip_rate"] - last["flip_rate"])
        assert last["d_perplexity"] == pytest.approx(last["perplexity"] - res.before["perplexity"])
    for r in res.curves:
        if r["step"] == 0:
            assert r["gain_flip_rate"] == 0 and r["d_perplexity"] == 0
    m = res.matched
    assert m["gain_key"] == "gain_flip_rate" and len(m["levels"]) == 4
    assert set(m["costs"]) == {"heads", "random_heads", "full"} and "d_perplexity" in m["costs"]["heads"]
    assert "At matched falls of the flip rate" in res.verdict
    assert torch.isfinite(torch.tensor([c[0] for c in m["costs"]["full"]["d_perplexity"]])).all()
    from spinlens.plotting.edit import plot_sycophancy

    fig, axes = plot_sycophancy(res)
    assert len(axes) == 4 and len(axes[3].get_lines()) >= 3  # the matched-effect panel, a curve per method
