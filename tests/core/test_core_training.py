import numpy as np
import pytest
import torch

from spinlens.conventions import l2_strength_from_weight_decay
from spinlens.hamiltonian import build_hamiltonian
from spinlens.models.linear_attention import MergedLinearAttention, SeparateLinearAttention
from spinlens.prompts import PromptDistribution
from spinlens.solvers import solve
from spinlens.training import train_model


def test_trained_merged_equals_exact_minimiser():
    dist = PromptDistribution(d=2, n_context=10)
    train = dist.sample(300, rng=0)
    wd = 0.2
    res = train_model(MergedLinearAttention(2, rng=1), train, optimizer="adam", lr=0.02, weight_decay=wd, epochs=3000, progress=False, eval_every=100)
    H = build_hamiltonian(train, l2_strength=l2_strength_from_weight_decay(wd))
    ex = solve(H, "exact").W
    np.testing.assert_allclose(res.W, ex, atol=2e-4)
    # and not the minimiser with λ = weight decay (the map matters)
    wrong = solve(build_hamiltonian(train, l2_strength=wd), "exact").W
    assert np.abs(res.W - wrong).max() > 1e-2


def test_separate_trains_and_mini_batch():
    dist = PromptDistribution(d=3, n_context=20)
    train, test = dist.sample(512, rng=0), dist.sample(256, rng=1)
    res = train_model(SeparateLinearAttention(3, rng=2), train, test, lr=0.01, epochs=60, batch_size=64, rng=3, progress=False)
    h = res.history
    assert h["train_loss"].values[-1] < h["train_loss"].values[0]
    assert res.final_test_loss < 1.0  # beats predicting 0 (E[y²] = 1)
    assert res.W.shape == (4, 4)
    with torch.no_grad():
        np.testing.assert_allclose(res.W, (res.model.W_q.T @ res.model.W_k).numpy())


def test_training_bad_input():
    from spinlens.errors import InvalidParameterError

    p = PromptDistribution(d=2, n_context=3).sample(8, rng=0)
    with pytest.raises(InvalidParameterError, match="'optimizer'"):
        train_model(MergedLinearAttention(2), p, optimizer="lbfgs")
    with pytest.raises(InvalidParameterError, match="'lr'"):
        train_model(MergedLinearAttention(2), p, lr=0)
