"""spinlens.io: the one place that writes outputs (atomic, normal permissions, one run.json writer)."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from spinlens import io


@pytest.fixture
def umask():
    """Set a umask for one test and restore the old one."""
    old = os.umask(0o022)
    os.umask(old)

    def set_(mask):
        os.umask(mask)

    yield set_
    os.umask(old)


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_files_get_normal_permissions(tmp_path, umask, mask):
    umask(mask)
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what open(path, "w") gives
    written = [
        io.atomic_write_text(tmp_path / "a.txt", "x"),
        io.atomic_write_bytes(tmp_path / "b.bin", b"x"),
        io.write_json(tmp_path / "c.json", {"a": 1}),
        io.atomic_savez(tmp_path / "d.npz", a=np.arange(3)),
        io.write_run_json(tmp_path, io.run_record("test", seed=0)),
        io.save_columns({"x": [1, 2]}, tmp_path, "e"),
    ]
    assert _mode(plain) == 0o666 & ~mask
    for p in written:
        assert _mode(p) == 0o666 & ~mask, p


def test_atomic_write_keeps_old_file_on_error(tmp_path):
    target = tmp_path / "out.txt"
    io.atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("half-written")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]  # no temporary left behind


def test_atomic_write_new_file_absent_on_error(tmp_path):
    target = tmp_path / "sub" / "new.json"
    with pytest.raises(ValueError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("{")
            raise ValueError
    assert not target.exists() and list((tmp_path / "sub").iterdir()) == []


def test_run_record_and_json(tmp_path):
    import argparse

    args = argparse.Namespace(seed=3, out=str(tmp_path), func=print)
    rec = io.run_record("zoo train", args=args, seed=3, summary={"loss": np.float64(0.5), "bad": float("nan")})
    path = io.write_run_json(tmp_path, rec)
    back = json.loads(open(path).read())
    assert back["command"] == "zoo train" and back["seed"] == 3
    assert back["args"] == {"seed": 3, "out": str(tmp_path)}  # func dropped
    assert back["summary"] == {"loss": 0.5, "bad": None}
    assert set(back["versions"]) >= {"python", "spinlens", "numpy"}
    assert back["git_sha"] == io.git_sha()


def test_git_sha_is_a_commit_or_none():
    sha = io.git_sha()
    assert sha is None or (len(sha) == 40 and all(c in "0123456789abcdef" for c in sha))


def test_save_figure_png_and_pdf(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    paths = io.save_figure(fig, tmp_path / "figs", "line")
    assert [os.path.basename(p) for p in paths] == ["line.png", "line.pdf"]
    assert open(paths[0], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert open(paths[1], "rb").read(5) == b"%PDF-"
    assert not plt.fignum_exists(fig.number)


def test_save_dataset_round_trip(tmp_path):
    import xarray as xr

    ds = xr.Dataset({"a": ("x", np.arange(3.0))}, attrs={"flag": True, "info": {"k": 1}, "none": None})
    p = io.save_dataset(ds, tmp_path, "data")
    back = xr.load_dataset(p)
    np.testing.assert_array_equal(back["a"].values, np.arange(3.0))
    assert json.loads(back.attrs["info"]) == {"k": 1} and back.attrs["flag"] == "true"


def test_save_columns_rejects_ragged(tmp_path):
    with pytest.raises(ValueError):
        io.save_columns({"a": [1, 2], "b": [1]}, tmp_path, "bad")
    assert not (tmp_path / "bad.csv").exists()


def test_jsonable():
    assert io.jsonable({"a": np.array([1.0, np.inf]), 2: np.bool_(True)}) == {"a": [1.0, "inf"], "2": True}
