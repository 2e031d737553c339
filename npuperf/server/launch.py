"""Where the server runs: a listening socket, a thread of this process, or a child process."""

from __future__ import annotations

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
    root = str(Path(__file__).resolve().parents[2])  # the checkout, for PYTHONPATH
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
