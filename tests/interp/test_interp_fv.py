"""Function vectors on token models: planted truth (one head carries the task vector) and the prompt generator."""

import math

import numpy as np
import pytest
import torch

from spinlens.errors import InvalidParameterError
from spinlens.interp.function_vectors import (
    evaluate_function_vector,
    fixed_task_prompts,
    fixed_token_tasks,
    function_vector_experiment,
    token_function_vector,
    token_head_indirect_effect,
    top_heads,
)
from spinlens.interp.planted import planted_task_model

# every figure saved by these tests is checked (labels, colourbars, legends): tests/conftest.py
pytestmark = pytest.mark.usefixtures("audit_figures")

K = 3
STRENGTH = 5.0


@pytest.fixture(scope="module")
def planted():
    return planted_task_model(n_inputs=4, n_tasks=2, labels_per_task=3, n_pairs=K, strength=STRENGTH, rng=0)


def test_fixed_task_prompts_structure():
    tab = fixed_token_tasks(3, 8, 4, rng=0)
    assert tab.shape == (3, 8) and tab.min() >= 8 and tab.max() < 12
    assert ((tab[:, None] != tab[None]).mean(-1) + np.eye(3)).min() >= 0.5
    p = fixed_task_prompts(200, tab, n_pairs=K, rng=1)
    c = p.clean.numpy()
    t = p.task.numpy()
    xs = c[:, 0 : 2 * K : 2]
    np.testing.assert_array_equal(c[:, 1 : 2 * K : 2], tab[t[:, None], xs])  # demonstrations follow the task
    assert not (xs == c[:, -1:]).any()  # the query is new
    np.testing.assert_array_equal(p.answer.numpy(), tab[t, c[:, -1]])
    np.testing.assert_array_equal(p.zero_shot.numpy()[:, 0], c[:, -1])
    s = p.shuffled.numpy()
    np.testing.assert_array_equal(s[:, 0::2], c[:, 0::2])
    np.testing.assert_array_equal(np.sort(s[:, 1::2], 1), np.sort(c[:, 1::2], 1))  # same labels, shifted
    np.testing.assert_array_equal(s[:, 1 : 2 * K : 2], np.roll(c[:, 1 : 2 * K : 2], -1, axis=1))
    o = p.other_task.numpy()
    assert (p.other != p.task).all()
    np.testing.assert_array_equal(o[:, 1 : 2 * K : 2], tab[p.other.numpy()[:, None], xs])
    with pytest.raises(InvalidParameterError, match="n_pairs"):
        fixed_task_prompts(5, tab, n_pairs=8)
    with pytest.raises(InvalidParameterError, match="tasks"):
        fixed_task_prompts(5, tab - 8)


def test_planted_model_behaviour(planted):
    m, tab = planted
    V = m.cfg.d_vocab
    p = fixed_task_prompts(64, tab, n_pairs=K, rng=2)
    with torch.no_grad():
        pc = torch.softmax(m(p.clean)[:, -1], -1).gather(-1, p.answer[:, None])
        p0 = torch.softmax(m(p.zero_shot)[:, -1], -1).gather(-1, p.answer[:, None])
    e = math.exp(STRENGTH)
    np.testing.assert_allclose(pc.numpy(), e / (e + V - 1), rtol=1e-12)
    np.testing.assert_allclose(p0.numpy(), 1 / V, rtol=1e-12)


def test_planted_indirect_effect_singles_out_task_head(planted):
    m, tab = planted
    V = m.cfg.d_vocab
    p = fixed_task_prompts(64, tab, n_pairs=K, rng=3)
    ie = token_head_indirect_effect(m, p.clean, p.other_task, p.answer, groups=p.task)
    assert ie.dims == ("layer", "head") and ie.shape == (2, 2)
    e = math.exp(STRENGTH)
    np.testing.assert_allclose(float(ie.sel(layer=0, head=1)), (e - 1) / (e + V - 1), rtol=1e-12)
    others = [float(ie.sel(layer=L, head=h)) for L in range(2) for h in range(2) if (L, h) != (0, 1)]
    np.testing.assert_allclose(others, 0.0, atol=1e-12)
    assert top_heads(ie.values, 1) == [(0, 1)]
    # without groups the patched value is the task mixture (f, 1-f): only the majority task's neurons fire,
    # with relu(f - 0.5) (logit a); the corrupt run's other-task neuron is switched off for every prompt
    ie_mixed = token_head_indirect_effect(m, p.clean, p.other_task, p.answer)
    f = np.bincount(p.task.numpy(), minlength=2) / len(p.task)
    maj = int(np.argmax(f))
    a = 2 * STRENGTH * (f[maj] - 0.5)
    ea = math.exp(a)
    gain = f[maj] * (ea / (ea + V - 1)) + (1 - f[maj]) * (1 / (ea + V - 1)) - 1 / (e + V - 1)
    assert f[maj] > 0.5
    np.testing.assert_allclose(float(ie_mixed.sel(layer=0, head=1)), gain, rtol=1e-10)


