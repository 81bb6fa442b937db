import numpy as np
import pytest

from spinlens import limit
from spinlens import observables as ob
from spinlens.features import spin_features
from spinlens.hamiltonian import build_hamiltonian
from spinlens.prompts import PromptDistribution
from spinlens.solvers import solve

DISTS = [
    PromptDistribution(d=3, n_context=5),
    PromptDistribution(d=4, n_context=2, sigma_x=1.5, sigma_w=0.6, sigma_eps=0.5),
]


@pytest.mark.parametrize("dist", DISTS)
def test_moments_vs_monte_carlo(dist):
    p = dist.sample(200000, rng=11)
    S = spin_features(p).dense()
    mom = limit.moments(dist)
    ys = (p.y[:, None] * S).mean(0).reshape(mom.ys.shape)
    ss = S.T @ S / len(S)
    scale = np.sqrt(np.mean(S**2))
    np.testing.assert_allclose(ys, mom.ys, atol=0.02 * scale**2 + 0.02 * np.abs(mom.ys).max())
    np.testing.assert_allclose(np.diag(ss).reshape(mom.ys.shape), mom.ss_diag, rtol=0.05, atol=1e-3 * mom.ss_diag.max())
    off = ss - np.diag(np.diag(ss))
    assert np.abs(off).max() < 0.05 * mom.ss_diag.max()  # E[ssᵀ] is diagonal
    assert p.y.var() == pytest.approx(mom.y2, rel=0.02)


@pytest.mark.parametrize("dist", DISTS)
def test_expected_error_vs_monte_carlo(dist, rng):
    W = 0.4 * rng.standard_normal((dist.d + 1, dist.d + 1))
    mc, se = ob.mc_error(W, dist, n_prompts=200000, rng=3)
    assert limit.expected_error(W, dist) == pytest.approx(mc, abs=5 * se)


def test_error_given_tasks_vs_monte_carlo(rng):
    dist = DISTS[1]
    W = 0.4 * rng.standard_normal((5, 5))
    w = dist.sample_tasks(2, rng=5)
    exact = limit.expected_error_given_tasks(W, dist, w)
    for k in range(2):
        mc, se = ob.mc_error(W, dist, n_prompts=100000, rng=10 + k, pool=w[k : k + 1])
        assert exact[k] == pytest.approx(mc, abs=5 * se)
    # averaging over tasks gives the unconditional error
    many = limit.expected_error_given_tasks(W, dist, dist.sample_tasks(100000, rng=6))
    assert many.mean() == pytest.approx(limit.expected_error(W, dist), rel=0.01)


def test_W_star_is_large_P_limit():
    dist = PromptDistribution(d=3, n_context=8)
    Ws = limit.infinite_diversity_solution(dist, 0.05)
    assert np.allclose(Ws, np.diag(np.diag(Ws))) and np.all(Ws[-1] == 0)
    H = build_hamiltonian(dist.sample(200000, rng=1), l2_strength=0.05)
    W = solve(H, "exact").W
    assert np.linalg.norm(W - Ws) / np.linalg.norm(Ws) < 0.03
    # W* minimises the expected error + λ|W|² ... check it beats perturbations of the expected energy
    e = lambda W: 0.5 * limit.expected_error(W, dist) + 0.025 * np.sum(W * W)
    rng = np.random.default_rng(0)
    assert all(e(Ws) < e(Ws + 1e-2 * rng.standard_normal(Ws.shape)) for _ in range(20))


def test_limit_closed_form_by_hand():
    # λ = 0, σ = 1, noiseless: error of W* = 1 − D κ₁²/(σ_x² E[c_a²])
    D, N = 20, 100
    t = 1 / D
    k1 = N / ((N + 1) * D)
    cxx = (N * t * (D + 2) + N * (N - 1) * t) / (N + 1) ** 2
    dist = PromptDistribution(d=D, n_context=N)
    Ws = limit.infinite_diversity_solution(dist, 0.0)
    assert limit.expected_error(Ws, dist) == pytest.approx(1 - D * k1**2 / cxx, rel=1e-12)
    assert limit.expected_error(np.zeros((D + 1, D + 1)), dist) == pytest.approx(1.0)


def test_corr_needs_monte_carlo():
    from spinlens.errors import InvalidParameterError

    dist = PromptDistribution(d=2, n_context=3, corr=0.3)
    with pytest.raises(InvalidParameterError, match="corr"):
        limit.moments(dist)
    assert np.isfinite(ob.test_error(np.eye(3), dist, rng=0, n_mc=500))


@pytest.mark.parametrize("N, paper", [(20, 0.534), (100, 0.192), (200, 0.113)])
def test_fig4b_cavity(N, paper):
    """Paper Fig. 4b (D=20, P=10⁴, λ=0.01, β=100, θ=0.9): cavity test error within ±0.02 (2 repeats)."""
    dist = PromptDistribution(d=20, n_context=N)
    errs = []
    for s in range(2):
        H = build_hamiltonian(dist.sample(10000, rng=s), l2_strength=0.01)
        r = solve(H, "cavity", rng=100 + s, compare_exact=False)
        assert r.converged
        errs.append(ob.test_error(r.W, dist))
    assert np.mean(errs) == pytest.approx(paper, abs=0.02)


def test_observables_basics():
    assert ob.contrast_ratio(np.eye(4)) == pytest.approx(1.0)
    assert ob.contrast_ratio(-np.eye(4)) == pytest.approx(-1.0)
    A = np.zeros((4, 4)); A[0, 1] = 1
    assert ob.contrast_ratio(A) == 0.0
    for d, P in [(3, 5), (3, 100)]:
        H = build_hamiltonian(PromptDistribution(d=d, n_context=10).sample(P, rng=0), l2_strength=0.0)
        frac = ob.zero_mode_fraction(ob.hessian_spectrum(H))
        assert frac == pytest.approx(ob.expected_zero_mode_fraction(d, P))
    stats = ob.block_statistics(H)
    assert stats["h1"].size == 9 and stats["h2"].size == 3 and stats["J3"].size == 12


@pytest.mark.slow
def test_fig4b_cavity_full():
    """Paper Fig. 4b at every N, 10 repeats: within ±0.02 of the published cavity curve."""
    paper = {20: 0.534, 40: 0.362, 60: 0.277, 80: 0.224, 100: 0.192, 120: 0.166, 140: 0.148, 160: 0.135, 180: 0.123, 200: 0.113}
    for N, ref in paper.items():
        dist = PromptDistribution(d=20, n_context=N)
        errs = [ob.test_error(solve(build_hamiltonian(dist.sample(10000, rng=s), l2_strength=0.01), "cavity", rng=100 + s, compare_exact=False).W, dist) for s in range(10)]
        assert np.mean(errs) == pytest.approx(ref, abs=0.02), N


def test_expected_error_overflow_is_inf_without_warning():
    import warnings

    dist = DISTS[0]
    W = np.full((dist.d + 1, dist.d + 1), 1e200)  # W² overflows float64
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning on the way
        assert limit.expected_error(W, dist) == np.inf
        assert limit.expected_error(-W, dist) == np.inf
