"""Pure decisions about a backend service, from what the http client measured.

No I/O and no pytest: the measurements come from npuperf.service_client, the suite's
service section presents and enforces the Checks. The API contract behind them is docs/api.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from npuperf.judge.stats import Summary, median, percentile
from npuperf.judge.verdict import Check, passed_if
from npuperf.service.api import SEED_REQUEST
from npuperf.service.client import Answer, BadInput, Load

# The benchmark endpoint and the client measure the same requests: the client's median may
# exceed the server's in-process median by the HTTP path, and either may drift by noise.
AGREEMENT_SLACK_MS = 10.0


def over_context(context_length: int) -> BadInput:
    """A prompt of at least ``context_length`` tokens (each repetition encodes to one or more)."""
    body = ('{"prompt":"' + "分析数据 " * context_length + '","max_new_tokens":8}').encode()
    return BadInput("prompt over the model's context", body, 422, str(context_length), any_4xx=True)


BAD_INPUTS: tuple[BadInput, ...] = (
    BadInput("missing prompt", b'{"max_new_tokens":8}', 422, "prompt"),
    BadInput("empty prompt", b'{"prompt":"","max_new_tokens":8}', 422, "prompt"),
    BadInput("prompt of the wrong type", b'{"prompt":42,"max_new_tokens":8}', 422, "prompt"),
    BadInput("max_new_tokens as a string", b'{"prompt":"hi","max_new_tokens":"8"}', 422, "max_new_tokens"),
    BadInput("max_new_tokens = 0", b'{"prompt":"hi","max_new_tokens":0}', 422, "max_new_tokens"),
    BadInput("max_new_tokens = 10^9", b'{"prompt":"hi","max_new_tokens":1000000000}', 422, "max_new_tokens"),
    BadInput("temperature = -1", b'{"prompt":"hi","max_new_tokens":8,"temperature":-1}', 422, "temperature"),
    BadInput("temperature = 100", b'{"prompt":"hi","max_new_tokens":8,"temperature":100}', 422, "temperature"),
    BadInput("temperature as a string", b'{"prompt":"hi","max_new_tokens":8,"temperature":"hot"}', 422, "temperature"),
    BadInput("a JSON list", b'["hi"]', 422, ""),
    BadInput("not JSON", b"prompt=hi", 400, ""),
    BadInput("a 1 MiB body", b'{"prompt":"' + b"a" * (1 << 20) + b'"}', 413, ""),
)


def health(body: Mapping[str, object] | None, url: str) -> Check:
    """GET /api/health must answer a JSON object whose status is "ok"."""
    status = None if body is None else body.get("status")
    ok = status == "ok"
    detail = (
        f"{body.get('engine', '?')}/{body.get('provider', '?')}, model {body.get('model', '?')}"
        if body
        else "no JSON object"
    )
    return passed_if(
        "service health",
        ok,
        1.0 if ok else 0.0,
        1.0,
        f"{url}/api/health: status {status!r} ({detail})" + ("" if ok else "; expected 'ok'"),
    )


def bad_inputs(expected: Sequence[BadInput], answers: Sequence[Answer], serving_after: bool) -> Check:
    """Every bad request gets its 4xx naming the field, and the service still serves afterwards."""
    wrong = []
    for want, got in zip(expected, answers, strict=True):
        if not want.accepts(got.status):
            expected_text = "a 4xx" if want.any_4xx else str(want.status)
            wrong.append(f"{want.label}: {got.status}, expected {expected_text} ({got.message[:120]!r})")
        elif want.names and want.names not in got.message:
            wrong.append(f"{want.label}: {got.status} but the message does not name {want.names!r}: {got.message!r}")
    if not serving_after:
        wrong.append("the service did not answer a good request after the bad ones")
    ok = not wrong
    return passed_if(
        "bad inputs",
        ok,
        float(len(expected) - len(wrong)),
        float(len(expected)),
        (
            f"{len(expected)} bad requests each got the right 4xx naming the field; the service kept serving"
            if ok
            else f"{len(wrong)} problem(s) with bad input handling: " + "; ".join(wrong)
        ),
    )


def concurrency(load: Load) -> Check:
    """Every request answered, none with a 5xx (or any error), under concurrent clients."""
    answered = [s for s in load.statuses if s is not None]
    server_errors = [s for s in answered if s >= 500]
    other = [s for s in answered if s != 200 and s < 500]
    lost = load.expected - len(answered)
    ok = not lost and not server_errors and not other
    lat = Summary.of(load.latencies_ms) if load.latencies_ms else None
    figures = (
        f"{len(answered) / load.elapsed_s:.1f} requests/s, latency median {lat.median:.1f} ms, p90 {lat.p90:.1f} ms, "
        f"max {lat.max:.1f} ms"
        if lat and load.elapsed_s > 0
        else "no latencies"
    )
    problems = []
    if lost:
        problems.append(f"{lost} request(s) lost ({'; '.join(load.errors[:3]) or 'no answer'})")
    if server_errors:
        problems.append(f"{len(server_errors)} answered 5xx ({sorted(set(server_errors))})")
    if other:
        problems.append(f"{len(other)} answered {sorted(set(other))}")
    return passed_if(
        "concurrency",
        ok,
        float(len(answered)),
        float(load.expected),
        (
            f"{load.clients} clients x {load.requests_per_client} requests: "
            + ("all answered 200" if ok else ", ".join(problems))
            + f"; {figures}"
        ),
    )


def agreement(server_median_ms: float, client_median_ms: float, tolerance: float, label: str) -> Check:
    """The benchmark endpoint's in-process median and the client's median over HTTP agree.

    Agreement means ``|client - server| <= tolerance x server + AGREEMENT_SLACK_MS``.
    """
    gap = client_median_ms - server_median_ms
    allowed = tolerance * server_median_ms + AGREEMENT_SLACK_MS
    ok = abs(gap) <= allowed
    return passed_if(
        "benchmark agreement",
        ok,
        gap,
        allowed,
        (
            f"{label}: /api/npu/benchmark median {server_median_ms:.2f} ms (server, in-process) vs "
            f"{client_median_ms:.2f} ms measured by the client over HTTP: {gap:+.2f} ms, "
            f"{'within' if ok else 'OUTSIDE'} the agreement of {tolerance:.0%} + {AGREEMENT_SLACK_MS:g} ms "
            f"(+-{allowed:.2f} ms)"
        ),
    )


def overhead(overheads_ms: Sequence[float], limit_ms: float, label: str) -> Check:
    """HTTP overhead (client latency - server in-process latency) per request: median under the limit."""
    # signed: a request the server times past its last streamed token (detokenizing after
    # it) has a client latency below the server's, so its overhead is below zero
    mid, p90 = median(overheads_ms), percentile(overheads_ms, 90)
    ok = mid <= limit_ms
    below = " (below 0: the server's clock ran past the last streamed token)" if min(overheads_ms) < 0 else ""
    return passed_if(
        "http overhead",
        ok,
        mid,
        limit_ms,
        (
            f"HTTP overhead (client latency - server in-process latency) over {len(overheads_ms)} requests "
            f"({label}): median {mid:.2f} ms, p90 {p90:.2f} ms, min {min(overheads_ms):.2f} ms{below}, "
            f"max {max(overheads_ms):.2f} ms; {'within' if ok else 'OVER'} the {limit_ms:g} ms limit"
        ),
    )


def seed_request(answers: Mapping[str, tuple[int, Mapping[str, object] | None]], new_tokens: int) -> Check:
    """The team's seed request answered 200 with ``new_tokens`` tokens, from every client tried."""
    wrong = []
    for client, (status, body) in answers.items():
        if status != 200:
            wrong.append(f"{client}: status {status}")
        elif body is None:
            wrong.append(f"{client}: no JSON answer")
        elif body.get("new_tokens") not in (None, new_tokens):
            wrong.append(f"{client}: {body.get('new_tokens')} new tokens, expected {new_tokens}")
    ok = not wrong and bool(answers)
    return passed_if(
        "seed request",
        ok,
        float(len(answers) - len(wrong)),
        float(len(answers)),
        (
            f"seed request {SEED_REQUEST.decode()} ({len(SEED_REQUEST)} bytes, UTF-8) answered 200 from "
            + ", ".join(answers)
            if ok
            else "seed request failed: " + "; ".join(wrong or ["no client ran"])
        ),
    )