def test_planted_function_vector_is_task_slot_and_restores_zero_shot(planted):
    m, tab = planted
    V, T = m.cfg.d_vocab, tab.shape[0]
    p = fixed_task_prompts(64, tab, n_pairs=K, rng=4)
    fv = token_function_vector(m, p.clean, [(0, 1)], groups=p.task)
    expected = torch.zeros(T, m.cfg.d_model, dtype=fv.dtype)
    expected[torch.arange(T), V + torch.arange(T)] = 1.0
    torch.testing.assert_close(fv, expected, rtol=0, atol=1e-12)
    r = evaluate_function_vector(m, p.zero_shot, p.answer, fv, layers=[0, 1, 2], groups=p.task)
    e = math.exp(STRENGTH)
    assert r["base_accuracy"] == 0.0 and r["base_prob"] == pytest.approx(1 / V, rel=1e-12)
    # before either layer the vector reaches the task neurons; after the last block it only adds to unread slots
    np.testing.assert_allclose(r["accuracy"], [1.0, 1.0, 0.0])
    np.testing.assert_allclose(r["prob"], [e / (e + V - 1)] * 2 + [1 / V], rtol=1e-12)
    # the wrong task's vector gives the other task's answer, never this one
    r2 = evaluate_function_vector(m, p.zero_shot, p.answer, fv, layers=[1], groups=(p.task + 1) % T)
    assert r2["accuracy"][0] == 0.0


def test_experiment_end_to_end_on_planted(planted):
    m, tab = planted
    res = function_vector_experiment(m, tab, n_prompts=64, n_pairs=K, top_k=1, corruption="other_task", rng=5)
    assert res.heads == [(0, 1)]
    ev = res.evaluation
    assert ev.attrs["clean_accuracy"] == 1.0
    assert float(ev["accuracy"].sel(condition="zero_shot", layer=1)) == 1.0
    assert float(ev["base_accuracy"].sel(condition="zero_shot")) == 0.0
    d = res.to_dict()
    assert d["heads"] == [[0, 1]] and d["zero_shot"]["accuracy_by_layer"][1] == 1.0
    with pytest.raises(InvalidParameterError, match="corruption"):
        function_vector_experiment(m, tab, corruption="bogus")


def test_cli_fv_planted(tmp_path, capsys):
    import json

    from spinlens.cli.main import main

    rc = main(["interp", "fv", "--planted", "--corruption", "other_task", "--top-k", "1", "--n-prompts", "64",
               "--out", str(tmp_path / "fv"), "--json"])
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    assert d["heads"] == [[0, 1]] and d["zero_shot"]["accuracy_by_layer"]["1"] == 1.0
    for f in ("function_vectors.png", "function_vectors.pdf", "function_vectors_eval.nc", "result.json", "run.json"):
        assert (tmp_path / "fv" / f).exists()
    assert main(["interp", "fv", "--planted", "--top-k", "9"]) == 2
    assert "top-k" in capsys.readouterr().err
    assert main(["interp", "fv", "--checkpoint", str(tmp_path)]) == 2


def test_function_vector_report_is_the_commands_result(tmp_path):
    """The library call of `interp fv --planted`: its summary is result.json, its headline ends with the verdict."""
    import json

    from spinlens.experiment import function_vector_report

    rep = function_vector_report(planted=True, corruption="other_task", top_k=1, n_prompts=64)
    assert rep.summary["heads"] == [[0, 1]] and rep.summary["source"] == "planted:task"
    assert rep.lines == [rep.summary["verdict"]["line"]] and rep.rows[0] == ("source", "planted:task")
    rep.write(tmp_path, seed=0)
    assert json.loads((tmp_path / "result.json").read_text())["heads"] == [[0, 1]]
    assert (tmp_path / "function_vectors_indirect_effect.nc").exists()
