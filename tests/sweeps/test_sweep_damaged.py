"""A tampered or truncated sweep folder on --resume: one line, recomputed with --repair, never trusted."""

from __future__ import annotations

import os

import pytest

from spinlens.errors import InvalidParameterError
from spinlens.sweeps import make_grid, run_sweep

TOY = "spinlens.sweeps.testing:toy_point"
OBS = ["contrast_ratio", "n_iter"]


def _sweep(out, **kw):
    return run_sweep(make_grid({"N": "5,10"}), OBS, out, jobs=1, progress=False, point_fn=TOY, **kw)


@pytest.mark.parametrize("damage", ["truncate", "empty", "list", "other_params", "string_value", "fifo"])
def test_damaged_point_is_refused_then_repaired(tmp_path, damage):
    out = tmp_path / "s"
    ds0 = _sweep(out)
    p = sorted((out / "points").glob("*.json"))[0]
    text = p.read_text()
    if damage == "truncate":
        p.write_text(text[: len(text) // 2])
    elif damage == "empty":
        p.write_text("")
    elif damage == "list":
        p.write_text("[1, 2]")
    elif damage == "other_params":
        p.write_text(text.replace('"N": 5', '"N": 6').replace('"N": 10', '"N": 11'))
    elif damage == "string_value":
        p.write_text(text.replace('"n_iter": ', '"n_iter": "x", "old": '))
    else:
        p.unlink()
        os.mkfifo(p)
    with pytest.raises(InvalidParameterError, match=r"point file .* is damaged .*--repair"):
        _sweep(out, resume=True)
    ds = _sweep(out, resume=True, repair=True)
    assert ds["contrast_ratio"].values.tolist() == ds0["contrast_ratio"].values.tolist()


@pytest.mark.parametrize("text", ["", "garbage", "[]", '{"grid": 1}'])
def test_damaged_spec_is_one_line(tmp_path, text):
    out = tmp_path / "s"
    _sweep(out)
    (out / "sweep.json").write_text(text)
    with pytest.raises(InvalidParameterError, match=r"sweep\.json.* is damaged.*--force"):
        _sweep(out, resume=True)
    _sweep(out, force=True)


def test_repair_needs_resume(tmp_path):
    with pytest.raises(InvalidParameterError, match="with --resume"):
        _sweep(tmp_path / "s", repair=True)


@pytest.mark.parametrize("name,text", [
    ("g.json", '{"grid": {"N": "5", "N": "10"}}'),
    ("g.yaml", "grid:\n  N: 5\n  N: 10\n"),
    ("g.toml", "[grid]\nN = 5\nN = 10\n"),
    ("g.json", '{"grid": {"N": "5", "n_context": "10"}}'),
    ("g.yaml", "N: 5\ngrid:\n  n_context: 10\n"),
])
def test_duplicate_keys_and_aliases_refused(tmp_path, name, text):
    from spinlens.sweeps._grid import load_config

    f = tmp_path / name
    f.write_text(text)
    with pytest.raises(InvalidParameterError, match="duplicate key|twice|parsed"):
        load_config(f)


@pytest.mark.parametrize("text", ["3,,4", "3,4,", ",3"])
def test_list_syntax_is_strict(text):
    from spinlens.sweeps._grid import parse_values

    with pytest.raises(InvalidParameterError, match="empty item"):
        parse_values("N", text)
    assert parse_values("N", "3,4") == (3, 4)
