"""Decisions on fixed numbers: every branch and its message."""

from __future__ import annotations

import pytest

from npuperf.judge.stats import OnlineHolm
from npuperf.judge.verdict import (
    CaseVerdict,
    Outcome,
    Policy,
    circuit_breaker,
    compare,
    confirmed,
    decide,
    evaluate_case,
    grid_regression,
    latency_budget,
    load_budget,
    materiality,
)

CASE = "32 tokens / 64-token prompt"
BASE = [10.0, 10.2, 9.9, 10.1, 10.0, 10.3, 9.8, 10.1, 10.0, 10.2]


def scaled(factor: float, values: list[float] = BASE) -> list[float]:
    return [v * factor for v in values]


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


def test_materiality_is_the_larger_of_tolerance_and_k_noise() -> None:
    assert materiality(0.10, None, 2) == 0.10
    assert materiality(0.10, 0.02, 2) == 0.10
    assert materiality(0.10, 0.08, 2) == pytest.approx(0.16)


def test_identical_samples_are_ok() -> None:
    r = compare(CASE, "latency_ms", [BASE], [BASE], tolerance=0.10)
    assert r.outcome is Outcome.OK
    assert r.ratio == 1.0
    assert not r.candidate


def test_zero_spread_samples_compare_without_dividing_by_zero() -> None:
    r = compare(CASE, "latency_ms", [[12.0] * 5], [[10.0] * 5], tolerance=0.10)
    assert r.candidate
    assert r.ci_low == r.ci_high == pytest.approx(1.2)
    assert r.p_value == pytest.approx(1 / 2001)


def test_clear_slowdown_is_a_significant_candidate_with_the_issue_message_shape() -> None:
    r = decide(compare(CASE, "latency_ms", [scaled(1.2)], [BASE], tolerance=0.10), significant=True)
    assert r.outcome is Outcome.FAILED
    assert r.message.startswith(
        "32 tokens / 64-token prompt: median latency 12.06 ms vs baseline 10.05 ms (+20.0%, 95% CI +"
    )
    assert r.message.endswith("above the 10% threshold: REGRESSED")
    assert 1.10 < r.ci_low <= r.ratio <= r.ci_high


def test_candidate_that_is_not_significant_is_inconclusive() -> None:
    r = decide(compare(CASE, "latency_ms", [scaled(1.12)], [BASE], tolerance=0.10), significant=False)
    assert r.outcome is Outcome.INCONCLUSIVE
    assert "not significant (p = " in r.message
    assert r.message.endswith("Holm-corrected over the grid): INCONCLUSIVE")


def test_noise_floor_raises_the_threshold_and_says_so() -> None:
    r = compare(CASE, "latency_ms", [scaled(1.12)], [BASE], tolerance=0.10, noise_floor=0.08, noise_k=2)
    assert r.outcome is Outcome.OK
    assert r.threshold == pytest.approx(0.16)
    assert "within the 16% threshold (2 x noise floor 8%): OK" in r.message


def test_n1_cannot_be_significant() -> None:
    r = compare(CASE, "latency_ms", [[20.0]], [[10.0]], tolerance=0.10)
    assert r.outcome is Outcome.INCONCLUSIVE
    assert not r.candidate
    assert "1 sample(s) cannot show it (need 3): INCONCLUSIVE" in r.message


def test_one_outlier_does_not_move_the_median() -> None:
    r = compare(CASE, "latency_ms", [[*BASE[:-1], 90.0]], [BASE], tolerance=0.10)
    assert r.outcome is Outcome.OK


def test_absolute_floor_counts_what_a_slowdown_adds_to_a_request() -> None:
    small = [2.0, 2.05, 1.95, 2.0, 2.02]
    slow = [v * 1.3 for v in small]
    latency = compare(CASE, "latency_ms", [slow], [small], tolerance=0.1, min_delta_ms=1)
    assert latency.outcome is Outcome.OK
    assert "+0.60 ms per request is within the 1 ms floor: OK" in latency.message
    # as TPOT over 31 tokens after the first, the same +0.6 ms per token adds 18.6 ms
    tpot = compare(CASE, "tpot_ms", [slow], [small], tolerance=0.1, min_delta_ms=1, contribution=31)
    assert tpot.candidate


