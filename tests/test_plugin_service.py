"""The service section of perf_tests/test_backend.py end to end, through pytester.

The service under test is the reference server in a thread of this process (with the
sleeping fake engine, or the real embedded model), or the suite's own child process.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from conftest import MODEL, copy_suite, serving
from fakes import HtmlServer, SleepEngine
from npuperf.server.launch import listening_socket

INI = f"""
[pytest]
addopts = -p npuperf.plugin -p no:cacheprovider -m service
npuperf_engine = fake
npuperf_model = prefill_ms=2,token_ms=0.5
npuperf_token_budgets = 4,8
npuperf_prompt_lengths = 8
npuperf_team_prompts = none
npuperf_repetitions = 3
npuperf_warmup = 1
npuperf_http_tokenizer = {MODEL / "tokenizer.json"}
npuperf_http_clients = 3
npuperf_http_requests = 5
npuperf_results_json = reports/results.json
filterwarnings = default
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    return copy_suite(pytester, monkeypatch, INI)


@pytest.fixture
def fake_service() -> Iterator[str]:
    with serving(SleepEngine(prefill_ms=1, token_ms=0.2)) as url:
        yield url


def run(suite: pytest.Pytester, *args: str) -> pytest.RunResult:
    return suite.runpytest("perf_tests", "-p", "no:randomly", "-rs", *args)


def test_every_service_check_passes_against_a_healthy_service(suite: pytest.Pytester, fake_service: str) -> None:
    result = run(suite, f"--backend-url={fake_service}")
    # health, 2 budgets over HTTP, benchmark agreement, bad inputs, concurrency, overhead, seed request
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines(
        [
            f"*OK  {fake_service}/api/health: status 'ok' (fake/sleep, model sleepy)",
            "*OK  8 tokens / '你好', 3 runs each: /api/npu/benchmark median * ms (server, in-process) vs * ms "
            "measured by the client over HTTP: * within the agreement of 25% + 10 ms*",
            "*OK  12 bad requests each got the right 4xx naming the field; the service kept serving",
            "*OK  3 clients x 5 requests: all answered 200; * requests/s, latency median * ms*",
            "*OK  HTTP overhead (client latency - server in-process latency) over 6 requests (streamed): median *",
            '*OK  seed request {"prompt":"你好","max_new_tokens":32,"temperature":0.7} (57 bytes, UTF-8) answered 200*',
            "over HTTP (client clock; server = its in-process latency; overhead = client - server):",
            "*tokens  median ms  p90 ms  TTFT ms  server ms  overhead ms",
        ]
    )
    doc = json.loads((suite.path / "reports" / "results.json").read_text(encoding="utf-8"))
    service = doc["session"]["service"]
    assert service["url"] == fake_service
    assert service["started_by_suite"] is False
    assert [h["new_tokens"] for h in service["http"]] == [4, 8]
    assert service["http"][0]["runtime_reported"]["server_latency_ms"] > 0


def test_a_dead_service_fails_every_check_naming_the_url(suite: pytest.Pytester) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    result = run(suite, f"--backend-url={url}")
    result.assert_outcomes(errors=8)
    result.stdout.fnmatch_lines([f"*service {url}: GET {url}/api/health: cannot connect*is the service running*"])


def test_a_misbehaving_service_fails_with_status_and_body_excerpt(suite: pytest.Pytester) -> None:
    with HtmlServer(status=502, page=b"<html>502 Bad Gateway</html>") as page:
        result = run(suite, f"--backend-url={page.url}", "-k", "health")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*/api/health answered 502: '<html>502 Bad Gateway</html>'*"])


def test_a_slow_service_fails_the_http_budget_with_the_number(suite: pytest.Pytester) -> None:
    with serving(SleepEngine(prefill_ms=25, token_ms=1)) as url:
        result = run(suite, f"--backend-url={url}", "--latency-budget-ms=10", "-k", "http_latency")
    result.assert_outcomes(failed=2)
    result.stdout.re_match_lines([r".*4 tokens / 2-token prompt over HTTP: median latency \d+\.\d ms over the 10 ms"])


def test_no_backend_url_with_an_engine_the_server_cannot_serve_says_what_to_do(suite: pytest.Pytester) -> None:
    result = run(suite, "-k", "health")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*the reference server serves ort-genai, genie, not --engine 'fake'; give --backend-url of a running service"]
    )


def test_a_bad_backend_url_is_a_usage_error(suite: pytest.Pytester) -> None:
    result = run(suite, "--backend-url=localhost:8000")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--backend-url: 'localhost:8000' is not an http(s) URL*"])


def test_the_server_socket_asks_for_tcp_so_asyncio_sets_nodelay() -> None:
    # A socket of protocol 0 left Nagle on: each keep-alive answer waited ~40 ms for an ACK.
    with listening_socket("127.0.0.1", 0) as sock:
        assert sock.proto == socket.IPPROTO_TCP


@pytest.mark.slow
def test_without_backend_url_the_suite_starts_and_stops_the_reference_server(suite: pytest.Pytester) -> None:
    result = run(suite, "--engine=ort-genai", f"--model={MODEL}")
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines(
        [
            "*OK  http://127.0.0.1:*/api/health: status 'ok' (ort-genai/cpu, model tiny-qwen2)",
            "*OK  13 bad requests each got the right 4xx naming the field; the service kept serving",
            "*service: the reference server (python -m npuperf.server) on http://127.0.0.1:*, started by the suite*",
        ]
    )
    doc = json.loads((suite.path / "reports" / "results.json").read_text(encoding="utf-8"))
    url = doc["session"]["service"]["url"]
    assert doc["session"]["service"]["started_by_suite"] is True
    with pytest.raises(ConnectionRefusedError):  # stopped with the session
        socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=2).close()


def test_the_service_section_runs_after_every_latency_case(suite: pytest.Pytester) -> None:
    result = run(suite, "-m", "", "--collect-only", "-q")
    ids = [line for line in result.outlines if "::" in line]
    first_service = next(i for i, line in enumerate(ids) if "test_service_health" in line)
    assert all("test_latency.py" not in line for line in ids[first_service:])
    assert any("test_grid_latency_vs_baseline" in line for line in ids[:first_service])


def test_the_whole_latency_grid_runs_over_http_with_engine_http(suite: pytest.Pytester, fake_service: str) -> None:
    result = run(suite, "-m", "not npu and not service", "--engine=http", f"--backend-url={fake_service}")
    # 2 latency cases + load + cold call; the grid test skips without a baseline
    result.assert_outcomes(passed=4, skipped=1, warnings=2)
    result.stdout.fnmatch_lines(["*engine http (fake/sleep), model sleepy*", "t4-p8 *4 *", "t8-p8 *8 *"])
    doc = json.loads((suite.path / "reports" / "results.json").read_text(encoding="utf-8"))
    assert doc["environment"]["Timing source"] == "client perf_counter_ns over HTTP (server-sent token events)"
    assert doc["cases"][0]["runtime_reported"]["server_latency_ms"] > 0


def test_engine_http_without_backend_url_is_a_usage_error(suite: pytest.Pytester) -> None:
    result = run(suite, "--engine=http")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--engine http: needs --backend-url, e.g. --backend-url http://127.0.0.1:8000*"])
