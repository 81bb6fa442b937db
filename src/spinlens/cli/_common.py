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


class _DeprecatedFlag(argparse.Action):
    """An old spelling of a flag, hidden from --help: one deprecation line on stderr, then it stores its value
    where the flag under the symbol does (same ``dest``, ``type`` and ``nargs``)."""

    def __init__(self, option_strings, dest, new: str = "", **kwargs):
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: warning: {option_string} is deprecated; use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_deprecated_flag(container, old: str, action: argparse.Action) -> None:
    """Accept the old spelling ``old`` for ``action`` (the flag declared under its symbol, e.g. ``--D``).

    The old spelling stays hidden from --help and prints ``<prog>: warning: --d is deprecated; use --D``.
    The spellings of `spinlens.vocabulary` (``Term.deprecated``) are added by `apply_vocabulary`; a command
    calls this itself only for an old spelling of its own (``sweep --n-prompts``, ``landscape --prompts``).
    """
    container.add_argument(old, dest=action.dest, type=action.type, nargs=action.nargs, choices=action.choices,
                           default=argparse.SUPPRESS, help=argparse.SUPPRESS, action=_DeprecatedFlag,
                           new=action.option_strings[0])


MAX_INT = 2**53  # integers above this overflow C integers and float64 sizes; reject them while parsing


def bounded_int(text: str) -> int:
    """argparse type for integer flags: an integer of at most 2**53 in size (no silent C overflow later)."""
    value = int(text)
    if abs(value) > MAX_INT:
        raise argparse.ArgumentTypeError(f"integer too large: {text!r} (at most 2**53 = {MAX_INT})")
    return value


bounded_int.__name__ = "int"  # argparse names the type in "invalid int value: ..."


def apply_vocabulary(parser) -> None:
    """Check every flag of a quantity of `spinlens.vocabulary` and add its old spellings, in every (sub)command.

    Each such flag is declared by its command under its symbol with the long name as alias
    (``add_argument("--D", "--token-dim", ...)``); a flag declared otherwise (``--d`` alone, ``--N`` without
    ``--context-length``) raises ``ValueError`` while the parser is built, so a test of any command finds it.
    The old spellings of the table (``--d``, ``--n-context``, ``--l2-strength``) are then added, hidden from
    --help, with a deprecation warning (`add_deprecated_flag`), where the command does not use that spelling
    for something else. Integer flags get `bounded_int`. Called once by `spinlens.cli.main.build_parser`.
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
        if isinstance(action, _DeprecatedFlag):
            continue
        terms = {spell[o][0] for o in action.option_strings if o in spell}
        if not terms:
            continue
        term = by_symbol(terms.pop()) if len(terms) == 1 else None
        if term is None or action.option_strings[:2] != [term.flag, term.long_flag] or len(action.option_strings) != 2:
            want = f"'{term.flag}', '{term.long_flag}'" if term else "one quantity's symbol and long name"
            raise ValueError(f"{parser.prog}: the flag {action.option_strings} must be declared as "
                             f"add_argument({want}, ...) (docs/vocabulary.md)")
        for old in term.deprecated:
            try:
                add_deprecated_flag(parser, "--" + old, action)
            except argparse.ArgumentError:  # the command uses this spelling for another quantity
                pass


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


def map_exit(prog: str, n_bad: int, n_total: int, *, strict: bool, unit: str = "points", mask: str = "") -> int:
    """The exit code of a map (a sweep, a phase diagram, a curve): where the solver did not converge is data.

    Every point is written, with its ``converged`` mask; the command exits 0 and prints one line on stderr
    with the converged count (``<prog>: 4 of 6 points converged; the others are masked in <mask>``).
    With ``strict`` (``--strict``) a point that did not converge makes it exit 3 through `convergence_exit`
    instead, as a single solve does (docs/cli.md).
    """
    if n_bad == 0:
        return 0
    if strict:
        return convergence_exit(prog, False, f"{n_bad} of {n_total} {unit}" + (f" ({mask})" if mask else ""))
    where = f"; the others are masked in {mask}" if mask else ""
    print(f"{prog}: {n_total - n_bad} of {n_total} {unit} converged{where} (exit 0; --strict makes this exit 3)",
          file=sys.stderr)
    return 0


def add_strict(parser) -> None:
    """``--strict``: a map whose solver did not converge at some point exits 3 (`map_exit`)."""
    parser.add_argument("--strict", action="store_true",
                        help="exit 3 if any point did not converge (default: exit 0; the 'converged' mask is the data)")


def add_yes(group) -> None:
    """``--yes``: run a job whose time estimate is beyond an hour (`spinlens.progress.check_duration`)."""
    group.add_argument("--yes", action="store_true", help="run even if the time estimate is beyond an hour")


def estimate_hook(prog: str, args, *, what: str, shrink: str):
    """The ``on_estimate`` of a training command (`spinlens.training.fit`): before the first step, refuse a job
    estimated beyond an hour without ``--yes`` and one that does not fit in memory (one line each, exit 2), and
    print the estimate on stderr (``<prog>: estimate about 42 s, 0.2 GiB``; not with ``--json``, whose output
    carries it)."""
    def hook(est) -> None:
        from spinlens.memory import check_memory
        from spinlens.progress import check_duration

        check_duration(est, yes=bool(getattr(args, "yes", False)), what=what, shrink=shrink)
        if est.memory is not None:
            check_memory(est.memory, what=what)
        if not getattr(args, "json", False):
            print(f"{prog}: estimate {est.describe()}", file=sys.stderr, flush=True)

    return hook


# validators of output paths and devices live in the library (spinlens.io, spinlens.errors); re-exported here
from spinlens.errors import check_device  # noqa: E402,F401
from spinlens.io import (  # noqa: E402,F401
    check_out_dir,
    check_out_file,
    jsonable,  # noqa: E402  (one JSON conversion for stdout and files)
)


def print_json(obj) -> None:
    json.dump(jsonable(obj), sys.stdout, indent=None)
    sys.stdout.write("\n")


def print_table(rows: list[tuple[str, object]]) -> None:
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        if isinstance(v, float):
            v = f"{v:.6g}"
        print(f"{k:<{width}}  {v}")


def print_headline(headline: dict) -> None:
    """The last lines of an experiment: its one-line headline and its verdict (`spinlens.verdict`)."""
    print(headline["text"])
    if "verdict" in headline:
        print(headline["verdict"]["line"])


def run_study(args, make, *, prefix: str = "  ") -> int:
    """The one runner of every interp command: check ``--out``, ``make(log)`` the library's
    `spinlens.experiment.StudyReport` (``log``: progress lines on stderr, None with ``--json``), write it under
    ``--out``, print its summary (``--json``) or its headline."""
    import sys

    check_out_dir("out", args.out)
    rep = make(None if args.json else (lambda s: print(f"{prefix}{s}", file=sys.stderr, flush=True)))
    if args.out:
        rep.write(args.out, args, seed=args.seed)
    if args.json:
        print_json(rep.summary)
        return 0
    if rep.rows:
        print_table(rep.rows)
    for line in rep.lines:
        print(line)
    if args.out and rep.files_key:
        for f in rep.summary.get(rep.files_key, []):
            print(f"  wrote {f}")
    elif args.out and rep.rows:
        print(f"wrote {args.out}")
    return 0
