"""The attack suite: hostile and unlucky inputs against the reference server and the suite.

Every attack test names its class (``@pytest.mark.attack``), counts the hostile inputs it
tries (``attack.tried()``) and asserts the answer each got and that the target still works
afterwards (``attack.survived(url)``: health and a good request both 200). The session ends
with a tally by class (docs/api.md publishes it): inputs tried, inputs handled as promised
(their test passed), requests sent and answered (a request with no answer is lost; must
be 0). Everything runs on loopback, each test under a time limit.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from fakes import SleepEngine
from npuperf.engines.base import Generation, OnToken

GOOD = {"prompt": "hi", "max_new_tokens": 2}


@dataclass
class Tally:
    tried: Counter[str] = field(default_factory=Counter)
    handled: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    answered: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "inputs tried": dict(sorted(self.tried.items())),
            "handled as promised": dict(sorted(self.handled.items())),
            "requests sent": self.sent,
            "requests answered": self.answered,
            "requests lost": self.sent - self.answered,
        }


TALLY = Tally()


class Attack:
    """One attack's bookkeeping: what it tried, and whether the target survived it."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.count = 0

    def tried(self, count: int = 1) -> None:
        TALLY.tried[self.kind] += count
        self.count += count

    def request(self, send: Any) -> httpx.Response:
        """Send one request (``send()`` returns the response); counts it as sent and answered."""
        TALLY.sent += 1
        response = send()
        TALLY.answered += 1
        return response

    def survived(self, url: str) -> None:
        """The server still answers: health and a good request both 200."""
        assert httpx.get(url + "/api/health", timeout=10).status_code == 200
        assert self.request(lambda: httpx.post(url + "/api/npu/infer", json=GOOD, timeout=30)).status_code == 200


ATTACKS = pytest.StashKey[Attack]()


@pytest.fixture
def attack(request: pytest.FixtureRequest) -> Attack:
    marker = request.node.get_closest_marker("attack")
    assert marker is not None, "every attack test names its class: @pytest.mark.attack('class')"
    request.node.stash[ATTACKS] = Attack(marker.args[0])
    return request.node.stash[ATTACKS]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    attack = item.stash.get(ATTACKS, None)
    if attack is not None and report.when == "call" and report.passed:
        TALLY.handled[attack.kind] += attack.count
    return report


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "attack(kind): the class of hostile input an attack test tries")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TALLY.tried:
        return
    tally = TALLY.as_dict()
    terminalreporter.section("attack tally")
    for kind, count in tally["inputs tried"].items():
        handled = tally["handled as promised"].get(kind, 0)
        terminalreporter.write_line(f"{kind:<34} tried {count:>4}   handled as promised {handled:>4}")
    terminalreporter.write_line(
        f"requests sent {tally['requests sent']}, answered {tally['requests answered']}, lost {tally['requests lost']}"
    )
    out = os.environ.get("NPUPERF_ATTACK_TALLY")
    if out:
        Path(out).write_text(json.dumps(tally, indent=2) + "\n", encoding="utf-8")


class Counting(SleepEngine):
    """SleepEngine that remembers how many tokens each call produced (stopped early or not),
    and whether a generation is running. ``deaf``: never calls on_token, so cannot be stopped."""

    def __init__(self, deaf: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.produced: list[int] = []
        self.active = 0
        self.deaf = deaf

    def generate(self, prompt: str, max_new_tokens: int, on_token: OnToken | None = None) -> Generation:
        self.produced.append(0)

        def counted() -> None:
            self.produced[-1] += 1
            if on_token is not None and not self.deaf:
                on_token()

        self.active += 1
        try:
            return super().generate(prompt, max_new_tokens, counted)
        finally:
            self.active -= 1


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def raw(url: str, data: bytes, read: bool = True, timeout_s: float = 10.0) -> bytes:
    """Send ``data`` on a fresh connection; the bytes answered until the server closes (or timeout)."""
    with socket.create_connection(("127.0.0.1", port_of(url)), timeout=timeout_s) as sock:
        sock.sendall(data)
        if not read:
            return b""
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
        return b"".join(chunks)


def post_bytes(path: str, body: bytes, extra_headers: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra_headers}\r\n"
    ).encode() + body


def disconnect_after_first_bytes(url: str, path: str, body: dict[str, Any]) -> bytes:
    """Start a request, read the first bytes of the answer, then hang up."""
    with socket.create_connection(("127.0.0.1", port_of(url)), timeout=30) as sock:
        sock.sendall(post_bytes(path, json.dumps(body).encode()))
        first = sock.recv(64)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST
    return first


def wait_until(check: Any, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def engine() -> Iterator[Counting]:
    return Counting(prefill_ms=1, token_ms=0.2)
