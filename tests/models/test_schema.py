"""The checkpoint schema (spinlens.models.schema) and the checks load_model runs before building."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spinlens.errors import InvalidParameterError
from spinlens.models import checkpoint as ck
from spinlens.models import schema
from spinlens.models.transformer import Transformer, TransformerConfig
from spinlens.models.zoo import ZooConfig, build_model

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                    max_leaves=10)


def _value(spec):
    typ, low, high, nullable = spec
    if typ == "int":
        s = st.integers(low, min(high, 64))
    elif typ == "float":
        s = st.floats(0.1, 10.0)
    elif typ == "bool":
        s = st.booleans()
    else:
        s = st.sampled_from(high)
    return s | st.none() if nullable else s


def _valid_zoo():
    fields = {k: _value(v) for k, v in schema.ZOO_FIELDS.items() if k not in ("arch", "d")}
    return st.fixed_dictionaries({"arch": st.sampled_from(schema.ZOO_FIELDS["arch"][2]), "d": st.integers(1, 6)},
                                 optional=fields)


@settings(max_examples=200, deadline=None)
@given(cfg=_valid_zoo())
def test_schema_accepts_exactly_what_zoo_config_accepts(cfg):
    """A config the schema passes builds (ZooConfig agrees); one it refuses is refused in one line."""
    try:
        schema.validate_record({"format": schema.ZOO_FORMAT, "config": cfg}, "'x'")
    except InvalidParameterError as exc:
        assert "\n" not in str(exc)
        return
    try:
        ZooConfig.from_dict(cfg).resolve()
    except InvalidParameterError:
        pass  # ZooConfig's own cross-field checks (d_model divisible by n_heads) stay its job
    assert schema.estimate_params(schema.ZOO_FORMAT, cfg) > 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(sorted(schema.TRANSFORMER_FIELDS)), value=JSON)
def test_any_value_is_valid_or_one_line(key, value):
    """Whatever JSON value a field holds: accepted only if of the field's type and range, else one line."""
    cfg = TransformerConfig(n_layers=1, n_heads=2, d_model=8, max_pos=9, d_in=3).to_dict()
    cfg[key] = value
    spec = schema.TRANSFORMER_FIELDS[key]
    try:
        schema.validate_config(schema.TRANSFORMER_FORMAT, cfg, "'x'")
        ok = True
    except InvalidParameterError as exc:
        assert "\n" not in str(exc) and (key in str(exc) or "d_in" in str(exc) or "d_vocab" in str(exc)
                                         or "d_model" in str(exc))
        ok = False
    typ, low, high, nullable = spec
    if ok:
        if value is None:
            assert nullable
        elif typ == "int":
            assert type(value) is int and low <= value <= high
        elif typ == "float":
            assert type(value) in (int, float) and math.isfinite(value) and low <= value <= high
        elif typ == "bool":
            assert type(value) is bool
        else:
            assert value in high


@settings(max_examples=100, deadline=None)
@given(record=JSON)
def test_any_record_is_valid_or_one_line(record):
    try:
        schema.validate_record(record, "'x'")
    except InvalidParameterError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=60, deadline=None)
@given(n_layers=st.integers(0, 3), n_heads=st.integers(1, 3), d_head=st.integers(1, 4), d_vocab=st.integers(2, 20),
       max_pos=st.integers(1, 9), mlp=st.booleans())
def test_param_estimate_bounds_the_real_count(n_layers, n_heads, d_head, d_vocab, max_pos, mlp):
    cfg = TransformerConfig(n_layers=n_layers, n_heads=n_heads, d_model=n_heads * d_head, d_mlp=None if mlp else 0,
                            max_pos=max_pos, input_kind="tokens", d_vocab=d_vocab)
    real = Transformer(cfg, rng=0).n_params()
    est = schema.estimate_params(schema.TRANSFORMER_FORMAT, cfg.to_dict())
    assert real <= est <= 2 * real + 100


