"""One verdict line for every comparison of a method with a baseline: an effect with its spread, or "no effect".

Every command that compares a method with an uninformed baseline on the same model (``interp fv``,
``pinpoint``, ``steer``, ``merge``, ``quantize``) ends its output with the line `compare` builds, so a
negative result reads as one::

    >>> print(compare([0.402], [0.392, 0.399, 0.406], what="target MSE", method="chosen heads",
    ...               baseline="random heads", better="lower").line())
    verdict: chosen heads vs random heads, target MSE: no effect (0.402 lies inside the spread of the random heads, 0.385 … 0.413)
    >>> print(compare([0.30, 0.32, 0.31], [0.50, 0.52, 0.49], what="loss", method="steered",
    ...               baseline="unsteered", better="lower").line())
    verdict: steered vs unsteered, loss: effect -0.193 ± 0.018 (better; 0.31 vs 0.503)

The rule (documented in docs/edit.md):

* The baseline's spread is the band ``[min, max]`` of its values, widened to ``mean ± 2 sd`` (ddof 1) when
  that is wider; a single baseline value is a band of width 0.
* "no effect" when the method's mean lies inside that band (the method is indistinguishable from what the
  baseline gives by chance);
* otherwise "effect Δ ± s" with Δ = mean(method) − mean(baseline) and s = sqrt(sd_m² + sd_b²) (ddof 1, a missing sd
  counts 0), and whether Δ points the ``better`` way. With one value on each side there is no spread: the line
  says "effect … (no spread: one value each; more seeds needed)".
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .errors import InvalidParameterError, check_choice


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The outcome of `compare` (all numbers are plain floats; ``to_dict`` for JSON)."""

    what: str
    method: str
    baseline: str
    method_mean: float
    baseline_mean: float
    band: tuple[float, float]
    effect: float
    spread: float
    is_effect: bool
    better: str
    n_method: int
    n_baseline: int

    @property
    def improves(self) -> bool:
        """True when there is an effect and it points the ``better`` way."""
        return self.is_effect and (self.effect < 0 if self.better == "lower" else self.effect > 0)

    def line(self) -> str:
        """``verdict: METHOD vs BASELINE, WHAT: no effect (...)`` or ``... effect Δ ± s (better|worse; m vs b)``."""
        head = f"verdict: {self.method} vs {self.baseline}, {self.what}: "
        if not self.is_effect:
            lo, hi = self.band
            where = f"spread of the {self.baseline}, {lo:.3g} … {hi:.3g}" if hi > lo else f"{self.baseline} value {lo:.3g}"
            return f"{head}no effect ({self.method_mean:.3g} lies inside the {where})"
        word = "better" if self.improves else "worse"
        if self.n_method < 2 and self.n_baseline < 2:
            return (f"{head}effect {self.effect:+.3g} ({word}; {self.method_mean:.3g} vs {self.baseline_mean:.3g}; "
                    "no spread: one value each, more seeds needed)")
        return (f"{head}effect {self.effect:+.3g} ± {self.spread:.2g} ({word}; {self.method_mean:.3g} vs "
                f"{self.baseline_mean:.3g})")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["band"] = list(self.band)
        d["improves"] = self.improves
        d["line"] = self.line()
        return d


def _values(name: str, x) -> np.ndarray:
    a = np.asarray(x, dtype=float).ravel()
    a = a[np.isfinite(a)]
    if a.size == 0:
        raise InvalidParameterError(f"The '{name}' values of a comparison must hold at least one finite number.")
    return a


def mean_sd(values, axis: int | None = None, *, skipna: bool = False):
    """Mean ± sd over seeds (or repeats): the one helper and the one convention of spinlens.

    The sd is the sample standard deviation, **ddof = 1** (the spread to expect of one more seed); over a
    single value it is 0.0 (nothing measured; report ``n``). ``axis``: the seed axis of an array (None: all
    values); ``skipna``: leave NaN out (runs that did not converge). Returns ``(mean, sd)``, floats when
    ``axis`` is None, else arrays. `mean_sd_dict` gives the JSON form ``{"mean", "sd", "n"}``.

    >>> mean_sd([1.0, 2.0, 3.0])
    (2.0, 1.0)
    >>> mean_sd([5.0])
    (5.0, 0.0)
    """
    a = np.asarray(values, dtype=float)
    if axis is None:
        a = a.ravel()
        if skipna:
            a = a[~np.isnan(a)]
        if a.size == 0:
            return math.nan, math.nan
        return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0
    n = (~np.isnan(a)).sum(axis=axis) if skipna else np.full(np.delete(a.shape, axis), a.shape[axis])
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.nansum(a, axis=axis) if skipna else a.sum(axis=axis)
        mean = np.where(n > 0, s / np.maximum(n, 1), np.nan)
        dev = np.where(np.isnan(a), 0.0, a - np.expand_dims(mean, axis)) if skipna else a - np.expand_dims(mean, axis)
        sd = np.sqrt((dev**2).sum(axis=axis) / np.maximum(n - 1, 1))
    sd = np.where(n > 1, sd, np.where(n == 1, 0.0, np.nan))
    return mean, sd


def mean_sd_dict(values, *, skipna: bool = False) -> dict:
    """``{"mean": m, "sd": s, "n": n}`` of `mean_sd` over all values (ddof = 1; sd 0.0 for one value)."""
    a = np.asarray(values, dtype=float).ravel()
    if skipna:
        a = a[~np.isnan(a)]
    m, s = mean_sd(a)
    return {"mean": m, "sd": s, "n": int(a.size)}


def _sd(a: np.ndarray) -> float:
    return mean_sd(a)[1]


def compare(method_values, baseline_values, *, what: str, method: str = "method", baseline: str = "baseline",
            better: str = "lower") -> Verdict:
    """The verdict on ``method_values`` (e.g. one number per seed) against ``baseline_values`` (per seed or
    per random draw) of the quantity ``what``; ``better`` is "lower" or "higher" (module docstring: the rule)."""
    better = check_choice("better", better, ("lower", "higher"), owner="compare")
    m, b = _values("method", method_values), _values("baseline", baseline_values)
    mm, bm, sb = float(m.mean()), float(b.mean()), _sd(b)
    lo, hi = float(min(b.min(), bm - 2 * sb)), float(max(b.max(), bm + 2 * sb))
    inside = lo <= mm <= hi
    return Verdict(what=what, method=method, baseline=baseline, method_mean=mm, baseline_mean=bm, band=(lo, hi),
                   effect=mm - bm, spread=math.hypot(_sd(m), sb), is_effect=not inside, better=better,
                   n_method=int(m.size), n_baseline=int(b.size))
