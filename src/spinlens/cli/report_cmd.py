"""``spinlens report DIR``: one self-contained HTML page of every figure, table and parameter set."""

from __future__ import annotations

from spinlens.cli._common import add_command

EXAMPLES = """  spinlens reproduce all --out repro && spinlens report repro      # writes repro/report.html
  spinlens report demo-out --out /tmp/demo.html --title "spinlens demo"
"""


def register(sub) -> None:
    p = add_command(
        sub,
        "report",
        "Gather every figure, paper-vs-ours table and run.json under DIR into one offline HTML page.",
        EXAMPLES,
        _run,
    )
    p.add_argument("dir", metavar="DIR", help="folder to scan (e.g. the --out of spinlens reproduce)")
    p.add_argument("--out", default=None, help="HTML file to write (default: DIR/report.html)")
    p.add_argument("--title", default="spinlens report", help="page title")
    p.add_argument("--json", action="store_true", help="print {path, sections} as JSON")


def _run(args) -> int:
    from pathlib import Path

    from spinlens.cli._common import check_out_file, print_json
    from spinlens.report import _run_folders, build_report

    check_out_file("--out", args.out)
    if Path(args.dir).is_dir() and not _run_folders(Path(args.dir), exclude=Path(args.dir) / ".no-such-file"):
        from spinlens.errors import InvalidParameterError

        raise InvalidParameterError(f"The 'DIR' parameter must be a folder holding spinlens outputs (run.json, figures "
                                    f"or CSV files, e.g. from `spinlens reproduce`). {args.dir!r} holds none.")
    path = build_report(args.dir, args.out, title=args.title)
    n = len(_run_folders(Path(args.dir), exclude=path))
    if args.json:
        print_json({"path": str(path), "sections": n})
    else:
        print(f"report with {n} section(s): {path}")
    return 0
