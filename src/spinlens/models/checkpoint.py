"""The model registry: one folder format for every model spinlens trains; loading never unpickles.

A checkpoint is a folder with

* ``model.safetensors``: the state dict (tensors only); its metadata repeats the format tag and the
  config, so that the ``.safetensors`` file alone is enough to rebuild the model;
* ``config.json``: ``{"format": TAG, "format_version": 1, "config": {...}, "metadata": {...},
  "spinlens_version": ...}``;
* anything else the writer adds (``run.json``, loss curves, a ``tokenizer.json``): ignored when loading.

Formats (the tag's suffix is the version):

=============================  ==================================================================
tag                            models
=============================  ==================================================================
``spinlens-transformer/1``     `spinlens.models.transformer.Transformer` (regression and tokens),
                               config = ``TransformerConfig.to_dict()``
``spinlens-zoo/1``             every zoo architecture (sla, sla-separate, fla, mhla, sa, tf),
                               config = ``ZooConfig.to_dict()``
=============================  ==================================================================

`save_model` picks the format from the model (a zoo model carries a ``ZooConfig`` as ``.config``,
a bare `Transformer` its ``TransformerConfig`` as ``.cfg``; the simplified linear attention of
`spinlens.models.linear_attention` is saved as the zoo's ``sla`` / ``sla-separate``).
`load_model` reads any of them (the folder, or its ``model.safetensors`` alone), plus three older layouts
with a `FutureWarning`: a folder holding the checkpoint in a ``model/`` subfolder (what ``zoo train``
wrote before), a folder with the ``weights.safetensors`` of the earlier ``spinlens train`` (no config: the
architecture is read off the tensor names and shapes), and the single-file Transformer format of the
earlier ``steer``/``merge``/``quantize``.

Dependencies point one way: ``transformer`` ← ``zoo`` ← ``checkpoint`` (this module); the model
modules import nothing from here.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

from spinlens.errors import InvalidParameterError
from spinlens.models.schema import FORMAT_VERSION, FORMATS, TRANSFORMER_FORMAT, ZOO_FORMAT, validate_record

FORMAT = ZOO_FORMAT  # the tag of zoo checkpoints (older name)
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
LEGACY_SUBFOLDER = "model"
LEGACY_TRAIN_WEIGHTS = "weights.safetensors"  # what `spinlens train` wrote before (no config)
_LEGACY_TRANSFORMER_KEY = "spinlens_transformer_config"  # single-file format of the old edit commands

__all__ = [
    "FORMATS",
    "TRANSFORMER_FORMAT",
    "ZOO_FORMAT",
    "Checkpoint",
    "find_checkpoint",
    "is_checkpoint",
    "load_model",
    "read_checkpoint",
    "read_metadata",
    "save_model",
    # older names
    "load_checkpoint",
    "load_transformer",
    "read_checkpoint_config",
    "read_checkpoint_metadata",
    "save_checkpoint",
    "save_transformer",
]


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint folder (or file) says about itself, before any tensor is read.

    Attributes
    ----------
    path : Path
        The folder (or, for the single-file layouts, the ``.safetensors`` file).
    format : str
        One of `FORMATS` (``"spinlens-transformer/1"`` also for the old single-file Transformer format).
    config : dict
        The architecture config (``TransformerConfig`` or ``ZooConfig`` as a dict).
    metadata : dict
        Free-form JSON written with the model (training settings, distribution, task tables ...).
    legacy : str or None
        ``None`` for the current layout, else a short description of the older layout that was read.
    key_prefix : str
        Prefix the stored tensor names need to match the model's (older layouts only).
    """

    path: Path
    format: str
    config: dict
    metadata: dict
    legacy: str | None = None
    key_prefix: str = ""

    @property
    def weights(self) -> Path:
        return self.path / WEIGHTS_FILE if self.path.is_dir() else self.path

    def n_context(self) -> int | None:
        """The context length N the model was trained on, when the metadata records it."""
        m = self.metadata
        for src in (m.get("distribution") or {}, m):
            for key in ("n_context", "N"):
                if isinstance(src.get(key), int):
                    return int(src[key])
        return None


