"""`spinlens steer | pinpoint | merge | quantize` default to the language-model setting: the default LM trained
(here with --base-steps 20) and cached in OUT/base, the headline of each experiment recomputed from the files
the command writes, the regression setting behind --setting regression, and the one-line errors for flags of
the other setting. Importance of heads on a token model checked against finite differences."""

import csv
import json
import statistics

import numpy as np
import pytest
import torch

from spinlens.cli.main import main

pytestmark = pytest.mark.usefixtures("audit_figures")

FAST = ["--base-steps", "20", "--n-seeds", "2", "--no-progress", "--json"]


def _json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _rows(path):
    return list(csv.DictReader(open(path)))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One output folder: pinpoint (trains the default LM into OUT/base), then quantize (reuses it)."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("edit-lm") / "out"
    res = {}
    for name, extra in (("pinpoint", ["--k", "1", "--steps", "2", "--n-random", "2"]),
                        ("quantize", ["--budgets", "3.4", "--uniform-bits", "3", "--bits", "2", "3", "4",
                                      "--n-random", "1"]),
                        ("merge", ["--steps", "3"]),
                        ("steer", ["--strengths", "0", "0.3", "1"])):
        buf = io.StringIO()
        t_before = (out / "base" / "model.safetensors").stat().st_mtime_ns if (out / "base").exists() else None
        with contextlib.redirect_stdout(buf):
            assert main([name, *FAST, *extra, "--out", str(out)]) == 0, name
        res[name] = json.loads(buf.getvalue().strip().splitlines()[-1])
        res[f"{name}_mtime_before"] = t_before
    return out, res


def test_default_trains_the_default_lm_and_caches_it(runs):
    from spinlens.lm.config import LMConfig
    from spinlens.lm.train import load_lm

    out, res = runs
    for f in ("pinpoint_lm.csv", "pinpoint_lm.nc", "pinpoint_lm.png", "pinpoint_lm.pdf", "quantize_lm.csv",
              "quantize_lm.png", "run.json", "base/model.safetensors", "base/tokenizer.json", "base/heldout_tokens.npy"):
        assert (out / f).exists(), f
    _, _, meta = load_lm(out / "base")
    assert meta["lm_config"] == LMConfig(steps=20, seed=0).to_dict()  # `spinlens lm` defaults, --base-steps, --seed
    assert meta["corpus"] == "stdlib-docs"
    assert res["pinpoint"]["setting"] == "lm" and res["pinpoint"]["model"] == str(out / "base")
    # the second command found the cache and did not retrain
    assert res["quantize_mtime_before"] == (out / "base" / "model.safetensors").stat().st_mtime_ns
    run = json.loads((out / "run.json").read_text())
    assert run["summary"]["headline"]["text"] == res["steer"]["headline"]["text"]  # the last command run there


def test_pinpoint_headline_from_the_written_dataset(runs):
    out, res = runs
    rows = _rows(out / "pinpoint_lm.csv")
    before = float(next(r for r in rows if r["method"] == "before")["target_loss"])
    gain = {}
    for r in rows:
        if r["method"] != "before":
            gain.setdefault(r["method"], []).append(before - float(r["target_loss"]))
    assert set(gain) == {"importance_heads", "induction_heads", "random_heads", "full"}
    h = res["pinpoint"]["headline"]
    for m, v in gain.items():
        assert h["target_gain"][m]["mean"] == pytest.approx(statistics.mean(v), abs=1e-9)
        assert h["target_gain"][m]["sd"] == pytest.approx(statistics.stdev(v), abs=1e-9)
        assert h["target_gain"][m]["n"] == (4 if m == "random_heads" else 2)
    # beats_random: the importance heads against that seed's mean of random heads, on every seed
    by_seed = {}
    for r in rows:
        if r["method"] in ("importance_heads", "random_heads"):
            by_seed.setdefault(r["seed"], {}).setdefault(r["method"], []).append(before - float(r["target_loss"]))
    wins = [statistics.mean(d["importance_heads"]) > statistics.mean(d["random_heads"]) for d in by_seed.values()]
    assert h["beats_random"] == all(wins)
    assert h["text"].startswith("pinpoint:") and "\n" not in h["text"]
    # the verdict (spinlens.verdict): importance heads' mean gain against the random heads' band
    from spinlens.verdict import compare

    v = compare(gain["importance_heads"], gain["random_heads"], what="x", better="higher")
    assert h["verdict"]["is_effect"] == v.is_effect and h["verdict"]["effect"] == pytest.approx(v.effect, abs=1e-9)
    assert h["verdict"]["line"].startswith("verdict: importance-chosen heads vs random heads, ")


