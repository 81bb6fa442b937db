"""The one schema of a spinlens model folder's ``config.json``: checked before anything is built.

`validate_record` checks the whole record (format tag, a known ``format_version``, the architecture config:
every key known, every value of its type and inside its range); `estimate_bytes` bounds the memory the
model needs, so that an absurd config (``n_layers: 1000000``) is refused before any layer is built;
`check_tensors` compares the stored tensors' names, shapes and dtypes with the model the config builds,
exactly (no silent casts); `check_finite` refuses NaN/inf weights. Every failure is one
`~spinlens.errors.InvalidParameterError` line naming the file and the field.

This module imports no torch: the schema is plain Python (the property-based tests of
tests/models/test_schema.py drive it with random records).
"""

from __future__ import annotations

import math

from spinlens.errors import InvalidParameterError

TRANSFORMER_FORMAT = "spinlens-transformer/1"
ZOO_FORMAT = "spinlens-zoo/1"
FORMATS = (TRANSFORMER_FORMAT, ZOO_FORMAT)
FORMAT_VERSION = 1  # the config.json layout this version writes and the newest it reads

_ACT = ("gelu", "relu", "silu", "tanh", "identity")
_ATTN = ("softmax", "linear")
_INPUT = ("regression", "tokens")
_POS = ("learned", "none")
_DTYPES = ("float32", "float64")
_ARCHS = ("sla", "sla-separate", "fla", "mhla", "sa", "tf")
WIDTH = 1 << 16  # widths (d_model, d_head, d, d_in) at most 65536
#: field -> (type, low, high or choices, may be None)
TRANSFORMER_FIELDS = {
    "n_layers": ("int", 0, 1024, False), "n_heads": ("int", 1, 4096, False), "d_model": ("int", 1, WIDTH, False),
    "d_head": ("int", 1, WIDTH, True), "d_mlp": ("int", 0, 1 << 18, True), "act": ("choice", None, _ACT, False),
    "layernorm": ("bool", None, None, False), "causal": ("bool", None, None, False),
    "attention": ("choice", None, _ATTN, False), "max_pos": ("int", 1, 1 << 20, False),
    "positional": ("choice", None, _POS, False), "input_kind": ("choice", None, _INPUT, False),
    "d_in": ("int", 2, WIDTH, True), "d_vocab": ("int", 2, 1 << 22, True),
    "split_qkv_input": ("bool", None, None, False), "attn_bias": ("bool", None, None, False),
    "mlp_bias": ("bool", None, None, False), "init_scale": ("float", 0.0, 1e6, False),
    "dtype": ("choice", None, _DTYPES, False),
}
ZOO_FIELDS = {
    "arch": ("choice", None, _ARCHS, False), "d": ("int", 1, WIDTH, False), "n_heads": ("int", 1, 4096, True),
    "d_head": ("int", 1, WIDTH, True), "n_layers": ("int", 1, 1024, True), "d_model": ("int", 1, WIDTH, True),
    "d_mlp": ("int", 0, 1 << 18, True), "causal": ("bool", None, None, False),
    "positional": ("choice", None, _POS, False), "max_pos": ("int", 2, 1 << 20, False),
    "layernorm": ("bool", None, None, False), "init_scale": ("float", 0.0, 1e6, False),
    "dtype": ("choice", None, _DTYPES, False),
}
REQUIRED = {TRANSFORMER_FORMAT: (), ZOO_FORMAT: ("arch", "d")}
#: safetensors dtype names of the dtypes a config may name
SAFETENSORS_DTYPES = {"float32": "F32", "float64": "F64"}


def _bad(where: str, msg: str) -> InvalidParameterError:
    return InvalidParameterError(f"The 'checkpoint' parameter: {where} {msg}")


def _check_field(where: str, key: str, value, spec) -> None:
    typ, low, high, nullable = spec
    if value is None:
        if nullable:
            return
        raise _bad(where, f"has config '{key}': null; it must be {_describe(spec)}.")
    ok = True
    if typ == "int":
        ok = type(value) is int and low <= value <= high
    elif typ == "float":
        ok = type(value) in (int, float) and math.isfinite(value) and low <= value <= high
    elif typ == "bool":
        ok = type(value) is bool
    elif typ == "choice":
        ok = type(value) is str and value in high
    if not ok:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise _bad(where, f"has config '{key}': {shown}; it must be {_describe(spec)}.")


def _describe(spec) -> str:
    typ, low, high, nullable = spec
    tail = " or null" if nullable else ""
    if typ == "int":
        return f"an integer in [{low}, {high}]{tail}"
    if typ == "float":
        return f"a finite number in [{low}, {high:g}]{tail}"
    if typ == "bool":
        return f"true or false{tail}"
    return f"one of {list(high)}{tail}"


def validate_record(record, where: str) -> tuple[str, dict]:
    """Check a ``config.json`` record; return ``(format tag, config)``. ``where`` names the file in errors."""
    if not isinstance(record, dict):
        raise _bad(where, "must hold a JSON object.")
    if "format" not in record:
        raise _bad(where, f"has no 'format' key, so it is not a spinlens model config (formats {list(FORMATS)}). "
                          "(A Hugging Face folder goes under --model.)")
    tag = record["format"]
    if tag not in FORMATS:
        raise _bad(where, f"has format {tag!r}; spinlens reads {list(FORMATS)}. (A Hugging Face folder goes under "
                          "--model.)")
    version = record.get("format_version", 1)
    if type(version) is not int or version < 1:
        raise _bad(where, f"has format_version {version!r}; it must be an integer >= 1.")
    if version > FORMAT_VERSION:
        raise _bad(where, f"has format_version {version}, newer than this spinlens reads ({FORMAT_VERSION}); it needs "
                          f"a spinlens that reads format_version {version}: upgrade spinlens.")
    cfg = record.get("config")
    if not isinstance(cfg, dict):
        raise _bad(where, f"(format {tag!r}) lacks its 'config' object.")
    if not isinstance(record.get("metadata", {}), (dict, type(None))):
        raise _bad(where, "has a 'metadata' entry that is not a JSON object.")
    validate_config(tag, cfg, where)
    return tag, cfg


