"""Entry point of the ``spinlens`` command.

Each subcommand lives in ``spinlens/cli/<module>.py`` and defines ``register(subparsers)``, which adds
its parser and sets ``func`` (called with the parsed namespace, returns an exit code). Command modules
import only argparse at top level: heavy libraries (torch, matplotlib) are imported inside ``func``, so
``spinlens --help`` stays fast. Bad input (`InvalidParameterError`) prints one line and exits 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# modules registering subcommands, in the order --help lists them; a missing module is skipped
COMMAND_MODULES = [
    "demo",
    "prompts_cmd",
    "solve",
    "train",
    "theory_cmd",
    "sweep_cmd",
    "reproduce_cmd",
    "landscape_cmd",
    "report_cmd",
    "zoo_cmd",
    "interp_cmd",
    "edit_cmd",
    "lm_cmd",
]

EPILOG = """examples:
  spinlens solve --D 20 --N 100 --P 10000 --lam 0.01 --method cavity
  spinlens solve --D 10 --N 50 --P 2000 --method exact --json
  spinlens demo --out demo-out
"""


def build_parser() -> argparse.ArgumentParser:
    from ._common import OneLineErrorParser

    parser = OneLineErrorParser(
        prog="spinlens",
        description="The spin glass model of in-context learning, and interpretability of ICL transformers.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from spinlens import __version__

    parser.add_argument("--version", action="version", version=f"spinlens {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod_name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(f"spinlens.cli.{mod_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"spinlens.cli.{mod_name}":
                continue
            raise
        mod.register(sub)
    return parser


def _command_prog(parser, argv) -> str:
    """The full name of the (sub)command being run, e.g. 'spinlens theory curve', for error messages."""
    prog = parser.prog
    for token in argv:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or token not in subs[0].choices:
            if token.startswith("-") or not subs:
                continue
            break
        parser = subs[0].choices[token]
        prog = parser.prog
    return prog


def main(argv: list[str] | None = None) -> int:
    from spinlens.errors import InvalidParameterError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    prog = _command_prog(parser, sys.argv[1:] if argv is None else argv)
    try:
        code = args.func(args)
    except InvalidParameterError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
