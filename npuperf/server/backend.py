"""What the endpoints do, without HTTP routing: admit, generate, health and benchmark.

One Backend per app: the engine, its gate (one thread, a bounded queue) and the circuit
breaker. The FastAPI app in ``app.py`` only routes requests to these methods.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from fastapi.responses import JSONResponse

from npuperf.engines.base import Engine, Generation
from npuperf.judge.stats import Summary
from npuperf.measure import load_and_warm
from npuperf.prompts import team_prompt
from npuperf.server.config import ServerConfig
from npuperf.server.gate import EngineGate, QueueFull
from npuperf.server.responses import (
    FAILURES,
    BadPrompt,
    ClientGone,
    ContextTooLong,
    infer_body,
    is_engine_failure,
    refusal,
    server_clock,
    unavailable,
)
from npuperf.service.breaker import CircuitBreaker

BENCHMARK_METRICS = ("latency_ms", "ttft_ms", "tpot_ms")


class InferBody(Protocol):
    """The validated body of /api/npu/infer (see requests.infer_request_model)."""

    prompt: str
    max_new_tokens: int
    temperature: float


class Backend:
    """The engine behind the API, one generation at a time, guarded by the breaker."""

    def __init__(self, engine: Engine, config: ServerConfig) -> None:
        self.engine = engine
        self.config = config
        self.gate = EngineGate(config.max_queue, config.queue_timeout_s)
        self.breaker = CircuitBreaker(
            threshold_ms=config.breaker_ms, trip_after=config.breaker_trip_after, cooldown_s=config.breaker_cooldown_s
        )
        self.load_s: float | None = None
        self.cold_ms: float | None = None

    # ----- lifetime (on the engine thread) -------------------------------------------------
    def start(self) -> None:
        """Load and warm the engine; its load time and cold call are reported by /api/health."""

        def warm() -> None:
            done = load_and_warm(
                self.engine,
                lambda e: [team_prompt(e.tokenizer, "greeting-zh")],
                new_tokens=8,
                warmup=self.config.warmup,
            )
            self.load_s, self.cold_ms = done.load_s, done.cold.latency_ms

        self.gate.call(warm)

    @property
    def started(self) -> bool:
        return self.load_s is not None

    def stop(self) -> None:
        self.gate.call(self.engine.close)
        self.gate.shutdown()

    # ----- requests ---------------------------------------------------------------------
    def check_prompt(self, prompt: str, new_tokens: int) -> int:
        """The prompt's token count; BadPrompt for zero tokens, ContextTooLong when prompt +
        budget exceed the context. Both are the client's input: 422, never a breaker failure."""
        tokens = len(self.engine.tokenizer.encode(prompt))
        if tokens == 0:
            raise BadPrompt("encodes to zero tokens with this model's tokenizer; send text the model can read")
        limit = self.engine.info.context_length
        if limit is not None and tokens + new_tokens > limit:
            raise ContextTooLong(
                f"prompt is {tokens} tokens; with max_new_tokens {new_tokens} that is {tokens + new_tokens}, "
                f"over the model's context of {limit} tokens"
            )
        return tokens

    def admit(self) -> JSONResponse | None:
        """None when the request may go ahead (a queue place is reserved), else the 503 answer."""
        wait = self.breaker.admit()
        if wait is not None:
            if self.breaker.state.value == "half-open":
                why = "circuit breaker half-open: its one trial request is still running"
            else:
                why = f"circuit breaker open: {self.breaker.opened_because}"
            return unavailable(f"{why}; retry in {math.ceil(wait)} s", wait)
        try:
            self.gate.reserve()
        except QueueFull as exc:
            self.breaker.release()
            return refusal(exc, self.engine.info.context_length)
        return None

    async def generate(
        self, body: InferBody, on_token: Callable[[], None] | None, stop: threading.Event | None = None
    ) -> dict[str, Any] | JSONResponse:
        """Queue, generate, record with the breaker: the shared path of infer and its stream.

        ``stop`` set (the client hung up) stops the engine at its next token, or before it
        starts; the request then has no outcome for the breaker, and its queue place is
        held until the engine really stops.
        """
        start = time.perf_counter()
        stop = stop or threading.Event()

        def tick() -> None:  # engine thread, before each token's timestamp
            if stop.is_set():
                raise ClientGone("the engine stopped at its next token")
            if on_token is not None:
                on_token()

        def job() -> Generation:
            if stop.is_set():
                raise ClientGone("it left before its turn in the queue")
            self.check_prompt(body.prompt, body.max_new_tokens)
            return self.engine.generate(body.prompt, body.max_new_tokens, on_token=tick)

        try:
            gen, queue_ms = await self.gate.run(job)
        except asyncio.CancelledError:
            stop.set()
            self.breaker.release()
            raise
        except FAILURES as exc:
            self._settle(exc)
            return refusal(exc, self.engine.info.context_length)
        server_ms = (time.perf_counter() - start) * 1000
        self.breaker.record(server_ms)
        return infer_body(gen, queue_ms, server_ms, body.temperature)

    def _settle(self, exc: Exception) -> None:
        """A request that ended in one of FAILURES: a failure for the breaker only if the engine failed."""
        if is_engine_failure(exc):
            self.breaker.record(None, failed=True, reason=f"engine failed: {exc}")
        else:
            self.breaker.release()

    def health(self) -> dict[str, Any]:
        info = self.engine.info
        return {
            "status": "degraded" if self.breaker.state.value != "closed" else "ok",
            "engine": info.engine,
            "provider": info.provider,
            "model": info.model_id,
            "model_sha256": info.model_sha256,
            "context_length": info.context_length,
            "versions": dict(info.versions),
            "load_s": self.load_s,
            "cold_call_ms": self.cold_ms,
            "breaker": self.breaker.snapshot(),
            "queue": {"pending": self.gate.pending, "max": self.config.max_queue, "served": self.gate.served},
            "limits": {"max_new_tokens": self.config.max_new_tokens, "max_body_bytes": self.config.max_body_bytes},
        }

    async def benchmark(self, prompt: str, max_new_tokens: int, runs: int) -> dict[str, Any] | JSONResponse:
        """``runs`` generations in one queue slot, summarised on the server's own clock.

        Behind the breaker like any request: refused while it is open, and its slowest run
        is its outcome (a benchmark of slow generations is as slow as they are)."""
        refused = self.admit()
        if refused is not None:
            return refused

        def job() -> list[Generation]:
            self.check_prompt(prompt, max_new_tokens)
            return [self.engine.generate(prompt, max_new_tokens) for _ in range(runs)]

        try:
            gens, queue_ms = await self.gate.run(job)
        except asyncio.CancelledError:
            self.breaker.release()
            raise
        except FAILURES as exc:
            self._settle(exc)
            return refusal(exc, self.engine.info.context_length)
        self.breaker.record(max(g.latency_ms for g in gens))
        samples = {m: [v for g in gens if (v := getattr(g, m)) is not None] for m in BENCHMARK_METRICS}
        return {
            "engine": self.engine.info.engine,
            "model": self.engine.info.model_id,
            "prompt_tokens": gens[0].prompt_tokens,
            "max_new_tokens": max_new_tokens,
            "new_tokens": [g.new_tokens for g in gens],
            "runs": runs,
            "queue_ms": queue_ms,
            "clock": server_clock(gens[0].clock),
            **{m: Summary.of(values).brief() if values else None for m, values in samples.items()},
            "samples": samples,
        }