def test_quantize_headline_recomputed_from_the_allocation(runs):
    """The guided 3.4-bit perplexity of the headline, recomputed: the allocation written in the CSV applied to the
    cached base, evaluated on the held-out windows that the seed leaves out of calibration."""
    from spinlens.edit.quantization import quantize_model
    from spinlens.lm.analysis import heldout_windows
    from spinlens.lm.data import token_losses
    from spinlens.lm.train import load_lm

    out, res = runs
    model, tok, _ = load_lm(out / "base")
    val = heldout_windows(model, tok, out / "base")
    rows = [r for r in _rows(out / "quantize_lm.csv") if r["scheme"] == "guided_3.4"]
    ppl = []
    for r in rows:
        perm = np.random.default_rng(int(r["seed"])).permutation(len(val))
        test = val[perm[min(16, len(val) // 2):]]
        q = quantize_model(model, json.loads(r["bits_json"]), group_size=32)
        ppl.append(float(np.exp(token_losses(q, test).mean())))
        assert ppl[-1] == pytest.approx(float(r["perplexity"]), rel=1e-5)
    h = res["quantize"]["headline"]
    assert h["budget"] == 3.4 and h["uniform_bits"] == 3
    assert h["guided"]["mean"] == pytest.approx(statistics.mean(ppl), rel=1e-5)
    assert h["guided"]["sd"] == pytest.approx(statistics.stdev(ppl), rel=1e-3, abs=1e-9)


@pytest.mark.parametrize("argv,flag", [
    (["steer", "--D", "3"], "--D"),
    (["steer", "--d", "3"], "--D"),  # the old spelling: a deprecation warning, then the same error
    (["steer", "--spec", "spec.yaml"], "--spec"),
    (["pinpoint", "--target", "noisy"], "--target"),
    (["merge", "--tasks", "corr", "noisy"], "--tasks"),
    (["quantize", "--n-context", "5"], "--n"),
    (["steer", "--setting", "regression", "--token-class", "digit"], "--token-class"),
    (["merge", "--setting", "regression", "--domains", "a", "b"], "--domains"),
])
def test_flags_of_the_other_setting_are_refused(argv, flag, tmp_path, capsys):
    out = tmp_path / "o"
    assert main([*argv, "--out", str(out)]) == 2
    err = "\n".join(ln for ln in capsys.readouterr().err.strip().splitlines() if "deprecated" not in ln)
    assert len(err.splitlines()) == 1 and "setting" in err and flag.lower() in err.lower(), err
    if "--setting" not in argv:
        assert "--setting regression" in err
    assert not out.exists()  # refused before any work


def test_setting_contradicting_the_checkpoint(tmp_path, capsys):
    from spinlens.edit.base import pretrained_base

    pretrained_base(2, 4, steps=1, path=tmp_path / "reg", rng=0)
    assert main(["quantize", "--setting", "lm", "--checkpoint", str(tmp_path / "reg")]) == 2
    err = capsys.readouterr().err.strip()
    assert "regression model" in err and len(err.splitlines()) == 1
    # --base-steps trains the default base only: with a given model it would be silently ignored, so it is refused
    for setting in ([], ["--setting", "regression"]):
        assert main(["pinpoint", *setting, "--checkpoint", str(tmp_path / "reg"), "--base-steps", "5",
                     "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip()
        assert "--base-steps" in err and len(err.splitlines()) == 1
        assert not (tmp_path / "o").exists()


def test_steer_headline_rule():
    """The chosen strength: the largest whose mean loss rises by at most 0.5 nats over strength 0."""
    import xarray as xr

    from spinlens.lm.experiments import headline

    s = np.array([0, 1, 2, 4, 0, 1, 2, 4], dtype=float)
    loss = np.array([3.0, 3.1, 3.4, 4.0, 3.0, 3.2, 3.5, 4.2])
    cp = np.array([0.1, 0.2, 0.3, 0.6, 0.12, 0.22, 0.34, 0.5])
    ds = xr.Dataset({"strength": ("run", s), "class_prob": ("run", cp), "loss": ("run", loss)},
                    coords={"run": np.arange(8), "seed": ("run", [0] * 4 + [1] * 4), "level": ("run", ["activation"] * 8)},
                    attrs={"token_class": "capitalised"})
    h = headline("steer", ds)
    assert h["strength"] == 2.0
    assert h["class_prob"]["mean"] == pytest.approx(0.32) and h["base_class_prob"]["mean"] == pytest.approx(0.11)
    assert h["class_prob"]["sd"] == pytest.approx(np.std([0.3, 0.34], ddof=1))


def test_head_importance_of_a_token_model_is_its_first_order_ablation():
    """grad × activation of the summed next-token loss = −dℓ/dt of the head output scaled by t, at t = 1
    (central finite difference per window)."""
    from spinlens.edit.importance import attribution_importance
    from spinlens.lm.config import LMConfig
    from spinlens.models.transformer import Transformer
    from spinlens.vocabulary import act_name

    cfg = LMConfig(n_layers=2, n_heads=2, d_model=16, n_ctx=8)
    model = Transformer(cfg.transformer_config(40), rng=3).double()
    model.eval()
    w = torch.as_tensor(np.random.default_rng(0).integers(0, 40, size=(5, 9)))
    imp = attribution_importance(model, w, None, kind="head", absolute=False)

    def loss(L, h, t):
        def hook(a, hook):
            a = a.clone()
            a[:, :, h] = a[:, :, h] * t
            return a

        with torch.no_grad(), model.hooks([(act_name("result", L), hook)]):
            lg = model(w[:, :-1])
        ce = torch.nn.functional.cross_entropy(lg.reshape(-1, 40), w[:, 1:].reshape(-1), reduction="none")
        return ce.reshape(5, 8).sum(1).numpy()

    eps = 1e-5
    for L in range(2):
        for h in range(2):
            fd = -(loss(L, h, 1 + eps) - loss(L, h, 1 - eps)) / (2 * eps)
            assert float(imp.sel(layer=L, head=h)) == pytest.approx(fd.mean(), rel=1e-6, abs=1e-9)


def test_without_out_the_default_lm_is_trained_in_memory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["steer", "--base-steps", "20", "--n-seeds", "1", "--strengths", "0", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert "in memory" in out[0] and out[-2].startswith("steer: P(next token capitalised)")
    assert out[-1].startswith("verdict: steered (strength 1) vs unsteered model, P(next token capitalised): ")
    assert not any(tmp_path.iterdir())  # nothing written


def test_merge_and_steer_headlines_from_the_written_datasets(runs):
    out, res = runs
    rows = _rows(out / "merge_lm.csv")
    base = next(r for r in rows if r["method"] == "base")
    ft = {(r["seed"], r["method"]): r for r in rows if r["method"].startswith("finetune_")}
    h = res["merge"]["headline"]
    a, b = h["domains"]
    for m in ("task_arithmetic_0.5", "ties"):
        for dom, ftm in ((a, f"finetune_{a}"), (b, f"finetune_{b}")):
            share = [(float(base[f"loss_{dom}"]) - float(r[f"loss_{dom}"]))
                     / (float(base[f"loss_{dom}"]) - float(ft[(r["seed"], ftm)][f"loss_{dom}"]))
                     for r in rows if r["method"] == m]
            assert h["share_kept"][m][dom]["mean"] == pytest.approx(statistics.mean(share), rel=1e-6, abs=1e-9)
    assert h["best"] in h["share_kept"] and isinstance(h["beats_single_fine_tunes"], bool)
    rows = [r for r in _rows(out / "steer_lm.csv") if r["level"] == "activation"]
    h = res["steer"]["headline"]
    loss = {s: statistics.mean(float(r["loss"]) for r in rows if float(r["strength"]) == s) for s in (0.0, 0.3, 1.0)}
    ok = [s for s in (0.3, 1.0) if loss[s] - loss[0.0] <= 0.5]
    assert h["strength"] == (max(ok) if ok else 0.3)
    cp = [float(r["class_prob"]) for r in rows if float(r["strength"]) == h["strength"]]
    assert h["class_prob"]["mean"] == pytest.approx(statistics.mean(cp), rel=1e-9)


def test_cached_default_lm_of_another_text_is_retrained(runs, tmp_path, monkeypatch):
    """The cache in OUT/base is reused only when it was trained on this machine's `stdlib-docs` text (its SHA-256):
    after a Python upgrade the docs differ, and a stale model must not be reused."""
    import shutil

    from spinlens.lm import experiments as E

    out, _ = runs
    for stale in (False, True):
        dst = tmp_path / f"stale-{stale}"
        shutil.copytree(out / "base", dst / "base")
        if stale:
            cfg = json.loads((dst / "base" / "config.json").read_text())
            cfg["metadata"]["corpus_sha256"] = "0" * 16
            (dst / "base" / "config.json").write_text(json.dumps(cfg))
        calls = []

        def fake_train(*a, **k):
            calls.append(k.get("out"))
            raise KeyboardInterrupt  # stop here: retraining was chosen

        monkeypatch.setattr("spinlens.lm.train.train_lm", fake_train)
        if stale:
            with pytest.raises(KeyboardInterrupt):
                E.default_lm(dst / "base", base_steps=20, seed=0)
            assert calls == [dst / "base"]
        else:
            assert E.default_lm(dst / "base", base_steps=20, seed=0)[-1] is True and calls == []  # reused
