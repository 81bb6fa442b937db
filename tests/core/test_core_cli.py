import json
import subprocess
import sys

import numpy as np
import pytest

from spinlens.cli.main import main


def run_cli(args, capsys):
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_solve_json_keys(capsys):
    code, out, err = run_cli(["solve", "--D", "5", "--N", "20", "--P", "500", "--method", "cavity", "--json"], capsys)
    d = json.loads(out)
    assert code == (0 if d["converged"] else 3)  # the non-convergence rule: exit 3 and one warning line
    assert ("did not converge" in err) == (not d["converged"])
    for k in ("test_error", "train_error", "contrast_ratio", "converged", "n_iter", "solve_elapsed_s", "elapsed_s"):
        assert k in d
    assert 0 < d["test_error"] < 2 and isinstance(d["converged"], bool)


def test_solve_limit_matches_closed_form(capsys):
    from spinlens import limit
    from spinlens.prompts import PromptDistribution

    code, out, _ = run_cli(["solve", "--D", "20", "--N", "100", "--method", "limit", "--lam", "0.01", "--json"], capsys)
    dist = PromptDistribution(d=20, n_context=100)
    assert json.loads(out)["test_error"] == pytest.approx(limit.expected_error(limit.infinite_diversity_solution(dist, 0.01), dist))


def test_prompts_then_solve_data_and_save(tmp_path, capsys):
    f = tmp_path / "p.npz"
    assert run_cli(["prompts", "--D", "3", "--N", "10", "--P", "300", "-o", str(f)], capsys)[0] == 0
    res = tmp_path / "r.npz"
    code, out, _ = run_cli(["solve", "--data", str(f), "--method", "exact", "--json", "--save", str(res), "--save-couplings"], capsys)
    assert code == 0
    d = json.loads(out)
    assert d["D"] == 3 and d["N"] == 10 and d["P"] == 300
    with np.load(res) as z:
        assert z["W"].shape == (4, 4) and z["m"].shape == (4, 4) and z["v"].shape == (4, 4)
        assert z["h"].shape == (16,) and z["J"].shape == (16, 16)


def test_pool_error_reported(capsys):
    code, out, _ = run_cli(["solve", "--D", "3", "--N", "10", "--P", "300", "--K", "4", "--json"], capsys)
    d = json.loads(out)
    assert "pool_error" in d and d["pool_error"] < d["test_error"]


@pytest.mark.parametrize(
    "args, flag",
    [
        (["--P", "0"], "--P"), (["--N", "0"], "--N"), (["--D", "-1"], "--D"), (["--lam", "-0.1"], "--lam"),
        (["--beta", "0"], "--beta"), (["--damping", "1.0"], "--damping"), (["--method", "magic"], "--method"),
        (["--beta", "5e-324"], "[1e-100, inf)"), (["--method", "sample", "--lam", "0"], "--lam"),
        (["--method", "langevin", "--lam", "0"], "improper"),
        (["--data", "nonexistent.npz"], "does not exist"),
    ],
)
def test_bad_input_one_line_exit_2(args, flag, capsys):
    code, out, err = run_cli(["solve", *args], capsys)
    assert code == 2
    assert flag in err and err.count("\n") == 1 and "Traceback" not in err


def test_malformed_npz(tmp_path, capsys):
    f = tmp_path / "bad.npz"
    Z = np.ones((3, 4, 5))
    np.savez(f, Z=Z, y=np.zeros(3))
    code, _, err = run_cli(["solve", "--data", str(f)], capsys)
    assert code == 2 and "query label" in err
    np.savez(f, Z=np.full((3, 4, 5), np.inf), y=np.zeros(3))
    code, _, err = run_cli(["solve", "--data", str(f)], capsys)
    assert code == 2 and "non-finite" in err


def test_cavity_nonconvergence_reported(capsys):
    code, out, err = run_cli(["solve", "--D", "5", "--N", "20", "--P", "20", "--method", "cavity", "--json"], capsys)
    assert code == 3 and json.loads(out)["converged"] is False and "did not converge" in err
    assert "NaN" not in out


def test_help_is_light():
    # `spinlens --help` and `solve` must not import torch or matplotlib
    code = (
        "import sys; from spinlens.cli.main import build_parser; build_parser();"
        "import spinlens.hamiltonian, spinlens.solvers, spinlens.observables, spinlens.limit;"
        "bad=[m for m in ('torch','matplotlib','sklearn') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_train_cli(tmp_path, capsys):
    out = tmp_path / "t"
    code, o, _ = run_cli(["train", "--D", "3", "--N", "10", "--P", "100", "--epochs", "20", "--no-progress", "--out", str(out)], capsys)
    assert code == 0
    assert (out / "model.safetensors").exists() and (out / "config.json").exists() and (out / "history.csv").exists()
    run = json.loads((out / "run.json").read_text())
    assert run["summary"]["final_train_loss"] > 0
