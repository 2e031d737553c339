"""Where the server runs: a listening socket, a thread of this process, or a child process."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from npuperf.engines.base import Engine
from npuperf.server.config import ServerConfig


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


def uvicorn_config(app: Any, config: ServerConfig, log_level: str = "warning") -> Any:
    """uvicorn's settings for the app: h11 with a time limit on request headers."""
    import uvicorn

    return uvicorn.Config(
        app,
        log_level=log_level,
        lifespan="on",
        http=header_timeout_protocol(config.read_timeout_s),
        timeout_graceful_shutdown=5,
    )


def header_timeout_protocol(timeout_s: float) -> type[Any]:
    """uvicorn's h11 protocol, dropping a connection whose request headers take over ``timeout_s``.

    uvicorn limits idle keep-alive connections but not a request that has started: a client
    that sends half a request line and waits held its connection for good. A timer runs
    whenever the connection waits for a request (h11's IDLE state, which lasts until the
    headers are complete); when it fires in that state the connection gets 408 (or, if
    nothing at all came, is just closed). The body has its own limit (BodyLimit).
    """
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeout(H11Protocol):
        _guard: asyncio.TimerHandle | None = None
        _partial = 0

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            self._partial += len(data)
            super().data_received(data)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._guard is not None:
                self._guard.cancel()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._guard is not None:
                self._guard.cancel()
            self._partial = 0
            self._guard = self.loop.call_later(timeout_s, self._expire)

        def _expire(self) -> None:
            self._guard = None
            if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
                return  # closed, or a request is in (the next response re-arms the timer)
            if self._partial:
                body = f'{{"error": "request headers not complete within {timeout_s:g} s"}}'.encode()
                self.transport.write(
                    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
                    + f"content-length: {len(body)}\r\n\r\n".encode()
                    + body
                )
            self.transport.close()

    return HeaderTimeout


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
    """Run the app on ``config.port`` (0: a free one) of loopback in a thread, once it is ready.

    For the project's own tests (tests/conftest.py ``serving``), which need the engine in
    their process; the suite starts the server as a child process (``start_process``).
    """
    import uvicorn

    from npuperf.server.app import create_app

    sock = listening_socket(config.host, config.port)
    server = uvicorn.Server(uvicorn_config(create_app(engine, config), config))
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
    root = str(Path(__file__).resolve().parents[2])  # the checkout, for PYTHONPATH
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH", "")]))}
    cmd = [sys.executable, "-m", "npuperf.server", "--host", "127.0.0.1", "--port", "0", *args]
    with log.open("w", encoding="utf-8") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env, encoding="utf-8")
    lines: list[str] = []
    found: list[re.Match[str]] = []

    def read() -> None:  # runtimes may print their own lines first (QNN's LIBNATIVE notice)
        for line in proc.stdout or ():
            lines.append(line)
            match = re.search(r"listening on (http://\S+)", line)
            if match:
                found.append(match)
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout_s)
    if not found:
        server = ServerProcess(proc, "", log)
        code = server.stop(5)
        tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:])
        said = f"; it said {''.join(lines[-3:]).strip()!r}" if "".join(lines).strip() else ""
        raise RuntimeError(
            f"the reference server ({' '.join(cmd[1:])}) did not start within {timeout_s:g} s (exit {code}){said}; "
            f"its log {log}:\n{tail}"
        )
    return ServerProcess(proc, found[0].group(1), log)
