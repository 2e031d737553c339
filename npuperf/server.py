"""The reference backend: any npuperf engine behind the team's HTTP API (FastAPI + uvicorn).

    python -m npuperf.server                       # the embedded model on 127.0.0.1:8000
    python -m npuperf.server --engine genie --model C:/models/Qwen2.0-7B-SSD/genie_config.json --port 8080

Endpoints (docs/api.md is the contract, so a team can check its own backend against it):

- ``GET /api/health``: engine, model, context length, breaker and queue state;
- ``POST /api/npu/infer``: ``{"prompt": "你好", "max_new_tokens": 32, "temperature": 0.7}``
  -> text, token counts and the server's own timings;
- ``POST /api/npu/infer/stream``: the same as server-sent events, one ``token`` event per
  token, then ``done`` with the full answer, so TTFT can be measured over HTTP;
- ``GET /api/npu/benchmark?prompt=&max_new_tokens=&runs=``: in-process latency summary.

It binds 127.0.0.1 unless told otherwise, validates input (422 naming the field, 413 for an
oversized body, a prompt over the model's context is a 422 with the limit), runs one
generation at a time (Genie is not thread-safe) behind a bounded queue with a timeout,
and has a circuit breaker with the team's 2000 ms threshold: after N consecutive slow
requests it answers 503 with Retry-After, then half-opens after a cool-down. Any bad
request gets an answer and the service keeps serving.
"""

# No `from __future__ import annotations` here: FastAPI reads the route signatures at
# runtime, and the request model is built per app (its max_new_tokens limit is a setting).
import argparse
import asyncio
import json
import math
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from npuperf.breaker import CircuitBreaker
from npuperf.engines.base import Engine, EngineError, EngineOptions, Generation, create_engine, known_engines
from npuperf.engines.faults import SlowedEngine
from npuperf.measure import load_and_warm
from npuperf.prompts import team_prompt
from npuperf.stats import Summary

T = TypeVar("T")
SEED_PROMPT = "你好"


