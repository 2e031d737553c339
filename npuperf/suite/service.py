"""The service section: the team's API over HTTP, against --backend-url or a reference server
the suite starts on loopback, and the table of the grid over HTTP."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from npuperf.engines.base import EngineError, EngineUnavailable
from npuperf.engines.http import HttpEngine
from npuperf.judge.stats import median
from npuperf.judge.verdict import Check, Outcome, circuit_breaker, latency_budget
from npuperf.measure import METRICS, Case, CaseResult, measure_case
from npuperf.prompts import team_prompt
from npuperf.report import fmt_ms
from npuperf.server.launch import ServerProcess, start_process
from npuperf.service import api
from npuperf.service import checks as service_checks
from npuperf.service import client as service_client
from npuperf.suite.run import Memo, Run, attempt, fail, skip

T = TypeVar("T")
# engines the reference server can serve when the suite starts it (registered test engines cannot)
SERVABLE = ("ort-genai", "genie")
JSON = {"Content-Type": "application/json"}


@dataclass
class Service:
    """The backend service under test: its URL, a loaded http engine, and whether the suite started it."""

    url: str
    engine: HttpEngine
    started: bool
    health: dict[str, Any]

    @property
    def client(self) -> service_client.ServiceClient:
        assert self.engine.client is not None
        return self.engine.client


def _call(fn: Callable[[], T]) -> T:
    """A request to the service; a ServiceError (or any engine error) fails the test with its message."""
    return attempt(fn, (EngineError,), str)


class ServiceSection:
    """Checks the service as the app sees it: health, budgets over HTTP, bad input, load, overhead."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.http_records: list[tuple[int, CaseResult]] = []
        self._service: Memo[Service] = Memo()
        self._server: ServerProcess | None = None
        self._service_provider: str | None = None

    @property
    def current(self) -> Service | None:
        return self._service.value

    def connect(self) -> Service:
        """--backend-url, or the reference server started once on a free loopback port."""
        return self._service.get(self._connect)

    def _start_server(self) -> str:
        s = self.run.settings
        if s.engine not in SERVABLE:
            fail(
                f"the reference server serves {', '.join(SERVABLE)}, not --engine {s.engine!r}; "
                "give --backend-url of a running service"
            )
        log = Path(tempfile.gettempdir()) / f"npuperf-server-{os.getpid()}.log"
        self.run.progress(f"starting the reference server (python -m npuperf.server, {s.engine} {s.model})")
        args = ["--engine", s.engine, "--model", self.run.model(), "--ep", s.provider]
        args += ["--htp-perf-mode", s.htp_perf_mode, "--breaker-ms", f"{s.breaker_ms:g}"]
        if s.engine == "genie":
            args += ["--genie-backend", s.genie_backend]
            if s.genie_lib:
                args += ["--genie-lib", str(self.run.path(s.genie_lib))]
        self._server = attempt(
            lambda: start_process(args, log, timeout_s=max(180.0, 3 * s.load_budget_s)),
            (RuntimeError, OSError),
            lambda exc: f"service: {exc}",
        )
        url = self._server.url
        self.run.notes.append(
            f"service: the reference server (python -m npuperf.server) on {url}, started by the suite; log {log}"
        )
        return url

    def _connect(self) -> Service:
        s = self.run.settings
        started = not s.backend_url
        url = self._start_server() if started else s.backend_url
        engine = HttpEngine(
            url,
            self.run.http_tokenizer(),
            stream=s.http_stream,
            timeout_s=s.http_timeout_s,
            temperature=api.SEED_TEMPERATURE,
        )
        problem = ""
        try:
            engine.load()
        except EngineUnavailable as exc:
            skip(str(exc))
        except (EngineError, ValueError) as exc:
            problem = f"service {url}: {exc}"
        if problem:
            fail(problem)
        return Service(url=url, engine=engine, started=started, health=dict(engine.health))

    def close(self) -> None:
        if self.current is not None:
            self.current.engine.close()
        if self._server is not None:
            self._server.stop()

    # ----- the checks ---------------------------------------------------------------------
    def check_health(self, svc: Service) -> Check:
        reply = _call(lambda: svc.client.send("GET", api.HEALTH))
        return self.run.enforce(service_checks.health(reply.body if isinstance(reply.body, dict) else None, svc.url))

    def check_http_case(self, svc: Service, new_tokens: int) -> list[Check]:
        """One token budget of the grid over HTTP with the team's prompt: budget and breaker."""
        s = self.run.settings
        prompt = team_prompt(svc.engine.tokenizer, "greeting-zh")
        case = Case(new_tokens=new_tokens, prompt=prompt)
        result = _call(lambda: measure_case(svc.engine, case, s.repetitions))
        self.http_records.append((new_tokens, result))
        label = f"{case.label} over HTTP"
        checks = [
            latency_budget(label, result.latency.median, s.budget_for(case.id)),
            circuit_breaker(label, result.latency.max, s.breaker_ms),
        ]
        if self._simulated(svc):  # a service on the HTP simulator: the device's limits are shown, not applied
            checks = [
                replace(c, outcome=Outcome.OK, message=f"{c.message} (HTP simulator: not applied)") for c in checks
            ]
        counted = {c for g in result.generations if (c := g.device.get("server_prompt_tokens")) is not None}
        if counted and counted != {float(prompt.tokens)}:
            self.run.notes.append(
                f"{case.id} over HTTP: the service counts {sorted(int(c) for c in counted)} prompt tokens for "
                f"{prompt.text!r}, the suite's tokenizer {prompt.tokens}; set --http-tokenizer to the model's"
            )
        failed = [c for c in checks if c.failed]
        if failed:
            fail("\n".join(c.message for c in failed))
        return checks

    def _simulated(self, svc: Service) -> bool:
        """Does the service say (its /api/health provider) that its engine runs on the HTP simulator?"""
        if self._service_provider is None:
            reply = _call(lambda: svc.client.send("GET", api.HEALTH))
            body = reply.body if isinstance(reply.body, dict) else {}
            self._service_provider = str(body.get("provider", ""))
        return self._service_provider.endswith("-simulator")

    def check_benchmark_agreement(self, svc: Service) -> Check:
        s = self.run.settings
        n, runs = max(s.token_budgets), s.repetitions
        payload = api.infer_payload(api.SEED_PROMPT, n)
        client = [_call(lambda: svc.client.checked("POST", api.INFER, json=payload)).elapsed_ms for _ in range(runs)]
        params = {"prompt": api.SEED_PROMPT, "max_new_tokens": n, "runs": runs}
        reply = _call(lambda: svc.client.checked("GET", api.BENCHMARK, params=params, timeout=s.http_timeout_s * runs))
        latency = reply.body.get("latency_ms") if isinstance(reply.body, dict) else None
        if not isinstance(latency, dict) or not isinstance(latency.get("median"), (int, float)):
            fail(f"{svc.url}{api.BENCHMARK} answered without latency_ms.median (docs/api.md): {str(reply.body)[:200]}")
        label = f"{n} tokens / '{api.SEED_PROMPT}', {runs} runs each"
        check = service_checks.agreement(float(latency["median"]), median(client), s.http_agreement, label)
        return self.run.enforce(check)

    def check_bad_inputs(self, svc: Service) -> Check:
        bad = list(service_checks.BAD_INPUTS)
        context = svc.health.get("context_length")
        if isinstance(context, int) and context > 0:
            bad.append(service_checks.over_context(context))
        answers = _call(lambda: service_client.answers(svc.client, bad))
        after = svc.client.send("POST", api.INFER, content=api.SEED_REQUEST, headers=JSON)
        return self.run.enforce(service_checks.bad_inputs(bad, answers, after.status == 200))

    def check_concurrency(self, svc: Service) -> Check:
        s = self.run.settings
        payload = api.infer_payload(api.SEED_PROMPT, min(s.token_budgets))
        self.run.progress(f"service: {s.http_clients} clients x {s.http_requests} requests")
        load = service_client.load(svc.url, s.http_clients, s.http_requests, payload, s.http_timeout_s)
        return self.run.enforce(service_checks.concurrency(load))

    def check_http_overhead(self, svc: Service) -> Check:
        s = self.run.settings
        if not self.http_records:
            case = Case(new_tokens=min(s.token_budgets), prompt=team_prompt(svc.engine.tokenizer, "greeting-zh"))
            result = _call(lambda: measure_case(svc.engine, case, s.repetitions))
            self.http_records.append((case.new_tokens, result))
        overheads = [
            g.device["http_overhead_ms"]
            for _, r in self.http_records
            for g in r.generations
            if "http_overhead_ms" in g.device
        ]
        if not overheads:
            skip(f"{svc.url} reports no server timings (timings.latency_ms): HTTP overhead cannot be split out")
        label = "streamed" if s.http_stream else "whole answers"
        return self.run.enforce(service_checks.overhead(overheads, s.http_overhead_ms, label))

    def check_seed_request(self, svc: Service) -> Check:
        s = self.run.settings
        reply = _call(
            lambda: svc.client.send("POST", api.INFER, content=api.SEED_REQUEST, headers=JSON, expect_json=False)
        )
        answers: dict[str, tuple[int, Any]] = {"python (httpx)": (reply.status, reply.body)}
        by_curl = _call(lambda: service_client.curl(f"{svc.url}{api.INFER}", api.SEED_REQUEST, s.http_timeout_s))
        if by_curl is None:
            self.run.notes.append("seed request: curl is not installed here; sent from Python only")
        else:
            answers["curl"] = by_curl
        return self.run.enforce(service_checks.seed_request(answers, api.SEED_NEW_TOKENS))

    # ----- what the reports show ------------------------------------------------------------
    def table(self) -> list[str]:
        """The grid over HTTP: client figures beside the server's in-process ones."""
        if not self.http_records:
            return []
        lines = ["over HTTP (client clock; server = its in-process latency; overhead = client - server):"]
        lines.append("  tokens  median ms  p90 ms  TTFT ms  server ms  overhead ms")
        for n, r in self.http_records:
            server = [g.device["server_latency_ms"] for g in r.generations if "server_latency_ms" in g.device]
            over = [g.device["http_overhead_ms"] for g in r.generations if "http_overhead_ms" in g.device]
            lines.append(
                f"  {n:>6}  {r.latency.median:>9.2f}  {r.latency.p90:>6.2f}  {r.ttft.median:>7.2f}  "
                f"{fmt_ms(median(server) if server else None):>9}  "
                f"{fmt_ms(median(over) if over else None):>11}"
            )
        return lines

    def results_entry(self) -> dict[str, Any] | None:
        """The service part of the results JSON (None when the section did not run)."""
        svc = self.current
        if svc is None:
            return None
        return {
            "url": svc.url,
            "started_by_suite": svc.started,
            "health": svc.health,
            "http": [
                {
                    "new_tokens": n,
                    "clock": r.generations[0].clock,
                    "samples": {m: list(r.samples(m)) for m in METRICS},
                    "runtime_reported": r.device_medians(),
                }
                for n, r in self.http_records
            ],
        }
