"""Helpers shared by CLI commands (argument parsing of numbers, JSON output, run.json)."""

from __future__ import annotations

import argparse
import json
import math
import sys


class Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults and keep the examples in the epilog as written."""


def add_command(sub, name: str, help: str, examples: str, func):
    p = sub.add_parser(name, help=help, description=help, epilog="examples:\n" + examples, formatter_class=Formatter)
    p.set_defaults(func=func)
    return p


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
