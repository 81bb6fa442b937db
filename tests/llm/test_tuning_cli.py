"""``spinlens pinpoint / merge --model DIR`` (the hf setting) on a tiny random Llama saved as a Hugging Face folder."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("transformers")

from spinlens.cli.main import main  # noqa: E402

pytestmark = pytest.mark.usefixtures("audit_figures")


@pytest.fixture(scope="module")
def folders(tmp_path_factory, char_tok):
    from spinlens.interp.hf import tiny_hf

    root = tmp_path_factory.mktemp("hf")
    tok = char_tok
    out = {}
    for name, n_layers in (("base", 2), ("other", 3)):
        m = tiny_hf("llama", n_layers=n_layers, n_heads=4, n_kv_heads=2, d_model=16, d_vocab=len(tok), max_pos=256,
                    rng=0)
        m.hf.save_pretrained(str(root / name))
        tok.save_pretrained(str(root / name))
        out[name] = root / name
    return out


def _json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_pinpoint_hf_writes_curves_models_and_json(folders, tmp_path, capsys):
    out = tmp_path / "pin"
    argv = ["pinpoint", "--model", str(folders["base"]), "--task", "arithmetic", "--methods", "located", "full",
            "--n-seeds", "1", "--steps", "2", "--eval-every", "1", "--k", "2", "--k-mlps", "1", "--lr", "1e-2",
            "--batch-size", "4", "--no-progress", "--out", str(out), "--json"]
    assert main(argv) == 0
    res = _json(capsys)
    assert set(res["methods"]) == {"located", "full"}
    for m in ("located", "full"):
        keys = res["methods"][m]
        assert {"gain_heldout_numbers", "gain_second_format", "perplexity", "ioi_logit_diff", "recall_accuracy",
                "icl_accuracy", "d_perplexity"} <= set(keys)
        assert (out / "models" / m / "seed0" / "config.json").is_file()
    assert (out / "pinpoint_curves.csv").is_file() and (out / "pinpoint_cost_vs_gain.png").is_file()
    assert json.loads((out / "run.json").read_text())["summary"]["verdict"] == res["verdict"]
    # the merge of the two experts (hf setting of merge): all three methods, kept gain per expert
    m_out = tmp_path / "merge"
    assert main(["merge", "--model", str(folders["base"]), "--models", str(out / "models" / "located" / "seed0"),
                 str(out / "models" / "full" / "seed0"), "--out", str(m_out), "--json"]) == 0
    mres = _json(capsys)
    assert set(mres["methods"]) == {"task_arithmetic", "ties", "module"}
    assert "kept_0" in mres["methods"]["ties"] and (m_out / "models" / "merge-ties" / "config.json").is_file()


@pytest.mark.parametrize("argv, needle", [
    (["pinpoint", "--task", "arithmetic", "--setting", "regression"], "--task"),
    (["merge", "--model", "BASE", "--models", "BASE", "OTHER"], "another architecture"),
    (["merge", "--model", "BASE", "--models", "BASE"], "at least two"),
])
def test_bad_input_is_one_line(folders, tmp_path, capsys, argv, needle):
    argv = [str(folders["base"]) if a == "BASE" else str(folders["other"]) if a == "OTHER" else a for a in argv]
    out = tmp_path / "o"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert not out.exists()
