"""The library calls behind `spinlens theory`: each mode's result equals what the command prints."""

import json
import math

import pytest

from spinlens.cli.main import main
from spinlens.errors import InvalidParameterError, parse_float, parse_floats
from spinlens.sweeps import parse_int_values
from spinlens.theory.asymptotic import curve_run, point_run, spin_glass_point


def test_parse_floats_and_int_values():
    assert parse_floats("x", "0, 0.1,1") == [0.0, 0.1, 1.0]
    assert parse_float("kappa", "inf", allow_inf=True) == math.inf
    for text in ("", "1,,2", "nan", "-inf", "a"):
        with pytest.raises(InvalidParameterError, match="'x'"):
            parse_floats("x", text)
    with pytest.raises(InvalidParameterError, match="single number"):
        parse_float("x", "1,2")
    assert parse_int_values("N", "5:20:4") == [5, 10, 15, 20]
    with pytest.raises(InvalidParameterError, match="no 'inf'"):
        parse_int_values("K", "inf")


def test_point_run_is_what_the_command_prints(capsys):
    assert main(["theory", "--alpha", "2", "--tau", "2", "--kappa", "0.5", "--rho", "0.1", "--lam-lu", "0.1",
                 "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    run = point_run(2, 2, 0.5, 0.1, 0.1)
    assert run.converged and printed == pytest.approx(json.loads(json.dumps(run.summary)))


def test_spin_glass_point_and_curve_run():
    run = spin_glass_point(20.0, 100, 10000, 0.01)
    assert run.summary["spin_glass"] == {"D": 20, "N": 100, "P": 10000, "lam": 0.01, "K": None, "sigma_eps": 0.0}
    assert run.summary["alpha"] == 5.0 and run.summary["tau"] == 25.0
    with pytest.raises(InvalidParameterError, match="'D'"):
        spin_glass_point(2.5, 100, 10000)
    curve = curve_run("tau", 0.1, 3, 20, alpha=10, kappa=[0.5], rho=[0.01], lam_lu=[0, 0.1])
    assert len(curve.table) == 40 and curve.n_total == 40 and curve.n_bad == 0
    assert list(curve.table.columns[:5]) == ["alpha", "tau", "kappa", "rho", "lam_lu"]