@dataclass(frozen=True)
class ServerConfig:
    """How the service runs; every field is a command-line option of ``python -m npuperf.server``."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_new_tokens: int = 1024
    max_body_bytes: int = 64 * 1024
    max_queue: int = 16
    queue_timeout_s: float = 30.0
    breaker_ms: float = 2000.0
    breaker_trip_after: int = 3
    breaker_cooldown_s: float = 30.0
    warmup: int = 2
    benchmark_max_runs: int = 50

    def __post_init__(self) -> None:
        for name in ("max_new_tokens", "max_body_bytes", "max_queue", "breaker_trip_after", "benchmark_max_runs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        if self.queue_timeout_s <= 0 or self.breaker_ms <= 0:
            raise ValueError("queue_timeout_s and breaker_ms must be > 0")


class QueueFull(Exception):
    """More requests are waiting or running than the queue holds."""


class QueueTimeout(Exception):
    """A request waited in the queue longer than the timeout."""


class ContextTooLong(Exception):
    """Prompt plus new tokens exceed the model's context."""


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
        """Run ``fn`` on the engine thread after ``reserve()``; returns (result, ms waited in the queue)."""
        queued = time.perf_counter()
        started: list[float] = []

        def job() -> T:
            started.append(time.perf_counter())
            return fn()

        try:
            future = self._executor.submit(job)
            waiting = asyncio.wrap_future(future)
            done, _ = await asyncio.wait({waiting}, timeout=self.queue_timeout_s)
            if not done and not started and future.cancel():
                raise QueueTimeout(f"waited {self.queue_timeout_s:g} s in the queue without reaching the engine")
            result = await waiting
            self.served += 1
            return result, (started[0] - queued) * 1000
        finally:
            self.pending -= 1

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the engine thread and wait (startup and shutdown)."""
        return self._executor.submit(fn).result()

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


def _summary(values: tuple[float, ...] | list[float]) -> dict[str, float] | None:
    if not values:
        return None
    s = Summary.of(values)
    return {"median": s.median, "p90": s.p90, "min": s.min, "max": s.max}


def _server_clock(engine_clock: str) -> str:
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
            "clock": _server_clock(gen.clock),
        },
    }


def create_app(engine: Engine, config: ServerConfig, announce: Callable[[str], None] | None = None) -> Any:
    """The FastAPI app over ``engine`` (loaded and warmed at startup, closed at shutdown)."""
    from fastapi import FastAPI, Query, Request
    from fastapi.encoders import jsonable_encoder
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from pydantic import BaseModel, ConfigDict, Field, field_validator

    gate = EngineGate(config.max_queue, config.queue_timeout_s)
    breaker = CircuitBreaker(
        threshold_ms=config.breaker_ms, trip_after=config.breaker_trip_after, cooldown_s=config.breaker_cooldown_s
    )
    loaded: dict[str, Any] = {}

    class InferRequest(BaseModel):
        # strict: "32" is not a number of tokens, and true is not a temperature
        model_config = ConfigDict(strict=True)

        prompt: str = Field(min_length=1)
        max_new_tokens: int = Field(32, ge=1, le=config.max_new_tokens)
        temperature: float = Field(0.7, ge=0.0, le=2.0)

        @field_validator("prompt")
        @classmethod
        def _not_blank(cls, value: str) -> str:
            if not value.strip():
                raise ValueError("must not be blank")
            return value

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        def start() -> None:
            warm = load_and_warm(
                engine, lambda e: [team_prompt(e.tokenizer, "greeting-zh")], new_tokens=8, warmup=config.warmup
            )
            loaded["load_s"] = warm.load_s
            loaded["cold_ms"] = warm.cold.latency_ms

        await asyncio.get_running_loop().run_in_executor(None, gate.call, start)
        if announce is not None:
            announce(f"engine {engine.info.engine} ({engine.info.provider}), model {engine.info.model_id} ready")
        try:
            yield
        finally:
            gate.call(engine.close)
            gate.shutdown()

    app = FastAPI(title="npuperf reference backend", lifespan=lifespan)

    def error(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
        return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)

    def unavailable(message: str, retry_after_s: float) -> JSONResponse:
        return error(503, message, headers={"Retry-After": str(max(1, math.ceil(retry_after_s)))})

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        broken = [e for e in errors if e.get("type") == "json_invalid"]
        if broken:
            reason = (broken[0].get("ctx") or {}).get("error", "JSON decode error")
            return error(400, f"body: not valid JSON ({reason}); send a JSON object", detail=jsonable_encoder(errors))
        problems = []
        for e in errors:
            loc = [str(p) for p in e.get("loc", ()) if p not in ("body", "query")]
            problems.append(f"{'.'.join(loc) or 'body'}: {e.get('msg', 'invalid')}")
        return error(422, "; ".join(problems), detail=jsonable_encoder(errors))

    @app.exception_handler(Exception)
    async def crashed(_request: Request, exc: Exception) -> JSONResponse:
        return error(500, f"internal error: {type(exc).__name__}: {exc}")

    def check_context(prompt: str, new_tokens: int) -> int:
        tokens = len(engine.tokenizer.encode(prompt))
        limit = engine.info.context_length
        if limit is not None and tokens + new_tokens > limit:
            raise ContextTooLong(
                f"prompt is {tokens} tokens; with max_new_tokens {new_tokens} that is {tokens + new_tokens}, "
                f"over the model's context of {limit} tokens"
            )
        return tokens

    async def generate(body: InferRequest, on_token: Callable[[], None] | None) -> dict[str, Any] | JSONResponse:
        """Admit, queue, generate, record: the shared path of infer and its stream."""
        start = time.perf_counter()

        def job() -> Generation:
            check_context(body.prompt, body.max_new_tokens)
            return engine.generate(body.prompt, body.max_new_tokens, on_token=on_token)

        try:
            gen, queue_ms = await gate.run(job)
        except QueueTimeout as exc:
            breaker.release()
            return unavailable(str(exc), 1)
        except ContextTooLong as exc:
            breaker.release()
            return error(422, f"prompt: {exc}", context_length=engine.info.context_length)
        except (EngineError, ValueError) as exc:
            breaker.record(None, failed=True)
            return error(500, f"engine failed: {exc}")
        server_ms = (time.perf_counter() - start) * 1000
        breaker.record(server_ms)
        return infer_body(gen, queue_ms, server_ms, body.temperature)

    def admit() -> JSONResponse | None:
        wait = breaker.admit()
        if wait is not None:
            return unavailable(
                f"circuit breaker open: {breaker.consecutive_slow} consecutive requests over "
                f"{config.breaker_ms:g} ms; retry in {math.ceil(wait)} s",
                wait,
            )
        try:
            gate.reserve()
        except QueueFull as exc:
            breaker.release()
            return unavailable(str(exc), 1)
        return None

    @app.get("/api/health")
    async def health() -> dict[str, Any]:
        info = engine.info
        return {
            "status": "degraded" if breaker.state.value != "closed" else "ok",
            "engine": info.engine,
            "provider": info.provider,
            "model": info.model_id,
            "model_sha256": info.model_sha256,
            "context_length": info.context_length,
            "versions": dict(info.versions),
            "load_s": loaded.get("load_s"),
            "cold_call_ms": loaded.get("cold_ms"),
            "breaker": breaker.snapshot(),
            "queue": {"pending": gate.pending, "max": config.max_queue, "served": gate.served},
            "limits": {"max_new_tokens": config.max_new_tokens, "max_body_bytes": config.max_body_bytes},
        }

    @app.post("/api/npu/infer", response_model=None)
    async def infer(body: InferRequest) -> dict[str, Any] | JSONResponse:
        refused = admit()
        if refused is not None:
            return refused
        return await generate(body, None)

    @app.post("/api/npu/infer/stream", response_model=None)
    async def infer_stream(body: InferRequest) -> StreamingResponse | JSONResponse:
        refused = admit()
        if refused is not None:
            return refused
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        start = time.perf_counter()
        count = [0]

        def on_token() -> None:  # engine thread: stamp, hand over, let the event loop send it
            t_ms = (time.perf_counter() - start) * 1000
            loop.call_soon_threadsafe(events.put_nowait, ("token", t_ms))
            # Without this yield the engine thread kept the GIL through the whole generation
            # and the events left in one burst at the end: client TTFT 20.52 ms against a
            # server TTFT of 0.75 ms for 64 tokens (docs/api.md). Yielding costs decode time.
            time.sleep(0)

        async def produce() -> None:
            result = await generate(body, on_token)
            events.put_nowait(("error", result) if isinstance(result, JSONResponse) else ("done", result))

        task = asyncio.create_task(produce())
        # Wait for the first event before answering: a request that fails before its first
        # token (prompt over the context, queue timeout, engine error) gets its own status
        # code, not a 200 stream that carries an error.
        first = await events.get()
        if first[0] == "error":
            await task
            early: JSONResponse = first[1]
            return early

        async def stream() -> AsyncIterator[str]:
            pending: tuple[str, Any] | None = first
            try:
                while True:
                    kind, data = pending if pending is not None else await events.get()
                    pending = None
                    if kind == "token":
                        yield f"event: token\ndata: {json.dumps({'index': count[0], 't_ms': data})}\n\n"
                        count[0] += 1
                        continue
                    if kind == "error":
                        data = json.loads(bytes(data.body))
                    yield f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
                    return
            finally:
                await task

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    @app.get("/api/npu/benchmark", response_model=None)
    async def benchmark(
        prompt: str = Query(SEED_PROMPT, min_length=1),
        max_new_tokens: int = Query(32, ge=1, le=config.max_new_tokens),
        runs: int = Query(5, ge=1, le=config.benchmark_max_runs),
    ) -> dict[str, Any] | JSONResponse:
        try:
            gate.reserve()
        except QueueFull as exc:
            return unavailable(str(exc), 1)

        def job() -> list[Generation]:
            check_context(prompt, max_new_tokens)
            return [engine.generate(prompt, max_new_tokens) for _ in range(runs)]

        try:
            gens, queue_ms = await gate.run(job)
        except QueueTimeout as exc:
            return unavailable(str(exc), 1)
        except ContextTooLong as exc:
            return error(422, f"prompt: {exc}", context_length=engine.info.context_length)
        except (EngineError, ValueError) as exc:
            return error(500, f"engine failed: {exc}")
        metrics = {m: [getattr(g, m) for g in gens] for m in ("latency_ms", "ttft_ms", "tpot_ms")}
        return {
            "engine": engine.info.engine,
            "model": engine.info.model_id,
            "prompt_tokens": gens[0].prompt_tokens,
            "max_new_tokens": max_new_tokens,
            "new_tokens": [g.new_tokens for g in gens],
            "runs": runs,
            "queue_ms": queue_ms,
            "clock": _server_clock(gens[0].clock),
            **{m: _summary([v for v in vals if v is not None]) for m, vals in metrics.items()},
            "samples": {m: [v for v in vals if v is not None] for m, vals in metrics.items()},
        }

    return BodyLimit(app, config.max_body_bytes)


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413 and never reaches the app."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send, int(declared))
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, receive, send)  # disconnect: let the app see it
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.limit:
                await self._refuse(send, size)
                return
        body = b"".join(chunks)
        delivered = False

        async def replay() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            message: dict[str, Any] = await receive()
            return message

        await self.app(scope, replay, send)

    async def _refuse(self, send: Any, size: int) -> None:
        payload = json.dumps({"error": f"request body is {size} bytes; the limit is {self.limit} bytes"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    @property
    def state(self) -> Any:
        return self.app.state


# ----- command line ----------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    d = ServerConfig()
    p = argparse.ArgumentParser(prog="python -m npuperf.server", description=__doc__.splitlines()[0])
    p.add_argument("--engine", default="ort-genai", help=f"engine to serve ({', '.join(known_engines())})")
    p.add_argument("--model", default="models/tiny-qwen2", help="model path for the engine")
    p.add_argument("--ep", default="cpu", help="execution provider of the ort-genai engine: cpu or qnn")
    p.add_argument("--htp-perf-mode", default="burst", help="HTP performance mode with --ep qnn")
    p.add_argument("--host", default=d.host, help="address to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=d.port, help="port; 0 picks a free one (printed at startup)")
    p.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens, help="largest max_new_tokens accepted")
    p.add_argument("--max-body-bytes", type=int, default=d.max_body_bytes, help="larger request bodies get 413")
    p.add_argument("--max-queue", type=int, default=d.max_queue, help="requests waiting or running; more get 503")
    p.add_argument("--queue-timeout-s", type=float, default=d.queue_timeout_s, help="longest wait in the queue")
    p.add_argument("--breaker-ms", type=float, default=d.breaker_ms, help="a request slower than this is slow")
    p.add_argument("--breaker-trip-after", type=int, default=d.breaker_trip_after, help="slow requests in a row")
    p.add_argument("--breaker-cooldown-s", type=float, default=d.breaker_cooldown_s, help="open time before a trial")
    p.add_argument("--warmup", type=int, default=d.warmup, help="warm-up generations at startup")
    p.add_argument("--inject-slowdown", type=float, default=0.0, help="canary: slow the engine by this fraction")
    p.add_argument("--log-level", default="warning", help="uvicorn log level")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = ServerConfig(
            host=args.host,
            port=args.port,
            max_new_tokens=args.max_new_tokens,
            max_body_bytes=args.max_body_bytes,
            max_queue=args.max_queue,
            queue_timeout_s=args.queue_timeout_s,
            breaker_ms=args.breaker_ms,
            breaker_trip_after=args.breaker_trip_after,
            breaker_cooldown_s=args.breaker_cooldown_s,
            warmup=args.warmup,
        )
        engine: Engine = create_engine(
            args.engine, EngineOptions(model=args.model, provider=args.ep, extra={"htp_perf_mode": args.htp_perf_mode})
        )
        if args.inject_slowdown:
            engine = SlowedEngine(engine, args.inject_slowdown)
    except (ValueError, EngineError) as exc:
        print(f"npuperf.server: {exc}", file=sys.stderr)
        return 2
    try:
        import uvicorn
    except ImportError as exc:
        print(f"npuperf.server: needs fastapi and uvicorn ({exc}); pip install -r requirements.txt", file=sys.stderr)
        return 2
    try:
        sock = listening_socket(config.host, config.port)
    except OSError as exc:
        print(f"npuperf.server: cannot bind {config.host}:{config.port} ({exc.strerror})", file=sys.stderr)
        return 2
    port = sock.getsockname()[1]

    def announce(what: str) -> None:
        print(f"npuperf.server: {what}; listening on http://{config.host}:{port}", flush=True)

    app = create_app(engine, config, announce=announce)
    server = uvicorn.Server(uvicorn.Config(app, log_level=args.log_level, lifespan="on", timeout_graceful_shutdown=5))
    server.run(sockets=[sock])
    return 0 if server.started else 3


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket for uvicorn (port 0: a free one).

    The protocol must be IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on
    sockets that say so, and without it every answer on a keep-alive connection waited for
    the client's delayed ACK, about 40 ms on Linux (measured here; docs/api.md).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


@dataclass
class ThreadedServer:
    """The app served from a thread (tests, and the suite's in-process use); ``stop()`` ends it."""

    server: Any
    thread: threading.Thread
    sock: socket.socket
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


def serve_in_thread(engine: Engine, config: ServerConfig) -> ThreadedServer:
    """Run the app on ``config.port`` (0: a free one) of loopback in a thread, once it is ready."""
    import uvicorn

    sock = listening_socket(config.host, config.port)
    server = uvicorn.Server(uvicorn.Config(create_app(engine, config), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the reference server did not start (see the log above)")
        time.sleep(0.01)
    return ThreadedServer(server, thread, sock, sock.getsockname()[1])


@dataclass
class ServerProcess:
    """``python -m npuperf.server`` in a child process (the suite's default service)."""

    proc: subprocess.Popen[str]
    url: str
    log: Path

    def stop(self, timeout_s: float = 30.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout_s)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


def start_process(args: list[str], log: Path, timeout_s: float = 180.0) -> ServerProcess:
    """Start the server on a free loopback port; returns once it prints that it listens.

    Its stderr goes to ``log``; if it exits or stays silent, the error carries the log's tail.
    """
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH", "")]))}
    cmd = [sys.executable, "-m", "npuperf.server", "--host", "127.0.0.1", "--port", "0", *args]
    with log.open("w", encoding="utf-8") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env, encoding="utf-8")
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline() if proc.stdout else ""), daemon=True)
    reader.start()
    reader.join(timeout_s)
    found = re.search(r"listening on (http://\S+)", lines[0]) if lines else None
    if found is None:
        server = ServerProcess(proc, "", log)
        code = server.stop(5)
        tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:])
        said = f"; it said {lines[0].strip()!r}" if lines and lines[0].strip() else ""
        raise RuntimeError(
            f"the reference server ({' '.join(cmd[1:])}) did not start within {timeout_s:g} s (exit {code}){said}; "
            f"its log {log}:\n{tail}"
        )
    return ServerProcess(proc, found.group(1), log)


if __name__ == "__main__":
    raise SystemExit(main())
