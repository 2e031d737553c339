"""A running backend service, measured from the client side over HTTP (httpx).

``--engine http --backend-url http://127.0.0.1:8000`` runs the latency grid against a
service that speaks the API of docs/api.md (the team's FastAPI backend, or
``python -m npuperf.server``); the service section of test_backend.py uses the same client.

What is measured, and from which clock:

- latency: the client's wall time from sending the request to the last token (streamed)
  or to the complete answer;
- TTFT and TPOT: with ``--http-stream`` (default), the arrival of each server-sent
  ``token`` event on the client's clock, so HTTP and queueing are included, as the app
  sees them; without streaming, from the timings the server reports (labelled so), or
  not at all when it reports none;
- the server's own figures (its in-process latency, queue wait) are kept per request as
  ``server_*``, and ``http_overhead_ms`` = client latency - server latency.

A service that is down, slow, or answers with an error or with something other than
JSON is an EngineError whose message names the URL, the status and a body excerpt.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from npuperf.engines.base import (
    STOP_REASONS,
    EngineError,
    EngineInfo,
    EngineOptions,
    Generation,
    LoadedParts,
    OnToken,
    installed_version,
)
from npuperf.engines.hf_tokenizer import HfTokenizer
from npuperf.service import api
from npuperf.service.client import NAME, ServiceClient, ServiceError, excerpt

STREAM_CLOCK = "client perf_counter_ns over HTTP (server-sent token events)"
REPORTED_CLOCK = "latency: client perf_counter_ns over HTTP; TTFT and TPOT: server-reported"
LATENCY_ONLY_CLOCK = "latency: client perf_counter_ns over HTTP; TTFT/TPOT not measured (no stream, no server timings)"


class HttpEngine(LoadedParts):
    """The service behind ``base_url`` as an Engine: one request per generation."""

    name = NAME

    def __init__(
        self,
        base_url: str,
        tokenizer_path: Path,
        stream: bool = True,
        timeout_s: float = 30.0,
        temperature: float = api.SEED_TEMPERATURE,
    ) -> None:
        self.base_url = base_url
        self.tokenizer_path = tokenizer_path
        self.stream = stream
        self.timeout_s = timeout_s
        self.temperature = temperature
        self.client: ServiceClient | None = None
        self.health: dict[str, Any] = {}
        self._tokenizer: HfTokenizer | None = None
        self._info: EngineInfo | None = None

    def load(self) -> None:
        """Connect and read /api/health (the service loaded its model already)."""
        client = ServiceClient(self.base_url, self.timeout_s)
        try:
            reply = client.checked("GET", api.HEALTH)
        except ServiceError:
            client.close()
            raise
        health = reply.body if isinstance(reply.body, dict) else {}
        self._tokenizer = HfTokenizer(self.tokenizer_path, engine=NAME)
        self.client, self.health = client, health
        served = f"{health.get('engine', 'unknown')}/{health.get('provider', 'unknown')}"
        versions = {"httpx": installed_version("httpx")}
        versions.update({f"server {k}": str(v) for k, v in (health.get("versions") or {}).items()})
        context = health.get("context_length")
        self._info = EngineInfo(
            engine=NAME,
            provider=served,
            versions=versions,
            model_id=str(health.get("model") or self.base_url),
            model_sha256=str(health.get("model_sha256") or hashlib.sha256(self.base_url.encode()).hexdigest()),
            details={"backend_url": self.base_url, "stream": str(self.stream), "tokenizer": str(self.tokenizer_path)},
            context_length=context if isinstance(context, int) else None,
            config={"stream": str(self.stream)},
        )

    def payload(self, prompt: str, max_new_tokens: int) -> dict[str, Any]:
        return api.infer_payload(prompt, max_new_tokens, self.temperature)

    def generate(self, prompt: str, max_new_tokens: int, on_token: OnToken | None = None) -> Generation:
        if self.client is None or self._tokenizer is None:
            raise EngineError("http engine: generate() called before load()")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        prompt_tokens = len(self._tokenizer.encode(prompt))
        if self.stream:
            return self._streamed(prompt, prompt_tokens, max_new_tokens, on_token)
        return self._whole(prompt, prompt_tokens, max_new_tokens)

    def _streamed(self, prompt: str, prompt_tokens: int, n: int, on_token: OnToken | None) -> Generation:
        assert self.client is not None
        stamps: list[int] = []
        done: dict[str, Any] | None = None
        end: int | None = None
        submit = time.perf_counter_ns()
        for arrived, event, data in self.client.stream_events(api.INFER_STREAM, self.payload(prompt, n)):
            if event == "token":
                if on_token is not None:
                    on_token()
                    arrived = time.perf_counter_ns()
                stamps.append(arrived)
            elif event == "done":
                done = data if isinstance(data, dict) else {}
                end = time.perf_counter_ns()  # the output text has arrived
            elif event == "error":
                message = data.get("error") if isinstance(data, dict) else data
                raise ServiceError(f"the service reported an error mid-stream: {excerpt(str(message))}")
        if done is None:
            raise ServiceError(f"the stream from {self.base_url} ended without a 'done' event ({len(stamps)} tokens)")
        if not stamps:
            raise ServiceError(f"the stream from {self.base_url} carried no token events")
        return self._generation(prompt_tokens, n, submit, tuple(stamps), done, STREAM_CLOCK, end)

    def _whole(self, prompt: str, prompt_tokens: int, n: int) -> Generation:
        assert self.client is not None
        submit = time.perf_counter_ns()
        reply = self.client.checked("POST", api.INFER, json=self.payload(prompt, n))
        end = time.perf_counter_ns()
        body = reply.body if isinstance(reply.body, dict) else {}
        count = body.get("new_tokens")
        count = count if isinstance(count, int) and count > 0 else n
        timings = body.get("timings") or {}
        ttft, tpot = timings.get("ttft_ms"), timings.get("tpot_ms")
        if isinstance(ttft, (int, float)):
            step = float(tpot) if isinstance(tpot, (int, float)) else 0.0
            first = submit + int(ttft * 1e6)
            stamps = tuple(first + int(i * step * 1e6) for i in range(count))
            clock = REPORTED_CLOCK
        else:
            stamps, clock = tuple(end for _ in range(count)), LATENCY_ONLY_CLOCK
        return self._generation(prompt_tokens, n, submit, stamps, body, clock, end)

    def _generation(
        self,
        prompt_tokens: int,
        n: int,
        submit: int,
        stamps: tuple[int, ...],
        body: Mapping[str, Any],
        clock: str,
        end: int | None,
    ) -> Generation:
        timings = body.get("timings") or {}
        client_ms = ((end if end is not None else stamps[-1]) - submit) / 1e6
        device: dict[str, float] = {"client_latency_ms": client_ms}
        for key in ("latency_ms", "ttft_ms", "tpot_ms", "queue_ms", "server_ms"):
            value = timings.get(key)
            if isinstance(value, (int, float)):
                device[f"server_{key}"] = float(value)
        if "server_latency_ms" in device:
            device["http_overhead_ms"] = client_ms - device["server_latency_ms"]
        if isinstance(body.get("prompt_tokens"), int):
            device["server_prompt_tokens"] = float(body["prompt_tokens"])
        reason = body.get("stop_reason")
        phases = wire_phases(client_ms, timings)
        return Generation(
            prompt_tokens=prompt_tokens,
            requested_new_tokens=n,
            submit_ns=submit,
            token_ns=stamps,
            stop_reason=reason if reason in STOP_REASONS else ("budget" if len(stamps) >= n else "eos"),
            clock=clock,
            device=device,
            end_ns=end,
            text=str(body.get("text", "")),
            phases=phases,
        )

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


def wire_phases(client_ms: float, timings: Mapping[str, Any]) -> dict[str, float]:
    """The client's latency split with the server's timings: the engine's phases in the server
    (when it reports them), its queue, the rest of its handling, and the wire (client - server).
    Empty when the service reports no server time (nothing but the total is seen)."""
    server = timings.get("server_ms")
    if not isinstance(server, (int, float)):
        return {}
    queue = timings.get("queue_ms")
    queue = float(queue) if isinstance(queue, (int, float)) else 0.0
    engine = timings.get("phases_ms")
    engine = {str(k): float(v) for k, v in engine.items()} if isinstance(engine, dict) else {}
    out = {"queue": queue, **engine}
    out["server other"] = float(server) - queue - sum(engine.values())
    out["wire"] = client_ms - float(server)
    return out


def create(options: EngineOptions) -> HttpEngine:
    url = options.extra.get("backend_url", "")
    if not url:
        raise ValueError("--engine http needs --backend-url, e.g. --backend-url http://127.0.0.1:8000")
    return HttpEngine(
        url,
        Path(options.extra.get("http_tokenizer", "") or options.model),
        stream=options.extra.get("http_stream", "true") == "true",
        timeout_s=float(options.extra.get("http_timeout_s", "30")),
    )
