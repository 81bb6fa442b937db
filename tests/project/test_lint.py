"""Lint and types are part of the suite: ruff over the repository and mypy over the core packages, both
configured in pyproject.toml ([tool.ruff], [tool.mypy])."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_ruff_passes():
    r = _run("ruff", "check", "--no-cache", "--output-format", "concise", ".")
    assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]


def test_mypy_passes_on_the_core_packages(tmp_path):
    # the files are listed in pyproject.toml; a scratch cache keeps parallel runs apart
    r = _run("mypy", "--cache-dir", str(tmp_path / "mypy-cache"))
    assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]
