"""Every file spinlens writes goes through this module.

One writer per kind of output, all atomic: a file is either complete or absent, never half-written
(each writes a temporary file next to the target and ``os.replace``-s it onto its name, which is atomic on
POSIX file systems). Files get the normal permissions of the process (``0o666`` minus the umask, usually
``0644``), exactly like ``open(path, "w")``.

==========================  ===========================================================================
function                    writes
==========================  ===========================================================================
`atomic_path`               context manager: a temporary path that becomes ``path`` on success
`atomic_write_bytes/text`   bytes / text
`write_json`                JSON (numpy values and non-finite floats converted by `jsonable`)
`atomic_savez`              ``numpy.savez`` archive
`run_record`                the standard fields of a ``run.json`` (command, argv, seed, versions, git sha)
`write_run_json`            ``OUT/run.json`` (the one run.json writer)
`write_hf_model`            a plain Hugging Face model folder (``save_pretrained`` + tokenizer + run.json)
`write_study`               a study's folder: ``result.json``, ``run.json`` and its figure (PNG + PDF)
`save_figure`               ``OUT/<stem>.png`` and ``OUT/<stem>.pdf`` (the one figure saver)
`save_dataset`              ``OUT/<name>.nc`` (NetCDF; attributes made NetCDF-safe)
`save_columns`              ``OUT/<name>.csv`` from equal-length columns
`save_dataframe`            ``OUT/<name>.csv`` from a pandas DataFrame
`git_sha`                   the git commit of the spinlens source tree (None outside a checkout)
`package_versions`          versions of Python, spinlens and the scientific stack
`check_out_dir/_file`       validate an output folder / file path before any work (one-line error)
`folder_transaction`        context manager: a whole folder written as one transaction (staged, switched in)
`run_folder`                a command's run folder (``--out``) as one transaction; paths printed as the user's
`folder_update`             change several files of an existing folder in one atomic step (the rest kept)
`write/read_manifest`       ``manifest.json``: SHA-256 of every file of a folder; `verify_files` checks it
`check_regular_file`        refuse a FIFO / device / folder in place of an input file before opening it
==========================  ===========================================================================

This module imports nothing from the rest of spinlens at import time (only ``spinlens.__version__``
inside `package_versions`), so every layer may use it.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = [
    "RUN_FILE",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_savez",
    "jsonable",
    "write_json",
    "run_record",
    "write_run_json",
    "write_hf_model",
    "write_study",
    "save_figure",
    "save_dataset",
    "save_columns",
    "save_dataframe",
    "git_sha",
    "package_versions",
    "check_out_dir",
    "check_out_file",
    "check_regular_file",
    "check_replaceable",
    "folder_transaction",
    "run_folder",
    "folder_update",
    "public_text",
    "no_duplicate_keys",
    "strict_yaml_loader",
    "read_manifest",
    "switch_folder",
    "sha256_file",
    "verify_files",
    "write_manifest",
]

RUN_FILE = "run.json"

#: callables ``hook(fig, path_stem)`` run on every figure just before `save_figure` writes it (the test
#: suite registers `spinlens.plotting.checks.assert_figure_ok` here to audit every saved figure)
FIGURE_HOOKS: list = []


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux: /proc)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: read by setting and restoring it
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp"):
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path`` (``os.replace``).

    The parent folder is created if needed. On an exception the temporary file is removed and ``path`` is
    left as it was. The final file has the permissions a plain ``open(path, "w")`` would give it.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("hello")
    >>> target.read_text()
    'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
        _op(f"write {path.name}")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def atomic_savez(path: str | os.PathLike, **arrays) -> Path:
    """``numpy.savez`` to ``path`` atomically."""
    import numpy as np

    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    return path


def jsonable(obj):
    """Convert numpy scalars/arrays, paths and non-finite floats into JSON values (NaN -> None, inf -> "inf").

    >>> import numpy as np
    >>> jsonable({"a": np.float64(1.5), "b": [np.int64(2), float("inf"), float("nan")]})
    {'a': 1.5, 'b': [2, 'inf', None]}
    """
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [jsonable(v) for v in obj]
    if obj is None or type(obj) in (bool, int, str):
        return obj
    if isinstance(obj, float):  # also numpy.float64, a float subclass
        x = float(obj)
        if math.isnan(x):
            return None
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return x
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is a dependency
        return obj
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return jsonable(float(obj))
    return obj


def write_json(path: str | os.PathLike, obj, *, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON (through `jsonable`; anything else becomes its ``str``) atomically."""
    text = public_text(json.dumps(jsonable(obj), indent=indent, default=str))
    return atomic_write_text(path, text + "\n")


