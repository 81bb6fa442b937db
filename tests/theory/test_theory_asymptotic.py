"""Asymptotic theory of Lu et al. (spinlens.theory.asymptotic) against published check values and closed forms."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.optimize import brentq

from spinlens.errors import InvalidParameterError, SolverDidNotConvergeWarning
from spinlens.theory import (
    M_kappa,
    M_kappa_derivative,
    infinite_diversity_closed_form,
    learning_curve,
    learning_curve_point,
    ridgeless_closed_form,
    solve_epsilon,
)
from spinlens.theory import asymptotic as asy

INF = math.inf


@pytest.fixture
def rng():
    return np.random.default_rng(12345)

# (alpha, tau, kappa, rho, lam), expected e_ICL, e_IDG, eps, absolute tolerance (None: relative 1e-6)
ROWS = [
    ("1", (0.5, 0.5, 0.1, 0.1, 0), 1.4898956781741148, None, None, None),
    ("2", (1, 0.5, 0.5, 0.01, 0), 1.2610769, 0.8018492, 1.6297333, None),
    ("3", (10, 0.5, 0.5, 0.01, 0), 0.8208493, 0.2463434, 0.3722922, None),
    ("4", (10, 2, 0.5, 0.01, 0), 0.8911639, 0.1123999, None, None),
    ("5", (1, 2, 2, 0.1, 0), 1.3210083, 1.1201667, None, None),
    ("6", (100, 0.2, 0.5, 0.01, 0), 0.8201714, 0.5046574, 2.4666060, None),
    ("7", (5, 0.3, 3, 0.5, 0), 1.5998648, 1.5467621, None, None),
    ("8", (2, 4, 0.3, 0.2, 0), 1.2655148, 0.4605913, None, None),
    ("15a", (10, 0.99, 0.5, 0.01, 0), 33.2285, None, None, 5e-5),
    ("15b", (10, 1.01, 0.5, 0.01, 0), 33.7988, None, None, 5e-5),
    ("16a", (10, 0.99, 0.5, 0.01, 0.1), 0.66416, None, None, 5e-6),
    ("16b", (10, 1.01, 0.5, 0.01, 0.1), 0.66257, None, None, 5e-6),
    ("18", (1e4, 1e4, 0.5, 0, 0), 0.50008, 5e-5, None, 5e-6),
    ("19", (5, 2, INF, 0, 0), 1 / 3, 1 / 3, 0.0, None),
    ("20", (2, 0.5, INF, 0.1, 0), 1.2322581, 1.2322581, 1.55, None),
    ("21", (1, 25, INF, 0, 0.2205), 0.5220825, 0.5220825, 0.2287096, None),
    ("22", (5, 25, INF, 0, 0.2), 0.1902484, 0.1902484, None, None),
    ("23", (10, 25, INF, 0, 0.2020), 0.1174051, 0.1174051, None, None),
    # rows 9-14: the formula values quoted to 4 decimals (simulations in test_theory_simulate.py)
    ("9", (2, 2, 0.5, 0.1, 0.1), 1.0672, 0.4591, None, 5e-5),
    ("10", (2, 2, 0.5, 0.1, 1.0), 0.8849, 0.4142, None, 5e-5),
    ("11", (10, 0.5, 2, 0.01, 0.01), 0.6753, 0.5385, None, 5e-5),
    ("12", (1, 3, 4, 0.25, 0.3), 1.1020, 1.0212, None, 5e-5),
    ("13", (5, 1.5, 1, 0, 0.05), 0.5678, 0.2573, None, 5e-5),
    ("14", (5, 1.0, 8, 0.1, 0.5), 0.6528, 0.6170, None, 5e-5),
]


def _close(x, ref, atol):
    if atol is None:
        assert x == pytest.approx(ref, rel=1e-6, abs=1e-12)
    else:
        assert abs(x - ref) <= atol


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_check_values_table(row):
    _, inp, e_icl, e_idg, eps, atol = row
    r = learning_curve_point(*inp)
    assert r.converged and not r.divergent
    _close(r.icl_error, e_icl, atol)
    if e_idg is not None:
        _close(r.idg_error, e_idg, atol)
    if eps is not None:
        assert r.epsilon == pytest.approx(eps, rel=1e-6, abs=1e-12)
    assert r.g_task == pytest.approx(r.icl_error - r.idg_error)


def test_row17_g_task_theory():
    expected = {0.2: 0.8253, 0.6: 0.4385, 1.0: 0.1636, 2.0: 0.0301, 4.0: 0.0092, 32: 0.0008}
    for kappa, g in expected.items():
        assert learning_curve_point(10, 10, kappa, 0.01, 1e-6).g_task == pytest.approx(g, abs=5e-5)


# ------------------------------------------------------------------------------------------------
# M_kappa
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kappa", [1e-3, 0.1, 0.5, 0.999, 1.0, 1.5, 10.0, 1e6])
@pytest.mark.parametrize("z", [1e-8, 1e-3, 0.3, 1.0, 50.0])
def test_M_kappa_solves_its_quadratic_and_derivative(z, kappa):
    m = M_kappa(z, kappa)
    assert m > 0
    b = z + 1 - 1 / kappa
    terms = [abs(z / kappa * m * m), abs(b * m), 1.0]
    assert abs(z / kappa * m * m + b * m - 1.0) <= 1e-12 * max(terms)
    # derivative: the printed formula against implicit differentiation −M(1 + M/κ)/sqrt(b² + 4z/κ)
    mp = M_kappa_derivative(z, kappa)
    implicit = -m * (1 + m / kappa) / math.sqrt(b * b + 4 * z / kappa)
    assert mp == pytest.approx(implicit, rel=1e-10)
    # and a central finite difference (where z is not tiny)
    if z >= 0.3:
        h = 1e-5 * z
        fd = (M_kappa(z + h, kappa) - M_kappa(z - h, kappa)) / (2 * h)
        assert mp == pytest.approx(fd, rel=1e-6)


def test_M_kappa_small_kappa_is_cancellation_free():
    # κ → 0 with z fixed: R̂ has rank k ≪ d, so (1/d)tr(R̂+z)^-1 ≈ (1−κ)/z + κ/(1/κ + z) → 1/z
    for kappa in (1e-4, 1e-6, 1e-9):
        z = 0.5
        m = M_kappa(z, kappa)
        assert m == pytest.approx((1 - kappa) / z + kappa / (1 / kappa + z), rel=1e-6)


def test_M_kappa_infinite_and_large_kappa():
    z = np.array([0.1, 1.0, 7.0])
    assert np.allclose(M_kappa(z, INF), 1 / (1 + z), rtol=0, atol=1e-15)
    assert np.allclose(M_kappa_derivative(z, INF), -1 / (1 + z) ** 2, rtol=0, atol=1e-15)
    assert np.allclose(M_kappa(z, 1e9), 1 / (1 + z), rtol=1e-8)


def test_M_kappa_matches_wishart_spectrum(rng):
    d, k = 400, 200  # kappa = 0.5
    W = rng.standard_normal((k, d))
    ev = np.linalg.eigvalsh(W.T @ W / k)
    for z in (0.2, 1.0):
        assert np.mean(1 / (ev + z)) == pytest.approx(M_kappa(z, k / d), rel=0.02)
        assert -np.mean(1 / (ev + z) ** 2) == pytest.approx(M_kappa_derivative(z, k / d), rel=0.03)


def test_M_kappa_bad_input():
    with pytest.raises(InvalidParameterError, match="'z'"):
        M_kappa(0.0, 1.0)
    with pytest.raises(InvalidParameterError, match="'kappa'"):
        M_kappa(1.0, -1.0)


# ------------------------------------------------------------------------------------------------
# epsilon
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "p", [(2, 2, 0.5, 0.1, 0.1), (10, 0.5, 2, 0.01, 0.01), (1, 3, 4, 0.25, 0.3), (5, 0.3, 0.05, 0, 1e-8), (3, 50, 1, 1, 5)]
)
def test_epsilon_solves_self_consistency(p):
    a, t, k, r, lm = p
    eps = solve_epsilon(*p)
    xs = (1 + r) / a
    resid = 1 - t + t * lm / eps - eps * M_kappa(xs + eps, k)
    assert abs(resid) <= 1e-9 * (1 + t + t * lm / eps)


@pytest.mark.parametrize("kappa", [0.1, 0.5, 2.0, INF])
@pytest.mark.parametrize("tau", [0.2, 0.7, 0.95])
def test_ridgeless_xi_closed_form_equals_numeric_root(tau, kappa):
    a, r = 3.0, 0.2
    xs = (1 + r) / a
    xi = solve_epsilon(a, tau, kappa, r, 0.0)
    numeric = brentq(lambda e: e * M_kappa(xs + e, kappa) - (1 - tau), 1e-12, 1e6, xtol=1e-15, rtol=1e-15)
    assert xi == pytest.approx(numeric, rel=1e-12)
    # λ → 0⁺ of the general root
    assert solve_epsilon(a, tau, kappa, r, 1e-11) == pytest.approx(xi, rel=1e-8)


def test_epsilon_limits():
    assert solve_epsilon(2, 2, 0.5, 0.1, 0.0) == 0.0
    assert solve_epsilon(2, 1e8, 0.5, 0.1, 0.3) == pytest.approx(0.3, rel=1e-6)  # τ → ∞: ε → λ


# ------------------------------------------------------------------------------------------------
# cross-checks with the independent closed forms
# ------------------------------------------------------------------------------------------------
GRID = [
    (a, t, k, r)
    for a in (0.5, 2.0, 20.0)
    for t in (0.3, 0.9, 1.2, 5.0)
    for k in (0.2, 1.0, 3.0, INF)
    for r in (0.0, 0.3)
]


def test_general_formula_equals_ridgeless_closed_forms():
    for a, t, k, r in GRID:
        res = learning_curve_point(a, t, k, r, 0.0)
        icl, idg = ridgeless_closed_form(a, t, k, r)
        assert res.icl_error == pytest.approx(icl, rel=1e-9), (a, t, k, r)
        assert res.idg_error == pytest.approx(idg, rel=1e-9), (a, t, k, r)
        # continuity λ → 0⁺
        small = learning_curve_point(a, t, k, r, 1e-10)
        assert small.icl_error == pytest.approx(icl, rel=1e-5)
        assert small.idg_error == pytest.approx(idg, rel=1e-5)


def test_infinite_kappa_general_lambda_equals_explicit_forms():
    for a in (0.5, 2.0, 20.0):
        for t in (0.3, 1.0, 1.2, 5.0, 100.0):
            for r in (0.0, 0.3):
                for lm in (1e-6, 0.05, 0.5, 5.0):
                    res = learning_curve_point(a, t, INF, r, lm)
                    e, eps = infinite_diversity_closed_form(a, t, r, lm)
                    assert res.epsilon == pytest.approx(eps, rel=1e-9)
                    assert res.icl_error == pytest.approx(e, rel=1e-9)
                    assert res.idg_error == pytest.approx(e, rel=1e-9)


def test_infinite_kappa_ridgeless_tau_gt_1_formula():
    for a, t, r in [(5, 2, 0), (1, 3, 0.2), (10, 1.5, 0.01)]:
        xs = (1 + r) / a
        expected = 1 + r - 1 / (1 + xs) + (r + xs / (1 + xs)) / (t - 1)
        assert learning_curve_point(a, t, INF, r, 0).icl_error == pytest.approx(expected, rel=1e-12)
        if r == 0:
            assert expected == pytest.approx(t / ((t - 1) * (1 + a)), rel=1e-12)


# ------------------------------------------------------------------------------------------------
# limiting cases by hand
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kappa", [0.3, 2.0, INF])
@pytest.mark.parametrize("rho", [0.0, 0.5])
def test_gamma_zero_limit_gives_one_plus_rho(kappa, rho):
    # λ → ∞ forces Γ → 0, whose error is E[y²] = 1 + ρ for ICL and IDG
    r = learning_curve_point(2.0, 3.0, kappa, rho, 1e9)
    assert r.icl_error == pytest.approx(1 + rho, rel=1e-6)
    assert r.idg_error == pytest.approx(1 + rho, rel=1e-6)


@pytest.mark.parametrize("alpha,rho", [(1.0, 0.0), (5.0, 0.1), (0.3, 1.0)])
def test_tau_to_infinity_ridgeless_best_one_step_error(alpha, rho):
    xs = (1 + rho) / alpha
    r = learning_curve_point(alpha, 1e9, INF, rho, 0.0)
    assert r.icl_error == pytest.approx(rho + xs / (1 + xs), rel=1e-8)


def test_memorisation_to_icl_transition_limit():
    # α, τ → ∞, λ = 0: e_ICL → ρ + (1 − κ) for κ < 1 and → ρ for κ > 1; e_IDG → ρ
    for kappa, expected in [(0.5, 0.50008), (0.9, 0.1001), (1.1, 1.1e-4)]:
        r = learning_curve_point(1e4, 1e4, kappa, 0.0, 0.0)
        assert r.icl_error == pytest.approx(expected, abs=5e-5)
        assert r.idg_error < 2e-4


def test_errors_above_bayes_floor_and_ordered():
    rng = np.random.default_rng(3)
    for _ in range(200):
        a, t = 10 ** rng.uniform(-1, 2, size=2)
        k = 10 ** rng.uniform(-1.5, 1.5)
        r, lm = rng.uniform(0, 1), 10 ** rng.uniform(-4, 1)
        res = learning_curve_point(a, t, k, r, lm)
        assert res.converged
        assert res.icl_error >= r - 1e-12 and res.idg_error >= r - 1e-12


def test_ridgeless_threshold_is_divergent_with_flag():
    r = learning_curve_point(10, 1.0, 0.5, 0.01, 0.0)
    assert r.divergent and r.converged
    assert r.icl_error == INF and r.idg_error == INF
    assert "diverge" in r.message
    assert ridgeless_closed_form(10, 1.0, 0.5, 0.01) == (INF, INF)
    # with ridge the τ = 1 point is finite
    assert math.isfinite(learning_curve_point(10, 1.0, 0.5, 0.01, 0.1).icl_error)


# ------------------------------------------------------------------------------------------------
# validation, curves, non-convergence
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(alpha=0, tau=1), "alpha"),
        (dict(alpha=-1, tau=1), "alpha"),
        (dict(alpha=1, tau=0), "tau"),
        (dict(alpha=1, tau=INF), "tau"),
        (dict(alpha=1, tau=1, kappa=0), "kappa"),
        (dict(alpha=1, tau=1, kappa=-INF), "kappa"),
        (dict(alpha=1, tau=1, kappa="x"), "kappa"),
        (dict(alpha=1, tau=1, rho=-0.1), "rho"),
        (dict(alpha=1, tau=1, lam_lu=-1e-9), "lam_lu"),
        (dict(alpha=float("nan"), tau=1), "alpha"),
    ],
)
def test_bad_inputs_name_the_parameter(kwargs, name):
    with pytest.raises(InvalidParameterError, match=f"'{name}'"):
        learning_curve_point(**kwargs)


def test_learning_curve_dataset_matches_points():
    taus = np.linspace(0.1, 3.0, 200)
    ds = learning_curve(alpha=10, tau=taus, kappa=0.5, rho=0.01, lam_lu=0.1)
    assert ds.icl_error.dims == ("tau",) and ds.sizes["tau"] == 200
    assert bool(ds.converged.all())
    for i in (0, 77, 199):
        p = learning_curve_point(10, taus[i], 0.5, 0.01, 0.1)
        assert ds.icl_error.values[i] == p.icl_error and ds.idg_error.values[i] == p.idg_error
    assert ds.icl_error.attrs["long_name"]


def test_learning_curve_grid_dims_and_divergent_points():
    ds = learning_curve(alpha=[1, 10], tau=[0.5, 1.0, 2.0], kappa=0.5, rho=0.01, lam_lu=[0.0, 0.1])
    assert ds.icl_error.dims == ("alpha", "tau", "lam_lu")
    assert bool(ds.divergent.sel(tau=1.0, lam_lu=0.0).all())
    assert not bool(ds.divergent.sel(lam_lu=0.1).any())
    with pytest.raises(InvalidParameterError, match="'rho'"):
        learning_curve(alpha=1, tau=[1, 2], rho=[0.1, -1])
    with pytest.raises(InvalidParameterError, match="'tau'"):
        learning_curve(alpha=1, tau=[[1, 2]])


def test_non_convergence_is_reported_not_silent(monkeypatch):
    monkeypatch.setattr(asy, "_solve_eps", lambda *a: asy._Eps(math.nan, False, "forced failure"))
    with pytest.warns(SolverDidNotConvergeWarning, match="forced failure"):
        r = learning_curve_point(1, 2, 0.5, 0.1, 0.1)
    assert not r.converged and math.isnan(r.icl_error) and r.message == "forced failure"
    with pytest.warns(SolverDidNotConvergeWarning, match="2 of 2"):
        ds = learning_curve(alpha=1, tau=[1, 2], kappa=0.5, rho=0.1, lam_lu=0.1)
    assert not bool(ds.converged.any())


def test_no_warnings_on_normal_points():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        learning_curve(alpha=[0.5, 5], tau=np.geomspace(0.05, 50, 30), kappa=[0.1, 1, INF], rho=0.1, lam_lu=[0, 1e-3])


@pytest.mark.parametrize("modname", ["spinlens.theory.asymptotic", "spinlens.theory.baselines", "spinlens.theory.phase"])
def test_docstring_examples(modname):
    import doctest
    import importlib

    res = doctest.testmod(importlib.import_module(modname))
    assert res.attempted > 0 and res.failed == 0
