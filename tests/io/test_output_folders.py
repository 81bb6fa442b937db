"""Regression tests for the commands' output folders: a failing run never deletes or tears a folder,
a folder of other files is refused up front, --max-chars applies to every corpus."""

from __future__ import annotations

import pytest

from spinlens import io
from spinlens.cli.main import main


def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _user_folder(d):
    d.mkdir()
    (d / "notes.txt").write_text("mine")
    (d / "model.safetensors").write_bytes(b"from another tool")
    (d / "config.json").write_text('{"model_type": "gpt2"}')
    (d / "checkpoints").mkdir()
    (d / "checkpoints" / "keep").write_text("x")
    return d


@pytest.mark.parametrize("argv", [
    ["lm", "--corpus", "CORPUS", "--n-ctx", "512", "--steps", "2", "--no-progress"],
    ["train", "--D", "2", "--N", "3", "--P", "8", "--epochs", "1", "--no-progress"],
    ["zoo", "train", "--arch", "sla", "--D", "2", "--N", "3", "--steps", "1", "--test-prompts", "4", "--no-progress"],
])
def test_folder_of_other_files_refused_and_kept(tmp_path, capsys, argv):
    d = _user_folder(tmp_path / "d")
    (tmp_path / "c.txt").write_text("tiny corpus " * 50)
    before = _snapshot(d)
    code = main([a.replace("CORPUS", str(tmp_path / "c.txt")) for a in argv] + ["--out", str(d)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--force" in err[0] and "model.safetensors" in err[0]
    assert _snapshot(d) == before


def test_lm_that_fails_keeps_the_earlier_folder(tmp_path, capsys):
    d = tmp_path / "m"
    with io.folder_transaction(d, kind="lm") as stage:  # an earlier `spinlens lm` folder (its files faked)
        for name in ("model.safetensors", "config.json", "tokenizer.json", "heldout_tokens.npy", "checkpoints/step-1/w"):
            (stage / name).parent.mkdir(parents=True, exist_ok=True)
            (stage / name).write_text(name)
    before = _snapshot(d)
    (tmp_path / "c.txt").write_text("tiny corpus " * 50)  # too small for --n-ctx 512
    code = main(["lm", "--corpus", str(tmp_path / "c.txt"), "--n-ctx", "512", "--steps", "2", "--no-progress",
                 "--out", str(d)])
    assert code == 2, capsys.readouterr().err
    assert _snapshot(d) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt", "m"]  # no staging folder left


def test_force_keeps_user_files(tmp_path, capsys):
    d = _user_folder(tmp_path / "d")
    code = main(["train", "--D", "2", "--N", "3", "--P", "8", "--epochs", "1", "--no-progress", "--force",
                 "--out", str(d)])
    assert code in (0, 3), capsys.readouterr().err
    assert (d / "notes.txt").read_text() == "mine" and (d / "checkpoints" / "keep").read_text() == "x"
    from spinlens.models.checkpoint import load_model

    load_model(d)  # the model files were replaced by the new ones, listed in the manifest


def test_max_chars_applies_to_every_corpus(tmp_path):
    from spinlens.lm.corpus import load_corpus

    f = tmp_path / "c.txt"
    f.write_text("abcdefghij" * 500)
    assert len(load_corpus(str(f), max_chars=1200)) == 1200
    assert len(load_corpus(str(f), max_chars=None)) == 5000
    assert len(load_corpus("pydoc-topics", max_chars=1500)) == 1500


@pytest.mark.parametrize("flags,code", [(["--D", "7"], 2), (["--N", "9"], 2), (["--P", "5"], 2), (["--D", "3"], 0),
                                        ([], 0)])
def test_flags_that_contradict_data_are_refused(tmp_path, capsys, flags, code):
    assert main(["prompts", "--D", "3", "--N", "4", "--P", "20", "-o", str(tmp_path / "p.npz")]) == 0
    got = main(["solve", "--data", str(tmp_path / "p.npz"), "--lam", "0.1", *flags])
    err = capsys.readouterr().err
    assert got == code, err
    if code == 2:
        assert "contradicts the --data file" in err


def test_finetune_follows_the_divergence_rule():
    import numpy as np
    import torch

    from spinlens.lm.experiments import finetune
    from spinlens.models.transformer import Transformer, TransformerConfig

    m = Transformer(TransformerConfig(n_layers=1, n_heads=2, d_model=8, max_pos=9, input_kind="tokens", d_vocab=11),
                    rng=0)
    ids = torch.as_tensor(np.random.default_rng(0).integers(0, 11, 500))
    bad, good = [], []
    finetune(m, ids, steps=3, lr=1e308, diverged=bad, rng=0)
    finetune(m, ids, steps=3, lr=1e-3, diverged=good, rng=0)
    assert len(bad) == 1 and "fine-tuning" in bad[0] and good == []