def validate_config(tag: str, cfg: dict, where: str) -> None:
    """Every key of the architecture config known, present where required, of its type and inside its range."""
    fields = TRANSFORMER_FIELDS if tag == TRANSFORMER_FORMAT else ZOO_FIELDS
    unknown = sorted(str(k) for k in cfg if k not in fields)
    if unknown:
        raise _bad(where, f"has unknown config keys {unknown[:5]}; format {tag!r} knows {sorted(fields)}.")
    for key in REQUIRED[tag]:
        if key not in cfg:
            raise _bad(where, f"lacks config '{key}' (format {tag!r}).")
    for key, value in cfg.items():
        _check_field(where, key, value, fields[key])
    if tag == ZOO_FORMAT and cfg.get("init_scale", 1.0) == 0:
        raise _bad(where, "has config 'init_scale': 0; it must be a finite number in (0, 1e6].")
    if tag == TRANSFORMER_FORMAT:
        kind = cfg.get("input_kind", "regression")
        need = "d_in" if kind == "regression" else "d_vocab"
        if cfg.get(need) is None:
            raise _bad(where, f"has input_kind {kind!r} but no config '{need}'.")
        if cfg.get("d_head") is None and cfg.get("d_model", 64) % cfg.get("n_heads", 4):
            raise _bad(where, "has config 'd_model' not divisible by 'n_heads' and no 'd_head'.")


def _transformer_params(n_layers, n_heads, d_model, d_head, d_mlp, n_in, max_pos) -> int:
    per_layer = 4 * n_heads * d_head * d_model + 2 * d_model * d_mlp + 6 * d_model + d_mlp + 3 * n_heads * d_head
    return n_layers * per_layer + 2 * n_in * d_model + max_pos * d_model + 4 * d_model + n_in


def estimate_params(tag: str, cfg: dict) -> int:
    """An upper estimate of the parameter count of a validated config (no torch, nothing built)."""
    if tag == TRANSFORMER_FORMAT:
        d_model, n_heads = cfg.get("d_model", 64), cfg.get("n_heads", 4)
        d_head = cfg.get("d_head") or max(1, d_model // n_heads)
        d_mlp = 4 * d_model if cfg.get("d_mlp") is None else cfg["d_mlp"]
        n_in = (cfg.get("d_vocab") or 0) + (cfg.get("d_in") or 0)
        return _transformer_params(cfg.get("n_layers", 2), n_heads, d_model, d_head, d_mlp, n_in,
                                   cfg.get("max_pos", 256))
    d1 = cfg["d"] + 1
    if cfg["arch"] == "tf":
        d_model, n_heads = cfg.get("d_model") or 32, cfg.get("n_heads") or 2
        d_head = cfg.get("d_head") or max(1, d_model // n_heads)
        d_mlp = 4 * d_model if cfg.get("d_mlp") is None else cfg["d_mlp"]
        return _transformer_params(cfg.get("n_layers") or 2, n_heads, d_model, d_head, d_mlp, d1, cfg.get("max_pos", 512))
    n_heads = cfg.get("n_heads") or 4
    d_head = cfg.get("d_head") or d1
    return 4 * n_heads * d_head * d1 + d1 * d1


def estimate_bytes(tag: str, cfg: dict) -> int:
    """Bytes of the model's parameters (`estimate_params` times the dtype's size)."""
    return estimate_params(tag, cfg) * (8 if cfg.get("dtype") == "float64" else 4)


def available_bytes() -> int:
    """Physical memory of this machine (bytes; 16 GiB where it cannot be read)."""
    import os

    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 16 << 30


def check_memory(tag: str, cfg: dict, where: str, *, max_bytes: int | None = None) -> int:
    """Refuse a config whose model (built, plus its stored tensors while loading) would not fit in memory."""
    need = 2 * estimate_bytes(tag, cfg)
    limit = available_bytes() // 2 if max_bytes is None else max_bytes
    if need > limit:
        raise _bad(where, f"describes a model of about {need / 2**30:.1f} GiB (weights + loading copy), more than "
                          f"the {limit / 2**30:.1f} GiB allowed here; it is corrupt or too large for this machine.")
    return need


def check_tensors(where: str, stored: dict, expected: dict) -> None:
    """``stored`` and ``expected`` map tensor names to ``(shape tuple, safetensors dtype)``: equal, exactly."""
    missing = sorted(set(expected) - set(stored))
    extra = sorted(set(stored) - set(expected))
    if missing or extra:
        raise _bad(where, f"does not match its config: missing tensors {missing[:5]}, unexpected {extra[:5]}.")
    for k in sorted(expected):
        if tuple(stored[k][0]) != tuple(expected[k][0]):
            raise _bad(where, f"tensor {k!r} has shape {list(stored[k][0])}; its config needs {list(expected[k][0])}.")
        if stored[k][1] != expected[k][1]:
            raise _bad(where, f"tensor {k!r} has dtype {stored[k][1]}; its config needs {expected[k][1]} "
                              "(no silent casts).")
