"""Bad model folders and output folders, run as a user would: counts per outcome class.

    python benchmarks/bad_folders/run_corpus.py [--out results.tsv] [--timeout 120]

Builds a tiny language model folder (`spinlens lm`) and a zoo model folder (`spinlens zoo train`), then
damages copies of them in every way of the corpus below and runs a command that loads each one in this
process (``spinlens.cli.main.main``), with a 120 s alarm. Each case expects a refusal (exit 2) or an
untouched user folder; the outcome classes are

* ``clean``: exit 2 with one line (or, for the output-folder cases, the user's files intact);
* ``internal``: exit 1 (an internal error) or a traceback;
* ``hang``: the alarm fired;
* ``silent``: exit 0 on input that should have been refused (silent-wrong);
* ``torn``/``lost``: an output folder left as a mix of two states / a user's file deleted (``kill`` cases: a
  re-run SIGKILLed after its k-th file operation, ``SPINLENS_KILL_AT_OP``).

Run it against another checkout by putting its ``src`` first on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import contextlib
import io as _io
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

TEXT = ("The quick brown fox jumps over the lazy dog. " * 40 + "def f(x):\n    return x + 1\n" * 40) * 3
LM_ARGS = ["--vocab-size", "300", "--n-layers", "1", "--n-heads", "2", "--d-model", "16", "--n-ctx", "16",
           "--steps", "3", "--batch-size", "4", "--eval-every", "2", "--n-checkpoints", "2", "--no-progress"]


class Hang(Exception):
    pass


def _alarm(*_):
    raise Hang


TIMEOUT = [120]  # seconds before a command counts as a hang (--timeout)


def run_cli(argv, timeout=None):
    """(exit code, last stderr line) of ``spinlens argv`` run in this process; code None on a hang."""
    from spinlens.cli.main import main

    err = _io.StringIO()
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout or TIMEOUT[0])
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(_io.StringIO()):
            code = main([str(a) for a in argv])
    except Hang:
        code = None
    except BaseException as exc:  # noqa: BLE001 - a traceback through main is an internal error
        code, err = 1, _io.StringIO(f"traceback {type(exc).__name__}: {exc}")
    finally:
        signal.alarm(0)
    os.environ.pop("SPINLENS_ALLOW_NONFINITE", None)
    lines = [x for x in err.getvalue().strip().splitlines() if x.strip()]
    if lines and "internal error: Hang" in lines[-1]:  # the alarm fired inside the command's error boundary
        code = None
    return code, (lines[-1] if lines else "")


def classify(code, expect_refusal=True):
    if code is None:
        return "hang"
    if code == 1:
        return "internal"
    if code == 0 and expect_refusal:
        return "silent"
    return "clean"


def run_subprocess(argv, timeout=90):
    """Like `run_cli` in a child process (a blocking open of a FIFO cannot be interrupted in this one)."""
    import subprocess

    try:
        res = subprocess.run([sys.executable, "-m", "spinlens.cli.main", *map(str, argv)], capture_output=True,
                             text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, ""
    lines = [x for x in res.stderr.strip().splitlines() if x.strip()]
    return res.returncode, (lines[-1] if lines else "")


# ------------------------------------------------------------------------------------------- damage helpers


def _config(folder):
    return json.loads((folder / "config.json").read_text())


def _set_config(folder, record, *, keep_manifest=False):
    (folder / "config.json").write_text(json.dumps(record) if not isinstance(record, str) else record)
    if not keep_manifest:
        (folder / "manifest.json").unlink(missing_ok=True)


def _edit_cfg(key, value):
    def f(folder):
        rec = _config(folder)
        rec["config"][key] = value
        _set_config(folder, rec)
    return f


def _edit_top(key, value):
    def f(folder):
        rec = _config(folder)
        rec[key] = value
        _set_config(folder, rec)
    return f


def _nested(folder):
    _set_config(folder, '{"format": "spinlens-transformer/1", "config": ' + "[" * 100000 + "]" * 100000 + "}")


def _retype_weights(dtype_name):
    def f(folder):
        import torch
        from safetensors.torch import load_file, save_file

        from spinlens.models.checkpoint import _safetensors_meta

        meta = _safetensors_meta(folder / "model.safetensors")
        t = load_file(str(folder / "model.safetensors"))
        dt = getattr(torch, dtype_name)
        t = {k: v.to(dt) for k, v in t.items()}
        save_file(t, str(folder / "model.safetensors"), metadata=meta)
        (folder / "manifest.json").unlink(missing_ok=True)
    return f


def _nan_weights(folder):
    from safetensors.torch import load_file, save_file

    from spinlens.models.checkpoint import _safetensors_meta

    meta = _safetensors_meta(folder / "model.safetensors")
    t = load_file(str(folder / "model.safetensors"))
    k = sorted(t)[0]
    t[k] = t[k].clone()
    t[k].view(-1)[0] = float("nan")
    save_file(t, str(folder / "model.safetensors"), metadata=meta)
    (folder / "manifest.json").unlink(missing_ok=True)


def _shape_weights(folder):
    from safetensors.torch import load_file, save_file

    from spinlens.models.checkpoint import _safetensors_meta

    meta = _safetensors_meta(folder / "model.safetensors")
    t = load_file(str(folder / "model.safetensors"))
    k = sorted(t)[0]
    t[k] = t[k].reshape(-1)[:-1].clone() if t[k].numel() > 1 else t[k]
    save_file(t, str(folder / "model.safetensors"), metadata=meta)
    (folder / "manifest.json").unlink(missing_ok=True)


def _heldout(arr):
    def f(folder):
        import numpy as np

        np.save(folder / "heldout_tokens.npy", arr())
        (folder / "manifest.json").unlink(missing_ok=True)
    return f


def _swap_from(other, name, keep_manifest=True):
    def f(folder):
        shutil.copy2(other / name, folder / name)
        if not keep_manifest:
            (folder / "manifest.json").unlink(missing_ok=True)
    return f


def _fifo(name):
    def f(folder):
        (folder / name).unlink()
        os.mkfifo(folder / name)
    return f


def _truncate(name):
    def f(folder):
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: len(data) // 2])
    return f


# ------------------------------------------------------------------------------------------------- the corpus


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None, help="TSV of every case (class, code, seconds, case, message)")
    ap.add_argument("--timeout", type=int, default=120, help="seconds before a command counts as a hang (a loaded "
                                                             "machine needs more)")
    args = ap.parse_args()
    TIMEOUT[0] = args.timeout
    work = Path(tempfile.mkdtemp(prefix="spinlens-bad-folders-"))
    os.chdir(work)
    (work / "corpus.txt").write_text(TEXT)
    (work / "other.txt").write_text(TEXT.upper() + "Zebra quartz vexing jumbles. " * 80)
    t0 = time.perf_counter()
    for name, text in (("lm", "corpus.txt"), ("lm2", "other.txt")):
        code, msg = run_cli(["lm", "--corpus", text, *LM_ARGS, "--out", name])
        assert code == 0, msg
    code, msg = run_cli(["lm", "--corpus", "corpus.txt", *LM_ARGS, "--seed", "1", "--out", "lm_b"])
    assert code == 0, msg
    for arch in ("tf", "fla"):
        code, msg = run_cli(["zoo", "train", "--arch", arch, "--D", "2", "--N", "4", "--steps", "3", "--test-prompts",
                             "8", "--no-progress", "--out", f"zoo-{arch}"])
        assert code in (0, 3), msg
    print(f"built the base folders in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    lm, lm2, lm_b, zoo, zoo_lin = work / "lm", work / "lm2", work / "lm_b", work / "zoo-tf", work / "zoo-fla"
    load_lm = ["interp", "induction", "--no-ablation", "--no-path", "--json", "--checkpoint"]
    load_zoo = ["zoo", "bridge", "--N", "4", "--json", "--checkpoint"]
    cases = [  # (class, name, base, damage, command prefix)
        ("schema", "shapes contradict config", lm, _edit_cfg("d_model", 32), load_lm),
        ("schema", "float d_model", lm, _edit_cfg("d_model", 16.5), load_lm),
        ("schema", "string causal", lm, _edit_cfg("causal", "yes"), load_lm),
        ("schema", "huge d_vocab", lm, _edit_cfg("d_vocab", 10**12), load_lm),
        ("schema", "huge d_model", lm, _edit_cfg("d_model", 60000), load_lm),
        ("schema", "n_layers 1000000", lm, _edit_cfg("n_layers", 1000000), load_lm),
        ("schema", "negative n_heads", lm, _edit_cfg("n_heads", -2), load_lm),
        ("schema", "unknown config key", lm, _edit_cfg("n_expert", 4), load_lm),
        ("schema", "deeply nested config", lm, _nested, load_lm),
        ("schema", "format_version 99", lm, _edit_top("format_version", 99), load_lm),
        ("schema", "format_version string", lm, _edit_top("format_version", "1"), load_lm),
        ("schema", "config a list", lm, _edit_top("config", [1, 2]), load_lm),
        ("schema", "duplicate key", lm, lambda f: _set_config(f, '{"format": "spinlens-transformer/1", "format": '
                                                               '"spinlens-zoo/1", "config": {}}'), load_lm),
        ("schema", "NaN in config", lm, lambda f: _set_config(f, _config_text_nan(f)), load_lm),
        ("schema", "zoo d float", zoo_lin, _edit_cfg("d", 2.5), load_zoo),
        ("schema", "zoo n_layers 1000000", zoo, _edit_cfg("n_layers", 1000000), load_zoo),
        ("schema", "zoo causal string", zoo_lin, _edit_cfg("causal", "no"), load_zoo),
        ("weights", "int8 weights", lm, _retype_weights("int8"), load_lm),
        ("weights", "bool weights", lm, _retype_weights("bool"), load_lm),
        ("weights", "half weights", lm, _retype_weights("float16"), load_lm),
        ("weights", "float64 weights for float32 config", lm, _retype_weights("float64"), load_lm),
        ("weights", "NaN weights", lm, _nan_weights, load_lm),
        ("weights", "a tensor of the wrong shape", lm, _shape_weights, load_lm),
        ("weights", "zoo half weights", zoo_lin, _retype_weights("float16"), load_zoo),
        ("weights", "zoo NaN weights", zoo_lin, _nan_weights, load_zoo),
        ("heldout", "token ids outside the vocabulary", lm, _heldout(lambda: __import__("numpy").full(500, 10**6)),
         load_lm),
        ("heldout", "negative token ids", lm, _heldout(lambda: -__import__("numpy").ones(500, dtype="int64")), load_lm),
        ("heldout", "float held-out tokens", lm, _heldout(lambda: __import__("numpy").linspace(0, 5, 500)), load_lm),
        ("heldout", "2-D held-out tokens", lm, _heldout(lambda: __import__("numpy").zeros((20, 25), dtype="int32")),
         load_lm),
        ("tokenizer", "tokenizer of another corpus, same vocabulary size", lm, _swap_from(lm2, "tokenizer.json"),
         load_lm),
        ("tokenizer", "same, manifest removed", lm, _swap_from(lm2, "tokenizer.json", keep_manifest=False), load_lm),
        ("torn", "held-out tokens of another corpus", lm, _swap_from(lm2, "heldout_tokens.npy"), load_lm),
        ("torn", "weights of another run", lm, _swap_from(lm_b, "model.safetensors"), load_lm),
        ("torn", "config of another run", lm, _swap_from(lm_b, "config.json"), load_lm),
        ("torn", "truncated weights", lm, _truncate("model.safetensors"), load_lm),
        ("torn", "zoo weights of another model", zoo_lin, _swap_from(zoo, "model.safetensors"), load_zoo),
        ("fifo", "FIFO as weights", lm, _fifo("model.safetensors"), load_lm),
        ("fifo", "FIFO as config.json", lm, _fifo("config.json"), load_lm),
        ("fifo", "FIFO as held-out tokens", lm, _fifo("heldout_tokens.npy"), load_lm),
        ("fifo", "FIFO as manifest", lm, _fifo("manifest.json"), load_lm),
    ]
    rows = []
    for i, (cls, name, base, damage, prefix) in enumerate(cases):
        folder = work / f"case{i:03d}"
        shutil.copytree(base, folder)
        if name == "FIFO as manifest" and not (folder / "manifest.json").exists():
            (folder / "manifest.json").write_text("{}")
        damage(folder)
        t = time.perf_counter()
        code, msg = (run_subprocess if cls == "fifo" else run_cli)([*prefix, folder])
        rows.append((cls, name, classify(code), code, time.perf_counter() - t, msg))
    rows += _output_cases(work)
    counts: dict = {}
    for cls, name, outcome, code, secs, msg in rows:
        counts.setdefault(outcome, 0)
        counts[outcome] += 1
        print(f"{outcome:<9} {cls:<10} {str(code):>4} {secs:6.1f}s  {name}: {msg[:150]}")
    print("counts:", json.dumps(counts, sort_keys=True))
    if args.out:
        with open(args.out, "w") as fh:
            for cls, name, outcome, code, secs, msg in rows:
                fh.write(f"{outcome}\t{cls}\t{code}\t{secs:.1f}\t{name}\t{msg}\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0


def _config_text_nan(folder):
    return (folder / "config.json").read_text().replace('"init_scale": 1.0', '"init_scale": NaN')


def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _output_cases(work):
    """Outputs: a failing or re-run `lm`/`train` must keep the user's files and never leave a mix."""
    rows = []

    def case(name, folder_setup, argv, check):
        d = work / f"out-{len(rows)}"
        d.mkdir()
        folder_setup(d)
        before = _snapshot(d)
        t = time.perf_counter()
        code, msg = run_cli([str(a).replace("DIR", str(d)) if str(a).startswith("DIR") else a for a in argv])
        outcome = check(d, before, code)
        rows.append(("output", name, outcome, code, time.perf_counter() - t, msg))

    def user_files(d):
        (d / "notes.txt").write_text("my notes")
        (d / "model.safetensors").write_bytes(b"from another tool")
        (d / "config.json").write_text('{"model_type": "gpt2"}')

    def kept(d, before, code):
        now = _snapshot(d)
        lost = [k for k in before if now.get(k) != before[k]]
        if lost:
            return "lost"
        return classify(code)

    tiny = ["--corpus", str(work / "corpus.txt"), *LM_ARGS]
    case("lm into a folder of other files (Hugging Face-like)", user_files, ["lm", *tiny, "--out", "DIR"], kept)
    case("lm fails (corpus too small for --n-ctx) in a folder of other files", user_files,
         ["lm", *tiny, "--n-ctx", "4096", "--out", "DIR"], kept)
    case("train into a folder of other files", user_files,
         ["train", "--D", "3", "--N", "5", "--P", "20", "--epochs", "2", "--no-progress", "--out", "DIR"], kept)
    case("zoo train into a folder of other files", user_files,
         ["zoo", "train", "--arch", "sla", "--D", "2", "--N", "3", "--steps", "2", "--test-prompts", "8",
          "--no-progress", "--out", "DIR"], kept)

    def lm_done(d):
        code, msg = run_cli(["lm", *tiny, "--n-checkpoints", "4", "--out", d / "m"])
        assert code == 0, msg

    def stale(d, before, code):
        steps = sorted(p.name for p in (d / "m" / "checkpoints").iterdir())
        mf = d / "m" / "manifest.json"
        man = json.loads(mf.read_text()) if mf.is_file() else {"files": {f"checkpoints/{s}/": 0 for s in steps}}
        listed = sorted({k.split("/")[1] for k in man["files"] if k.startswith("checkpoints/")})
        return "torn" if steps != listed or len(steps) > 2 else classify(code, expect_refusal=False)

    case("lm re-run with fewer checkpoints (stale step-* must not mix in)", lm_done,
         ["lm", *tiny, "--n-checkpoints", "2", "--out", "DIR/m"], stale)

    def failed_rerun(d, before, code):
        return "lost" if _snapshot(d) != before else classify(code)

    case("lm re-run that fails keeps the earlier model", lm_done, ["lm", *tiny, "--n-ctx", "4096", "--out", "DIR/m"],
         failed_rerun)
    rows += _run_folder_cases(work, case, user_files, kept, failed_rerun)
    return rows


