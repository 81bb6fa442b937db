import numpy as np
import pytest
import torch

from spinlens.features import spin_features
from spinlens.hamiltonian import build_hamiltonian
from spinlens.models.linear_attention import MergedLinearAttention
from spinlens.prompts import PromptDistribution


@pytest.fixture
def small():
    dist = PromptDistribution(d=3, n_context=6, sigma_eps=0.2)
    return dist, dist.sample(50, rng=7)


def test_features_equal_model_forward(small, rng):
    dist, p = small
    model = MergedLinearAttention(dist.d, rng=1)
    with torch.no_grad():
        yhat_model = model(torch.from_numpy(p.Z)).numpy()
    W = model.W.detach().numpy()
    yhat_feat = spin_features(p).predict(W)
    np.testing.assert_allclose(yhat_feat, yhat_model, rtol=0, atol=1e-10)
    S = spin_features(p).dense()
    np.testing.assert_allclose(S @ W.reshape(-1), yhat_model, atol=1e-10)


def _brute_force(p, lam):
    """Per-prompt construction from the literal definition of the attention."""
    P, D1, N1 = p.Z.shape
    D, N = D1 - 1, N1 - 1
    S = np.zeros((P, D1 * D1))
    for mu in range(P):
        Z = p.Z[mu]
        for a in range(D1):
            for b in range(D1):
                E = np.zeros((D1, D1))
                E[a, b] = 1.0  # ŷ is linear in W: s_ab = ŷ(E_ab)
                S[mu, a * D1 + b] = (Z @ Z.T @ E @ Z)[D, N] / (N + 1)
    J = -np.einsum("pi,pj->ij", S, S) / P
    h = np.einsum("p,pi->i", p.y, S) / P
    return S, J, h, lam - np.diag(J)


def test_couplings_and_fields_brute_force(small):
    _, p = small
    H = build_hamiltonian(p, l2_strength=0.3)
    S, J, h, lam_i = _brute_force(p, 0.3)
    np.testing.assert_allclose(H.features.dense(), S, atol=1e-12)
    np.testing.assert_allclose(H.J, J, atol=1e-12)
    np.testing.assert_allclose(H.h, h, atol=1e-12)
    np.testing.assert_allclose(H.lam_diag, lam_i, atol=1e-12)
    # the dead last column of W: no field, no coupling
    D1 = p.d + 1
    assert np.all(H.h.reshape(D1, D1)[:, -1] == 0)


def test_energy_forms_agree_and_gradient(small, rng):
    _, p = small
    H = build_hamiltonian(p, l2_strength=0.1)
    W = rng.standard_normal((4, 4))
    assert H.energy(W) == pytest.approx(H.energy_from_couplings(W), rel=1e-12)
    batch = rng.standard_normal((3, 16))
    np.testing.assert_allclose(H.energy(batch), [H.energy(b) for b in batch], rtol=1e-12)
    g = H.grad(W)
    eps = 1e-6
    num = np.zeros(16)
    for i in range(16):
        e = np.zeros(16)
        e[i] = eps
        num[i] = (H.energy(W.ravel() + e) - H.energy(W.ravel() - e)) / (2 * eps)
    np.testing.assert_allclose(g.ravel(), num, atol=1e-7)


def test_matrix_free_matches_dense(small, rng):
    _, p = small
    H = build_hamiltonian(p, l2_strength=0.1)
    H2 = build_hamiltonian(p, l2_strength=0.1)
    v = rng.standard_normal(16)
    V = rng.standard_normal((16, 3))
    mf, mf2 = H2.gram_matvec(v), H2.gram_matvec(V)
    assert "gram" not in H2._cache  # truly matrix-free
    np.testing.assert_allclose(mf, H.gram() @ v, atol=1e-12)
    np.testing.assert_allclose(mf2, H.gram() @ V, atol=1e-12)
    np.testing.assert_allclose(H2.gram_diag, np.diag(H.gram()), atol=1e-12)


def test_bad_lambda(small):
    from spinlens.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="l2_strength"):
        build_hamiltonian(small[1], l2_strength=-1)


def test_batch_energy_in_blocks_equals_one_at_a_time(monkeypatch):
    import spinlens.hamiltonian as hm
    from spinlens import PromptDistribution, build_hamiltonian

    H = build_hamiltonian(PromptDistribution(d=3, n_context=5).sample(37, rng=0), l2_strength=0.1)
    W = np.random.default_rng(1).standard_normal((9, H.n_spins))
    monkeypatch.setattr(hm, "ENERGY_CHUNK_NUMBERS", 40)  # blocks of 2 prompts: many blocks, a ragged last one
    np.testing.assert_allclose(H.energy(W), [H.energy(w) for w in W], rtol=1e-12)