# ------------------------------------------------------------------------------------------------ saving


def _record_of(model):
    """(format tag, config dict) of a model, or raise naming what is accepted."""
    from spinlens.models.transformer import Transformer
    from spinlens.models.zoo import ZooConfig

    cfg = getattr(model, "config", None)
    if isinstance(cfg, ZooConfig):
        return ZOO_FORMAT, cfg.to_dict()
    if isinstance(model, Transformer):
        return TRANSFORMER_FORMAT, model.cfg.to_dict()
    raise InvalidParameterError(
        "The 'model' parameter of save_model must be a spinlens model: a zoo model (spinlens.models.zoo."
        "build_model), a spinlens.models.transformer.Transformer, or a Merged/SeparateLinearAttention. "
        f"Got {type(model).__name__}."
    )


def _as_zoo_sla(model):
    """A zoo ``sla`` / ``sla-separate`` model holding the weights of a bare linear-attention model."""
    import torch

    from spinlens.models import linear_attention as la
    from spinlens.models.zoo import DTYPES, ZooConfig, build_model

    dtype = next(model.parameters()).dtype
    dname = next((k for k, v in DTYPES.items() if v == dtype), None)
    if dname is None:
        raise InvalidParameterError(f"save_model: linear-attention weights of dtype {dtype} cannot be saved "
                                    f"(allowed: {sorted(DTYPES)}).")
    if isinstance(model, la.SeparateLinearAttention):
        cfg = ZooConfig("sla-separate", d=model.d, d_head=int(model.W_q.shape[0]), dtype=dname)
    else:
        cfg = ZooConfig("sla", d=model.d, dtype=dname)
    zoo = build_model(cfg, rng=0)
    with torch.no_grad():
        zoo.core.load_state_dict(model.state_dict())
    return zoo


def save_model(model, path, *, metadata: dict | None = None, force: bool = False) -> Path:
    """Save any spinlens model into the folder ``path`` (``model.safetensors`` + ``config.json``); return it.

    Parameters
    ----------
    model : torch.nn.Module
        A zoo model (`spinlens.models.zoo.build_model`), a `spinlens.models.transformer.Transformer`,
        or a `spinlens.models.linear_attention` model (stored as the zoo's ``sla`` / ``sla-separate``).
    path : str or Path
        Folder to write, as one transaction (`spinlens.io.folder_transaction`): it is new, empty or an earlier
        model folder, and is replaced as a whole (with a ``manifest.json`` of SHA-256 sums) or not at all.
        Inside an open transaction (a command writing a larger folder) the files go into its staging folder.
    metadata : dict, optional
        JSON-serialisable information kept with the model (training settings, distribution, seed ...).
    force : bool
        Write into a folder that holds other files (kept; same-named ones replaced).

    Examples
    --------
    >>> import tempfile, torch
    >>> from spinlens.models.zoo import ZooConfig, build_model
    >>> m = build_model(ZooConfig("fla", d=3), rng=0)
    >>> folder = save_model(m, tempfile.mkdtemp(), metadata={"note": "demo"})
    >>> m2 = load_model(folder)
    >>> all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), m2.state_dict().values()))
    True
    >>> read_checkpoint(folder).format
    'spinlens-zoo/1'
    """
    from spinlens.io import folder_transaction

    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise InvalidParameterError(f"The 'path' parameter of save_model must be a folder. Got {str(path)!r}, a file.")
    files = model_files(model, metadata)
    with folder_transaction(folder, kind=MODEL_KIND, force=force, name="path") as stage:
        write_model_files(stage, files)
    return folder


MODEL_KIND = "model"
#: the files a model folder consists of (checked against its manifest at load)
MODEL_FILES = (WEIGHTS_FILE, CONFIG_FILE, "tokenizer.json", "heldout_tokens.npy")


