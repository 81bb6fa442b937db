import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(20240805)


@pytest.fixture
def audit_figures():
    """Check every figure `spinlens.io.save_figure` writes during the test (labels, colourbars, legends)."""
    from spinlens import io
    from spinlens.plotting.checks import assert_figure_ok

    def hook(fig, stem):
        assert_figure_ok(fig, str(stem))

    io.FIGURE_HOOKS.append(hook)
    yield
    io.FIGURE_HOOKS.remove(hook)
