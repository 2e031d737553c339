"""The server's JSON answers, and the one mapping from an engine-side failure to a response."""

from __future__ import annotations

import math
from typing import Any

from fastapi.responses import JSONResponse

from npuperf.engines.base import EngineError, Generation
from npuperf.server.gate import QueueFull, QueueTimeout


class BadPrompt(Exception):
    """The prompt cannot be generated from (it encodes to zero tokens, or is over the context)."""


class ContextTooLong(BadPrompt):
    """Prompt plus new tokens exceed the model's context."""


class ClientGone(Exception):
    """The client hung up; the engine stopped at its next token (or never started)."""


# What a generation on the engine thread can raise that becomes an answer, not a crash.
FAILURES = (QueueFull, QueueTimeout, BadPrompt, ClientGone, EngineError, ValueError)


def error(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    """``{"error": message, ...extra}`` with ``status``."""
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


def unavailable(message: str, retry_after_s: float) -> JSONResponse:
    """503 with Retry-After in whole seconds (at least 1)."""
    return error(503, message, headers={"Retry-After": str(max(1, math.ceil(retry_after_s)))})


def refusal(exc: Exception, context_length: int | None) -> JSONResponse:
    """The answer to one of FAILURES: 503 for a full queue or a queue timeout, 422 for a
    prompt the model cannot take (with the context limit), 499 for a client that hung up
    (nobody reads it; the log does), 500 for the engine failing."""
    if isinstance(exc, (QueueFull, QueueTimeout)):
        return unavailable(str(exc), 1)
    if isinstance(exc, BadPrompt):
        return error(422, f"prompt: {exc}", context_length=context_length)
    if isinstance(exc, ClientGone):
        return error(499, f"client closed the request: {exc}")
    return error(500, f"engine failed: {exc}")


def is_engine_failure(exc: Exception) -> bool:
    """Did the engine itself fail (as opposed to the request never reaching it, being
    refused for its input, or being abandoned by its client)? Only those count for the breaker."""
    return not isinstance(exc, (QueueFull, QueueTimeout, BadPrompt, ClientGone))


def server_clock(engine_clock: str) -> str:
    """How the server's figures were timed, in words."""
    if engine_clock == Generation.clock:  # the engine's default: stamps on the clock of this process
        return "the server's perf_counter_ns, in-process (no HTTP)"
    return f"server in-process: {engine_clock}"


def infer_body(gen: Generation, queue_ms: float, server_ms: float, temperature: float) -> dict[str, Any]:
    """The JSON answer of /api/npu/infer (and the ``done`` event of the stream)."""
    return {
        "text": gen.text,
        "prompt_tokens": gen.prompt_tokens,
        "new_tokens": gen.new_tokens,
        "requested_new_tokens": gen.requested_new_tokens,
        "stop_reason": gen.stop_reason,
        "temperature": temperature,
        "sampling": "greedy (temperature is accepted and echoed; latency runs need the same work every time)",
        "timings": {
            "latency_ms": gen.latency_ms,
            "ttft_ms": gen.ttft_ms,
            "tpot_ms": gen.tpot_ms,
            "queue_ms": queue_ms,
            "server_ms": server_ms,
            "phases_ms": dict(gen.phases),  # the engine's, in the server (docs/metrics.md)
            "clock": server_clock(gen.clock),
        },
    }
