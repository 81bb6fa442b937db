"""CLI: spinlens steer / pinpoint / merge / quantize on a tiny, barely trained base (smoke + outputs)."""

import json

import pytest

from spinlens.cli.main import main

# every figure saved by these tests is checked (labels, colourbars, legends): tests/conftest.py
pytestmark = pytest.mark.usefixtures("audit_figures")

SMALL = ["--setting", "regression", "--d", "3", "--n-context", "5", "--base-steps", "5", "--no-progress"]


def test_steer_experiment_and_spec(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["steer", *SMALL, "--strengths", "0", "1", "--n-prompts", "32", "--json", "--out", str(out)]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "best_function_vector_recovery" in res
    for f in ("steering.png", "steering.pdf", "steering.csv", "steering.nc", "run.json", "base/model.safetensors", "base/config.json"):
        assert (out / f).exists(), f
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps([{"type": "scale", "hook": "blocks.1.hook_mlp_out", "factor": 1.0}]))
    assert main(["steer", "--checkpoint", str(out / "base"), "--spec", str(spec), "--json",
                 "--n-prompts", "16"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["mean_abs_shift"] == 0.0  # scaling by 1 changes nothing
    spec.write_text(json.dumps([{"type": "warp"}]))
    assert main(["steer", "--checkpoint", str(out / "base"), "--spec", str(spec)]) == 2


def test_pinpoint_merge_quantize(tmp_path, capsys):
    base = tmp_path / "b"
    assert main(["pinpoint", *SMALL, "--steps", "3", "--k", "1", "--n-random", "1", "--importance", "attribution",
                 "--out", str(base)]) == 0
    for f in ("pinpoint.png", "pinpoint.pdf", "pinpoint.csv", "pinpoint_delta.safetensors", "run.json"):
        assert (base / f).exists(), f
    lines = capsys.readouterr().out.strip().splitlines()  # the table, then the headline and the verdict
    assert lines[-2].startswith("pinpoint (corr task): target MSE before ")
    assert lines[-1].startswith("verdict: importance-chosen 1 head vs random heads (n = 1), target-task MSE: ")
    run = json.loads((base / "run.json").read_text())
    assert run["headline"]["verdict"]["line"] == lines[-1]
    model = str(base / "base")
    assert main(["merge", "--checkpoint", model, "--steps", "3", "--out", str(tmp_path / "m"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(res) == {"base", "expert_A", "expert_B", "task_arithmetic_0.5", "task_arithmetic_1", "ties", "neuron"}
    head = json.loads((tmp_path / "m" / "run.json").read_text())["headline"]
    assert head["verdict"]["line"].startswith(f"verdict: merge {head['best']} vs single fine-tunes, worse task's MSE: ")
    merged = tmp_path / "merged"
    assert main(["merge", "--checkpoint", model, "--models", model, model, "--method", "ties", "--density", "1",
                 "--save", str(merged)]) == 0
    assert (merged / "model.safetensors").exists() and (merged / "config.json").exists()
    assert main(["quantize", "--checkpoint", model, "--budget", "3.4", "--json", "--n-random", "1", "--uniform-bits", "4",
                 "--out", str(tmp_path / "q")]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["average_bits"] <= 3.4 and set(res["bits"]) >= {"L0H0", "L0.mlp"}
    assert (tmp_path / "q" / "quantization.png").exists()
    assert main(["quantize", "--checkpoint", model, "--budget", "1.0"]) == 2
    assert main(["pinpoint", "--checkpoint", model, "--k", "99"]) == 2
    assert main(["merge", "--checkpoint", model, "--density", "0"]) == 2


def test_help_has_examples(capsys):
    for cmd in ("steer", "pinpoint", "merge", "quantize"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        assert "examples:" in capsys.readouterr().out


def test_library_call_is_what_the_cli_prints(tmp_path, capsys):
    """`spinlens.experiment.run_edit_command` is the command: its summary is the --json line, its text the table."""
    from argparse import Namespace

    from spinlens.experiment import EditResult, ModelSource, run_edit_command

    base = tmp_path / "b"
    assert main(["steer", *SMALL, "--strengths", "0", "1", "--n-prompts", "16", "--n-top-heads", "1",
                 "--out", str(base)]) == 0
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps([{"type": "scale", "hook": "blocks.1.hook_mlp_out", "factor": 2.0}]))
    argv = ["steer", "--checkpoint", str(base / "base"), "--spec", str(spec), "--n-prompts", "16"]
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    opts = Namespace(source=ModelSource("regression", str(base / "base")), d=5, n_context=10, base_steps=2000, seed=0,
                     out=None, n_prompts=16, n_top_heads=3, strengths=[0.0], spec=str(spec), no_progress=True)
    res = run_edit_command("steer", opts)
    assert isinstance(res, EditResult) and res.setting == "regression" and res.dataset is None
    assert res.summary == printed and (opts.d, opts.n_context) == (3, 5)  # the checkpoint's D and N win
    assert main(argv) == 0
    assert capsys.readouterr().out.strip().splitlines()[0].split()[0] == res.rows[0][0]
    opts.n_prompts = 0
    from spinlens.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="n_prompts"):
        run_edit_command("steer", opts)
