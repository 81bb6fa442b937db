"""Property-based tests of the public Python API with random bad and extreme values.

Invariant: every call either raises `InvalidParameterError` (a clean, one-line error) or returns a finite,
self-consistent result (shapes as documented, finite numbers, ``converged`` True only with finite
weights). Any other exception is a finding.

``make test`` runs a modest number of examples; ``pytest -m slow tests/project/test_fuzz_api.py`` (the ``slow``
profile, ``HYPOTHESIS_PROFILE=spinlens-slow``) runs many more.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from spinlens.errors import InvalidParameterError

settings.register_profile("spinlens-fast", max_examples=25, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("spinlens-slow", max_examples=400, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "spinlens-fast"))

# numbers a user can type: ordinary, zero, negative, tiny, huge, non-finite, and non-numbers
extreme_floats = st.one_of(
    st.floats(min_value=1e-3, max_value=1e3),
    st.sampled_from([0.0, -0.0, -1.0, 1e-300, 1e300, 1e308, math.inf, -math.inf, math.nan, 5e-324]),
    st.floats(allow_nan=True, allow_infinity=True),
)
extreme_ints = st.one_of(
    st.integers(min_value=1, max_value=6),
    st.sampled_from([0, -1, -(2**63), 2**31, 2**63, 10**20]),
)
junk = st.one_of(st.none(), st.text(max_size=5), st.just([1, 2]), st.just(True), st.just(object()),
                 st.just(np.array([1.0, 2.0])), st.just(1 + 2j))
any_number = st.one_of(extreme_floats, extreme_ints, junk)


def _finite(*arrays) -> bool:
    return all(np.all(np.isfinite(np.asarray(a, dtype=float))) for a in arrays)


def _clean(fn, *args, **kwargs):
    """Call fn; return its result, or None after a clean InvalidParameterError (one line)."""
    try:
        return fn(*args, **kwargs)
    except InvalidParameterError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg.strip(), f"error message is not one line: {msg!r}"
        return None


def _small(v, cap):
    """Skip examples that are valid but too large to compute in a unit test (a size check must refuse
    the truly huge ones: those are tried separately)."""
    try:
        return not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > cap)
    except TypeError:
        return True


# ---- prompts, Hamiltonian, solvers, observables


@given(d=any_number, n_context=any_number, sigma_x=any_number, sigma_w=any_number, sigma_eps=any_number,
       corr=any_number, n_tasks=st.one_of(st.none(), any_number))
def test_prompt_distribution(d, n_context, sigma_x, sigma_w, sigma_eps, corr, n_tasks):
    from spinlens import PromptDistribution

    dist = _clean(PromptDistribution, d=d, n_context=n_context, sigma_x=sigma_x, sigma_w=sigma_w,
                  sigma_eps=sigma_eps, corr=corr, n_tasks=n_tasks)
    if dist is None:
        return
    assert isinstance(dist.d, int) and dist.d >= 1 and dist.n_context >= 1
    assert all(math.isfinite(x) for x in (dist.sigma_x, dist.sigma_w, dist.sigma_eps, dist.corr))
    assume(dist.d <= 6 and dist.n_context <= 6 and (dist.n_tasks is None or dist.n_tasks <= 1000))
    pr = _clean(dist.sample, 3, rng=0)
    if pr is None:
        return
    assert pr.Z.shape == (3, dist.d + 1, dist.n_context + 1)
    # huge σ may overflow to inf in float64: then the sampler must have refused
    assert _finite(pr.Z, pr.y, pr.w)


@given(P=any_number)
def test_sample_sizes_are_checked(P):
    from spinlens import PromptDistribution

    assume(_small(P, 50))
    pr = _clean(PromptDistribution(d=2, n_context=3).sample, P, rng=1)
    if pr is not None:
        assert pr.Z.shape[0] == int(P) >= 1


@given(lam=any_number, beta=any_number, method=st.sampled_from(["exact", "cavity", "tap", "sample", "langevin", "nope", ""]),
       damping=st.one_of(st.none(), any_number))
def test_hamiltonian_and_solve(lam, beta, method, damping):
    from spinlens import PromptDistribution, build_hamiltonian, solve

    pr = PromptDistribution(d=2, n_context=4).sample(30, rng=3)
    H = _clean(build_hamiltonian, pr, l2_strength=lam)
    if H is None:
        return
    assert _finite(H.h) and H.n_spins == 9
    opts = {}
    if method in ("cavity", "tap"):
        opts = {"max_iter": 30} if damping is None else {"max_iter": 30, "damping": damping}
    elif method == "sample":
        opts = {"n_samples": 50}
    elif method == "langevin":
        opts = {"n_steps": 20, "n_chains": 2}
    res = _clean(solve, H, method, beta=beta, rng=0, **opts)
    if res is None:
        return
    assert res.W.shape == (3, 3)
    if res.converged:
        assert _finite(res.W), "converged must imply finite weights"
        assert math.isfinite(res.residual)
        assert not np.isnan(res.v).any(), "converged must imply variances that are finite or +inf (zero modes)"
    assert isinstance(res.message, str)


@given(W=st.one_of(st.just(np.full((3, 3), np.nan)), st.just(np.full((3, 3), 1e300)), st.just(np.zeros((3, 3))),
                   st.just(np.ones((2, 2))), st.just(np.eye(3)), junk))
def test_observables(W):
    from spinlens import PromptDistribution, observables

    dist = PromptDistribution(d=2, n_context=4)
    for fn in (observables.contrast_ratio,):
        r = _clean(fn, W)
        if r is not None:
            assert isinstance(r, float)
    err = _clean(observables.test_error, W, dist, rng=0, n_mc=200)
    if err is not None:
        assert err >= 0 or (math.isnan(err) and not _finite(W)) or (err == math.inf)


@given(lam=any_number, corr=st.sampled_from([0.0, 0.5]))
def test_limit(lam, corr):
    from spinlens import PromptDistribution, limit

    dist = PromptDistribution(d=2, n_context=4, corr=corr)
    W = _clean(limit.infinite_diversity_solution, dist, lam)
    if W is None:
        return
    assert W.shape == (3, 3) and _finite(W)
    e = _clean(limit.expected_error, W, dist)
    assert e is None or (math.isfinite(e) and e >= 0)


# ---- asymptotic theory


@given(alpha=any_number, tau=any_number, kappa=any_number, rho=any_number, lam=any_number)
def test_theory_learning_curve_point(alpha, tau, kappa, rho, lam):
    from spinlens.theory import learning_curve_point

    r = _clean(learning_curve_point, alpha, tau, kappa, rho, lam)
    if r is None:
        return
    if r.converged and not r.divergent:
        assert math.isfinite(r.icl_error) and math.isfinite(r.idg_error) and r.icl_error >= 0 and r.idg_error >= 0
        assert math.isclose(r.g_task, r.icl_error - r.idg_error, rel_tol=1e-9, abs_tol=1e-12)
    if r.divergent:
        assert r.icl_error == math.inf
    if not r.converged:
        assert r.message


@given(alpha=any_number, tau=any_number, rho=any_number, lam=any_number)
def test_theory_closed_forms(alpha, tau, rho, lam):
    from spinlens.theory import infinite_diversity_closed_form, ridgeless_closed_form

    for fn, args in ((ridgeless_closed_form, (alpha, tau, math.inf, rho)),
                     (infinite_diversity_closed_form, (alpha, tau, rho, lam))):
        r = _clean(fn, *args)
        if r is not None:
            assert len(r) == 2 and all((x >= 0) or x == math.inf for x in r), r


# ---- quantization and merging


@given(bits=any_number, group_size=any_number, symmetric=st.booleans(),
       fill=st.sampled_from(["normal", "zeros", "huge", "nan", "const"]))
def test_fake_quantize(bits, group_size, symmetric, fill):
    import torch

    from spinlens.edit.quantization import fake_quantize

    w = {"normal": torch.randn(6, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64),
         "zeros": torch.zeros(6, 4, dtype=torch.float64), "huge": torch.full((6, 4), 1e300, dtype=torch.float64),
         "nan": torch.full((6, 4), math.nan, dtype=torch.float64),
         "const": torch.full((6, 4), 0.3, dtype=torch.float64)}[fill]
    q = _clean(fake_quantize, w, bits, group_size=group_size, symmetric=symmetric)
    if q is None:
        return
    assert q.shape == w.shape and q.dtype == w.dtype
    if fill != "nan":
        assert torch.isfinite(q).all()
        # at most 2^b levels in each group (columns of one group along dim -2)
        gs, b = int(group_size), int(bits)
        for c in range(4):
            for a in range(0, 6, gs):
                assert len(torch.unique(q[a : a + gs, c])) <= 2**b


@given(scale=st.one_of(st.none(), any_number), density=any_number,
       method=st.sampled_from(["task_arithmetic", "ties", "bogus"]), as_modules=st.booleans(),
       models_junk=st.sampled_from([None, [], [object()], "ab"]))
def test_merging(scale, density, method, as_modules, models_junk):
    import torch

    from spinlens.edit.merging import merge_models, task_arithmetic, ties_merge

    def make(seed):
        torch.manual_seed(seed)
        return torch.nn.Linear(3, 2)

    base = make(0)
    models = [make(1), make(2)] if models_junk is None else models_junk
    kwargs = {"scale": scale}
    if method == "ties":
        kwargs["density"] = density
        if scale is None:
            kwargs.pop("scale")
    if as_modules:
        merged = _clean(merge_models, base, models, method, **kwargs)
        sd = None if merged is None else merged.state_dict()
    else:
        fn = {"task_arithmetic": task_arithmetic, "ties": ties_merge}.get(method)
        if fn is None:
            return
        sd = _clean(fn, base.state_dict(), [m.state_dict() if hasattr(m, "state_dict") else m for m in models],
                    **kwargs)
    if sd is None:
        return
    assert set(sd) == set(base.state_dict())
    for k, v in base.state_dict().items():
        assert sd[k].shape == v.shape and torch.isfinite(sd[k]).all()


@pytest.mark.slow
@settings(max_examples=500, deadline=None)
@given(alpha=any_number, tau=any_number, kappa=any_number, rho=any_number, lam=any_number)
def test_theory_learning_curve_point_many(alpha, tau, kappa, rho, lam):
    test_theory_learning_curve_point.hypothesis.inner_test(alpha, tau, kappa, rho, lam)
