"""Randomness: every stochastic function takes a keyword-only ``rng`` (None, int or Generator).

No library code seeds global state. Independent streams come from `spawn`.
"""

from __future__ import annotations

import numpy as np

RNGLike = None | int | np.random.Generator | np.random.SeedSequence


def as_generator(rng: RNGLike = None) -> np.random.Generator:
    """Return a numpy Generator from None, an int seed, a SeedSequence or a Generator (returned as is)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (bool, float)):
        raise TypeError(f"The 'rng' parameter must be None, an int or a numpy Generator. Got {rng!r} instead.")
    return np.random.default_rng(rng)


def spawn(rng: RNGLike, n: int) -> list[np.random.Generator]:
    """Split ``rng`` into ``n`` independent generators (for chains, repeats, sweep points)."""
    return as_generator(rng).spawn(n)


def seed_from(rng: RNGLike = None) -> int:
    """Draw a 63-bit integer seed from ``rng`` (for libraries that want an int, e.g. torch)."""
    return int(as_generator(rng).integers(0, 2**63 - 1))


def torch_generator(rng: RNGLike = None, device="cpu"):
    """A ``torch.Generator`` on ``device`` seeded from ``rng``."""
    import torch

    g = torch.Generator(device=device)
    g.manual_seed(seed_from(rng))
    return g
