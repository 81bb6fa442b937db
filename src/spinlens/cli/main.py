"""Entry point of the ``spinlens`` command.

Each subcommand lives in ``spinlens/cli/<module>.py`` and defines ``register(subparsers)``, which adds
its parser and sets ``func`` (called with the parsed namespace, returns an exit code). Command modules
import only argparse at top level: heavy libraries (torch, matplotlib) are imported inside ``func``, so
``spinlens --help`` stays fast. `main` is the one error boundary: bad input (`InvalidParameterError`, an
unusable file) prints one line and exits 2; any other exception prints one line naming its type and exits 1
(``--debug`` or ``SPINLENS_DEBUG=1`` re-raises it with the traceback).
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
    "models_cmd",
]

EPILOG = """examples:
  spinlens solve --D 20 --N 100 --P 10000 --lam 0.01 --method cavity
  spinlens solve --D 10 --N 50 --P 2000 --method exact --json
  spinlens demo --out demo-out

flags: the paper's symbols (--D --N --P --K --lam --beta ...), each with a long alias (docs/vocabulary.md).
exit codes: 0 done, 2 bad input (one line), 3 did not converge (result written, one warning line),
  1 internal error (one line; add --debug anywhere, or set SPINLENS_DEBUG=1, for the traceback).
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
    from ._common import apply_vocabulary

    apply_vocabulary(parser)  # the paper's symbols, long aliases and deprecated spellings on every command
    _add_force(parser)
    return parser


FORCE_HELP = ("write into an --out folder that holds files of another kind (your files, another command's "
              "outputs): they are kept, same-named ones replaced; refused in one line otherwise")


def _add_force(parser) -> None:
    """Give every command with an ``--out`` run folder the ``--force`` flag of `spinlens.io.run_folder`."""
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for sub in a.choices.values():
                _add_force(sub)
    dests = {a.dest for a in parser._actions}
    kind = parser.prog.split(" ", 1)[1] if " " in parser.prog else ""
    if "out" in dests and "force" not in dests and kind not in SELF_MANAGED:
        parser.add_argument("--force", action="store_true", help=FORCE_HELP)


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


def _find_parser(parser, prog: str):
    """The (sub)parser whose prog is ``prog``."""
    if parser.prog == prog:
        return parser
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for sub in a.choices.values():
                found = _find_parser(sub, prog)
                if found is not None:
                    return found
    return None


def main(argv: list[str] | None = None) -> int:
    """Run one command; the error boundary of the command line.

    Exit codes (docs/cli.md): 0 success; 2 bad input (one line on stderr naming the parameter or the file,
    nothing written); 3 finished but did not converge (results written, ``"converged": false``, one warning
    line); 1 an unexpected internal error (one line with the exception type; ``--debug`` or
    ``SPINLENS_DEBUG=1`` shows the traceback); 130 interrupted.
    """
    import os

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("SPINLENS_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    if "--allow-nonfinite" in argv:  # load checkpoints holding NaN/inf weights (refused otherwise)
        os.environ["SPINLENS_ALLOW_NONFINITE"] = "1"
        argv = [a for a in argv if a != "--allow-nonfinite"]
    parser = build_parser()
    args = parser.parse_args(argv)
    prog = _command_prog(parser, argv)
    if not getattr(args, "func", None):
        if prog == parser.prog:
            parser.print_help()
            return 2
        group = _find_parser(parser, prog)
        subs = [a for a in group._actions if isinstance(a, argparse._SubParsersAction)]
        choices = ", ".join(subs[0].choices) if subs else ""
        print(f"{prog}: error: choose one of: {choices} (see '{prog} --help')", file=sys.stderr)
        return 2
    import warnings

    try:
        with warnings.catch_warnings():
            if not debug:  # numpy's overflow chatter: the commands report non-finite results themselves
                warnings.filterwarnings("ignore", category=RuntimeWarning,
                                        message=r"(overflow|invalid value|divide by zero|underflow) encountered")
            code = _run_command(args, prog)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout went away (`spinlens ... | head`): stop quietly, as Unix tools do
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
        return 141
    except Exception as exc:  # noqa: BLE001 - the boundary: one line, never a traceback unless --debug
        if debug:
            raise
        msg, code = describe_error(exc)
        print(f"{prog}: {msg}", file=sys.stderr)
        return code
    return int(code or 0)


#: commands whose ``--out`` is not one run folder written by the dispatcher: they write their folders as
#: transactions themselves (lm, train, zoo train; reproduce, demo and zoo figS8 one per figure, OUT/FIG; sweep
#: a resumable journal) or take a file (report)
SELF_MANAGED = {"lm", "train", "zoo train", "sweep", "reproduce", "demo", "zoo figS8", "report"}
#: caches a re-run of a command reuses from its run folder (`spinlens.io.run_folder` ``carry``)
CARRY = {"steer": ("base",), "pinpoint": ("base",), "merge": ("base",), "quantize": ("base",)}


class _Abort(Exception):
    """A command returned a bad-input or failure code without raising: its run folder is not switched in."""


def _run_command(args, prog: str) -> int:
    """Run ``args.func``; a command's ``--out`` run folder is one transaction (`spinlens.io.run_folder`): the
    command writes into a staging folder that replaces OUT only when it ends with exit 0 or 3."""
    kind = prog.split(" ", 1)[1] if " " in prog else prog
    out = getattr(args, "out", None)
    if not isinstance(out, str) or kind in SELF_MANAGED:
        return args.func(args)
    from spinlens.io import check_out_dir, run_folder

    check_out_dir("--out", out)  # a bad path is one line before anything is made
    code = 0
    try:
        with run_folder(out, kind=kind, force=bool(getattr(args, "force", False)), carry=CARRY.get(kind, ()),
                        name="--out") as stage:
            args.out = str(stage)
            code = int(args.func(args) or 0)
            if code not in (0, 3):
                raise _Abort
    except _Abort:
        pass
    finally:
        args.out = out
    return code


def describe_error(exc: BaseException) -> tuple[str, int]:
    """(one-line message, exit code) for an exception that reached the command line's boundary."""
    from spinlens.errors import InvalidParameterError

    def one_line(text) -> str:
        text = " ".join(str(text).split())
        return text if len(text) <= 400 else text[:397] + "..."

    if isinstance(exc, InvalidParameterError):
        return f"error: {one_line(exc)}", 2
    if isinstance(exc, MemoryError):
        return ("error: not enough memory for this request; choose smaller sizes "
                f"({type(exc).__name__}: {one_line(exc) or 'allocation failed'})"), 2
    if isinstance(exc, UnicodeDecodeError):
        return (f"error: an input file is not UTF-8 text ({one_line(exc)}); pass the text file the option expects", 2)
    if isinstance(exc, (OverflowError, FloatingPointError)):
        return ("error: the input overflows float64 or a machine integer "
                f"({type(exc).__name__}: {one_line(exc)}); choose smaller sizes or rescale the values"), 2
    if isinstance(exc, OSError) and getattr(exc, "filename", None) is not None:
        reason = exc.strerror or one_line(exc)
        return f"error: cannot use the file or folder {str(exc.filename)!r}: {reason}", 2
    detail = one_line(exc)
    return (f"internal error: {type(exc).__name__}{': ' + detail if detail else ''} "
            "(this is a bug in spinlens; rerun with --debug or SPINLENS_DEBUG=1 for the traceback)"), 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
