"""The one verdict rule (`spinlens.verdict.compare`) on hand-computed cases."""

import math

import numpy as np
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


def test_mean_sd_is_the_sample_sd_ddof_1():
    # the one mean ± sd of spinlens (docs/vocabulary.md): the sample sd (statistics.stdev), 0 for one value
    import statistics

    from spinlens.verdict import mean_sd, mean_sd_dict

    v = [0.3, 0.34, 0.29, 0.41]
    m, s = mean_sd(v)
    assert m == pytest.approx(statistics.mean(v), rel=1e-15) and s == pytest.approx(statistics.stdev(v), rel=1e-14)
    assert s != pytest.approx(statistics.pstdev(v), rel=1e-3)  # not the population sd (ddof 0)
    assert mean_sd([2.5]) == (2.5, 0.0) and mean_sd_dict([1.0, 3.0]) == {"mean": 2.0, "sd": pytest.approx(2**0.5), "n": 2}
    a = np.array([[1.0, 2.0, np.nan], [3.0, 5.0, 7.0], [5.0, 5.0, 4.0]])
    mm, ss = mean_sd(a, axis=0)
    assert np.allclose(mm[:2], [3.0, 4.0]) and np.allclose(ss[:2], [2.0, statistics.stdev([2.0, 5.0, 5.0])])
    assert np.isnan(mm[2]) and np.isnan(ss[2])
    mm, ss = mean_sd(a, axis=0, skipna=True)  # seeds that did not converge (NaN) left out
    assert mm[2] == pytest.approx(5.5) and ss[2] == pytest.approx(statistics.stdev([7.0, 4.0]))
    mm, ss = mean_sd(a[:1], axis=0, skipna=True)
    assert np.allclose(ss[:2], 0.0) and np.isnan(mm[2]) and np.isnan(ss[2])
