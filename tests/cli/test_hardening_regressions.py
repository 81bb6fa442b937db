"""Regression tests: 1-bit symmetric quantization, safetensors-only Hugging Face loading, and `reproduce`
announcing each figure as it starts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spinlens.edit.quantization import fake_quantize
from spinlens.errors import InvalidParameterError


def _textbook_binarize(w: np.ndarray, group_size: int) -> np.ndarray:
    """Sign binarisation per group of consecutive entries of each row: alpha = mean|w|, q = alpha·sign(w)."""
    out = np.empty_like(w)
    for r in range(w.shape[0]):
        for a in range(0, w.shape[1], group_size):
            g = w[r, a : a + group_size]
            alpha = np.abs(g).mean()
            out[r, a : a + group_size] = np.where(g >= 0, alpha, -alpha)
    return out


@pytest.mark.parametrize("n,group_size", [(12, 4), (10, 4), (7, 32), (5, 1)])
def test_one_bit_symmetric_is_sign_binarisation_with_mean_abs_scale(n, group_size):
    rng = np.random.default_rng(n * 100 + group_size)
    w = rng.standard_normal((3, n))
    w[0, 0] = 0.0  # sign(0) = +1
    q = fake_quantize(torch.tensor(w), 1, group_size=group_size, symmetric=True, dim=-1).numpy()
    np.testing.assert_allclose(q, _textbook_binarize(w, group_size), rtol=1e-12, atol=0)
    for r in range(3):
        for a in range(0, n, group_size):
            levels = np.unique(np.abs(q[r, a : a + group_size]))
            assert len(levels) == 1  # two levels ±s, never 0
            g = w[r, a : a + group_size]
            # mean|w| minimises the squared error over all scales s of s·sign(w)
            ss = np.linspace(0, 2 * np.abs(g).max() + 1e-12, 2001)
            errs = [((g - s * np.where(g >= 0, 1, -1)) ** 2).sum() for s in ss]
            assert ((g - q[r, a : a + group_size]) ** 2).sum() <= min(errs) + 1e-12
    assert q[0, 0] > 0 or group_size == 1  # a group of one zero has scale 0


def test_one_bit_along_the_input_dim_of_a_weight_matrix():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((8, 3))  # (n_in, n_out): groups run along dim -2
    q = fake_quantize(torch.tensor(w, dtype=torch.float32), 1, group_size=4, symmetric=True).numpy()
    np.testing.assert_allclose(q, _textbook_binarize(w.T.astype(np.float32).astype(np.float64), 4).T, rtol=1e-6)
    assert q.dtype == np.float32


def test_two_bits_symmetric_unchanged():
    w = torch.tensor([[-1.0, -0.4, 0.1, 0.6]])
    q = fake_quantize(w, 2, group_size=4, symmetric=True, dim=-1)
    torch.testing.assert_close(q, torch.tensor([[-1.0, 0.0, 0.0, 1.0]]))


# ---- Hugging Face folders: safetensors only, unless opted in


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory):
    pytest.importorskip("transformers")
    from spinlens.interp.hf import tiny_hf

    m = tiny_hf("gpt2", n_layers=1, n_heads=2, d_model=16, d_vocab=20, max_pos=16, rng=0)
    root = tmp_path_factory.mktemp("hf")
    safe, pickled = root / "safe", root / "bin"
    m.hf.save_pretrained(safe)
    pickled.mkdir()
    (pickled / "config.json").write_text((safe / "config.json").read_text())
    torch.save(m.hf.state_dict(), pickled / "pytorch_model.bin")
    return m, safe, pickled


def test_hf_loaders_refuse_pickled_weights_without_opt_in(tiny_folders):
    from spinlens.edit.hf_quantization import load_hf_causal_lm
    from spinlens.interp.hf import load_hf

    m, safe, pickled = tiny_folders
    tokens = torch.tensor([[1, 2, 3, 4]])
    ref = m(tokens)
    torch.testing.assert_close(load_hf(safe)(tokens), ref)
    for loader in (load_hf, load_hf_causal_lm):
        with pytest.raises(InvalidParameterError, match="allow-pickle-weights") as exc:
            loader(pickled)
        assert "\n" not in str(exc.value)
    torch.testing.assert_close(load_hf(pickled, allow_pickle_weights=True)(tokens), ref)
    out = load_hf_causal_lm(pickled, allow_pickle_weights=True)(input_ids=tokens).logits
    torch.testing.assert_close(out, ref)


def test_cli_refuses_pickled_hf_folder_with_one_line(tiny_folders, capsys):
    from spinlens.cli.main import main

    _, _, pickled = tiny_folders
    code = main(["interp", "lens", "--model", str(pickled), "--json"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--allow-pickle-weights" in err[0]


# ---- reproduce says which figure runs


def test_reproduce_announces_each_figure_before_it_runs(monkeypatch, capsys, tmp_path):
    import spinlens.reproduce as R
    from spinlens.cli.main import main

    calls = []

    def fake_run_figure(name, out_dir, *, quick=True, seed=0, echo=None, force=False):
        import sys

        calls.append(name)
        print(f"RUNNING {name}", file=sys.stderr)
        return {"mode": "quick", "out_dir": str(out_dir), "elapsed_s": 0.0, "max_deviation": None}

    monkeypatch.setattr(R, "run_figure", fake_run_figure)
    assert main(["reproduce", "all", "--out", str(tmp_path), "--json"]) == 0
    err = capsys.readouterr().err.splitlines()
    n = len(calls)
    assert n == len(R.available()) and n > 1
    for k, name in enumerate(calls, 1):
        i = err.index(f"RUNNING {name}")
        assert err[i - 1].startswith(f"reproduce [{k}/{n}] {name} (quick): ") and err[i - 1].endswith("started")
    assert main(["reproduce", "fig4b", "--out", str(tmp_path), "--json"]) == 0
    assert capsys.readouterr().err.splitlines()[0].startswith("reproduce fig4b (quick): test error")
