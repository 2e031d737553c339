"""The service's circuit breaker: every transition, on a fake clock."""

from __future__ import annotations

import pytest

from npuperf.service.breaker import CircuitBreaker, State


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def breaker(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker(threshold_ms=2000, trip_after=3, cooldown_s=30, clock=clock)


def test_opens_after_n_consecutive_slow_requests_only(breaker: CircuitBreaker) -> None:
    breaker.record(2500)
    breaker.record(2500)
    breaker.record(100)  # a fast one resets the count
    breaker.record(2500)
    breaker.record(2001)
    assert breaker.state is State.CLOSED
    breaker.record(2100)
    assert breaker.state is State.OPEN
    assert breaker.trips == 1


def test_exactly_the_threshold_is_not_slow(breaker: CircuitBreaker) -> None:
    for _ in range(5):
        breaker.record(2000.0)
    assert breaker.state is State.CLOSED


def test_failures_count_as_slow(breaker: CircuitBreaker) -> None:
    for _ in range(3):
        breaker.record(None, failed=True)
    assert breaker.state is State.OPEN


def test_open_refuses_with_the_remaining_cooldown(breaker: CircuitBreaker, clock: Clock) -> None:
    for _ in range(3):
        breaker.record(3000)
    assert breaker.admit() == pytest.approx(30)
    clock.now += 12
    assert breaker.admit() == pytest.approx(18)
    assert breaker.snapshot()["state"] == "open"


def test_half_open_lets_one_trial_through_then_closes_on_a_fast_one(breaker: CircuitBreaker, clock: Clock) -> None:
    for _ in range(3):
        breaker.record(3000)
    clock.now += 30
    assert breaker.admit() is None
    assert breaker.state is State.HALF_OPEN
    assert breaker.admit() == 1.0  # a second request waits for the trial
    breaker.record(150)
    assert breaker.state is State.CLOSED
    assert breaker.admit() is None


def test_half_open_trial_that_is_slow_reopens_for_a_full_cooldown(breaker: CircuitBreaker, clock: Clock) -> None:
    for _ in range(3):
        breaker.record(3000)
    clock.now += 31
    assert breaker.admit() is None
    breaker.record(2500)
    assert breaker.state is State.OPEN
    assert breaker.trips == 2
    assert breaker.admit() == pytest.approx(30)


def test_a_released_trial_frees_the_half_open_slot(breaker: CircuitBreaker, clock: Clock) -> None:
    for _ in range(3):
        breaker.record(3000)
    clock.now += 30
    assert breaker.admit() is None
    breaker.release()
    assert breaker.admit() is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold_ms": 0}, "threshold must be > 0 ms"),
        ({"trip_after": 0}, "trip_after must be >= 1"),
        ({"cooldown_s": -1}, "cool-down must be >= 0 s"),
    ],
)
def test_bad_settings_are_named(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CircuitBreaker(**kwargs)  # type: ignore[arg-type]


def test_it_says_what_opened_it_slow_failed_or_both(clock: Clock) -> None:
    slow = CircuitBreaker(threshold_ms=2000, trip_after=2, clock=clock)
    slow.record(2412.4)
    slow.record(2511)
    assert slow.opened_because == "2 consecutive requests over 2000 ms (2412 ms, 2511 ms)"
    failed = CircuitBreaker(threshold_ms=2000, trip_after=3, clock=clock)
    for _ in range(3):
        failed.record(None, failed=True, reason="engine failed: device lost")
    assert failed.opened_because == "3 consecutive requests failed (engine failed: device lost)"
    mixed = CircuitBreaker(threshold_ms=2000, trip_after=3, clock=clock)
    mixed.record(2500)
    mixed.record(None, failed=True, reason="engine failed: x")
    mixed.record(3000)
    assert (
        mixed.opened_because == "3 consecutive requests: 2 over 2000 ms (2500 ms, 3000 ms), 1 failed (engine failed: x)"
    )
    assert mixed.snapshot()["opened_because"] == mixed.opened_because


def test_a_reopening_trial_names_only_itself(breaker: CircuitBreaker, clock: Clock) -> None:
    for _ in range(3):
        breaker.record(3000)
    clock.now += 30
    assert breaker.admit() is None
    breaker.record(None, failed=True, reason="engine failed: boom")
    assert breaker.opened_because == "the half-open trial request failed (engine failed: boom)"


def test_a_fast_request_forgets_the_streak(breaker: CircuitBreaker) -> None:
    breaker.record(2500)
    breaker.record(2600)
    breaker.record(10)
    for latency in (2700, 2800, 2900):
        breaker.record(latency)
    assert breaker.opened_because == "3 consecutive requests over 2000 ms (2700 ms, 2800 ms, 2900 ms)"
