"""`spinlens interp` CLI: every method on the planted models writes figure + data + run.json; bad input exits 2."""

import json

import pytest

from spinlens.cli.main import main

# every figure saved by these tests is checked (labels, colourbars, legends): tests/conftest.py
pytestmark = pytest.mark.usefixtures("audit_figures")


@pytest.mark.parametrize("method,files", [
    ("patch", ["patch.png", "patch.pdf", "patch.nc"]),
    ("circuit", ["circuit.png", "circuit.pdf", "circuit.json"]),
    ("lens", ["lens.png", "lens.pdf", "lens.nc"]),
    ("attribution", ["attribution_vs_exact.png", "attribution_circuit.pdf", "edge_attribution.nc"]),
    ("neurons", ["neurons.png", "neurons.nc"]),
    ("flow", ["flow.png", "flow.pdf", "flow.nc"]),
    ("path", ["path.png", "path.nc"]),
])
def test_methods_write_outputs(tmp_path, capsys, method, files):
    out = tmp_path / method
    assert main(["interp", method, "--planted", "regression", "--n-prompts", "32", "--out", str(out), "--json",
                 "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for f in files + ["run.json"]:
        assert (out / f).exists(), f
    if method == "circuit":
        assert summary["nodes"] == [[0, 0], [1, 1]] and summary["faithfulness"] == pytest.approx(1.0)
    if method == "patch":
        assert {(t["layer"], t["head"]) for t in summary["top"][:2]} == {(0, 0), (1, 1)}


def test_copy_model_and_checkpoint(tmp_path, capsys):
    from spinlens.interp.planted import planted_copy_model
    from spinlens.models.checkpoint import save_transformer

    save_transformer(planted_copy_model(), tmp_path / "ck")
    # a token checkpoint gets the in-context token task (2 pairs fit in its 6 positions)
    assert main(["interp", "patch", "--checkpoint", str(tmp_path / "ck"), "--n-prompts", "16", "--n-pairs", "2", "--json"]) == 0
    s = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert s["model"].startswith("checkpoint:") and len(s["top"]) == 4
    assert main(["interp", "circuit", "--planted", "copy", "--n-prompts", "16", "--json"]) == 0
    s = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert s["nodes"] == [[1, 1]]


def test_bad_input_exit_2(capsys):
    assert main(["interp", "patch", "--planted", "banana"]) == 2
    assert "planted" in capsys.readouterr().err
    assert main(["interp", "patch", "--component", "zz", "--n-prompts", "8"]) == 2
    assert main(["interp", "path", "--receivers", "1-1", "--n-prompts", "8"]) == 2
    assert main(["interp", "lens", "--n-prompts", "1"]) == 2


def test_library_call_is_what_the_command_prints(tmp_path, capsys):
    """`spinlens.experiment.interp_method` returns the summary `interp circuit --json` prints; its `write` puts the
    figure, the data and run.json (with the written files) under OUT."""
    from spinlens.experiment import StudyReport, interp_method

    rep = interp_method("circuit", threshold=0.1, planted="regression", n_prompts=16, progress=False)
    assert isinstance(rep, StudyReport) and rep.lines[0].startswith("spinlens interp circuit: planted:regression")
    assert main(["interp", "circuit", "--planted", "regression", "--n-prompts", "16", "--json", "--no-progress"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {k: v for k, v in printed.items() if k != "elapsed_s"} == \
        {k: v for k, v in rep.summary.items() if k != "elapsed_s"}
    files = rep.write(tmp_path, seed=0)
    assert sorted(p.rsplit("/", 1)[-1] for p in files) == ["circuit.json", "circuit.pdf", "circuit.png"]
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["command"] == "interp circuit" and run["summary"]["files"] == files
    assert not (tmp_path / "result.json").exists()  # the interp methods write no result.json
