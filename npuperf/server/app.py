"""The FastAPI app: routes each endpoint of docs/api.md to the Backend, behind the body limit."""

# No `from __future__ import annotations` here: FastAPI reads the route signatures at
# runtime, and the request model is built per app (its max_new_tokens limit is a setting).
import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from npuperf.engines.base import Engine
from npuperf.server.backend import Backend
from npuperf.server.body_limit import BodyLimit
from npuperf.server.config import ServerConfig
from npuperf.server.requests import check_prompt_text, crashed, http_error, infer_request_model, invalid
from npuperf.server.responses import error
from npuperf.server.stream import stream_response
from npuperf.service import api


def create_app(
    engine: Engine,
    config: ServerConfig,
    announce: Callable[[str], None] | None = None,
    backend: Backend | None = None,
) -> Any:
    """The ASGI app over ``engine``: loaded and warmed at startup (unless ``backend`` has
    been started already, as the command line does), closed at shutdown."""
    backend = backend or Backend(engine, config)
    InferRequest = infer_request_model(config.max_new_tokens)

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        if not backend.started:
            await asyncio.get_running_loop().run_in_executor(None, backend.start)
        if announce is not None:
            announce(f"engine {engine.info.engine} ({engine.info.provider}), model {engine.info.model_id} ready")
        try:
            yield
        finally:
            backend.stop()

    app = _fastapi(config, lifespan)

    @app.get(api.HEALTH)
    async def health() -> dict[str, Any]:
        return backend.health()

    @app.post(api.INFER, response_model=None)
    async def infer(body: InferRequest, request: Request) -> dict[str, Any] | JSONResponse:  # type: ignore[valid-type]
        refused = backend.admit()
        if refused is not None:
            return refused
        stop = threading.Event()
        watcher = asyncio.create_task(_hang_up(request, stop))
        try:
            return await backend.generate(body, None, stop)
        finally:
            watcher.cancel()

    @app.post(api.INFER_STREAM, response_model=None)
    async def infer_stream(body: InferRequest) -> StreamingResponse | JSONResponse:  # type: ignore[valid-type]
        return await stream_response(backend, body)

    @app.get(api.BENCHMARK, response_model=None)
    async def benchmark(
        prompt: str = Query(api.SEED_PROMPT, min_length=1),
        max_new_tokens: int = Query(api.SEED_NEW_TOKENS, ge=1, le=config.max_new_tokens),
        runs: int = Query(5, ge=1, le=config.benchmark_max_runs),
    ) -> dict[str, Any] | JSONResponse:
        try:
            check_prompt_text(prompt)
        except ValueError as exc:
            return error(422, f"prompt: {exc}")
        return await backend.benchmark(prompt, max_new_tokens, runs)

    return BodyLimit(app, config.max_body_bytes, config.read_timeout_s)


def _fastapi(config: ServerConfig, lifespan: Any) -> FastAPI:
    """The FastAPI app with this API's error answers; /docs and /openapi.json only if the config serves them."""
    docs = config.serves_docs
    app = FastAPI(
        title="npuperf reference backend",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.add_exception_handler(RequestValidationError, invalid)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, crashed)
    return app


async def _hang_up(request: Request, stop: threading.Event) -> None:
    """Set ``stop`` when the client disconnects (its body is read: the next message is that)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    stop.set()
