"""Fault injection waits for real, inside the engine's token loop."""

from __future__ import annotations

import time

import pytest

from fakes import SleepEngine
from npuperf.engines.faults import SlowedEngine, wait_ns


@pytest.mark.parametrize("duration_ns", [0, 50_000, 3_000_000])
def test_wait_never_returns_early(duration_ns: int) -> None:
    start = time.perf_counter_ns()
    wait_ns(duration_ns)
    assert time.perf_counter_ns() - start >= duration_ns


def test_every_interval_is_stretched_by_the_fraction() -> None:
    inner = SleepEngine(prefill_ms=4.0, token_ms=2.0)
    slowed = SlowedEngine(inner, 0.5)
    slowed.load()
    calls = []
    gen = slowed.generate("abcd", 5, on_token=lambda: calls.append(1))
    assert len(calls) == 5  # the caller's own callback still runs, once per token
    # sleeps never return early, so each interval is >= its sleep, and the wait adds half of it
    assert gen.ttft_ms >= (4.0 + 2.0) * 1.5
    intervals = [(b - a) / 1e6 for a, b in zip(gen.token_ns, gen.token_ns[1:], strict=False)]
    assert all(i >= 2.0 * 1.5 for i in intervals)


def test_wrapper_keeps_the_engines_identity_so_baselines_match() -> None:
    inner = SleepEngine()
    slowed = SlowedEngine(inner, 0.1)
    assert slowed.info == inner.info
    assert slowed.tokenizer is inner.tokenizer
    slowed.close()
    assert inner.closed


@pytest.mark.parametrize(
    ("fraction", "message"),
    [(0, "give a slowdown fraction or a stall"), (-0.1, r"within \[0, 10\]"), (11, r"within \[0, 10\]")],
)
def test_fraction_out_of_range_is_rejected(fraction: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SlowedEngine(SleepEngine(), fraction)