def git_sha() -> str | None:
    """The git commit of the spinlens source tree, or None outside a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5,
                             check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    sha = res.stdout.strip()
    return sha if res.returncode == 0 and sha else None


_VERSION_PACKAGES = ["numpy", "scipy", "xarray", "matplotlib", "scikit-learn", "torch", "netCDF4", "pandas"]


def package_versions() -> dict:
    """Versions of Python, spinlens and the main scientific packages (read from metadata, no imports)."""
    from importlib import metadata

    from spinlens import __version__

    out: dict[str, str | None] = {"python": sys.version.split()[0], "platform": platform.platform(), "spinlens": __version__}
    for name in _VERSION_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def run_record(command: str, *, args=None, seed=None, **fields) -> dict:
    """The standard fields of a run.json, then ``fields``.

    Parameters
    ----------
    command : str
        The spinlens command (``"zoo train"``, ``"interp patch"``, ...).
    args : argparse.Namespace or dict, optional
        The parsed arguments (the ``func`` entry of a Namespace is dropped).
    seed : int, optional
        The seed of the run.
    **fields
        Anything else (summary, parameters, timings); later keys win.
    """
    from spinlens import __version__

    rec: dict = {"command": command, "argv": ["spinlens", *sys.argv[1:]], "seed": seed, "version": __version__,
                 "git_sha": git_sha(), "versions": package_versions()}
    if args is not None:
        items = vars(args).items() if not isinstance(args, dict) else args.items()
        from spinlens.vocabulary import to_symbols

        # keyed by the symbols of docs/vocabulary.md (D, N, lam, ...), like every JSON output
        rec["args"] = to_symbols({k: v for k, v in items if k != "func" and not callable(v)})
    rec.update(fields)
    return rec


def write_run_json(out_dir: str | os.PathLike, record: dict) -> str:
    """Write ``OUT/run.json`` from ``record`` (see `run_record`) atomically; return the path."""
    path = Path(out_dir) / RUN_FILE
    write_json(path, record, indent=2)
    return str(path)


def write_study(out_dir: str | os.PathLike, result: dict, record: dict, *, fig=None, stem: str = "figure") -> str:
    """Write a study's ``result.json`` (the result's ``to_dict()``), ``run.json`` and figure ``stem``.png/.pdf."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if fig is not None:
        save_figure(fig, out, stem)
    write_json(out / "result.json", result)
    return write_run_json(out, record)


def write_hf_model(out_dir: str | os.PathLike, model, *, tokenizer=None, record: dict | None = None) -> str:
    """Write a Hugging Face model as a plain folder (``save_pretrained``, safetensors), loadable by transformers
    alone, with its tokenizer and ``run.json``; return the folder.

    The folder is one transaction (`folder_transaction`, kind ``"hf model"``): a reader sees the old folder or
    the new one, never half of one; inside a run folder's transaction it is part of that one.
    """
    with folder_transaction(out_dir, kind="hf model", name="save") as stage:
        getattr(model, "hf", model).save_pretrained(str(stage), safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(str(stage))
        if record is not None:
            write_run_json(stage, record)
    return str(out_dir)


def save_figure(fig, out_dir: str | os.PathLike, stem: str, *, formats=("png", "pdf"), close: bool = True,
                **savefig_kw) -> list[str]:
    """Write ``fig`` as ``<stem>.png`` and ``<stem>.pdf`` under ``out_dir`` (atomically), close it, return the paths.

    ``savefig_kw`` (``dpi``, ``bbox_inches`` ...) go to ``Figure.savefig``.
    """
    out_dir = Path(out_dir)
    for hook in list(FIGURE_HOOKS):
        hook(fig, out_dir / stem)
    paths = []
    for ext in formats:
        p = out_dir / f"{stem}.{ext}"
        with atomic_path(p) as tmp:
            fig.savefig(tmp, format=ext, **savefig_kw)
        paths.append(str(p))
    if close:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return paths


def save_dataset(ds, out_dir: str | os.PathLike, name: str = "data") -> str:
    """Write an ``xarray.Dataset`` (or DataArray) to ``<name>.nc`` under ``out_dir`` atomically; return the path.

    Dimensions, coordinates and attributes named by a quantity's Python name are written under its symbol
    (``n_context`` → ``N``; `spinlens.vocabulary.dataset_to_symbols`), as on the command line and in JSON.
    Attributes NetCDF cannot hold (bools, None, dicts, lists) are stored as JSON strings.
    """
    import xarray as xr

    from spinlens.vocabulary import dataset_to_symbols

    if isinstance(ds, xr.DataArray):
        ds = ds.to_dataset(name=ds.name or name)
    path = Path(out_dir) / f"{name}.nc"
    ds = dataset_to_symbols(ds)
    for obj in [ds, *ds.variables.values()]:
        for k, v in list(obj.attrs.items()):
            if isinstance(v, bool) or v is None or isinstance(v, (dict, list, tuple)):
                obj.attrs[k] = json.dumps(jsonable(v))
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp)
    return str(path)


def _fmt_cell(v):
    if isinstance(v, float) or (hasattr(v, "dtype") and getattr(v.dtype, "kind", "") == "f"):
        x = float(v)
        return "" if math.isnan(x) else repr(x)
    if hasattr(v, "item"):
        return v.item()
    return v


