"""Grid specification of a sweep: which parameters, which values, validated once.

A grid is the Cartesian product of value lists, one per model parameter. A parameter is named by its
symbol (`spinlens.vocabulary`, docs/vocabulary.md), on the command line, in point dictionaries and as the
dimension of the result Dataset; its Python name, long flag name and old flag names from the same table are
accepted as aliases in config files (``n_context``, ``context-length``). This module adds only what is
particular to a sweep, the type, allowed range and default of each parameter (`PARAMETERS`):

=========  =======  ==========================  ==========
symbol     type     allowed                     default
=========  =======  ==========================  ==========
D          int      >= 1                        20
N          int      >= 1                        100
P          int      >= 1                        1000
K          int      >= 1, or inf (fresh tasks)  inf
lam        float    >= 0                        1.0
beta       float    >= 1e-100                   100.0
damping    float    [0, 1)                      0.9
corr       float    [0, 1)                      0.0
sigma_eps  float    >= 0                        0.0
seed       int      >= 0                        0
=========  =======  ==========================  ==========

Value syntax (command line strings, or strings in a TOML/YAML file):

* ``20`` one value; ``10,20,50`` a list;
* ``START:STOP:NUM`` ``NUM`` evenly spaced values, both ends included (numpy ``linspace``), rounded to the
  nearest integer for integer parameters; ``START:STOP:NUM:log`` geometric spacing (``geomspace``);
* for ``seed`` only, ``START:STOP`` is a Python range (STOP excluded): ``0:10`` means ten repeats 0..9.

In a TOML/YAML file a value may also be a number, a list, or a table ``{start=, stop=, num=, log=}``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spinlens.errors import InvalidParameterError
from spinlens.solvers.base import BETA_MIN
from spinlens.vocabulary import by_symbol

__all__ = ["PARAMETERS", "ParameterSpec", "SweepGrid", "parse_values", "make_grid", "load_config", "canonical_name"]


#: at most this many values per parameter, and grid points in all
MAX_VALUES = 1_000_000
MAX_POINTS = 10_000_000


@dataclass(frozen=True)
class ParameterSpec:
    """One sweepable parameter: names, type, allowed range, default and labels for the Dataset."""

    name: str
    dim: str
    kind: str  # "int" or "float"
    low: float
    low_open: bool
    high: float | None
    high_open: bool
    default: object
    long_name: str
    aliases: tuple[str, ...] = ()
    allow_inf: bool = False

    def interval(self) -> str:
        lo = ("(" if self.low_open else "[") + f"{self.low:g}"
        hi = ("inf)" if self.high is None else f"{self.high:g}" + (")" if self.high_open else "]"))
        extra = ", or inf" if self.allow_inf else ""
        what = "an integer" if self.kind == "int" else "a real number"
        return f"{what} in {lo}, {hi}{extra}"

    def check(self, value, *, source: str = ""):
        """Validate one value, returning it as int/float (or None for K = inf)."""
        src = f" (from {source!r})" if source else ""
        if self.allow_inf and (value is None or (isinstance(value, float) and math.isinf(value) and value > 0)):
            return None
        try:
            x = float(value)
        except (TypeError, ValueError):
            x = math.nan
        bad = not math.isfinite(x)
        if not bad and self.kind == "int":
            bad = not float(x).is_integer()
        if not bad:
            bad = x <= self.low if self.low_open else x < self.low
        if not bad and self.high is not None:
            bad = x >= self.high if self.high_open else x > self.high
        if bad or isinstance(value, bool):
            raise InvalidParameterError(
                f"The sweep parameter '{self.name}' ({self.long_name}) must be {self.interval()}. Got {value!r}{src} instead."
            )
        return int(round(x)) if self.kind == "int" else float(x)


def _spec(symbol: str, kind: str, low: float, low_open: bool, high: float | None, high_open: bool, default,
          extra: tuple[str, ...] = (), allow_inf: bool = False) -> ParameterSpec:
    """A sweep parameter of `spinlens.vocabulary`: its symbol, meaning and spellings come from the table (the
    Python name, the long flag name and the old flag names are accepted in config files, as ``extra``)."""
    t = by_symbol(symbol)
    return ParameterSpec(t.symbol, t.symbol, kind, low, low_open, high, high_open, default, f"{t.math}: {t.meaning}",
                         (t.python, t.long, *t.deprecated, *extra), allow_inf)


#: the sweepable parameters: the range and default of a sweep here, every name from `spinlens.vocabulary`
PARAMETERS: dict[str, ParameterSpec] = {
    p.name: p
    for p in [
        _spec("D", "int", 1, False, None, False, 20),
        _spec("N", "int", 1, False, None, False, 100),
        _spec("P", "int", 1, False, None, False, 1000),
        _spec("K", "int", 1, False, None, False, None, allow_inf=True),
        _spec("lam", "float", 0.0, False, None, False, 1.0, ("λ", "lambda")),
        _spec("beta", "float", BETA_MIN, False, None, False, 100.0, ("β",)),
        _spec("damping", "float", 0.0, False, 1.0, True, 0.9, ("θ", "theta")),
        _spec("corr", "float", 0.0, False, 1.0, True, 0.0, ("c",)),
        _spec("sigma_eps", "float", 0.0, False, None, False, 0.0, ("σ_ε", "noise")),
        # the repeat seed is no quantity of the model, so not in the vocabulary
        ParameterSpec("seed", "seed", "int", 0, False, None, False, 0, "repeat seed", ("seeds",)),
    ]
}

_ALIASES = {}
for _p in PARAMETERS.values():
    for _a in (_p.name, _p.dim, *_p.aliases):
        _ALIASES[_a.lower().replace("-", "_")] = _p.name


def canonical_name(key: str) -> str:
    """Map a parameter name or alias (``N``, ``n_context``, ``n-context``, ``λ``) to its short name."""
    k = str(key).strip()
    if k in PARAMETERS:
        return k
    low = k.lower().replace("-", "_")
    if low in _ALIASES:
        return _ALIASES[low]
    raise InvalidParameterError(
        f"Unknown sweep parameter {key!r}; allowed: {', '.join(PARAMETERS)} (or their Python names "
        f"{', '.join(p.aliases[0] for p in PARAMETERS.values() if p.aliases)})."
    )


def _parse_number(spec: ParameterSpec, text: str, source: str):
    t = text.strip()
    if spec.allow_inf and t.lower() in ("inf", "none", "infinite", "∞"):
        return None
    try:
        return float(t) if any(ch in t for ch in ".eEnN") else int(t)
    except ValueError:
        raise InvalidParameterError(
            f"The sweep parameter '{spec.name}' got {source!r}: {t!r} is not a number "
            "(use VALUE, V1,V2,..., START:STOP:NUM or START:STOP:NUM:log)."
        ) from None


def _spaced(spec: ParameterSpec, start, stop, num, log: bool, source: str) -> list:
    try:
        num_f = float(num)
    except (TypeError, ValueError):
        num_f = math.nan
    if not math.isfinite(num_f) or not num_f.is_integer():
        raise InvalidParameterError(f"The sweep parameter '{spec.name}': NUM in {source!r} must be an integer.")
    num_i = int(num_f)
    if num_i < 1:
        raise InvalidParameterError(
            f"The sweep parameter '{spec.name}' got an empty range {source!r}: NUM must be >= 1, got {num_i}."
        )
    try:
        start, stop = float(start), float(stop)
    except (TypeError, ValueError):
        start = stop = math.nan
    if not (math.isfinite(start) and math.isfinite(stop)):
        raise InvalidParameterError(
            f"The sweep parameter '{spec.name}': START and STOP in {source!r} must be finite numbers."
        )
    if num_i > MAX_VALUES:
        raise InvalidParameterError(
            f"The sweep parameter '{spec.name}': NUM in {source!r} must be at most {MAX_VALUES}, got {num_i}."
        )
    if log:
        if start <= 0 or stop <= 0:
            raise InvalidParameterError(
                f"The sweep parameter '{spec.name}': a log range {source!r} needs START > 0 and STOP > 0."
            )
        vals = np.geomspace(start, stop, num_i)
    else:
        vals = np.linspace(start, stop, num_i)
    if spec.kind == "int":
        rounded = [int(v) for v in np.rint(vals)]
        if len(set(rounded)) != len(rounded):
            raise InvalidParameterError(
                f"The sweep parameter '{spec.name}': {source!r} gives repeated integers after rounding "
                f"({rounded[:6]}...); use fewer points or a wider range."
            )
        return rounded
    return [float(v) for v in vals]


def parse_values(name: str, value) -> tuple:
    """Parse one parameter's values from a CLI string or a config value into a validated tuple.

    Parameters
    ----------
    name : str
        Parameter name or alias (see the module table).
    value : str, int, float, list or dict
        ``"20"``, ``"10,20,50"``, ``"2:100:50"``, ``"1e-3:1:7:log"``, ``"0:10"`` (seed only), a number,
        a list of numbers, or ``{"start": .., "stop": .., "num": .., "log": false}``.

    Returns
    -------
    tuple
        The validated values (int, float, or None for K = inf), in the order given.

    Raises
    ------
    InvalidParameterError
        Unknown parameter, empty range, bad syntax, value out of range, or repeated values.

    Examples
    --------
    >>> parse_values("N", "2:10:5")
    (2, 4, 6, 8, 10)
    >>> parse_values("seed", "0:3")
    (0, 1, 2)
    """
    pname = canonical_name(name)
    spec = PARAMETERS[pname]
    source = value if isinstance(value, str) else repr(value)
    raw: list
    if isinstance(value, dict):
        unknown = set(value) - {"start", "stop", "num", "log"}
        if unknown or not {"start", "stop", "num"} <= set(value):
            raise InvalidParameterError(
                f"The sweep parameter '{pname}': a range table needs keys start, stop, num (and optional log); "
                f"got {sorted(value)}."
            )
        raw = _spaced(spec, value["start"], value["stop"], value["num"], bool(value.get("log", False)), source)
    elif isinstance(value, (list, tuple)):
        raw = [_parse_number(spec, v, source) if isinstance(v, str) else v for v in value]
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise InvalidParameterError(f"The sweep parameter '{pname}' got an empty value.")
        if ":" in text:
            parts = [p.strip() for p in text.split(":")]
            log = False
            if parts[-1].lower() in ("log", "geom"):
                log = True
                parts = parts[:-1]
            if pname == "seed" and len(parts) == 2 and not log:
                a, b = (_parse_number(spec, p, source) for p in parts)
                if not all(isinstance(v, int) for v in (a, b)):
                    raise InvalidParameterError(f"The sweep parameter 'seed': range {text!r} needs integers.")
                if b - a > MAX_VALUES:
                    raise InvalidParameterError(
                        f"The sweep parameter 'seed': range {text!r} has {b - a} values; at most {MAX_VALUES}."
                    )
                raw = list(range(a, b))
                if not raw:
                    raise InvalidParameterError(
                        f"The sweep parameter 'seed' got an empty range {text!r} (START:STOP with STOP > START)."
                    )
            elif len(parts) == 3:
                nums = [_parse_number(spec, p, source) for p in parts]
                if any(v is None for v in nums[:2]):
                    raise InvalidParameterError(f"The sweep parameter '{pname}': range {text!r} cannot contain inf.")
                raw = _spaced(spec, nums[0], nums[1], nums[2], log, text)
            else:
                hint = " (for seed, START:STOP is a range)" if pname != "seed" else ""
                raise InvalidParameterError(
                    f"The sweep parameter '{pname}' got {text!r}; a range is START:STOP:NUM or START:STOP:NUM:log{hint}."
                )
        else:
            items = text.split(",")
            if any(p.strip() == "" for p in items):
                raise InvalidParameterError(f"The sweep parameter '{pname}' got {text!r}, a list with an empty item; "
                                            "write values separated by single commas (5,10,20).")
            raw = [_parse_number(spec, p, source) for p in items]
    elif value is None and spec.allow_inf:
        raw = [None]
    else:
        raw = [value]
    if not raw:
        raise InvalidParameterError(f"The sweep parameter '{pname}' got an empty list of values {source!r}.")
    vals = tuple(spec.check(v, source=str(source)) for v in raw)
    if len(set(vals)) != len(vals):
        raise InvalidParameterError(f"The sweep parameter '{pname}' has repeated values {list(vals)}.")
    return vals


def parse_int_values(name: str, value, flag: str | None = None) -> list[int]:
    """The finite integer values of a grid parameter (`parse_values` syntax: ``V``, ``V1,V2``, ``A:B:NUM``,
    ``A:B:NUM:log``) for a caller that needs numbers only: ``inf`` (K) is refused, naming ``name``."""
    vals = parse_values(flag or name, value)
    if any(v is None for v in vals):
        raise InvalidParameterError(f"The '{name}' parameter must list finite integers >= 1 here (no 'inf'). "
                                    f"Got {value!r}.")
    return [int(v) for v in vals]


@dataclass(frozen=True)
class SweepGrid:
    """A validated Cartesian grid over all sweep parameters.

    Every parameter of `PARAMETERS` has a tuple of values (one value: held fixed). Points are enumerated
    in C order over the parameters in the order of `PARAMETERS` (seed varies fastest).

    Attributes
    ----------
    values : tuple of (name, tuple of values)
        In the order of `PARAMETERS`.
    """

    values: tuple

    @property
    def mapping(self) -> dict:
        return dict(self.values)

    @property
    def swept(self) -> list[str]:
        """Short names of the parameters with more than one value (the Dataset's dims)."""
        return [k for k, v in self.values if len(v) > 1]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(v) for _, v in self.values)

    @property
    def n_points(self) -> int:
        return int(np.prod(self.shape))

    def points(self):
        """Iterate over the points as dicts {short name: value} (C order, seed fastest)."""
        names = [k for k, _ in self.values]
        for combo in itertools.product(*(v for _, v in self.values)):
            yield dict(zip(names, combo))

    def to_dict(self) -> dict:
        """JSON-friendly form (K = inf written as None)."""
        return {k: list(v) for k, v in self.values}

    @classmethod
    def from_dict(cls, d: dict) -> SweepGrid:
        return make_grid(d)

    def __repr__(self) -> str:
        parts = []
        for k, v in self.values:
            if len(v) == 1:
                parts.append(f"{k}={v[0]}")
            else:
                parts.append(f"{k}=[{v[0]}..{v[-1]}]×{len(v)}")
        return f"SweepGrid({', '.join(parts)}; {self.n_points} points)"


