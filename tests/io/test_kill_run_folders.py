"""Kill a real ``spinlens`` process after its k-th file operation (``SPINLENS_KILL_AT_OP``) while it rewrites a
run folder: the folder is then the complete old run or the complete new one (a run-folder command), or a valid
sweep that ``--resume`` finishes without losing or repeating a finished point (a sweep)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from test_kill_at_every_write import _complete, _every, _few, _run, _snapshot

from spinlens import io

CURVE = ["theory", "curve", "--vary", "tau", "--from", "0.1", "--to", "3", "--alpha", "2"]
QUANTIZE = ["quantize", "--setting", "regression", "--D", "2", "--N", "4", "--base-steps", "30", "--n-random", "1",
            "--budgets", "4", "--bits", "4", "8", "--granularity", "layer", "--no-progress", "--json"]


def _ops(argv, cwd, log):
    res = _run(argv, {"SPINLENS_KILL_AT_OP": "1000000", "SPINLENS_KILL_LOG": str(log)}, cwd)
    assert res.returncode in (0, 3), res.stderr[-2000:]
    return [ln.split(" ", 1)[1] for ln in log.read_text().splitlines()]


def _old_or_new(first, second, tmp_path, ks):
    """Run ``first``, then kill ``second`` (same --out) at the operations ``ks(n)``: old or new, never a mix."""
    out = tmp_path / "out"
    (tmp_path / "elsewhere.txt").write_text("a file beside the run folder")
    _ops([*first, "--out", str(out)], tmp_path, tmp_path / "ops0.log")
    old = _snapshot(out)
    ops = _ops([*second, "--out", str(tmp_path / "probe")], tmp_path, tmp_path / "ops.log")
    new = _snapshot(tmp_path / "probe")
    new_names = set(new)
    assert _complete(out) and old != new, "the two runs must differ to tell old from new"
    seen = set()
    for k in ks(len(ops) + 2):  # the re-run also has the operations of switching the old state out
        res = _run([*second, "--out", str(out)], {"SPINLENS_KILL_AT_OP": str(k)}, tmp_path)
        if res.returncode in (0, 3):  # fewer operations than k: it finished
            assert set(_snapshot(out)) == new_names and _complete(out)
            seen.add("new")
            break
        assert res.returncode == -signal.SIGKILL, (k, res.returncode, res.stderr[-1000:])
        now = _snapshot(out)
        if now == old:
            seen.add("old")
        else:
            assert _complete(out) and set(now) == new_names, f"torn after a kill at operation {k}: {sorted(now)}"
            seen.add("new")
            old = now
        assert (tmp_path / "elsewhere.txt").read_text() == "a file beside the run folder"
    return seen


def _forked(argv, kill_at, cwd, log=None) -> int:
    """Run ``spinlens argv`` in a forked child (no interpreter start: fast) with the kill hook at ``kill_at``;
    return its wait status as a returncode (negative: killed by that signal)."""
    import os

    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.chdir(cwd)
            os.environ[io._KILL_ENV] = str(kill_at)
            if log is not None:
                os.environ["SPINLENS_KILL_LOG"] = str(log)
            io._op_count = 0
            from spinlens.cli.main import main

            with open(os.devnull, "w") as null:
                import contextlib

                with contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
                    code = main(argv)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def test_theory_curve_killed_is_old_or_new(tmp_path):
    """make test's quick check (forked, not a fresh interpreter): a kill while staging leaves the old run, a kill
    right after the switch the new one, never a mix; the full sweep over every operation is marked slow."""
    import matplotlib

    matplotlib.use("Agg")
    out = tmp_path / "out"
    first = [*CURVE, "--num", "5", "--out", str(out)]
    second = [*CURVE, "--num", "4", "--lam-lu", "0.5", "--out", str(out)]
    from spinlens.cli.main import main

    assert main(first) == 0  # in this process: the forked children inherit its imports
    assert _forked(first, 10**6, tmp_path, log=tmp_path / "ops.log") == 0  # count a re-run's operations
    ops = [ln.split(" ", 1)[1] for ln in (tmp_path / "ops.log").read_text().splitlines()]
    switch = ops.index("exchange") + 1
    old = _snapshot(out)
    assert _forked(second, switch - 2, tmp_path) == -signal.SIGKILL  # staging: the old run
    assert _snapshot(out) == old
    assert _forked(second, switch, tmp_path) == -signal.SIGKILL  # switched, the old state not yet removed
    now = _snapshot(out)
    assert now != old and _complete(out) and set(now) == set(old)
    assert "0.5" in (out / "run.json").read_text() and not any(".spinlens-old" in p.name for p in tmp_path.iterdir())


@pytest.mark.slow
def test_run_folder_killed_at_every_write(tmp_path):
    seen = _old_or_new([*CURVE, "--num", "5"], [*CURVE, "--num", "4", "--lam-lu", "0.5"], tmp_path, _every)
    assert seen == {"old", "new"}


@pytest.mark.slow
def test_edit_run_folder_with_its_cached_base_killed_is_old_or_new(tmp_path):
    """quantize writes OUT/base (a nested model folder, carried into a re-run) and its study files."""
    seen = _old_or_new(QUANTIZE, [*QUANTIZE, "--seed", "1"], tmp_path, _few)
    assert seen == {"old", "new"}


SWEEP = ["sweep", "--D", "2", "--P", "8", "--jobs", "1", "--no-progress"]


def _state(out: Path) -> dict:
    return {k: v for k, v in _snapshot(out).items() if k != ".lock"}  # a killed run's lock is taken over later


def _points(out: Path) -> dict:
    pts = out / "points"
    return {p.name: p.read_bytes() for p in pts.glob("*.json")} if pts.is_dir() else {}


@pytest.mark.slow
def test_sweep_killed_at_every_write_resumes_without_loss_or_repeat(tmp_path):
    out = tmp_path / "sw"
    old_grid, new_grid = ["--N", "2,3"], ["--N", "2,3,4"]
    _ops([*SWEEP, *old_grid, "--out", str(out)], tmp_path, tmp_path / "ops0.log")
    old = _state(out)
    old_spec = json.loads((out / "sweep.json").read_text())
    ops = _ops([*SWEEP, *new_grid, "--force", "--out", str(tmp_path / "probe")], tmp_path, tmp_path / "ops.log")
    seen = set()
    for k in range(1, len(ops) + 4):
        res = _run([*SWEEP, *new_grid, "--force", "--out", str(out)], {"SPINLENS_KILL_AT_OP": str(k)}, tmp_path)
        if res.returncode == 0:
            seen.add("finished")
            break
        assert res.returncode == -signal.SIGKILL, (k, res.returncode, res.stderr[-1000:])
        spec = json.loads((out / "sweep.json").read_text())  # always a whole, valid sweep.json
        if _state(out) == old:
            seen.add("old")
        else:
            assert spec != old_spec and spec["grid"]["N"] == [2, 3, 4], spec
            # the new sweep: --resume finishes it; the points finished before the kill are kept, not recomputed
            before = _points(out)
            assert (out / "results.nc").exists() == (out / "run.json").exists(), "results.nc without its run.json"
            res2 = _run([*SWEEP, *new_grid, "--resume", "--out", str(out)], {}, tmp_path)
            assert res2.returncode == 0, res2.stderr[-1000:]
            after = _points(out)
            assert len(after) == 3 and all(after[n] == b for n, b in before.items())
            run = json.loads((out / "run.json").read_text())
            assert run["n_reused"] == len(before) and run["n_computed"] == 3 - len(before)
            seen.add("new")
            # back to the old sweep for the next kill
            _run([*SWEEP, *old_grid, "--force", "--out", str(out)], {}, tmp_path)
            old = _state(out)
    assert {"old", "new"} <= seen
