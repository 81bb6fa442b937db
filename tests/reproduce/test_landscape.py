"""`spinlens.landscape` and `spinlens landscape`: energies, eigen-direction profiles, zero modes, Marchenko–Pastur."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.integrate import quad

from spinlens import PromptDistribution, build_hamiltonian
from spinlens import landscape as L

# every figure saved by these tests is checked (labels, colourbars, legends): tests/conftest.py
pytestmark = pytest.mark.usefixtures("audit_figures")


@pytest.fixture(scope="module")
def H():
    return build_hamiltonian(PromptDistribution(d=4, n_context=15).sample(12, rng=0), l2_strength=0.05)


@pytest.mark.parametrize("ratio", [0.1, 0.5, 1.0])
def test_marchenko_pastur_density_normalised_with_unit_mean(ratio):
    hi = (1 + np.sqrt(ratio)) ** 2
    lo = (1 - np.sqrt(ratio)) ** 2
    f = lambda x: float(L.marchenko_pastur_density(np.array([x]), ratio)[0])  # noqa: E731
    assert quad(f, lo, hi, limit=200)[0] == pytest.approx(1.0, abs=2e-3)
    assert quad(lambda x: x * f(x), lo, hi, limit=200)[0] == pytest.approx(1.0, abs=2e-3)


def test_marchenko_pastur_above_one_has_atom_and_matches_samples():
    q = 2.0  # D > N: a fraction 1 − 1/q of zero eigenvalues
    assert L.marchenko_pastur_cdf(np.array([1e-9]), q)[0] == pytest.approx(0.5, abs=1e-6)
    assert L.marchenko_pastur_cdf(np.array([100.0]), q)[0] == pytest.approx(1.0, abs=1e-4)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 80, 40))
    ev = np.sort(np.clip(np.linalg.eigvalsh(X @ X.transpose(0, 2, 1) / 40).ravel(), 0, None))  # PSD: round-off zeros
    emp = np.arange(1, ev.size + 1) / ev.size
    pos = ev > 1e-8  # the tied zeros form the atom: compare its mass, then the CDF on the continuous part
    assert np.mean(~pos) == pytest.approx(0.5, abs=1e-12)
    assert np.max(np.abs(emp[pos] - L.marchenko_pastur_cdf(ev[pos], q))) < 0.03


def test_sample_energies_match_coupling_form(H):
    W, E = L.sample_energies(H, 5, rng=1)
    assert W.shape == (5, H.n_spins) and E.shape == (5,)
    for w, e in zip(W, E):
        assert e == pytest.approx(H.energy_from_couplings(w), rel=1e-10)


def test_direction_profiles_are_the_closed_form_parabolas(H):
    from spinlens.solvers import ExactSolver

    mu, U = L.eigen_directions(H)
    W_star = ExactSolver(n_probes=0).solve(H).W
    t = np.linspace(-2, 2, 9)
    idx = [0, 1, H.n_spins - 1]
    prof = L.direction_profiles(H, W_star, U[:, idx].T, t)
    expected = 0.5 * (H.l2_strength + mu[idx])[:, None] * t[None, :] ** 2
    np.testing.assert_allclose(prof, expected, rtol=1e-7, atol=1e-12)
    # a non-stationary centre breaks the symmetric parabola (the check can fail)
    bad = L.direction_profiles(H, W_star + 0.3, U[:, idx].T, t)
    assert np.max(np.abs(bad - expected)) > 1e-3


def test_near_zero_modes_follow_rank(H):
    mu, _ = L.eigen_directions(H)
    d, P = H.d, H.n_prompts
    assert L.near_zero_modes(mu) == (d + 1) ** 2 - min(P, d * (d + 1))


def test_count_local_minima_on_two_wells():
    x = np.linspace(-2, 2, 41)
    X, Y = np.meshgrid(x, x)
    Z = (X**2 - 1) ** 2 + Y**2
    assert L.count_local_minima(Z) == 2
    assert L.count_local_minima(X**2 + Y**2) == 1


def test_interpolate_surface_spans_the_points_and_follows_a_plane():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-1, 1, (300, 2))
    vals = 2 * pts[:, 0] - pts[:, 1] + 3
    gx, gy, Z = L.interpolate_surface(pts, vals, n_grid=21, smoothing=0.0, neighbors=300)
    assert gx[0] == pts[:, 0].min() and gx[-1] == pts[:, 0].max() and Z.shape == (21, 21)
    XX, YY = np.meshgrid(gx, gy)
    inner = (np.abs(XX) < 0.7) & (np.abs(YY) < 0.7)
    np.testing.assert_allclose(Z[inner], (2 * XX - YY + 3)[inner], atol=0.05)


def test_landscape_cli(tmp_path, capsys):
    from spinlens.cli.main import main

    out = tmp_path / "land"
    args = ["landscape", "--D", "4", "--N", "20", "--P", "5", "100", "--samples", "60", "--grid", "20",
            "--spectrum-d", "3", "4", "--out", str(out), "--json"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["P=5"]["zero_modes"] == 25 - 5 and summary["P=100"]["zero_modes"] == 5
    assert summary["zero_mode_fraction_max_abs_difference_from_rank_formula"] < 1e-12
    for name in ("landscape.png", "landscape.pdf", "spectrum.png", "spectrum.pdf", "landscape.nc", "spectrum.nc",
                 "zero_modes.nc", "marchenko_pastur.csv", "run.json"):
        assert (out / name).is_file(), name
    run = json.loads((out / "run.json").read_text())
    assert run["seed"] == 0 and run["parameters"]["P"] == [5, 100]


def test_landscape_cli_bad_input(tmp_path, capsys):
    from spinlens.cli.main import main

    assert main(["landscape", "--P", "0", "--out", str(tmp_path)]) == 2
    assert "'--P'" in capsys.readouterr().err
    assert main(["landscape", "--samples", "3", "--out", str(tmp_path)]) == 2
