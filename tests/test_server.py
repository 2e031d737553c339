"""The reference server over real HTTP (uvicorn on loopback), and the http engine against it."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import MODEL, ROOT, serving
from fakes import HtmlServer, SleepEngine
from npuperf.engines.base import EngineError, Generation, OnToken
from npuperf.engines.hf_tokenizer import HfTokenizer
from npuperf.engines.http import REPORTED_CLOCK, STREAM_CLOCK, HttpEngine
from npuperf.engines.ort_genai import OrtGenaiEngine
from npuperf.service.client import ServiceClient, ServiceError

SEED = '{"prompt":"你好","max_new_tokens":32,"temperature":0.7}'
TOKENIZER = MODEL / "tokenizer.json"


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    """The embedded model behind the reference server."""
    with serving(OrtGenaiEngine(MODEL), max_queue=8) as url:
        yield url


def post(url: str, body: Any = None, content: bytes | None = None, path: str = "/api/npu/infer") -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    return httpx.post(url + path, json=body, content=content, headers=headers, timeout=30)


# ----- the seed request --------------------------------------------------------------------


def test_seed_request_byte_for_byte_from_python(url: str) -> None:
    raw = SEED.encode("utf-8")
    assert raw[11:17] == "你好".encode()  # the UTF-8 bytes themselves, not \\u escapes
    r = post(url, content=raw)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["prompt_tokens"], body["new_tokens"], body["stop_reason"]) == (2, 32, "budget")
    assert body["temperature"] == 0.7
    assert body["timings"]["latency_ms"] > 0
    assert body["timings"]["server_ms"] >= body["timings"]["latency_ms"]
    assert isinstance(body["text"], str)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_seed_request_byte_for_byte_from_curl(url: str) -> None:
    proc = subprocess.run(
        ["curl", "-sS", "-X", "POST", "-H", "Content-Type: application/json", "--data-binary", SEED,
         "-w", "\n%{http_code}", f"{url}/api/npu/infer"],
        capture_output=True,
        timeout=60,
        check=True,
    )  # fmt: skip
    text, _, status = proc.stdout.decode("utf-8").rpartition("\n")
    assert status == "200"
    assert json.loads(text)["new_tokens"] == 32


# ----- validation: the right 4xx, and the service keeps serving ----------------------------


BAD = [
    ({"max_new_tokens": 8}, 422, "prompt: Field required"),
    ({"prompt": ""}, 422, "prompt: String should have at least 1 character"),
    ({"prompt": "   "}, 422, "prompt: Value error, must not be blank"),
    ({"prompt": 5}, 422, "prompt: Input should be a valid string"),
    ({"prompt": "你好", "max_new_tokens": "32"}, 422, "max_new_tokens: Input should be a valid integer"),
    ({"prompt": "你好", "max_new_tokens": 0}, 422, "max_new_tokens: Input should be greater than or equal to 1"),
    ({"prompt": "你好", "max_new_tokens": 5000}, 422, "max_new_tokens: Input should be less than or equal to 1024"),
    ({"prompt": "你好", "temperature": -0.1}, 422, "temperature: Input should be greater than or equal to 0"),
    ({"prompt": "你好", "temperature": 2.5}, 422, "temperature: Input should be less than or equal to 2"),
    ({"prompt": "你好", "temperature": True}, 422, "temperature: Input should be a valid number"),
    (["你好"], 422, "Input should be a valid dictionary"),
]


@pytest.mark.parametrize(("body", "status", "message"), BAD)
def test_bad_input_gets_422_naming_the_field(url: str, body: Any, status: int, message: str) -> None:
    r = post(url, body)
    assert r.status_code == status
    assert message in r.json()["error"]


def test_non_json_body_is_400(url: str) -> None:
    r = post(url, content=b"prompt=hello")
    assert r.status_code == 400
    assert "body: not valid JSON" in r.json()["error"]


def test_oversized_body_is_413_with_the_limit(url: str) -> None:
    r = post(url, {"prompt": "a" * 70_000})
    assert r.status_code == 413
    assert "the limit is 65536 bytes" in r.json()["error"]


@pytest.mark.parametrize("path", ["/api/npu/infer", "/api/npu/infer/stream"])
def test_prompt_over_the_context_is_422_with_the_limit(url: str, path: str) -> None:
    r = post(url, {"prompt": "分析数据 " * 1500, "max_new_tokens": 64}, path=path)
    assert r.status_code == 422
    assert "over the model's context of 2048 tokens" in r.json()["error"]
    assert r.json()["context_length"] == 2048


def test_service_keeps_serving_after_every_bad_request(url: str) -> None:
    for body, _status, _message in BAD:
        post(url, body)
    post(url, content=b"\xff\xfe not even utf-8")
    post(url, {"prompt": "a" * 70_000})
    assert httpx.get(url + "/api/health").json()["status"] == "ok"
    assert post(url, content=SEED.encode()).status_code == 200


# ----- stream, benchmark, health -------------------------------------------------------------


def test_stream_sends_a_token_event_per_token_then_done(url: str) -> None:
    with httpx.stream("POST", url + "/api/npu/infer/stream", json={"prompt": "你好", "max_new_tokens": 5}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line.split(":", 1)[1].strip() for line in r.iter_lines() if line.startswith("event:")]
    assert events == ["token"] * 5 + ["done"]


def test_benchmark_endpoint_summarises_in_process_runs(url: str) -> None:
    r = httpx.get(url + "/api/npu/benchmark", params={"max_new_tokens": 8, "runs": 3}, timeout=30)
    body = r.json()
    assert body["runs"] == 3
    assert body["new_tokens"] == [8, 8, 8]
    assert len(body["samples"]["latency_ms"]) == 3
    assert body["latency_ms"]["min"] <= body["latency_ms"]["median"] <= body["latency_ms"]["max"]
    assert "in-process" in body["clock"]
    bad = httpx.get(url + "/api/npu/benchmark", params={"runs": 0})
    assert bad.status_code == 422
    assert "runs: Input should be greater than or equal to 1" in bad.json()["error"]


def test_health_names_engine_model_context_breaker_and_queue(url: str) -> None:
    h = httpx.get(url + "/api/health").json()
    assert (h["engine"], h["model"], h["context_length"]) == ("ort-genai", "tiny-qwen2", 2048)
    assert h["breaker"]["state"] == "closed"
    assert h["breaker"]["threshold_ms"] == 2000
    assert h["queue"]["max"] == 8


# ----- the http engine against it ----------------------------------------------------------


def test_http_engine_streams_client_side_token_times(url: str) -> None:
    engine = HttpEngine(url, TOKENIZER)
    engine.load()
    g = engine.generate("你好", 16)
    assert (g.new_tokens, g.prompt_tokens, g.clock) == (16, 2, STREAM_CLOCK)
    assert g.device["server_latency_ms"] > 0
    assert g.device["http_overhead_ms"] == pytest.approx(g.latency_ms - g.device["server_latency_ms"])
    assert engine.info.engine == "http"
    assert engine.info.provider == "ort-genai/cpu"
    assert engine.info.context_length == 2048
    engine.close()


def test_http_engine_without_stream_takes_ttft_from_the_server(url: str) -> None:
    engine = HttpEngine(url, TOKENIZER, stream=False)
    engine.load()
    g = engine.generate("你好", 8)
    assert g.clock == REPORTED_CLOCK
    assert g.latency_ms >= g.device["server_latency_ms"]
    assert g.ttft_ms == pytest.approx(g.device["server_ttft_ms"], abs=1e-3)
    engine.close()


def test_concurrent_clients_lose_nothing(url: str) -> None:
    statuses: list[int] = []
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=url, timeout=30) as c:
            for _ in range(25):
                s = c.post("/api/npu/infer", json={"prompt": "你好", "max_new_tokens": 8}).status_code
                with lock:
                    statuses.append(s)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 100


# ----- queue, breaker and failures, with a controllable engine -----------------------------


class Failing(SleepEngine):
    """Fails before any token for "boom", after the first token for "late"."""

    def generate(self, prompt: str, max_new_tokens: int, on_token: OnToken | None = None) -> Generation:
        if prompt == "boom":
            raise EngineError("the runtime crashed on purpose")
        if prompt == "late":
            if on_token is not None:
                on_token()
            raise EngineError("the runtime crashed after one token")
        return super().generate(prompt, max_new_tokens, on_token)


def test_engine_failure_is_500_and_the_service_keeps_serving() -> None:
    with serving(Failing(prefill_ms=0.5, token_ms=0.1)) as url:
        r = post(url, {"prompt": "boom", "max_new_tokens": 4})
        assert r.status_code == 500
        assert r.json()["error"] == "engine failed: the runtime crashed on purpose"
        assert post(url, {"prompt": "ok", "max_new_tokens": 4}).status_code == 200


def test_full_queue_is_503_with_retry_after() -> None:
    with serving(SleepEngine(prefill_ms=150, token_ms=1), max_queue=2, warmup=0) as url:
        results: list[httpx.Response] = []

        def one() -> None:
            results.append(post(url, {"prompt": "hi", "max_new_tokens": 2}))

        threads = [threading.Thread(target=one) for _ in range(5)]
        for t in threads:
            t.start()
            time.sleep(0.01)
        for t in threads:
            t.join()
        codes = sorted(r.status_code for r in results)
        assert codes.count(200) >= 2
        assert 503 in codes
        refused = next(r for r in results if r.status_code == 503)
        assert refused.headers["Retry-After"] == "1"
        assert "queue holds 2" in refused.json()["error"]


def test_queue_timeout_is_503() -> None:
    with serving(SleepEngine(prefill_ms=300, token_ms=1), queue_timeout_s=0.05, warmup=0) as url:
        results: list[httpx.Response] = []
        threads = [
            threading.Thread(target=lambda: results.append(post(url, {"prompt": "hi", "max_new_tokens": 1})))
            for _ in range(2)
        ]
        for t in threads:
            t.start()
            time.sleep(0.02)
        for t in threads:
            t.join()
        assert sorted(r.status_code for r in results) == [200, 503]
        assert "waited 0.05 s in the queue" in next(r for r in results if r.status_code == 503).json()["error"]


def test_breaker_opens_after_slow_requests_then_half_opens_and_closes() -> None:
    # calls 1-3 are load_and_warm's (cold + 2 warm-up); calls 4 and 5 are slow, then fast again
    engine = SleepEngine(prefill_ms=1, token_ms=0.1, burst_from=4, burst_to=6, burst=60)
    with serving(engine, breaker_ms=30, breaker_trip_after=2, breaker_cooldown_s=0.5) as url:
        body = {"prompt": "hi", "max_new_tokens": 2}
        assert [post(url, body).status_code for _ in range(2)] == [200, 200]
        refused = post(url, body)
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "1"
        assert "circuit breaker open: 2 consecutive requests over 30 ms" in refused.json()["error"]
        assert httpx.get(url + "/api/health").json()["status"] == "degraded"
        time.sleep(0.6)
        assert post(url, body).status_code == 200  # the half-open trial, fast: closes
        assert httpx.get(url + "/api/health").json()["breaker"]["state"] == "closed"


# ----- the http engine's errors ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connection_refused_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ServiceError, match=rf"GET {url}/api/health: cannot connect .*is the service running at {url}"):
        HttpEngine(url, TOKENIZER).load()


def test_timeout_names_the_limit() -> None:
    with serving(SleepEngine(prefill_ms=400, token_ms=1), warmup=0) as url:
        engine = HttpEngine(url, TOKENIZER, stream=False, timeout_s=0.1)
        engine.load()
        with pytest.raises(ServiceError, match=r"POST .*/api/npu/infer: no answer within 0.1 s"):
            engine.generate("hi", 1)
        engine.close()


def test_5xx_carries_status_and_body_excerpt() -> None:
    with serving(Failing(prefill_ms=0.5, token_ms=0.1)) as url:
        engine = HttpEngine(url, TOKENIZER, stream=False)
        engine.load()
        with pytest.raises(
            ServiceError, match=r"answered 500: .*engine failed: the runtime crashed on purpose"
        ) as info:
            engine.generate("boom", 2)
        assert info.value.status == 500
        streaming = HttpEngine(url, TOKENIZER)
        streaming.load()
        # it fails before its first token, so the stream endpoint answers 500 itself
        with pytest.raises(ServiceError, match=r"stream answered 500: .*engine failed") as streamed:
            streaming.generate("boom", 2)
        assert streamed.value.status == 500
        with pytest.raises(ServiceError, match=r"error mid-stream: engine failed: the runtime crashed after one"):
            streaming.generate("late", 2)
        engine.close()
        streaming.close()


def test_non_json_answer_is_named_with_content_type_and_excerpt() -> None:
    with HtmlServer() as page, pytest.raises(ServiceError, match=r"answered 200 with non-JSON \(text/html\): .*nginx"):
        HttpEngine(page.url, TOKENIZER).load()


def test_a_url_without_scheme_is_rejected() -> None:
    with pytest.raises(ValueError, match="--backend-url: 'localhost:8000' is not an http"):
        HttpEngine("localhost:8000", TOKENIZER).load()


# ----- the command line ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "nope"], "unknown engine 'nope'"),
        (["--port", "70000"], "port must be 0..65535"),
        (["--max-queue", "0"], "--max-queue must be >= 1"),
    ],
)
def test_cli_errors_exit_2_with_the_reason(args: list[str], message: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "npuperf.server", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert message in proc.stderr


@pytest.mark.slow
def test_cli_serves_the_embedded_model_on_a_free_loopback_port(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "npuperf.server", "--port", "0"]
    with subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert "model tiny-qwen2 ready; listening on http://127.0.0.1:" in line
            url = line.strip().rsplit(" ", 1)[-1]
            assert post(url, content=SEED.encode()).status_code == 200
        finally:
            proc.terminate()
            # uvicorn shuts down gracefully, then re-raises the signal it caught
            assert proc.wait(timeout=30) in (0, -signal.SIGTERM)


def test_a_service_without_the_stream_endpoint_says_to_turn_streaming_off() -> None:
    with HtmlServer() as page:
        engine = HttpEngine(page.url, TOKENIZER)
        engine.client = ServiceClient(page.url)  # skip load(): the page has no /api/health JSON
        engine._tokenizer = HfTokenizer(TOKENIZER)
        with pytest.raises(ServiceError, match=r"answered 501: .*run with --http-stream false"):
            engine.generate("hi", 2)
        engine.close()


def test_prompt_text_check_names_blank_and_lone_surrogates() -> None:
    from npuperf.server.requests import check_prompt_text

    assert check_prompt_text("你好") == "你好"
    with pytest.raises(ValueError, match="must not be blank"):
        check_prompt_text(" \t\n")
    with pytest.raises(ValueError, match="a lone surrogate at character 3"):
        check_prompt_text("abc\ud800")
