"""Running sweeps: the real point function against brute force, executors, store, overwrite protection."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import xarray as xr

from spinlens.sweeps import compute_point, make_grid, open_sweep, point_seed_sequence, run_sweep

TOY = "spinlens.sweeps.testing:toy_point"


def _brute_force_prompts_features(params):
    """Rebuild the point's prompts from its stream and the features from Z Zᵀ W Z literally."""
    from spinlens.prompts import PromptDistribution

    ss = point_seed_sequence(params).spawn(3)[0]
    dist = PromptDistribution(d=params["D"], n_context=params["N"], sigma_eps=params["sigma_eps"],
                              corr=params["corr"], n_tasks=params["K"])
    pr = dist.sample(params["P"], rng=np.random.default_rng(ss))
    Z, y = pr.Z, pr.y
    D, N = params["D"], params["N"]
    n = (D + 1) ** 2
    S = np.empty((params["P"], n))
    for i in range(n):  # prediction of the merged model for the basis matrix E_i
        E = np.zeros(n)
        E[i] = 1.0
        E = E.reshape(D + 1, D + 1)
        S[:, i] = np.einsum("pij,pkj,kl,pl->pi", Z, Z, E, Z[:, :, N])[:, D] / (N + 1)
    return pr, S, y


def test_exact_point_matches_brute_force_ridge_and_monte_carlo():
    params = dict(make_grid({"D": 3, "N": 6, "P": 60, "lam": 0.05}).points().__next__())
    obs = ["test_error", "pool_error", "train_error", "contrast_ratio", "zero_mode_fraction", "overlap", "n_iter"]
    r = compute_point(params, obs, method="exact", sampler="core")
    pr, S, y = _brute_force_prompts_features(params)
    P, n = S.shape
    w = np.linalg.solve(S.T @ S / P + params["lam"] * np.eye(n), S.T @ y / P)
    W = w.reshape(4, 4)
    assert r["converged"] is True
    assert r["train_error"] == pytest.approx(np.mean((y - S @ w) ** 2), rel=1e-9)
    assert r["contrast_ratio"] == pytest.approx(np.trace(W) / (np.linalg.norm(W) * 2.0), rel=1e-9)
    ev = np.linalg.eigvalsh(S.T @ S / P)
    assert r["zero_mode_fraction"] == pytest.approx(np.mean(ev < 1e-9 * ev.max()))
    # test and pool errors: Monte-Carlo with fresh prompts drawn here, independently of spinlens
    g = np.random.default_rng(123)
    M = 40000

    def mc(tasks):
        x = g.standard_normal((M, 3, 7))
        yy = np.einsum("md,mdn->mn", tasks, x) / np.sqrt(3)
        c = np.concatenate([np.einsum("mn,mdn->md", yy[:, :6], x[:, :, :6]), (yy[:, :6] ** 2).sum(1)[:, None]], 1) / 7
        q = np.concatenate([x[:, :, 6], np.zeros((M, 1))], 1)
        e = (yy[:, 6] - np.einsum("ma,ab,mb->m", c, W, q)) ** 2
        return e.mean(), e.std() / np.sqrt(M)

    m, se = mc(g.standard_normal((M, 3)))
    assert abs(r["test_error"] - m) < 4 * se
    m, se = mc(pr.w[g.integers(0, P, M)])
    assert abs(r["pool_error"] - m) < 4 * se
    assert -1 <= r["overlap"] <= 1


def test_cavity_point_masks_non_converged_and_reports_distance(tmp_path):
    base = {"D": 6, "N": "2,30", "P": "20,400", "seed": "0:2"}
    ds = run_sweep(make_grid(base), ["contrast_ratio", "exact_distance", "n_iter"], tmp_path, jobs=1, progress=False)
    conv = ds.converged
    assert ds.contrast_ratio.dims == ("N", "P", "seed")
    # P = 20 prompts and 49 spins: the paper's Fig 4a leaves P = 20 blank (no convergence)
    assert not conv.sel(P=20).any()
    assert conv.sel(N=30, P=400).all()
    assert np.isnan(ds.contrast_ratio.where(~conv)).all() and np.isfinite(ds.contrast_ratio.where(conv, 0)).all()
    assert (ds.n_iter >= 1).all()
    d = ds.exact_distance.sel(N=30, P=400)
    assert ((d > 0) & (d < 0.5)).all()
    # a coordinate lookup gives the same numbers as a direct call at that point
    p = dict(make_grid({**base, "N": 30, "P": 400, "seed": 1}).points().__next__())
    direct = compute_point(p, ["contrast_ratio"])  # same default sampler as the sweep
    assert ds.contrast_ratio.sel(N=30, P=400, seed=1).item() == direct["contrast_ratio"]


