"""Optional parity check of task arithmetic and TIES with mergekit (LGPL-3.0, not a dependency).

Runs only where mergekit is installed (``pip install "mergekit>=0.1.4"``); the models are tiny random GPT-2s
saved with ``save_pretrained`` and read back, i.e. the Hugging Face checkpoints mergekit is made for.
"""

import pytest
import torch

mk_api = pytest.importorskip("mergekit.merge_methods.api", reason="mergekit is an optional cross-check (LGPL-3.0)")
transformers = pytest.importorskip("transformers")

from spinlens.edit.merging import task_arithmetic, ties_merge  # noqa: E402
from spinlens.interp.hf import tiny_hf  # noqa: E402


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    base = tiny_hf("gpt2", n_layers=1, n_heads=2, d_model=32, d_vocab=50, rng=0).hf
    root = tmp_path_factory.mktemp("mk")
    paths = []
    shared = {k: 0.01 * torch.randn(v.shape, generator=torch.Generator().manual_seed(7)) for k, v in base.state_dict().items()}
    for i in range(3):
        m = tiny_hf("gpt2", n_layers=1, n_heads=2, d_model=32, d_vocab=50, rng=0).hf
        g = torch.Generator().manual_seed(i)
        with torch.no_grad():
            for k, p in m.named_parameters():
                if i > 0:  # experts: base + a shared direction + their own noise (signs conflict on many entries)
                    p.add_(shared[k] + 0.01 * torch.randn(p.shape, generator=g))
        m.save_pretrained(root / f"m{i}")
        paths.append(root / f"m{i}")
    load = [transformers.GPT2LMHeadModel.from_pretrained(p, local_files_only=True) for p in paths]
    return [{k: v.detach().double() for k, v in m.state_dict().items()} for m in load]


def test_task_arithmetic_matches_mergekit(saved_models):
    base, a, b = saved_models
    ours = task_arithmetic(base, [a, b], scale=[0.3, 0.7])
    theirs = mk_api.merge_state_dicts({"base": base, "a": a, "b": b}, "task_arithmetic", base="base",
                                      parameters={"weight": {"a": 0.3, "b": 0.7}})
    for k in base:
        torch.testing.assert_close(ours[k], theirs[k], rtol=0, atol=1e-12)


def test_ties_matches_mergekit(saved_models):
    # mergekit keeps int(density·n) entries per tensor, ours ceil(density·n): density 1/4 with every size a
    # multiple of 4 makes both keep the same entries
    base, a, b = saved_models
    assert all(v.numel() % 4 == 0 for v in base.values())
    for lam in (1.0, 0.6):
        ours = ties_merge(base, [a, b], density=0.25, scale=lam)
        theirs = mk_api.merge_state_dicts({"base": base, "a": a, "b": b}, "ties", base="base",
                                          parameters={"weight": 1.0, "density": 0.25, "lambda": lam})
        for k in base:
            torch.testing.assert_close(ours[k], theirs[k], rtol=0, atol=1e-12)
    # the trimmed, sign-elected merge is not plain averaging
    avg = task_arithmetic(base, [a, b])
    assert max(float((ours[k] - avg[k]).abs().max()) for k in base) > 1e-3
