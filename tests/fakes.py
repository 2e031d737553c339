"""Test doubles: an engine that sleeps instead of computing, with a character tokenizer.

Used by the plugin tests (pytester) to make a run slower, faster or failing on demand
without a model. NPUPERF_FAKE_SLOWDOWN (a factor, default 1) scales every sleep, so a
run can be made slower without changing the engine's identity (and so its baseline key).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from npuperf.engines.base import (
    EngineInfo,
    EngineOptions,
    EngineUnavailable,
    Generation,
    OnToken,
    phases_of,
    register_engine,
)


class CharTokenizer:
    """One token per character: exact and reversible."""

    def encode(self, text: str) -> Sequence[int]:
        return [ord(c) for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(chr(i) for i in ids)


class SleepEngine:
    """Prefill sleeps ``prefill_ms``, each token ``token_ms``.

    Every ``slow_every``-th call adds ``spike_ms``; calls numbered ``burst_from`` up to
    (not including) ``burst_to`` run ``burst`` times slower (a passing burst of load).
    """

    def __init__(
        self,
        prefill_ms: float = 2.0,
        token_ms: float = 0.5,
        load_s: float = 0.0,
        spike_ms: float = 0.0,
        slow_every: int = 0,
        stop_after: int | None = None,
        burst_from: int = 0,
        burst_to: int = 0,
        burst: float = 1.0,
    ) -> None:
        self.prefill_ms, self.token_ms, self.load_s = prefill_ms, token_ms, load_s
        self.spike_ms, self.slow_every, self.stop_after = spike_ms, slow_every, stop_after
        self.burst_from, self.burst_to, self.burst = burst_from, burst_to, burst
        self.calls = 0
        self.loaded = False
        self.closed = False
        self._tok = CharTokenizer()

    @property
    def info(self) -> EngineInfo:
        return EngineInfo(
            engine="fake",
            provider="sleep",
            versions={"fake": "1"},
            model_id="sleepy",
            model_sha256="0" * 64,
        )

    @property
    def tokenizer(self) -> CharTokenizer:
        return self._tok

    def load(self) -> None:
        time.sleep(self.load_s * _slowdown())
        self.loaded = True

    def generate(self, prompt: str, max_new_tokens: int, on_token: OnToken | None = None) -> Generation:
        self.calls += 1
        factor = _slowdown() * (self.burst if self.burst_from <= self.calls < self.burst_to else 1.0)
        submit = time.perf_counter_ns()
        extra = self.spike_ms if self.slow_every and self.calls % self.slow_every == 0 else 0.0
        time.sleep((self.prefill_ms + extra) / 1000 * factor)
        count = max_new_tokens if self.stop_after is None else min(self.stop_after, max_new_tokens)
        stamps = []
        for _ in range(count):
            time.sleep(self.token_ms / 1000 * factor)
            if on_token is not None:
                on_token()
            stamps.append(time.perf_counter_ns())
        return Generation(
            prompt_tokens=len(prompt),
            requested_new_tokens=max_new_tokens,
            submit_ns=submit,
            token_ns=tuple(stamps),
            stop_reason="budget" if count == max_new_tokens else "eos",
            phases=phases_of(submit, [("prefill", stamps[0]), ("decode", stamps[-1])]) if stamps else {},
        )

    def close(self) -> None:
        self.closed = True


class ClockEngine(SleepEngine):
    """SleepEngine's workload on a virtual clock: no sleeping, the same figures every run.

    Each call advances an internal nanosecond counter by prefill and per-token times with a
    small jitter that depends only on the call number, so results files and baselines made
    by two runs are identical (tests/test_golden_outputs.py).
    """

    def __init__(
        self,
        prefill_ms: float = 2.0,
        token_ms: float = 0.5,
        burst_from: int = 0,
        burst_to: int = 0,
        burst: float = 1.0,
        tokenize_ms: float = 0.0,
        setup_ms: float = 0.0,
        detokenize_ms: float = 0.0,
    ) -> None:
        super().__init__(
            prefill_ms=prefill_ms, token_ms=token_ms, burst_from=burst_from, burst_to=burst_to, burst=burst
        )
        self.tokenize_ms, self.setup_ms, self.detokenize_ms = tokenize_ms, setup_ms, detokenize_ms
        self._now = 1_000_000_000

    @property
    def info(self) -> EngineInfo:
        # NPUPERF_FAKE_VERSION plays a runtime upgrade; NPUPERF_FAKE_SLOWDOWN scales its times
        version = os.environ.get("NPUPERF_FAKE_VERSION", "1")
        return EngineInfo(
            engine="fake-clock",
            provider="virtual",
            versions={"fake": version},
            model_id="clocked",
            model_sha256="1" * 64,
        )

    def load(self) -> None:
        self.loaded = True

    def generate(self, prompt: str, max_new_tokens: int, on_token: OnToken | None = None) -> Generation:
        self.calls += 1
        jitter_ns = (self.calls * 7919) % 13 * 10_000  # 0..0.12 ms, deterministic
        submit = self._now
        factor = _slowdown() * (self.burst if self.burst_from <= self.calls < self.burst_to else 1.0)
        tokenized = submit + int(self.tokenize_ms * 1e6)
        ready = tokenized + int(self.setup_ms * 1e6)
        t = ready + int(self.prefill_ms * 1e6 * factor) + jitter_ns + len(prompt) * 1_000
        stamps = []
        for i in range(max_new_tokens):
            t += int(self.token_ms * 1e6 * factor) + (i % 3) * 1_000
            stamps.append(t)
            if on_token is not None:
                on_token()
        end = t + int(self.detokenize_ms * 1e6)
        self._now = end + 1_000_000
        marks = [("tokenize", tokenized), ("setup", ready), ("prefill", stamps[0]), ("decode", t), ("detokenize", end)]
        return Generation(
            prompt_tokens=len(prompt),
            requested_new_tokens=max_new_tokens,
            submit_ns=submit,
            token_ns=tuple(stamps),
            stop_reason="budget",
            end_ns=end,
            phases=phases_of(submit, marks),
        )


def _slowdown() -> float:
    return float(os.environ.get("NPUPERF_FAKE_SLOWDOWN", "1"))


def _missing(options: EngineOptions) -> SleepEngine:
    raise EngineUnavailable("missing-runtime", "cannot import fake_runtime", "pip install fake-runtime")


def sleeping(options: EngineOptions) -> SleepEngine:
    """The sleeping fake from a module-level factory: a worker process can import it."""
    return SleepEngine(**_params(Path(options.model).name))


def register() -> None:
    # lambdas: a worker process cannot import them, so these are measured in the test's process
    register_engine("fake", lambda options: SleepEngine(**_params(Path(options.model).name)))
    register_engine("missing-runtime", _missing)
    register_engine("fake-clock", lambda options: ClockEngine(**_params(Path(options.model).name)))
    # importable: measured in fresh worker processes, as the built-in engines are
    register_engine("fake-proc", sleeping)


_INTS = ("slow_every", "stop_after", "burst_from", "burst_to")


def _params(spec: str) -> dict[str, float]:
    """``--model`` for the fake names its parameters, e.g. ``prefill_ms=5,token_ms=1``
    (the plugin resolves it against the rootdir, so only the last path part counts)."""
    out: dict[str, float] = {}
    for part in filter(None, spec.split(",")):
        key, _, value = part.partition("=")
        out[key.strip()] = int(value) if key.strip() in _INTS else float(value)
    return out


class HtmlServer:
    """A loopback HTTP server that answers every GET with an HTML page (not the API): a
    misconfigured proxy or another app on the port. Use as a context manager; ``url``."""

    def __init__(self, status: int = 200, page: bytes = b"<html><body>Welcome to nginx!</body></html>") -> None:
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self._httpd.server_port}"

    def __enter__(self) -> HtmlServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
