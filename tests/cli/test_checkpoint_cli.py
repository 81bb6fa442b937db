"""One model folder, one flag: the folder `zoo train` / `train` writes works under --checkpoint everywhere."""

from __future__ import annotations

import json

import pytest

from spinlens.cli.main import main

# every figure saved by these tests is checked (labels, colourbars, legends): tests/conftest.py
pytestmark = pytest.mark.usefixtures("audit_figures")


@pytest.fixture(scope="module")
def tf_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("ck") / "tf"
    code = main(["zoo", "train", "--arch", "tf", "--D", "3", "--N", "8", "--online", "--steps", "30", "--n-layers", "1",
                 "--d-model", "8", "--batch-size", "32", "--test-prompts", "64", "--no-progress", "--json",
                 "--out", str(out)])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def sla_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("ck") / "sla"
    code = main(["train", "--D", "3", "--N", "10", "--P", "200", "--epochs", "20", "--weight-decay", "0.01",
                 "--no-progress", "--out", str(out)])
    assert code == 0
    return out


def _json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_zoo_train_writes_one_model_folder(tf_folder):
    rec = json.loads((tf_folder / "config.json").read_text())
    assert rec["format"] == "spinlens-zoo/1" and rec["config"]["arch"] == "tf"
    assert (tf_folder / "model.safetensors").is_file() and (tf_folder / "run.json").is_file()


@pytest.mark.parametrize("argv", [
    ["interp", "patch", "--n-prompts", "16", "--json"],
    ["interp", "lens", "--n-prompts", "16", "--json"],
])
def test_interp_takes_the_folder(tf_folder, argv, capsys):
    assert main([*argv, "--checkpoint", str(tf_folder)]) == 0
    assert _json(capsys)


def test_edit_commands_take_the_folder(tf_folder, tmp_path, capsys):
    ck = ["--checkpoint", str(tf_folder), "--no-progress", "--json"]
    runs = {
        "steer": ["steer", "--n-prompts", "32", "--strengths", "0", "1", "--n-top-heads", "1"],
        "pinpoint": ["pinpoint", "--k", "1", "--n-random", "1", "--steps", "2", "--importance", "attribution"],
        "merge": ["merge", "--steps", "2"],
        "quantize": ["quantize", "--budgets", "3", "--bits", "2", "4", "--uniform-bits", "2", "4", "--n-random", "1"],
    }
    for name, argv in runs.items():
        out = tmp_path / name
        assert main([*argv, *ck, "--out", str(out)]) == 0, name
        assert _json(capsys) is not None
        run = json.loads((out / "run.json").read_text())
        assert run["args"]["checkpoint"] == str(tf_folder)
        assert run["args"]["N"] == 8, name  # (N: docs/vocabulary.md) the context length the model was trained on, not its max_pos
        assert not (out / "base").exists()  # no default base trained


def test_merge_saved_folders(tf_folder, tmp_path, capsys):
    merged = tmp_path / "merged"
    assert main(["merge", "--checkpoint", str(tf_folder), "--models", str(tf_folder), str(tf_folder),
                 "--method", "ties", "--save", str(merged), "--json"]) == 0
    capsys.readouterr()
    assert main(["interp", "patch", "--checkpoint", str(merged), "--n-prompts", "8", "--json"]) == 0


def test_bridge_takes_train_and_zoo_folders(sla_folder, tf_folder, capsys):
    assert main(["zoo", "bridge", "--checkpoint", str(sla_folder), "--prompts", "200", "--json"]) == 0
    rep = _json(capsys)
    assert rep["arch"] == "sla" and rep["N"] == 10 and rep["lam"] == pytest.approx(0.005)
    # a transformer has no effective linear form: a one-line error, exit 2
    assert main(["zoo", "bridge", "--checkpoint", str(tf_folder)]) == 2
    err = capsys.readouterr().err
    assert "linear" in err and err.count("\n") == 1


def test_wrong_model_kind_is_one_line(sla_folder, capsys):
    assert main(["interp", "patch", "--checkpoint", str(sla_folder)]) == 2
    err = capsys.readouterr().err
    assert "'checkpoint'" in err and "Transformer" in err and err.count("\n") == 1
    assert main(["steer", "--checkpoint", str(sla_folder / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_old_spellings_still_work(tf_folder, sla_folder, tmp_path, capsys):
    from safetensors.torch import save_file

    from spinlens.models.checkpoint import load_model

    # a single-file Transformer of the earlier edit commands, under the old --model flag
    m = load_model(tf_folder)
    old = tmp_path / "old.safetensors"
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(old),
              metadata={"spinlens_transformer_config": json.dumps(m.cfg.to_dict())})
    assert main(["steer", "--model", str(old), "--n-prompts", "16", "--strengths", "0", "1", "--n-top-heads", "1",
                 "--n-context", "8", "--json"]) == 0
    err = capsys.readouterr().err
    assert "deprecated" in err and "--checkpoint" in err
    # zoo bridge with the folder as a positional argument
    assert main(["zoo", "bridge", str(sla_folder), "--prompts", "100", "--json"]) == 0
    assert "deprecated" in capsys.readouterr().err
    # merge --base
    assert main(["merge", "--base", str(tf_folder), "--models", str(tf_folder), "--save", str(tmp_path / "m"),
                 "--json"]) == 0
    assert "deprecated" in capsys.readouterr().err
    # a run folder of the older `spinlens train` (weights.safetensors, no config.json)
    sla = load_model(sla_folder)
    old_train = tmp_path / "old_train"
    old_train.mkdir()
    save_file({k: v.contiguous() for k, v in sla.core.state_dict().items()}, str(old_train / "weights.safetensors"))
    (old_train / "run.json").write_text(json.dumps({"command": "train", "N": 10}))
    assert main(["zoo", "bridge", "--checkpoint", str(old_train), "--prompts", "100", "--json"]) == 0
    assert "deprecated" in capsys.readouterr().err
    # an HF-only flag on a command that takes spinlens models
    assert main(["steer", "--model", str(tmp_path)]) == 2
