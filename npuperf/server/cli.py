"""``python -m npuperf.server``: the reference backend from the command line (see npuperf.server)."""

from __future__ import annotations

import argparse
import contextlib
import sys

from npuperf.engines.base import Engine, EngineError, EngineOptions, create_engine, known_engines
from npuperf.engines.faults import SlowedEngine
from npuperf.server.config import ServerConfig
from npuperf.server.launch import listening_socket

DESCRIPTION = "The reference backend: any npuperf engine behind the team's HTTP API (FastAPI + uvicorn)."


def _parser() -> argparse.ArgumentParser:
    d = ServerConfig()
    p = argparse.ArgumentParser(prog="python -m npuperf.server", description=DESCRIPTION)
    p.add_argument("--engine", default="ort-genai", help=f"engine to serve ({', '.join(known_engines())})")
    p.add_argument("--model", default="models/tiny-qwen2", help="model path for the engine")
    p.add_argument("--ep", default="cpu", help="execution provider of the ort-genai engine: cpu or qnn")
    p.add_argument("--htp-perf-mode", default="burst", help="HTP performance mode (--ep qnn; Genie's policy)")
    p.add_argument("--genie-backend", default="auto", help="genie engine: auto, appbuilder or capi")
    p.add_argument("--genie-lib", default="", help="genie engine, capi backend: the Genie library to load")
    p.add_argument("--host", default=d.host, help="address to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=d.port, help="port; 0 picks a free one (printed at startup)")
    p.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens, help="largest max_new_tokens accepted")
    p.add_argument("--max-body-bytes", type=int, default=d.max_body_bytes, help="larger request bodies get 413")
    p.add_argument("--max-queue", type=int, default=d.max_queue, help="requests waiting or running; more get 503")
    p.add_argument("--queue-timeout-s", type=float, default=d.queue_timeout_s, help="longest wait in the queue")
    p.add_argument(
        "--read-timeout-s", type=float, default=d.read_timeout_s, help="longest wait for a request's headers or body"
    )
    p.add_argument("--breaker-ms", type=float, default=d.breaker_ms, help="a request slower than this is slow")
    p.add_argument("--breaker-trip-after", type=int, default=d.breaker_trip_after, help="slow requests in a row")
    p.add_argument("--breaker-cooldown-s", type=float, default=d.breaker_cooldown_s, help="open time before a trial")
    p.add_argument("--warmup", type=int, default=d.warmup, help="warm-up generations at startup")
    p.add_argument("--inject-slowdown", type=float, default=0.0, help="canary: slow the engine by this fraction")
    p.add_argument("--log-level", default="warning", help="uvicorn log level")
    p.add_argument(
        "--docs",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="serve /docs and /openapi.json (default: only when bound to loopback)",
    )
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
            read_timeout_s=args.read_timeout_s,
            breaker_ms=args.breaker_ms,
            breaker_trip_after=args.breaker_trip_after,
            breaker_cooldown_s=args.breaker_cooldown_s,
            warmup=args.warmup,
            docs=args.docs,
        )
        engine: Engine = create_engine(args.engine, _engine_options(args))
        if args.inject_slowdown:
            engine = SlowedEngine(engine, args.inject_slowdown)
    except (ValueError, EngineError) as exc:
        return _fail(f"npuperf.server: {_option_name(str(exc))}")
    try:
        import uvicorn

        from npuperf.server.app import create_app
        from npuperf.server.backend import Backend
        from npuperf.server.launch import uvicorn_config
    except ImportError as exc:
        return _fail(f"npuperf.server: needs fastapi and uvicorn ({exc}); pip install -r requirements.txt")
    try:
        sock = listening_socket(config.host, config.port)
    except OSError as exc:
        return _fail(f"npuperf.server: cannot bind {config.host}:{config.port} ({exc.strerror})")
    backend = Backend(engine, config)
    try:
        backend.start()  # before serving: a missing or corrupt model is one line, not a traceback
    except Exception as exc:  # any runtime's load failure, reported once without its chain
        sock.close()
        with contextlib.suppress(Exception):
            backend.stop()
        return _fail(f"npuperf.server: cannot load {args.engine} model {args.model!r}: {exc}")
    port = sock.getsockname()[1]

    def announce(what: str) -> None:
        print(f"npuperf.server: {what}; listening on http://{config.host}:{port}", flush=True)

    server = uvicorn.Server(uvicorn_config(create_app(engine, config, announce, backend), config, args.log_level))
    server.run(sockets=[sock])
    return 0 if server.started else 3


def _engine_options(args: argparse.Namespace) -> EngineOptions:
    extra = {"htp_perf_mode": args.htp_perf_mode, "genie_backend": args.genie_backend, "genie_lib": args.genie_lib}
    return EngineOptions(model=args.model, provider=args.ep, extra=extra)


def _option_name(message: str) -> str:
    """ServerConfig names its fields (``breaker_ms``); the command line spells them ``--breaker-ms``."""
    name = message.split(" ", 1)[0]
    if name.isidentifier() and name in ServerConfig.__dataclass_fields__:
        return f"--{name.replace('_', '-')}" + message[len(name) :]
    return message


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 2
