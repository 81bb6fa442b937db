"""`spinlens report`: a self-contained HTML page, rendered and checked in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from spinlens.errors import InvalidParameterError
from spinlens.report import build_report
from spinlens.reproduce import _framework as fw

# Injected at the top of <head> in a copy of the page: records errors and console.error calls, and at
# the load event writes {n_images, bad images, errors} into the DOM, which --dump-dom prints.
_PROBE = """<script>
window.__errs=[];
window.addEventListener('error',function(e){window.__errs.push('error: '+(e.message||(e.target&&e.target.tagName)));},true);
(function(){var ce=console.error;console.error=function(){
 window.__errs.push('console.error: '+Array.prototype.join.call(arguments,' '));ce.apply(console,arguments);};})();
window.addEventListener('load',function(){var imgs=Array.prototype.slice.call(document.images);
var bad=imgs.filter(function(i){return !(i.complete&&i.naturalWidth>0);}).map(function(i){return i.alt;});
var pre=document.createElement('pre');pre.id='__probe_result';
pre.textContent=JSON.stringify({n_images:imgs.length,bad:bad,errors:window.__errs});
document.body.appendChild(pre);});
</script>"""


def _make_run(folder, name="figX", bad_row=False):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spinlens.plotting.style import paper_style

    folder.mkdir(parents=True, exist_ok=True)
    with paper_style():
        fig, ax = plt.subplots()
        ax.plot([0, 1, 2], [1, 0, 1])
        fw.save_figure(fig, folder, name)
    rows = fw.comparison_rows("test error", "N", [20, 40], [0.5, 0.3], [0.51, 0.35 if bad_row else 0.31], tolerance=0.02)
    fw.write_comparison(rows, folder)
    fw.save_columns({"N": [20, 40], "err": [0.51, 0.31]}, folder, "data")
    fw.write_run_json(
        folder,
        {"figure": name, "description": "a test figure", "mode": "quick", "seed": 3, "parameters": {"d": 20, "lam": 0.01},
         "notes": ["a note <with> markup"], "max_deviation": fw.max_deviation(rows), "wall_seconds": 1.5,
         "versions": fw.package_versions()},
    )


def test_report_embeds_everything_and_is_offline(tmp_path):
    _make_run(tmp_path / "figA", "figA")
    _make_run(tmp_path / "figB", "figB", bad_row=True)
    out = build_report(tmp_path)
    html = out.read_text()
    assert out == tmp_path / "report.html"
    assert html.count("data:image/png;base64,") == 2
    # no external resource of any kind
    assert not re.search(r"""(src|href)\s*=\s*["'](https?:|//|file:)""", html)
    assert "<script" not in html
    # both runs, their parameters, tables and the escaped note
    for s in ("figA", "figB", "parameters.d", "0.01", "paper vs ours", "a note &lt;with&gt; markup", "data.csv"):
        assert s in html, s
    # the row outside tolerance (0.35 vs 0.3) is highlighted exactly once
    assert html.count('<tr class="bad">') == 1
    assert "Largest deviation |ours − paper| = <b>0.05</b> [tolerance ±0.02: OUTSIDE]" in html
    assert "+0.0100 [tolerance ±0.02: within]" in html and "+0.0500 [tolerance ±0.02: OUTSIDE]" in html  # summary


def test_report_labels_sections_that_share_a_command(tmp_path):
    _make_run(tmp_path / "lm-quant", "q1")
    _make_run(tmp_path / "quant-hf", "q2")
    for d in ("lm-quant", "quant-hf"):  # two runs of one command
        run = json.loads((tmp_path / d / "run.json").read_text())
        run.pop("figure")
        run["command"] = "quantize"
        (tmp_path / d / "run.json").write_text(json.dumps(run))
    html = build_report(tmp_path).read_text()
    assert "quantize (lm-quant)" in html and "quantize (quant-hf)" in html


def test_report_empty_folder_and_bad_dir(tmp_path):
    out = build_report(tmp_path)
    assert "No runs found" in out.read_text()
    with pytest.raises(InvalidParameterError, match="'DIR'"):
        build_report(tmp_path / "missing")


def test_report_cli(tmp_path, capsys):
    from spinlens.cli.main import main

    _make_run(tmp_path / "figA", "figA")
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r.html"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["path"].endswith("r.html") and res["sections"] == 1
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "'DIR'" in capsys.readouterr().err


def _chromium() -> str:
    """The browser, if installed; never installed from here (`.ci/ensure-chromium` does that, when asked to)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("Chromium is not installed: install it (Debian: apt-get install chromium) or run "
                "`SPINLENS_INSTALL_CHROMIUM=1 make test` to let make test install it with apt-get")


def _render(html_path, tmp_path) -> tuple[dict, str]:
    """Load a probed copy of the page in headless Chromium; return (probe result, console lines)."""
    exe = _chromium()
    probed = tmp_path / ("probed_" + html_path.name)
    probed.write_text(html_path.read_text().replace("<head>", "<head>" + _PROBE, 1))
    cmd = [
        exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium-profile'}", "--enable-logging=stderr",
        "--v=0", "--virtual-time-budget=5000", "--dump-dom", probed.resolve().as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    m = re.search(r'<pre id="__probe_result">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"Chromium did not render the page (rc={proc.returncode}): {proc.stderr[-2000:]}"
    import html as _html

    result = json.loads(_html.unescape(m.group(1)))
    console = "\n".join(line for line in proc.stderr.splitlines() if ":CONSOLE" in line)
    return result, console


def test_report_renders_in_chromium(tmp_path):
    _make_run(tmp_path / "runs" / "figA", "figA")
    _make_run(tmp_path / "runs" / "figB", "figB", bad_row=True)
    page = build_report(tmp_path / "runs")
    result, console = _render(page, tmp_path)
    assert result["n_images"] == 2
    assert result["bad"] == [], f"images that did not load: {result['bad']}"
    assert result["errors"] == [], result["errors"]
    assert console == "", f"console messages: {console}"


def test_chromium_probe_detects_broken_images_and_console_errors(tmp_path):
    """Negative control: the harness above must be able to fail."""
    page = tmp_path / "bad.html"
    page.write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"></head><body>'
        '<img src="data:image/png;base64,AAAA" alt="broken"><script>console.error("boom")</script></body></html>'
    )
    result, console = _render(page, tmp_path)
    assert result["bad"] == ["broken"]
    assert any("boom" in e for e in result["errors"])
    assert "boom" in console
