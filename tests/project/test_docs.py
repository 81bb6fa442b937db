"""The documentation site builds with `mkdocs build --strict` (any warning, e.g. a broken link or a
docstring mkdocstrings cannot parse, fails), and its API pages hold the documented functions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_docs_site_builds_strict(tmp_path):
    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    api = (site / "api" / "core.html").read_text()
    for name in ("PromptDistribution", "build_hamiltonian", "solve", "contrast_ratio", "InvalidParameterError"):
        assert name in api, name
    assert "run_sweep" in (site / "api" / "sweeps.html").read_text()
    examples = (site / "examples.html").read_text()
    assert all(p.name in examples for p in (ROOT / "examples").glob("*.py"))
    assert not (site / "_hooks.py").exists()
    # every page of docs/ is on the site's navigation
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = [p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")]
    assert [p for p in pages if p not in nav] == []
