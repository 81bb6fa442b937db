"""Helpers shared by CLI commands (argument parsing of numbers, JSON output, run.json)."""

from __future__ import annotations

import argparse
import json
import math
import sys


class Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults and keep the examples in the epilog as written."""


class OneLineErrorParser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line on stderr (exit code 2), like `InvalidParameterError`.

    Unrecognized arguments are reported by the subcommand that received them, also in one line.
    Subparsers added with ``add_subparsers`` inherit this class.
    """

    def error(self, message):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")

    def parse_known_args(self, args=None, namespace=None):
        ns, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return ns, extras


def add_command(sub, name: str, help: str, examples: str, func):
    p = sub.add_parser(name, help=help, description=help, epilog="examples:\n" + examples, formatter_class=Formatter)
    p.__class__ = OneLineErrorParser  # one-line usage errors here and in nested subcommands
    p.set_defaults(func=func)
    return p


def _nearest_existing(path):
    from pathlib import Path

    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_out_dir(name: str, path):
    """Validate an output folder before any work: it may exist as a folder or be creatable (no file in the way)."""
    from pathlib import Path

    from spinlens.errors import InvalidParameterError

    if path is None:
        return None
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InvalidParameterError(f"The '{name}' parameter must be a folder (existing or new). Got {str(path)!r}, an existing file.")
    anc = _nearest_existing(p)
    if not anc.is_dir():
        raise InvalidParameterError(f"The '{name}' parameter must be a folder (existing or new). Got {str(path)!r}, "
                                    f"but {str(anc)!r} is a file.")
    return p


def check_out_file(name: str, path):
    """Validate an output file path before any work: not an existing folder, no file among its parent folders."""
    from pathlib import Path

    from spinlens.errors import InvalidParameterError

    if path is None:
        return None
    p = Path(path)
    if p.is_dir():
        raise InvalidParameterError(f"The '{name}' parameter must be a file path. Got {str(path)!r}, an existing folder.")
    anc = _nearest_existing(p.parent if str(p.parent) else ".")
    if not anc.is_dir():
        raise InvalidParameterError(f"The '{name}' parameter must be a file path in a folder. Got {str(path)!r}, "
                                    f"but {str(anc)!r} is a file.")
    return p


def check_device(name: str, value: str) -> str:
    """Validate a torch device string (imports torch): it must parse and, for cuda/mps, be available."""
    import torch

    from spinlens.errors import InvalidParameterError

    try:
        dev = torch.device(value)
    except (RuntimeError, TypeError, ValueError):
        raise InvalidParameterError(
            f"The '{name}' parameter must be a torch device such as 'cpu', 'cuda', 'cuda:0' or 'mps'. Got {value!r} instead."
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidParameterError(f"The '{name}' parameter is {value!r} but CUDA is not available here; use 'cpu'.")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InvalidParameterError(f"The '{name}' parameter is {value!r} but MPS is not available here; use 'cpu'.")
    return value


def jsonable(obj):
    """Convert numpy scalars/arrays and non-finite floats into JSON-friendly values (inf -> "inf")."""
    import numpy as np

    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        x = float(obj)
        if math.isnan(x):
            return None
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return x
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def print_json(obj) -> None:
    json.dump(jsonable(obj), sys.stdout, indent=None)
    sys.stdout.write("\n")


def print_table(rows: list[tuple[str, object]]) -> None:
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        if isinstance(v, float):
            v = f"{v:.6g}"
        print(f"{k:<{width}}  {v}")
