"""Audit of the whole ``spinlens`` command line as a new user meets it.

* bad input (out-of-range numbers, unknown choices, missing or malformed files, an ``--out`` that is an existing
  file) exits with code 2 and ONE line on stderr naming the parameter, with no traceback and nothing written;
* every ``--help`` ends with examples, and every example line parses with the real parser;
* ``spinlens --help`` is fast and ``solve`` / ``prompts`` / ``theory`` do not import torch or matplotlib.

All checks run in-process (``main([...])``) except one subprocess for the import check.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys

import numpy as np
import pytest

from spinlens.cli.main import build_parser, main

FIXTURES = ("afile", "bad.npz", "spec_bad.yaml", "spec_malformed.yaml", "spec_list.yaml", "grid_bad.toml",
            "bad.safetensors", "bad.nc")


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A scratch folder with malformed input files; the test runs inside it."""
    np.savez(tmp_path / "bad.npz", A=np.zeros(3))
    (tmp_path / "afile").write_text("an existing file, not a folder\n")
    (tmp_path / "spec_bad.yaml").write_text(
        "interventions:\n  - {type: add, hook: blocks.1.hook_resid_pre, vector: [1, 2], foo: 1}\n")
    (tmp_path / "spec_malformed.yaml").write_text("interventions: [\n")
    (tmp_path / "spec_list.yaml").write_text("interventions: [1]\n")
    (tmp_path / "grid_bad.toml").write_text("[grid]\nN = 10\nbogus = 3\n")
    (tmp_path / "grid_notmap.yaml").write_text("grid: 5\n")
    (tmp_path / "grid_malformed.yaml").write_text("grid: [\n")
    (tmp_path / "bad.safetensors").write_text("garbage")
    (tmp_path / "bad.nc").write_text("garbage")
    (tmp_path / "emptydir").mkdir()
    (tmp_path / "ck_badjson").mkdir()
    (tmp_path / "ck_badjson" / "config.json").write_text("{")
    monkeypatch.chdir(tmp_path)
    return tmp_path


