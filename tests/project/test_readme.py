"""The README's Python example runs, and every `spinlens …` command it shows parses."""

import re
import shlex
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def test_python_example_runs(capsys):
    (code,) = _blocks("python")
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out.split()
    assert printed[0] == "True"  # the cavity converged
    assert abs(float(printed[2]) - 0.192) < 0.02  # paper Fig 4b at N = 100


def _commands():
    cmds = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip()
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith("spinlens "):
                    cmds.append(part)
    return cmds


@pytest.mark.parametrize("cmd", _commands())
def test_readme_commands_parse(cmd):
    from spinlens.cli.main import build_parser

    args = build_parser().parse_args(shlex.split(cmd)[1:])
    assert callable(args.func)


# ------------------------------------------------------------------------------ every line runs as written
# Fast mode: the same lines, in order, in a scratch copy of the repository's examples/, with sizes shrunk by
# these substitutions (regex -> replacement) so the whole README runs in about a minute. Paths, files and
# flags stay exactly as written, so a line that needs something no earlier line created fails here.
FAST = [
    (r"--D 100 --N 100 --P 100000\b", "--D 10 --N 10 --P 2000"),
    (r"--tol 1e-20 --steps 3000\b", "--tol 1e-12 --steps 300"),
    (r"--P 10000\b", "--P 300"),
    (r"--N 100\b", "--N 10"),
    (r"--steps 1000\b", "--steps 5"),
    (r"--epochs 300\b", "--epochs 3"),
    (r"--N 2:100:50 --P 20:1000:50", "--N 2:100:2 --P 20:1000:2"),
    (r"--seed 0:10\b", "--seed 0:2"),
    (r"--num 200\b", "--num 20"),
    (r"reproduce (all|fig4b|figS8|fss|tapmap)\b", "reproduce fig1"),
    (r"^spinlens landscape (.*)$", r"spinlens landscape \1 --samples 20 --grid 6 --no-spectrum"),
    (r"^spinlens theory phase (.*)$", r"spinlens theory phase \1 --N 5:20:2 --K 2,8 --P 200 --repeats 1"),
    (r"^spinlens theory diversity (.*)$", r"spinlens theory diversity \1 --K 2,8 --n-test 200"),
    # the edit commands: regression setting (--setting regression), else the language-model setting
    (r"^spinlens steer (--setting regression .*)$", r"spinlens steer \1 --base-steps 30 --n-prompts 32 --strengths 0 1"),
    (r"^spinlens (pinpoint|merge) (--setting regression .*)$", r"spinlens \1 \2 --base-steps 30 --steps 5"),
    (r"^spinlens quantize (--setting regression .*)$", r"spinlens quantize \1 --base-steps 30"),
    (r"^spinlens steer ((?!--setting regression).*)$", r"spinlens steer \1 --n-seeds 1 --strengths 0 1"),
    (r"^spinlens pinpoint ((?!--setting regression).*)$", r"spinlens pinpoint \1 --n-seeds 1 --steps 2 --n-random 1"),
    (r"^spinlens merge ((?!--setting regression).*)$", r"spinlens merge \1 --n-seeds 1 --steps 2"),
    (r"^spinlens quantize ((?!--setting regression|--model).*)$", r"spinlens quantize \1 --n-seeds 1 --n-random 1"),
    # the default language model trains only where no model is given (--base-steps is refused with one)
    (r"^spinlens (steer|pinpoint|merge|quantize) ((?!.*--setting regression)(?!.*--checkpoint)(?!.*--model).*)$",
     r"spinlens \1 \2 --base-steps 20"),
    (r"--jobs 2\b", "--jobs 1"),
    (r"examples/icl_circuit_tokens.py (.*)$", r"examples/icl_circuit_tokens.py \1 --steps 30"),
    (r"^spinlens lm (.*)$", r"spinlens lm \1 --steps 10 --max-chars 20000 --vocab-size 300 --d-model 32 --n-ctx 32"),
    (r"^spinlens interp fv --checkpoint (.*)$", r"spinlens interp fv --checkpoint \1 --n-pairs 2 --n-prompts 16 --n-seeds 1"),
]
SKIP = ("source .venv/bin/activate", "pip install")  # the test environment has both (make test installs [hf])


