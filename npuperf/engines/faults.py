"""Fault injection: make any engine slower by a known fraction, for canary runs.

``SlowedEngine(engine, 0.10)`` stretches every interval of a generation by 10%: the
time to the first token (so every call) and the time between tokens (so every token).
It does so by waiting, for real, in the engine's per-token callback, so the timestamps
the engine takes include the wait: nothing is computed or rewritten after the fact.
A team runs the suite once with ``--inject-slowdown 0.10`` against its accepted
baselines to check that the suite catches a 10% regression on its own device.

``stall_ms`` (``--inject-stall``) delays one token, the middle one of every generation, by a
known amount: the stall a page fault, a DVFS dip or a preemption causes. It must show as the
case's worst inter-token gap (and in its p99) while the median barely moves.
"""

from __future__ import annotations

import time

from npuperf.engines.base import Engine, EngineInfo, Generation, OnToken, Tokenizer

# Below this, time.sleep overshoots by tens of microseconds on Linux; spin instead.
_SPIN_BELOW_NS = 2_000_000


def wait_ns(duration_ns: int) -> None:
    """Wait ``duration_ns``: sleep for the bulk, spin on the clock for the last 2 ms."""
    end = time.perf_counter_ns() + duration_ns
    if duration_ns > _SPIN_BELOW_NS:
        time.sleep((duration_ns - _SPIN_BELOW_NS) / 1e9)
    while time.perf_counter_ns() < end:
        pass


class SlowedEngine:
    """Wraps an engine; each interval of a generation takes (1 + fraction) times as long."""

    def __init__(self, inner: Engine, fraction: float = 0.0, stall_ms: float = 0.0) -> None:
        if not 0 <= fraction <= 10:
            raise ValueError(f"slowdown fraction must be within [0, 10], got {fraction}")
        if stall_ms < 0 or (fraction == 0 and stall_ms == 0):
            raise ValueError(f"give a slowdown fraction or a stall (ms >= 0), got {fraction} and {stall_ms}")
        self.stall_ns = int(stall_ms * 1e6)
        self.inner = inner
        self.fraction = fraction

    @property
    def info(self) -> EngineInfo:
        return self.inner.info

    @property
    def tokenizer(self) -> Tokenizer:
        return self.inner.tokenizer

    def load(self) -> None:
        self.inner.load()

    def generate(self, prompt: str, max_new_tokens: int, on_token: OnToken | None = None) -> Generation:
        last = time.perf_counter_ns()
        count = 0

        def slowed() -> None:
            nonlocal last, count
            now = time.perf_counter_ns()
            wait_ns(int((now - last) * self.fraction) + (self.stall_ns if count == max_new_tokens // 2 else 0))
            count += 1
            if on_token is not None:
                on_token()
            last = time.perf_counter_ns()

        gen = self.inner.generate(prompt, max_new_tokens, on_token=slowed)
        return gen

    def close(self) -> None:
        self.inner.close()
