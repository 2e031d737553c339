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
    opened_because: str = ""  # what the requests that opened it did, in words
    _trial_in_flight: bool = field(default=False, repr=False)
    # the current run of slow or failed requests: (latency, "") or (None, why it failed)
    _streak: list[tuple[float | None, str]] = field(default_factory=list, repr=False)

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

    def record(self, latency_ms: float | None, failed: bool = False, reason: str = "") -> None:
        """The outcome of an admitted request: its latency, or ``failed`` (with ``reason``) for an error."""
        slow = failed or latency_ms is None or latency_ms > self.threshold_ms
        if slow:
            self.consecutive_slow += 1
            self._streak = [*self._streak[-(self.trip_after - 1) :], (None if failed else latency_ms, reason)]
        else:
            self.consecutive_slow, self._streak = 0, []
        if self.state is State.HALF_OPEN:
            self._trial_in_flight = False
            if slow:
                self._open(trial=True)
            else:
                self.state = State.CLOSED
            return
        if self.state is State.CLOSED and self.consecutive_slow >= self.trip_after:
            self._open(trial=False)

    def release(self) -> None:
        """An admitted request ended without an outcome (e.g. refused by the queue)."""
        if self.state is State.HALF_OPEN:
            self._trial_in_flight = False

    def _open(self, trial: bool) -> None:
        self.state = State.OPEN
        self.opened_at = self.clock()
        self.trips += 1
        self.opened_because = self._describe(self._streak[-1:] if trial else self._streak, trial)

    def _describe(self, outcomes: list[tuple[float | None, str]], trial: bool) -> str:
        """E.g. '2 consecutive requests over 2000 ms (2412 ms, 2511 ms)' or '3 consecutive requests failed (...)'."""
        slow = [f"{ms:.0f} ms" for ms, _ in outcomes if ms is not None]
        failed = [why or "no outcome" for ms, why in outcomes if ms is None]
        who = "the half-open trial request" if trial else f"{len(outcomes)} consecutive requests"
        parts = []
        if slow:
            parts.append(f"over {self.threshold_ms:g} ms ({', '.join(slow)})")
        if failed:
            parts.append(f"failed ({'; '.join(dict.fromkeys(failed))})")
        if slow and failed:
            return f"{who}: {len(slow)} {parts[0]}, {len(failed)} {parts[1]}"
        return f"{who} {parts[0]}" if parts else who

    def snapshot(self) -> dict[str, object]:
        return {
            "state": self.state.value,
            "threshold_ms": self.threshold_ms,
            "trip_after": self.trip_after,
            "cooldown_s": self.cooldown_s,
            "consecutive_slow": self.consecutive_slow,
            "retry_after_s": round(self.retry_after_s(), 3),
            "trips": self.trips,
            "opened_because": self.opened_because,
        }
