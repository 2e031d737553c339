from __future__ import annotations

import math
import random

import numpy as np
import pytest

from npuperf.judge.stats import OnlineHolm, Summary, holm, median_of_ratios, percentile, ratio_of_medians, tokens_within


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


def test_ratio_of_identical_samples_is_one_with_a_point_interval() -> None:
    t = ratio_of_medians([5.0] * 10, [5.0] * 10, line=1.1)
    assert (t.ratio, t.ci_low, t.ci_high) == (1.0, 1.0, 1.0)
    assert t.p_value == 1.0


def test_ratio_with_n1_on_both_sides_is_a_point() -> None:
    t = ratio_of_medians([12.0], [10.0], line=1.1)
    assert t.ratio == t.ci_low == t.ci_high == pytest.approx(1.2)


def test_ratio_is_robust_to_an_outlier() -> None:
    base = [10.0, 10.1, 9.9, 10.2, 10.0, 9.8, 10.1, 10.0, 9.9, 10.1]
    t = ratio_of_medians([*base[:-1], 100.0], base, line=1.1)
    assert t.ratio == pytest.approx(1.0, abs=0.01)
    assert t.p_value > 0.5


def test_ratio_is_reproducible_for_a_seed_and_needs_both_sides() -> None:
    a, b = [1.0, 2.0, 3.0, 4.0], [1.5, 2.5, 3.5]
    assert ratio_of_medians(a, b, 1.1, seed=7) == ratio_of_medians(a, b, 1.1, seed=7)
    with pytest.raises(ValueError, match="samples on both sides"):
        ratio_of_medians([], b, 1.1)
    with pytest.raises(ValueError, match="resamples must be >= 100"):
        ratio_of_medians(a, b, 1.1, resamples=10)


def test_holm_rejects_step_down() -> None:
    assert holm([0.001, 0.02, 0.04], 0.05) == [True, True, True]
    assert holm([0.001, 0.04, 0.03], 0.05) == [True, False, False]
    assert holm([0.03, 0.03], 0.05) == [False, False]
    assert holm([], 0.05) == []


@pytest.mark.parametrize("seed", range(30))
def test_online_holm_never_rejects_more_than_full_holm(seed: int) -> None:
    rng = random.Random(seed)
    ps = [rng.random() ** 4 for _ in range(12)]
    family = OnlineHolm(12, 0.05)
    online = []
    for i in range(0, 12, 3):
        online += family.decide(ps[i : i + 3])
    final = holm(ps, 0.05)
    assert family.final() == final
    assert all(f for o, f in zip(online, final, strict=True) if o)


def test_online_holm_refuses_more_p_values_than_its_family() -> None:
    family = OnlineHolm(1, 0.05)
    family.decide([0.5])
    with pytest.raises(ValueError, match="more p-values"):
        family.decide([0.5])


def test_median_of_ratios_ignores_one_shifted_case() -> None:
    cases = [[10.0 + i, 10.1 + i, 9.9 + i] for i in range(9)]
    pairs = [([v * (1.5 if i == 0 else 1.0) for v in c], c) for i, c in enumerate(cases)]
    t = median_of_ratios(pairs, 1.03)
    assert t.ratio == pytest.approx(1.0)
    assert t.p_value > 0.5


# ----- samples grouped by process -------------------------------------------------------------


def test_median_of_medians_takes_one_median_per_process() -> None:
    from npuperf.judge.stats import median_of_medians

    assert median_of_medians([[1.0, 1.0, 100.0], [2.0], [3.0, 3.0]]) == 2.0
    with pytest.raises(ValueError, match="at least one sample"):
        median_of_medians([[1.0], []])


def test_a_hierarchical_bootstrap_of_one_group_each_is_the_plain_bootstrap() -> None:
    from npuperf.judge.stats import grouped_ratio

    cur, base = [12.0, 12.5, 13.0, 12.2, 12.8, 12.4], [10.0, 10.5, 11.0, 10.2, 10.8, 10.4]
    plain = ratio_of_medians(cur, base, line=1.10, seed=1)
    grouped = grouped_ratio([cur], [base], line=1.10, seed=1)
    assert grouped.ratio == pytest.approx(plain.ratio)
    assert grouped.ci_low == pytest.approx(plain.ci_low, abs=0.02)
    assert grouped.ci_high == pytest.approx(plain.ci_high, abs=0.02)


def test_the_grid_draws_processes_jointly_so_a_slow_process_widens_its_interval() -> None:
    """Two runs, five processes each; in one, process 0 was slow for every case (a slow process)."""
    from npuperf.judge.stats import grid_ratio

    def run(slow: float) -> list[dict[int, list[float]]]:
        return [{p: [10.0 * (1 + i / 50) * (slow if p == 0 else 1.0)] * 3 for p in range(5)} for i in range(10)]

    quiet = grid_ratio(list(zip(run(1.0), run(1.0), strict=True)), line=1.03, seed=2)
    one_slow = grid_ratio(list(zip(run(1.5), run(1.0), strict=True)), line=1.03, seed=2)
    assert quiet.ratio == pytest.approx(1.0)
    assert one_slow.ratio == pytest.approx(1.0)  # the median process: the slow one does not move it
    assert one_slow.ci_high > quiet.ci_high  # ...but the interval knows it happened
    assert one_slow.p_value > 0.05


def test_a_case_a_drawn_process_did_not_measure_sits_the_replicate_out() -> None:
    from npuperf.judge.stats import grid_ratio

    cases = [({0: [11.0] * 3, 1: [11.0] * 3}, {0: [10.0] * 3, 1: [10.0] * 3}), ({1: [22.0] * 3}, {0: [20.0] * 3})]
    test = grid_ratio(cases, line=1.05, seed=0)
    assert test.ratio == pytest.approx(1.1)
    assert test.p_value < 0.01


def test_paired_ratios_cancel_what_both_sides_of_a_pair_share() -> None:
    from npuperf.judge.stats import paired_grid_ratio, paired_ratio

    drift = [1.0, 1.3, 0.8, 1.1, 1.2]
    pairs = [([11.0 * d] * 3, [10.0 * d] * 3) for d in drift]
    test = paired_ratio(pairs, line=1.05, seed=0)
    assert test.ratio == pytest.approx(1.1)
    assert test.ci_low == pytest.approx(1.1)
    grid = paired_grid_ratio([pairs, pairs], line=1.05, seed=0)
    assert grid.ratio == pytest.approx(1.1)
    with pytest.raises(ValueError, match="every pair needs samples"):
        paired_ratio([([1.0], [])], line=1.0)
