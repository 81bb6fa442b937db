"""Run a corpus of bad command lines through ``spinlens`` in-process and classify what each one does.

    python benchmarks/bad_cli/run_corpus.py [--corpus FILE] [--timeout S] [--out results.tsv]

Each line of the corpus is one command line (without the leading ``spinlens``); ``#`` starts a comment.
Lines run in a scratch folder holding malformed fixtures (see ``make_fixtures``). Classes:

* ``clean``      exit 2, ONE error line on stderr (the last), no traceback (the goal for bad input);
* ``traceback``  an exception escaped ``main`` or stderr holds a traceback;
* ``internal``   exit 1 with the boundary's one-line "internal error" (a bug, reported cleanly);
* ``multiline``  exit 2 but more than one line on stderr;
* ``accepted``   exit 0 or 3 (ran: read the line, it may be a silent wrong answer or legitimately valid);
* ``slow``       still running after the timeout.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shlex
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


class _Timeout(BaseException):
    pass


def make_fixtures(d: Path) -> None:
    import json

    import numpy as np

    (d / "afile").write_text("a file, not a folder\n")
    (d / "text.npz").write_text("this is text, not an npz archive\n")
    np.savez(d / "nokeys.npz", A=np.zeros(3))
    Z = np.zeros((4, 3, 4))
    np.savez(d / "nan.npz", Z=Z + np.nan, y=np.zeros(4))
    Zb = np.full((4, 3, 4), 1e300)
    Zb[:, -1, -1] = 0.0
    np.savez(d / "huge.npz", Z=Zb, y=np.full(4, 1e300))
    np.savez(d / "shape.npz", Z=np.zeros((4, 3)), y=np.zeros(4))
    np.save(d / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    np.save(d / "vec3.npy", np.zeros(3))
    (d / "ids.txt").write_text("1 2 x 4\n")
    (d / "grid_obs5.toml").write_text("[grid]\nN = 10\nobservables = 5\n")
    (d / "grid_settings_obs5.toml").write_text("[grid]\nN = 10\n[settings]\nobservables = 5\n")
    (d / "grid_bin.toml").write_bytes(bytes(range(256)) * 4)
    (d / "grid_list.json").write_text("[1, 2, 3]\n")
    (d / "grid_pointfn.toml").write_text('[grid]\nN = 3\nD = 2\nP = 5\n[settings]\npoint_fn = "os:getcwd"\n')
    (d / "grid_neg.yaml").write_text("grid:\n  N: -5\n")
    (d / "grid_huge.toml").write_text("[grid]\nN = \"1:100:100000000\"\n")
    (d / "grid_badsettings.toml").write_text("[grid]\nN = 3\n[settings]\nmax_iter = \"many\"\n")
    (d / "spec_missing_vec.yaml").write_text(
        "interventions:\n  - {type: add, hook: blocks.0.hook_resid_pre, vector: nothere.npy}\n")
    (d / "spec_obj_vec.yaml").write_text(
        "interventions:\n  - {type: add, hook: blocks.0.hook_resid_pre, vector: obj.npy}\n")
    (d / "spec_badhook.yaml").write_text("interventions:\n  - {type: add, hook: nope.hook, vector: [1, 2]}\n")
    (d / "spec_str.yaml").write_text("just a string\n")
    (d / "spec_bin.yaml").write_bytes(b"\xff\xfe\x00garbage")
    (d / "emptydir").mkdir()
    for name, cfg in [("ck_list", [1, 2]), ("ck_unknown", {"d": 2, "bogus": 1}), ("ck_missing", {}),
                      ("ck_str", "hello")]:
        (d / name).mkdir()
        (d / name / "config.json").write_text(json.dumps(cfg))
    (d / "ck_badjson").mkdir()
    (d / "ck_badjson" / "config.json").write_text("{")
    (d / "bad.safetensors").write_text("garbage")
    (d / "bad.nc").write_text("garbage")
    (d / "hf_empty").mkdir()
    (d / "hf_empty" / "config.json").write_text("{}")
    (d / "rep").mkdir()
    (d / "rep" / "run.json").write_text("{not json")


def run_line(line: str, timeout: float):
    from spinlens.cli.main import main

    argv = shlex.split(line)
    out, err = io.StringIO(), io.StringIO()
    t0 = time.perf_counter()

    def _alarm(*_):
        raise _Timeout()

    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(int(timeout))
    cls = None
    code = None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except _Timeout:
        cls = "slow"
    except BaseException:  # noqa: BLE001 - an escaped exception is what we count
        err.write(traceback.format_exc())
        cls = "traceback"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    e = err.getvalue()
    lines = [ln for ln in e.splitlines() if ln.strip()]
    if cls is None:
        if "Traceback (most recent call last)" in e:
            cls = "traceback"
        elif code == 1 and "internal error" in e:
            cls = "internal"
        elif code in (0, 3):
            cls = "accepted"
        elif code == 2 and len([ln for ln in lines if ": error:" in ln]) == 1 and ": error:" in lines[-1]:
            cls = "clean"  # progress/info lines before the one error line are fine
        elif code == 2:
            cls = "multiline"
        else:
            cls = f"rc{code}"
    last = lines[-1] if lines else ""
    return cls, code, time.perf_counter() - t0, last[:300]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default=str(HERE / "corpus.txt"))
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--out", default=None)
    ap.add_argument("--grep", default=None, help="only lines containing this text")
    a = ap.parse_args()
    lines = [ln.split(" #", 1)[0].strip() for ln in Path(a.corpus).read_text().splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if a.grep:
        lines = [ln for ln in lines if a.grep in ln]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import warnings

    warnings.simplefilter("ignore")
    counts: dict = {}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        make_fixtures(Path(tmp))
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            for ln in lines:
                cls, code, sec, last = run_line(ln, a.timeout)
                counts[cls] = counts.get(cls, 0) + 1
                rows.append((cls, str(code), f"{sec:.1f}", ln, last))
                print(f"{cls:10s} rc={code!s:4s} {sec:5.1f}s  {ln}  ->  {last[:160]}", flush=True)
        finally:
            os.chdir(cwd)
    if a.out:
        Path(a.out).write_text("\n".join("\t".join(r) for r in rows) + "\n")
    print(f"{len(lines)} lines: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
