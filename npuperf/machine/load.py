"""How busy the rest of the machine was while something ran: other processes' CPU, in cores.

A nightly laptop also runs updates, indexers and virus scans. Their CPU time slows the
engine without any change to it, and a verdict cannot tell the two apart from latency
alone. So the suite measures it: the machine's busy CPU time (every process, and the
hypervisor's steal on a VM) minus this process's own (with the children it waited for),
over the wall time, is how many cores the rest of the machine kept busy meanwhile. "Own"
includes the processes this one started (the reference server the suite runs, probes).

Measured here (2-core VM): 0.003 cores with nothing else running, 1.006 with one
unrelated busy-loop process. psutil reads the counters on Linux, Windows and macOS.

The OS counts CPU time in ticks (10 ms on Linux), so over a 60 ms case one tick of any
process reads as 0.17 cores. A window shorter than MIN_WINDOW_S is therefore extended
back over the marks of the measurements before it: the figure is the machine's load during
and just before the case, over at least a second (about +-0.02 cores); the first short
measurement of a session has nothing to reach back to and says nothing (None).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
MIN_WINDOW_S = 1.0


@dataclass(frozen=True)
class Mark:
    busy_s: float
    own_s: float
    wall_s: float


class LoadMeter:
    """``mark()`` before, ``cores_since(mark)`` after; None where the counters cannot be read."""

    def __init__(self) -> None:
        try:
            import psutil
        except ImportError:  # a requirement; without it the suite still measures, it cannot judge the machine
            self._psutil: Any = None
            self._process: Any = None
        else:
            self._psutil = psutil
            self._process = psutil.Process()
        # marks of earlier measurements only: a short window never reaches back over work
        # that is not a measurement (loading, the NPU probes and the processes they start)
        self._recent: deque[Mark] = deque(maxlen=256)

    @property
    def available(self) -> bool:
        return self._psutil is not None

    def mark(self) -> Mark | None:
        if self._psutil is None:
            return None
        t = self._psutil.cpu_times()
        # guest time is already counted in user time on Linux; idle and iowait are not busy
        total = sum(t) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)
        busy = total - t.idle - getattr(t, "iowait", 0.0)
        own = self._process.cpu_times()
        mine = own.user + own.system + own.children_user + own.children_system
        return Mark(busy_s=busy, own_s=mine + self._live_children(), wall_s=time.perf_counter())

    def _live_children(self) -> float:
        """CPU seconds of this process's live descendants (the reference server, QNN probes):
        ours, not the machine's (finished, waited-for children are in children_user/system)."""
        total = 0.0
        for child in self._process.children(recursive=True):
            try:
                t = child.cpu_times()
            except (self._psutil.NoSuchProcess, self._psutil.AccessDenied):
                continue
            total += t.user + t.system
        return total

    def begin(self) -> None:
        """Let the first short measurement reach back to now (a worker process: everything it did
        before its first case, loading and warming up, was its own work)."""
        first = self.mark()
        if first is not None:
            self._recent.append(first)

    def cores_since(self, mark: Mark | None) -> float | None:
        """Cores the rest of the machine kept busy since ``mark`` (or over the last MIN_WINDOW_S
        when that is longer), never below 0; None when the counters cannot say."""
        now = self.mark()
        if mark is None or now is None:
            return None
        self._recent.append(mark)
        self._recent.append(now)
        if now.wall_s - mark.wall_s < MIN_WINDOW_S:
            earlier = [m for m in self._recent if m.wall_s <= now.wall_s - MIN_WINDOW_S]
            mark = earlier[-1] if earlier else self._recent[0]
        if now.wall_s - mark.wall_s < MIN_WINDOW_S / 2:
            return None  # too short to tell load from tick rounding (the very start of a session)
        others = (now.busy_s - mark.busy_s) - (now.own_s - mark.own_s)
        return max(0.0, others / (now.wall_s - mark.wall_s))

    def measure(self, fn: Callable[[], T]) -> tuple[T, float | None]:
        """``fn()`` and the other processes' cores while it ran."""
        mark = self.mark()
        result = fn()
        return result, self.cores_since(mark)
