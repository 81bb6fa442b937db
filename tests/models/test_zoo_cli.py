"""`spinlens zoo` CLI and the Fig S8 pipeline on a tiny setting."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from spinlens.cli.main import main
from spinlens.reproduce import figS8

# every figure saved by these tests is checked (labels, colourbars, legends): tests/conftest.py
pytestmark = pytest.mark.usefixtures("audit_figures")


def test_zoo_list_json(capsys):
    assert main(["zoo", "list", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"sla", "sla-separate", "fla", "mhla", "sa", "tf"}


def test_zoo_train_and_bridge(tmp_path, capsys):
    out = tmp_path / "fla"
    code = main(["zoo", "train", "--arch", "fla", "--D", "3", "--N", "10", "--P", "500", "--steps", "200",
                 "--lr", "0.03", "--batch-size", "64", "--test-prompts", "500", "--weight-decay", "0.001",
                 "--out", str(out), "--json", "--no-progress"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["arch"] == "fla" and summary["P"] == 500 and summary["seed"] == 0
    assert summary["test_loss"] < summary["baseline_zero_prediction"]
    for name in ("run.json", "history.nc", "train_loss.csv", "test_loss.csv", "loss.png", "loss.pdf",
                 "model.safetensors", "config.json"):
        assert (out / name).exists(), name
    assert main(["zoo", "bridge", "--checkpoint", str(out), "--json", "--prompts", "500"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["arch"] == "fla" and rep["N"] == 10 and rep["lam"] == pytest.approx(0.0005)
    assert -1.0 <= rep["cos_w_star"] <= 1.0
    assert rep["n_test_prompts"] == 500 and "P" not in rep  # P is the training prompts, not the test count


def test_zoo_bad_input_exits_2(tmp_path, capsys):
    assert main(["zoo", "train", "--arch", "gpt", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "'arch'" in err and err.count("\n") == 1
    assert main(["zoo", "train", "--arch", "fla", "--D", "3", "--N", "5", "--steps", "0", "--out", str(tmp_path)]) == 2
    assert main(["zoo", "bridge", str(tmp_path / "missing")]) == 2


def test_paper_interpolation():
    got = figS8.paper_at("tf", [50, 60, 190, 200])
    assert got[0] == pytest.approx(0.5656)
    assert got[1] == pytest.approx((0.5656 + 0.4780) / 2)
    assert got[2] == pytest.approx(0.2661)
    assert np.isnan(got[3])
    for name, (xs, ys, ss) in figS8.PAPER.items():
        assert len(xs) == len(ys) == len(ss), name


def test_control_variate_error_is_precise_near_the_reference():
    from spinlens.features import spin_features
    from spinlens.limit import infinite_diversity_solution
    from spinlens.observables import test_error
    from spinlens.prompts import PromptDistribution

    dist = PromptDistribution(5, 30)
    W_star = infinite_diversity_solution(dist, 0.01)
    W = W_star + 0.01 * np.random.default_rng(0).standard_normal(W_star.shape)
    exact = test_error(W, dist)
    cv, mc = [], []
    for seed in range(5):
        p = dist.sample(2000, rng=seed)
        f = spin_features(p)
        cv.append(figS8.control_variate_error(f.predict(W), p.y, f.predict(W_star), test_error(W_star, dist)))
        mc.append(np.mean((f.predict(W) - p.y) ** 2))
    assert np.max(np.abs(np.array(cv) - exact)) < 2e-3
    assert np.std(cv) < 0.2 * np.std(mc)


def test_figS8_run_tiny(tmp_path, monkeypatch):
    tiny = {a: figS8.ArchTraining(60, 64, 2e-2, weight_decay=t.weight_decay, optimizer=t.optimizer,
                                  overrides=(("n_layers", 1), ("d_model", 8), ("d_mlp", 16)) if a == "tf" else ())
            for a, t in figS8.training_plan(True).items()}
    monkeypatch.setattr(figS8, "QUICK_N", (20, 40))
    monkeypatch.setattr(figS8, "training_plan", lambda quick=True: tiny)
    monkeypatch.setattr(figS8, "compute", functools.partial(figS8.compute, d=3, n_prompts=300, n_test=300,
                                                            n_bridge=200, progress=False, n_jobs=1))
    from spinlens.reproduce import run_figure

    res = run_figure("figS8", tmp_path, quick=True, seed=0)
    folder = tmp_path / "figS8"
    for name in ("figS8.png", "figS8.pdf", "data.csv", "data.nc", "bridge.csv", "run.json", "paper_vs_ours.csv"):
        assert (folder / name).exists(), name
    run = json.loads((folder / "run.json").read_text())
    assert run["figure"] == "figS8" and run["seed"] == 0
    assert "ordering_as_paper" in res["summary"]
    assert len(res["bridge"]) == 2 * 3  # sla, fla, mhla at two values of N
    header = (folder / "data.csv").read_text().splitlines()[0].split(",")
    assert {"N", "cavity", "w_star", "sla_mean", "tf_mean", "paper_sa"} <= set(header)


def test_figS8_worker_processes_give_the_in_process_numbers():
    """n_jobs=2 (spawned workers, one thread each) gives the numbers of one process, up to float rounding."""
    plan = {a: figS8.ArchTraining(40, 32, 2e-2, weight_decay=t.weight_decay, optimizer=t.optimizer,
                                  overrides=(("n_layers", 2), ("d_model", 8), ("d_mlp", 16)) if a == "tf" else ())
            for a, t in figS8.training_plan(True).items()}
    kw = dict(archs=("sla", "mhla", "tf"), d=3, n_prompts=200, n_test=200, n_bridge=100, plan=plan, rng=3,
              progress=False)
    one = figS8.compute((8, 16, 12), n_jobs=1, **kw)
    two = figS8.compute((8, 16, 12), n_jobs=2, **kw)
    a, b = one["dataset"], two["dataset"]
    np.testing.assert_array_equal(a.cavity, b.cavity)  # numpy only: the same to the bit
    np.testing.assert_array_equal(a.w_star, b.w_star)
    np.testing.assert_allclose(a.test_error, b.test_error, rtol=1e-4)  # torch: one thread vs the default
    assert list(a.n_context.values) == [8, 16, 12]
    assert [(r["arch"], r["n_context"]) for r in one["bridge"]] == [(r["arch"], r["n_context"]) for r in two["bridge"]]


@pytest.mark.slow
def test_figS8_quick_shows_the_paper_ordering(tmp_path):
    """The real quick mode (minutes): linear models on the cavity curve, SA and TF above it."""
    res = figS8.run(tmp_path, quick=True, seed=0)
    s = res["summary"]
    assert s["ordering_as_paper"], s
    assert s["bridge_min_cos_w_star"] > 0.98
    rows = {(r["quantity"], r["x"]): r for r in res["comparison"]}
    for N in figS8.QUICK_N:
        assert rows[("test error, cavity", N)]["within"] is True
