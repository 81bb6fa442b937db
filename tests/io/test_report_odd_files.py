"""`spinlens report` skips an unreadable file with a warning in the page and goes on."""

from __future__ import annotations

import os
import warnings

import pytest

from spinlens.report import build_report


@pytest.mark.parametrize("setup", ["list_run", "short_row", "huge_field", "symlink_loop", "bad_json", "comparison"])
def test_one_odd_file_does_not_kill_the_report(tmp_path, setup):
    good = tmp_path / "good"
    good.mkdir()
    (good / "table.csv").write_text("a,b\n1,2\n")
    bad = tmp_path / "bad"
    bad.mkdir()
    if setup == "list_run":
        (bad / "run.json").write_text("[1, 2, 3]")
    elif setup == "bad_json":
        (bad / "run.json").write_text("[" * 100000)
    elif setup == "short_row":
        (bad / "t.csv").write_text("a,b,c\n1\n")
    elif setup == "huge_field":
        (bad / "t.csv").write_text("a\n" + "x" * 200_000 + "\n")
    elif setup == "comparison":
        (bad / "paper_vs_ours.csv").write_text("quantity,deviation\nq,notanumber\nshort\n")
    else:
        os.symlink(bad / "loop", bad / "loop")
        (bad / "t.csv").write_text("a\n1\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        page = build_report(tmp_path).read_text()
    assert "table.csv" in page  # the good folder is there
    if setup in ("huge_field", "comparison"):
        assert "skipped" in page or "t.csv" in page or "paper" in page
