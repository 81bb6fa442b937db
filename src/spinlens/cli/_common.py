"""Helpers shared by CLI commands (argument parsing of numbers, JSON output, run.json)."""

from __future__ import annotations

import argparse
import json
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


class _DeprecatedSpelling:
    """Mixin for an argparse action reached by an old flag spelling: warn once, then act as usual."""

    _deprecated: dict = {}

    def __call__(self, parser, namespace, values, option_string=None):
        new = self._deprecated.get(option_string)
        if new:
            print(f"{parser.prog}: warning: {option_string} is deprecated; use {new}", file=sys.stderr)
        return super().__call__(parser, namespace, values, option_string)


MAX_INT = 2**53  # integers above this overflow C integers and float64 sizes; reject them while parsing


def bounded_int(text: str) -> int:
    """argparse type for integer flags: an integer of at most 2**53 in size (no silent C overflow later)."""
    value = int(text)
    if abs(value) > MAX_INT:
        raise argparse.ArgumentTypeError(f"integer too large: {text!r} (at most 2**53 = {MAX_INT})")
    return value


bounded_int.__name__ = "int"  # argparse names the type in "invalid int value: ..."


def apply_vocabulary(parser) -> None:
    """Give every flag of a quantity in `spinlens.vocabulary` its symbol and long alias, in every (sub)command.

    A flag declared under any spelling of a table quantity (``--d``, ``--n-context``, ``--N``, ...) becomes
    ``--N`` with the alias ``--context-length``; the other spellings it was declared with stay accepted,
    hidden from --help, and print a deprecation warning. The ``dest`` (the attribute the command reads) is
    unchanged. Called once by `spinlens.cli.main.build_parser`.
    """
    from spinlens.vocabulary import by_symbol, cli_spellings

    spell = cli_spellings()
    for action in list(parser._actions):
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                apply_vocabulary(sub)
            continue
        if action.type is int:
            action.type = bounded_int
        symbols = {spell[o][0] for o in action.option_strings if o in spell}
        if len(symbols) != 1:
            continue
        term = by_symbol(symbols.pop())
        visible = [term.flag, term.long_flag]
        taken = [o for o in visible if parser._option_string_actions.get(o, action) is not action]
        if taken:
            continue
        old = {o: term.flag for o in action.option_strings if o not in visible}
        for o in visible:
            parser._option_string_actions[o] = action
        action.option_strings = visible
        if action.metavar is None and action.nargs != 0:
            action.metavar = term.symbol.upper()
        if old:
            cls = action.__class__
            action.__class__ = type(f"Deprecated{cls.__name__}", (_DeprecatedSpelling, cls), {})
            action._deprecated = old


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
    if dev.type not in ("cpu", "cuda", "mps"):
        raise InvalidParameterError(
            f"The '{name}' parameter must be a device spinlens can train on: 'cpu', 'cuda', 'cuda:N' or 'mps'. "
            f"Got {value!r} instead."
        )
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidParameterError(f"The '{name}' parameter is {value!r} but CUDA is not available here; use 'cpu'.")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise InvalidParameterError(f"The '{name}' parameter is {value!r} but this machine has "
                                    f"{torch.cuda.device_count()} CUDA device(s).")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InvalidParameterError(f"The '{name}' parameter is {value!r} but MPS is not available here; use 'cpu'.")
    return value


EXIT_BAD_INPUT = 2
EXIT_NOT_CONVERGED = 3


def convergence_exit(prog: str, converged: bool, reason: str = "", *, what: str = "") -> int:
    """The one rule for non-convergence (docs/cli.md), shared by every command.

    A result that did not converge (a solver that stopped short, a fixed point that was not reached, a
    training run whose loss diverged or became non-finite) is still printed and written, carries
    ``"converged": false`` in the JSON output and in run.json, gets ONE warning line on stderr
    (``<prog>: warning: did not converge: <reason>``), and the command exits with code 3.
    Returns the exit code: 0 when converged, else 3.
    """
    if converged:
        return 0
    subject = f"{what} " if what else ""
    print(f"{prog}: warning: {subject}did not converge: {' '.join(str(reason).split()) or 'no reason given'}",
          file=sys.stderr)
    return EXIT_NOT_CONVERGED


