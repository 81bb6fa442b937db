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


# validators of output paths and devices live in the library (spinlens.io, spinlens.errors); re-exported here
from spinlens.errors import check_device  # noqa: E402,F401
from spinlens.io import check_out_dir, check_out_file  # noqa: E402,F401
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


def write_experiment(out, stem, ds, fig, args, extra=None):
    """Write an experiment's Dataset (CSV + NetCDF), its figure (PNG + PDF) and run.json under ``out``
    (nothing when ``out`` is None; the figure is closed either way)."""
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
            _to_csv(ds[rest].drop_dims("run", errors="ignore"), out, f"{stem}_{'_'.join(rest)}")
    else:
        _to_csv(ds, out, stem)
    io.save_dataset(ds, out, stem)
    io.save_figure(fig, out, stem, dpi=150)
    base = stem.removesuffix("_lm")
    command = {"steering": "steer", "merging": "merge", "quantization": "quantize"}.get(base, base)
    io.write_run_json(out, io.run_record(command, args=args, seed=args.seed, attrs=dict(ds.attrs),
                                         **(extra or {})))


def _to_csv(ds, out, name):
    import pandas as pd

    from spinlens.io import save_dataframe

    frames = []
    for var, da in ds.data_vars.items():
        df = da.to_dataframe(name="value").reset_index()
        df.insert(0, "variable", var)
        frames.append(df)
    save_dataframe(pd.concat(frames, ignore_index=True), out, name, index=False)
