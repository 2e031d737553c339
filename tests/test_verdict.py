"""Decisions on fixed numbers: every branch and its message."""

from __future__ import annotations

import pytest

from npuperf.verdict import (
    CaseVerdict,
    Outcome,
    circuit_breaker,
    confirmed,
    evaluate_case,
    latency_budget,
    load_budget,
    regression,
)

CASE = "32 tokens / 64-token prompt"


def test_budget_at_the_limit_passes_and_over_fails_with_number_limit_case() -> None:
    assert latency_budget(CASE, 500.0, 500).outcome is Outcome.OK
    over = latency_budget(CASE, 512.34, 500)
    assert over.outcome is Outcome.FAILED
    assert over.message == "32 tokens / 64-token prompt: median latency 512.3 ms over the 500 ms budget"


def test_breaker_fails_on_the_slowest_request() -> None:
    check = circuit_breaker(CASE, 7419.0, 2000)
    assert check.failed
    assert check.message == (
        "32 tokens / 64-token prompt: slowest request 7419.0 ms would trip the 2000 ms circuit breaker"
    )


def test_load_budget() -> None:
    assert load_budget(19.9, 20).outcome is Outcome.OK
    assert load_budget(20.5, 20).message == "model load took 20.50 s, over the 20 s budget"


@pytest.mark.parametrize("fn", [latency_budget, circuit_breaker])
def test_non_positive_limits_are_rejected(fn) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="must be > 0"):
        fn(CASE, 1.0, 0)


def test_identical_samples_are_ok() -> None:
    r = regression(CASE, "latency", [10.0] * 5, [10.0] * 5, 0.10)
    assert r.outcome is Outcome.OK
    assert r.ratio == 1.0


def test_whole_distribution_shift_beyond_tolerance_regresses() -> None:
    r = regression(CASE, "latency", [12.0, 12.5, 13.0], [10.0, 10.5, 11.0], 0.10)
    assert r.outcome is Outcome.FAILED
    assert r.ratio == pytest.approx(12.5 / 10.5)
    assert "median latency 12.50 ms vs baseline 10.50 ms (+19.0%" in r.message
    assert r.message.endswith("threshold 10%: REGRESSED")


def test_median_over_but_fastest_run_within_is_inconclusive() -> None:
    # one fast run shows the code can still go at baseline speed: noise, not proven
    r = regression(CASE, "latency", [10.0, 13.0, 13.5], [10.0, 10.5, 11.0], 0.10)
    assert r.outcome is Outcome.INCONCLUSIVE


def test_just_under_tolerance_is_ok_and_faster_is_ok() -> None:
    assert regression(CASE, "latency", [10.9], [10.0], 0.10).outcome is Outcome.OK
    assert regression(CASE, "latency", [5.0], [10.0], 0.10).outcome is Outcome.OK


def test_n1_samples_compare() -> None:
    assert regression(CASE, "latency", [12.0], [10.0], 0.10).outcome is Outcome.FAILED


def test_outlier_in_current_does_not_fail_alone() -> None:
    r = regression(CASE, "latency", [10.0, 10.1, 10.2, 10.1, 90.0], [10.0, 10.1, 10.2, 10.1, 10.0], 0.10)
    assert r.outcome is Outcome.OK


def test_missing_baseline_is_its_own_outcome() -> None:
    assert regression(CASE, "latency", [1.0], None, 0.1).outcome is Outcome.NO_BASELINE
    assert regression(CASE, "latency", [1.0], [], 0.1).outcome is Outcome.NO_BASELINE


def test_zero_baseline_cannot_be_compared() -> None:
    with pytest.raises(ValueError, match="zero median or minimum"):
        regression(CASE, "latency", [1.0], [0.0, 0.0], 0.1)


def test_bad_tolerance_is_rejected() -> None:
    with pytest.raises(ValueError, match="tolerance"):
        regression(CASE, "latency", [1.0], [1.0], -0.1)


def test_evaluate_case_collects_all_failures() -> None:
    v = evaluate_case(
        CASE,
        [600.0, 2500.0, 610.0],
        budget_ms=500,
        breaker_ms=2000,
        baseline_latency_ms=[400.0, 410.0, 420.0],
        tolerance=0.1,
    )
    assert [c.name for c in v.failures] == ["latency budget", "circuit breaker", "latency vs baseline"]
    assert v.outcome is Outcome.FAILED
    assert v.regression is not None
    assert v.regression.ratio == pytest.approx(610 / 410)


def test_require_baseline_turns_missing_into_failure() -> None:
    v = evaluate_case(
        CASE, [1.0], budget_ms=500, breaker_ms=2000, baseline_latency_ms=None, tolerance=0.1, require_baseline=True
    )
    assert v.outcome is Outcome.FAILED
    assert "--require-baseline" in v.failures[0].message


def test_not_enforced_regression_is_reported_as_inconclusive() -> None:
    v = evaluate_case(
        CASE,
        [20.0],
        budget_ms=500,
        breaker_ms=2000,
        baseline_latency_ms=[10.0],
        tolerance=0.1,
        enforce_regression=False,
    )
    assert v.outcome is Outcome.INCONCLUSIVE
    assert "not enforced" in v.checks[-1].message


def test_absolute_floor_keeps_sub_floor_slowdowns_ok() -> None:
    r = regression(CASE, "latency", [2.4, 2.5], [2.0, 2.0], 0.10, min_delta_ms=1.0)
    assert r.outcome is Outcome.OK
    assert r.message.endswith("OK (+0.45 ms is within the 1 ms floor)")
    assert regression(CASE, "latency", [24.0, 25.0], [20.0, 20.0], 0.10, min_delta_ms=1.0).failed


def test_negative_floor_is_rejected() -> None:
    with pytest.raises(ValueError, match="min_delta_ms must be >= 0"):
        regression(CASE, "latency", [1.0], [1.0], 0.1, min_delta_ms=-1)


def _case(latency: list[float]) -> CaseVerdict:
    return evaluate_case(CASE, latency, budget_ms=500, breaker_ms=2000, baseline_latency_ms=[10.0, 10.0], tolerance=0.1)


def test_confirmed_regression_says_so() -> None:
    final = confirmed(_case([13.0, 13.0]), [_case([12.5, 12.5]), _case([12.4])])
    assert final.outcome is Outcome.FAILED
    assert final.failures[0].message.endswith("REGRESSED (confirmed on 2 re-runs; first run +30.0%)")
    assert final.failures[0].message.startswith("32 tokens / 64-token prompt: median latency 12.40 ms")


def test_unconfirmed_regression_passes_and_remembers_the_first_run() -> None:
    final = confirmed(_case([13.0, 13.0]), [_case([12.5]), _case([10.1, 10.2])])
    assert final.outcome is Outcome.OK
    assert final.regression is not None
    assert "first run looked regressed (+30.0%), not confirmed on re-run 2" in final.regression.message


def test_confirm_without_a_first_failure_returns_the_last_rerun() -> None:
    second = _case([10.0])
    assert confirmed(_case([10.0]), [second]) is second
    first = _case([13.0])
    assert confirmed(first, []) is first
