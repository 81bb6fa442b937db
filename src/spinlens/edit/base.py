"""The small base model of the edit experiments: a GPT-2-style transformer trained on ICL linear regression.

`pretrained_base` trains it (or reads it from its cache folder, a spinlens model folder written by
`spinlens.models.checkpoint.save_model`); `regression_dims` gives the (D, N) of the prompts a regression
Transformer reads.
"""

from __future__ import annotations

from spinlens.edit._data import sample_regression_prompts
from spinlens.random import spawn

__all__ = ["BASE_DEFAULTS", "pretrained_base", "regression_dims", "load_transformer"]

BASE_DEFAULTS = dict(n_layers=2, n_heads=4, d_model=32, d_mlp=64)


def load_transformer(path):
    """Load a spinlens `Transformer` from a checkpoint folder (`spinlens.models.checkpoint.load_model`).

    Also reads the single ``.safetensors`` file the edit commands wrote before (with a `FutureWarning`).
    Saving goes through `spinlens.models.checkpoint.save_model` (one folder format for every model).
    """
    from spinlens.models.checkpoint import load_transformer as _load

    return _load(path)


def pretrained_base(d: int = 5, n_context: int = 10, *, steps: int = 2000, path=None, rng=0, progress=False, **arch):
    """A small GPT-2-style transformer trained on isotropic ICL linear regression (cached in the folder ``path``).

    The cache is a checkpoint folder (`spinlens.models.checkpoint.save_model`); a cache with other sizes
    is retrained and overwritten.
    """
    from pathlib import Path

    from spinlens.models.checkpoint import is_checkpoint, save_model
    from spinlens.models.transformer import Transformer

    folder = None if path is None else Path(path)
    if folder is not None and folder.suffix == ".safetensors":  # the older single-file cache name
        if folder.is_file():
            m = load_transformer(folder)
            if m.cfg.d_in == d + 1 and m.cfg.max_pos == n_context + 1:
                return m
        folder = folder.with_suffix("")
    if folder is not None and is_checkpoint(folder):
        m = load_transformer(folder)
        if m.cfg.d_in == d + 1 and m.cfg.max_pos == n_context + 1:
            return m
    g1, g2, g3 = spawn(rng, 3)
    cfg = {**BASE_DEFAULTS, **arch}
    m = Transformer(d_in=d + 1, max_pos=n_context + 1, rng=g1, **cfg)
    Z, y, _ = sample_regression_prompts(max(20000, 16 * steps), d, n_context, rng=g2)
    from spinlens.edit.pinpoint import pinpoint_tune

    m = pinpoint_tune(m, "all", Z, y, lr=2e-3, steps=steps, batch_size=128, rng=g3, progress=progress).model
    if folder is not None:
        from spinlens.io import without_manifest

        legacy = without_manifest(folder)  # a cache written before manifests is spinlens' own: replaced in place
        save_model(m, folder, metadata={"task": "icl-regression", "distribution": {"d": d, "n_context": n_context},
                                      "steps": steps, "seed": rng if isinstance(rng, int) else None}, force=legacy)
    return m


def regression_dims(model, n_context=None):
    """(D, N) of a regression Transformer: N = ``n_context`` (the length it was trained on) or its longest."""
    from spinlens.errors import check_int

    n_max = model.cfg.max_pos - 1
    n = n_max if n_context is None else check_int("n_context", n_context, low=1, high=n_max)
    return model.cfg.d_in - 1, n
