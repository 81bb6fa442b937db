"""Bayes baselines (ridge, dMMSE) against brute-force Bayes computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import logsumexp

from spinlens.errors import InvalidParameterError, InvalidPromptsError
from spinlens.theory.baselines import dmmse_predict, ridge_predict, split_prompts


def make_prompts(w, n_context, sigma_eps, rng, sigma_x=1.0):
    """Spin-glass layout: Z (P, D+1, N+1), y = w·x/√D + ε, query label 0. Returns Z and the query target."""
    P, D = w.shape
    X = sigma_x * rng.standard_normal((P, n_context + 1, D))
    y = np.einsum("pnd,pd->pn", X, w) / math.sqrt(D) + sigma_eps * rng.standard_normal((P, n_context + 1))
    Z = np.zeros((P, D + 1, n_context + 1))
    Z[:, :D, :] = np.transpose(X, (0, 2, 1))
    Z[:, D, :n_context] = y[:, :n_context]
    return Z, y[:, n_context]


def test_split_prompts_layout():
    rng = np.random.default_rng(0)
    Z, _ = make_prompts(rng.standard_normal((2, 3)), 4, 0.1, rng)
    X, y, xq = split_prompts(Z, d=3)
    assert X.shape == (2, 4, 3) and y.shape == (2, 4) and xq.shape == (2, 3)
    assert np.array_equal(X[1, 2], Z[1, :3, 2]) and y[0, 3] == Z[0, 3, 3] and np.array_equal(xq[0], Z[0, :3, 4])
    with pytest.raises(InvalidPromptsError, match="expected"):
        split_prompts(Z, d=4)
    with pytest.raises(InvalidPromptsError):
        split_prompts(np.zeros(5))


@pytest.mark.parametrize("sigma_w", [1.0, 0.7])
def test_ridge_equals_numeric_integration_posterior_mean(sigma_w):
    # D = 2: posterior mean of w by quadrature on a fine grid, prediction x_q·E[w|data]/√D
    rng = np.random.default_rng(1)
    D, N, sig = 2, 3, 0.6
    w = sigma_w * rng.standard_normal((3, D))
    Z, _ = make_prompts(w, N, sig, rng)
    X, y, xq = split_prompts(Z)
    g = np.linspace(-7 * sigma_w, 7 * sigma_w, 1401)
    W1, W2 = np.meshgrid(g, g, indexing="ij")
    grid = np.stack([W1.ravel(), W2.ravel()], 1)
    pred = ridge_predict(Z, sigma_w=sigma_w, sigma_eps=sig)
    for p in range(3):
        resid = y[p][None, :] - grid @ X[p].T / math.sqrt(D)
        logpost = -(resid**2).sum(1) / (2 * sig**2) - (grid**2).sum(1) / (2 * sigma_w**2)
        wts = np.exp(logpost - logsumexp(logpost))
        post_mean = wts @ grid
        assert pred[p] == pytest.approx(xq[p] @ post_mean / math.sqrt(D), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("N,D", [(3, 6), (8, 4)])
def test_ridge_noiseless_is_the_small_noise_limit(N, D):
    rng = np.random.default_rng(2)
    Z, yq = make_prompts(rng.standard_normal((5, D)), N, 0.0, rng)
    p0 = ridge_predict(Z, sigma_eps=0.0)
    assert np.all(np.isfinite(p0))
    assert np.allclose(p0, ridge_predict(Z, sigma_eps=1e-7), atol=1e-6)
    if N >= D:  # enough context: exact recovery
        assert np.allclose(p0, yq, atol=1e-10)


def test_ridge_is_bayes_optimal_for_fresh_tasks():
    # MSE of ridge matches the theoretical posterior predictive variance + noise, and beats perturbed ridges
    rng = np.random.default_rng(3)
    D, N, sig, P = 4, 6, 0.5, 40_000
    Z, yq = make_prompts(rng.standard_normal((P, D)), N, sig, rng)
    X, _, xq = split_prompts(Z)
    A = X / math.sqrt(D)
    post_cov = np.linalg.inv(np.einsum("pni,pnj->pij", A, A) / sig**2 + np.eye(D))
    expected = sig**2 + np.einsum("pi,pij,pj->p", xq, post_cov, xq).mean() / D
    mse = np.mean((ridge_predict(Z, sigma_eps=sig) - yq) ** 2)
    assert mse == pytest.approx(expected, rel=0.03)
    for wrong in (0.1, 2.0):
        assert mse < np.mean((ridge_predict(Z, sigma_eps=wrong) - yq) ** 2)


def test_dmmse_equals_explicit_enumeration():
    rng = np.random.default_rng(4)
    D, N, K, sig = 3, 4, 5, 0.8
    pool = rng.standard_normal((K, D))
    Z, _ = make_prompts(pool[rng.integers(0, K, 6)], N, sig, rng)
    pred = dmmse_predict(Z, pool, sigma_eps=sig)
    for p in range(6):
        # explicit Bayes: p(w_j | data) ∝ Π_i N(y_i; w_j·x_i/√D, σ²) · (1/K)
        like = np.array(
            [np.prod([math.exp(-((Z[p, D, i] - pool[j] @ Z[p, :D, i] / math.sqrt(D)) ** 2) / (2 * sig**2))
                      / math.sqrt(2 * math.pi * sig**2) for i in range(N)]) / K for j in range(K)]
        )
        post = like / like.sum()
        ref = sum(post[j] * pool[j] @ Z[p, :D, N] for j in range(K)) / math.sqrt(D)
        assert pred[p] == pytest.approx(ref, rel=1e-10, abs=1e-12)


def test_dmmse_small_noise_is_stable_and_noiseless_limit():
    rng = np.random.default_rng(5)
    D, N, K = 4, 5, 50
    pool = rng.standard_normal((K, D))
    idx = rng.integers(0, K, 20)
    Z, yq = make_prompts(pool[idx], N, 0.0, rng)
    for sig in (1e-6, 0.0):  # huge logits: max-subtracted softmax; σ = 0: the argmin limit
        pred = dmmse_predict(Z, pool, sigma_eps=sig)
        assert np.all(np.isfinite(pred))
        assert np.allclose(pred, yq, atol=1e-8)
    # duplicated pool members share the posterior mass in the limit
    pool2 = np.vstack([pool, pool[:1]])
    Z1, yq1 = make_prompts(pool[:1], N, 0.0, rng)
    assert dmmse_predict(Z1, pool2, 0.0)[0] == pytest.approx(yq1[0], abs=1e-10)


def test_dmmse_without_context_is_pool_mean():
    rng = np.random.default_rng(6)
    pool = rng.standard_normal((7, 3))
    Z, _ = make_prompts(pool[:2], 0, 0.1, rng)
    assert np.allclose(dmmse_predict(Z, pool, 0.1), Z[:, :3, 0] @ pool.mean(0) / math.sqrt(3))
    assert np.allclose(ridge_predict(Z, sigma_eps=0.1), 0.0)


def test_dmmse_approaches_ridge_as_pool_grows():
    rng = np.random.default_rng(7)
    D, N, sig = 2, 3, 0.5
    Z, _ = make_prompts(rng.standard_normal((300, D)), N, sig, rng)  # fresh Gaussian tasks
    r = ridge_predict(Z, sigma_eps=sig)
    gaps = []
    for K in (10, 300, 30_000):
        pool = rng.standard_normal((K, D))
        gaps.append(np.mean((dmmse_predict(Z, pool, sig) - r) ** 2))
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 0.01 * np.mean(r**2)


def test_baselines_bad_input():
    rng = np.random.default_rng(8)
    Z, _ = make_prompts(rng.standard_normal((2, 3)), 4, 0.1, rng)
    with pytest.raises(InvalidParameterError, match="'sigma_eps'"):
        ridge_predict(Z, sigma_eps=-1)
    with pytest.raises(InvalidParameterError, match="'sigma_w'"):
        ridge_predict(Z, sigma_w=0)
    with pytest.raises(InvalidParameterError, match="'sigma_eps'"):
        dmmse_predict(Z, np.zeros((3, 3)), sigma_eps=float("nan"))
    with pytest.raises(InvalidParameterError, match="pool has shape"):
        dmmse_predict(Z, np.zeros((3, 4)), sigma_eps=0.1)
    Z[0, 0, 0] = np.nan
    with pytest.raises(InvalidPromptsError, match="non-finite"):
        ridge_predict(Z, sigma_eps=0.1)
