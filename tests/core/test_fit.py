"""spinlens.training.fit, the one training loop, and the training time estimate (spinlens.progress)."""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest
import torch

from spinlens.progress import TimeEstimate, count_step, estimate_training_time
from spinlens.training import fit


def _regression(seed=0, n=64, d=5):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = X @ torch.arange(1.0, d + 1, dtype=torch.float64)
    return X, y


def _linear(seed=1, d=5):
    torch.manual_seed(seed)
    return torch.nn.Linear(d, 1, dtype=torch.float64)


def test_fit_is_a_plain_torch_loop_bit_for_bit():
    """Independent check: fit against a hand-written Adam loop with a schedule and clipping."""
    X, y = _regression()
    sched = lambda s: 0.05 * (1 - s / 40)  # noqa: E731
    m1, m2 = _linear(), _linear()
    res = fit(m1, lambda m, s: ((m(X[s % 4::4])[:, 0] - y[s % 4::4]) ** 2).mean(), steps=40, optimizer="adamw",
              lr=0.05, weight_decay=0.1, betas=(0.8, 0.95), lr_at=sched, grad_clip=0.5)
    opt = torch.optim.AdamW(m2.parameters(), lr=0.05, weight_decay=0.1, betas=(0.8, 0.95))
    losses = []
    for s in range(40):
        for gp in opt.param_groups:
            gp["lr"] = sched(s)
        loss = ((m2(X[s % 4::4])[:, 0] - y[s % 4::4]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(m2.parameters()), 0.5)
        opt.step()
        losses.append(float(loss.detach()))
    assert res.converged and res.n_steps == 40 and res.message is None
    np.testing.assert_array_equal(res.losses, losses)
    for a, b in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(a, b)


def test_masks_train_only_their_entries_and_decay_inside():
    X, y = _regression()
    m = _linear()
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    mask = torch.zeros(1, 5, dtype=torch.bool)
    mask[0, [1, 3]] = True
    res = fit(m, lambda mm, s: ((mm(X)[:, 0] - y) ** 2).mean(), steps=20, lr=0.05, weight_decay=0.5,
              masks={"weight": mask})
    assert res.n_trainable == 2
    assert torch.equal(m.weight[~mask], before["weight"][~mask]) and torch.equal(m.bias, before["bias"])
    assert (m.weight[mask] != before["weight"][mask]).all()
    assert all(p.requires_grad for p in m.parameters()) and all(p.grad is None for p in m.parameters())


def test_params_subset_freezes_the_rest_and_restores_flags():
    X, y = _regression()
    m = _linear()
    m.weight.requires_grad_(True)
    b0 = m.bias.detach().clone()
    res = fit(m, lambda mm, s: ((mm(X)[:, 0] - y) ** 2).mean(), steps=5, lr=0.1, params=["weight"])
    assert res.n_trainable == 5 and torch.equal(m.bias, b0) and m.bias.requires_grad


def test_divergence_stops_at_the_first_non_finite_loss():
    X, y = _regression()
    seen = []
    res = fit(_linear(), lambda mm, s: ((mm(X)[:, 0] - y) ** 2).mean() * (1e308 if s >= 3 else 1.0), steps=50,
              lr=0.1, on_step=lambda mm, s, v: seen.append(s))
    assert not res.converged and res.n_steps == 4 and not np.isfinite(res.losses[-1])
    assert np.isfinite(res.losses[:3]).all() and "diverged at step 4" in res.message
    assert seen == [1, 2, 3]  # no callback after the diverged step


def test_a_loss_of_none_stops_and_counts_as_converged():
    X, y = _regression()
    res = fit(_linear(), lambda mm, s: None if s == 7 else ((mm(X)[:, 0] - y) ** 2).mean(), steps=50, lr=0.1)
    assert res.converged and res.n_steps == 7 and "stopped" in res.message


def test_on_estimate_runs_before_the_first_step_and_the_line_on_a_terminal(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    X, y = _regression()
    order = []
    tty = Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    est = TimeEstimate({"steps": 1.0})

    def loss(mm, s):
        order.append("step")
        return ((mm(X)[:, 0] - y) ** 2).mean()

    res = fit(_linear(), loss, steps=3, lr=0.1, progress=True, label="demo", time_estimate=est,
              on_estimate=lambda e: order.append(e))
    assert order == [est, "step", "step", "step"] and res.time_estimate is est
    text = tty.getvalue()
    assert "demo: 3/3" in text and text.count("\n") == 1


def test_counted_flops_of_known_products():
    lin = torch.nn.Linear(7, 3, dtype=torch.float64)
    X = torch.zeros(11, 7, dtype=torch.float64)
    c = count_step(lambda: lin(X))
    assert c["flops"] == 3 * 2 * 11 * 7 * 3 and c["calls"] == 1 and c["bytes"] == [3 * 11 * 3 * 8, 0, 0]
    assert c["matrices"] == 3
    A, B = torch.zeros(4, 5, 6), torch.zeros(4, 6, 2, requires_grad=True)
    for f in (lambda: torch.einsum("bij,bjk->bik", A, B), lambda: A @ B):
        c = count_step(f)
        assert c["flops"] == 3 * 2 * 4 * 5 * 6 * 2 and c["matrices"] == 3 * 4
    big = torch.zeros(1 << 20, requires_grad=True)  # 4 MB outputs: the second class of bytes
    assert count_step(lambda: big * 2.0)["bytes"] == [0, 3 * 4 * (1 << 20), 0]


def test_training_estimate_scales_and_counts_memory():
    rates = {"gemm_flops": 1e9, "stream_bytes": [1e9] * 3, "op_s": 1e-5, "tensor_step_s": 1e-5, "matrix_s": 1e-7}
    m = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    probe = torch.zeros(8, 16)
    a = estimate_training_time(m, probe, steps=100, rates=rates)
    b = estimate_training_time(m, probe, steps=300, rates=rates)
    assert b.parts["steps"] == pytest.approx(3 * a.parts["steps"]) and b.seconds == pytest.approx(3 * a.seconds)
    assert a.parts["steps"] > 100 * 3 * 2 * 8 * (16 * 32 + 32) / 1e9  # at least the products
    n = sum(p.numel() for p in m.parameters())
    assert a.memory.parts["parameters"] == 4 * n and a.memory.parts["gradients_and_moments"] == 12 * n
    assert all(p.grad is None for p in m.parameters()) and m.training  # the probe leaves no trace
    assert "GiB" in a.describe() and "memory_estimate_gib" in a.to_dict()


def test_training_commands_carry_and_check_the_estimate(tmp_path, monkeypatch, capsys):
    from spinlens.cli.main import main

    monkeypatch.chdir(tmp_path)
    assert main(["zoo", "train", "--arch", "sla", "--D", "2", "--N", "4", "--P", "64", "--steps", "20",
                 "--test-prompts", "16", "--json", "--out", "z"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["time_estimate_s"] > 0 and out["elapsed_s"] > 0 and out["memory_estimate_gib"] > 0
    # beyond an hour: refused before any work, one line naming --yes and how to shrink the job
    code = main(["zoo", "train", "--arch", "sla", "--D", "2", "--N", "4", "--P", "64", "--steps", "100000000",
                 "--test-prompts", "16", "--out", "z2"])
    err = capsys.readouterr().err
    assert code == 2 and "--yes" in err and "fewer --steps" in err and not (tmp_path / "z2").exists()
    code = main(["train", "--D", "2", "--N", "4", "--P", "64", "--epochs", "1000000000", "--out", "t2"])
    err = capsys.readouterr().err
    assert code == 2 and "--yes" in err and "fewer --epochs" in err
    assert main(["train", "--D", "2", "--N", "4", "--P", "64", "--epochs", "5", "--out", "t"]) == 0
    assert "spinlens train: estimate about" in capsys.readouterr().err
    run = json.loads((tmp_path / "t" / "run.json").read_text())
    assert run["summary"]["time_estimate_s"] > 0 and run["summary"]["train_elapsed_s"] > 0
