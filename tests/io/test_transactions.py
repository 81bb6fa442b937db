"""Folders written as one transaction (spinlens.io.folder_transaction) and their manifests."""

from __future__ import annotations

import json
import os

import pytest

from spinlens import io
from spinlens.errors import InvalidParameterError


def _write(stage, files):
    for rel, text in files.items():
        p = stage / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        io.atomic_write_text(p, text)


def _state(folder):
    return {p.relative_to(folder).as_posix(): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_new_folder_gets_every_file_and_a_manifest(tmp_path):
    out = tmp_path / "m"
    with io.folder_transaction(out, kind="demo") as stage:
        assert stage != out and stage.parent == out.parent and not out.exists()
        _write(stage, {"a.txt": "A", "sub/b.txt": "B"})
    man = io.read_manifest(out)
    assert man["kind"] == "demo" and set(man["files"]) == {"a.txt", "sub/b.txt"}
    assert man["files"]["a.txt"]["sha256"] == io.sha256_file(out / "a.txt")
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no staging folder left


def test_replacing_drops_stale_files_of_the_earlier_run(tmp_path):
    out = tmp_path / "m"
    with io.folder_transaction(out, kind="demo") as stage:
        _write(stage, {"a.txt": "old", "checkpoints/step-1/w": "1", "checkpoints/step-9/w": "9"})
    with io.folder_transaction(out, kind="demo") as stage:
        _write(stage, {"a.txt": "new", "checkpoints/step-2/w": "2"})
    assert _state(out) == {"a.txt": "new", "checkpoints/step-2/w": "2", "manifest.json": (out / "manifest.json").read_text()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_an_error_leaves_the_old_state_whole(tmp_path, exc):
    out = tmp_path / "m"
    with io.folder_transaction(out, kind="demo") as stage:
        _write(stage, {"a.txt": "old"})
    before = _state(out)
    with pytest.raises(type(exc)):
        with io.folder_transaction(out, kind="demo") as stage:
            _write(stage, {"a.txt": "new", "b.txt": "half"})
            raise exc
    assert _state(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_an_error_in_a_new_folder_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with io.folder_transaction(tmp_path / "m", kind="demo") as stage:
            _write(stage, {"a.txt": "x"})
            raise RuntimeError
    assert list(tmp_path.iterdir()) == []


def test_a_folder_of_other_files_is_refused_up_front(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InvalidParameterError, match="notes.txt.*--force"):
        io.check_out_dir("out", tmp_path, kind="demo")
    with pytest.raises(InvalidParameterError, match="notes.txt"):
        with io.folder_transaction(tmp_path, kind="demo"):
            raise AssertionError("never entered")
    assert _state(tmp_path) == {"notes.txt": "mine"}


def test_a_folder_of_another_kind_is_refused(tmp_path):
    out = tmp_path / "m"
    with io.folder_transaction(out, kind="lm") as stage:
        _write(stage, {"a.txt": "x"})
    with pytest.raises(InvalidParameterError, match="written by 'lm'"):
        io.check_replaceable("out", out, kind="train")


def test_force_keeps_other_files_and_replaces_ours(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with io.folder_transaction(tmp_path, kind="demo", force=True) as stage:
        _write(stage, {"a.txt": "1", "ck/s1": "1"})
    with io.folder_transaction(tmp_path, kind="demo", force=True) as stage:
        _write(stage, {"a.txt": "2"})
    st = _state(tmp_path)
    assert st["notes.txt"] == "mine" and st["a.txt"] == "2" and "ck/s1" not in st
    assert set(io.read_manifest(tmp_path)["files"]) == {"a.txt"}  # the user's file stays foreign
    with pytest.raises(InvalidParameterError, match="notes.txt"):
        io.check_replaceable("out", tmp_path, kind="demo")


def test_an_edited_folder_is_refused_not_replaced(tmp_path):
    out = tmp_path / "m"
    with io.folder_transaction(out, kind="demo") as stage:
        _write(stage, {"a.txt": "x"})
    (out / "extra.txt").write_text("added by hand")
    with pytest.raises(InvalidParameterError, match="extra.txt"):
        io.check_replaceable("out", out, kind="demo")


def test_nested_transactions_write_into_the_outer_stage(tmp_path):
    out = tmp_path / "run"
    with io.folder_transaction(out, kind="outer") as stage:
        with io.folder_transaction(stage / "model", kind="inner") as inner:
            assert inner == stage / "model"
            _write(inner, {"w": "1"})
        assert io.read_manifest(stage / "model")["kind"] == "inner"
        assert not out.exists()
    assert io.read_manifest(out)["kind"] == "outer"
    assert "model/manifest.json" in io.read_manifest(out)["files"]


def test_verify_files_names_the_file_that_does_not_belong(tmp_path):
    out = tmp_path / "m"
    with io.folder_transaction(out, kind="demo") as stage:
        _write(stage, {"a.txt": "x"})
    io.verify_files(out, ["a.txt", "b.txt"])
    (out / "a.txt").write_text("y")
    with pytest.raises(InvalidParameterError, match=r"a\.txt.*SHA-256"):
        io.verify_files(out, ["a.txt"])
    (out / "b.txt").write_text("z")
    with pytest.raises(InvalidParameterError, match=r"b\.txt.*does not belong"):
        io.verify_files(out, ["b.txt"])
    (out / "a.txt").unlink()
    with pytest.raises(InvalidParameterError, match=r"a\.txt.*missing"):
        io.verify_files(out, ["a.txt"])


def test_a_corrupt_manifest_is_one_line(tmp_path):
    (tmp_path / "manifest.json").write_text("[1, 2")
    with pytest.raises(InvalidParameterError, match="corrupt manifest.json"):
        io.read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(InvalidParameterError, match="not a spinlens manifest"):
        io.read_manifest(tmp_path)


def test_fallback_window_is_recovered(tmp_path):
    """Without an atomic exchange a kill between the two renames leaves the old state aside; the next
    transaction on the path puts it back."""
    out = tmp_path / "m"
    with io.folder_transaction(out, kind="demo") as stage:
        _write(stage, {"a.txt": "old"})
    aside = tmp_path / ".m.spinlens-old-999999999-abc"
    os.rename(out, aside)  # what a kill right after "rename old aside" leaves
    io.check_replaceable("out", out, kind="demo")
    assert (out / "a.txt").read_text() == "old" and not aside.exists()


def test_stale_staging_folders_of_dead_processes_are_removed(tmp_path):
    out = tmp_path / "m"
    stale = tmp_path / ".m.spinlens-new-999999999-xyz"
    stale.mkdir()
    (stale / "w").write_text("half")
    with io.folder_transaction(out, kind="demo") as stage:
        _write(stage, {"a.txt": "x"})
    assert not stale.exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_fifo_is_refused_before_opening(tmp_path):
    f = tmp_path / "fifo"
    os.mkfifo(f)
    with pytest.raises(InvalidParameterError, match="a FIFO"):
        io.check_regular_file("weights", f)