def make_grid(spec: dict | None = None, **kwargs) -> SweepGrid:
    """Build a validated `SweepGrid` from {name: value spec}; unspecified parameters take their defaults.

    Examples
    --------
    >>> g = make_grid({"N": "10,20", "P": "100:300:3", "seed": "0:2"})
    >>> g.swept, g.n_points
    (['N', 'P', 'seed'], 12)
    """
    merged: dict = {}
    for src in (spec or {}, kwargs):
        for k, v in src.items():
            if v is None and canonical_name(k) != "K":
                continue
            merged[canonical_name(k)] = v
    values = []
    for name, p in PARAMETERS.items():
        if name in merged:
            values.append((name, parse_values(name, merged[name])))
        else:
            values.append((name, (p.default,)))
    grid = SweepGrid(tuple(values))
    if grid.n_points > MAX_POINTS:
        raise InvalidParameterError(
            f"The sweep grid has {grid.n_points} points ({' × '.join(str(n) for n in grid.shape if n > 1)}); "
            f"at most {MAX_POINTS}: split it into several sweeps."
        )
    return grid


def load_config(path: str | os.PathLike) -> dict:
    """Read a sweep config (TOML, or YAML/JSON) into ``{"grid": {...}, "settings": {...}}``.

    Accepted layouts: a ``[grid]`` table of parameters and an optional ``[settings]`` table
    (observables, method, max_iter, tol, n_mc, jobs, ...), or a flat table where parameter names go to the
    grid and anything else to the settings.
    """
    path = Path(path)
    from spinlens.io import check_regular_file

    check_regular_file("config", path)  # missing, a folder, a FIFO or a device: one line, before any read
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidParameterError(f"The 'config' file {str(path)!r} is not a UTF-8 text file.") from None
    except OSError as exc:
        raise InvalidParameterError(f"The 'config' file {str(path)!r} cannot be read: {exc.strerror or exc}.") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.load(text, Loader=_strict_yaml_loader()) or {}
        elif suffix == ".json":
            from spinlens.io import no_duplicate_keys

            data = json.loads(text, object_pairs_hook=no_duplicate_keys)
        else:
            raise InvalidParameterError(
                f"The 'config' file {str(path)!r} must end in .toml, .yaml, .yml or .json."
            )
    except InvalidParameterError:
        raise
    except Exception as exc:  # parse errors of tomllib / yaml / json
        raise InvalidParameterError(f"The 'config' file {str(path)!r} could not be parsed: {exc}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise InvalidParameterError(f"The 'config' file {str(path)!r} must hold a table/mapping at top level.")
    for table in ("grid", "settings"):
        if not isinstance(data.get(table) or {}, dict):
            raise InvalidParameterError(
                f"The 'config' file {str(path)!r}: '{table}' must be a table/mapping of names to values. "
                f"Got {data[table]!r} instead."
            )
    raw_grid = dict(data.pop("grid", {}) or {})
    settings = dict(data.pop("settings", {}) or {})
    flat = {}
    for k, v in data.items():
        try:
            canonical_name(k)
            flat[k] = v
        except InvalidParameterError:
            settings[k] = v
    grid: dict = {}
    spelled: dict = {}
    for k, v in [*raw_grid.items(), *flat.items()]:
        name = canonical_name(k)
        if name in grid:  # two spellings of one symbol (N and n_context, or in [grid] and at top level)
            raise InvalidParameterError(f"The 'config' file {str(path)!r} gives the sweep parameter '{name}' twice "
                                        f"({spelled[name]!r} and {k!r}); give it once.")
        grid[name], spelled[name] = v, k
    return {"grid": grid, "settings": settings}


def _strict_yaml_loader():
    from spinlens.io import strict_yaml_loader

    return strict_yaml_loader()


def point_key(params: dict) -> str:
    """A stable short hash of a point's parameters (file name of the point in the store)."""
    return hashlib.sha256(canonical_json(params).encode()).hexdigest()[:20]


def canonical_json(obj) -> str:
    """JSON with sorted keys and exact float reprs: the same parameters always give the same text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def point_seed_sequence(params: dict) -> np.random.SeedSequence:
    """The random stream of a point: derived from its seed and a hash of its other parameters.

    It does not depend on the order of execution, on the worker, or on the other points of the grid;
    two grids sharing a point give that point the same stream.
    """
    rest = {k: v for k, v in params.items() if k != "seed"}
    digest = hashlib.sha256(canonical_json(rest).encode()).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return np.random.SeedSequence([int(params.get("seed", 0)), *words])
