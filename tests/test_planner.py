"""The budget planner's arithmetic, against hand-computed values."""

from __future__ import annotations

import math

import pytest

from npuperf.report.planner import Point, cold_overhead_ms, largest_within, plan, plan_prompt


def point(n: float, latency: float, prompt: str = "p", ttft: float = 0.0, tpot: float | None = None) -> Point:
    return Point(f"t{n}-{prompt}", prompt, 8, n, latency, ttft, tpot)


def test_points_on_a_line_fit_exactly() -> None:
    # latency = 100 + 12.5 n: 500 ms fits floor(400 / 12.5) = 32, the breaker floor(1900 / 12.5) = 152
    p = plan_prompt([point(n, 100 + 12.5 * n) for n in (8, 16, 32, 64)], 500, 2000)
    assert p.fixed_ms == pytest.approx(100)
    assert p.per_token_ms == pytest.approx(12.5)
    assert p.rms_ms == pytest.approx(0, abs=1e-9)
    assert (p.fits_target, p.fits_breaker) == (32, 152)
    assert p.fitted
    assert not p.extrapolated
    assert p.formula() == "100.00 ms + n x 12.500 ms"


def test_noisy_points_report_the_fit_error() -> None:
    # residuals +1, -1, -1, +1 around 10 + 2n (a symmetric wobble keeps the line)
    pts = [point(8, 27), point(16, 41), point(32, 73), point(64, 139)]
    p = plan_prompt(pts, 500, 2000)
    assert p.per_token_ms == pytest.approx(2.0, abs=0.05)
    assert p.rms_ms is not None
    assert p.rms_ms > 0.5
    assert p.worst_ms is not None
    assert abs(p.worst_ms) >= 1.0
    assert p.extrapolated  # ~245 tokens fit, 64 were measured


def test_worst_residual_is_a_percentage_of_its_case() -> None:
    pts = [point(10, 20), point(20, 30), point(30, 46)]  # line 6 + 1.3n: residuals +1, -2, +1
    p = plan_prompt(pts, 500, 2000)
    assert (p.fixed_ms, p.per_token_ms) == (pytest.approx(6), pytest.approx(1.3))
    assert p.worst_ms == pytest.approx(-2)
    assert p.worst_pct == pytest.approx(-200 / 30)
    assert p.rms_ms == pytest.approx(math.sqrt(6 / 3))


def test_one_budget_falls_back_to_the_case_ttft_and_tpot() -> None:
    # FIELD.md's Qwen2.5-7B on an X Elite: TTFT 175 ms, 12.3 tok/s -> 1 + floor(325 / 81.3) = 4 tokens
    p = plan_prompt([point(32, 2700, ttft=175, tpot=1000 / 12.3)], 500, 2000)
    assert not p.fitted
    assert p.rms_ms is None
    assert p.fits_target == 4
    assert p.fits_breaker == 1 + math.floor((2000 - 175) / (1000 / 12.3))


def test_a_fixed_cost_over_the_target_fits_no_token() -> None:
    p = plan_prompt([point(n, 600 + n) for n in (8, 16)], 500, 2000)
    assert p.fits_target == 0
    assert p.fits_breaker == 1400  # floor((2000 - 600) / 1)


def test_decode_too_fast_to_show_falls_back_instead_of_dividing_by_a_negative_slope() -> None:
    p = plan_prompt([point(8, 10.0, ttft=9.0, tpot=0.1), point(16, 9.9, ttft=9.0, tpot=0.1)], 500, 2000)
    assert not p.fitted
    assert p.fits_target == 1 + math.floor((500 - 9.0) / 0.1 + 1e-9)


def test_plans_come_per_prompt_in_measured_order() -> None:
    pts = [point(8, 18, "b"), point(8, 10, "a"), point(16, 26, "b"), point(16, 18, "a")]
    assert [p.prompt for p in plan(pts, 500, 2000)] == ["b", "a"]


def test_largest_within_edges() -> None:
    assert largest_within(500, 100, 12.5) == 32
    assert largest_within(100, 100, 12.5) == 0
    assert largest_within(99, 100, 12.5) == 0
    assert largest_within(500, 100, None) == 1


def test_cold_overhead() -> None:
    assert cold_overhead_ms({"cold": {"latency_ms": 30.0}, "warm_latency_ms": 12.5}) == pytest.approx(17.5)
    assert cold_overhead_ms({}) is None
