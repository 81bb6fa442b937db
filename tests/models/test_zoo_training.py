"""Training of zoo models: every architecture beats the no-context baseline; SLA reaches the ridge minimiser."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spinlens.bridge import bridge_report
from spinlens.errors import InvalidParameterError
from spinlens.hamiltonian import build_hamiltonian
from spinlens.models.zoo import ARCH_NAMES, ZooConfig, build_model
from spinlens.prompts import PromptDistribution
from spinlens.solvers import ExactSolver
from spinlens.training_online import OnlineTrainResult, mse, train_online

D, N = 3, 10

# fraction of the baseline to beat: the linear models can reach (D+1)/(N+D+1) ≈ 0.29, a softmax kernel smoother less
THRESHOLD = {"sla": 0.6, "sla-separate": 0.6, "fla": 0.6, "mhla": 0.6, "sa": 0.9, "tf": 0.9}

# steps / lr per architecture for a short run at D=3, N=10 (a few seconds each on one core)
SHORT = {
    "sla": (150, 3e-2, {}),
    "sla-separate": (150, 3e-2, {}),
    "fla": (400, 3e-2, {}),
    "mhla": (400, 3e-2, {}),
    "sa": (300, 1e-2, {}),
    "tf": (250, 1e-2, {"n_layers": 1, "d_model": 16, "d_mlp": 32}),
}


@pytest.mark.parametrize("arch", ARCH_NAMES)
def test_short_training_beats_no_context_baseline(arch):
    dist = PromptDistribution(D, N)
    test = dist.sample(2000, rng=123)
    baseline = float(np.mean(test.y**2))  # predicting 0: E[y²] = 1
    assert baseline == pytest.approx(1.0, abs=0.1)
    steps, lr, kw = SHORT[arch]
    model = build_model(ZooConfig(arch=arch, d=D, **kw), rng=0)
    res = train_online(model, dist, test, n_steps=steps, batch_size=128, lr=lr, rng=1)
    assert isinstance(res, OnlineTrainResult)
    assert res.history.train_loss.shape == (steps,)
    assert res.test_loss == pytest.approx(mse(model, test), rel=1e-6)
    assert res.test_loss < THRESHOLD[arch] * baseline, f"{arch}: {res.test_loss:.3f} vs baseline {baseline:.3f}"
    # the history starts at the untrained model and ends at the reported test loss
    assert res.history.test_loss.values[-1] == pytest.approx(res.test_loss)
    assert res.history.eval_step.values[0] == 0


def test_sla_full_batch_reaches_exact_ridge_minimiser():
    """Adam + coupled weight decay λ₀ on a fixed set converges to the exact minimiser of E with λ = λ₀/2."""
    dist = PromptDistribution(D, N)
    train = dist.sample(400, rng=0)
    wd = 0.2
    model = build_model(ZooConfig("sla", d=D, dtype="float64"), rng=0)
    train_online(model, train, n_steps=3000, batch_size=None, lr=2e-2, weight_decay=wd, rng=0)
    H = build_hamiltonian(train, l2_strength=wd / 2)
    W_exact = ExactSolver(n_probes=0).solve(H).W
    W = model.merged_weights().detach().numpy()
    assert np.linalg.norm(W - W_exact) / np.linalg.norm(W_exact) < 2e-3


def test_fixed_set_minibatches_and_bridge():
    dist = PromptDistribution(D, N)
    train = dist.sample(1000, rng=0)
    model = build_model(ZooConfig("mhla", d=D), rng=0)
    res = train_online(model, train, n_steps=300, batch_size=100, lr=3e-2, weight_decay=1e-3, rng=0)
    assert res.settings["online"] is False and res.settings["n_train_prompts"] == 1000
    assert np.isnan(res.test_loss)  # no test set given for a fixed set
    rep = bridge_report(model, dist, l2_strength=5e-4, n_prompts=2000, rng=1)
    assert rep.cos_w_star > 0.95 and rep.r2_vs_gd > 0.95 and rep.r2_eff_vs_model > 0.95
    assert rep.test_error_model < 1.2 * rep.test_error_gd


def test_training_is_reproducible():
    dist = PromptDistribution(D, N)
    outs = []
    for _ in range(2):
        m = build_model(ZooConfig("mhla", d=D), rng=5)
        train_online(m, dist, n_steps=20, batch_size=32, rng=9, n_test=50)
        outs.append(torch.cat([p.detach().ravel() for p in m.parameters()]))
    assert torch.equal(outs[0], outs[1])


def test_finite_pool_is_drawn_once():
    dist = PromptDistribution(D, N, n_tasks=1)
    m = build_model(ZooConfig("sla", d=D), rng=0)
    res = train_online(m, dist, n_steps=200, batch_size=64, lr=3e-2, rng=0, n_test=200)
    # one pretraining task (drawn once, not per step): memorised, so the training loss falls well below the ICL loss
    assert res.train_loss < 0.7 * res.test_loss


def test_bad_parameters():
    dist = PromptDistribution(D, N)
    m = build_model(ZooConfig("fla", d=D), rng=0)
    with pytest.raises(InvalidParameterError, match="'n_steps'"):
        train_online(m, dist, n_steps=0)
    with pytest.raises(InvalidParameterError, match="'optimizer'"):
        train_online(m, dist, optimizer="lbfgs")
    with pytest.raises(InvalidParameterError, match="'batch_size'"):
        train_online(m, dist, batch_size=None)
    with pytest.raises(InvalidParameterError, match="'data'"):
        train_online(m, np.zeros((3, 4, 11)))
    with pytest.raises(InvalidParameterError, match="'lr'"):
        train_online(m, dist, lr=-1.0)
