"""Hostile and unlucky clients against the reference server, each fault reproduced first.

Numbers in the names refer to issue #12's list. Every test ends by checking that the server
survived (health and a good request answer 200) and every request it sent got an answer.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from attack.conftest import GOOD, Attack, Counting, disconnect_after_first_bytes, port_of, post_bytes, raw, wait_until
from conftest import MODEL, ROOT, serving
from npuperf.engines.ort_genai import OrtGenaiEngine

pytestmark = pytest.mark.timeout(120)

INFER, STREAM, BENCH = "/api/npu/infer", "/api/npu/infer/stream", "/api/npu/benchmark"


def post(url: str, body: Any, path: str = INFER, **kw: Any) -> httpx.Response:
    return httpx.post(url + path, json=body, timeout=30, **kw)


def health(url: str) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(url + "/api/health", timeout=10).json()
    return answer


def trip(url: str, attack: Attack, n: int = 2) -> None:
    """Two slow requests (the engine's burst) open the breaker."""
    for _ in range(n):
        assert attack.request(lambda: post(url, {"prompt": "slow", "max_new_tokens": 2})).status_code == 200
    assert health(url)["breaker"]["state"] == "open"


@pytest.fixture(scope="module")
def real() -> Iterator[str]:
    """The embedded model (its tokenizer encodes some text to zero tokens)."""
    with serving(OrtGenaiEngine(MODEL), max_queue=4, breaker_trip_after=3) as url:
        yield url


# ----- breaker transitions -----------------------------------------------------------------------


@pytest.mark.attack("breaker: disconnects")
def test_1_half_open_stream_trial_whose_client_hangs_up_releases_the_trial(attack: Attack) -> None:
    # warm-up is calls 1-3; calls 4 and 5 are slow (trip), the stream trial is long
    engine = Counting(prefill_ms=1, token_ms=2, burst_from=4, burst_to=6, burst=100)
    with serving(engine, breaker_ms=100, breaker_trip_after=2, breaker_cooldown_s=0.5) as url:
        trip(url, attack)
        time.sleep(0.6)
        attack.tried()
        first = disconnect_after_first_bytes(url, STREAM, {"prompt": "trial", "max_new_tokens": 1000})
        assert first.startswith(b"HTTP/1.1 200")
        assert wait_until(lambda: health(url)["queue"]["pending"] == 0)
        assert engine.produced[-1] < 1000, "the abandoned stream kept generating"
        assert attack.request(lambda: post(url, GOOD)).status_code == 200  # the next trial closes it
        assert health(url)["breaker"]["state"] == "closed"
        attack.survived(url)


@pytest.mark.attack("breaker: disconnects")
@pytest.mark.parametrize("tokens_first", [1, 5])
def test_an_abandoned_stream_stops_the_engine_and_keeps_its_queue_place_until_it_stops(
    attack: Attack, tokens_first: int
) -> None:
    engine = Counting(prefill_ms=1, token_ms=5)
    with serving(engine, warmup=0) as url:
        attack.tried()
        with httpx.stream("POST", url + STREAM, json={"prompt": "x", "max_new_tokens": 400}, timeout=30) as r:
            lines = r.iter_lines()
            seen = 0
            while seen < tokens_first:
                seen += next(lines).startswith("event: token")
        assert wait_until(lambda: engine.active == 0)
        assert engine.produced[-1] < 400, "the abandoned stream kept generating"
        assert wait_until(lambda: health(url)["queue"]["pending"] == 0)
        attack.survived(url)


@pytest.mark.attack("disconnects")
@pytest.mark.parametrize("path", [INFER, STREAM])
def test_a_generation_that_cannot_be_stopped_keeps_its_queue_place_until_it_ends(attack: Attack, path: str) -> None:
    engine = Counting(deaf=True, prefill_ms=1, token_ms=5)  # 200 tokens: about 1 s, deaf to the hang-up
    with serving(engine, warmup=0) as url:
        attack.tried()
        _partial(url, post_bytes(path, json.dumps({"prompt": "x", "max_new_tokens": 200}).encode()), wait_s=0.1)
        time.sleep(0.2)
        assert engine.active == 1
        assert health(url)["queue"]["pending"] == 1, "a running engine was counted as idle"
        assert wait_until(lambda: engine.active == 0)
        assert engine.produced[-1] == 200
        assert wait_until(lambda: health(url)["queue"]["pending"] == 0)
        attack.survived(url)


class Failing(Counting):
    def generate(self, prompt: str, max_new_tokens: int, on_token: Any = None) -> Any:
        if prompt == "boom":
            raise RuntimeError("device lost")
        return super().generate(prompt, max_new_tokens, on_token)


@pytest.mark.attack("breaker: messages")
def test_the_breaker_says_what_tripped_it(attack: Attack) -> None:
    from npuperf.engines.base import EngineError

    class Broken(Counting):
        def generate(self, prompt: str, max_new_tokens: int, on_token: Any = None) -> Any:
            if prompt == "boom":
                raise EngineError("device lost")
            return super().generate(prompt, max_new_tokens, on_token)

    with serving(Broken(prefill_ms=1, token_ms=0.1), breaker_trip_after=2, breaker_cooldown_s=0.3) as url:
        attack.tried(2)
        codes = [attack.request(lambda: post(url, {"prompt": "boom"})).status_code for _ in range(2)]
        assert codes == [500, 500]
        refused = attack.request(lambda: post(url, GOOD))
        assert refused.status_code == 503
        message = refused.json()["error"]
        assert "2 consecutive requests failed (engine failed: device lost)" in message
        assert "over 2000 ms" not in message
        time.sleep(0.35)
        attack.survived(url)


@pytest.mark.attack("breaker: input errors")
def test_2_a_prompt_of_zero_tokens_is_422_and_never_trips_the_breaker(real: str, attack: Attack) -> None:
    for _ in range(5):
        attack.tried()
        r = attack.request(lambda: post(real, {"prompt": "\u0000", "max_new_tokens": 4}))
        assert r.status_code == 422, r.text
        assert "zero tokens" in r.json()["error"]
    snapshot = health(real)["breaker"]
    assert snapshot["state"] == "closed"
    assert snapshot["consecutive_slow"] == 0
    attack.survived(real)


@pytest.mark.attack("breaker: benchmark endpoint")
def test_the_benchmark_endpoint_is_behind_the_breaker_and_refuses_a_blank_prompt(attack: Attack) -> None:
    engine = Counting(prefill_ms=1, token_ms=2, burst_from=4, burst_to=6, burst=100)
    with serving(engine, breaker_ms=100, breaker_trip_after=2, breaker_cooldown_s=0.4) as url:
        attack.tried(2)
        blank = attack.request(lambda: httpx.get(url + BENCH, params={"prompt": "   ", "runs": 1}, timeout=30))
        assert blank.status_code == 422
        assert "prompt" in blank.json()["error"]
        trip(url, attack)
        refused = attack.request(lambda: httpx.get(url + BENCH, params={"runs": 1}, timeout=30))
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "1"
        time.sleep(0.45)
        attack.survived(url)


# ----- hostile JSON and Unicode -------------------------------------------------------------------

NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e400"]


@pytest.mark.attack("hostile JSON")
@pytest.mark.parametrize("field", ["prompt", "max_new_tokens", "temperature", "extra"])
@pytest.mark.parametrize("value", NON_FINITE)
def test_7_non_finite_numbers_in_any_field_are_422(real: str, attack: Attack, field: str, value: str) -> None:
    body = {"prompt": '"hi"', "max_new_tokens": "4", "temperature": "0.5", field: value}
    raw_body = "{" + ", ".join(f'"{k}": {v}' for k, v in body.items()) + "}"
    attack.tried()
    headers = {"Content-Type": "application/json"}
    r = attack.request(lambda: httpx.post(real + INFER, content=raw_body.encode(), headers=headers, timeout=30))
    assert r.status_code == 422, r.text
    assert field in r.json()["error"]
    attack.survived(real)


@pytest.mark.attack("hostile JSON")
@pytest.mark.parametrize(
    "raw_body",
    [
        b'{"prompt": "\\ud800"}',
        b'{"prompt": "ok \\udfff end", "max_new_tokens": 2}',
        b'{"\\ud800": 1, "prompt": "hi"}',
        b'{"prompt": "hi", "max_new_tokens": "\\ud83d"}',
    ],
    ids=["lone-high", "lone-low-inside", "surrogate-key", "surrogate-in-int"],
)
def test_7_lone_surrogates_are_422(real: str, attack: Attack, raw_body: bytes) -> None:
    attack.tried()
    headers = {"Content-Type": "application/json"}
    r = attack.request(lambda: httpx.post(real + INFER, content=raw_body, headers=headers, timeout=30))
    assert r.status_code == 422, r.text
    json.dumps(r.json(), ensure_ascii=False).encode("utf-8")  # the answer itself is valid UTF-8
    attack.survived(real)


@pytest.mark.attack("hostile JSON")
@pytest.mark.parametrize(
    ("raw_body", "status", "says"),
    [
        (b'{"prompt": "hi", "max_tokens": 8}', 422, "max_tokens: unknown field"),
        (b'{"prompt": "hi", "max_new_tokens": 100000000000000000000000}', 422, "max_new_tokens"),
        (b'{"prompt": "a", "prompt": "b", "max_new_tokens": 1}', 200, ""),
        (b"[" * 20_000 + b"]" * 20_000, 400, "not valid JSON"),
        (b'{"prompt": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", 400, "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, 413, "the limit is 65536 bytes"),
        (b'{"prompt": "hi"}', 200, ""),
        (b"null", 422, "body"),
        (b'"just a string"', 422, "body"),
        (b"", 422, "body"),
        (b"\xff\xfe{}", 400, "not valid JSON"),
        (b'{"prompt": "hi"} trailing', 400, "not valid JSON"),
    ],
    ids=[
        "typo-field",
        "huge-int",
        "duplicate-key",
        "deep-array",
        "deep-field",
        "deep-and-big",
        "plain",
        "null",
        "string",
        "empty",
        "bad-utf8",
        "trailing",
    ],
)
def test_malformed_and_hostile_bodies_get_a_4xx_naming_the_problem(
    real: str, attack: Attack, raw_body: bytes, status: int, says: str
) -> None:
    attack.tried()
    headers = {"Content-Type": "application/json"}
    r = attack.request(lambda: httpx.post(real + INFER, content=raw_body, headers=headers, timeout=30))
    assert r.status_code == status, r.text[:300]
    assert says in r.json().get("error", ""), r.text[:300]
    attack.survived(real)


@pytest.mark.attack("Unicode edge cases")
@pytest.mark.parametrize(
    "prompt",
    [
        "\u0000",
        "\u200b",
        "\u200b\u200d\u2060",
        "\ufeff",
        "\uffff",
        "\u202e gnp.exe",
        "e" + "\u0301" * 2000,
        "👩‍👩‍👧‍👦" * 50,
        "你好",
        "分析数据",
        "\U0010ffff",
        "\r\n\t",
        "a\u0000b",
    ],
    ids=[
        "nul",
        "zwsp",
        "zero-widths",
        "bom",
        "nonchar",
        "rtl-override",
        "combining-2000",
        "zwj-emoji",
        "zh-hello",
        "zh-analyse",
        "last-codepoint",
        "controls",
        "embedded-nul",
    ],
)
def test_unicode_prompts_are_served_or_refused_never_crash(real: str, attack: Attack, prompt: str) -> None:
    attack.tried()
    r = attack.request(lambda: post(real, {"prompt": prompt, "max_new_tokens": 2}))
    assert r.status_code in (200, 422), r.text[:300]
    assert health(real)["breaker"]["consecutive_slow"] == 0
    attack.survived(real)


# ----- oversize -------------------------------------------------------------------------------------


@pytest.mark.attack("oversize")
def test_10_a_chunked_body_over_the_limit_is_413_saying_it_was_chunked(attack: Attack, engine: Counting) -> None:
    with serving(engine, max_body_bytes=1000) as url:
        attack.tried()

        def chunks() -> Iterator[bytes]:
            yield b'{"prompt": "'
            for _ in range(50):
                yield b"x" * 100

        r = attack.request(lambda: httpx.post(url + INFER, content=chunks(), timeout=30))
        assert r.status_code == 413
        message = r.json()["error"]
        assert message.startswith("request body (sent chunked, without a Content-Length) passed")
        assert message.endswith("bytes; the limit is 1000 bytes")
        attack.survived(url)


@pytest.mark.attack("oversize")
def test_a_declared_10_mb_body_is_413_before_it_is_read(attack: Attack, engine: Counting) -> None:
    with serving(engine) as url:
        attack.tried()
        head = post_bytes(INFER, b"")[:-4].replace(b"Content-Length: 0", b"Content-Length: 10485760") + b"\r\n\r\n"
        answer = raw(url, head + b"{" * 1000)
        assert answer.startswith(b"HTTP/1.1 413")
        assert b"request body is 10485760 bytes; the limit is 65536 bytes" in answer
        attack.survived(url)


# ----- slow clients ------------------------------------------------------------------------------


@pytest.mark.attack("slow clients")
@pytest.mark.parametrize(
    "partial",
    [b"", b"POST /api/npu/infer HTTP/1.1\r\nHost: x\r\n", b"GET /api/health HTTP/1.1\r\nHo"],
    ids=["silent", "headers-unfinished", "mid-header"],
)
def test_10_a_client_that_never_finishes_its_headers_is_dropped(
    attack: Attack, engine: Counting, partial: bytes
) -> None:
    with serving(engine, read_timeout_s=0.5) as url:
        attack.tried()
        start = time.monotonic()
        answer = raw(url, partial, timeout_s=10)
        assert time.monotonic() - start < 5, "the connection was held open"
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:200]
        attack.survived(url)


@pytest.mark.attack("slow clients")
def test_a_body_that_stalls_gets_408_and_others_are_served_meanwhile(attack: Attack, engine: Counting) -> None:
    with serving(engine, read_timeout_s=0.5) as url:
        attack.tried()
        with socket.create_connection(("127.0.0.1", port_of(url)), timeout=10) as sock:
            sock.sendall(post_bytes(INFER, b'{"prompt":')[:-10].replace(b"Content-Length: 10", b"Content-Length: 100"))
            sock.sendall(b'{"prompt":')
            assert attack.request(lambda: post(url, GOOD)).status_code == 200  # not blocked by the stall
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        attack.survived(url)


@pytest.mark.attack("slow clients")
def test_a_keep_alive_connection_with_a_half_sent_second_request_is_dropped(attack: Attack, engine: Counting) -> None:
    with serving(engine, read_timeout_s=0.5) as url:
        attack.tried()
        with socket.create_connection(("127.0.0.1", port_of(url)), timeout=10) as sock:
            body = json.dumps(GOOD).encode()
            sock.sendall(post_bytes(INFER, body).replace(b"Connection: close", b"Connection: keep-alive"))
            first = sock.recv(65536)
            assert first.startswith(b"HTTP/1.1 200")
            sock.sendall(b"POST /api/npu/infer HTTP/1.1\r\n")
            start = time.monotonic()
            rest = b""
            while chunk := sock.recv(65536):
                rest += chunk
            assert time.monotonic() - start < 5
        attack.survived(url)


# ----- disconnects at every phase -------------------------------------------------------------


def _partial(url: str, data: bytes, wait_s: float = 0.05) -> None:
    with socket.create_connection(("127.0.0.1", port_of(url)), timeout=10) as sock:
        sock.sendall(data)
        time.sleep(wait_s)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@pytest.mark.attack("disconnects")
@pytest.mark.parametrize("phase", ["mid-headers", "after-headers", "mid-body", "during-generation", "mid-stream"])
@pytest.mark.parametrize("path", [INFER, STREAM])
def test_a_client_hanging_up_at_any_phase_loses_nothing_and_leaves_the_queue_empty(
    attack: Attack, phase: str, path: str
) -> None:
    engine = Counting(prefill_ms=1, token_ms=3)
    body = json.dumps({"prompt": "hang up", "max_new_tokens": 200}).encode()
    whole = post_bytes(path, body)
    with serving(engine, warmup=0) as url:
        attack.tried()
        if phase == "mid-headers":
            _partial(url, whole[:20])
        elif phase == "after-headers":
            _partial(url, whole[: whole.index(b"\r\n\r\n") + 4])
        elif phase == "mid-body":
            _partial(url, whole[:-5])
        elif phase == "during-generation":
            _partial(url, whole, wait_s=0.1)
        else:
            disconnect_after_first_bytes(url, path, {"prompt": "hang up", "max_new_tokens": 200})
        assert wait_until(lambda: engine.active == 0)
        if phase == "during-generation" or (phase == "mid-stream" and path == STREAM):
            assert engine.produced[-1] < 200, "the engine kept generating for a client that had gone"
        assert wait_until(lambda: health(url)["queue"]["pending"] == 0)
        assert health(url)["breaker"]["state"] == "closed"
        attack.survived(url)


# ----- concurrency beyond the queue -----------------------------------------------------------


@pytest.mark.attack("concurrency beyond the queue")
@pytest.mark.parametrize("path", [INFER, STREAM])
def test_fifty_clients_on_a_queue_of_four_every_one_answered(attack: Attack, path: str) -> None:
    engine = Counting(prefill_ms=5, token_ms=1)
    with serving(engine, max_queue=4, warmup=0) as url:
        answers: list[int] = []
        errors: list[str] = []

        def one() -> None:
            try:
                answers.append(
                    attack.request(lambda: post(url, {"prompt": "many", "max_new_tokens": 8}, path)).status_code
                )
            except httpx.HTTPError as exc:
                errors.append(repr(exc))

        attack.tried(50)
        threads = [threading.Thread(target=one) for _ in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        assert len(answers) == 50
        assert set(answers) <= {200, 503}, answers
        assert 200 in answers
        assert 503 in answers
        assert wait_until(lambda: health(url)["queue"]["pending"] == 0)
        assert health(url)["queue"]["served"] == answers.count(200)
        attack.survived(url)


# ----- configuration -----------------------------------------------------------------------------


@pytest.mark.attack("server options")
def test_api_docs_are_served_on_loopback_only_unless_asked(attack: Attack, engine: Counting) -> None:
    from npuperf.server.config import ServerConfig

    attack.tried(3)
    assert ServerConfig(host="127.0.0.1").serves_docs
    assert not ServerConfig(host="0.0.0.0").serves_docs
    assert ServerConfig(host="0.0.0.0", docs=True).serves_docs
    with serving(engine, docs=False) as url:
        assert httpx.get(url + "/docs", timeout=10).status_code == 404
        assert httpx.get(url + "/openapi.json", timeout=10).status_code == 404
        attack.survived(url)


def _broken_model(tmp_path: Path, how: str) -> Path:
    model = tmp_path / "broken-model"
    if how == "missing":
        return model
    shutil.copytree(MODEL, model)
    if how == "truncated weights":
        (model / "model.onnx").write_bytes((model / "model.onnx").read_bytes()[:2000])
    elif how == "corrupt config":
        (model / "genai_config.json").write_text('{"model": ', encoding="utf-8")
    return model


@pytest.mark.attack("server options")
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--breaker-cooldown-s", "-1"], "--breaker-cooldown-s must be a number >= 0, got -1"),
        (["--breaker-ms", "nan"], "--breaker-ms must be a number > 0, got nan"),
        (["--queue-timeout-s", "inf"], "--queue-timeout-s must be a number > 0, got inf"),
        (["--read-timeout-s", "0"], "--read-timeout-s must be a number > 0, got 0"),
        (["--warmup", "-2"], "--warmup must be >= 0, got -2"),
    ],
)
def test_10_bad_server_options_are_one_line_naming_the_option(attack: Attack, args: list[str], says: str) -> None:
    attack.tried()
    proc = subprocess.run(
        [sys.executable, "-m", "npuperf.server", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"npuperf.server: {says}"


@pytest.mark.attack("server options")
@pytest.mark.parametrize("how", ["missing", "truncated weights", "corrupt config"])
def test_10_a_missing_or_corrupt_model_is_one_line_said_once(attack: Attack, tmp_path: Path, how: str) -> None:
    attack.tried()
    model = _broken_model(tmp_path, how)
    cmd = [sys.executable, "-m", "npuperf.server", "--port", "0", "--model", str(model)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert str(model) in lines[0] or model.name in lines[0]


# ----- breaker transitions under each class -------------------------------------------------------


class NulBlind(Counting):
    """A tokenizer that reads no NUL characters (a prompt of NULs is zero tokens, as on the real
    model), a context of 100 tokens, and "boom" makes the engine fail."""

    @property
    def info(self) -> Any:
        return dataclasses.replace(super().info, context_length=100)

    @property
    def tokenizer(self) -> Any:
        outer = super().tokenizer

        class Tokenizer:
            def encode(self, text: str) -> list[int]:
                return [i for i in outer.encode(text) if i != 0]

            def decode(self, ids: Any) -> str:
                return outer.decode(ids)

        return Tokenizer()

    def generate(self, prompt: str, max_new_tokens: int, on_token: Any = None) -> Any:
        if prompt == "boom":
            from npuperf.engines.base import EngineError

            raise EngineError("device lost")
        return super().generate(prompt, max_new_tokens, on_token)


TRIALS = {
    # what the half-open trial is: (its request, its expected status, the breaker's state after it)
    "fast": (lambda url: post(url, GOOD), 200, "closed"),
    "slow": (lambda url: post(url, {"prompt": "slow", "max_new_tokens": 2}), 200, "open"),
    "engine failure": (lambda url: post(url, {"prompt": "boom"}), 500, "open"),
    "zero-token prompt": (lambda url: post(url, {"prompt": "\u0000\u0000"}), 422, "half-open"),
    "invalid field": (lambda url: post(url, {"prompt": "hi", "max_new_tokens": 0}), 422, "open"),
    "unknown field": (lambda url: post(url, {"prompt": "hi", "max_tokens": 4}), 422, "open"),
    "over the context": (lambda url: post(url, {"prompt": "x" * 60, "max_new_tokens": 50}), 422, "half-open"),
    "stream hang-up": (
        lambda url: disconnect_after_first_bytes(url, STREAM, {"prompt": "x", "max_new_tokens": 300}),
        None,
        "half-open",
    ),
    "benchmark": (lambda url: httpx.get(url + BENCH, params={"runs": 2}, timeout=30), 200, "closed"),
}


@pytest.mark.attack("breaker transitions")
@pytest.mark.parametrize("trial", list(TRIALS))
def test_the_breaker_after_a_half_open_trial_of_each_kind(attack: Attack, trial: str) -> None:
    """An input error or a hang-up never decides the breaker: it stays ready for the next trial.
    The engine's own slowness or failure re-opens it; a fast trial closes it."""
    engine = NulBlind(prefill_ms=1, token_ms=2, burst_from=4, burst_to=6, burst=100)
    # calls 4 and 5 are the trip; a "slow" trial is the only later call on "slow" that is slow
    with serving(engine, breaker_ms=100, breaker_trip_after=2, breaker_cooldown_s=0.3) as url:
        trip(url, attack)
        time.sleep(0.35)
        if trial == "slow":
            engine.burst_to = engine.calls + 2  # the next call is slow again
        attack.tried()
        send, status, state = TRIALS[trial]
        answer = send(url) if status is None else attack.request(lambda: send(url))
        if status is not None:
            assert answer.status_code == status, answer.text
        assert wait_until(lambda: health(url)["queue"]["pending"] == 0)
        assert health(url)["breaker"]["state"] == state
        if state == "open":
            time.sleep(0.35)
        attack.survived(url)  # a fast request: the next trial closes it
        assert health(url)["breaker"]["state"] == "closed"
