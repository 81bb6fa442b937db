"""Grid specification of `spinlens sweep`: value syntax, config files, and rejection of bad grids."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spinlens.errors import InvalidParameterError
from spinlens.sweeps import PARAMETERS, load_config, make_grid, parse_values, point_key, point_seed_sequence


def test_linspace_rounds_integers_and_matches_numpy():
    N = parse_values("N", "2:100:50")
    P = parse_values("P", "20:1000:50")
    assert N == tuple(int(v) for v in np.rint(np.linspace(2, 100, 50)))
    assert P == tuple(range(20, 1001, 20))
    assert all(isinstance(v, int) for v in N + P)
    assert parse_values("N", "3:10:3") == (3, 6, 10)  # 6.5 -> 6 (round half to even), ends included


def test_lists_logs_floats_and_seeds():
    assert parse_values("N", "10,20,50") == (10, 20, 50)
    assert parse_values("lam", "1e-3:1:4:log") == pytest.approx((1e-3, 1e-2, 1e-1, 1.0))
    assert parse_values("beta", "0.5:2:4") == pytest.approx((0.5, 1.0, 1.5, 2.0))
    assert parse_values("seed", "0:10") == tuple(range(10))
    assert parse_values("seed", "3") == (3,)
    assert parse_values("K", "inf,100") == (None, 100)
    assert parse_values("n_context", [4, 8]) == (4, 8)  # long names and lists (config files)
    assert parse_values("λ", 0.5) == (0.5,)
    assert parse_values("P", {"start": 10, "stop": 30, "num": 3}) == (10, 20, 30)


def test_grid_defaults_order_and_points():
    g = make_grid({"N": "10,20", "P": "100:300:3", "seed": "0:2"})
    assert g.swept == ["N", "P", "seed"]
    assert g.n_points == 12 and g.shape == (1, 2, 3, 1, 1, 1, 1, 1, 1, 2)
    pts = list(g.points())
    assert len(pts) == 12 and set(pts[0]) == set(PARAMETERS)
    assert [p["seed"] for p in pts[:4]] == [0, 1, 0, 1]  # seed varies fastest
    assert pts[0]["D"] == 20 and pts[0]["K"] is None and pts[0]["lam"] == 1.0
    assert len({point_key(p) for p in pts}) == 12


@pytest.mark.parametrize(
    "name,value,fragment",
    [
        ("N", "10:2:0", "empty range"),
        ("seed", "5:5", "empty range"),
        ("N", "", "empty"),
        ("Q", "3", "Unknown sweep parameter"),
        ("N", "-5", "'N'"),
        ("P", "0", "'P'"),
        ("D", "2.5", "'D'"),
        ("lam", "-0.1", "'lam'"),
        ("beta", "0", "'beta'"),
        ("damping", "1", "'damping'"),
        ("damping", "-0.1", "'damping'"),
        ("corr", "1.0", "'corr'"),
        ("N", "2:4:10", "repeated integers"),
        ("N", "10,10", "repeated"),
        ("P", "10:20", "START:STOP:NUM"),
        ("lam", "0:1:3:log", "log range"),
        ("N", "ten", "not a number"),
    ],
)
def test_bad_grids_are_rejected(name, value, fragment):
    with pytest.raises(InvalidParameterError, match=fragment) as exc:
        make_grid({name: value})
    assert "\n" not in str(exc.value)


def test_config_files_toml_and_yaml(tmp_path):
    toml = tmp_path / "g.toml"
    toml.write_text(
        '[grid]\nD = 5\nN = "2:10:5"\nP = {start = 20, stop = 60, num = 3}\nseed = "0:2"\n'
        '[settings]\nobservables = ["contrast_ratio"]\nmethod = "exact"\n'
    )
    cfg = load_config(toml)
    g = make_grid(cfg["grid"])
    assert g.mapping["N"] == (2, 4, 6, 8, 10) and g.mapping["P"] == (20, 40, 60) and g.mapping["D"] == (5,)
    assert cfg["settings"] == {"observables": ["contrast_ratio"], "method": "exact"}
    yml = tmp_path / "g.yaml"
    yml.write_text("n_context: [4, 8]\nl2_strength: 0.1\nobservables: [test_error]\n")
    cfg = load_config(yml)
    assert make_grid(cfg["grid"]).mapping["N"] == (4, 8) and cfg["settings"]["observables"] == ["test_error"]
    bad = tmp_path / "g.ini"
    bad.write_text("x")
    with pytest.raises(InvalidParameterError, match="toml"):
        load_config(bad)


def test_point_streams_depend_on_params_not_on_order():
    base = dict(make_grid({}).points().__next__())
    a = np.random.default_rng(point_seed_sequence(base)).standard_normal(3)
    again = np.random.default_rng(point_seed_sequence(dict(reversed(list(base.items()))))).standard_normal(3)
    other_seed = np.random.default_rng(point_seed_sequence({**base, "seed": 1})).standard_normal(3)
    other_n = np.random.default_rng(point_seed_sequence({**base, "N": base["N"] + 1})).standard_normal(3)
    np.testing.assert_array_equal(a, again)
    assert not np.allclose(a, other_seed) and not np.allclose(a, other_n)


def test_cli_rejects_bad_grid_with_one_line(capsys, tmp_path):
    from spinlens.cli.main import main

    code = main(["sweep", "--N", "10:2:0", "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "empty range" in err and err.startswith("spinlens sweep: error:")
    code = main(["sweep", "--lam", "-1", "--out", str(tmp_path / "o"), "--no-progress"])
    assert code == 2 and "'lam'" in capsys.readouterr().err
    code = main(["sweep", "--observables", "nope", "--out", str(tmp_path / "o"), "--no-progress"])
    assert code == 2 and "unknown observable" in capsys.readouterr().err


def test_cli_config_file_with_flag_override(tmp_path, capsys):
    from spinlens.cli.main import main
    from spinlens.sweeps import open_sweep

    cfg = tmp_path / "grid.toml"
    cfg.write_text('[grid]\nN = "5,10"\nP = "40:80:2"\nseed = "0:2"\n'
                   '[settings]\nobservables = ["contrast_ratio", "n_iter"]\npoint_fn = "spinlens.sweeps.testing:toy_point"\n')
    out = tmp_path / "o"
    assert main(["sweep", "--config", str(cfg), "--P", "60", "--out", str(out), "--jobs", "1", "--no-progress",
                 "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["grid"]["P"] == [60] and rec["grid"]["N"] == [5, 10] and rec["n_points"] == 4
    ds = open_sweep(out)
    assert set(ds.data_vars) == {"contrast_ratio", "n_iter", "converged"} and ds.sizes == {"N": 2, "seed": 2}
    bad = tmp_path / "bad.toml"
    bad.write_text('[grid]\nN = 5\n[settings]\nobservable = ["x"]\n')
    assert main(["sweep", "--config", str(bad), "--out", str(tmp_path / "b")]) == 2
    assert "unknown keys ['observable']" in capsys.readouterr().err


def test_cli_non_convergence_is_data_unless_strict(tmp_path, capsys):
    """A map where some points did not converge exits 0 with the count (the mask is in results.nc); --strict: 3."""
    from spinlens.cli.main import main
    from spinlens.sweeps import open_sweep

    toy = "spinlens.sweeps.testing:toy_point"  # converged iff P >= 2N
    args = ["sweep", "--N", "10,40", "--P", "50", "--point-fn", toy, "--jobs", "1", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "1 of 2 points converged" in err and "did not converge" not in err
    assert open_sweep(tmp_path / "a")["converged"].values.tolist() == [True, False]
    assert main([*args, "--out", str(tmp_path / "b"), "--strict"]) == 3
    err = capsys.readouterr().err
    assert "warning: did not converge: 1 of 2 points" in err
    assert main(["sweep", "--N", "10", "--P", "50", "--point-fn", toy, "--jobs", "1", "--no-progress", "--strict",
                 "--out", str(tmp_path / "c")]) == 0  # all converged: 0 with or without --strict