# (argv, text that stderr must contain: the parameter's name)
BAD = [
    ("prompts --D 0 -o x.npz", "'--D'"),
    ("prompts --N -3 -o x.npz", "'--N'"),
    ("prompts --corr 1 -o x.npz", "'--corr'"),
    ("prompts --sigma-x 0 -o x.npz", "'--sigma-x'"),
    ("prompts --D 2 --N 2 --P 2 -o afile/x.npz", "'--output'"),
    ("prompts --seed -1 -o x.npz", "'--seed'"),
    ("solve --seed -1 --D 2 --N 2 --P 5", "'--seed'"),
    ("train --seed -1 --D 2 --N 2 --P 4 --out o_train", "'--seed'"),
    ("theory simulate --D 4 --alpha 2 --tau 2 --seed -1", "'--seed'"),
    ("theory diversity --D 2 --N 2 --P 10 --K 2 --seed -1", "'--seed'"),
    ("theory phase --D 2 --N 3 --K 2 --P 20 --repeats 1 --seed -1", "'--seed'"),
    ("interp lens --seed -1", "'seed'"),
    ("interp lens --model emptydir", "'model'"),
    ("quantize --model emptydir --out o_edit", "'model'"),
    ("solve --lam -1", "'--lam'"),
    ("solve --beta 0", "'--beta'"),
    ("solve --damping 1", "'--damping'"),
    ("solve --damping -0.1", "'--damping'"),
    ("solve --corr 1.5", "'--corr'"),
    ("solve --method foo", "'--method'"),
    ("solve --steps 0", "'--steps'"),
    ("solve --data missing.npz", "missing.npz"),
    ("solve --data bad.npz", "'Z'"),
    ("solve --D 2 --N 2 --P 5 --save afile/r.npz", "'--save'"),
    ("solve --D x", "--D"),
    ("solve --bogus 1", "unrecognized arguments"),
    ("train --model foo --out o_train", "'--model'"),
    ("train --D 2 --N 2 --P 4 --device foo --out o_train", "'--device'"),
    ("train --D 2 --N 2 --P 4 --epochs 1 --out afile", "'--out'"),
    ("train --D 2 --N 2 --P 4 --lr -1 --out o_train", "'lr'"),
    ("train --D 2 --N 2 --P 4 --weight-decay -1 --out o_train", "'weight_decay'"),
    ("theory --alpha -1 --tau 2", "'alpha'"),
    ("theory --alpha 2 --tau 2 --lam-lu -1", "'lam_lu'"), ("theory --alpha 2 --tau 2 --lam 0.1", "--lam-lu"),
    ("theory --alpha 2 --tau 2 --kappa 0", "'kappa'"),
    ("theory --tau 2", "'alpha'"),
    ("theory curve --vary foo --from 0.1 --to 3", "--vary"),
    ("theory curve --vary tau --from 0.1 --to 3 --num 1 --alpha 10", "'num'"),
    ("theory curve --vary tau --from 0.1 --to 3 --num 5 --alpha 2 --out afile", "'--out'"),
    ("theory simulate --D 1 --alpha 2 --tau 2", "'--D'"),
    ("theory diversity --lam -1", "'lam'"),
    ("theory diversity --D 2 --N 2 --P 10 --K 2 --out afile", "'--out'"),
    ("theory phase --damping 1", "'damping'"),
    ("theory phase --beta 0", "'beta'"),
    ("theory phase --D 2 --N 3 --K 2 --P 20 --repeats 1 --out afile", "'--out'"),
    ("sweep --corr 1 --out o_sweep", "'corr'"),
    ("sweep --damping 1 --out o_sweep", "'damping'"),
    ("sweep --lam -1 --out o_sweep", "'lam'"),
    ("sweep --method foo --out o_sweep", "--method"),
    ("sweep --config missing.toml --out o_sweep", "'config'"),
    ("sweep --config grid_bad.toml --out o_sweep", "'bogus'"),
    ("sweep --config grid_notmap.yaml --out o_sweep", "'grid'"),
    ("sweep --config grid_malformed.yaml --out o_sweep", "'config'"),
    ("sweep --N 2 --P 3 --D 2 --out afile", "'--out'"),
    ("reproduce figX --out o_rep", "'FIG'"),
    ("reproduce fig4b --out afile", "'--out'"),
    ("reproduce fig4b --seed -1 --out o_rep", "'--seed'"),
    ("landscape --lam -1 --out o_land", "'--lam'"),
    ("landscape --out afile", "'--out'"),
    ("report missing_dir", "'DIR'"),
    ("report . --out afile/x.html", "'--out'"),
    ("demo --out afile", "'--out'"),
    ("interp lens --planted foo", "'planted'"),
    ("interp lens --checkpoint missing_dir", "'checkpoint'"),
    ("interp lens --n-prompts 0", "'n-prompts'"),
    ("interp lens --corruption foo", "'corruption'"),
    ("interp lens --out afile", "'--out'"),
    ("interp lens --checkpoint ck_badjson", "'checkpoint'"),
    ("interp patch --component foo", "'component'"),
    ("interp circuit --threshold -1 --out o_interp", "'threshold'"),
    ("interp neurons --top 0 --out o_interp", "'top'"),
    ("interp flow --head 99 --out o_interp", "'head'"),
    ("interp flow --residual-weight 2", "'residual_weight'"),
    ("steer --model bad.safetensors --out o_edit", "'model'"),
    ("steer --setting regression --spec missing.yaml --out o_edit", "'spec'"),
    ("steer --setting regression --spec spec_malformed.yaml --out o_edit", "'spec'"),
    ("steer --setting regression --spec spec_bad.yaml --out o_edit", "allowed keys"),
    ("steer --setting regression --spec spec_list.yaml --out o_edit", "interventions[0]"),
    ("steer --setting regression --n-prompts 0 --out o_edit", "'n_prompts'"),
    ("steer --out afile", "'--out'"),
    ("pinpoint --k 0 --out o_edit", "'k'"),
    ("pinpoint --lr -1 --out o_edit", "'lr'"),
    ("pinpoint --target foo --out o_edit", "--target"),
    ("pinpoint --setting regression --importance-file bad.nc --out o_edit", "'importance_file'"),
    ("merge --density 0 --out o_edit", "'density'"),
    ("merge --steps 0 --out o_edit", "'steps'"),
    ("merge --setting regression --tasks corr corr --out o_edit", "'tasks'"),
    ("merge --base bad.safetensors --models bad.safetensors --save afile/m.safetensors", "'save'"),
    ("quantize --bits 0 --out o_edit", "'bits'"),
    ("quantize --budget 1 --out o_edit", "'budget'"),
    ("quantize --n-random -1 --out o_edit", "'n_random'"),
    ("quantize --model missing_dir --out o_edit", "'model'"),
    ("quantize --out afile", "'--out'"),
    ("zoo train --arch foo --out o_zoo", "'arch'"),
    ("zoo bridge missing_dir", "missing_dir"),
    ("zoo bridge bad.safetensors", "bad.safetensors"),
    ("interp recall --model smollm2-135m --relations capital,foo --out o_recall", "'relations'"),
    ("interp recall --model smollm2-135m --n-facts 0 --out o_recall", "'n-facts'"),
    ("interp fv --model smollm2-135m --task antonyms --out o_fv", "'task'"),
    ("interp induction --out o_ind", "--checkpoint"),
]


def _call(argv):
    try:
        return main(argv)
    except SystemExit as exc:  # argparse usage errors
        return exc.code


