"""Property-based checks of the scale machinery: CG = Cholesky, streaming = materialised, memory estimates."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spinlens import PromptDistribution, build_hamiltonian
from spinlens.errors import InvalidParameterError
from spinlens.features import spin_features, stream_features
from spinlens.memory import estimate_memory
from spinlens.solvers import ExactSolver

FAST = settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

laws = st.fixed_dictionaries({
    "d": st.integers(1, 5), "n_context": st.integers(1, 8), "sigma_eps": st.sampled_from([0.0, 0.3, 2.0]),
    "corr": st.sampled_from([0.0, 0.4]), "n_tasks": st.sampled_from([None, 1, 3]),
})


@FAST
@given(law=laws, P=st.integers(2, 400), lam=st.floats(1e-3, 10.0), seed=st.integers(0, 2**16),
       pre=st.sampled_from(["kronecker", "jacobi", "none"]))
def test_cg_equals_cholesky_on_random_laws(law, P, lam, seed, pre):
    dist = PromptDistribution(**law)
    H = build_hamiltonian(dist.sample(P, rng=seed), l2_strength=lam)
    dense = ExactSolver(backend="dense").solve(H)
    cg = ExactSolver(backend="cg", preconditioner=pre, n_probes=0, tol=1e-12, max_iter=20000).solve(H)
    assert cg.converged
    scale = max(np.abs(dense.m).max(), 1e-300)
    assert np.abs(cg.m - dense.m).max() <= 1e-9 * scale


@FAST
@given(law=laws, P=st.integers(1, 900), batch=st.integers(1, 300), seed=st.integers(0, 2**16))
def test_streaming_equals_materialised_on_random_laws(law, P, batch, seed):
    dist = PromptDistribution(**law)
    fs = stream_features(dist, P, rng=seed, sampler="core", batch_size=batch)
    p = dist.sample_batched(P, rng=seed, batch_size=batch)
    f = spin_features(p)
    np.testing.assert_allclose(fs.features.C, f.C, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(fs.features.Q, f.Q)
    np.testing.assert_array_equal(fs.y, p.y)


@FAST
@given(method=st.sampled_from(["exact", "cavity", "tap", "sample", "langevin"]), d=st.integers(1, 200),
       n=st.integers(1, 300), P=st.integers(1, 10**8))
def test_memory_estimate_grows_with_P_and_D(method, d, n, P):
    a = estimate_memory(method, d=d, n_context=n, n_prompts=P)
    assert a.bytes > 0 and a.gib == pytest.approx(a.bytes / 2**30)
    assert estimate_memory(method, d=d, n_context=n, n_prompts=2 * P).bytes >= a.bytes
    if method != "exact":  # exact may switch from dense to the (smaller) CG backend as D grows
        assert estimate_memory(method, d=d + 1, n_context=n, n_prompts=P).bytes >= a.bytes


@FAST
@given(bad=st.one_of(st.integers(-5, 0), st.floats(max_value=0.5), st.just(float("nan")), st.floats(1.01, 1.99), st.text(max_size=3), st.none()))
def test_memory_estimate_rejects_bad_sizes(bad):
    with pytest.raises(InvalidParameterError):
        estimate_memory("exact", d=bad, n_context=5, n_prompts=10)