def model_files(model, metadata: dict | None = None):
    """``(tensors, safetensors metadata, config.json record)`` of a model: everything `write_model_files` needs."""
    from spinlens import __version__
    from spinlens.io import jsonable
    from spinlens.models import linear_attention as la

    if isinstance(model, (la.MergedLinearAttention, la.SeparateLinearAttention)):
        model = _as_zoo_sla(model)
    tag, cfg = _record_of(model)
    try:
        json.dumps(jsonable(metadata or {}))
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"The 'metadata' parameter of save_model must be JSON-serialisable: {exc}") from None
    record = {"format": tag, "format_version": FORMAT_VERSION, "config": cfg, "metadata": jsonable(metadata or {}),
              "spinlens_version": __version__}
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    meta = {"format": tag, "spinlens_config": json.dumps(cfg, sort_keys=True)}
    return tensors, meta, record


def write_model_files(folder, files) -> None:
    """Write ``model.safetensors`` and ``config.json`` (from `model_files`) into ``folder`` (a staging folder)."""
    from safetensors.torch import save_file

    from spinlens.io import atomic_path, write_json

    tensors, meta, record = files
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    write_json(folder / CONFIG_FILE, record)


# ----------------------------------------------------------------------------------------------- reading


def _json_text(text: str, where: str):
    """Parse JSON strictly: duplicate keys, NaN/Infinity and absurd nesting are refused in one line."""
    def _const(name):
        raise ValueError(f"non-standard constant {name}")

    try:
        from spinlens.io import no_duplicate_keys

        return json.loads(text, object_pairs_hook=no_duplicate_keys, parse_constant=_const)
    except (ValueError, RecursionError) as exc:
        msg = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise InvalidParameterError(f"The 'checkpoint' parameter: {where} is not valid JSON ({msg}).") from None


