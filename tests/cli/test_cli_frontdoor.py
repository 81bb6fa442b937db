"""The command line's front door: one vocabulary, one error boundary, one rule for non-convergence.

* every flag of a quantity in `spinlens.vocabulary` is its symbol plus its long alias, on every command, and
  the old spellings still parse with a deprecation warning; docs/vocabulary.md is the table;
* each class of bad input found by hardening the CLI (unwritable outputs, huge sizes, overflow, devices,
  point functions, configs, checkpoints, steering specs, ignored options, misleading messages) exits 2
  with ONE line naming the parameter or file, no traceback, and nothing written;
* a result that did not converge (solver, theory, training) exits 3 with one warning line and
  ``"converged": false``; an unexpected exception exits 1 with one line unless ``--debug``.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

import numpy as np
import pytest

from spinlens.cli.main import build_parser, main
from spinlens.vocabulary import TERMS, act_name, cli_spellings, markdown_table, to_python, to_symbols

ROOT = Path(__file__).resolve().parents[2]


def _call(argv):
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def _walk(parser, path=()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, path + (name,))


# ------------------------------------------------------------------------------------------------ vocabulary
def test_vocabulary_table_is_the_docs_table():
    text = (ROOT / "docs" / "vocabulary.md").read_text()
    inside = text.split("<!-- vocabulary-table:start -->\n", 1)[1].split("<!-- vocabulary-table:end -->", 1)[0]
    assert inside == markdown_table()
    assert len({t.symbol for t in TERMS}) == len(TERMS) == len({t.long for t in TERMS})


def test_every_flag_of_a_quantity_is_symbol_plus_long_alias_everywhere():
    from spinlens.cli._common import _DeprecatedFlag

    spell = cli_spellings()
    n = n_old = 0
    for path, parser in _walk(build_parser()):
        for action in parser._actions:
            hits = {spell[o][0] for o in action.option_strings if o in spell}
            if not hits:
                continue
            (sym,) = hits
            t = next(t for t in TERMS if t.symbol == sym)
            if isinstance(action, _DeprecatedFlag):  # an old spelling: hidden, stores where the symbol's flag does
                assert action.help == argparse.SUPPRESS and action.new == t.flag, (path, action.option_strings)
                n_old += 1
                continue
            assert action.option_strings == [t.flag, t.long_flag], (path, action.option_strings)
            n += 1
    assert n >= 40  # D, N, P, K, lam, ... on solve, train, prompts, sweep, theory*, landscape, interp*, edit*, zoo
    assert n_old >= 20


def test_flags_are_declared_under_their_symbols_in_the_source():
    # a grep for --D finds every declaration: each command writes add_argument("--D", "--token-dim", ...) itself
    import re

    src = "\n".join(p.read_text() for p in (ROOT / "src" / "spinlens" / "cli").glob("*.py"))
    for t in TERMS:
        old = "|".join(re.escape("--" + o) for o in t.deprecated)
        if old:
            assert not re.search(rf'add_argument\(\s*"({old})"', src), t.symbol
    assert len(re.findall(r'add_argument\("--D", "--token-dim"', src)) >= 6
    assert ".option_strings = " not in src and "__class__ = type(" not in src  # no renaming inside argparse


def test_a_flag_declared_under_an_old_spelling_is_refused_when_the_parser_is_built():
    from spinlens.cli._common import apply_vocabulary

    for decl in (["--d"], ["--D"], ["--N", "--token-dim"]):
        p = argparse.ArgumentParser(prog="x")
        p.add_argument(*decl)
        with pytest.raises(ValueError, match="must be declared as"):
            apply_vocabulary(p)


@pytest.mark.parametrize("old,new,cmd", [
    ("--d", "--D", "landscape"), ("--n-context", "--N", "landscape"), ("--l2-strength", "--lam", "landscape"),
    ("--prompts", "--P", "landscape"), ("--n-prompts", "--P", "sweep"), ("--n-tasks", "--K", "sweep"),
    ("--d", "--D", "steer"), ("--l2-strength", "--lam", "zoo bridge X"), ("--d", "--D", "theory simulate"),
])
def test_old_spellings_parse_with_a_deprecation_warning(capsys, old, new, cmd):
    argv = shlex.split(cmd) + [old, "3"]
    ns_old = build_parser().parse_args(argv)
    err = capsys.readouterr().err
    assert f"warning: {old} is deprecated; use {new}" in err
    ns_new = build_parser().parse_args(shlex.split(cmd) + [new, "3"])
    assert "deprecated" not in capsys.readouterr().err
    assert vars(ns_old).keys() == vars(ns_new).keys()
    assert {k: v for k, v in vars(ns_old).items() if k != "func"} == {k: v for k, v in vars(ns_new).items() if k != "func"}


def test_long_aliases_mean_the_same_flag():
    a = build_parser().parse_args(["solve", "--token-dim", "4", "--context-length", "7", "--train-prompts", "9",
                                   "--ridge", "0.5", "--inverse-temperature", "3", "--noise-std", "0.1"])
    b = build_parser().parse_args(["solve", "--D", "4", "--N", "7", "--P", "9", "--lam", "0.5", "--beta", "3",
                                   "--sigma-eps", "0.1"])
    assert {k: v for k, v in vars(a).items() if k != "func"} == {k: v for k, v in vars(b).items() if k != "func"}


def test_to_symbols_and_back():
    d = {"d": 3, "n_context": 5, "n_prompts": 7, "l2_strength": 0.1, "seed": 1}
    assert to_symbols(d) == {"D": 3, "N": 5, "P": 7, "lam": 0.1, "seed": 1}
    assert to_python(to_symbols(d)) == d
    assert list(to_symbols({"D": 1, "d": 2})) == ["D"]  # the symbol wins, no duplicate key


def test_act_name():
    assert act_name("z", 1) == "blocks.1.attn.hook_z"
    assert act_name("resid_pre", 0) == "blocks.0.hook_resid_pre"
    assert act_name("mlp_post", 2) == "blocks.2.mlp.hook_post"
    assert act_name("embed") == "hook_embed"
    from spinlens.errors import InvalidParameterError

    for bad in [("zz", 0), ("z", -1), ("z", None), ("embed", 0), ("z", True)]:
        with pytest.raises(InvalidParameterError):
            act_name(*bad)


def test_act_names_exist_on_the_transformer():
    from spinlens.models.transformer import Transformer, TransformerConfig
    from spinlens.vocabulary import ACT_KINDS

    model = Transformer(TransformerConfig(n_layers=2, n_heads=2, d_model=8, d_head=4, d_mlp=16, d_in=3, max_pos=6,
                                          split_qkv_input=True), rng=0)
    names = set(model.hook_dict) if hasattr(model, "hook_dict") else {n for n, _ in model.named_modules()}
    for kind, template in ACT_KINDS.items():
        name = act_name(kind, 1) if "{L}" in template else act_name(kind)
        assert name in names, name


def test_json_keys_are_symbols(tmp_path, capsys):
    assert main(["prompts", "--D", "2", "--N", "3", "--P", "4", "-o", str(tmp_path / "p.npz"), "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert {"D", "N", "P", "K"} <= set(rec) and not {"d", "n_context", "n_prompts"} & set(rec)
    assert main(["solve", "--D", "2", "--N", "3", "--P", "30", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert {"D", "N", "P", "lam", "beta"} <= set(rec)


# ---------------------------------------------------------------------------------------- bad input, 1 line
@pytest.fixture
def bad_dir(tmp_path, monkeypatch):
    """Malformed inputs of every class; the test runs inside this folder."""
    import torch
    from safetensors.torch import save_file

    from spinlens.models.checkpoint import save_checkpoint
    from spinlens.models.zoo import ZooConfig, build_model

    (tmp_path / "afile").write_text("a file\n")
    (tmp_path / "text.npz").write_text("text, not an npz\n")
    Zb = np.full((4, 3, 4), 1e300)
    Zb[:, -1, -1] = 0.0
    np.savez(tmp_path / "huge.npz", Z=Zb, y=np.full(4, 1e300))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    (tmp_path / "ids.txt").write_text("1 2 x\n")
    (tmp_path / "obs5.toml").write_text("[grid]\nN = 3\n[settings]\nobservables = 5\n")
    (tmp_path / "bin.toml").write_bytes(bytes(range(256)) * 2)
    (tmp_path / "vec_missing.yaml").write_text(
        "interventions:\n  - {type: add, hook: blocks.0.hook_resid_pre, vector: nothere.npy}\n")
    (tmp_path / "vec_obj.yaml").write_text("interventions:\n  - {type: add, hook: blocks.0.hook_resid_pre, vector: obj.npy}\n")
    (tmp_path / "emptydir").mkdir()
    ck = save_checkpoint(build_model(ZooConfig("sla", d=2), rng=0), tmp_path / "ck")

    def variant(name, edit):
        import shutil

        shutil.copytree(ck, tmp_path / name)
        edit(tmp_path / name)

    def cfg_edit(fn):
        def go(d):  # a folder without a manifest (as before manifests), so that the config schema speaks
            rec = json.loads((d / "config.json").read_text())
            fn(rec)
            (d / "config.json").write_text(json.dumps(rec))
            (d / "manifest.json").unlink(missing_ok=True)
        return go

    variant("ck_list", lambda d: (d / "config.json").write_text("[1, 2]"))
    variant("ck_unknown", cfg_edit(lambda r: r["config"].update(bogus=1)))
    variant("ck_missing", cfg_edit(lambda r: r["config"].pop("d")))
    variant("ck_noformat", cfg_edit(lambda r: r.pop("format")))
    variant("ck_foreign", lambda d: save_file({"foo": torch.zeros(3)}, str(d / "model.safetensors")))
    monkeypatch.chdir(tmp_path)
    return tmp_path


# (class, command line, text the one error line must contain)
HARDENING = [
    ("unwritable", "prompts --D 2 --N 3 --P 4 -o /proc/x/p.npz", "/proc/x/p.npz"),
    ("unwritable", "solve --D 2 --N 3 --P 10 --save /proc/x/r.npz", "'--save'"),
    ("unwritable", "train --D 2 --N 3 --P 8 --epochs 2 --out /proc/x", "'--out'"),
    ("unwritable", "theory curve --vary tau --from 0.1 --to 3 --num 5 --alpha 2 --out /proc/x", "'--out'"),
    ("unwritable", "theory diversity --D 2 --N 2 --P 10 --K 2 --out /proc/x", "'--out'"),
    ("unwritable", "theory phase --D 2 --N 3 --K 2 --P 20 --out /proc/x", "'--out'"),
    ("unwritable", "sweep --D 2 --N 3 --P 10 --out /proc/x", "'--out'"),
    ("unwritable", "reproduce fig4b --out /proc/x", "'--out'"),
    ("unwritable", "landscape --out /proc/x", "'--out'"),
    ("unwritable", "report emptydir --out /proc/x/r.html", "'--out'"),
    ("unwritable", "zoo train --arch sla --D 2 --N 3 --steps 2 --out /proc/x", "'--out'"),
    ("unwritable", "zoo figS8 --out /proc/x", "'--out'"),
    ("unwritable", "interp lens --planted regression --out /proc/x", "'--out'"),
    ("unwritable", "steer --out /proc/x", "'--out'"),
    ("unwritable", "pinpoint --out /proc/x", "'--out'"),
    ("unwritable", "merge --out /proc/x", "'--out'"),
    ("unwritable", "quantize --out /proc/x", "'--out'"),
    ("unwritable", "demo --out /proc/x", "'--out'"),
    ("unwritable", "train --D 2 --N 3 --P 8 --out ''", "'--out'"),
    ("huge", "prompts --P 99999999999999999999 --D 2 --N 3 -o p.npz", "--P"),
    ("huge", "prompts --D 99999999999 --N 3 --P 4 -o p.npz", "'--D'"),
    ("huge", "prompts --P 100000000 --D 100 --N 100 -o p.npz", "'--P'"),
    ("huge", "train --P 100000000 --D 100 --N 100 --out o", "'--P'"),
    ("huge", "train --D 2 --N 3 --P 8 --epochs 99999999999999999999 --out o", "--epochs"),
    ("huge", "sweep --seed 0:99999999999 --out o", "'seed'"),
    ("huge", "sweep --N 1:100:100000000 --out o", "'N'"),
    ("huge", "solve --steps 99999999999999 --method langevin", "'--steps'"),
    ("overflow", "solve --sigma-x 1e200", "'--sigma-x'"),
    ("overflow", "solve --sigma-eps 1e300", "'--sigma-eps'"),
    ("device", "train --D 2 --N 3 --P 8 --epochs 2 --device meta --out o", "'--device'"),
    ("device", "zoo train --arch sla --D 2 --N 3 --steps 2 --device vulkan --out o", "'--device'"),
    ("point_fn", "sweep --point-fn os:getcwd --D 2 --N 3 --P 5 --out o --no-progress", "'point_fn'"),
    ("point_fn", "sweep --point-fn os --D 2 --N 3 --P 5 --out o", "'point_fn'"),
    ("config", "sweep --config obs5.toml --out o", "'observables'"),
    ("config", "sweep --config bin.toml --out o", "'config'"),
    ("checkpoint", "zoo bridge ck_list", "config.json"),
    ("checkpoint", "zoo bridge ck_unknown", "bogus"),
    ("checkpoint", "zoo bridge ck_missing", "'d'"),
    ("checkpoint", "zoo bridge ck_foreign", "does not match"),
    ("checkpoint", "interp lens --checkpoint ck_list", "config.json"),
    ("spec", "steer --setting regression --spec vec_missing.yaml --out o", "nothere.npy"),
    ("spec", "steer --setting regression --spec vec_obj.yaml --out o", "'spec'"),
    ("spec", "steer --setting regression --spec obj.npy --out o", "'spec'"),
    ("ignored", "quantize --calib-tokens ids.txt --out o", "'--calib-tokens'"),
    ("ignored", "quantize --importance fisher --out o", "'--importance'"),
    ("ignored", "theory curve --vary tau --from 0.1 --to 3 --num 5 --alpha 2 --lam-lu 0,,0.1", "'lam_lu'"),
    ("ignored", "theory diversity --K 2,,4 --D 2 --N 2 --P 10", "'K'"),
    ("ignored", "pinpoint --n-random 0 --out o", "'n_random'"),
    ("ignored", "solve --method limit --K 3", "'--K'"),
    ("ignored", "zoo train --arch sla --D 2 --N 3 --P 8 --batch-size 99 --out o", "'--batch-size'"),
    ("ignored", "report emptydir", "'DIR'"),
    ("message", "solve --data text.npz", "not an .npz archive"),
    ("message", "zoo bridge emptydir", "'checkpoint'"),
    ("message", "zoo bridge ck_noformat", "no 'format' key"),
]


@pytest.mark.parametrize("kind,cmd,expected", HARDENING, ids=[f"{k}: {c}" for k, c, _ in HARDENING])
def test_bad_input_is_one_line_exit_2_nothing_written(bad_dir, capsys, kind, cmd, expected):
    before = sorted(str(p.relative_to(bad_dir)) for p in bad_dir.rglob("*"))
    code = _call(shlex.split(cmd))
    err = capsys.readouterr().err
    errors = [ln for ln in err.splitlines() if ": error:" in ln]
    assert code == 2, err
    assert "Traceback" not in err and "internal error" not in err
    assert len(errors) == 1 and err.rstrip().splitlines()[-1] == errors[0], err
    assert expected in errors[0], err
    assert sorted(str(p.relative_to(bad_dir)) for p in bad_dir.rglob("*")) == before


def test_hardening_table_covers_every_command():
    cmds = {c.split()[0] for _, c, _ in HARDENING}
    assert cmds >= {"prompts", "solve", "train", "theory", "sweep", "reproduce", "landscape", "report", "demo",
                    "zoo", "interp", "steer", "pinpoint", "merge", "quantize"}


# ----------------------------------------------------------------------------------- non-convergence rule
def test_non_finite_result_is_never_converged(bad_dir, capsys):
    code = main(["solve", "--data", "huge.npz", "--json"])
    cap = capsys.readouterr()
    rec = json.loads(cap.out)
    assert code == 3 and rec["converged"] is False and rec["message"]
    assert len(cap.err.strip().splitlines()) == 1 and "did not converge" in cap.err


@pytest.mark.parametrize("cmd", [
    "train --D 2 --N 3 --P 16 --epochs 20 --lr 1e6 --no-progress --out o_div",
    "zoo train --arch sla --D 2 --N 3 --P 16 --steps 20 --lr 1e8 --test-prompts 16 --no-progress --out o_zdiv",
])
def test_diverging_training_warns_and_exits_3(tmp_path, monkeypatch, capsys, cmd):
    monkeypatch.chdir(tmp_path)
    code = main(shlex.split(cmd))
    err = capsys.readouterr().err
    assert code == 3
    lines = [ln for ln in err.splitlines() if "warning" in ln]
    assert len(lines) == 1 and "training did not converge" in lines[0]
    out = Path(cmd.split("--out ")[1])
    if (out / "run.json").exists():
        run = json.loads((out / "run.json").read_text())
        assert run["summary"]["converged"] is False


def test_theory_follows_the_same_rule(capsys):
    code = main(["theory", "--alpha", "2", "--tau", "2", "--lam-lu", "1e308", "--json"])
    cap = capsys.readouterr()
    assert code == 3 and json.loads(cap.out)["converged"] is False and "did not converge" in cap.err
    assert main(["theory", "--alpha", "2", "--tau", "2", "--json"]) == 0


def test_divergence_rule():
    from spinlens.training import divergence_reason

    assert divergence_reason(0.5, 1.0) is None
    assert "non-finite" in divergence_reason(float("nan"), 1.0)
    assert "10 x" in divergence_reason(11.0, 1.0)


# --------------------------------------------------------------------------------------- internal errors
def test_unexpected_exception_is_one_line_exit_1_and_debug_shows_it(monkeypatch, capsys):
    import spinlens.cli.solve as solve_mod

    def boom(args):
        raise RuntimeError("kaboom")

    parser_factory = build_parser

    def patched():
        p = parser_factory()
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                action.choices["solve"].set_defaults(func=boom)
        return p

    monkeypatch.setattr("spinlens.cli.main.build_parser", patched)
    assert main(["solve"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: RuntimeError: kaboom" in err and "--debug" in err
    with pytest.raises(RuntimeError):
        main(["--debug", "solve"])
    monkeypatch.setenv("SPINLENS_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["solve"])
    assert solve_mod.run is not boom
