"""One key per quantity (docs/vocabulary.md, 'One key per quantity'): the JSON printed by every fast command, and
every run.json, JSON, CSV and NetCDF file it writes, use ``sd`` (never ``std``), ``n_iter`` (never
``iterations``) and ``elapsed_s`` / ``<part>_elapsed_s`` for a measured time (never ``seconds``,
``wall_seconds``, ``wall_time``, ...); Lu et al.'s ridge is ``lam_lu``, never ``lam``, in the theory's own modes.

The commands are the fast base command lines of the CLI fuzz (tests/cli/fuzz_cli.py, one per subcommand that
runs in about a second) plus the solver methods and the theory's point forms; a static scan of the sources
covers the slow commands (LLM studies, reproductions) that are not run here.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
from pathlib import Path

import fuzz_cli as F
import pytest

from spinlens.cli.main import main

ROOT = Path(__file__).resolve().parents[2]

#: a key that names a quantity which has another key (the one to use is in the message)
SYNONYMS = [
    (re.compile(r"(^|_)std($|_)"), "sd"),
    (re.compile(r"(^|_)iterations($|_)"), "n_iter"),
    (re.compile(r"(^|_)(seconds|secs|wall_seconds|wall_time|wall_time_s|runtime|duration|elapsed|time_s)$"), "elapsed_s"),
    (re.compile(r"^cpu_time"), "cpu_s"),
]

EXTRA = {
    "theory lu": "theory --alpha 2 --tau 2 --lam-lu 0.1 --json",
    "theory spin-glass": "theory --spin-glass --D 4 --N 5 --P 50 --lam 0.01 --json",
    "solve cavity": "solve --D 2 --N 3 --P 20 --method cavity --steps 5 --json",
    "solve sample": "solve --D 2 --N 3 --P 20 --method sample --samples 40 --json",
    "solve langevin": "solve --D 2 --N 3 --P 20 --method langevin --json",
    "solve limit": "solve --D 2 --N 3 --method limit --json",
}


def synonym(key: str) -> str | None:
    """The key to use instead of ``key``, or None when ``key`` is fine."""
    k = str(key).lower()
    for pattern, use in SYNONYMS:
        if pattern.search(k):
            return use
    return None


def bad_keys(obj, where: str, out: list) -> list:
    """(where, key, use instead) for every key of a nested JSON value that is a known synonym."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            use = synonym(k)
            if use:
                out.append((where, k, use))
            bad_keys(v, f"{where}.{k}", out)
    elif isinstance(obj, list):
        for v in obj[:5]:
            bad_keys(v, where, out)
    return out


def test_the_scan_finds_each_synonym():
    found = bad_keys({"a": {"icl_std": 1, "n_iter": 2, "rows": [{"iterations": 3, "wall_seconds": 4}]},
                      "seconds": 5, "elapsed_s": 6, "sd": 7, "cg_iterations": 8, "cpu_time": 9, "wall_time_s": 1,
                      "time_estimate_s": 2, "standard": 3}, "x", [])
    assert {(k, use) for _, k, use in found} == {("icl_std", "sd"), ("iterations", "n_iter"),
                                                 ("wall_seconds", "elapsed_s"), ("seconds", "elapsed_s"),
                                                 ("cg_iterations", "n_iter"), ("cpu_time", "cpu_s"),
                                                 ("wall_time_s", "elapsed_s")}


def _file_keys(path: Path, out: list) -> None:
    if path.suffix == ".json":
        try:
            obj = json.loads(path.read_text())
        except ValueError:
            return
        bad_keys(obj, path.name, out)
    elif path.suffix == ".csv":
        header = path.read_text().splitlines()[:1]
        for k in (header[0].split(",") if header else []):
            if synonym(k.strip()):
                out.append((path.name, k, synonym(k.strip())))
    elif path.suffix == ".nc":
        import xarray as xr

        with xr.open_dataset(path) as ds:
            for k in [*ds.variables, *ds.attrs]:
                if synonym(k):
                    out.append((path.name, k, synonym(k)))