@pytest.mark.parametrize("cmd,expected", BAD, ids=[c for c, _ in BAD])
def test_bad_input_one_line_exit_2_nothing_written(workdir, capsys, cmd, expected):
    before = sorted(p.name for p in workdir.iterdir())
    code = _call(shlex.split(cmd))
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert lines[0].startswith("spinlens "), err
    assert expected in lines[0], err
    assert sorted(p.name for p in workdir.iterdir()) == before  # no half-written --out, no new files


def test_bad_input_table_is_sane():
    # every command of the CLI has at least one bad-input case above
    commands = {c.split()[0] for c, _ in BAD}
    assert commands >= {"prompts", "solve", "train", "theory", "sweep", "reproduce", "landscape", "report", "demo",
                        "interp", "steer", "pinpoint", "merge", "quantize", "zoo"}


# ------------------------------------------------------------------------------------------- help examples
def _walk(parser, path=()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, path + (name,))


def _examples(epilog):
    """Each ``spinlens ...`` command of an epilog, as argv (continuation lines joined, comments and && handled)."""
    text = (epilog or "").replace("\\\n", " ")
    for line in text.splitlines():
        if not line.strip().startswith("spinlens"):
            continue
        argv: list[str] = []
        for tok in shlex.split(line, comments=True) + ["&&"]:
            if tok == "&&":
                if argv and argv[0] == "spinlens":
                    yield argv[1:]
                argv = []
            else:
                argv.append(tok)


def test_every_help_has_examples_that_parse():
    parsers = list(_walk(build_parser()))
    names = {" ".join(p) for p, _ in parsers}
    assert {"solve", "theory curve", "theory phase", "interp lens", "interp flow", "steer", "quantize", "zoo train"} <= names
    n_checked = 0
    for path, parser in parsers:
        examples = list(_examples(parser.epilog))
        assert examples, f"'spinlens {' '.join(path)} --help' has no examples"
        assert "examples:" in (parser.epilog or ""), path
        for argv in examples:
            try:
                ns = build_parser().parse_args(argv)
            except SystemExit:
                pytest.fail(f"example of 'spinlens {' '.join(path)}' does not parse: spinlens {shlex.join(argv)}")
            assert callable(getattr(ns, "func", None)), argv
            n_checked += 1
    assert n_checked >= 60


def test_example_extraction_handles_quotes_comments_and_chains():
    ep = ('examples:\n  spinlens report d --title "a b"   # comment\n'
          '  spinlens reproduce all --out r && spinlens report r\n  spinlens sweep --N 1 \\\n      --out s\n')
    assert list(_examples(ep)) == [["report", "d", "--title", "a b"], ["reproduce", "all", "--out", "r"],
                                   ["report", "r"], ["sweep", "--N", "1", "--out", "s"]]


def test_usage_errors_of_nested_commands_are_one_line(capsys):
    code = _call(["theory", "curve", "--vary", "tau"])  # --from/--to missing
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--from" in err and "spinlens theory curve" in err


# ------------------------------------------------------------------------------------------ imports, speed
_PROBE = r"""
import io, contextlib, json, sys
from spinlens.cli.main import build_parser, main
build_parser().format_help()
heavy = ("torch", "transformers", "matplotlib", "scipy", "xarray", "pandas", "sklearn")
res = {"help_heavy": sorted(m for m in heavy if m in sys.modules)}
for key, argv in [("solve", ["solve", "--D", "3", "--N", "5", "--P", "50", "--json"]),
                  ("prompts", ["prompts", "--D", "2", "--N", "3", "--P", "4", "-o", sys.argv[1]]),
                  ("theory", ["theory", "--alpha", "2", "--tau", "2", "--json"])]:
    with contextlib.redirect_stdout(io.StringIO()):
        res[key + "_rc"] = main(argv)
res["heavy"] = sorted(m for m in ("torch", "matplotlib", "sklearn", "transformers") if m in sys.modules)
print(json.dumps(res))
"""


def test_help_imports_nothing_heavy_and_solve_prompts_theory_import_no_torch(tmp_path):
    """--help stays fast by importing no heavy library (its time is measured by benchmarks/bench_cli_startup.py)."""
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-c", _PROBE, str(tmp_path / "p.npz")], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["help_heavy"] == []
    assert res["solve_rc"] == 0 and res["prompts_rc"] == 0 and res["theory_rc"] == 0
    assert res["heavy"] == [], res


def test_prompts_json_describes_the_written_file(tmp_path, capsys):
    from spinlens.prompts import load_prompts

    code = main(["prompts", "--D", "2", "--N", "3", "--P", "4", "--K", "2", "--seed", "5", "-o", str(tmp_path / "p.npz"),
                 "--json"])
    rec = json.loads(capsys.readouterr().out)
    assert code == 0
    pr = load_prompts(rec["path"])
    assert pr.Z.shape == (4, 3, 4)  # (P, D+1, N+1)
    assert (rec["P"], rec["D"], rec["N"], rec["K"], rec["seed"]) == (4, 2, 3, 2, 5)  # docs/vocabulary.md
