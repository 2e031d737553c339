"""ASGI middleware: a request body over the limit gets 413, one that stalls gets 408; neither
reaches the app."""

from __future__ import annotations

import asyncio
import json
from typing import Any


class BodyLimit:
    """ASGI middleware: reads the whole body first, then hands it to the app.

    Over ``limit`` bytes (declared or, for a chunked body, counted as it comes): 413.
    No part of the body within ``read_timeout_s``: 408 (a slow client holds no engine place).
    """

    def __init__(self, app: Any, limit: int, read_timeout_s: float = 10.0) -> None:
        self.app = app
        self.limit = limit
        self.read_timeout_s = read_timeout_s

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._answer(send, 413, f"request body is {int(declared)} bytes; the limit is {self.limit} bytes")
            return
        chunks, size, more = [], 0, True
        while more:
            try:
                message = await asyncio.wait_for(receive(), self.read_timeout_s)
            except TimeoutError:
                await self._answer(send, 408, self._stalled(size, declared))
                return
            if message["type"] != "http.request":
                await self.app(scope, receive, send)  # disconnect: let the app see it
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.limit:
                await self._answer(
                    send,
                    413,
                    f"request body (sent chunked, without a Content-Length) passed {size} bytes; "
                    f"the limit is {self.limit} bytes",
                )
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

    def _stalled(self, size: int, declared: bytes | None) -> str:
        of = f" of the {int(declared)} declared" if declared is not None and declared.isdigit() else ""
        return f"request body: nothing more came for {self.read_timeout_s:g} s after {size}{of} bytes; send it whole"

    async def _answer(self, send: Any, status: int, message: str) -> None:
        payload = json.dumps({"error": message}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": [*headers, (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": payload})

    @property
    def state(self) -> Any:
        return self.app.state