def test_every_fast_command_writes_one_key_per_quantity(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("a file\n")
    found: list = []
    ran = 0
    for name, base in {**F.BASES, **EXTRA}.items():
        argv = shlex.split(base.replace("{tmp}", str(tmp_path)))
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
            try:
                code = main(argv)
            except SystemExit as exc:
                code = exc.code
        assert code in (0, 3), (name, code)
        for line in buf.getvalue().splitlines():
            if line.startswith(("{", "[")):
                bad_keys(json.loads(line), name, found)
                ran += 1
    for path in sorted(tmp_path.rglob("*")):
        if path.is_file():
            _file_keys(path, found)
    assert ran >= 15  # JSON on stdout from most of the commands
    assert not found, "keys with another name (docs/vocabulary.md): " + "; ".join(
        f"{w}: {k!r} -> {u!r}" for w, k, u in found)


def test_theory_lu_modes_print_lam_lu_not_lam(capsys):
    assert main(shlex.split(EXTRA["theory lu"])) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["lam_lu"] == 0.1 and "lam" not in obj
    assert main(shlex.split(EXTRA["theory spin-glass"])) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["spin_glass"]["lam"] == 0.01 and obj["lam_lu"] == pytest.approx(4 * 0.01 * 1.2**2, rel=1e-12)
    assert "lam" not in obj


#: string keys in the sources that are allowed although they look like synonyms: readers of old saved files
_OLD_KEY_READERS = {"wall_seconds": "src/spinlens/report.py", "wall_time": "src/spinlens/sweeps/_store.py",
                    "cpu_time": "src/spinlens/sweeps/_store.py"}


def test_no_synonym_key_in_the_sources():
    # the slow commands (LLM studies, reproductions) are not run above: their keys are string literals used as
    # dict keys ("key": value, ["key"], key=value into a record) in the sources
    literal = re.compile(r"""["']([a-z_]+)["']\s*:|\[["']([a-z_]+)["']\]|[(,]\s*([a-z_]+)\s*=\s*[^=]""")
    found = []
    for path in sorted((ROOT / "src" / "spinlens").rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if line.lstrip().startswith(("#", "def ", "class ")):
                continue
            for m in literal.finditer(line):
                key = next(g for g in m.groups() if g)
                if m.group(3) and not re.search(r"(run_record|update|dict|write_run_json)\(", line):
                    continue  # keyword arguments of ordinary calls are Python names, not keys
                use = synonym(key)
                if use and _OLD_KEY_READERS.get(key) != rel:
                    found.append(f"{rel}:{i}: {key!r} -> {use!r}")
    assert not found, "\n".join(found)


def test_a_dataset_in_memory_and_on_disk_are_one_map_apart(tmp_path):
    # memory: Python names (n_prompts, n_context, l2_strength); disk: symbols (P, N, lam); the maps are inverse
    import numpy as np
    import xarray as xr

    from spinlens import io as sio
    from spinlens.theory.phase import task_pool_phase_diagram
    from spinlens.vocabulary import dataset_to_python

    ds = task_pool_phase_diagram(2, [3, 4], [2], 8, 0.1, max_iter=3, n_repeats=1, exact=False, rng=0)
    assert ds.attrs["n_prompts"] == 8 and "n_context" in ds.dims
    sio.save_dataset(ds, tmp_path, "phase")
    with xr.open_dataset(tmp_path / "phase.nc") as disk:
        disk = disk.load()
    assert disk.attrs["P"] == 8 and "N" in disk.dims and "K" in disk.dims
    assert not {"n_prompts", "n_context", "n_tasks", "l2_strength", "d"} & (set(disk.attrs) | set(disk.dims))
    back = dataset_to_python(disk)
    assert set(back.dims) == set(ds.dims) and set(back.attrs) == set(ds.attrs)
    np.testing.assert_array_equal(back["icl_error"].values, ds["icl_error"].values)
