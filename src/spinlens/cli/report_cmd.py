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
    from spinlens.cli._common import check_out_file, print_json
    from spinlens.report import report_run

    check_out_file("--out", args.out)
    path, n = report_run(args.dir, args.out, title=args.title)
    if args.json:
        print_json({"path": str(path), "sections": n})
    else:
        print(f"report with {n} section(s): {path}")
    return 0
