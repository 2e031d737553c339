from __future__ import annotations

import math

import numpy as np
import pytest

from npuperf.stats import Summary, percentile, tokens_within


@pytest.mark.parametrize("q", [0, 10, 25, 50, 75, 90, 100])
@pytest.mark.parametrize("values", [[1.0], [3.0, 1.0], [1, 2, 3, 4], [5.5, 1.25, 9.0, 2.0, 2.0, 7.75, 3.5]])
def test_percentile_matches_numpy_linear(values: list[float], q: float) -> None:
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_rejects_empty_and_out_of_range() -> None:
    with pytest.raises(ValueError, match="empty"):
        percentile([], 50)
    with pytest.raises(ValueError, match=r"within 0\.\.100"):
        percentile([1.0], 101)


def test_summary_of_fixed_samples() -> None:
    s = Summary.of([10.0, 12.0, 11.0, 30.0])
    assert (s.n, s.median, s.min, s.max) == (4, 11.5, 10.0, 30.0)
    assert s.p90 == pytest.approx(24.6)
    assert s.mean == pytest.approx(15.75)


def test_summary_of_one_sample_has_zero_stdev() -> None:
    s = Summary.of([7.0])
    assert (s.median, s.p90, s.stdev) == (7.0, 7.0, 0.0)


def test_identical_samples_have_zero_spread() -> None:
    s = Summary.of([3.0] * 5)
    assert s.stdev == 0.0
    assert s.p25 == s.median == s.p90 == 3.0


@pytest.mark.parametrize("bad", [[], [math.nan], [1.0, math.inf], [-1.0]])
def test_summary_rejects_bad_samples(bad: list[float]) -> None:
    with pytest.raises(ValueError, match="samples"):
        Summary.of(bad)


def test_tokens_within_budget() -> None:
    assert tokens_within(500, 175, 1000 / 12.3) == 4  # FIELD.md's Qwen2.5-7B on X Elite
    assert tokens_within(500, 600, 10) == 0
    assert tokens_within(500, 100, None) == 1
    assert tokens_within(500, 100, 100) == 5
    with pytest.raises(ValueError, match="budget must be > 0 ms"):
        tokens_within(0, 1, 1)
