"""Kill a real ``spinlens`` process after its k-th file operation, for every k: the output folder is then the
complete old state or the complete new one (issue 18). The hook is ``SPINLENS_KILL_AT_OP`` of spinlens.io."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from spinlens import io

TEXT = ("The quick brown fox jumps over the lazy dog. " * 40 + "def f(x):\n    return x + 1\n" * 40) * 3


def _snapshot(folder: Path) -> dict:
    if not folder.exists():
        return {}
    return {p.relative_to(folder).as_posix(): io.sha256_file(p) for p in folder.rglob("*") if p.is_file()}


def _complete(folder: Path) -> bool:
    """A complete state: the manifest lists exactly the files present, and each hashes to its record."""
    man = io.read_manifest(folder)
    if man is None:
        return False
    snap = _snapshot(folder)
    snap.pop(io.MANIFEST_FILE)
    return snap == {k: v["sha256"] for k, v in man["files"].items()}


def _run(argv, env_extra, cwd):
    env = {**os.environ, "PYTHONHASHSEED": "0", **env_extra}
    return subprocess.run([sys.executable, "-m", "spinlens.cli.main", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def _commands(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    lm = ["lm", "--corpus", str(corpus), "--vocab-size", "300", "--n-layers", "1", "--n-heads", "2", "--d-model", "16",
          "--n-ctx", "16", "--steps", "3", "--batch-size", "4", "--eval-every", "2", "--n-checkpoints", "2",
          "--no-progress"]
    train = ["train", "--D", "3", "--N", "5", "--P", "20", "--epochs", "2", "--no-progress"]
    return {"lm": lm, "train": train}


def _ops(argv, out, cwd, log):
    """Run once to completion with the hook counting (never firing); return the number of file operations."""
    res = _run([*argv, "--out", str(out)], {"SPINLENS_KILL_AT_OP": "1000000", "SPINLENS_KILL_LOG": str(log)}, cwd)
    assert res.returncode in (0, 3), res.stderr[-2000:]
    return len(log.read_text().splitlines())


def _check_old_or_new(argv, tmp_path, ks):
    out = tmp_path / "out"
    n = _ops(argv, out, tmp_path, tmp_path / "ops.log")  # the old state
    assert n >= 5 and _complete(out)
    old = _snapshot(out)
    seen = set()
    for k in ks(n):
        res = _run([*argv, "--seed", "1", "--out", str(out)], {"SPINLENS_KILL_AT_OP": str(k)}, tmp_path)
        assert res.returncode == -signal.SIGKILL, (k, res.returncode, res.stderr[-1000:])
        now = _snapshot(out)
        if now == old:
            seen.add("old")
        else:
            assert _complete(out), f"torn after a kill at file operation {k} of {n}: {sorted(now)}"
            seen.add("new")
        leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")]
        # a killed run's staging folder may stay until the next transaction on the folder removes it
        assert all(".spinlens-" in name for name in leftovers)
        if seen == {"old", "new"}:
            old = now  # once the new state is in, later kills must leave it (or the next one) whole
    return seen


def _every(n):
    return range(1, n + 1)


def _few(n):
    return sorted({1, n // 2, n - 2, n - 1, n})


@pytest.mark.parametrize("cmd", ["lm", "train"])
def test_kill_at_some_writes(tmp_path, cmd):
    seen = _check_old_or_new(_commands(tmp_path)[cmd], tmp_path, _few)
    assert "old" in seen


@pytest.mark.slow
@pytest.mark.parametrize("cmd", ["lm", "train"])
def test_kill_at_every_write(tmp_path, cmd):
    seen = _check_old_or_new(_commands(tmp_path)[cmd], tmp_path, _every)
    assert seen == {"old", "new"}
