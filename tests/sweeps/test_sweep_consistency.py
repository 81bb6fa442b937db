"""Sweeps stay consistent under abuse: extended-then-killed sweeps, concurrent runs, failed first points,
unreachable schedulers, and point functions from config files (real processes, a real Dask scheduler)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from spinlens.cli.main import main
from spinlens.errors import InvalidParameterError
from spinlens.sweeps import SweepLockedError, make_grid, open_sweep, run_sweep
from spinlens.sweeps._lock import SweepLock

TOY = "spinlens.sweeps.testing:toy_point"
OBS = ["contrast_ratio", "n_iter"]


def _env(sleep: float = 0.0, **extra) -> dict:
    env = dict(os.environ, SPINLENS_TOY_SLEEP=str(sleep), OMP_NUM_THREADS="1", **extra)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _cli(out: Path, seeds: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "spinlens.cli.main", "sweep", "--N", "5,10", "--P", "20,40", "--seed", seeds,
            "--observables", ",".join(OBS), "--point-fn", TOY, "--out", str(out), "--jobs", "1", "--no-progress",
            *extra]


def _n_points(out: Path) -> int:
    d = out / "points"
    return len([p for p in d.glob("*.json") if not p.name.startswith(".")]) if d.exists() else 0


def _start_and_wait(args, env, out, at_least):
    p = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    t0 = time.time()
    while _n_points(out) < at_least:
        if p.poll() is not None:
            raise AssertionError(p.communicate())
        assert time.time() - t0 < 60, "sweep made no progress"
        time.sleep(0.02)
    return p


def test_extended_then_killed_sweep_opens_with_the_new_grid_and_a_done_mask(tmp_path):
    out = tmp_path / "s"
    first = subprocess.run(_cli(out, "0:2"), env=_env(), capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    old = open_sweep(out)
    assert old.sizes["seed"] == 2 and "done" not in old
    # extend to 6 seeds and SIGKILL the resumed run midway
    p = _start_and_wait(_cli(out, "0:6", "--resume"), _env(0.2), out, at_least=10)
    os.kill(p.pid, signal.SIGKILL)
    p.communicate(timeout=60)
    n_stored = _n_points(out)
    assert 10 <= n_stored < 24
    assert not (out / "results.nc").exists(), "a stale results.nc must not outlive the grid change"
    ds = open_sweep(out)
    spec = json.loads((out / "sweep.json").read_text())
    assert list(ds["seed"].values) == spec["grid"]["seed"] == list(range(6))
    assert int(ds["done"].sum()) == n_stored
    # the old points keep their values
    xr.testing.assert_identical(ds["n_iter"].sel(seed=[0, 1]), old["n_iter"])
    # the lock of the killed run is stale (dead pid): a resume takes it over and finishes
    assert (out / ".lock").exists()
    done = subprocess.run(_cli(out, "0:6", "--resume"), env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not (out / ".lock").exists()
    full = open_sweep(out)
    assert "done" not in full and full.sizes["seed"] == 6


def test_stale_results_nc_is_not_returned(tmp_path):
    out = tmp_path / "s"
    run_sweep(make_grid({"N": "5,10", "seed": "0:2"}), OBS, out, jobs=1, progress=False, point_fn=TOY)
    # someone (an older spinlens, a copy) leaves a results.nc that no longer matches sweep.json
    stale = open_sweep(out)
    spec = json.loads((out / "sweep.json").read_text())
    spec["grid"]["seed"] = [0, 1, 2]
    (out / "sweep.json").write_text(json.dumps(spec))
    for target in (out, out / "results.nc"):
        ds = open_sweep(target)
        assert ds.sizes["seed"] == 3 and int(ds["done"].sum()) == 4
    # a point file deleted after the fact: results.nc no longer tells the truth either
    spec["grid"]["seed"] = [0, 1]
    (out / "sweep.json").write_text(json.dumps(spec))
    xr.testing.assert_identical(open_sweep(out), stale)
    next((out / "points").glob("*.json")).unlink()
    assert int(open_sweep(out)["done"].sum()) == 3


def test_two_concurrent_runs_second_refuses_with_one_line(tmp_path):
    out = tmp_path / "s"
    log = tmp_path / "calls.log"
    # slow enough (20 points × 0.5 s) that the second run starts, even on a loaded machine, while the first works
    env = _env(0.5, SPINLENS_TOY_LOG=str(log))
    a = _start_and_wait(_cli(out, "0:5"), env, out, at_least=1)
    b = subprocess.run(_cli(out, "0:5", "--resume"), env=env, capture_output=True, text=True, timeout=60)
    assert b.returncode == 2, b.stderr
    lines = b.stderr.strip().splitlines()
    assert len(lines) == 1 and "in use by another spinlens sweep" in lines[0] and f"pid {a.pid}" in lines[0]
    _, err_a = a.communicate(timeout=120)
    assert a.returncode == 0, err_a
    keys = [ln.split()[0] for ln in log.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == 20  # nothing computed twice
    assert not (out / ".lock").exists()


def test_lock_of_another_host_or_live_process_is_respected_and_dead_one_taken_over(tmp_path):
    out = tmp_path / "s"
    out.mkdir()
    lock = out / ".lock"
    lock.write_text(json.dumps({"pid": 1, "host": "another-host.example", "started": "1", "created_at": 0}))
    with pytest.raises(SweepLockedError, match="another-host.example"):
        run_sweep(make_grid({"N": "5"}), OBS, out, jobs=1, progress=False, point_fn=TOY)
    assert not (out / "sweep.json").exists()
    # a live process of this host (this test's own parent) holds it
    lock.write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(), "created_at": 0}))
    with pytest.raises(SweepLockedError, match=f"pid {os.getppid()}"):
        run_sweep(make_grid({"N": "5"}), OBS, out, jobs=1, progress=False, point_fn=TOY)
    # the same pid but another start time: the pid was reused, the lock is stale
    lock.write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(), "started": "-5"}))
    run_sweep(make_grid({"N": "5"}), OBS, out, jobs=1, progress=False, point_fn=TOY)
    # a dead process (a child we reaped) of this host
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock.write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(), "started": "1"}))
    run_sweep(make_grid({"N": "5"}), OBS, out, jobs=1, progress=False, point_fn=TOY, force=True)
    assert not lock.exists()
    with SweepLock(out) as held:
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        with pytest.raises(SweepLockedError):
            SweepLock(out).acquire()
        assert held.held
    assert not lock.exists()


def _failing_point(params, observables, **options):
    raise RuntimeError("boom at the first point")


def test_failed_first_point_leaves_nothing_that_blocks_a_retry(tmp_path):
    out = tmp_path / "s"
    with pytest.raises(InvalidParameterError, match="failed at point"):
        run_sweep(make_grid({"N": "5,10"}), OBS, out, jobs=1, progress=False,
                  point_fn=f"{__name__}:_failing_point")
    assert not out.exists()
    # in a folder that existed before: the folder stays, the sweep's files go
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InvalidParameterError):
        run_sweep(make_grid({"N": "5,10"}), OBS, out, jobs=2, progress=False, point_fn=f"{__name__}:_failing_point")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    run_sweep(make_grid({"N": "5,10"}), OBS, out, jobs=1, progress=False, point_fn=TOY)  # a plain retry works


def test_killed_during_first_point_does_not_block_a_plain_run(tmp_path):
    out = tmp_path / "s"
    p = subprocess.Popen(_cli(out, "0:2"), env=_env(30.0), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    t0 = time.time()
    while not (out / "sweep.json").exists():
        assert p.poll() is None and time.time() - t0 < 60
        time.sleep(0.02)
    os.kill(p.pid, signal.SIGKILL)
    p.communicate(timeout=60)
    assert _n_points(out) == 0
    again = subprocess.run(_cli(out, "0:2"), env=_env(), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_reports_in_seconds_with_one_line(tmp_path, capsys):
    addr = f"tcp://127.0.0.1:{_free_port()}"
    t0 = time.perf_counter()
    code = main(["sweep", "--N", "5", "--point-fn", TOY, "--scheduler", addr, "--scheduler-timeout", "1",
                 "--out", str(tmp_path / "s"), "--no-progress"])
    took = time.perf_counter() - t0
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and took < 8, took
    assert "error:" in err[-1] and addr in err[-1] and "--scheduler-timeout" in err[-1]
    assert not (tmp_path / "s").exists()
    with pytest.raises(InvalidParameterError, match="scheduler_timeout"):
        run_sweep(make_grid({"N": "5"}), OBS, tmp_path / "t", scheduler=addr, scheduler_timeout=-1)


def test_default_scheduler_timeout_is_short(tmp_path):
    addr = f"tcp://127.0.0.1:{_free_port()}"
    t0 = time.perf_counter()
    with pytest.raises(InvalidParameterError, match="within 5 s"):
        run_sweep(make_grid({"N": "5"}), OBS, tmp_path / "s", scheduler=addr, progress=False, point_fn=TOY)
    assert time.perf_counter() - t0 < 12


def test_dask_scheduler_on_loopback_with_lock_and_resume(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    grid = make_grid({"N": "5,10", "seed": "0:3"})
    ref = run_sweep(grid, OBS, tmp_path / "ref", jobs=1, progress=False, point_fn=TOY)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, host="127.0.0.1",
                                  protocol="tcp://", dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        small = make_grid({"N": "5,10", "seed": "0:1"})
        run_sweep(small, OBS, tmp_path / "d", scheduler=cluster.scheduler_address, scheduler_timeout=10,
                  progress=False, point_fn=TOY)
        ds = run_sweep(grid, OBS, tmp_path / "d", scheduler=cluster.scheduler_address, scheduler_timeout=10,
                       progress=False, point_fn=TOY, resume=True)
    xr.testing.assert_identical(ds, ref)
    assert not (tmp_path / "d" / ".lock").exists()


# ---- trust boundary: point functions named by a config file


@pytest.mark.parametrize("ref", ["os:getcwd", "json:dumps", "subprocess:call", "no_such_module_xyz:f"])
def test_config_point_fn_outside_spinlens_needs_opt_in(tmp_path, capsys, ref):
    cfg = tmp_path / "grid.toml"
    cfg.write_text(f'[grid]\nN = "5"\n[settings]\npoint_fn = "{ref}"\n')
    code = main(["sweep", "--config", str(cfg), "--out", str(tmp_path / "s"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--allow-point-fn" in err[0], err
    assert not (tmp_path / "s").exists()
    # opted in: still one error line, since none of these is a point function (some fail only when called,
    # after the sweep's start line)
    code = main(["sweep", "--config", str(cfg), "--out", str(tmp_path / "s"), "--no-progress", "--allow-point-fn"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) <= 2 and "error:" in err[-1] and "point_fn" in err[-1], err
    assert not (tmp_path / "s").exists()


def _junk_point(params, observables, **options):
    return {"converged": True, "contrast_ratio": "high"}


def _good_point(params, observables, **options):
    return {"converged": np.bool_(True), "contrast_ratio": np.float32(params["N"]), "n_iter": np.int64(3)}


def test_custom_point_fn_with_opt_in(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    mod = Path(__file__).stem
    base = ["sweep", "--N", "5,10", "--observables", "contrast_ratio,n_iter", "--jobs", "1", "--no-progress"]
    assert main(base + ["--point-fn", f"{mod}:_good_point", "--out", str(tmp_path / "a")]) == 2
    assert "--allow-point-fn" in capsys.readouterr().err
    assert main(base + ["--point-fn", f"{mod}:_good_point", "--out", str(tmp_path / "a"), "--allow-point-fn"]) == 0
    assert list(open_sweep(tmp_path / "a")["contrast_ratio"].values) == [5.0, 10.0]
    capsys.readouterr()
    assert main(base + ["--point-fn", f"{mod}:_junk_point", "--out", str(tmp_path / "b"), "--allow-point-fn"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith("sweep: ") and "numbers or bools" in err[1]
    assert not (tmp_path / "b").exists()