def save_columns(columns: dict, out_dir: str | os.PathLike, name: str = "data") -> str:
    """Write equal-length 1-D columns ``{header: values}`` as ``<name>.csv`` atomically; return the path."""
    import numpy as np

    cols = {k: np.asarray(v).ravel() for k, v in columns.items()}
    lengths = {len(v) for v in cols.values()}
    if len(lengths) > 1:
        raise ValueError(f"columns must have equal lengths; got { {k: len(v) for k, v in cols.items()} }")
    path = Path(out_dir) / f"{name}.csv"
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(list(cols))
            for row in zip(*cols.values()):
                w.writerow([_fmt_cell(v) for v in row])
    return str(path)


def save_dataframe(df, out_dir: str | os.PathLike, name: str = "data", *, index: bool = True) -> str:
    """Write a pandas DataFrame as ``<name>.csv`` atomically; return the path."""
    path = Path(out_dir) / f"{name}.csv"
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=index)
    return str(path)


# ------------------------------------------------------------------------- checks before any work


def _nearest_existing(path):
    from pathlib import Path

    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _probe_writable(name: str, path, folder) -> None:
    """Create and remove a scratch folder inside ``folder``: the only test of writability that does not lie
    (``os.access`` says yes to root in /proc, read-only mounts, full disks)."""
    import tempfile

    from spinlens.errors import InvalidParameterError

    try:
        tmp = tempfile.mkdtemp(prefix=".spinlens-write-test-", dir=folder)
    except OSError as exc:
        raise InvalidParameterError(
            f"The '{name}' parameter must be a path where spinlens can write. Got {str(path)!r}, but "
            f"{str(folder)!r} is not writable ({exc.strerror or type(exc).__name__})."
        ) from None
    import os

    os.rmdir(tmp)


def _check_path_text(name: str, path) -> None:
    from spinlens.errors import InvalidParameterError

    if not str(path).strip() or "\x00" in str(path):
        raise InvalidParameterError(f"The '{name}' parameter must be a non-empty path. Got {str(path)!r} instead.")


def check_out_dir(name: str, path, *, kind: str | None = None, force: bool = False):
    """Validate an output folder before any work: an existing folder or a creatable one, writable.

    With ``kind`` the folder is going to be written by `folder_transaction` of that kind: one holding files
    of another kind is refused here unless ``force`` (`check_replaceable`).

    Every command calls this (or `check_out_file`) on each output path before it computes anything, so a
    bad ``--out`` costs nothing and leaves nothing behind: the test writes and removes a scratch folder in
    the nearest existing folder on the path.
    """
    from pathlib import Path

    from spinlens.errors import InvalidParameterError

    if path is None:
        return None
    _check_path_text(name, path)
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InvalidParameterError(f"The '{name}' parameter must be a folder (existing or new). Got {str(path)!r}, an existing file.")
    anc = _nearest_existing(p)
    if not anc.is_dir():
        raise InvalidParameterError(f"The '{name}' parameter must be a folder (existing or new). Got {str(path)!r}, "
                                    f"but {str(anc)!r} is a file.")
    _probe_writable(name, path, anc)
    if kind is not None:
        check_replaceable(name, p, kind=kind, force=force)
    return p


def check_out_file(name: str, path):
    """Validate an output file path before any work: not a folder, its folder existing or creatable, writable."""
    from pathlib import Path

    from spinlens.errors import InvalidParameterError

    if path is None:
        return None
    _check_path_text(name, path)
    p = Path(path)
    if p.is_dir() or str(path).endswith(("/", "\\")):
        raise InvalidParameterError(f"The '{name}' parameter must be a file path. Got {str(path)!r}, a folder.")
    if p.exists() and not p.is_file():
        raise InvalidParameterError(f"The '{name}' parameter must be a regular file path. Got {str(path)!r}, "
                                    "an existing special file.")
    anc = _nearest_existing(p.parent if str(p.parent) else ".")
    if not anc.is_dir():
        raise InvalidParameterError(f"The '{name}' parameter must be a file path in a folder. Got {str(path)!r}, "
                                    f"but {str(anc)!r} is a file.")
    _probe_writable(name, path, anc)
    return p


# ------------------------------------------------------------------- folders written as one transaction

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "spinlens-manifest/1"
_STAGE_TAG = ".spinlens-new-"
_OLD_TAG = ".spinlens-old-"
#: staging folders of the transactions open in this process (a transaction on a path inside one of them writes
#: straight into it: the outer transaction switches the whole tree in at once)
_ACTIVE_STAGES: list[Path] = []
#: test hook: ``SPINLENS_KILL_AT_OP=k`` makes the k-th file operation of a transaction (``_op``) SIGKILL the
#: process, so a test can prove the old-or-new rule at every step (tests/io/test_kill_at_every_write.py)
_KILL_ENV = "SPINLENS_KILL_AT_OP"
_op_count = 0