def _readme_lines():
    lines = []
    for block in _blocks("bash"):
        text = block.replace("\\\n", " ")
        for line in text.splitlines():
            line = line.split(" #", 1)[0].strip()
            if not line or line.startswith(("make ", "#")) or line.startswith(SKIP):
                continue
            lines.extend(part.strip() for part in line.split("&&"))
    return lines


def _fast(line):
    for pat, rep in FAST:
        line = re.sub(pat, rep, line)
    return line


def test_readme_lines_are_all_known_kinds():
    for line in _readme_lines():
        assert line.startswith(("spinlens ", "python ", "OMP_NUM_THREADS=1 python ")), line


@pytest.mark.slow  # 3-8 min on 2 loaded cores: `make test-slow`; `make test` parses every line
@pytest.mark.timeout(900)                   # (test_readme_commands_parse) and runs each command in its own tests
def test_every_readme_line_runs_in_order(tmp_path, monkeypatch, capsys):
    import os
    import shutil
    import subprocess
    import sys

    from spinlens.cli.main import main

    shutil.copytree(README.parent / "examples", tmp_path / "examples")
    shutil.copy(README.parent / "constraints.txt", tmp_path / "constraints.txt")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    import time

    ran = []
    for line in _readme_lines():
        fast = _fast(line)
        t0 = time.perf_counter()
        if fast.startswith("spinlens "):
            code = main(shlex.split(fast)[1:])
            err = capsys.readouterr().err
            assert code in (0, 3), f"{line!r} (fast: {fast!r}) exited {code}: {err[-2000:]}"
            if code == 3:  # the non-convergence rule: one warning line says so
                assert "did not converge" in err, (line, err)
        else:
            argv = shlex.split(fast)
            env = dict(os.environ)
            while "=" in argv[0]:
                k, v = argv.pop(0).split("=", 1)
                env[k] = v
            assert argv[0] == "python", line
            if argv[1] == "-c":  # in-process: same code, no second interpreter start
                exec(compile(argv[2], line, "exec"), {})
                ran.append((round(time.perf_counter() - t0, 1), line))
                continue
            r = subprocess.run([sys.executable, *argv[1:]], env=env, capture_output=True, text=True, timeout=600)
            assert r.returncode == 0, f"{line!r} failed: {r.stderr[-2000:]}"
        ran.append((round(time.perf_counter() - t0, 1), line))
    print("\n".join(f"{t:6.1f} s  {ln}" for t, ln in sorted(ran, reverse=True)[:10]))
    assert len(ran) >= 30
    assert (tmp_path / "runs" / "sweep-a" / "results.nc").exists() and (tmp_path / "runs" / "tok" / "model").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["constraints.txt", "examples", "runs"]  # all under runs/


# ------------------------------------------------------------------------------ durations and the output folder
DURATION = re.compile(r"^~(\d+(?:\.\d+)?) (s|min|h)\b")


def readme_durations() -> list[tuple[list[str], float | None]]:
    """For every command line of the README's bash blocks: (its parts as `_readme_lines` gives them, split at
    '&&'; the seconds its comment states, '# ~N s' / '~N min' at the start of the comment, or None)."""
    out = []
    for block in _blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            cmd, _, comment = (x.strip() for x in line.partition(" #"))
            if not cmd or cmd.startswith(("make ", "#")) or cmd.startswith(SKIP):
                continue
            m = DURATION.match(comment)
            out.append(([p.strip() for p in cmd.split("&&")],
                        None if m is None else float(m[1]) * {"s": 1, "min": 60, "h": 3600}[m[2]]))
    return out


def test_every_readme_line_states_its_duration():
    durations = readme_durations()
    assert [p for parts, _ in durations for p in parts] == _readme_lines()
    for parts, seconds in durations:
        assert seconds is not None, f"README line without a '# ~N s' duration: {' && '.join(parts)!r}"


def test_readme_outputs_go_under_runs():
    """Every output path of a README line is under runs/ (which .gitignore covers), nothing in the repository root."""
    flags = ("--out", "-o", "--save", "--save-prompts")
    for line in _readme_lines():
        argv = shlex.split(line)
        for i, a in enumerate(argv[:-1]):
            if a in flags:
                assert argv[i + 1].startswith("runs/"), line
        if "save_pretrained(" in line:
            assert "save_pretrained('runs/" in line, line
    assert "runs/" in (README.parent / ".gitignore").read_text().split()
