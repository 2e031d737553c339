"""The budget planner's arithmetic, against hand-computed values."""

from __future__ import annotations

import math

import pytest

from npuperf.report.planner import Point, cold_overhead_ms, plan, plan_prompt


def point(n: float, latency: float, ttft: float, prompt: str = "p") -> Point:
    return Point(f"t{n}-{prompt}", prompt, 8, n, latency, ttft, None)


def test_points_on_the_model_fit_exactly() -> None:
    # TTFT 100 ms, TPOT 12.5 ms: 500 ms fits 1 + floor(400 / 12.5) = 33, the breaker 1 + floor(1900 / 12.5) = 153
    p = plan_prompt([point(n, 100 + 12.5 * (n - 1), ttft=100) for n in (8, 16, 32, 64)], 500, 2000)
    assert p.ttft_ms == pytest.approx(100)
    assert p.tpot_ms == pytest.approx(12.5)
    assert p.rms_ms == pytest.approx(0, abs=1e-9)
    assert (p.fits_target, p.fits_breaker) == (33, 153)
    assert p.fitted
    assert not p.extrapolated  # 33 <= 64 measured
    assert p.formula() == "100.00 ms + (n-1) x 12.500 ms"


def test_ttft_is_the_median_of_the_prompt_cases() -> None:
    pts = [point(8, 20, ttft=4), point(16, 30, ttft=5), point(32, 50, ttft=9)]
    assert plan_prompt(pts, 500, 2000).ttft_ms == 5


def test_residuals_give_the_fit_error() -> None:
    # TTFT 5; n-1 = 10, 20, 30; latency - TTFT = 11, 18, 31
    # TPOT = (10*11 + 20*18 + 30*31) / (100 + 400 + 900) = 1400 / 1400 = 1.0; residuals +1, -2, +1
    pts = [point(11, 16, ttft=5), point(21, 23, ttft=5), point(31, 36, ttft=5)]
    p = plan_prompt(pts, 500, 2000)
    assert p.tpot_ms == pytest.approx(1.0)
    assert p.worst_ms == pytest.approx(-2)
    assert p.worst_pct == pytest.approx(-200 / 23)
    assert p.rms_ms == pytest.approx(math.sqrt(6 / 3))
    assert p.fits_target == 1 + math.floor((500 - 5) / 1.0)
    assert p.extrapolated  # 496 tokens fit, 31 were measured


def test_one_case_is_its_own_fit() -> None:
    # FIELD.md's Qwen2.5-7B on an X Elite: TTFT 175 ms, 12.3 tok/s -> 1 + floor(325 / 81.3) = 4 tokens
    tpot = 1000 / 12.3
    p = plan_prompt([point(32, 175 + 31 * tpot, ttft=175)], 500, 2000)
    assert not p.fitted
    assert p.rms_ms is None
    assert p.tpot_ms == pytest.approx(tpot)
    assert p.fits_target == 4
    assert p.fits_breaker == 1 + math.floor((2000 - 175) / tpot)


def test_a_ttft_over_the_target_fits_no_token() -> None:
    p = plan_prompt([point(n, 600 + (n - 1), ttft=600) for n in (8, 16)], 500, 2000)
    assert p.fits_target == 0
    assert p.fits_breaker == 1 + 1400  # 1 + floor((2000 - 600) / 1)


def test_decode_too_fast_to_show_promises_one_token() -> None:
    p = plan_prompt([point(8, 8.9, ttft=9.0), point(16, 8.95, ttft=9.0)], 500, 2000)
    assert p.tpot_ms is None
    assert p.fits_target == 1
    assert p.formula() == "9.00 ms + (n-1) x - ms"


def test_plans_come_per_prompt_in_measured_order() -> None:
    pts = [point(8, 18, 2, "b"), point(8, 10, 2, "a"), point(16, 26, 2, "b"), point(16, 18, 2, "a")]
    assert [p.prompt for p in plan(pts, 500, 2000)] == ["b", "a"]


def test_cold_overhead() -> None:
    assert cold_overhead_ms({"cold": {"latency_ms": 30.0}, "warm_latency_ms": 12.5}) == pytest.approx(17.5)
    assert cold_overhead_ms({}) is None


def test_the_floor_caps_a_fit_that_cannot_see_the_kv_cache_grow() -> None:
    from npuperf.models.floor import Bandwidth, Floor

    # 1 MB of weights and 10 kB of KV per position at 10 GB/s: 0.1 ms + 0.001 ms per position of context
    f = Floor(1e6, 1e4, Bandwidth(10.0, "given"), "w", "kv")
    pts = [point(n, 0.2 + (n - 1) * 0.1, ttft=0.2) for n in (8, 16)]  # a line: 1 + floor(499.8 / 0.1) = 4999
    p = plan_prompt(pts, 500, 2000, f)
    assert p.floor_max == f.max_tokens(500, 8)
    assert p.floor_max is not None
    assert p.floor_max < 4999
    assert (p.fits_target, p.fit_said) == (p.floor_max, 4999)
    assert p.fits_breaker == min(1 + math.floor((2000 - 0.2) / 0.1), f.max_tokens(2000, 8))
    slow = [point(n, 0.2 + (n - 1) * 1.0, ttft=0.2) for n in (8, 16)]  # 10x the floor: the fit's answer stands
    loose = plan_prompt(slow, 100, 2000, f)
    assert (loose.fits_target, loose.fit_said) == (100, None)


def test_the_context_caps_what_fits() -> None:
    # 1 + floor(499.8 / 0.1) = 4999 by the fit; a 2048-token context holds 2040 after an 8-token prompt
    pts = [point(n, 0.2 + (n - 1) * 0.1, ttft=0.2) for n in (8, 16)]
    p = plan_prompt(pts, 500, 2000, context=2048)
    assert (p.fits_target, p.fits_breaker) == (2040, 2040)
    assert (p.fit_said, p.capped_by) == (4999, "the 2048-token context")
    roomy = plan_prompt(pts, 500, 2000, context=100_000)
    assert (roomy.fits_target, roomy.fit_said, roomy.capped_by) == (4999, None, "")
