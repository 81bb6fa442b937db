"""Intervention spec files: a JSON or YAML list of interventions, read into `spinlens.interp.interventions`.

A spec is ``{"interventions": [entry, ...]}`` (or the bare list); each entry has a ``type`` (``add``,
``set``, ``neurons``, ``scale``, ``ablate``, ``tokens``) and the fields of that intervention class. Vectors
are inline lists or ``.npy`` files relative to the spec file. See ``docs/edit.md`` for an example.
"""

from __future__ import annotations

import json

import numpy as np

from spinlens.errors import InvalidParameterError
from spinlens.interp.interventions import (
    Ablate,
    AddVector,
    Scale,
    SetActivation,
    SetNeurons,
    TokenEdit,
)

__all__ = ["load_spec", "interventions_from_spec"]

# --------------------------------------------------------------------------------------------------------
# spec files

_TYPES = {
    "add": AddVector,
    "set": SetActivation,
    "neurons": SetNeurons,
    "scale": Scale,
    "ablate": Ablate,
    "tokens": TokenEdit,
}


def load_spec(path) -> dict:
    """Read a JSON or YAML steering spec: ``{"interventions": [{"type": ..., ...}, ...]}`` (or a bare list)."""
    import pathlib

    p = pathlib.Path(path)
    if not p.exists():
        raise InvalidParameterError(f"The 'spec' parameter must be an existing JSON/YAML file. Got {str(p)!r}.")
    from spinlens.io import check_regular_file, no_duplicate_keys, strict_yaml_loader

    check_regular_file("spec", p)  # a FIFO or device would block the read
    text = p.read_text()
    if p.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            spec = yaml.load(text, Loader=strict_yaml_loader())  # a key given twice is refused
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            at = f" (line {where.line + 1}, column {where.column + 1})" if where is not None else ""
            raise InvalidParameterError(f"The 'spec' file {str(p)!r} is not valid YAML{at}.") from None
        except ValueError as exc:
            raise InvalidParameterError(f"The 'spec' file {str(p)!r} is not valid YAML: {exc}.") from None
    else:
        try:
            spec = json.loads(text, object_pairs_hook=no_duplicate_keys)
        except json.JSONDecodeError as exc:
            raise InvalidParameterError(f"The 'spec' file {str(p)!r} is not valid JSON: {exc}.") from None
        except ValueError as exc:  # a key given twice
            raise InvalidParameterError(f"The 'spec' file {str(p)!r} is not valid JSON: {exc}.") from None
    if isinstance(spec, list):
        spec = {"interventions": spec}
    if not isinstance(spec, dict) or not isinstance(spec.get("interventions"), list):
        raise InvalidParameterError("A steering spec must be a list or a mapping with an 'interventions' list.")
    spec["_dir"] = str(p.parent)
    return spec


def _load_vector(v, base_dir: str):
    import pathlib

    if isinstance(v, str):
        p = pathlib.Path(v)
        if not p.is_absolute():
            p = pathlib.Path(base_dir) / p
        if p.suffix == ".npy":
            return np.load(p)
        if p.suffix in (".txt", ".csv"):
            return np.loadtxt(p, delimiter="," if p.suffix == ".csv" else None)
        raise InvalidParameterError(f"A vector file must be .npy, .txt or .csv. Got {v!r}.")
    return np.asarray(v, dtype=float)


def interventions_from_spec(spec: dict, *, model=None, Z_ref=None) -> list:
    """Build intervention objects from a spec (see `load_spec`).

    Entries: ``{"type": "add", "hook": ..., "vector": [..] | "v.npy", "strength": 2, "positions": -1}``,
    ``{"type": "neurons", "hook": ..., "neurons": [3, 5], "scale": 0}``, ``{"type": "ablate", "hook": ...,
    "head": 1, "mode": "mean"}`` (mean/resample references are cached from ``model(Z_ref)``),
    ``{"type": "scale", ...}``, ``{"type": "set", ...}``, ``{"type": "tokens", "op": "shuffle_labels"}``.
    """
    out = []
    base = spec.get("_dir", ".")
    for i, entry in enumerate(spec["interventions"]):
        if not isinstance(entry, dict):
            raise InvalidParameterError(f"interventions[{i}] must be a mapping such as {{type: add, hook: ...}}. "
                                        f"Got {entry!r} instead.")
        entry = dict(entry)
        kind = entry.pop("type", None)
        if kind not in _TYPES:
            raise InvalidParameterError(
                f"interventions[{i}].type must be one of {{{', '.join(map(repr, _TYPES))}}}. Got {kind!r} instead."
            )
        if kind == "add" and "vector" in entry:
            entry["vector"] = _load_vector(entry["vector"], base)
        if kind == "set" and "value" in entry:
            entry["value"] = _load_vector(entry["value"], base)
        try:
            if kind == "ablate" and entry.get("mode", "zero") != "zero" and "reference" not in entry:
                if model is None or Z_ref is None:
                    raise InvalidParameterError(f"interventions[{i}]: mean/resample ablation needs reference prompts.")
                hook = entry.pop("hook")
                mode = entry.pop("mode")
                out.append(Ablate.from_model(model, Z_ref, hook, mode, **entry))
            else:
                out.append(_TYPES[kind](**entry))
        except TypeError as exc:
            import inspect

            try:
                keys = ", ".join(["type", *inspect.signature(_TYPES[kind]).parameters])
            except (TypeError, ValueError):  # pragma: no cover - every intervention class has a signature
                keys = "see the docstring"
            raise InvalidParameterError(f"interventions[{i}] ({kind}): {exc}; allowed keys: {keys}.") from None
    return out
