import numpy as np
import pytest

from spinlens.errors import InvalidParameterError, InvalidPromptsError
from spinlens.prompts import PromptDistribution, Prompts, load_prompts


def test_shapes_and_layout():
    dist = PromptDistribution(d=4, n_context=7)
    p = dist.sample(11, rng=0)
    assert p.Z.shape == (11, 5, 8) and p.y.shape == (11,) and p.w.shape == (11, 4)
    assert p.Z.dtype == np.float64
    assert np.all(p.Z[:, 4, 7] == 0)
    # labels y = w·x/√D on the context and the query target
    x = p.Z[:, :4, :]
    y_all = np.einsum("pdn,pd->pn", x, p.w) / 2.0
    np.testing.assert_allclose(p.Z[:, 4, :7], y_all[:, :7], rtol=1e-12)
    np.testing.assert_allclose(p.y, y_all[:, 7], rtol=1e-12)


def test_seeded_reproducible():
    dist = PromptDistribution(d=3, n_context=5, sigma_eps=0.1)
    a, b, c = dist.sample(4, rng=1), dist.sample(4, rng=1), dist.sample(4, rng=2)
    np.testing.assert_array_equal(a.Z, b.Z)
    assert not np.array_equal(a.Z, c.Z)


def test_noise_and_scales():
    dist = PromptDistribution(d=5, n_context=3, sigma_x=2.0, sigma_w=0.5, sigma_eps=0.3)
    p = dist.sample(40000, rng=3)
    # Var(y) = σ_x² σ_w² + σ_ε²
    assert abs(p.y.var() - (4 * 0.25 + 0.09)) < 0.03
    assert abs(p.Z[:, :5, :].std() - 2.0) < 0.02


def test_position_correlation():
    dist = PromptDistribution(d=2, n_context=4, corr=0.6)
    p = dist.sample(30000, rng=4)
    x0, x1 = p.Z[:, 0, 0], p.Z[:, 0, 3]
    assert abs(np.corrcoef(x0, x1)[0, 1] - 0.6) < 0.02


def test_task_pool():
    dist = PromptDistribution(d=3, n_context=5, n_tasks=4)
    p = dist.sample(200, rng=5)
    assert p.pool.shape == (4, 3)
    assert set(np.unique(p.task_index)) <= set(range(4))
    np.testing.assert_array_equal(p.w, p.pool[p.task_index])


def test_npz_round_trip(tmp_path):
    p = PromptDistribution(d=3, n_context=4, n_tasks=2).sample(6, rng=0)
    path = p.save(tmp_path / "p.npz")
    q = load_prompts(path)
    np.testing.assert_array_equal(p.Z, q.Z)
    np.testing.assert_array_equal(p.y, q.y)
    np.testing.assert_array_equal(p.w, q.w)
    np.testing.assert_array_equal(p.pool, q.pool)


@pytest.mark.parametrize(
    "arrays, fragment",
    [
        ({"Z": np.zeros((3, 4, 5))}, "lacks key"),
        ({"Z": np.zeros((3, 4)), "y": np.zeros(3)}, "shape (n_prompts, d+1, n_context+1)"),
        ({"Z": np.zeros((3, 4, 5)), "y": np.zeros(2)}, "expected (n_prompts,)"),
        ({"Z": np.full((3, 4, 5), np.nan), "y": np.zeros(3)}, "non-finite"),
        ({"Z": np.ones((3, 4, 5)), "y": np.zeros(3)}, "query label"),
        ({"Z": np.zeros((3, 4, 5)), "y": np.zeros(3), "w": np.zeros((3, 2))}, "w has shape"),
    ],
)
def test_bad_npz(tmp_path, arrays, fragment):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(InvalidPromptsError, match=None) as ei:
        load_prompts(path)
    assert fragment in str(ei.value)


def test_not_an_npz(tmp_path):
    path = tmp_path / "x.npz"
    path.write_text("hello")
    with pytest.raises(InvalidPromptsError, match="is not an .npz archive"):
        load_prompts(path)


@pytest.mark.parametrize(
    "kw, name",
    [({"d": 0, "n_context": 3}, "'d'"), ({"d": 2, "n_context": 0}, "'n_context'"),
     ({"d": 2, "n_context": 3, "corr": 1.0}, "'corr'"), ({"d": 2, "n_context": 3, "sigma_x": 0}, "'sigma_x'"),
     ({"d": 2, "n_context": 3, "sigma_eps": -1}, "'sigma_eps'"), ({"d": 2, "n_context": 3, "n_tasks": 0}, "'n_tasks'")],
)
def test_bad_distribution(kw, name):
    with pytest.raises(InvalidParameterError, match=name):
        PromptDistribution(**kw)


def test_prompts_validates_directly():
    with pytest.raises(InvalidPromptsError):
        Prompts(np.zeros((2, 3, 4)), np.zeros(3))
