"""The one verdict rule (`spinlens.verdict.compare`) on hand-computed cases."""

import math

import pytest

from spinlens.errors import InvalidParameterError
from spinlens.verdict import compare


def test_inside_the_baseline_band_is_no_effect():
    v = compare([0.402], [0.392, 0.406], what="mse")  # band: min/max 0.392..0.406, mean ± 2 sd = 0.399 ± 0.0198
    assert not v.is_effect and not v.improves and "no effect" in v.line()
    assert v.band == pytest.approx((0.399 - 2 * 0.014 / math.sqrt(2), 0.399 + 2 * 0.014 / math.sqrt(2)))


def test_outside_the_band_is_an_effect_with_its_spread():
    v = compare([1.0, 1.2], [2.0, 2.2, 2.4], what="loss", better="lower")
    assert v.is_effect and v.improves
    assert v.effect == pytest.approx(1.1 - 2.2)
    assert v.spread == pytest.approx(math.hypot(math.sqrt(0.02), 0.2))
    assert "effect -1.1 ± 0.24 (better" in v.line()
    w = compare([1.0, 1.2], [2.0, 2.2, 2.4], what="accuracy", better="higher")
    assert w.is_effect and not w.improves and "(worse" in w.line()


def test_single_values_say_there_is_no_spread():
    v = compare([0.5], [0.7], what="loss")
    assert v.is_effect and "no spread" in v.line()
    assert not compare([0.7], [0.7], what="loss").is_effect


def test_bad_input():
    with pytest.raises(InvalidParameterError, match="'method'"):
        compare([math.nan], [1.0], what="x")
    with pytest.raises(InvalidParameterError, match="'better'"):
        compare([1.0], [1.0], what="x", better="up")