def _lm_folder(tmp_path):
    cfg = TransformerConfig(n_layers=1, n_heads=2, d_model=8, max_pos=9, input_kind="tokens", d_vocab=11)
    m = Transformer(cfg, rng=0)
    return ck.save_model(m, tmp_path / "m"), m


def _rewrite(folder, **edits):
    rec = json.loads((folder / "config.json").read_text())
    for k, v in edits.items():
        if k in rec:
            rec[k] = v
        else:
            rec["config"][k] = v
    (folder / "config.json").write_text(json.dumps(rec))
    (folder / "manifest.json").unlink()  # a folder without a manifest: the schema is the only guard


@pytest.mark.parametrize("edit,match", [
    ({"d_model": 8.5}, "'d_model': 8.5"), ({"causal": "yes"}, "'causal': 'yes'"),
    ({"n_layers": 1000000}, "'n_layers': 1000000"), ({"d_vocab": 10**12}, "'d_vocab'"),
    ({"format_version": 99}, "format_version 99.*upgrade"), ({"surprise": 1}, "unknown config keys"),
    ({"d_model": 16}, "tensor 'W_E' has shape"),
])
def test_bad_configs_are_one_line_before_building(tmp_path, edit, match):
    folder, _ = _lm_folder(tmp_path)
    _rewrite(folder, **edit)
    with pytest.raises(InvalidParameterError, match=match):
        ck.load_model(folder)


def test_memory_estimate_refuses_before_allocation(tmp_path):
    folder, _ = _lm_folder(tmp_path)
    _rewrite(folder, d_model=60000, d_vocab=4_000_000)
    with pytest.raises(InvalidParameterError, match="GiB"):
        ck.load_model(folder, max_bytes=1 << 30)


def _retype(folder, fn):
    from safetensors.torch import load_file, save_file

    meta = ck._safetensors_meta(folder / ck.WEIGHTS_FILE)
    t = fn(load_file(str(folder / ck.WEIGHTS_FILE)))
    save_file(t, str(folder / ck.WEIGHTS_FILE), metadata=meta)
    (folder / "manifest.json").unlink(missing_ok=True)


@pytest.mark.parametrize("dtype", [torch.int8, torch.bool, torch.float16, torch.float64])
def test_no_silent_casts(tmp_path, dtype):
    folder, _ = _lm_folder(tmp_path)
    _retype(folder, lambda t: {k: v.to(dtype) for k, v in t.items()})
    with pytest.raises(InvalidParameterError, match="has dtype .*no silent casts"):
        ck.load_model(folder)


def test_nonfinite_weights_refused_unless_allowed(tmp_path):
    folder, m = _lm_folder(tmp_path)

    def poison(t):
        t["W_E"] = t["W_E"].clone()
        t["W_E"][0, 0] = float("nan")
        return t

    _retype(folder, poison)
    with pytest.raises(InvalidParameterError, match="'W_E' holds NaN"):
        ck.load_model(folder)
    assert torch.isnan(ck.load_model(folder, allow_nonfinite=True).W_E).any()


def test_manifest_names_the_file_that_does_not_belong(tmp_path):
    folder, _ = _lm_folder(tmp_path)
    other = ck.save_model(build_model(ZooConfig("fla", d=3), rng=0), tmp_path / "other")
    (folder / ck.WEIGHTS_FILE).write_bytes((other / ck.WEIGHTS_FILE).read_bytes())
    with pytest.raises(InvalidParameterError, match=r"model\.safetensors.*SHA-256"):
        ck.load_model(folder)


def test_heldout_ids_checked(tmp_path):
    from spinlens.lm.train import HELDOUT_FILE, load_heldout

    np.save(tmp_path / HELDOUT_FILE, np.array([0, 5, 11]))
    assert load_heldout(tmp_path, vocab_size=12).tolist() == [0, 5, 11]
    with pytest.raises(InvalidParameterError, match="token id 11, outside the vocabulary"):
        load_heldout(tmp_path, vocab_size=11)
    np.save(tmp_path / HELDOUT_FILE, np.array([0.5, 1.0]))
    with pytest.raises(InvalidParameterError, match="integer token ids"):
        load_heldout(tmp_path)
