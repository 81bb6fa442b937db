import warnings

import numpy as np
import pytest

from spinlens.errors import InvalidParameterError, SolverDidNotConvergeWarning
from spinlens.hamiltonian import build_hamiltonian
from spinlens.prompts import PromptDistribution
from spinlens.solvers import CavitySolver, ExactSolver, GaussianSampler, LangevinSampler, solve


def _H(d=3, N=10, P=400, lam=0.1, seed=0, **kw):
    return build_hamiltonian(PromptDistribution(d=d, n_context=N, **kw).sample(P, rng=seed), l2_strength=lam)


def _ridge(H):
    S = H.features.dense()
    A = S.T @ S / H.n_prompts + H.l2_strength * np.eye(H.n_spins)
    return np.linalg.solve(A, S.T @ H.y / H.n_prompts), np.linalg.inv(A)


def test_exact_dense_is_ridge():
    H = _H()
    m, Ainv = _ridge(H)
    r = ExactSolver().solve(H, beta=7.0)
    assert r.converged and r.residual < 1e-12
    np.testing.assert_allclose(r.W.ravel(), m, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(r.v.ravel(), np.diag(Ainv) / 7.0, rtol=1e-9)


def test_exact_cg_matches_dense():
    H = _H(d=4, P=300)
    dense = ExactSolver(backend="dense").solve(H)
    cg = ExactSolver(backend="cg", tol=1e-12, n_probes=64).solve(H, rng=0)
    assert cg.converged
    np.testing.assert_allclose(cg.W, dense.W, rtol=1e-6, atol=1e-9)
    # probe estimate of the variances: unbiased, noisy
    assert np.median(np.abs(cg.v / dense.v - 1)) < 0.3


def test_lambda_zero_min_norm():
    H = _H(d=3, P=5, lam=0.0)  # P < D(D+1): zero modes
    r = ExactSolver().solve(H)
    S = H.features.dense()
    mn = np.linalg.lstsq(S, H.y, rcond=None)[0]
    np.testing.assert_allclose(r.W.ravel(), mn, atol=1e-8)
    assert np.isinf(r.v).any() and not np.isnan(r.v).any()
    assert "zero modes" in r.message
    assert r.converged  # infinite variances along zero modes are the documented answer, not a failure


@pytest.mark.parametrize("method", ["sample", "langevin"])
def test_samplers_refuse_improper_measure(method):
    # lambda = 0 with P < n_spins: zero modes, an improper measure; the samplers refuse it in one clear line
    H = _H(d=3, P=5, lam=0.0)
    with pytest.raises(InvalidParameterError, match=f"'{method}' method needs a positive-definite Hessian, i.e. l2_strength > 0"):
        solve(H, method, beta=10.0, rng=0)
    # P >= n_spins but rank-deficient prompts (5 distinct ones repeated): still improper (the Cholesky check)
    pr = PromptDistribution(d=3, n_context=10).sample(5, rng=0)
    H = build_hamiltonian(pr.subset(np.tile(np.arange(5), 8)), l2_strength=0.0)
    assert H.n_prompts >= H.n_spins
    with pytest.raises(InvalidParameterError, match="improper"):
        solve(H, method, beta=10.0, rng=0)


@pytest.mark.parametrize("method", ["sample", "langevin"])
def test_samplers_lambda_zero_is_improper_at_any_P(method):
    # the weights on the hidden query label (last column) are zero modes whatever P: exact says so, samplers refuse
    H = _H(d=2, P=2000, lam=0.0)
    ex = solve(H, "exact", beta=50.0)
    assert ex.converged and np.isinf(ex.v[:, -1]).all() and np.isfinite(ex.v[:, :-1]).all()
    with pytest.raises(InvalidParameterError, match="l2_strength > 0"):
        solve(H, method, beta=50.0, rng=0)
    # any positive lambda samples: the variances match the exact ones
    H = _H(d=2, P=2000, lam=1e-3)
    r = solve(H, "sample", beta=50.0, rng=0, n_samples=4000)
    assert r.converged and np.all(np.isfinite(r.v))
    np.testing.assert_allclose(r.v, solve(H, "exact", beta=50.0).v, rtol=0.15)


def test_nonfinite_results_are_never_converged():
    from spinlens.solvers.base import RunOutput, Solver

    class Fake(Solver):
        method = "fake"

        def __init__(self, **out):
            self.out = out

        def _shape(self, H):
            return (2, 2)

        def _run(self, H, beta, rng):
            return RunOutput(**{"m": np.zeros(4), "v": np.ones(4), "residual": 0.0, "converged": True, **self.out})

    H = _H(d=1, P=20)
    assert Fake().solve(H).converged
    cases = [({"residual": np.inf}, "residual is inf"), ({"m": np.array([0, 0, np.nan, 0])}, "1 means"),
             ({"v": np.array([1, np.inf, 1, 1])}, "1 variances"),
             ({"v": np.array([1, np.nan, 1, 1]), "zero_modes": True}, "1 variances")]
    for out, why in cases:
        with pytest.warns(SolverDidNotConvergeWarning, match=why):
            r = Fake(**out).solve(H)
        assert not r.converged and f"not converged: {why}" in r.message
    # +inf variances along declared zero modes are allowed
    assert Fake(v=np.array([1, np.inf, 1, 1]), zero_modes=True).solve(H).converged


@pytest.mark.parametrize("method", ["exact", "cavity", "tap", "sample", "langevin"])
def test_beta_floor(method):
    H = _H(d=2, P=200)
    for beta in (5e-324, 1e-200, 0.0, -1.0):
        with pytest.raises(InvalidParameterError, match=r"'beta' parameter.*\[1e-100, inf\)"):
            solve(H, method, beta=beta, rng=0)
    with pytest.raises(InvalidParameterError, match="'beta'"):
        GaussianSampler().draw(H, beta=1e-300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = solve(H, method, beta=1e-100, rng=0, **({"n_steps": 20, "n_chains": 2} if method == "langevin" else {}))
    assert r.beta == 1e-100
    assert not r.converged or (np.isfinite(r.residual) and np.all(np.isfinite(r.m)) and np.all(np.isfinite(r.v)))


def test_cavity_fixed_point_and_distance():
    H = _H(d=3, N=20, P=20000, lam=0.01, seed=1)
    r = CavitySolver(max_iter=500, tol=1e-12).solve(H, rng=0)
    assert r.converged
    # the result satisfies the published fixed-point equations
    J0 = H.J.copy()
    np.fill_diagonal(J0, 0)
    m, v, beta = r.m.ravel(), r.v.ravel(), 100.0
    den = beta * H.lam_diag - beta**2 * (J0**2) @ v
    np.testing.assert_allclose(v, 1 / den, rtol=1e-4)
    np.testing.assert_allclose(m, beta * (H.h + J0 @ m) / den, rtol=1e-3, atol=1e-5)
    # ...which is close to, but not exactly, the exact mean
    ex = ExactSolver().solve(H).W
    dist = np.linalg.norm(r.W - ex) / np.linalg.norm(ex)
    assert r.extras["exact_distance"] == pytest.approx(dist)
    assert 1e-4 < dist < 0.05


def test_cavity_distance_shrinks_with_P():
    d = [CavitySolver(max_iter=400, tol=1e-10).solve(_H(d=3, N=20, P=P, lam=0.01, seed=2), rng=0).extras["exact_distance"] for P in (2000, 20000)]
    assert d[1] < d[0]


def test_cavity_divergence_reported_not_nan():
    H = _H(d=5, N=20, P=20, lam=0.01, seed=3)  # P far below D(D+1): variance equation fails
    with pytest.warns(SolverDidNotConvergeWarning):
        r = CavitySolver().solve(H, rng=0)
    assert not r.converged
    assert np.all(np.isfinite(r.W)) and np.all(np.isfinite(r.v))
    assert r.message


def test_cavity_max_iter_reported():
    H = _H(d=3, N=10, P=2000, lam=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = CavitySolver(max_iter=2).solve(H, rng=0)
    assert not r.converged and "max_iter" in r.message and r.n_iter == 2


def test_gaussian_sampler_moments():
    H = _H(d=2, N=10, P=500, lam=0.2)
    beta = 5.0
    r = GaussianSampler(n_samples=20000).solve(H, beta=beta, rng=1)
    ex = ExactSolver().solve(H, beta=beta)
    np.testing.assert_allclose(r.W, ex.W, atol=4 * np.sqrt(ex.v.max() / 40000))
    np.testing.assert_allclose(r.v, ex.v, rtol=0.05)
    assert r.extras["energy_mean"] == pytest.approx(r.extras["energy_exact"], rel=0.01)
    assert r.extras["overlap_q12"] == pytest.approx(r.extras["overlap_q12_exact"], rel=0.03)
    assert r.extras["overlap_q11"] == pytest.approx(r.extras["overlap_q11_exact"], rel=0.03)


def test_langevin_moments():
    H = _H(d=2, N=10, P=500, lam=0.5)
    beta = 5.0
    r = LangevinSampler(n_steps=30000, n_chains=4, thin=5).solve(H, beta=beta, rng=2)
    assert r.converged, r.message  # long chains: mixed (split-R̂ < 1.01, ESS ≥ 400)
    ex = ExactSolver().solve(H, beta=beta)
    sd = np.sqrt(ex.v.ravel())
    assert np.max(np.abs(r.W.ravel() - ex.W.ravel()) / sd) < 0.35
    np.testing.assert_allclose(r.v, ex.v, rtol=0.2)
    assert r.extras["energy_mean"] == pytest.approx(r.extras["energy_exact"], rel=0.05)


@pytest.mark.parametrize("method", ["exact", "cavity", "sample", "langevin"])
def test_solver_contract(method):
    H = _H(d=2, N=10, P=800, lam=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = solve(H, method, beta=50.0, rng=0, **({"n_steps": 300} if method == "langevin" else {}))
    assert r.W.shape == r.m.shape == r.v.shape == (3, 3)
    assert isinstance(r.converged, bool) and r.seconds >= 0 and r.method == method
    assert np.all(np.isfinite(r.W))
    assert method in repr(r) and "converged" in r.to_dict()


def test_bad_solver_input():
    H = _H()
    with pytest.raises(InvalidParameterError, match="'method'"):
        solve(H, "magic")
    with pytest.raises(InvalidParameterError, match="'damping'"):
        CavitySolver(damping=1.0)
    with pytest.raises(InvalidParameterError, match="'beta'"):
        solve(H, "exact", beta=0)
