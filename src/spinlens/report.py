"""One self-contained HTML page gathering every figure, table and parameter set under a run folder.

`build_report` walks a folder (e.g. the output of ``spinlens reproduce all --out DIR``), and writes a
single HTML file with

* a summary table (one row per run folder: mode, seed, wall time, largest deviation from the paper),
* per folder: the parameters and notes from ``run.json``, the paper-vs-ours table
  (``paper_vs_ours.csv``, rows outside their tolerance highlighted), every PNG/JPEG/SVG image embedded
  as a base64 ``data:`` URI, the other CSV tables (first rows) and a list of the data files
  (NetCDF dims when xarray can read them).

The page has no scripts and no external resources: it opens offline in any browser.

Examples
--------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> p = build_report(d)
>>> p.name
'report.html'
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
import os
from pathlib import Path

from spinlens.errors import InvalidParameterError

IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}
MAX_TABLE_ROWS = 40
MAX_TEXT_ROWS = 400  # tables of unit descriptions / text snippets (the LM study) are shown whole, up to this
REPORT_NAME = "report.html"

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;max-width:1100px;
 padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
h3{font-size:1.0em;margin-bottom:.3em}
table{border-collapse:collapse;margin:.5em 0;font-size:.85em}
th,td{border:1px solid #ddd;padding:.2em .5em;text-align:right} th{background:#f3f3f3}
td.l,th.l{text-align:left}
tr.bad td{background:#fde2e1}
figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top;max-width:100%}
figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.8em;color:#555}
pre{background:#f7f7f7;padding:.5em;overflow-x:auto;font-size:.8em}
.note{background:#fff8e1;border-left:3px solid #e69f00;padding:.3em .6em;margin:.3em 0;font-size:.9em}
.muted{color:#666;font-size:.85em}
"""


