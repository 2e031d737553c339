"""What the process used while it generated: CPU time over wall time, and resident memory.

- CPU: ``time.process_time()`` is this process's CPU time, all threads, user and system
  (CLOCK_PROCESS_CPUTIME_ID on Linux, GetProcessTimes on Windows, whose counters advance
  per scheduler quantum, ~15.6 ms: fine for an NPU generation of hundreds of ms, coarse for
  the embedded model's few ms). CPU seconds over wall seconds is "CPU cores busy": about 1
  for one busy thread, several when a runtime's thread pool runs the model on the CPU.
- Memory: psutil's resident set size, sampled every 50 ms by a thread while a case runs
  (Linux's ru_maxrss only ever grows, so it cannot give one case's peak), and at the case's
  start and end. Every 10 ms cost about 1% of a 36 ms generation here (the sampler's turns
  at the GIL); every 50 ms, see benchmarks/measure_overhead.py.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class Usage:
    """One generation: its wall and CPU time, and the same from its first token to its end (decode)."""

    wall_s: float
    cpu_s: float
    decode_wall_s: float | None = None
    decode_cpu_s: float | None = None

    @property
    def cpu_cores(self) -> float | None:
        return self.cpu_s / self.wall_s if self.wall_s > 0 else None

    @property
    def decode_cpu_cores(self) -> float | None:
        if self.decode_wall_s is None or self.decode_cpu_s is None or self.decode_wall_s <= 0:
            return None
        return self.decode_cpu_s / self.decode_wall_s


class UsageClock:
    """Stamps around one generation: ``start()``, ``first_token()`` (once), ``stop()``."""

    def __init__(self) -> None:
        self._start = self._first = (0.0, 0.0)

    @staticmethod
    def _now() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    def start(self) -> None:
        self._start, self._first = self._now(), (0.0, 0.0)

    def first_token(self) -> None:
        if self._first == (0.0, 0.0):
            self._first = self._now()

    def stop(self) -> Usage:
        wall, cpu = self._now()
        decode = self._first != (0.0, 0.0)
        return Usage(
            wall_s=wall - self._start[0],
            cpu_s=cpu - self._start[1],
            decode_wall_s=wall - self._first[0] if decode else None,
            decode_cpu_s=cpu - self._first[1] if decode else None,
        )


def rss_mb() -> float:
    """This process's resident memory now, in MB."""
    return float(psutil.Process().memory_info().rss) / 1e6


class MemorySampler:
    """The peak resident memory of this process while the block runs, sampled by a thread."""

    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._process = psutil.Process()

    def _sample(self) -> None:
        while True:
            self.peak_mb = max(self.peak_mb, float(self._process.memory_info().rss) / 1e6)
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> MemorySampler:
        self.peak_mb = rss_mb()
        self._thread = threading.Thread(target=self._sample, name="npuperf-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_mb = max(self.peak_mb, rss_mb())
