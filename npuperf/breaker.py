"""A circuit breaker with the team's semantics: slow requests open it, a cool-down half-opens it.

Pure state over an injected clock, so every transition is testable without sleeping.

- CLOSED: requests pass. ``trip_after`` consecutive slow requests (latency over
  ``threshold_ms``, or a failure) open it; a fast one resets the count.
- OPEN: requests are refused for ``cooldown_s``; ``admit`` says how long to wait
  (the service sends it as Retry-After).
- HALF_OPEN: after the cool-down one trial request passes (others are refused until it
  ends); fast closes the breaker, slow opens it again for another cool-down.

>>> t = [0.0]
>>> b = CircuitBreaker(threshold_ms=2000, trip_after=2, cooldown_s=30, clock=lambda: t[0])
>>> b.record(2500); b.record(2600); b.state
<State.OPEN: 'open'>
>>> b.admit()
30.0
>>> t[0] = 31; b.admit(), b.state
(None, <State.HALF_OPEN: 'half-open'>)
>>> b.record(120); b.state
<State.CLOSED: 'closed'>
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field


class State(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass
class CircuitBreaker:
    threshold_ms: float = 2000.0
    trip_after: int = 3
    cooldown_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    state: State = State.CLOSED
    consecutive_slow: int = 0
    opened_at: float | None = None
    trips: int = 0
    _trial_in_flight: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        if self.threshold_ms <= 0:
            raise ValueError(f"breaker threshold must be > 0 ms, got {self.threshold_ms}")
        if self.trip_after < 1:
            raise ValueError(f"breaker trip_after must be >= 1, got {self.trip_after}")
        if self.cooldown_s < 0:
            raise ValueError(f"breaker cool-down must be >= 0 s, got {self.cooldown_s}")

    def retry_after_s(self) -> float:
        """Seconds until the breaker half-opens (0 when it is not open)."""
        if self.state is not State.OPEN or self.opened_at is None:
            return 0.0
        return max(0.0, self.opened_at + self.cooldown_s - self.clock())

    def admit(self) -> float | None:
        """None when a request may run; else the seconds to wait before retrying."""
        if self.state is State.OPEN:
            wait = self.retry_after_s()
            if wait > 0:
                return wait
            self.state = State.HALF_OPEN
            self._trial_in_flight = False
        if self.state is State.HALF_OPEN:
            if self._trial_in_flight:
                return 1.0  # one trial at a time; it ends within a request's time
            self._trial_in_flight = True
        return None

    def record(self, latency_ms: float | None, failed: bool = False) -> None:
        """The outcome of an admitted request: its latency, or ``failed`` for an error."""
        slow = failed or latency_ms is None or latency_ms > self.threshold_ms
        if self.state is State.HALF_OPEN:
            self._trial_in_flight = False
            if slow:
                self._open()
            else:
                self.state, self.consecutive_slow = State.CLOSED, 0
            return
        if not slow:
            self.consecutive_slow = 0
            return
        self.consecutive_slow += 1
        if self.state is State.CLOSED and self.consecutive_slow >= self.trip_after:
            self._open()

    def release(self) -> None:
        """An admitted request ended without an outcome (e.g. refused by the queue)."""
        if self.state is State.HALF_OPEN:
            self._trial_in_flight = False

    def _open(self) -> None:
        self.state = State.OPEN
        self.opened_at = self.clock()
        self.trips += 1

    def snapshot(self) -> dict[str, object]:
        return {
            "state": self.state.value,
            "threshold_ms": self.threshold_ms,
            "trip_after": self.trip_after,
            "cooldown_s": self.cooldown_s,
            "consecutive_slow": self.consecutive_slow,
            "retry_after_s": round(self.retry_after_s(), 3),
            "trips": self.trips,
        }
