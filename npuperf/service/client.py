"""The client side of the backend API (docs/api.md): requests, answers, load and curl.

Shared by the ``http`` engine (the latency grid over HTTP) and the service section of the
suite (health, bad inputs, concurrency, the seed request). Measures and reports; the pure
decisions about what it measured are in npuperf.service_checks.

A service that is down, slow, or answers with an error or with something other than
JSON is a ServiceError whose message names the URL, the status and a body excerpt.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from npuperf.engines.base import EngineError, EngineUnavailable
from npuperf.service import api

NAME = "http"
INSTALL = "pip install httpx"
EXCERPT = 300


@dataclass(frozen=True)
class BadInput:
    """A request the service must refuse with ``status``, naming ``names`` in its message."""

    label: str
    body: bytes
    status: int
    names: str
    content_type: str = "application/json"
    any_4xx: bool = False  # the contract fixes the class, not the code (e.g. a prompt over the context)

    def accepts(self, status: int) -> bool:
        return 400 <= status < 500 if self.any_4xx else status == self.status


@dataclass(frozen=True)
class Answer:
    """What the service answered to one request: status and the error text (or body excerpt)."""

    label: str
    status: int
    message: str


@dataclass(frozen=True)
class Load:
    """A concurrency run: per-request status (None: no answer) and client latency."""

    clients: int
    requests_per_client: int
    statuses: tuple[int | None, ...]
    latencies_ms: tuple[float, ...]
    elapsed_s: float
    errors: tuple[str, ...] = ()

    @property
    def expected(self) -> int:
        return self.clients * self.requests_per_client


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
            "POST", api.INFER, content=item.body, headers={"Content-Type": item.content_type}, expect_json=False
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
                    status: int | None = c.post(api.INFER, json=dict(payload)).status_code
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
