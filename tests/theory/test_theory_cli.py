"""``spinlens theory`` command."""

from __future__ import annotations

import json
import math

import pytest

from spinlens.cli.main import main
from spinlens.theory import learning_curve_point

# every figure saved by these tests is checked (labels, colourbars, legends): tests/conftest.py
pytestmark = pytest.mark.usefixtures("audit_figures")


def _run(capsys, *argv):
    code = main(["theory", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_single_point_json_exact_form(capsys):
    code, out, _ = _run(capsys, "--alpha", "1", "--tau", "0.5", "--kappa", "0.5", "--rho", "0.01", "--lam-lu", "0", "--json")
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 1
    obj = json.loads(lines[0])
    assert obj["icl_error"] == pytest.approx(1.2610769, rel=1e-6)  # Lu et al. check value (docs/theory.md, 'What was checked')
    assert obj["idg_error"] == pytest.approx(0.8018492, rel=1e-6)
    assert obj["epsilon"] == pytest.approx(1.6297333, rel=1e-6)
    assert obj["g_task"] == pytest.approx(obj["icl_error"] - obj["idg_error"])
    assert obj["converged"] is True
    assert (obj["alpha"], obj["tau"], obj["kappa"], obj["rho"], obj["lam_lu"]) == (1, 0.5, 0.5, 0.01, 0)
    assert "lam" not in obj  # lam is the λ of E(W), which this mode does not have


def test_kappa_inf_and_table_output(capsys):
    code, out, _ = _run(capsys, "--alpha", "5", "--tau", "2", "--kappa", "inf", "--json")
    obj = json.loads(out)
    assert code == 0 and obj["kappa"] == "inf" and obj["icl_error"] == pytest.approx(1 / 3, rel=1e-12)
    code, out, _ = _run(capsys, "--alpha", "5", "--tau", "2")
    assert code == 0 and "icl_error" in out and "0.333333" in out


def test_divergent_point(capsys):
    code, out, _ = _run(capsys, "--alpha", "10", "--tau", "1", "--kappa", "0.5", "--rho", "0.01", "--json")
    obj = json.loads(out)
    assert code == 0 and obj["divergent"] is True and obj["icl_error"] == "inf" and obj["g_task"] is None


def test_spin_glass_form_maps_with_to_lu(capsys):
    code, out, _ = _run(capsys, "--spin-glass", "--D", "20", "--N", "100", "--P", "10000", "--lam", "0.01", "--json")
    assert code == 0
    obj = json.loads(out)
    assert obj["spin_glass"] == {"D": 20, "N": 100, "P": 10000, "lam": 0.01, "K": None, "sigma_eps": 0.0}
    assert obj["alpha"] == 5 and obj["tau"] == 25 and obj["kappa"] == "inf"
    assert obj["lam_lu"] == pytest.approx(0.20402, rel=1e-12) and "lam" not in obj  # λ_LU = D·λ·(1+1/N)², by hand
    assert obj["icl_error"] == pytest.approx(learning_curve_point(5, 25, math.inf, 0, 20 * 0.01 * 1.01**2).icl_error)
    code, out, _ = _run(capsys, "--spin-glass", "--D", "10", "--N", "20", "--P", "500", "--lam", "0.1",
                        "--K", "30", "--sigma-eps", "0.5", "--json")
    obj = json.loads(out)
    assert obj["kappa"] == 3 and obj["rho"] == 0.25 and obj["spin_glass"]["K"] == 30


@pytest.mark.parametrize(
    "argv,name",
    [
        (["--alpha", "-1", "--tau", "2"], "alpha"),
        (["--alpha", "1", "--tau", "0"], "tau"),
        (["--alpha", "1", "--tau", "2", "--kappa", "0"], "kappa"),
        (["--alpha", "1", "--tau", "2", "--rho", "-0.5"], "rho"),
        (["--alpha", "1", "--tau", "2", "--lam-lu", "abc"], "lam_lu"),
        (["--alpha", "1", "--tau", "2", "--lam", "0.1"], "--lam-lu"),  # --lam is the λ of E(W): refused here
        (["curve", "--vary", "tau", "--from", "0", "--to", "1", "--alpha", "1", "--lam", "0.1"], "--lam-lu"),
        (["simulate", "--D", "8", "--alpha", "1", "--tau", "2", "--lam", "0.1"], "--lam-lu"),
        (["--spin-glass", "--D", "8", "--N", "4", "--P", "10", "--lam-lu", "0.1"], "--lam"),
        (["--tau", "2"], "alpha"),
        (["--spin-glass", "--D", "20", "--N", "100"], "P"),
        (["--spin-glass", "--D", "0", "--N", "100", "--P", "10"], "D"),
        (["curve", "--vary", "tau", "--from", "0", "--to", "1", "--num", "1", "--alpha", "1"], "num"),
        (["curve", "--vary", "tau", "--from", "0", "--to", "1", "--log", "--alpha", "1"], "--from"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, argv, name):
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and name in err and out == ""


def test_curve_table(capsys):
    code, out, _ = _run(capsys, "curve", "--vary", "tau", "--from", "0.5", "--to", "2", "--num", "4",
                        "--alpha", "10", "--kappa", "0.5", "--rho", "0.01", "--lam-lu", "0,0.1")
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 1 + 8 and "icl_error" in lines[0]


def test_curve_out_writes_figures_and_data(tmp_path, capsys):
    import csv

    out_dir = tmp_path / "curve"
    code, _, _ = _run(capsys, "curve", "--vary", "kappa", "--from", "0.1", "--to", "10", "--num", "20", "--log",
                      "--alpha", "10", "--tau", "10", "--rho", "0.01", "--lam-lu", "1e-6", "--out", str(out_dir))
    assert code == 0
    for f in ("curve.csv", "curve.png", "curve.pdf", "run.json"):
        assert (out_dir / f).stat().st_size > 0
    rows = list(csv.DictReader(open(out_dir / "curve.csv")))
    assert len(rows) == 20
    r = rows[9]
    assert "lam_lu" in r and "lam" not in r
    assert float(r["g_task"]) == pytest.approx(learning_curve_point(10, 10, float(r["kappa"]), 0.01, 1e-6).g_task)
    assert json.loads((out_dir / "run.json").read_text())["command"] == "theory curve"


def test_simulate_json(capsys):
    code, out, _ = _run(capsys, "simulate", "--D", "12", "--alpha", "2", "--tau", "2", "--kappa", "0.5",
                        "--rho", "0.1", "--lam-lu", "0.1", "--seed", "0", "--json")
    assert code == 0
    obj = json.loads(out)
    assert obj["P"] == 288 and obj["K"] == 6 and obj["N"] == 24 and obj["D"] == 12  # docs/vocabulary.md
    assert obj["sim_icl_error"] == pytest.approx(obj["icl_error"], rel=0.4)
    code2, out2, _ = _run(capsys, "simulate", "--D", "12", "--alpha", "2", "--tau", "2", "--kappa", "0.5",
                          "--rho", "0.1", "--lam-lu", "0.1", "--seed", "0", "--json")
    assert json.loads(out2)["sim_icl_error"] == obj["sim_icl_error"]  # seeded


def test_diversity_json_and_out(tmp_path, capsys):
    code, out, _ = _run(capsys, "diversity", "--D", "3", "--N", "6", "--P", "100", "--K", "2,8", "--n-test", "200",
                        "--seed", "1", "--json", "--out", str(tmp_path / "div"))
    assert code == 0
    obj = json.loads(out)
    assert [r["K"] for r in obj["rows"]] == [2, 8, "inf"]
    for f in ("diversity.csv", "diversity.nc", "diversity.png", "diversity.pdf", "run.json"):
        assert (tmp_path / "div" / f).stat().st_size > 0
    code, _, err = _run(capsys, "diversity", "--K", "0")
    assert code == 2 and "'K'" in err
