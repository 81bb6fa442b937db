"""Run folders (``--out`` of every command) as one transaction: old or new, the user's files never lost, the rule
for one folder used by several commands (docs/cli.md), sweeps switched through `io.folder_update`."""

from __future__ import annotations

import json
import os

import pytest

from spinlens import io
from spinlens.cli.main import main
from spinlens.errors import InvalidParameterError

CURVE = ["theory", "curve", "--vary", "tau", "--from", "0.1", "--to", "3", "--num", "3", "--alpha", "2"]
DIVERSITY = ["theory", "diversity", "--D", "2", "--N", "2", "--P", "10", "--K", "2", "--n-test", "20"]


def _state(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(autouse=True)
def _agg():
    import matplotlib

    matplotlib.use("Agg")


def test_a_command_run_folder_is_one_transaction_named_as_the_user_gave_it(tmp_path, capsys):
    out = tmp_path / "r"
    assert main([*CURVE, "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert io.read_manifest(out)["kind"] == "theory curve"
    assert set(io.read_manifest(out)["files"]) == {p for p in _state(out) if p != io.MANIFEST_FILE}
    text = printed.out + printed.err + (out / "run.json").read_text()
    assert ".spinlens-" not in text and str(out) in (out / "run.json").read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["r"]  # no staging folder left beside it


def test_one_folder_several_commands(tmp_path, capsys):
    """The documented rule (docs/cli.md): commands share a run folder, each run replaces only the files of its
    command's earlier run, in one switch; a file no spinlens command wrote is refused unless --force (kept)."""
    out = tmp_path / "r"
    assert main([*CURVE, "--out", str(out)]) == 0
    first = _state(out)
    assert main([*DIVERSITY, "--out", str(out)]) == 0  # another command: its files join the folder
    now = _state(out)
    assert now["curve.csv"] == first["curve.csv"] and "diversity.csv" in now
    owners = {k: v["kind"] for k, v in io.read_manifest(out)["files"].items()}
    assert owners["curve.csv"] == "theory curve" and owners["diversity.csv"] == "theory diversity"
    assert main([*CURVE, "--lam-lu", "0.5", "--out", str(out)]) == 0  # a re-run replaces its own files only
    again = _state(out)
    assert again["curve.csv"] != first["curve.csv"] and again["diversity.csv"] == now["diversity.csv"]
    capsys.readouterr()
    (out / "notes.txt").write_text("mine")
    assert main([*CURVE, "--out", str(out)]) == 2  # a file no command wrote: refused up front, in one line
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "notes.txt" in err[0] and "--force" in err[0]
    assert _state(out) == {**again, "notes.txt": b"mine"}
    assert main([*CURVE, "--force", "--out", str(out)]) == 0
    now = _state(out)
    assert now["notes.txt"] == b"mine" and now["diversity.csv"] == again["diversity.csv"]
    assert "notes.txt" not in io.read_manifest(out)["files"]  # kept, and still not ours


def test_a_model_folder_is_not_a_run_folder(tmp_path, capsys):
    out = tmp_path / "m"
    with io.folder_transaction(out, kind="lm") as stage:
        (stage / "model.safetensors").write_text("w")
    assert main([*CURVE, "--out", str(out)]) == 2
    assert "written by 'lm'" in capsys.readouterr().err


def test_shared_run_folder_drops_the_stale_files_of_the_same_command_only(tmp_path):
    out = tmp_path / "r"
    with io.run_folder(out, kind="a") as stage:
        (stage / "a1.csv").write_text("1")
        (stage / "a-stale.csv").write_text("1")
    with io.run_folder(out, kind="b") as stage:
        (stage / "b1.csv").write_text("1")
    with io.run_folder(out, kind="a") as stage:
        (stage / "a1.csv").write_text("2")
    assert _state(out).keys() == {"a1.csv", "b1.csv", io.MANIFEST_FILE}


def test_a_rerun_replaces_the_earlier_run_whole(tmp_path):
    out = tmp_path / "r"
    with io.run_folder(out, kind="demo") as stage:
        (stage / "a.png").write_text("1")
        (stage / "only-in-run-1.csv").write_text("1")
    with io.run_folder(out, kind="demo") as stage:
        (stage / "a.png").write_text("2")
    assert _state(out).keys() == {"a.png", io.MANIFEST_FILE}  # the stale file of run 1 went with it


def test_an_error_or_a_bad_exit_code_keeps_the_old_run(tmp_path, monkeypatch, capsys):
    out = tmp_path / "r"
    assert main([*CURVE, "--out", str(out)]) == 0
    old = _state(out)
    assert main([*CURVE, "--alpha", "-1", "--out", str(out)]) == 2  # bad input raised inside the command
    assert _state(out) == old

    def half_then_fail(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(io, "save_figure", half_then_fail)  # after the CSV is written: a half run
    assert main([*CURVE, "--lam-lu", "0.5", "--out", str(out)]) in (1, 2)
    assert _state(out) == old
    assert [p.name for p in tmp_path.iterdir()] == ["r"]


def test_a_command_returning_exit_2_does_not_switch_in(tmp_path, monkeypatch):
    import spinlens.cli.main as M

    out = tmp_path / "r"
    assert main([*CURVE, "--out", str(out)]) == 0
    old = _state(out)
    real = M._run_command

    def fake(args, prog):
        def func(a):
            (tmp_path / "seen").write_text(a.out)
            io.atomic_write_text(os.path.join(a.out, "partial.csv"), "half")
            return 2
        args.func = func
        return real(args, prog)

    monkeypatch.setattr(M, "_run_command", fake)
    assert main([*CURVE, "--out", str(out)]) == 2
    assert ".spinlens-new-" in (tmp_path / "seen").read_text()
    assert _state(out) == old


def test_carried_cache_is_reused_and_rewriting_it_never_touches_the_old_files(tmp_path):
    out = tmp_path / "r"
    with io.run_folder(out, kind="steer") as stage:
        with io.folder_transaction(stage / "base", kind="model") as b:
            (b / "w.bin").write_text("trained once")
        (stage / "result.json").write_text("{}")
    old_inode = os.stat(out / "base" / "w.bin").st_ino
    with io.run_folder(out, kind="steer", carry=("base",)) as stage:
        assert (stage / "base" / "w.bin").read_text() == "trained once"  # the cache is there to reuse
        assert os.stat(stage / "base" / "w.bin").st_ino == old_inode  # as a link, not a copy
    with io.run_folder(out, kind="steer", carry=("base",)) as stage:
        with io.folder_transaction(stage / "base", kind="model") as b:  # the command retrains it
            (b / "w2.bin").write_text("retrained")
        assert (out / "base" / "w.bin").read_text() == "trained once"  # the old state is untouched meanwhile
        assert not (stage / "base" / "w.bin").exists()  # the carried links went first: no stale mix
    assert sorted(p.name for p in (out / "base").iterdir()) == ["manifest.json", "w2.bin"]


def test_force_with_user_files_is_one_switch_too(tmp_path, monkeypatch):
    out = tmp_path / "r"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "sub").mkdir()
    (out / "sub" / "data.csv").write_text("1,2")
    ino = os.stat(out / "notes.txt").st_ino
    with pytest.raises(RuntimeError):
        with io.run_folder(out, kind="demo", force=True) as stage:
            (stage / "a.png").write_text("1")
            raise RuntimeError
    assert _state(out) == {"notes.txt": b"mine", "sub/data.csv": b"1,2"}
    with io.run_folder(out, kind="demo", force=True) as stage:
        (stage / "a.png").write_text("1")
    assert _state(out).keys() == {"notes.txt", "sub/data.csv", "a.png", io.MANIFEST_FILE}
    assert os.stat(out / "notes.txt").st_ino == ino  # the very same file, never copied or rewritten


def test_force_into_the_working_folder_moves_entries_in(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    with io.run_folder(".", kind="demo", force=True) as stage:
        assert stage.parent == tmp_path.parent
        (stage / "a.png").write_text("1")
    assert (tmp_path / "notes.txt").read_text() == "mine" and (tmp_path / "a.png").read_text() == "1"


def test_write_hf_model_is_a_transaction(tmp_path):
    class Fake:
        def save_pretrained(self, d, safe_serialization=True):
            (__import__("pathlib").Path(d) / "model.safetensors").write_bytes(b"w")

    out = tmp_path / "m"
    io.write_hf_model(out, Fake())
    assert io.read_manifest(out)["kind"] == "hf model"
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "keep.txt").write_text("x")
    with pytest.raises(InvalidParameterError, match="keep.txt"):
        io.write_hf_model(tmp_path / "user", Fake())


# ---------------------------------------------------------------------------------------------------- sweeps

SWEEP = ["sweep", "--D", "2", "--P", "6", "--jobs", "1", "--no-progress"]


def test_sweep_refuses_a_folder_of_other_files_and_force_keeps_them(tmp_path, capsys):
    out = tmp_path / "s"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main([*SWEEP, "--N", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "notes.txt" in err[0] and "--force" in err[0]
    assert _state(out) == {"notes.txt": b"mine"}
    assert main([*SWEEP, "--N", "2", "--force", "--out", str(out)]) == 0
    assert (out / "notes.txt").read_text() == "mine" and (out / "results.nc").is_file() and (out / "run.json").is_file()


def test_sweep_force_switches_the_whole_sweep_and_resume_extends_atomically(tmp_path):
    from spinlens.sweeps import open_sweep

    out = tmp_path / "s"
    assert main([*SWEEP, "--N", "2,3", "--out", str(out)]) == 0
    (out / "analysis.ipynb").write_text("{}")
    pts = {p.name: p.read_bytes() for p in (out / "points").iterdir()}
    assert main([*SWEEP, "--N", "2,3,4", "--resume", "--out", str(out)]) == 0  # grid extended: 2 kept, 1 new
    run = json.loads((out / "run.json").read_text())
    assert run["n_reused"] == 2 and run["n_computed"] == 1
    assert all((out / "points" / n).read_bytes() == b for n, b in pts.items())
    assert open_sweep(out).sizes["N"] == 3
    assert main([*SWEEP, "--N", "5", "--force", "--out", str(out)]) == 0
    assert len(list((out / "points").iterdir())) == 1 and (out / "analysis.ipynb").read_text() == "{}"
    assert [p.name for p in tmp_path.iterdir()] == ["s"]