def read_json(path) -> object:
    """Read a JSON file of a model folder (a regular file, UTF-8, strict `_json_text`)."""
    from spinlens.io import check_regular_file

    check_regular_file("checkpoint", path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidParameterError(f"The 'checkpoint' parameter: {str(path)!r} cannot be read as UTF-8 text "
                                    f"({type(exc).__name__}).") from None
    return _json_text(text, repr(str(path)))


def _safetensors_meta(p: Path) -> dict:
    from safetensors import SafetensorError, safe_open

    from spinlens.io import check_regular_file

    check_regular_file("checkpoint", p)
    try:
        with safe_open(str(p), framework="pt") as fh:
            return dict(fh.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidParameterError(f"The 'checkpoint' parameter: {str(p)!r} is not a readable .safetensors file: "
                                    f"{msg}") from None


def _legacy_warning(what: str, path) -> None:
    warnings.warn(f"{what} ({str(path)!r}) is deprecated; re-save it with spinlens.models.checkpoint.save_model "
                  "(a folder with model.safetensors + config.json)", FutureWarning, stacklevel=3)


def find_checkpoint(path) -> Path:
    """The checkpoint folder or file ``path`` refers to (the folder itself, its ``model/`` subfolder of the
    older ``zoo train`` layout, or a ``.safetensors`` file); raise a one-line error otherwise."""
    p = Path(path)
    if p.is_dir():
        if (p / CONFIG_FILE).is_file() or (p / WEIGHTS_FILE).is_file():
            return p
        sub = p / LEGACY_SUBFOLDER
        if sub.is_dir() and ((sub / CONFIG_FILE).is_file() or (sub / WEIGHTS_FILE).is_file()):
            return sub
        if (p / LEGACY_TRAIN_WEIGHTS).is_file():
            return p
        raise InvalidParameterError(f"The 'checkpoint' parameter must be a spinlens model folder (with {CONFIG_FILE} and "
                                    f"{WEIGHTS_FILE}). Got {str(path)!r}, a folder without them.")
    if p.is_file():
        return p
    raise InvalidParameterError(f"The 'checkpoint' parameter must be a spinlens model folder (with {CONFIG_FILE} and "
                                f"{WEIGHTS_FILE}). Got {str(path)!r}, which does not exist.")


def is_checkpoint(path) -> bool:
    """Whether ``path`` is a spinlens model folder (or holds one in the older ``model/`` layout)."""
    p = Path(path)
    if not p.is_dir():
        return False
    try:
        read_checkpoint(p)
    except InvalidParameterError:  # e.g. a Hugging Face folder: config.json without a spinlens format tag
        return False
    return True


def read_checkpoint(path) -> Checkpoint:
    """Describe the checkpoint at ``path`` (format, config, metadata) without reading its tensors."""
    p = find_checkpoint(path)
    legacy = None
    if p != Path(path):
        legacy = "a model/ subfolder"
    if p.is_dir():
        from spinlens.io import verify_files

        verify_files(p, MODEL_FILES)
        cfg_file = p / CONFIG_FILE
        if cfg_file.is_file():
            record = read_json(cfg_file)
            tag, cfg = validate_record(record, repr(str(cfg_file)))
            assert isinstance(record, dict)  # validate_record checked it
            return Checkpoint(p, tag, dict(cfg), dict(record.get("metadata") or {}), legacy)
        if not (p / WEIGHTS_FILE).is_file() and (p / LEGACY_TRAIN_WEIGHTS).is_file():
            return _legacy_train_checkpoint(p)
        p = p / WEIGHTS_FILE  # weights without config.json: the file's metadata has it
    meta = _safetensors_meta(p)
    where = repr(str(p))
    if "spinlens_config" in meta:
        tag = meta.get("format", ZOO_FORMAT)
        if tag not in FORMATS:
            tag = ZOO_FORMAT
        cfg = _json_text(meta["spinlens_config"], where)
        validate_record({"format": tag, "config": cfg}, where)
        return Checkpoint(p, tag, cfg, {}, legacy)
    if _LEGACY_TRANSFORMER_KEY in meta:
        cfg = _json_text(meta[_LEGACY_TRANSFORMER_KEY], where)
        validate_record({"format": TRANSFORMER_FORMAT, "config": cfg}, where)
        return Checkpoint(p, TRANSFORMER_FORMAT, cfg, {}, "the single-file Transformer format")
    raise InvalidParameterError(f"The 'checkpoint' parameter: {str(p)!r} has no spinlens config in its metadata "
                                "(not a spinlens model).")


def _legacy_train_checkpoint(folder: Path) -> Checkpoint:
    """A folder of the older ``spinlens train`` (``weights.safetensors`` of a bare linear-attention model,
    run.json beside it): described as the zoo's ``sla`` / ``sla-separate``."""
    from safetensors import SafetensorError, safe_open

    f = folder / LEGACY_TRAIN_WEIGHTS
    try:
        with safe_open(str(f), framework="pt") as fh:
            shapes = {k: (tuple(fh.get_slice(k).get_shape()), fh.get_slice(k).get_dtype()) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidParameterError(f"The 'checkpoint' parameter: {str(f)!r} is not a readable .safetensors file: "
                                    f"{msg}") from None
    dtype = {"F64": "float64", "F32": "float32"}.get(next(iter(shapes.values()))[1] if shapes else "", "float64")
    if set(shapes) == {"W"}:
        config = {"arch": "sla", "d": shapes["W"][0][0] - 1, "dtype": dtype}
    elif set(shapes) == {"W_q", "W_k"}:
        config = {"arch": "sla-separate", "d": shapes["W_q"][0][1] - 1, "d_head": shapes["W_q"][0][0], "dtype": dtype}
    else:
        raise InvalidParameterError(f"The 'checkpoint' parameter: {str(f)!r} holds tensors {sorted(shapes)}, not a "
                                    "model of the older `spinlens train`.")
    meta = {}
    try:
        run = json.loads((folder / "run.json").read_text())
        meta = {"distribution": {"d": config["d"], "n_context": int(run["N"])}, "command": "train"}
        for key in ("weight_decay", "optimizer"):
            if key in run:
                meta[key] = run[key]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return Checkpoint(f, ZOO_FORMAT, config, meta, "the weights.safetensors of the older `spinlens train`", "core.")


def read_metadata(path) -> dict:
    """The ``metadata`` dict stored with a checkpoint ({} when there is none)."""
    return dict(read_checkpoint(path).metadata)


def _build(ck: Checkpoint):
    if ck.format == ZOO_FORMAT:
        from spinlens.models.zoo import build_model

        return build_model(ck.config, rng=0)
    from spinlens.models.transformer import Transformer, TransformerConfig

    try:
        cfg = TransformerConfig(**ck.config)
    except TypeError as exc:
        raise InvalidParameterError(f"The 'checkpoint' parameter: {str(ck.path)!r} has a bad Transformer config: {exc}") from None
    return Transformer(cfg, rng=0)


def load_model(path, *, device: str = "cpu", kind=None, allow_nonfinite: bool | None = None,
               max_bytes: int | None = None):
    """Rebuild and load the model saved at ``path`` (any format of this module); strict, bit-exact.

    Before anything is built the folder is checked against its manifest (`spinlens.io.verify_files`) and
    ``config.json`` against the schema (`spinlens.models.schema`), and the model's memory is estimated; the
    stored tensors must then have exactly the names, shapes and dtypes the config builds. Each failure is
    one `InvalidParameterError` line.

    Parameters
    ----------
    path : str or Path
        A checkpoint folder (or one of the older layouts, with a `FutureWarning`).
    device : str
        Torch device to move the model to.
    kind : type or tuple of types, optional
        Required model class (e.g. `spinlens.models.transformer.Transformer` for the interpretability
        methods); a checkpoint of another class raises a one-line `InvalidParameterError`.
    allow_nonfinite : bool, optional
        Load weights holding NaN or inf (refused by default; None reads ``SPINLENS_ALLOW_NONFINITE=1``, which
        the command line's ``--allow-nonfinite`` sets).
    max_bytes : int, optional
        Memory allowed for the model (default: half this machine's memory).
    """
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    from spinlens.io import check_regular_file
    from spinlens.models.schema import SAFETENSORS_DTYPES, check_memory, check_tensors

    ck = read_checkpoint(path)
    if ck.legacy:
        _legacy_warning(f"reading {ck.legacy}", path)
    where = repr(str(ck.weights))
    if not ck.weights.exists():
        raise InvalidParameterError(f"The 'checkpoint' parameter: folder {str(ck.path)!r} lacks {WEIGHTS_FILE}.")
    check_regular_file("checkpoint", ck.weights)
    check_memory(ck.format, ck.config, where, max_bytes=max_bytes)
    try:
        with safe_open(str(ck.weights), framework="pt") as fh:
            stored = {ck.key_prefix + k: (tuple(fh.get_slice(k).get_shape()), fh.get_slice(k).get_dtype())
                      for k in fh.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidParameterError(f"The 'checkpoint' parameter: {where} is not a readable .safetensors file: "
                                    f"{msg}") from None
    model = _build(ck)
    if kind is not None and not isinstance(model, kind):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        arch = ck.config.get("arch")
        raise InvalidParameterError(
            f"The 'checkpoint' parameter: {str(path)!r} holds a {type(model).__name__}"
            + (f" (zoo arch {arch!r})" if arch else "") + f"; this command needs a {names}."
        )
    expected = {k: (tuple(v.shape), SAFETENSORS_DTYPES.get(str(v.dtype).replace("torch.", ""), str(v.dtype)))
                for k, v in model.state_dict().items()}
    check_tensors(where, stored, expected)
    try:
        tensors = load_file(str(ck.weights), device="cpu")
    except (SafetensorError, OSError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidParameterError(f"The 'checkpoint' parameter: {where} is not a readable .safetensors "
                                    f"file: {msg}") from None
    if ck.key_prefix:
        tensors = {ck.key_prefix + k: v for k, v in tensors.items()}
    if allow_nonfinite is None:
        import os

        allow_nonfinite = os.environ.get("SPINLENS_ALLOW_NONFINITE", "") not in ("", "0")
    if not allow_nonfinite:
        import torch

        for k in sorted(tensors):
            if not bool(torch.isfinite(tensors[k]).all()):
                raise InvalidParameterError(f"The 'checkpoint' parameter: {where} tensor {k!r} holds NaN or inf "
                                            "weights (pass --allow-nonfinite to load it anyway).")
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise InvalidParameterError(
            f"The 'checkpoint' parameter: {str(path)!r} does not match its config: missing {sorted(missing)}, "
            f"unexpected {sorted(unexpected)}."
        )
    return model.to(device).eval()


# ----------------------------------------------------------------------------------------- older names


def save_checkpoint(model, path, *, metadata: dict | None = None) -> Path:
    """Save a zoo model (older name of `save_model`, restricted to zoo models)."""
    from spinlens.models.zoo import ZooConfig

    if not isinstance(getattr(model, "config", None), ZooConfig):
        raise InvalidParameterError(
            "The 'model' parameter of save_checkpoint must be a zoo model with a ZooConfig 'config' attribute "
            f"(built by spinlens.models.zoo.build_model). Got {type(model).__name__}."
        )
    return save_model(model, path, metadata=metadata)


def load_checkpoint(path, *, device="cpu"):
    """Load a checkpoint (older name of `load_model`).

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
    return load_model(path, device=device)


def read_checkpoint_config(path):
    """The `ZooConfig` of a zoo checkpoint folder or ``.safetensors`` file."""
    from spinlens.models.zoo import ZooConfig

    ck = read_checkpoint(path)
    if ck.format != ZOO_FORMAT:
        raise InvalidParameterError(f"{str(path)!r} is a {ck.format} checkpoint, not a zoo checkpoint ({ZOO_FORMAT}).")
    return ZooConfig.from_dict(ck.config)


def read_checkpoint_metadata(path) -> dict:
    """The ``metadata`` dict of a checkpoint (older name of `read_metadata`; {} when absent)."""
    try:
        return read_metadata(path)
    except InvalidParameterError:
        return {}


def save_transformer(model, path, *, metadata: dict | None = None) -> Path:
    """Save a `spinlens.models.transformer.Transformer` into a folder (`save_model` for Transformers)."""
    from spinlens.models.transformer import Transformer

    if not isinstance(model, Transformer):
        raise InvalidParameterError(f"The 'model' parameter of save_transformer must be a Transformer. "
                                    f"Got {type(model).__name__}.")
    return save_model(model, path, metadata=metadata)


def load_transformer(path, *, device: str = "cpu"):
    """Load a `Transformer` (a ``spinlens-transformer/1`` folder or a zoo ``"tf"`` checkpoint)."""
    from spinlens.models.transformer import Transformer

    return load_model(path, device=device, kind=Transformer)


def folder_kind(path) -> str | None:
    """What a model argument holds: ``"lm"``, ``"regression"``, ``"hf"``, or None (nothing spinlens can load).

    ``"hf"``: a named pretrained model (`spinlens.models.pretrained`) or a folder whose ``config.json`` has a
    Hugging Face ``model_type``; ``"lm"`` / ``"regression"``: a spinlens model folder (older layouts too) whose
    metadata says ``kind: "lm"`` or not.
    """
    from spinlens.models.pretrained import is_model_name

    if is_model_name(path):
        return "hf"
    p = Path(path)
    if p.exists():
        try:
            ck = read_checkpoint(p)
        except InvalidParameterError:  # not a spinlens model (or a broken one: its loader says why)
            pass
        else:
            meta = ck.metadata if isinstance(ck.metadata, dict) else {}
            return "lm" if meta.get("kind") == "lm" else "regression"
    cfg = p / "config.json"
    if cfg.is_file():
        try:
            record = json.loads(cfg.read_text())
        except (OSError, ValueError, RecursionError):
            return None
        if isinstance(record, dict) and isinstance(record.get("model_type"), str):
            return "hf"
    return None
