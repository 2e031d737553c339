"""The FastAPI app: routes each endpoint of docs/api.md to the Backend, behind the body limit."""

# No `from __future__ import annotations` here: FastAPI reads the route signatures at
# runtime, and the request model is built per app (its max_new_tokens limit is a setting).
import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse

from npuperf import api
from npuperf.engines.base import Engine
from npuperf.server.backend import Backend
from npuperf.server.body_limit import BodyLimit
from npuperf.server.config import ServerConfig
from npuperf.server.requests import crashed, infer_request_model, invalid
from npuperf.server.stream import stream_response


def create_app(engine: Engine, config: ServerConfig, announce: Callable[[str], None] | None = None) -> Any:
    """The ASGI app over ``engine`` (loaded and warmed at startup, closed at shutdown)."""
    backend = Backend(engine, config)
    InferRequest = infer_request_model(config.max_new_tokens)

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        await asyncio.get_running_loop().run_in_executor(None, backend.start)
        if announce is not None:
            announce(f"engine {engine.info.engine} ({engine.info.provider}), model {engine.info.model_id} ready")
        try:
            yield
        finally:
            backend.stop()

    app = FastAPI(title="npuperf reference backend", lifespan=lifespan)
    app.add_exception_handler(RequestValidationError, invalid)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, crashed)

    @app.get(api.HEALTH)
    async def health() -> dict[str, Any]:
        return backend.health()

    @app.post(api.INFER, response_model=None)
    async def infer(body: InferRequest) -> dict[str, Any] | JSONResponse:  # type: ignore[valid-type]
        return backend.admit() or await backend.generate(body, None)

    @app.post(api.INFER_STREAM, response_model=None)
    async def infer_stream(body: InferRequest) -> StreamingResponse | JSONResponse:  # type: ignore[valid-type]
        return await stream_response(backend, body)

    @app.get(api.BENCHMARK, response_model=None)
    async def benchmark(
        prompt: str = Query(api.SEED_PROMPT, min_length=1),
        max_new_tokens: int = Query(api.SEED_NEW_TOKENS, ge=1, le=config.max_new_tokens),
        runs: int = Query(5, ge=1, le=config.benchmark_max_runs),
    ) -> dict[str, Any] | JSONResponse:
        return await backend.benchmark(prompt, max_new_tokens, runs)

    return BodyLimit(app, config.max_body_bytes)
