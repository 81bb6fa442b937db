"""Errors and warnings of spinlens.

`InvalidParameterError` is raised for bad user input; its message names the parameter, the allowed
range and the value received (scikit-learn's wording). The CLI turns it into one line on stderr and
exit code 2. Non-convergence is never an exception: solvers return ``converged=False`` and emit
`SolverDidNotConvergeWarning`.
"""

from __future__ import annotations


class SpinlensError(Exception):
    """Base class of every error raised by spinlens."""


class InvalidParameterError(SpinlensError, ValueError):
    """A parameter is outside its allowed range, has the wrong type, or data are malformed."""


class InvalidPromptsError(InvalidParameterError):
    """A prompts file or array does not satisfy the Prompts contract (shapes, finiteness, hidden label)."""


class SolverDidNotConvergeWarning(UserWarning):
    """A solver stopped without meeting its tolerance, or diverged; see the result's ``message``."""


def check_int(name: str, value, *, low: int | None = None, high: int | None = None, owner: str = "") -> int:
    """Validate an integer parameter in [low, high] and return it as ``int``."""
    where = f" of {owner}" if owner else ""
    if isinstance(value, bool) or not isinstance(value, (int,)) and not (
        hasattr(value, "__index__") and not isinstance(value, float)
    ):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise InvalidParameterError(
                f"The '{name}' parameter{where} must be an integer{_range(low, high)}. Got {value!r} instead."
            )
    try:
        value = int(value)
    except (TypeError, ValueError, OverflowError):  # e.g. an array with __index__, or a float inf
        raise InvalidParameterError(
            f"The '{name}' parameter{where} must be an integer{_range(low, high)}. Got {value!r} instead."
        ) from None
    if (low is not None and value < low) or (high is not None and value > high):
        raise InvalidParameterError(
            f"The '{name}' parameter{where} must be an integer{_range(low, high)}. Got {value!r} instead."
        )
    return value


def check_float(
    name: str,
    value,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    owner: str = "",
) -> float:
    """Validate a finite real parameter in an (optionally open) interval and return it as ``float``."""
    where = f" of {owner}" if owner else ""
    lo_b = "(" if low_open or low is None else "["
    hi_b = ")" if high_open or high is None else "]"
    interval = f"{lo_b}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi_b}"
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(
            f"The '{name}' parameter{where} must be a real number in {interval}. Got {value!r} instead."
        ) from None
    bad = x != x or x in (float("inf"), float("-inf"))
    if low is not None:
        bad = bad or (x <= low if low_open else x < low)
    if high is not None:
        bad = bad or (x >= high if high_open else x > high)
    if bad:
        raise InvalidParameterError(
            f"The '{name}' parameter{where} must be a real number in {interval}. Got {value!r} instead."
        )
    return x


def check_choice(name: str, value, choices, *, owner: str = ""):
    """Validate that ``value`` is one of ``choices``."""
    where = f" of {owner}" if owner else ""
    try:
        ok = isinstance(value, (str, int, float, type(None))) and value in choices
    except TypeError:
        ok = False
    if not ok:
        opts = ", ".join(repr(c) for c in choices)
        raise InvalidParameterError(f"The '{name}' parameter{where} must be one of {{{opts}}}. Got {value!r} instead.")
    return value


def parse_floats(name: str, text, *, allow_inf: bool = False) -> list[float]:
    """Parse a number or a comma-separated list of numbers (``"0.1"``, ``"0,0.1,1"``) given as text.

    Every item must be a finite number (``allow_inf``: ``inf`` too, not ``-inf``); empty items and NaN are
    refused with a message naming ``name`` and the value.
    """
    parts = [t.strip() for t in str(text).split(",")]
    if not any(parts):
        raise InvalidParameterError(f"The '{name}' parameter must be a number. Got {text!r} instead.")
    if not all(parts):
        raise InvalidParameterError(f"The '{name}' parameter must be a comma-separated list of numbers without empty "
                                    f"items. Got {text!r} instead.")
    out = []
    for t in parts:
        try:
            v = float(t)
        except ValueError:
            raise InvalidParameterError(f"The '{name}' parameter must be a number. Got {t!r} instead.") from None
        if v != v or (v in (float("inf"), float("-inf")) and not (allow_inf and v > 0)):
            raise InvalidParameterError(f"The '{name}' parameter must be a finite number. Got {t!r} instead.")
        out.append(v)
    return out


def parse_float(name: str, text, *, allow_inf: bool = False) -> float:
    """Parse exactly one number given as text (`parse_floats` with a single item)."""
    vals = parse_floats(name, text, allow_inf=allow_inf)
    if len(vals) != 1:
        raise InvalidParameterError(f"The '{name}' parameter must be a single number here. Got {text!r} instead.")
    return vals[0]


def _range(low, high) -> str:
    if low is None and high is None:
        return ""
    if high is None:
        return f" >= {low}"
    if low is None:
        return f" <= {high}"
    return f" in [{low}, {high}]"


class InsufficientMemoryError(InvalidParameterError):
    """A job's estimated peak memory exceeds the memory available; raised before any large allocation.

    The message is one line: the estimate in GiB, the memory available, and what to change. See
    `spinlens.memory`.
    """


def check_device(name: str, value: str) -> str:
    """Validate a torch device string (imports torch): it must parse and, for cuda/mps, be available."""
    import torch

    try:
        dev = torch.device(value)
    except (RuntimeError, TypeError, ValueError):
        raise InvalidParameterError(
            f"The '{name}' parameter must be a torch device such as 'cpu', 'cuda', 'cuda:0' or 'mps'. Got {value!r} instead."
        ) from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise InvalidParameterError(
            f"The '{name}' parameter must be a device spinlens can train on: 'cpu', 'cuda', 'cuda:N' or 'mps'. "
            f"Got {value!r} instead."
        )
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidParameterError(f"The '{name}' parameter is {value!r} but CUDA is not available here; use 'cpu'.")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise InvalidParameterError(f"The '{name}' parameter is {value!r} but this machine has "
                                    f"{torch.cuda.device_count()} CUDA device(s).")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InvalidParameterError(f"The '{name}' parameter is {value!r} but MPS is not available here; use 'cpu'.")
    return value