def _op(what: str) -> None:
    """Count one file operation of a transaction; the kill hook of the tests fires here."""
    global _op_count
    k = os.environ.get(_KILL_ENV)
    if not k:
        return
    _op_count += 1
    if os.environ.get("SPINLENS_KILL_LOG"):
        with open(os.environ["SPINLENS_KILL_LOG"], "a") as fh:
            fh.write(f"{_op_count} {what}\n")
    if _op_count == int(k):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def sha256_file(path: str | os.PathLike, *, chunk: int = 1 << 20) -> str:
    """The SHA-256 (hex) of a file's bytes."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            b = fh.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def _tree_files(root: Path) -> list[str]:
    """Relative POSIX paths of the regular files under ``root`` (symlinks not followed)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for f in sorted(filenames):
            p = Path(dirpath) / f
            if p.is_file() and not p.is_symlink():
                out.append(p.relative_to(root).as_posix())
    return out


def write_manifest(folder: str | os.PathLike, *, kind: str, exclude=(), owners: dict | None = None) -> Path:
    """Write ``folder/manifest.json``: the SHA-256 and size of every file under ``folder`` (itself excluded).

    Every folder written by `folder_transaction` gets one; `read_manifest` / `verify_files` read it back.
    Top-level entries named in ``exclude`` (files a ``--force`` run kept) are not listed: they stay foreign.
    With ``owners`` (a shared run folder, `run_folder`) each file records the command that wrote it: its
    top-level entry's owner in ``owners``, else ``kind``.
    """
    folder = Path(folder)
    exclude = set(exclude)
    files = {}
    for rel in _tree_files(folder):
        if rel == MANIFEST_FILE or rel.split("/", 1)[0] in exclude:
            continue
        p = folder / rel
        files[rel] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        if owners is not None:
            files[rel]["kind"] = owners.get(rel.split("/", 1)[0], kind)
    from spinlens import __version__

    rec: dict[str, Any] = {"format": MANIFEST_FORMAT, "kind": kind, "spinlens_version": __version__, "files": files}
    if owners is not None:
        rec["shared"] = True
    return Path(write_json(folder / MANIFEST_FILE, rec, indent=1))


def read_manifest(folder: str | os.PathLike) -> dict | None:
    """The manifest of ``folder`` (``{"kind", "files": {relpath: {"sha256", "bytes"}}}``), None when it has none.

    A manifest that is not a readable spinlens manifest raises a one-line `InvalidParameterError`.
    """
    from spinlens.errors import InvalidParameterError

    p = Path(folder) / MANIFEST_FILE
    if not p.is_file() and not p.exists():
        return None
    check_regular_file("manifest", p)
    try:
        rec = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidParameterError(f"The folder {str(folder)!r} has a corrupt {MANIFEST_FILE} ({type(exc).__name__}); "
                                    "it was edited or torn: write the folder again.") from None
    files = rec.get("files") if isinstance(rec, dict) else None
    if (not isinstance(rec, dict) or rec.get("format") != MANIFEST_FORMAT or not isinstance(files, dict)
            or not all(isinstance(v, dict) and isinstance(v.get("sha256"), str) for v in files.values())):
        raise InvalidParameterError(f"The folder {str(folder)!r} has a {MANIFEST_FILE} that is not a spinlens manifest "
                                    f"({MANIFEST_FORMAT}); it was edited: write the folder again.")
    return rec


def verify_files(folder: str | os.PathLike, names, *, what: str = "checkpoint") -> dict | None:
    """Check the files ``names`` (relative paths) of ``folder`` against its manifest; return the manifest.

    A folder without a manifest (written before spinlens kept one) passes (returns None). Otherwise each
    name must be listed if present, present if listed, and hash to the recorded SHA-256; the first file that
    does not belong is named in one `InvalidParameterError` line.
    """
    from spinlens.errors import InvalidParameterError

    folder = Path(folder)
    man = read_manifest(folder)
    if man is None:
        return None
    files = man["files"]
    for name in names:
        p = folder / name
        listed = files.get(name)
        if not p.exists() and not p.is_symlink():
            if listed is not None:
                raise InvalidParameterError(f"The '{what}' parameter: {str(p)!r} is listed in {MANIFEST_FILE} but missing; "
                                            "the folder is torn: write it again.")
            continue
        if listed is None:
            raise InvalidParameterError(f"The '{what}' parameter: {str(p)!r} does not belong to the folder (not in its "
                                        f"{MANIFEST_FILE}); the folder is torn or edited: write it again.")
        check_regular_file(what, p)
        if sha256_file(p) != listed["sha256"]:
            raise InvalidParameterError(f"The '{what}' parameter: {str(p)!r} does not match its SHA-256 in {MANIFEST_FILE}; "
                                        "the folder is torn or edited: write it again.")
    return man


