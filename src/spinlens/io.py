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
`save_figure`               ``OUT/<stem>.png`` and ``OUT/<stem>.pdf`` (the one figure saver)
`save_dataset`              ``OUT/<name>.nc`` (NetCDF; attributes made NetCDF-safe)
`save_columns`              ``OUT/<name>.csv`` from equal-length columns
`save_dataframe`            ``OUT/<name>.csv`` from a pandas DataFrame
`git_sha`                   the git commit of the spinlens source tree (None outside a checkout)
`package_versions`          versions of Python, spinlens and the scientific stack
`check_out_dir/_file`       validate an output folder / file path before any work (one-line error)
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
    "save_figure",
    "save_dataset",
    "save_columns",
    "save_dataframe",
    "git_sha",
    "package_versions",
    "check_out_dir",
    "check_out_file",
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
    text = json.dumps(jsonable(obj), indent=indent, default=str)
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


def write_hf_model(out_dir: str | os.PathLike, model, *, tokenizer=None, record: dict | None = None) -> str:
    """Write a Hugging Face model as a plain folder (``save_pretrained``, safetensors), loadable by transformers
    alone, with its tokenizer and ``run.json``; return the folder.

    The folder is written next to its target under a temporary name and renamed onto it when complete: a
    reader sees the old folder or the new one, never half of one.
    """
    import shutil

    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        getattr(model, "hf", model).save_pretrained(str(tmp), safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
        if record is not None:
            write_run_json(tmp, record)
        os.chmod(tmp, 0o777 & ~_umask())
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return str(out)


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


def check_out_dir(name: str, path):
    """Validate an output folder before any work: an existing folder or a creatable one, writable.

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
