"""One model format: every model spinlens trains round-trips through spinlens.models.checkpoint."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from spinlens.errors import InvalidParameterError
from spinlens.models import checkpoint as ck
from spinlens.models.linear_attention import (
    MergedLinearAttention,
    SeparateLinearAttention,
)
from spinlens.models.transformer import Transformer, TransformerConfig
from spinlens.models.zoo import ARCH_NAMES, ZooConfig, build_model


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _Z(d, n=6, batch=5, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    Z = torch.randn(batch, d + 1, n + 1, generator=g, dtype=dtype)
    Z[:, -1, -1] = 0
    return Z


@pytest.mark.parametrize("arch", ARCH_NAMES)
def test_zoo_round_trip(tmp_path, arch):
    m = build_model(ZooConfig(arch, d=3, n_layers=1 if arch == "tf" else None, d_model=8 if arch == "tf" else None),
                    rng=1)
    folder = ck.save_model(m, tmp_path / arch, metadata={"distribution": {"d": 3, "n_context": 6}})
    rec = json.loads((folder / "config.json").read_text())
    assert rec["format"] == ck.ZOO_FORMAT and rec["format_version"] == 1 and rec["config"]["arch"] == arch
    m2 = ck.load_model(folder)
    assert type(m2) is type(m) and _same_weights(m, m2)
    Z = _Z(3, dtype=m.config.torch_dtype)
    torch.testing.assert_close(m(Z), m2(Z), rtol=0, atol=0)
    assert ck.read_checkpoint(folder).n_context() == 6


@pytest.mark.parametrize("kind", ["regression", "tokens"])
def test_transformer_round_trip(tmp_path, kind):
    kw = dict(d_in=4) if kind == "regression" else dict(d_vocab=11)
    m = Transformer(TransformerConfig(n_layers=2, n_heads=2, d_model=8, d_mlp=16, max_pos=9, input_kind=kind, **kw),
                    rng=0)
    folder = ck.save_model(m, tmp_path / kind, metadata={"task": kind})
    (folder / "notes.txt").write_text("{}")  # other files in the folder are fine; model files must be in the manifest
    assert json.loads((folder / "config.json").read_text())["format"] == ck.TRANSFORMER_FORMAT
    m2 = ck.load_model(folder)
    assert isinstance(m2, Transformer) and _same_weights(m, m2) and m2.cfg == m.cfg
    assert ck.read_metadata(folder) == {"task": kind}
    # the single-file save and load of the registry
    from spinlens.models.checkpoint import load_transformer, save_transformer

    save_transformer(m, tmp_path / "old")
    assert _same_weights(m, load_transformer(tmp_path / "old"))


@pytest.mark.parametrize("cls,arch", [(MergedLinearAttention, "sla"), (SeparateLinearAttention, "sla-separate")])
def test_linear_attention_saved_as_zoo_sla(tmp_path, cls, arch):
    m = cls(3, rng=0)
    folder = ck.save_model(m, tmp_path / arch)
    m2 = ck.load_model(folder)
    assert m2.config.arch == arch
    Z = _Z(3, dtype=torch.float64)
    torch.testing.assert_close(m(Z), m2(Z))
    torch.testing.assert_close(m.effective_W(), m2.merged_weights())


def test_wrong_kind_and_bad_input(tmp_path):
    folder = ck.save_model(build_model(ZooConfig("fla", d=2), rng=0), tmp_path / "fla")
    with pytest.raises(InvalidParameterError, match="needs a Transformer"):
        ck.load_model(folder, kind=Transformer)
    with pytest.raises(InvalidParameterError, match="does not exist"):
        ck.load_model(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidParameterError, match="without them"):
        ck.load_model(tmp_path / "empty")
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(InvalidParameterError, match="--model"):
        ck.load_model(tmp_path / "hf")
    with pytest.raises(InvalidParameterError, match="spinlens model"):
        ck.save_model(torch.nn.Linear(2, 2), tmp_path / "lin")
    with pytest.raises(InvalidParameterError, match="JSON"):
        ck.save_model(build_model(ZooConfig("fla", d=2), rng=0), tmp_path / "x", metadata={"f": object()})


def test_legacy_layouts_load_with_warning(tmp_path):
    from safetensors.torch import save_file

    m = Transformer(TransformerConfig(n_layers=1, n_heads=1, d_model=4, d_mlp=0, max_pos=5, d_in=3), rng=0)
    # the single-file format the edit commands wrote before
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(tmp_path / "old.safetensors"),
              metadata={"spinlens_transformer_config": json.dumps(m.cfg.to_dict())})
    with pytest.warns(FutureWarning, match="deprecated"):
        m2 = ck.load_model(tmp_path / "old.safetensors")
    assert _same_weights(m, m2)
    # the model/ subfolder zoo train wrote before
    z = build_model(ZooConfig("fla", d=2), rng=0)
    ck.save_model(z, tmp_path / "run" / "model")
    with pytest.warns(FutureWarning):
        assert _same_weights(z, ck.load_model(tmp_path / "run"))
    # the current layout warns about nothing
    ck.save_model(z, tmp_path / "new")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ck.load_model(tmp_path / "new")


def test_is_checkpoint_tells_hf_folders_apart(tmp_path):
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    assert not ck.is_checkpoint(tmp_path / "hf")
    assert not ck.is_checkpoint(tmp_path / "missing")
    ck.save_model(build_model(ZooConfig("fla", d=2), rng=0), tmp_path / "ours")
    assert ck.is_checkpoint(tmp_path / "ours")


@pytest.mark.parametrize("cls", [MergedLinearAttention, SeparateLinearAttention])
def test_older_train_folder_loads_as_zoo_sla(tmp_path, cls):
    from safetensors.torch import save_file

    m = cls(3, rng=0)
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(tmp_path / "weights.safetensors"))
    (tmp_path / "run.json").write_text(json.dumps({"command": "train", "N": 7, "weight_decay": 0.02}))
    c = ck.read_checkpoint(tmp_path)
    assert c.legacy and c.n_context() == 7 and c.metadata["weight_decay"] == 0.02
    with pytest.warns(FutureWarning):
        m2 = ck.load_model(tmp_path)
    torch.testing.assert_close(m.effective_W(), m2.merged_weights())
    Z = _Z(3, dtype=torch.float64)
    torch.testing.assert_close(m(Z), m2(Z))