def no_duplicate_keys(pairs) -> dict:
    """``object_pairs_hook`` for `json.loads` that refuses a key given twice (plain JSON keeps the last one).

    >>> json.loads('{"a": 1, "a": 2}', object_pairs_hook=no_duplicate_keys)
    Traceback (most recent call last):
    ...
    ValueError: duplicate key 'a'
    """
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def strict_yaml_loader():
    """A YAML safe loader that refuses a key given twice in one mapping (PyYAML keeps the last one)."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        pass

    def construct_mapping(loader, node, deep=False):
        keys = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in keys:
                raise ValueError(f"duplicate key {key!r} (line {key_node.start_mark.line + 1})")
            keys.add(key)
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return StrictLoader


def without_manifest(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` is an existing folder without a readable manifest (written before spinlens kept one,
    or damaged): a cache spinlens owns by its name is then replaced with ``force`` (in place)."""
    from spinlens.errors import InvalidParameterError

    if not Path(folder).is_dir():
        return False
    try:
        return read_manifest(folder) is None
    except InvalidParameterError:
        return True


def check_regular_file(name: str, path: str | os.PathLike) -> Path:
    """Refuse a FIFO, socket or device in place of a file before anything opens it (opening a FIFO blocks)."""
    import stat

    from spinlens.errors import InvalidParameterError

    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise InvalidParameterError(f"The '{name}' parameter: {str(p)!r} does not exist.") from None
    except OSError as exc:
        raise InvalidParameterError(f"The '{name}' parameter: {str(p)!r} cannot be read ({exc.strerror}).") from None
    if not stat.S_ISREG(st.st_mode):
        kind = ("a folder" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode) else
                "a socket" if stat.S_ISSOCK(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode) or
                stat.S_ISBLK(st.st_mode) else "not a regular file")
        raise InvalidParameterError(f"The '{name}' parameter must be a regular file. Got {str(p)!r}, {kind}.")
    return p


def _top_entries(folder: Path) -> set[str]:
    return {e.name for e in os.scandir(folder)}


def _owners(folder: Path) -> tuple[dict[str, str], dict | None]:
    """(top-level name -> the kind that wrote it, per ``folder``'s manifest; the manifest), ``({}, None)`` without
    a readable manifest."""
    try:
        man = read_manifest(folder)
    except Exception:  # noqa: BLE001 - an unreadable manifest owns nothing
        return {}, None
    if man is None:
        return {}, None
    owners: dict[str, str] = {}
    for rel, rec in man["files"].items():
        owner = rec.get("kind") if man.get("shared") else None
        owners.setdefault(rel.split("/", 1)[0], owner if isinstance(owner, str) else str(man.get("kind")))
    return owners, man


def _owned_entries(folder: Path, kind: str, shared: bool = False) -> tuple[set[str], dict | None]:
    """(top-level names of ``folder`` a transaction may replace or keep: written by ``kind``, or with ``shared``
    by any command of a shared run folder; its manifest)."""
    owners, man = _owners(folder)
    if man is None:
        return set(), man
    if shared and man.get("shared"):
        return {MANIFEST_FILE} | set(owners), man
    if man.get("kind") != kind:
        return set(), man
    return {MANIFEST_FILE} | set(owners), man


def check_replaceable(name: str, path, *, kind: str, force: bool = False, shared: bool = False) -> Path:
    """Refuse, before any work, an output folder that holds files a transaction of ``kind`` did not write.

    A missing or empty folder, or one whose ``manifest.json`` (of the same ``kind``) lists everything in it, is
    replaced as a whole. With ``shared`` (a run folder, `run_folder`) a folder whose shared manifest lists
    everything in it is accepted too: the files of other commands are kept. Anything else is refused in one
    line unless ``force``.
    """
    from spinlens.errors import InvalidParameterError

    p = Path(path)
    _recover(p)
    if not p.exists():
        return p
    if not p.is_dir() or p.is_symlink():
        raise InvalidParameterError(f"The '{name}' parameter must be a folder (existing or new). Got {str(path)!r}, "
                                    "an existing file." if not p.is_dir() else
                                    f"The '{name}' parameter must be a real folder, not a symlink. Got {str(path)!r}.")
    if force:
        return p
    present = _top_entries(p)
    owned, man = _owned_entries(p, kind, shared)
    foreign = sorted(present - owned)
    if foreign:
        why = (f"written by '{man.get('kind')}'" if man is not None and man.get("kind") != kind
               and not (shared and man.get("shared")) else
               "not written by a spinlens command" if shared else f"not written by '{kind}'")
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise InvalidParameterError(
            f"The '{name}' parameter must be a new or empty folder, or one written earlier by "
            f"{'spinlens' if shared else repr(kind)}. Got "
            f"{str(path)!r}, which holds files {why} ({shown}); choose another folder or pass --force "
            "(other files are then kept, same-named ones replaced)."
        )
    return p


