"""Phase diagram of the cavity solution over (K, N): physics properties, masks, theory columns, figure, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytest.importorskip("spinlens.solvers", reason="core solvers not available")

from spinlens.cli.main import main  # noqa: E402
from spinlens.conventions import to_lu  # noqa: E402
from spinlens.errors import InvalidParameterError  # noqa: E402
from spinlens.theory import learning_curve_point  # noqa: E402
from spinlens.theory.phase import task_pool_phase_diagram  # noqa: E402

D = 6
NS = [6, 12, 24]
KS = [1, 2, 4, 8, 16, 64, 256, 1024]
P = 4000
LAM = 0.01


@pytest.fixture(scope="module")
def ds():
    return task_pool_phase_diagram(D, NS, KS, P, LAM, n_repeats=2, rng=0)


def test_shapes_and_coords(ds):
    assert ds.icl_error.dims == ("n_tasks", "n_context")
    assert ds.converged.dims == ("n_tasks", "n_context", "repeat")
    assert list(ds.n_tasks.values) == KS and list(ds.n_context.values) == NS
    np.testing.assert_allclose(ds.kappa.values, np.array(KS) / D)
    assert ds.attrs["d"] == D and ds.attrs["n_prompts"] == P and ds.attrs["n_repeats"] == 2


def test_memorisation_at_small_pools(ds):
    small = ds.sel(n_tasks=[k for k in KS if k <= D // 2])
    # the exact ridge fits a pool of K << D tasks: far better on the pool than on fresh tasks
    assert np.all(small.exact_g_task.values > 0.5)
    assert np.all(small.exact_pool_error.values < small.exact_icl_error.values)
    # ... and does not learn in context: fresh-task error near or above the no-context value E[y²] = 1
    assert np.all(small.exact_icl_error.values > 0.9)
    # the theory shows the same regime
    assert np.all(small.theory_g_task.values > 0.4)


def test_g_task_small_at_large_pools(ds):
    big = ds.sel(n_tasks=[k for k in KS if k >= 40 * D])
    assert np.all(np.abs(big.exact_g_task.values) < 0.03)
    fin = np.isfinite(big.g_task.values)
    assert fin.sum() >= 3, "the cavity should converge somewhere at K >> D"
    assert np.all(np.abs(big.g_task.values[fin]) < 0.03)
    assert np.all(big.theory_g_task.values < 0.02)
    # g_task falls by more than an order of magnitude from K << D to K >> D
    assert ds.exact_g_task.sel(n_tasks=1).min() > 20 * np.abs(big.exact_g_task).max()


def test_icl_error_decreases_with_pool_size(ds):
    # exact ridge, K >= D (for K << D the ICL error sits on a plateau >= 1, not monotone)
    ex = ds.exact_icl_error.sel(n_tasks=[k for k in KS if k >= D]).transpose("n_context", "n_tasks").values
    assert np.all(np.diff(ex, axis=1) < 0.01)
    assert np.all(ex[:, 0] - ex[:, -1] > 0.05)
    # the theory is strictly decreasing in K at every N
    th = ds.theory_icl_error.transpose("n_context", "n_tasks").values
    assert np.all(np.diff(th, axis=1) < 0)
    # and longer contexts help at large K
    assert np.all(np.diff(ds.exact_icl_error.sel(n_tasks=1024).values) < 0)


def test_converged_mask_consistent_with_nans(ds):
    conv = ds.converged.values
    assert conv.any() and not conv.all(), "the grid should contain both converged and diverged cavity runs"
    for v in ("icl_error_repeats", "pool_error_repeats", "contrast_ratio_repeats"):
        np.testing.assert_array_equal(np.isnan(ds[v].values), ~conv)
    np.testing.assert_allclose(ds.converged_fraction.values, conv.mean(axis=-1))
    none = ds.converged_fraction.values == 0
    for v in ("icl_error", "pool_error", "g_task", "contrast_ratio"):
        np.testing.assert_array_equal(np.isnan(ds[v].values), none)
    # averages run over the converged repeats only
    r = ds.icl_error_repeats.values[~none]
    expect = np.array([row[np.isfinite(row)].mean() for row in r])
    np.testing.assert_allclose(ds.icl_error.values[~none], expect, rtol=1e-12)
    gap = r - ds.pool_error_repeats.values[~none]
    expect = np.array([row[np.isfinite(row)].mean() for row in gap])
    np.testing.assert_allclose(ds.g_task.values[~none], expect, rtol=1e-12, atol=1e-15)
    # the published cavity diverges at small pools with λ = 0.01, and converges at large ones
    assert ds.converged_fraction.sel(n_tasks=1).max() == 0
    assert ds.diverged_fraction.sel(n_tasks=1).min() == 1  # ... by negative cavity variances, not slowness
    assert np.all(ds.converged_fraction.values + ds.diverged_fraction.values <= 1)
    assert ds.converged_fraction.sel(n_tasks=1024).min() > 0


def test_cavity_close_to_exact_where_converged(ds):
    cav, ex = ds.icl_error.values, ds.exact_icl_error.values
    fin = np.isfinite(cav)
    assert np.all(np.abs(cav[fin] / ex[fin] - 1) < 0.1)
    assert np.all((ds.contrast_ratio.values[fin] > 0.8) & (ds.contrast_ratio.values[fin] <= 1))


def test_theory_columns_equal_learning_curve_point(ds):
    K, N = 16, 12
    ref = learning_curve_point(**to_lu(D, N, P, LAM, n_tasks=K))
    cell = ds.sel(n_tasks=K, n_context=N)
    assert float(cell.theory_icl_error) == pytest.approx(ref.icl_error, rel=1e-12)
    assert float(cell.theory_idg_error) == pytest.approx(ref.idg_error, rel=1e-12)
    assert float(cell.theory_g_task) == pytest.approx(ref.g_task, rel=1e-12)
    assert bool(ds.theory_converged.all())


def test_reproducible_and_validated():
    import xarray as xr

    a = task_pool_phase_diagram(3, [4], [2, 50], 300, 0.1, n_repeats=1, rng=5)
    b = task_pool_phase_diagram(3, [4], [2, 50], 300, 0.1, n_repeats=1, rng=5)
    c = task_pool_phase_diagram(3, [4], [2, 50], 300, 0.1, n_repeats=1, rng=6)
    xr.testing.assert_identical(a, b)
    assert np.all(np.abs(a.exact_icl_error.values - c.exact_icl_error.values) > 1e-9)
    e = task_pool_phase_diagram(3, [4], [2, 50], 300, 0.1, n_repeats=1, rng=5, exact=False)
    assert "exact_icl_error" not in e
    np.testing.assert_array_equal(e.n_iter.values, a.n_iter.values)
    for kw, name in [({"d": 0}, "d"), ({"d": 41}, "d"), ({"n_context_values": [4, 4]}, "n_context_values"),
                     ({"n_tasks_values": [0]}, "n_tasks_values"), ({"n_prompts": 0}, "n_prompts"),
                     ({"damping": 1.0}, "damping"), ({"l2_strength": -1.0}, "l2_strength"),
                     ({"n_repeats": 0}, "n_repeats")]:
        args = {"d": 3, "n_context_values": [4], "n_tasks_values": [2], "n_prompts": 50, "l2_strength": 0.1}
        args.update(kw)
        d_ = args.pop("d")
        with pytest.raises(InvalidParameterError, match=name):
            task_pool_phase_diagram(d_, **args)


def test_figure_blanks_non_converged_cells(ds, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from spinlens.plotting.theory import plot_phase_diagram

    fig, axes = plot_phase_diagram(ds)
    assert len(axes) == 10
    mesh = axes[0].collections[0]
    arr = mesh.get_array()
    expect = np.isnan(ds.icl_error.transpose("n_context", "n_tasks").values).ravel()
    np.testing.assert_array_equal(np.ma.getmaskarray(arr).ravel(), expect)
    # κ = 1 line at K = D
    assert any(np.allclose(line.get_xdata(), [D, D]) for line in axes[0].get_lines())
    from spinlens.plotting.checks import figure_problems

    assert figure_problems(fig) == []  # labels, colourbar labels, legends
    fig.savefig(tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_cli_phase(tmp_path, capsys):
    out = tmp_path / "ph"
    code = main(["theory", "phase", "--D", "3", "--N", "4,8", "--K", "1:100:3:log", "--P", "300", "--lam", "0.1",
                 "--repeats", "1", "--seed", "1", "--out", str(out), "--json"])
    cap = capsys.readouterr()
    obj = json.loads(cap.out.strip().splitlines()[-1])
    assert code == 0  # docs/cli.md: a map exits 0; the cells that did not converge are data
    if not all(r["converged_fraction"] == 1 for r in obj["rows"]):
        assert "cavity runs converged" in cap.err and "did not converge" not in cap.err
        strict = main(["theory", "phase", "--D", "3", "--N", "4,8", "--K", "1:100:3:log", "--P", "300", "--lam", "0.1",
                       "--repeats", "1", "--seed", "1", "--strict", "--json"])
        assert strict == 3 and "did not converge" in capsys.readouterr().err
    assert obj["config"]["K"] == [1, 10, 100] and len(obj["rows"]) == 6
    for f in ("phase.nc", "phase.csv", "phase.png", "phase.pdf", "run.json"):
        assert (out / f).stat().st_size > 0, f
    run = json.loads((out / "run.json").read_text())
    assert run["command"] == "theory phase" and run["grid"]["N"] == [4, 8]
    import xarray as xr

    with xr.open_dataset(out / "phase.nc") as back:
        row = [r for r in obj["rows"] if r["K"] == 10 and r["N"] == 8][0]
        ref = learning_curve_point(**to_lu(3, 8, 300, 0.1, n_tasks=10)).icl_error
        assert row["theory_icl_error"] == pytest.approx(ref, rel=1e-12)
        assert float(back.theory_icl_error.sel(K=10, N=8)) == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize("argv", [["--D", "41"], ["--K", "0:10:3"], ["--N", "5:1:0"], ["--K", "inf"], ["--P", "x"],
                                  ["--damping", "1"]])
def test_cli_phase_bad_input_exits_2(argv, capsys):
    code = main(["theory", "phase", "--N", "4", "--K", "2", "--P", "50", *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1


def test_kappa_line_at_one():
    assert math.isclose(to_lu(D, 6, P, LAM, n_tasks=D)["kappa"], 1.0)