def test_ttft_and_tpot_must_be_material_to_the_request() -> None:
    base = {"latency_ms": [[100.0] * 5], "ttft_ms": [[20.0] * 5], "tpot_ms": [[1.0] * 5]}
    # TPOT +20% over 31 tokens adds 6.2 ms: under 10% of the 100 ms request, so not material
    small = evaluate_case(
        CASE,
        {**base, "tpot_ms": [[1.2] * 5]},
        budget_ms=500,
        breaker_ms=2000,
        baseline=base,
        tolerance=0.1,
        new_tokens=32,
    )
    tpot = next(r for r in small.regressions if r.metric == "tpot_ms")
    assert tpot.outcome is Outcome.OK
    assert "+6.20 ms (31 tokens) per request is within the 10 ms floor: OK" in tpot.message
    # +50% adds 15.5 ms: material
    large = evaluate_case(
        CASE,
        {**base, "tpot_ms": [[1.5] * 5]},
        budget_ms=500,
        breaker_ms=2000,
        baseline=base,
        tolerance=0.1,
        new_tokens=32,
    )
    assert [r.metric for r in large.regressions if r.failed] == ["tpot_ms"]


def test_missing_baseline_is_its_own_outcome() -> None:
    assert compare(CASE, "latency_ms", [[1.0]], None, tolerance=0.1).outcome is Outcome.NO_BASELINE
    assert compare(CASE, "latency_ms", [[1.0]], [], tolerance=0.1).outcome is Outcome.NO_BASELINE


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"tolerance": -0.1}, "tolerance"), ({"tolerance": 0.1, "min_delta_ms": -1}, "min_delta_ms must be >= 0")],
)
def test_bad_parameters_are_rejected(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compare(CASE, "latency_ms", [[1.0]], [[1.0]], **kwargs)


def test_zero_baseline_cannot_be_compared() -> None:
    with pytest.raises(ValueError, match="zero median"):
        compare(CASE, "latency_ms", [[1.0]], [[0.0, 0.0]], tolerance=0.1)


def current(factor: float) -> dict[str, list[list[float]]]:
    """One process's samples of a case, ``factor`` times the baseline's."""
    return {
        "latency_ms": [scaled(factor)],
        "ttft_ms": [scaled(factor, [v / 4 for v in BASE])],
        "tpot_ms": [scaled(factor, [v / 40 for v in BASE])],
    }


BASELINE = current(1.0)


def test_evaluate_case_checks_every_metric_and_collects_failures() -> None:
    v = evaluate_case(CASE, current(250.0), budget_ms=500, breaker_ms=2000, baseline=BASELINE, tolerance=0.1)
    assert [c.name for c in v.failures] == [
        "latency budget",
        "circuit breaker",
        "latency vs baseline",
        "TTFT vs baseline",
        "TPOT vs baseline",
    ]
    assert v.outcome is Outcome.FAILED
    assert v.regression is not None
    assert v.regression.metric == "latency_ms"


def test_holm_family_makes_a_marginal_case_inconclusive() -> None:
    # alone at alpha a 12% slowdown of 10 tight samples is significant; in a family of 600 it is not
    alone = evaluate_case(CASE, current(1.12), budget_ms=500, breaker_ms=2000, baseline=BASELINE, tolerance=0.1)
    family = OnlineHolm(600, 0.05)
    grid = evaluate_case(
        CASE, current(1.12), budget_ms=500, breaker_ms=2000, baseline=BASELINE, tolerance=0.1, family=family
    )
    assert alone.outcome is Outcome.FAILED
    assert grid.outcome is Outcome.INCONCLUSIVE
    assert len(family.seen) == 3


def test_require_baseline_turns_missing_into_failure() -> None:
    v = evaluate_case(
        CASE, current(1.0), budget_ms=500, breaker_ms=2000, baseline=None, tolerance=0.1, policy=Policy(True)
    )
    assert v.outcome is Outcome.FAILED
    assert "--require-baseline" in v.failures[0].message


def test_not_enforced_regression_is_reported_as_inconclusive() -> None:
    v = evaluate_case(
        CASE,
        current(2.0),
        budget_ms=500,
        breaker_ms=2000,
        baseline=BASELINE,
        tolerance=0.1,
        new_tokens=32,
        policy=Policy(enforce_regression=False),
    )
    assert v.outcome is Outcome.INCONCLUSIVE
    assert all("not enforced" in r.message for r in v.regressions)


def _case(factor: float) -> CaseVerdict:
    return evaluate_case(CASE, current(factor), budget_ms=500, breaker_ms=2000, baseline=BASELINE, tolerance=0.1)


def test_confirmed_regression_says_so() -> None:
    final = confirmed(_case(1.3), [_case(1.25), _case(1.24)])
    assert final.outcome is Outcome.FAILED
    assert final.failures[0].message.endswith("REGRESSED (confirmed on 2 re-runs; first run +30.0%)")
    assert "median latency 12.46 ms" in final.failures[0].message


def test_unconfirmed_regression_passes_and_remembers_the_first_run() -> None:
    final = confirmed(_case(1.3), [_case(1.0)])
    assert final.outcome is Outcome.OK
    assert final.regression is not None
    assert "first run looked regressed (+30.0%), not confirmed on re-run 1" in final.regression.message


def test_confirm_without_reruns_returns_the_first() -> None:
    first = _case(1.0)
    assert confirmed(first, []) is first


def one(values: list[float]) -> dict[int, list[float]]:
    """One process's samples, keyed by its index (the grid's unit)."""
    return {0: values}


def test_grid_detects_a_small_slowdown_of_every_case_and_ignores_one_shifted_case() -> None:
    cases = [scaled(1 + i / 100) for i in range(20)]
    slowed = grid_regression([(one(scaled(1.05, c)), one(c)) for c in cases], tolerance=0.03, noise_floor=0.005)
    assert slowed.outcome is Outcome.FAILED
    assert slowed.message.startswith("whole grid (20 cases): median latency ratio +5.0% (95% CI +")
    one_shifted = [(one(scaled(1.4, c) if i == 0 else c), one(c)) for i, c in enumerate(cases)]
    assert grid_regression(one_shifted, tolerance=0.03, noise_floor=0.005).outcome is Outcome.OK


def test_grid_threshold_follows_its_noise_floor() -> None:
    cases = [scaled(1 + i / 100) for i in range(5)]
    g = grid_regression([(one(scaled(1.05, c)), one(c)) for c in cases], tolerance=0.03, noise_floor=0.04, noise_k=2)
    assert g.outcome is Outcome.OK
    assert "within the 8% grid threshold (2 x grid noise floor 4%)" in g.message


def test_cpu_during_decode_fails_an_npu_case_that_keeps_cores_busy_and_labels_the_simulator() -> None:
    from npuperf.judge.verdict import cpu_offload

    ok = cpu_offload("t32-p64", 0.4, 2.0, simulated=False)
    assert (ok.outcome, ok.value) == (Outcome.OK, 0.4)
    bad = cpu_offload("t32-p64", 5.83, 2.0, simulated=False)
    assert bad.outcome is Outcome.FAILED
    assert bad.message.startswith("t32-p64: decode kept 5.83 CPU cores busy (over --max-cpu-cores 2:")
    assert "CPU fallback" in bad.message
    sim = cpu_offload("t32-p64", 5.83, 2.0, simulated=True)
    assert sim.outcome is Outcome.OK
    assert "HTP simulator: it runs on the CPU, so this is not judged" in sim.message


def test_memory_budget_names_the_peak_and_the_budget() -> None:
    from npuperf.judge.verdict import memory_budget

    assert memory_budget("t8-p8", 900.4, 1024).outcome is Outcome.OK
    over = memory_budget("t8-p8", 1500.0, 1024)
    assert (over.outcome, over.message) == (
        Outcome.FAILED,
        "t8-p8: peak resident memory 1500 MB over the 1024 MB budget",
    )


# ----- samples from several processes ----------------------------------------------------------


def processes(factor: float, biases: list[float]) -> list[list[float]]:
    """One group per process, each process ``bias`` times slower as a whole (docs/noise.md)."""
    return [scaled(factor * bias) for bias in biases]


def test_one_slow_process_can_neither_fail_nor_pass_a_case() -> None:
    """The unit is a process's median: one process 30% slow out of five moves nothing."""
    quiet = [1.0, 1.01, 0.99, 1.0, 1.02]
    one_slow = compare(
        CASE, "latency_ms", processes(1.0, [1.0, 1.01, 1.3, 1.0, 1.02]), processes(1.0, quiet), tolerance=0.1
    )
    assert one_slow.outcome is Outcome.OK
    assert one_slow.ratio == pytest.approx(1.0, abs=0.02)
    # and one fast process among five slowed ones does not hide a 25% slowdown
    hidden = compare(
        CASE, "latency_ms", processes(1.25, [1.0, 1.01, 0.75, 1.0, 1.02]), processes(1.0, quiet), tolerance=0.1
    )
    assert hidden.candidate
    assert hidden.ratio == pytest.approx(1.25, abs=0.02)
    assert "; medians of 5 vs 5 processes)" in hidden.message


def test_processes_that_disagree_widen_the_interval() -> None:
    """Pooling samples would hide how far processes differ; the hierarchical bootstrap keeps it."""
    tight = compare(CASE, "latency_ms", processes(1.12, [1.0] * 5), processes(1.0, [1.0] * 5), tolerance=0.1)
    spread = [0.85, 0.95, 1.0, 1.05, 1.15]
    loose = compare(CASE, "latency_ms", processes(1.12, spread), processes(1.0, spread), tolerance=0.1)
    assert (loose.ci_high - loose.ci_low) > 3 * (tight.ci_high - tight.ci_low)
    assert loose.p_value > tight.p_value


# ----- a busy machine: never OK when it could not judge -----------------------------------------


def test_a_busy_case_within_its_threshold_is_still_ok() -> None:
    r = compare(CASE, "latency_ms", [scaled(1.05)], [BASE], tolerance=0.1, busy_tolerance=0.25)
    assert r.outcome is Outcome.OK


def test_a_busy_slowdown_the_load_could_explain_is_not_judged() -> None:
    r = decide(compare(CASE, "latency_ms", [scaled(1.2)], [BASE], tolerance=0.1, busy_tolerance=0.25), True)
    assert r.outcome is Outcome.NOT_JUDGED
    assert r.busy_line == pytest.approx(1.25)
    assert "within the 25% a busy machine can add by itself: NOT JUDGED" in r.message


def test_a_busy_slowdown_larger_than_the_load_can_add_is_regressed() -> None:
    r = decide(compare(CASE, "latency_ms", [scaled(1.6)], [BASE], tolerance=0.1, busy_tolerance=0.25), True)
    assert r.outcome is Outcome.FAILED
    assert "above the 25% a busy machine can add by itself (the 10% threshold when quiet): REGRESSED" in r.message


def test_a_busy_slowdown_above_the_line_but_not_significant_is_not_judged() -> None:
    r = decide(compare(CASE, "latency_ms", [scaled(1.6)], [BASE], tolerance=0.1, busy_tolerance=0.25), False)
    assert r.outcome is Outcome.NOT_JUDGED


def test_a_busy_case_over_its_budget_by_less_than_the_load_adds_is_not_judged() -> None:
    latency = {"latency_ms": [[520.0, 530.0, 525.0]]}
    busy = evaluate_case(
        CASE, latency, budget_ms=500, breaker_ms=2000, baseline=None, tolerance=0.1, busy_tolerance=0.25
    )
    assert busy.outcome is Outcome.NOT_JUDGED
    far = evaluate_case(
        CASE,
        {"latency_ms": [[900.0] * 3]},
        budget_ms=500,
        breaker_ms=2000,
        baseline=None,
        tolerance=0.1,
        busy_tolerance=0.25,
    )
    assert far.outcome is Outcome.FAILED


def test_not_judged_outranks_inconclusive_and_ok_but_not_failed() -> None:
    from npuperf.judge.verdict import PRECEDENCE

    assert PRECEDENCE[:3] == (Outcome.FAILED, Outcome.NOT_JUDGED, Outcome.INCONCLUSIVE)


def test_the_grid_on_a_busy_machine_is_not_judged_between_its_threshold_and_the_load() -> None:
    cases = [scaled(1 + i / 100) for i in range(20)]
    grid = grid_regression(
        [(one(scaled(1.15, c)), one(c)) for c in cases], tolerance=0.03, noise_floor=None, busy_tolerance=0.25
    )
    assert grid.outcome is Outcome.NOT_JUDGED
    assert "NOT JUDGED" in grid.message
    big = grid_regression(
        [(one(scaled(1.5, c)), one(c)) for c in cases], tolerance=0.03, noise_floor=None, busy_tolerance=0.25
    )
    assert big.outcome is Outcome.FAILED


# ----- another host's baseline: advisory --------------------------------------------------------


def test_a_regression_against_another_hosts_baseline_is_advisory() -> None:
    v = evaluate_case(
        CASE,
        current(1.8),
        budget_ms=500,
        breaker_ms=2000,
        baseline=BASELINE,
        tolerance=0.1,
        new_tokens=32,
        policy=Policy(advisory="the baseline was recorded on another host"),
    )
    assert v.outcome is Outcome.ADVISORY
    assert not v.failures
    assert v.regression is not None
    assert v.regression.message.endswith("REGRESSED, ADVISORY: the baseline was recorded on another host")


# ----- an A/B run: paired processes --------------------------------------------------------------


def test_a_paired_comparison_cancels_a_drift_both_sides_share() -> None:
    """Each pair was measured side by side: a machine slowing down over the run hits both alike."""
    drift = [1.0, 1.1, 1.2, 1.3, 1.4]
    a = processes(1.0, drift)
    b = processes(1.1, drift)
    paired = compare(CASE, "latency_ms", b, a, tolerance=0.05, paired=True)
    unpaired = compare(CASE, "latency_ms", b, a, tolerance=0.05)
    assert paired.ratio == pytest.approx(1.1)
    assert paired.p_value < unpaired.p_value
    assert "the median of 5 interleaved pairs' ratios" in paired.message
    with pytest.raises(ValueError, match="cannot be paired"):
        compare(CASE, "latency_ms", b[:4], a, tolerance=0.05, paired=True)