def all_finite(*values) -> bool:
    """True when every value (scalars or arrays; None counts as missing, not as non-finite) is finite."""
    import numpy as np

    for v in values:
        if v is None:
            continue
        try:
            if not np.all(np.isfinite(np.asarray(v, dtype=float))):
                return False
        except (TypeError, ValueError):
            return False
    return True


from spinlens.io import jsonable  # noqa: E402  (one JSON conversion for stdout and files)


def print_json(obj) -> None:
    json.dump(jsonable(obj), sys.stdout, indent=None)
    sys.stdout.write("\n")


def print_table(rows: list[tuple[str, object]]) -> None:
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        if isinstance(v, float):
            v = f"{v:.6g}"
        print(f"{k:<{width}}  {v}")


def warn_deprecated(message: str) -> None:
    """One line on stderr for an old spelling that still works (it will go in a later release)."""
    print(f"spinlens: deprecated: {message}", file=sys.stderr)


def load_checkpoint_arg(path, *, flag: str = "checkpoint", transformer: bool = True, deprecated: str | None = None):
    """Load the spinlens model folder given under ``--flag``: ``(model, Checkpoint)``.

    ``transformer=True`` requires a `spinlens.models.transformer.Transformer` (a ``save_model`` folder of one,
    or a ``zoo train --arch tf`` folder). Older layouts (a ``model/`` subfolder, a single ``.safetensors``
    file) still load, with a deprecation line on stderr. ``deprecated``: a deprecation message printed once the
    model has loaded (an error stays the only line on stderr).
    """
    import warnings

    from spinlens.errors import InvalidParameterError
    from spinlens.models.checkpoint import load_model, read_checkpoint
    from spinlens.models.transformer import Transformer

    try:
        ck = read_checkpoint(path)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", FutureWarning)
            model = load_model(path, kind=Transformer if transformer else None)
    except InvalidParameterError as exc:
        raise InvalidParameterError(str(exc).replace("The 'checkpoint' parameter", f"The '{flag}' parameter")) from None
    if deprecated:
        warn_deprecated(deprecated)
    for w in caught:
        if issubclass(w.category, FutureWarning):
            warn_deprecated(f"--{flag} {path}: {w.message}")
    return model, ck


def write_result(out, stem, ds, fig, args, extra=None):
    """Write one result (dataset as CSV + NetCDF, figure as PNG + PDF, run.json) under ``out``; close the figure."""
    from spinlens import io

    if out is None:
        import matplotlib.pyplot as plt

        plt.close(fig)
        return
    if "run" in ds.dims:
        run_vars = [v for v in ds.data_vars if ds[v].dims == ("run",)]
        io.save_dataframe(ds[run_vars].to_dataframe(), out, stem)
        rest = [v for v in ds.data_vars if v not in run_vars]
        if rest:
            _dataset_csv(ds[rest].drop_dims("run", errors="ignore"), out, f"{stem}_{'_'.join(rest)}")
    else:
        _dataset_csv(ds, out, stem)
    io.save_dataset(ds, out, stem)
    io.save_figure(fig, out, stem, dpi=150)
    io.write_run_json(out, io.run_record(args.func.__name__.lstrip("_"), args=args, seed=args.seed, attrs=dict(ds.attrs),
                                         **(extra or {})))


def _dataset_csv(ds, out, name):
    import pandas as pd

    from spinlens.io import save_dataframe

    frames = []
    for var, da in ds.data_vars.items():
        df = da.to_dataframe(name="value").reset_index()
        df.insert(0, "variable", var)
        frames.append(df)
    save_dataframe(pd.concat(frames, ignore_index=True), out, name, index=False)