def test_process_pool_equals_in_process_run(tmp_path):
    grid = make_grid({"D": 3, "N": "4,8", "P": "30,60,120", "seed": "0:3"})
    obs = ["contrast_ratio", "test_error", "n_iter"]
    a = run_sweep(grid, obs, tmp_path / "a", jobs=1, progress=False)
    b = run_sweep(grid, obs, tmp_path / "b", jobs=2, chunk_size=2, progress=False)
    xr.testing.assert_identical(a, b)
    xr.testing.assert_identical(open_sweep(tmp_path / "b"), b)
    xr.testing.assert_identical(open_sweep(tmp_path / "b" / "results.nc"), b)
    rec = json.loads((tmp_path / "b" / "run.json").read_text())
    assert rec["n_points"] == 18 and rec["n_computed"] == 18 and rec["executor"] == {"jobs": 2}
    assert rec["seeds"] == [0, 1, 2] and rec["swept"] == ["N", "P", "seed"]
    assert a.contrast_ratio.attrs["long_name"].startswith("contrast ratio") and a.N.attrs["long_name"]


def test_dask_local_cluster_equals_in_process_run(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    grid = make_grid({"N": "5,10,20", "P": "10:100:4", "seed": "0:2"})
    ref = run_sweep(grid, ["contrast_ratio", "n_iter"], tmp_path / "ref", jobs=1, progress=False, point_fn=TOY)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://",
                                  dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://")
        from spinlens.cli.main import main

        code = main(["sweep", "--N", "5,10,20", "--P", "10:100:4", "--seed", "0:2", "--observables",
                     "contrast_ratio,n_iter", "--point-fn", TOY, "--scheduler", cluster.scheduler_address,
                     "--out", str(tmp_path / "dask"), "--no-progress"])
    assert code == 0  # a map exits 0 with its converged count, the mask in the data (docs/cli.md; --strict: 3)
    ds = open_sweep(tmp_path / "dask")
    xr.testing.assert_identical(ds, ref)
    assert json.loads((tmp_path / "dask" / "run.json").read_text())["executor"]["scheduler"].startswith("tcp://")


def test_refuses_to_overwrite_and_resume_extends_grid(tmp_path, capsys):
    from spinlens.cli.main import main

    out = str(tmp_path / "s")
    args = ["sweep", "--N", "4,8", "--P", "50", "--seed", "0:2", "--point-fn", TOY, "--out", out, "--no-progress"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "already holds this sweep" in err and "--resume" in err and len(err.strip().splitlines()) == 1
    assert main(args[:-3] + ["--observables", "test_error", "--out", out, "--no-progress"]) == 2
    assert "different sweep" in capsys.readouterr().err
    assert main(args + ["--resume", "--method", "exact"]) == 2
    assert "other settings (method differ)" in capsys.readouterr().err
    # resume with more seeds: the old points are reused, only the new ones computed
    assert main(args[:6] + ["0:4"] + args[7:] + ["--resume"]) == 0
    rec = json.loads((tmp_path / "s" / "run.json").read_text())
    assert (rec["n_computed"], rec["n_reused"]) == (4, 4)
    assert main(args + ["--force"]) == 0
    assert open_sweep(out).sizes == {"N": 2, "seed": 2}


def test_toy_stand_in_masks_like_the_real_one(tmp_path):
    ds = run_sweep(make_grid({"N": "10,50", "P": "50,200", "K": "inf,8"}), ["contrast_ratio"], tmp_path, jobs=1,
                   progress=False, point_fn=TOY)
    assert bool(ds.converged.sel(N=50, P=50, K=8)) is False
    assert math.isnan(ds.contrast_ratio.sel(N=50, P=50, K=np.inf))
    assert ds.K.values.tolist() == [np.inf, 8.0]
    xr.testing.assert_identical(open_sweep(tmp_path), ds)  # inf survives NetCDF


def test_contrast_ratio_rises_with_task_diversity(tmp_path):
    # the trend of the paper's Fig 4a on a small system: more prompts, closer to the identity
    grid = make_grid({"D": 6, "N": 30, "P": "100,400,1600", "seed": "0:4"})
    ds = run_sweep(grid, ["contrast_ratio"], tmp_path, jobs=1, progress=False)
    assert bool(ds.converged.sel(P=[400, 1600]).all())
    mean = ds.contrast_ratio.where(ds.converged).mean("seed")
    assert float(mean.sel(P=400)) < float(mean.sel(P=1600))
    assert float(mean.sel(P=1600)) > 0.6


def test_cli_sweep_with_the_tap_solver_stores_the_distance_to_the_exact_solution(tmp_path):
    from spinlens.cli.main import main

    out = tmp_path / "tap"
    code = main(["sweep", "--D", "3", "--N", "20", "--P", "300", "--seed", "0:2", "--method", "tap",
                 "--observables", "exact_distance,n_iter", "--jobs", "1", "--out", str(out), "--no-progress"])
    ds = open_sweep(out)
    assert code == (0 if bool(ds.converged.all()) else 3)
    assert ds.converged.all()  # a well-posed tiny grid: the TAP iteration converges
    assert json.loads((out / "run.json").read_text())["settings"]["method"] == "tap"
    d = ds.exact_distance
    assert d.dims == ("seed",) and ((d > 0) & (d < 0.5)).all()