CURVE = ["theory", "curve", "--vary", "tau", "--from", "0.1", "--to", "3", "--alpha", "2"]
SWEEP = ["sweep", "--D", "2", "--P", "8", "--jobs", "1", "--no-progress"]


def _killed(argv, k):
    """Run ``spinlens argv`` in a child process SIGKILLed after its k-th file operation (spinlens.io hook)."""
    import subprocess

    env = {**os.environ, "SPINLENS_KILL_AT_OP": str(k)}
    return subprocess.run([sys.executable, "-m", "spinlens.cli.main", *map(str, argv)], capture_output=True, text=True,
                          timeout=300, env=env).returncode


def _run_folder_cases(work, case, user_files, kept, failed_rerun):
    """Run folders: other commands' --out folders, sweeps; refusals, failed and killed re-runs."""
    rows = []

    case("theory curve into a folder of other files", user_files, [*CURVE, "--num", "4", "--out", "DIR"], kept)
    case("sweep into a folder of other files (no sweep)", user_files, [*SWEEP, "--N", "2", "--out", "DIR"], kept)
    case("interp lens into a folder of other files", user_files,
         ["interp", "lens", "--planted", "regression", "--json", "--out", "DIR"], kept)
    case("steer into a folder of other files", user_files,
         ["steer", "--setting", "regression", "--D", "2", "--N", "4", "--base-steps", "20", "--out", "DIR"], kept)

    def curve_done(d):
        code, msg = run_cli([*CURVE, "--num", "5", "--out", d / "r"])
        assert code == 0, msg

    case("theory curve re-run that fails keeps the earlier run", curve_done,
         [*CURVE, "--num", "5", "--alpha", "-1", "--out", "DIR/r"], failed_rerun)

    def mix(d, before, code):  # a killed re-run: the old run whole, or the new one whole (its manifest lists all)
        now = _snapshot(d)
        if now == before:
            return "clean"
        man = json.loads((d / "r" / "manifest.json").read_text()) if (d / "r" / "manifest.json").is_file() else None
        files = {k[2:] for k in now if k.startswith("r/") and k != "r/manifest.json"}
        return "clean" if man is not None and set(man["files"]) == files else "torn"

    def kill_case(name, setup, argv, k, check):
        d = work / f"out-kill-{len(rows)}"
        d.mkdir()
        setup(d)
        before = _snapshot(d)
        t = time.perf_counter()
        code = _killed([str(a).replace("DIR", str(d)) if str(a).startswith("DIR") else a for a in argv], k)
        rows.append(("kill", name, check(d, before, code), code, time.perf_counter() - t, f"killed at operation {k}"))

    for k in (2, 4, 6, 7, 8, 9):
        kill_case(f"theory curve re-run killed at file operation {k}", curve_done,
                  [*CURVE, "--num", "4", "--lam-lu", "0.5", "--out", "DIR/r"], k, mix)

    def sweep_done(d):
        code, msg = run_cli([*SWEEP, "--N", "2,3", "--out", d / "s"])
        assert code == 0, msg

    def sweep_state(d, before, code):  # a valid sweep: the old one, or the new grid with whole points
        spec = json.loads((d / "s" / "sweep.json").read_text())
        # the sweep folder itself; a killed run's hidden staging sibling (.s.spinlens-new-PID-*) is not part of
        # it and is removed by the next transaction on the folder
        now = {k: v for k, v in _snapshot(d).items() if k.startswith("s/") and not k.endswith(".lock")}
        if now == {k: v for k, v in before.items() if k.startswith("s/") and not k.endswith(".lock")}:
            return "clean"
        if spec["grid"]["N"] != [2, 3, 4]:
            return "torn"  # neither the old state nor the new sweep
        if (d / "s" / "results.nc").exists() != (d / "s" / "run.json").exists():
            return "torn"
        code2, _ = run_cli([*SWEEP, "--N", "2,3,4", "--resume", "--out", d / "s"])
        return "clean" if code2 == 0 else "torn"

    for k in (2, 4, 5, 8, 12, 17, 18):
        kill_case(f"sweep --force to a new grid killed at file operation {k}", sweep_done,
                  [*SWEEP, "--N", "2,3,4", "--force", "--out", "DIR/s"], k, sweep_state)
    return rows


if __name__ == "__main__":
    sys.exit(main())
