"""Mixing diagnostics (split-R̂, bulk/tail ESS) against closed forms, ArviZ (optional) and the samplers."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from spinlens import PromptDistribution, build_hamiltonian, solve
from spinlens.errors import InvalidParameterError
from spinlens.solvers import GaussianSampler, LangevinSampler
from spinlens.solvers.mixing import ess_bulk, ess_tail, mixing_diagnostics, split_rhat


def _ar1(rho, M, N, K, seed=0, shift=0.0):
    g = np.random.default_rng(seed)
    e = g.standard_normal((M, N, K))
    x = np.empty_like(e)
    x[:, 0] = e[:, 0] / np.sqrt(1 - rho * rho)  # stationary start
    for t in range(1, N):
        x[:, t] = rho * x[:, t - 1] + e[:, t]
    x[0] += shift
    return x


def test_ess_matches_the_ar1_closed_form():
    # AR(1) with coefficient ρ: integrated autocorrelation time (1 + ρ)/(1 − ρ)
    for rho in (0.0, 0.5, 0.8):
        x = _ar1(rho, 8, 2000, 20, seed=1)
        expect = x.shape[0] * x.shape[1] * (1 - rho) / (1 + rho)
        got = ess_bulk(x)
        assert np.median(got) == pytest.approx(expect, rel=0.1)


def test_rhat_near_one_for_mixed_chains_and_large_for_stuck_ones():
    x = _ar1(0.3, 4, 1000, 5, seed=2)
    assert np.all(split_rhat(x) < 1.01)
    assert np.all(split_rhat(_ar1(0.3, 4, 1000, 5, seed=2, shift=3.0)) > 1.1)  # one chain elsewhere
    trend = x + np.linspace(0, 5, 1000)[None, :, None]  # a drift inside each chain: only the split sees it
    assert np.all(split_rhat(trend) > 1.1)
    # a chain with a different spread but the same centre: the tail (folded) R̂ sees it
    wide = x.copy()
    wide[0] *= 4
    assert np.all(split_rhat(wide) > 1.05)


def test_tail_ess_and_constant_parameters():
    x = _ar1(0.0, 4, 1000, 3, seed=3)
    assert np.all(ess_tail(x) > 2000)
    c = np.ones((4, 100, 2))
    assert np.all(ess_bulk(c) == 400) and np.all(split_rhat(c) == 1.0)


def test_diagnostics_need_enough_draws():
    with pytest.raises(InvalidParameterError, match="'draws'.*at least 8"):
        mixing_diagnostics(np.zeros((2, 5, 1)))
    with pytest.raises(InvalidParameterError, match="'draws'"):
        mixing_diagnostics(np.zeros(10))


def test_against_arviz():
    az = pytest.importorskip("arviz")
    for M, N, rho, shift in [(4, 500, 0.9, 0.3), (2, 101, 0.5, 0.0), (8, 57, 0.99, 0.0), (3, 1000, -0.3, 0.0)]:
        x = _ar1(rho, M, N, 3, seed=M + N, shift=shift)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = np.array([[float(az.rhat(x[:, :, k], method="rank")), float(az.ess(x[:, :, k], method="bulk")),
                             float(az.ess(x[:, :, k], method="tail"))] for k in range(3)])
        ours = np.stack([split_rhat(x), ess_bulk(x), ess_tail(x)], axis=1)
        np.testing.assert_allclose(ours, ref, rtol=1e-10)


def _H(lam, d=2, P=500):
    return build_hamiltonian(PromptDistribution(d=d, n_context=10).sample(P, rng=0), l2_strength=lam)


def test_gaussian_sampler_reports_mixing():
    r = GaussianSampler(n_samples=1000).solve(_H(0.2), beta=5.0, rng=0)
    mix = r.extras["mixing"]
    assert r.converged and mix["mixed"] and mix["rhat_max"] < 1.01 and mix["ess_bulk_min"] > 1000
    assert "split-R̂" in r.message


@pytest.mark.parametrize("beta", [1e-12, 1.0])
def test_langevin_at_tiny_lambda_is_not_converged(beta):
    # λ = 1e-12: the zero-feature spins relax over ~1e12 steps; the chains cannot have mixed
    with pytest.warns(Warning, match="not mixed"):
        r = solve(_H(1e-12), "langevin", beta=beta, rng=0, n_steps=400, n_chains=4)
    assert not r.converged and not r.extras["mixing"]["mixed"]
    assert r.extras["mixing"]["rhat_max"] > 1.01


def test_langevin_too_few_draws_is_not_converged():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = LangevinSampler(n_steps=20, n_chains=2).solve(_H(0.5), beta=5.0, rng=0)
    assert not r.converged and "too few" in r.message


@pytest.mark.parametrize("lam", ["1e-12", "0.01"])
def test_cli_langevin_at_beta_1e_12_says_not_converged(capsys, lam):
    # the CLI fuzz case (solve --method langevin --beta 1e-12): exit 3, converged false, and why (R̂, ESS) in the JSON
    from spinlens.cli.main import main

    code = main(["solve", "--D", "2", "--N", "3", "--P", "20", "--method", "langevin", "--beta", "1e-12", "--lam", lam,
                 "--json"])
    cap = capsys.readouterr()
    out = json.loads(cap.out)
    assert code == 3 and out["converged"] is False and "did not converge" in cap.err
    mix = out["mixing"]
    assert mix["mixed"] is False and mix["rhat_max"] > mix["rhat_threshold"] == 1.01
    assert min(mix["ess_bulk_min"], mix["ess_tail_min"]) < mix["ess_threshold"] == 400
    assert "split-R̂" in out["message"] and "not mixed" in out["message"]


def test_cli_sample_reports_mixing_and_converges_only_when_it_passes(capsys):
    # exact Gaussian draws mix at any β > 0 (iid draws): converged, with R̂ and ESS that pass the thresholds
    from spinlens.cli.main import main

    code = main(["solve", "--D", "2", "--N", "3", "--P", "20", "--method", "sample", "--beta", "1e-12", "--json"])
    out = json.loads(capsys.readouterr().out)
    mix = out["mixing"]
    assert code == 0 and out["converged"] is True and mix["mixed"] is True
    assert mix["rhat_max"] < 1.01 and min(mix["ess_bulk_min"], mix["ess_tail_min"]) >= 400
