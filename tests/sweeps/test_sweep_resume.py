"""Interrupt a running `spinlens sweep` (SIGKILL, Ctrl-C) and resume it: nothing lost, nothing recomputed,
and the result is identical to an uninterrupted run with the same seeds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xarray as xr

from spinlens.sweeps import make_grid, open_sweep, point_key, run_sweep

TOY = "spinlens.sweeps.testing:toy_point"
GRID = {"N": "5,10,20", "P": "10:100:4", "seed": "0:4"}  # 48 points
OBS = "contrast_ratio,n_iter,test_error"


def _cli_args(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "spinlens.cli.main", "sweep", "--N", GRID["N"], "--P", GRID["P"],
            "--seed", GRID["seed"], "--observables", OBS, "--point-fn", TOY, "--out", str(out),
            "--jobs", "2", "--chunk-size", "1", "--no-progress", *extra]


def _env(log: Path, sleep: float) -> dict:
    env = dict(os.environ, SPINLENS_TOY_LOG=str(log), SPINLENS_TOY_SLEEP=str(sleep), OMP_NUM_THREADS="1")
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _n_points(out: Path) -> int:
    d = out / "points"
    return len([p for p in d.glob("*.json") if not p.name.startswith(".")]) if d.exists() else 0


def _interrupt_midway(out: Path, log: Path, sig: int, at_least: int = 10) -> subprocess.CompletedProcess:
    p = subprocess.Popen(_cli_args(out), env=_env(log, 0.15), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True, text=True)
    t0 = time.time()
    while _n_points(out) < at_least:
        assert p.poll() is None, p.communicate()
        assert time.time() - t0 < 60, "sweep made no progress"
        time.sleep(0.02)
    if sig == signal.SIGKILL:
        os.kill(p.pid, signal.SIGKILL)  # the parent only, as `kill -9 PID` would
    else:
        os.killpg(p.pid, sig)  # Ctrl-C in a terminal signals the whole foreground process group
    stdout, stderr = p.communicate(timeout=60)
    return subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr)


def _metas(out: Path) -> dict:
    return {p.stem: json.loads(p.read_text())["meta"] for p in (out / "points").glob("*.json")}


def _log_keys(log: Path) -> list[str]:
    return [ln.split()[0] for ln in log.read_text().splitlines()] if log.exists() else []


def _pids_alive(pids) -> list[int]:
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if "State:\tZ" not in state:
            alive.append(pid)
    return alive


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "sweep"
    return run_sweep(make_grid(GRID), OBS.split(","), out, jobs=1, progress=False, point_fn=TOY)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_interrupt_then_resume_equals_uninterrupted_run(tmp_path, reference, sig):
    out, log = tmp_path / "sweep", tmp_path / "calls.log"
    n_total = make_grid(GRID).n_points
    res = _interrupt_midway(out, log, sig)
    if sig == signal.SIGKILL:
        assert res.returncode == -signal.SIGKILL
    else:
        assert res.returncode == 130, res.stderr
        assert "interrupted" in res.stderr and "--resume" in res.stderr
    before = _metas(out)
    assert 10 <= len(before) < n_total, "the interrupt must land mid-run"
    assert not (out / "results.nc").exists()
    # every stored point is complete and readable; no temporaries become points
    for p in (out / "points").glob("*.json"):
        assert json.loads(p.read_text())["values"]["converged"] in (True, False)
    calls_before = _log_keys(log)
    if sig == signal.SIGINT:
        # Ctrl-C loses nothing: every point a worker finished was stored before exiting
        assert set(calls_before) == set(before)
    # the parent's workers do not outlive it
    worker_pids = {int(ln.split()[1]) for ln in log.read_text().splitlines()}
    deadline = time.time() + 5
    while _pids_alive(worker_pids) and time.time() < deadline:
        time.sleep(0.1)
    assert not _pids_alive(worker_pids)

    # a partial sweep already opens, with a mask of the finished points
    part = open_sweep(out)
    assert int(part["done"].sum()) == len(before)

    done = subprocess.run(_cli_args(out, "--resume"), env=_env(log, 0.0), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr  # docs/cli.md: a map exits 0 with its converged count (--strict: 3)
    calls_resume = _log_keys(log)[len(calls_before):]
    # nothing finished was recomputed, every missing point exactly once
    assert len(calls_resume) == n_total - len(before)
    assert set(calls_resume).isdisjoint(before)
    after = _metas(out)
    assert len(after) == n_total
    assert all(after[k] == before[k] for k in before)  # original time stamps, pids and run ids are kept
    assert len({m["run_id"] for m in after.values()}) == 2
    ds = open_sweep(out)
    xr.testing.assert_identical(ds, reference)
    rec = json.loads((out / "run.json").read_text())
    assert (rec["n_reused"], rec["n_computed"]) == (len(before), n_total - len(before))
    assert "reused" in done.stderr and "converged" in done.stderr


def test_point_keys_are_file_names(tmp_path, reference):
    out = tmp_path / "s"
    run_sweep(make_grid({"N": "5,10"}), ["contrast_ratio"], out, jobs=1, progress=False, point_fn=TOY)
    keys = {point_key(p) for p in make_grid({"N": "5,10"}).points()}
    assert keys == {p.stem for p in (out / "points").glob("*.json")}
