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
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from npuperf.engines.base import (
    STOP_REASONS,
    EngineError,
    EngineInfo,
    EngineOptions,
    EngineUnavailable,
    Generation,
    LoadedParts,
    OnToken,
    installed_version,
)
from npuperf.engines.hf_tokenizer import HfTokenizer
from npuperf.service_checks import Answer, BadInput, Load

NAME = "http"
INSTALL = "pip install httpx"
EXCERPT = 300
STREAM_CLOCK = "client perf_counter_ns over HTTP (server-sent token events)"
REPORTED_CLOCK = "latency: client perf_counter_ns over HTTP; TTFT and TPOT: server-reported"
LATENCY_ONLY_CLOCK = "latency: client perf_counter_ns over HTTP; TTFT/TPOT not measured (no stream, no server timings)"


class ServiceError(EngineError):
    """The service could not be reached, or answered with an error or with something unusable."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def excerpt(text: str, limit: int = EXCERPT) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "..."


@dataclass(frozen=True)
class Reply:
    """One HTTP exchange: status, parsed JSON (or None), raw text, client milliseconds."""

    status: int
    body: Any
    text: str
    elapsed_ms: float
    headers: Mapping[str, str]


class ServiceClient:
    """Thin httpx wrapper that turns transport failures and bad answers into ServiceError."""

    def __init__(self, base_url: str, timeout_s: float = 30.0) -> None:
        try:
            import httpx
        except ImportError as exc:
            raise EngineUnavailable(NAME, f"cannot import httpx ({exc})", INSTALL) from exc
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"--backend-url: {base_url!r} is not an http(s) URL; expected e.g. http://127.0.0.1:8000")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._httpx = httpx
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout_s)

    def close(self) -> None:
        self._client.close()

    def _transport_error(self, method: str, path: str, exc: Exception) -> ServiceError:
        httpx = self._httpx
        url = f"{self.base_url}{path}"
        if isinstance(exc, httpx.ConnectError):
            return ServiceError(f"{method} {url}: cannot connect ({exc}); is the service running at {self.base_url}?")
        if isinstance(exc, httpx.TimeoutException):
            return ServiceError(f"{method} {url}: no answer within {self.timeout_s:g} s ({type(exc).__name__})")
        return ServiceError(f"{method} {url}: {type(exc).__name__}: {exc}")

    def send(self, method: str, path: str, *, expect_json: bool = True, **kwargs: Any) -> Reply:
        """Send and read the whole answer; never raises for a 4xx/5xx (see ``checked``)."""
        start = time.perf_counter()
        try:
            response = self._client.request(method, path, **kwargs)
        except self._httpx.HTTPError as exc:
            raise self._transport_error(method, path, exc) from exc
        elapsed = (time.perf_counter() - start) * 1000
        try:
            body = response.json()
        except ValueError:
            body = None
        if expect_json and body is None and response.status_code < 400:
            raise ServiceError(
                f"{method} {self.base_url}{path} answered {response.status_code} with non-JSON "
                f"({response.headers.get('content-type', 'no content-type')}): {excerpt(response.text)!r}",
                response.status_code,
            )
        return Reply(response.status_code, body, response.text, elapsed, dict(response.headers))

    def checked(self, method: str, path: str, **kwargs: Any) -> Reply:
        """``send`` that raises ServiceError for any 4xx/5xx, with status and body excerpt."""
        reply = self.send(method, path, **kwargs)
        if reply.status >= 400:
            raise ServiceError(
                f"{method} {self.base_url}{path} answered {reply.status}: {excerpt(reply.text)!r}", reply.status
            )
        return reply

    def stream_events(self, path: str, payload: Mapping[str, Any]) -> Iterator[tuple[int, str, Any]]:
        """POST and yield (client ns, event, data) for each server-sent event as it arrives."""
        try:
            with self._client.stream("POST", path, json=dict(payload)) as response:
                if response.status_code >= 400:
                    response.read()
                    hint = (
                        "; the service has no stream endpoint: run with --http-stream false"
                        if response.status_code in (404, 405, 501)
                        else ""
                    )
                    raise ServiceError(
                        f"POST {self.base_url}{path} answered {response.status_code}: {excerpt(response.text)!r}{hint}",
                        response.status_code,
                    )
                kind = response.headers.get("content-type", "")
                if not kind.startswith("text/event-stream"):
                    response.read()
                    raise ServiceError(
                        f"POST {self.base_url}{path} did not stream (content-type {kind or 'none'}): "
                        f"{excerpt(response.text)!r}; run without --http-stream if the service has no stream endpoint"
                    )
                event, data = "message", ""
                for line in response.iter_lines():
                    now = time.perf_counter_ns()
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data += line[5:].strip()
                    elif not line and data:
                        try:
                            parsed = json.loads(data)
                        except ValueError as exc:
                            raise ServiceError(
                                f"stream event {event!r} carries non-JSON data: {excerpt(data)!r}"
                            ) from exc
                        yield now, event, parsed
                        event, data = "message", ""
        except self._httpx.HTTPError as exc:
            raise self._transport_error("POST", path, exc) from exc


def answers(client: ServiceClient, bad: Sequence[BadInput]) -> list[Answer]:
    """Send each bad request to /api/npu/infer and keep status and error text."""
    out = []
    for item in bad:
        reply = client.send(
            "POST", "/api/npu/infer", content=item.body, headers={"Content-Type": item.content_type}, expect_json=False
        )
        message = reply.body.get("error") if isinstance(reply.body, dict) else None
        out.append(Answer(item.label, reply.status, str(message) if message else excerpt(reply.text)))
    return out


def load(base_url: str, clients: int, requests: int, payload: Mapping[str, Any], timeout_s: float) -> Load:
    """``clients`` threads, each with its own connection, send ``requests`` requests one after another."""
    import httpx

    statuses: list[int | None] = []
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=base_url, timeout=timeout_s) as c:
            for _ in range(requests):
                start = time.perf_counter()
                try:
                    status: int | None = c.post("/api/npu/infer", json=dict(payload)).status_code
                except httpx.HTTPError as exc:
                    status = None
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}")
                with lock:
                    statuses.append(status)
                    if status == 200:
                        latencies.append((time.perf_counter() - start) * 1000)

    start = time.perf_counter()
    threads = [threading.Thread(target=client, name=f"npuperf-load-{i}") for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return Load(clients, requests, tuple(statuses), tuple(latencies), time.perf_counter() - start, tuple(errors))


def curl(url: str, body: bytes, timeout_s: float) -> tuple[int, Any] | None:
    """POST ``body`` with curl (the bytes as given); None when curl is not installed."""
    exe = shutil.which("curl")
    if exe is None:
        return None
    cmd = [exe, "-sS", "-X", "POST", "-H", "Content-Type: application/json", "--data-binary", "@-",
           "-w", "\n%{http_code}", "--max-time", f"{timeout_s:g}", url]  # fmt: skip
    proc = subprocess.run(cmd, input=body, capture_output=True, timeout=timeout_s + 10, check=False)
    text, _, status = proc.stdout.decode("utf-8", "replace").rpartition("\n")
    if proc.returncode != 0 or not status.isdigit():
        raise ServiceError(f"curl POST {url} failed (exit {proc.returncode}): {excerpt(proc.stderr.decode())}")
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    return int(status), parsed


class HttpEngine(LoadedParts):
    """The service behind ``base_url`` as an Engine: one request per generation."""

    name = NAME

    def __init__(
        self,
        base_url: str,
        tokenizer_path: Path,
        stream: bool = True,
        timeout_s: float = 30.0,
        temperature: float = 0.7,
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
            reply = client.checked("GET", "/api/health")
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
        )

    def payload(self, prompt: str, max_new_tokens: int) -> dict[str, Any]:
        return {"prompt": prompt, "max_new_tokens": max_new_tokens, "temperature": self.temperature}

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
        submit = time.perf_counter_ns()
        for arrived, event, data in self.client.stream_events("/api/npu/infer/stream", self.payload(prompt, n)):
            if event == "token":
                if on_token is not None:
                    on_token()
                    arrived = time.perf_counter_ns()
                stamps.append(arrived)
            elif event == "done":
                done = data if isinstance(data, dict) else {}
            elif event == "error":
                message = data.get("error") if isinstance(data, dict) else data
                raise ServiceError(f"the service reported an error mid-stream: {excerpt(str(message))}")
        if done is None:
            raise ServiceError(f"the stream from {self.base_url} ended without a 'done' event ({len(stamps)} tokens)")
        if not stamps:
            raise ServiceError(f"the stream from {self.base_url} carried no token events")
        return self._generation(prompt_tokens, n, submit, tuple(stamps), done, STREAM_CLOCK, None)

    def _whole(self, prompt: str, prompt_tokens: int, n: int) -> Generation:
        assert self.client is not None
        submit = time.perf_counter_ns()
        reply = self.client.checked("POST", "/api/npu/infer", json=self.payload(prompt, n))
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
        )

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


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