def build_report(root, out=None, *, title: str = "spinlens report") -> Path:
    """Write the HTML report of every run folder under ``root``; return the path of the page.

    Parameters
    ----------
    root : path
        Folder to scan recursively. Any folder holding a ``run.json``, an image or a CSV becomes a section.
    out : path, optional
        Output file; default ``root/report.html``.
    title : str
        Page title.

    Raises
    ------
    InvalidParameterError
        If ``root`` is not an existing folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise InvalidParameterError(f"The 'DIR' parameter must be an existing folder. Got {str(root)!r} instead.")
    out = Path(out) if out is not None else root / REPORT_NAME
    sections = [_collect(d, root) for d in _run_folders(root, exclude=out)]
    _label_sections(sections)
    page = _render_page(title, root, sections)
    from spinlens.io import atomic_write_text

    atomic_write_text(out, page)
    return out


def _run_folders(root: Path, exclude: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        p = Path(dirpath)
        names = [f for f in filenames if not f.startswith(".") and not _same_file(p / f, exclude)]
        if any(f == "run.json" or Path(f).suffix.lower() in IMAGE_TYPES or f.endswith(".csv") for f in names):
            found.append(p)
    return found


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError):  # a symlink loop is not the report
        return False


def _collect(folder: Path, root: Path) -> dict:
    files = sorted(f for f in folder.iterdir() if f.is_file() and not f.name.startswith("."))
    run = None
    if (folder / "run.json").is_file():
        try:
            run = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            run = {"error": f"could not read run.json: {type(exc).__name__}: {str(exc)[:200]}"}
        if not isinstance(run, dict):
            run = {"error": f"could not read run.json: it holds a JSON {type(run).__name__}, not an object"}
    rel = folder.relative_to(root).as_posix() if folder != root else "."
    return {
        "folder": folder,
        "rel": rel,
        "run": run,
        "images": [f for f in files if f.suffix.lower() in IMAGE_TYPES],
        "comparison": folder / "paper_vs_ours.csv" if (folder / "paper_vs_ours.csv").is_file() else None,
        "tables": [f for f in files if f.suffix == ".csv" and f.name != "paper_vs_ours.csv"],
        "data": [f for f in files if f.suffix in (".nc", ".zarr", ".parquet", ".npz", ".json") and f.name != "run.json"],
        "other": [f for f in files if f.suffix.lower() in (".pdf",)],
    }


def _esc(x) -> str:
    return html.escape(str(x), quote=True)


def _anchor(rel: str) -> str:
    return "sec-" + "".join(c if c.isalnum() else "-" for c in rel)


def _fmt(v) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "n/a"
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)) and len(v) > 12:
        return f"[{', '.join(_fmt(x) for x in v[:5])}, …, {', '.join(_fmt(x) for x in v[-2:])}] ({len(v)} values)"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, dict):
        return json.dumps(v)
    return str(v)


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return [], []
    return rows[0], rows[1:]


def _render_comparison(path: Path) -> str:
    header, rows = _read_csv(path)
    idx = {h: i for i, h in enumerate(header)}
    out = ["<table><tr>" + "".join(f"<th>{_esc(h)}</th>" for h in header) + "</tr>"]
    worst = None
    missing = 0
    per_q: dict = {}
    for r in rows:
        bad = "within" in idx and r[idx["within"]] == "False"
        cells = "".join(f'<td class="{"l" if j == 0 else ""}">{_esc(c)}</td>' for j, c in enumerate(r))
        out.append(f'<tr class="{"bad" if bad else ""}">{cells}</tr>')
        if "deviation" in idx:
            try:
                d = abs(float(r[idx["deviation"]]))
            except ValueError:
                missing += 1
                continue
            if math.isnan(d):
                missing += 1
                continue
            if worst is None or d > worst[0]:
                worst = (d, r)
            q = r[idx["quantity"]] if "quantity" in idx else ""
            if q not in per_q or d > per_q[q][0]:
                per_q[q] = (d, r)
    out.append("</table>")
    if missing:
        out.append(f'<p class="muted">{missing} of {len(rows)} of our values missing (e.g. the solver did not converge).</p>')
    if worst is not None:
        r = worst[1]
        row = {"tolerance": r[idx["tolerance"]] if "tolerance" in idx else None,
               "within": r[idx["within"]] if "within" in idx else None}
        n_tol = sum(1 for x in rows if "tolerance" in idx and x[idx["tolerance"]] not in ("", "nan"))
        n_in = sum(1 for x in rows if "within" in idx and x[idx["within"]] == "True")
        out.append(
            f"<p>Largest deviation |ours − paper| = <b>{_esc(_fmt(worst[0]))}</b> {_esc(_against_tolerance(row))} "
            f"({_esc(r[idx['quantity']])}, {_esc(r[idx['x_name']])} = {_esc(r[idx['x']])})"
            + (f"; {n_in} of {n_tol} rows with a tolerance are within it" if n_tol else "") + ".</p>"
        )
    if len(per_q) > 1:
        out.append("<ul>")
        for q, (d, r) in per_q.items():
            out.append(f"<li>{_esc(q)}: largest |ours − paper| = {_esc(_fmt(d))} at "
                       f"{_esc(r[idx['x_name']])} = {_esc(r[idx['x']])}</li>")
        out.append("</ul>")
    return "\n".join(out)


def _render_table(path: Path) -> str:
    header, rows = _read_csv(path)
    text_table = "snippet" in header or "description" in header  # unit descriptions with text snippets: all rows
    shown = rows[:MAX_TEXT_ROWS if text_table else MAX_TABLE_ROWS]
    left = {i for i, h in enumerate(header) if h in ("snippet", "description", "unit", "intervention", "scheme", "method")}
    out = [f"<h3>{_esc(path.name)}</h3>", "<table><tr>" + "".join(f"<th>{_esc(h)}</th>" for h in header) + "</tr>"]
    for r in shown:
        out.append("<tr>" + "".join(f"<td class='l'><code>{_esc(c)}</code></td>" if i in left and header[i] == "snippet"
                                    else f"<td class='l'>{_esc(c)}</td>" if i in left
                                    else f"<td>{_esc(_short(c))}</td>" for i, c in enumerate(r)) + "</tr>")
    out.append("</table>")
    if len(rows) > len(shown):
        out.append(f'<p class="muted">… {len(rows) - len(shown)} more rows in {_esc(path.name)}.</p>')
    return "\n".join(out)


def _short(c: str) -> str:
    try:
        x = float(c)
    except ValueError:
        return c
    if x.is_integer() and abs(x) < 1e12:
        return str(int(x))
    return f"{x:.5g}"


def _render_image(path: Path) -> str:
    mime = IMAGE_TYPES[path.suffix.lower()]
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img src="data:{mime};base64,{data}" alt="{_esc(path.name)}">'
        f"<figcaption>{_esc(path.name)}</figcaption></figure>"
    )


def _data_summary(path: Path) -> str:
    size = path.stat().st_size
    desc = f"{_esc(path.name)} ({size / 1024:.1f} KiB)"
    if path.suffix == ".nc":
        try:
            import xarray as xr

            with xr.open_dataset(path) as ds:
                dims = ", ".join(f"{k}={v}" for k, v in ds.sizes.items())
                names = ", ".join(str(v) for v in ds.data_vars)
            desc += f": variables {_esc(names)}; dims {_esc(dims)}"
        except Exception as exc:  # noqa: BLE001 - a report must not fail on one unreadable file
            desc += f" (not readable: {_esc(type(exc).__name__)})"
    return f"<li>{desc}</li>"


def _render_params(run: dict) -> str:
    rows = []
    if "wall_seconds" in run and "elapsed_s" not in run:  # run.json written before elapsed_s: read the old key
        run = {**run, "elapsed_s": run["wall_seconds"]}
    for key in ("figure", "command", "mode", "seed", "elapsed_s", "git_sha"):
        if key in run and run[key] is not None:
            rows.append((key, run[key]))
    params = run.get("parameters") or {}
    if isinstance(params, dict):
        rows.extend((f"parameters.{k}", v) for k, v in params.items())
    summ = run.get("summary") or {}
    if isinstance(summ, dict):
        rows.extend((f"summary.{k}", v) for k, v in summ.items())
    if not rows and run:
        rows = [(k, v) for k, v in run.items() if k not in ("versions", "files")]
    out = ["<table>"] + [f'<tr><th class="l">{_esc(k)}</th><td class="l">{_esc(_fmt(v))}</td></tr>' for k, v in rows]
    out.append("</table>")
    if run.get("versions"):
        out.append("<details><summary>package versions</summary><pre>")
        out.append(_esc(json.dumps(run["versions"], indent=1)))
        out.append("</pre></details>")
    return "\n".join(out)


def _skipped(path: Path, exc: BaseException) -> str:
    """The warning a page shows in place of a file it could not read (the report goes on)."""
    import warnings

    msg = f"skipped {path.name}: could not read it ({type(exc).__name__}: {str(exc)[:200]})"
    warnings.warn(f"spinlens report: {msg}", stacklevel=2)
    return f'<div class="note">{_esc(msg)}</div>'


def _safely(render, path: Path) -> str:
    try:
        return render(path)
    except Exception as exc:  # noqa: BLE001 - one odd file must not kill the page
        return _skipped(path, exc)


def _render_section(sec: dict) -> str:
    run = sec["run"] or {}
    name = sec.get("label") or run.get("figure") or run.get("command") or sec["rel"]
    head = f'<h2 id="{_anchor(sec["rel"])}">{_esc(name)}'
    if run.get("description"):
        head += f' <span class="muted">— {_esc(run["description"])}</span>'
    head += "</h2>"
    parts = [head, f'<p class="muted">folder: {_esc(sec["rel"])}</p>']
    for note in run.get("notes") or []:
        parts.append(f'<div class="note">{_esc(note)}</div>')
    if sec["images"]:
        parts.extend(_safely(_render_image, p) for p in sec["images"])
    if sec["comparison"] is not None:
        parts.append("<h3>paper vs ours</h3>")
        parts.append(_safely(_render_comparison, sec["comparison"]))
    if run:
        parts.append("<h3>parameters</h3>")
        parts.append(_safely(lambda _p: _render_params(run), sec["folder"] / "run.json"))
    for t in sec["tables"]:
        parts.append(_safely(_render_table, t))
    if sec["data"] or sec["other"]:
        parts.append("<h3>data files</h3><ul>")
        parts.extend(_safely(_data_summary, p) for p in sec["data"])
        parts.extend(_safely(lambda q: f"<li>{_esc(q.name)} ({q.stat().st_size / 1024:.1f} KiB)</li>", p)
                     for p in sec["other"])
        parts.append("</ul>")
    return "\n".join(parts)


def _against_tolerance(row: dict) -> str:
    """``[tolerance ±0.02: within]`` / ``[tolerance ±0.02: OUTSIDE]`` / ``[no tolerance set]`` for one comparison row."""
    try:
        tol = float(row["tolerance"])
    except (KeyError, TypeError, ValueError):
        return "[no tolerance set]"
    if not math.isfinite(tol):
        return "[no tolerance set]"
    within = row.get("within")
    ok = within is True or str(within) == "True"
    return f"[tolerance ±{tol:g}: {'within' if ok else 'OUTSIDE'}]"


def _label_sections(sections: list[dict]) -> None:
    """One label per section: the figure or command, followed by its folder where two sections share it."""
    names = [(sec["run"] or {}).get("figure") or (sec["run"] or {}).get("command") or sec["rel"] for sec in sections]
    for sec, name in zip(sections, names):
        sec["label"] = f"{name} ({sec['rel']})" if names.count(name) > 1 and name != sec["rel"] else name


def _summary_table(sections: list[dict]) -> str:
    rows = ["<table><tr><th class='l'>run</th><th>mode</th><th>seed</th><th>wall time (s)</th>"
            "<th>figures</th><th class='l'>largest deviation from the paper</th></tr>"]
    for sec in sections:
        run = sec["run"] or {}
        worst = run.get("max_deviation")
        wtxt = ""
        if isinstance(worst, dict) and worst.get("deviation") is not None:
            try:
                wtxt = (f"{float(worst['deviation']):+.4f} {_against_tolerance(worst)} ({worst.get('quantity', '')}, "
                        f"{worst.get('x_name', '')}={worst.get('x', '')})")
            except (TypeError, ValueError):
                wtxt = str(worst.get("deviation"))
        name = sec.get("label") or run.get("figure") or run.get("command") or sec["rel"]
        rows.append(
            f"<tr><td class='l'><a href='#{_anchor(sec['rel'])}'>{_esc(name)}</a></td><td>{_esc(run.get('mode', ''))}</td>"
            f"<td>{_esc(run.get('seed', ''))}</td><td>{_esc(_fmt(run.get('elapsed_s', run.get('wall_seconds', ''))))}</td>"
            f"<td>{len(sec['images'])}</td><td class='l'>{_esc(wtxt)}</td></tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)


def _render_page(title: str, root: Path, sections: list[dict]) -> str:
    import datetime

    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = [f"<h1>{_esc(title)}</h1>", f'<p class="muted">{_esc(str(root))} — generated {when} by spinlens</p>']
    if not sections:
        body.append("<p>No runs found (no run.json, image or CSV file under this folder).</p>")
    else:
        body.append(_summary_table(sections))
        from spinlens.progress import bar

        # images are embedded and NetCDF files opened: tens of seconds for a full runs/ folder
        body.extend(_render_section(s) for s in bar(sections, desc="report", unit="folder"))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{_esc(title)}</title><link rel=\"icon\" href=\"data:,\">"
        f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def report_run(root, out=None, *, title: str = "spinlens report") -> tuple[Path, int]:
    """What ``spinlens report DIR`` does: `build_report`, refusing in one line a folder that holds no spinlens
    outputs (run.json, figures or CSV files); returns the page and its number of sections."""
    given, root = root, Path(root)
    if root.is_dir() and not _run_folders(root, exclude=root / ".no-such-file"):
        raise InvalidParameterError(f"The 'DIR' parameter must be a folder holding spinlens outputs (run.json, figures "
                                    f"or CSV files, e.g. from `spinlens reproduce`). {given!r} holds none.")
    path = build_report(given, out, title=title)
    return path, len(_run_folders(root, exclude=path))
