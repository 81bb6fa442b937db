"""The README's Python example runs, and every `spinlens …` command it shows parses."""

import re
import shlex
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


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
