"""Change points in a series of nightly medians (E-divisive means)."""

from __future__ import annotations

import random

import pytest

from npuperf.judge.changes import change_points


def noisy(level: float, n: int, rng: random.Random, spread: float = 0.02) -> list[float]:
    return [level * rng.gauss(1, spread) for _ in range(n)]


def test_a_lasting_step_is_found_at_its_run_with_its_size() -> None:
    rng = random.Random(1)
    (step,) = change_points(noisy(10, 15, rng) + noisy(11.5, 15, rng))
    assert step.index == 15
    assert step.ratio == pytest.approx(1.15, abs=0.02)
    assert step.ci_low > 1.1
    assert "stepped up +1" in step.words


def test_a_regression_then_its_fix_is_two_steps() -> None:
    rng = random.Random(2)
    steps = change_points(noisy(10, 10, rng) + noisy(12, 10, rng) + noisy(10, 10, rng))
    assert [(s.index, s.ratio > 1) for s in steps] == [(10, True), (20, False)]


@pytest.mark.parametrize("seed", range(5))
def test_a_flat_series_has_no_step(seed: int) -> None:
    assert change_points(noisy(10, 40, random.Random(seed))) == []


def test_a_significant_but_small_step_is_not_material() -> None:
    rng = random.Random(3)
    series = noisy(10, 20, rng, 0.002) + noisy(10.2, 20, rng, 0.002)  # +2%, clear but small
    assert change_points(series, min_step=0.05) == []
    assert [s.index for s in change_points(series, min_step=0.01)] == [20]


def test_too_few_runs_say_nothing_and_bad_values_are_refused() -> None:
    assert change_points([10.0] * 4 + [20.0] * 3) == []
    with pytest.raises(ValueError, match="positive, finite"):
        change_points([10.0, 0.0] * 5)
    with pytest.raises(ValueError, match="alpha must be in"):
        change_points([10.0] * 10, alpha=1.5)


def test_the_same_history_gives_the_same_answer() -> None:
    series = noisy(10, 12, random.Random(4)) + noisy(11, 12, random.Random(5))
    assert change_points(series) == change_points(series)
