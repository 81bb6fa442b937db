"""Checkpoints of zoo models: weights as safetensors, architecture as JSON; loading never unpickles.

A checkpoint is a folder with

* ``model.safetensors``: the state dict (tensors only), with the JSON config also embedded in the file's
  metadata (key ``spinlens_config``), so that the ``.safetensors`` file alone is enough;
* ``config.json``: ``{"format": "spinlens-zoo/1", "config": <ZooConfig.to_dict()>, "metadata": {...}}``.

`load_checkpoint` rebuilds the model with `spinlens.models.zoo.build_model` and loads the tensors
(strict: every parameter present, no extra ones), so a round trip is bit-exact.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from spinlens.errors import InvalidParameterError

FORMAT = "spinlens-zoo/1"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def save_checkpoint(model, path, *, metadata: dict | None = None) -> Path:
    """Save a zoo model (one with a ``config`` `ZooConfig`) into the folder ``path``; return the folder.

    Parameters
    ----------
    model : torch.nn.Module
        A model built by `spinlens.models.zoo.build_model`.
    path : str or Path
        Folder to write (created if needed); existing checkpoint files in it are replaced atomically.
    metadata : dict, optional
        JSON-serialisable extra information (training settings, seed, test loss ...), stored in config.json.
    """
    from safetensors.torch import save_file

    from spinlens.models.zoo import ZooConfig

    cfg = getattr(model, "config", None)
    if not isinstance(cfg, ZooConfig):
        raise InvalidParameterError(
            "The 'model' parameter of save_checkpoint must be a zoo model with a ZooConfig 'config' attribute "
            f"(built by spinlens.models.zoo.build_model). Got {type(model).__name__}."
        )
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    cfg_json = json.dumps(cfg.to_dict(), sort_keys=True)
    record = {"format": FORMAT, "config": cfg.to_dict(), "metadata": metadata or {}}
    try:
        record_text = json.dumps(record, indent=2, sort_keys=True)
    except TypeError as exc:
        raise InvalidParameterError(f"The 'metadata' parameter of save_checkpoint must be JSON-serialisable: {exc}") from None
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".safetensors.tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"format": FORMAT, "spinlens_config": cfg_json})
        os.replace(tmp, folder / WEIGHTS_FILE)
    finally:
        Path(tmp).unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".json.tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(record_text + "\n")
    os.replace(tmp, folder / CONFIG_FILE)
    return folder


def read_checkpoint_config(path):
    """The `ZooConfig` of a checkpoint folder (from config.json) or ``.safetensors`` file (its metadata)."""
    from safetensors import safe_open

    from spinlens.models.zoo import ZooConfig

    p = Path(path)
    if p.is_dir():
        cfg_file = p / CONFIG_FILE
        if cfg_file.exists():
            try:
                record = json.loads(cfg_file.read_text())
            except json.JSONDecodeError as exc:
                raise InvalidParameterError(f"{str(cfg_file)!r} is not valid JSON: {exc}") from None
            if not isinstance(record, dict):
                raise InvalidParameterError(f"{str(cfg_file)!r} must hold a JSON object, not {type(record).__name__}.")
            if "format" not in record:
                raise InvalidParameterError(f"{str(cfg_file)!r} has no 'format' key: not a spinlens zoo checkpoint "
                                            f"config (expected format {FORMAT!r}).")
            if record["format"] != FORMAT:
                raise InvalidParameterError(f"{str(cfg_file)!r} has format {record['format']!r}; expected {FORMAT!r}.")
            if not isinstance(record.get("config"), dict):
                raise InvalidParameterError(f"{str(cfg_file)!r} lacks a 'config' object (the model's settings).")
            return ZooConfig.from_dict(record["config"])
        p = p / WEIGHTS_FILE
    if not p.exists():
        if Path(path).is_dir():
            raise InvalidParameterError(f"checkpoint folder {str(path)!r} holds neither {CONFIG_FILE} nor {WEIGHTS_FILE}; "
                                        "expected a folder written by `spinlens zoo train` (its model/ subfolder).")
        raise InvalidParameterError(f"checkpoint {str(path)!r} does not exist (expected a folder or a .safetensors file).")
    from safetensors import SafetensorError

    try:
        with safe_open(str(p), framework="pt") as fh:
            meta = fh.metadata() or {}
    except (SafetensorError, OSError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidParameterError(f"checkpoint {str(p)!r} is not a readable .safetensors file: {msg}") from None
    if "spinlens_config" not in meta:
        raise InvalidParameterError(f"{str(p)!r} has no 'spinlens_config' metadata: not a spinlens zoo checkpoint.")
    return ZooConfig.from_dict(json.loads(meta["spinlens_config"]))


def read_checkpoint_metadata(path) -> dict:
    """The ``metadata`` dict stored in a checkpoint folder's config.json ({} when absent)."""
    cfg_file = Path(path) / CONFIG_FILE
    if not cfg_file.exists():
        return {}
    try:
        record = json.loads(cfg_file.read_text())
    except json.JSONDecodeError as exc:
        raise InvalidParameterError(f"{str(cfg_file)!r} is not valid JSON: {exc}") from None
    meta = record.get("metadata", {}) if isinstance(record, dict) else None
    if not isinstance(meta, dict):
        raise InvalidParameterError(f"{str(cfg_file)!r}: 'metadata' must be a JSON object.")
    return dict(meta)


def load_checkpoint(path, *, device="cpu"):
    """Rebuild and load a zoo model saved by `save_checkpoint` (folder or ``.safetensors`` file).

    Examples
    --------
    >>> import tempfile, torch
    >>> from spinlens.models.zoo import ZooConfig, build_model
    >>> m = build_model(ZooConfig("fla", d=3), rng=0)
    >>> folder = save_checkpoint(m, tempfile.mkdtemp())
    >>> m2 = load_checkpoint(folder)
    >>> all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), m2.state_dict().values()))
    True
    """
    from safetensors.torch import load_file

    from spinlens.models.zoo import build_model

    cfg = read_checkpoint_config(path)
    p = Path(path)
    weights = p / WEIGHTS_FILE if p.is_dir() else p
    if not weights.exists():
        raise InvalidParameterError(f"checkpoint folder {str(path)!r} lacks {WEIGHTS_FILE}.")
    from safetensors import SafetensorError

    try:
        tensors = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidParameterError(f"checkpoint weights {str(weights)!r} are not a readable .safetensors file: {msg}") from None
    model = build_model(cfg, rng=0)
    try:
        missing, unexpected = model.load_state_dict(tensors, strict=False)
    except RuntimeError as exc:  # a tensor of the wrong shape
        msg = " ".join(str(exc).split())
        raise InvalidParameterError(f"checkpoint {str(path)!r} does not match its config ({cfg.arch}): {msg[:300]}") from None
    if missing or unexpected:
        raise InvalidParameterError(
            f"checkpoint {str(path)!r} does not match its config ({cfg.arch}): missing {sorted(missing)}, "
            f"unexpected {sorted(unexpected)}."
        )
    return model.to(device).eval()