def _siblings(path: Path, tag: str) -> list[Path]:
    parent = path.parent
    if not parent.is_dir():
        return []
    prefix = f".{path.name}{tag}"
    return [parent / e.name for e in os.scandir(parent) if e.name.startswith(prefix)]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _stage_pid(p: Path) -> int | None:
    try:
        return int(p.name.rsplit("-", 2)[-2])
    except (ValueError, IndexError):
        return None


def _recover(path: Path) -> None:
    """Finish what a killed transaction left: put the old state back where the switch was cut (fallback path
    without an atomic exchange), and remove the staging folders of dead processes (never the user's files)."""
    import shutil

    for old in _siblings(path, _OLD_TAG):
        pid = _stage_pid(old)
        if pid is not None and pid != os.getpid() and _pid_alive(pid):
            continue
        if not path.exists():
            os.rename(old, path)  # the new state never arrived: the old one comes back whole
        else:
            shutil.rmtree(old, ignore_errors=True)  # the new state is in place: the old one was on its way out
    for stage in _siblings(path, _STAGE_TAG):
        pid = _stage_pid(stage)
        if pid is not None and pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(stage, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    if fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    return False


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _inside_stage(path: Path) -> Path | None:
    ap = path.absolute()
    for stage in reversed(_ACTIVE_STAGES):
        if ap == stage or stage in ap.parents:
            return stage
    return None


@contextlib.contextmanager
def folder_transaction(path: str | os.PathLike, *, kind: str, force: bool = False, name: str = "out",
                       shared: bool = False):
    """Write a whole folder as one transaction: yield an empty staging folder, switch it in on success.

    The staging folder is a hidden sibling (``.NAME.spinlens-new-PID-XXXX``) on the same file system. On
    success a ``manifest.json`` (SHA-256 of every file, `write_manifest`) is written into it and it replaces
    ``path`` in one atomic step: a rename for a new (or empty) folder, an atomic exchange of the two folders
    (Linux ``renameat2``) for an existing one, after which the old state is removed. Where the exchange is
    unsupported the old folder is renamed aside and the new one renamed in (two renames; a kill between them
    leaves ``path`` absent and the old state in ``.NAME.spinlens-old-*``, which the next transaction on
    ``path`` puts back). On any exception, ``KeyboardInterrupt`` included, the staging folder is removed and
    ``path`` is untouched. A kill at any moment leaves the complete old state or the complete new one.

    An existing folder must be empty or written earlier by a transaction of the same ``kind`` (its manifest
    lists everything in it, `check_replaceable`); anything else is refused in one line before any work unless
    ``force``. With ``force`` the new files are moved into the existing folder one by one (each atomically,
    files of the earlier manifest that the new state lacks removed, the manifest last) and every other file is
    kept: a kill then can leave a mix, which the loader refuses against the manifest.

    A transaction on a path inside the staging folder of an open transaction writes there directly (the outer
    one switches the whole tree in) and only adds the inner folder's manifest.

    ``shared`` (run folders, `run_folder`): the folder may also hold the files of other commands, listed with
    their owner in its manifest; they are kept (as hard links, in the same switch) and only the files of an
    earlier run of ``kind`` are replaced.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "model"
    >>> with folder_transaction(out, kind="demo") as stage:
    ...     _ = (stage / "a.txt").write_text("new")
    >>> sorted(p.name for p in out.iterdir())
    ['a.txt', 'manifest.json']
    """
    import shutil

    path = Path(path)
    if path.name in ("", ".", ".."):
        path = path.resolve()  # `--out .`: the staging folder must be a sibling, not inside the target
    outer = _inside_stage(path)
    if outer is not None:
        if path.absolute() in _CARRIED:  # a cache carried from the old state is rewritten: its links go first
            shutil.rmtree(path)
            _CARRIED.discard(path.absolute())
        path.mkdir(parents=True, exist_ok=True)  # everything inside a staging folder was written by this run
        yield path
        write_manifest(path, kind=kind)
        return
    check_replaceable(name, path, kind=kind, force=force, shared=shared)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _staging(path, 0o777 & ~_umask()) as stage:
        yield stage
        in_place = force and _holds_cwd(path)
        kept, owners = ([], {}) if in_place or not (force or shared) else _link_others(path, stage, kind, shared)
        write_manifest(stage, kind=kind, exclude=kept, owners=owners if shared else None)
        _op("manifest")
        # again: another process may have written meanwhile
        check_replaceable(name, path, kind=kind, force=force, shared=shared)
        if in_place and path.exists() and any(path.iterdir()):
            _commit_in_place(stage, path)
        else:
            switch_folder(stage, path)


@contextlib.contextmanager
def _staging(path: Path, mode: int):
    """A hidden staging sibling of ``path`` (``.NAME.spinlens-new-PID-XXXX``, permissions ``mode``), known to
    the kill recovery while open; removed when the block fails (any exception, ``KeyboardInterrupt``
    included). On success the block has moved it into place."""
    import shutil
    import tempfile as _tf

    stage = Path(_tf.mkdtemp(dir=path.parent, prefix=f".{path.name}{_STAGE_TAG}{os.getpid()}-"))
    os.chmod(stage, mode)
    _ACTIVE_STAGES.append(stage.absolute())
    try:
        _op("stage")
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    finally:
        _ACTIVE_STAGES.remove(stage.absolute())
        for c in [c for c in _CARRIED if c == stage.absolute() or stage.absolute() in c.parents]:
            _CARRIED.discard(c)


def _holds_cwd(path: Path) -> bool:
    """Whether ``path`` is the working folder or one above it (it cannot be switched: the process stands in it)."""
    try:
        here, p = Path.cwd().resolve(), path.resolve()
    except OSError:
        return True
    return here == p or p in here.parents


def _link_tree(src: Path, dst: Path) -> None:
    """Put ``src`` (file, symlink or folder tree) at ``dst`` as hard links (copies where links are refused);
    the files themselves are not touched."""
    import shutil

    if src.is_dir() and not src.is_symlink():
        shutil.copytree(src, dst, symlinks=True, copy_function=_link_or_copy)
    else:
        _link_or_copy(src, dst)


def _link_or_copy(src, dst) -> None:
    import shutil

    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dst, follow_symlinks=False)
    _op(f"keep {Path(src).name}")


