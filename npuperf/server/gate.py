"""One engine, one worker thread, a bounded queue with a timeout (Genie is not thread-safe)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class QueueFull(Exception):
    """More requests are waiting or running than the queue holds."""


class QueueTimeout(Exception):
    """A request waited in the queue longer than the timeout."""


class EngineGate:
    """One engine, one worker thread, at most ``max_queue`` requests waiting or running."""

    def __init__(self, max_queue: int, queue_timeout_s: float) -> None:
        self.max_queue = max_queue
        self.queue_timeout_s = queue_timeout_s
        self.pending = 0
        self.served = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="npuperf-engine")

    def reserve(self) -> None:
        """Take a place in the queue now (so a stream can be refused before it starts)."""
        if self.pending >= self.max_queue:
            raise QueueFull(f"{self.pending} requests are waiting or running (queue holds {self.max_queue})")
        self.pending += 1

    async def run(self, fn: Callable[[], T]) -> tuple[T, float]:
        """Run ``fn`` on the engine thread after ``reserve()``; returns (result, ms waited in the queue).

        The queue place is held until ``fn`` has really finished: a caller that stops
        waiting (its client hung up) does not make a running engine look idle.
        """
        queued = time.perf_counter()
        started: list[float] = []

        def job() -> T:
            started.append(time.perf_counter())
            return fn()

        try:
            future = self._executor.submit(job)
        except RuntimeError:  # shut down
            self.pending -= 1
            raise
        try:
            waiting = asyncio.wrap_future(future)
            done, _ = await asyncio.wait({waiting}, timeout=self.queue_timeout_s)
            if not done and not started and future.cancel():
                raise QueueTimeout(f"waited {self.queue_timeout_s:g} s in the queue without reaching the engine")
            result = await waiting
            self.served += 1
            return result, (started[0] - queued) * 1000
        finally:
            if future.done():
                self.pending -= 1
            else:  # still running on the engine thread: free the place when it ends
                loop = asyncio.get_running_loop()

                def release(_f: object) -> None:
                    with contextlib.suppress(RuntimeError):  # the loop closed: the server has stopped
                        loop.call_soon_threadsafe(self._release)

                future.add_done_callback(release)

    def _release(self) -> None:
        self.pending -= 1

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the engine thread and wait (startup and shutdown)."""
        return self._executor.submit(fn).result()

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
