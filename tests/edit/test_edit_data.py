"""The edit prompt helpers are thin wrappers over spinlens.prompts.PromptDistribution."""

import numpy as np
import pytest

from spinlens.edit._data import sample_regression_prompts, shifted_tasks
from spinlens.errors import InvalidParameterError
from spinlens.prompts import PromptDistribution


def test_unshifted_prompts_are_the_core_distribution_bit_for_bit():
    for kw in ({}, {"corr": 0.4}, {"sigma_w": 2.0}):
        Z, y, W = sample_regression_prompts(50, 4, 7, rng=3, **kw)
        p = PromptDistribution(4, 7, **kw).sample(50, rng=3)
        assert np.array_equal(Z, p.Z) and np.array_equal(y, p.y) and np.array_equal(W, p.w)


def test_fixed_task_and_clean_target_with_noise():
    w = np.array([1.0, -2.0, 0.5])
    Z, y, W = sample_regression_prompts(400, 3, 5, w=w, sigma_eps=0.5, rng=0)
    assert np.array_equal(W, np.tile(w, (400, 1)))
    # target: noise-free w·x_q/√D; context labels carry noise of std 0.5
    np.testing.assert_allclose(y, Z[:, :3, 5] @ w / np.sqrt(3), rtol=1e-12, atol=1e-12)
    resid = Z[:, 3, :5] - np.einsum("pdn,d->pn", Z[:, :3, :5], w) / np.sqrt(3)
    assert abs(resid.std() - 0.5) < 0.03
    assert np.all(Z[:, 3, 5] == 0)


def test_anisotropic_task_prior_and_position_correlation():
    cov = np.diag([4.0, 1.0, 0.25])
    _, _, W = sample_regression_prompts(20000, 3, 2, task_cov=cov, rng=1)
    np.testing.assert_allclose(np.cov(W.T), cov, atol=0.08)
    Z, _, _ = sample_regression_prompts(20000, 3, 2, corr=0.6, rng=2)
    # positions of one prompt are correlated with coefficient corr (core convention), coordinates are not
    assert abs(np.corrcoef(Z[:, 0, 0], Z[:, 0, 1])[0, 1] - 0.6) < 0.03
    assert abs(np.corrcoef(Z[:, 0, 0], Z[:, 1, 0])[0, 1]) < 0.03


def test_bad_input():
    dist = PromptDistribution(3, 4)
    with pytest.raises(InvalidParameterError, match="task_cov"):
        shifted_tasks(dist, 5, task_cov=-np.eye(3))
    with pytest.raises(InvalidParameterError, match="'w'"):
        shifted_tasks(dist, 5, w=np.ones(4))
    with pytest.raises(InvalidParameterError, match="corr"):
        sample_regression_prompts(5, 3, 4, corr=1.0)