def _link_others(path: Path, stage: Path, kind: str, shared: bool = False) -> tuple[list[str], dict[str, str]]:
    """Put into ``stage`` (as hard links) every entry of ``path`` that the new state does not replace and that an
    earlier run of ``kind`` did not write (those are stale); return (the names kept as foreign files, the
    names kept as other commands' files of a shared run folder -> their owner)."""
    if not path.is_dir():
        return [], {}
    owners, man = _owners(path)
    shared_man = shared and man is not None and man.get("shared")
    new = {e.name for e in os.scandir(stage)}
    foreign, others = [], {}
    for e in sorted(os.scandir(path), key=lambda e: e.name):
        owner = owners.get(e.name)
        if e.name in new or e.name == MANIFEST_FILE or (owner == kind and (shared_man or (man is not None and man.get("kind") == kind))):
            continue
        _link_tree(path / e.name, stage / e.name)
        if shared_man and owner is not None:
            others[e.name] = owner
        else:
            foreign.append(e.name)
    return foreign, others


@contextlib.contextmanager
def folder_update(path: str | os.PathLike, *, drop=()):
    """Change several files of a folder in one atomic step: yield a staging copy of ``path`` (its entries as hard
    links, less the top-level names in ``drop``), which replaces ``path`` when the block ends without an error.

    Files written into the staging copy replace their links (`atomic_path` renames over them), so the old
    state is never modified: an error, Ctrl-C or a kill leaves ``path`` as it was, and a reader sees the old
    folder or the new one. No manifest is written (the folder keeps its own rules, e.g. a sweep's journal).
    Used by `spinlens.sweeps` for the switches of a sweep folder (start over, finish).
    """
    import shutil

    path = Path(path)
    if path.name in ("", ".", ".."):
        path = path.resolve()
    path.mkdir(parents=True, exist_ok=True)
    _recover(path)
    with _staging(path, os.stat(path).st_mode & 0o7777) as stage:
        for e in sorted(os.scandir(path), key=lambda e: e.name):
            if e.name not in set(drop):
                _link_tree(path / e.name, stage / e.name)
        yield stage
        if _holds_cwd(path):  # cannot switch the folder the process stands in: entry by entry
            for e in sorted(os.scandir(stage), key=lambda e: e.name):
                dst = path / e.name
                if dst.is_dir() and not dst.is_symlink():
                    shutil.rmtree(dst)
                os.replace(stage / e.name, dst)
                _op(f"move {e.name}")
            for name in set(drop) - {e.name for e in os.scandir(stage)}:
                q = path / name
                shutil.rmtree(q) if q.is_dir() and not q.is_symlink() else q.unlink(missing_ok=True)
            shutil.rmtree(stage, ignore_errors=True)
        else:
            switch_folder(stage, path)


#: caches carried into an open run folder's staging folder from the old state (hard links; see `run_folder`)
_CARRIED: set[Path] = set()
#: staging folder name -> the name the user gave (`public_text`)
_PUBLIC: dict[str, str] = {}


def public_text(text: str) -> str:
    """``text`` with the staging folders of open run folders named as the folders they become.

    >>> public_text("wrote out/figure.png")
    'wrote out/figure.png'
    """
    for stage, final in _PUBLIC.items():
        text = text.replace(stage, final)
    return text


class _PublicStream:
    """A text stream that writes through `public_text` (what a command prints names the user's folder)."""

    def __init__(self, raw):
        self._raw = raw

    def write(self, s):
        return self._raw.write(public_text(s) if isinstance(s, str) else s)

    def __getattr__(self, name):
        return getattr(self._raw, name)


@contextlib.contextmanager
def run_folder(path: str | os.PathLike, *, kind: str, force: bool = False, name: str = "out", carry=()):
    """A command's run folder (``--out``) as one transaction (`folder_transaction`): yield the staging folder.

    Everything the command writes goes into the staging folder, which replaces ``path`` in one atomic step
    when the command succeeds; an error, Ctrl-C or a kill leaves ``path`` as it was. While it is open, what
    the command prints and the JSON it writes name ``path``, not the staging folder (`public_text`).

    A run folder is shared: several commands may write into one ``--out``. Its manifest records the command
    that wrote each file; a run replaces the files of the earlier run of ``kind`` (stale ones go) and keeps the
    other commands' files, all in the same switch. Files no spinlens command wrote are refused up front unless
    ``force`` (then kept).

    ``carry`` names sub-folders that are caches of the run (``base``: a model trained once, validated and
    retrained by the command when it does not fit): when the old state of ``path`` was written by ``kind``,
    they are put into the staging folder as hard links before the command starts, so a re-run reuses them;
    a cache the command writes again replaces its links, never the old files.
    """
    import shutil

    path = Path(path)
    with folder_transaction(path, kind=kind, force=force, name=name, shared=True) as stage:
        if stage == path or path.resolve() == stage.resolve():  # inside an open transaction: part of it
            yield stage
            return
        owned, _ = _owned_entries(path, kind, shared=True) if path.is_dir() else (set(), None)
        for rel in carry:
            src = path / rel
            if rel in owned and src.is_dir() and not src.is_symlink() and (src / MANIFEST_FILE).is_file():
                try:
                    _link_tree(src, stage / rel)
                    _CARRIED.add((stage / rel).absolute())
                except OSError:
                    shutil.rmtree(stage / rel, ignore_errors=True)  # no cache: the command builds it again
        old_out, old_err = sys.stdout, sys.stderr
        _PUBLIC[stage.name] = path.name
        sys.stdout, sys.stderr = _PublicStream(old_out), _PublicStream(old_err)
        try:
            yield stage
        finally:
            sys.stdout, sys.stderr = old_out, old_err
            _PUBLIC.pop(stage.name, None)


def switch_folder(stage: str | os.PathLike, path: str | os.PathLike) -> None:
    """Put the complete folder ``stage`` at ``path`` (a sibling on the same file system) in one atomic step.

    ``path`` absent or empty: a rename. Otherwise an atomic exchange (Linux ``renameat2``) and the old state,
    now at ``stage``, removed; without an exchange, the old folder is renamed aside
    (``.NAME.spinlens-old-PID-XXXX``, put back by the next `check_replaceable` on ``path`` if a kill strikes
    before the new one is renamed in). The switch step of `folder_transaction`.
    """
    import shutil
    import tempfile as _tf

    stage, path = Path(stage), Path(path)
    if not path.exists():
        os.rename(stage, path)
        _op("rename")
        _fsync_dir(path.parent)
        return
    if not any(path.iterdir()):
        os.replace(stage, path)  # rename(2) onto an empty folder is atomic
        _op("rename")
        _fsync_dir(path.parent)
        return
    if _exchange(stage, path):
        _op("exchange")
        _fsync_dir(path.parent)
        shutil.rmtree(stage)  # now the old state
        _op("remove old")
        return
    old = Path(_tf.mkdtemp(dir=path.parent, prefix=f".{path.name}{_OLD_TAG}{os.getpid()}-"))
    os.replace(path, old)  # the documented window: from here to the next rename `path` is absent
    _op("rename old aside")
    os.rename(stage, path)
    _op("rename new in")
    _fsync_dir(path.parent)
    shutil.rmtree(old)
    _op("remove old")


def _commit_in_place(stage: Path, path: Path) -> None:
    """``--force`` into a folder holding other files: move each new entry in atomically, keep the rest."""
    import shutil

    old_man = None
    try:
        old_man = read_manifest(path)
    except Exception:  # noqa: BLE001 - a corrupt manifest is replaced below
        pass
    new_entries = sorted(e.name for e in os.scandir(stage) if e.name != MANIFEST_FILE)
    for entry in new_entries:
        src, dst = stage / entry, path / entry
        if dst.is_dir() and not dst.is_symlink() and src.is_dir():
            aside = stage / f".{entry}.old"
            os.rename(dst, aside)
            os.rename(src, dst)
            shutil.rmtree(aside)
        else:
            if dst.is_dir() and not dst.is_symlink():
                shutil.rmtree(dst)
            os.replace(src, dst)
        _op(f"move {entry}")
    if old_man is not None:  # files of the earlier run that the new state lacks: stale, never mixed in
        new_files = set(json.loads((stage / MANIFEST_FILE).read_text())["files"])
        for rel in old_man["files"]:
            if rel not in new_files and rel.split("/", 1)[0] not in new_entries:
                (path / rel).unlink(missing_ok=True)
    os.replace(stage / MANIFEST_FILE, path / MANIFEST_FILE)  # lists the new files only: the others stay foreign
    _op("manifest in place")
    shutil.rmtree(stage, ignore_errors=True)
