"""pytest glue: options, session fixtures, parametrization, reporting hooks.

Loaded with ``-p npuperf.plugin`` (the repository's pytest.ini does it). Everything it
decides comes from the pure modules; this module only wires them to pytest.
"""

from __future__ import annotations

import datetime
import math
import os
import statistics
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from npuperf import __version__, api, atomic, baselines, device, npu_checks, service_checks, service_client
from npuperf.engines import http
from npuperf.engines.base import (
    Engine,
    EngineError,
    EngineOptions,
    EngineUnavailable,
    create_engine,
    known_engines,
)
from npuperf.engines.faults import SlowedEngine
from npuperf.engines.genie import GenieConfig, GenieEngine
from npuperf.measure import METRICS, Case, CaseResult, WarmEngine, load_and_warm, measure_case
from npuperf.probes import qnn
from npuperf.prompts import Prompt, PromptError, corpus_prompt, team_prompt
from npuperf.report import CaseRecord, fmt_ms, results_json, row_values, terminal
from npuperf.report import html as html_report
from npuperf.server.launch import ServerProcess, start_process
from npuperf.settings import OPTIONS, Option, Settings, SettingsError, resolve
from npuperf.stats import OnlineHolm
from npuperf.verdict import (
    CaseVerdict,
    Check,
    Outcome,
    Regression,
    circuit_breaker,
    confirmed,
    evaluate_case,
    grid_regression,
    latency_budget,
    load_budget,
)

EMBEDDED_TOKENIZER = "models/tiny-qwen2/tokenizer.json"
# engines the reference server can serve when the suite starts it (registered test engines cannot)
SERVABLE = ("ort-genai", "genie")


class NoBaselineWarning(UserWarning):
    """A case ran without an accepted baseline to compare against."""


@dataclass(frozen=True)
class CaseSpec:
    """A case before the engine is loaded: a budget and a prompt length or team prompt."""

    new_tokens: int
    prompt_tokens: int | None = None
    team_prompt: str | None = None

    @property
    def id(self) -> str:
        if self.team_prompt is not None:
            return f"t{self.new_tokens}-{self.team_prompt}"
        return f"t{self.new_tokens}-p{self.prompt_tokens}"


def case_specs(settings: Settings) -> list[CaseSpec]:
    """The grid: token budgets x prompt lengths, then token budgets x team prompts."""
    specs = [CaseSpec(n, prompt_tokens=p) for n in settings.token_budgets for p in settings.prompt_lengths]
    specs += [CaseSpec(n, team_prompt=name) for n in settings.token_budgets for name in settings.team_prompts]
    return specs


def benchmark_runner(benchmark: Any) -> Callable[[Callable[[], None], int], None]:
    """Adapt pytest-benchmark's pedantic mode to measure.Runner (one call per round)."""

    def run(fn: Callable[[], None], rounds: int) -> None:
        benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=0)

    return run


def git_commit(root: Path) -> str:
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return proc.stdout.strip() if proc.returncode == 0 else "unknown"


@dataclass
class Service:
    """The backend service under test: its URL, a loaded http engine, and whether the suite started it."""

    url: str
    engine: http.HttpEngine
    started: bool
    health: dict[str, Any]

    @property
    def client(self) -> service_client.ServiceClient:
        assert self.engine.client is not None
        return self.engine.client


@dataclass
class PerfSession:
    """The run's state, stored in ``config.stash`` and registered as a plugin for its hooks."""

    config: pytest.Config
    settings: Settings
    records: list[CaseRecord] = field(default_factory=list)
    backend_checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _warm: WarmEngine | None = None
    _warm_error: BaseException | None = None
    _lookup: baselines.Lookup | None = None
    _key: baselines.BaselineKey | None = None
    _prompts: dict[str, Prompt] = field(default_factory=dict)
    _family: OnlineHolm | None = None
    _hypotheses: list[tuple[str, str]] = field(default_factory=list)
    grid: Regression | None = None
    _rejected_online: set[tuple[str, str]] = field(default_factory=set)
    _qnn: qnn.QnnReport | None = None
    _qnn_error: BaseException | None = None
    _service: Service | None = None
    _service_error: BaseException | None = None
    _server: ServerProcess | None = None
    http_records: list[tuple[int, CaseResult]] = field(default_factory=list)

    # ----- paths and identity ------------------------------------------------------------
    @property
    def root(self) -> Path:
        return self.config.rootpath

    def _path(self, value: str) -> Path:
        path = Path(value)
        return path if path.is_absolute() else self.root / path

    def _show(self, path: Path) -> str:
        """A path as the user would type it: relative to the rootdir when inside it."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    @property
    def is_worker(self) -> bool:
        return hasattr(self.config, "workerinput")

    def _progress(self, message: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if reporter is None:
            return
        if capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line(f"npuperf: {message}")
        else:
            reporter.write_line(f"npuperf: {message}")

    # ----- engine ------------------------------------------------------------------------
    def _make_engine(self) -> Engine:
        s = self.settings
        model = str(self._path(s.model)) if s.model else ""
        extra = {
            "htp_perf_mode": s.htp_perf_mode,
            "backend_url": s.backend_url,
            "http_stream": "true" if s.http_stream else "false",
            "http_timeout_s": str(s.http_timeout_s),
            "http_tokenizer": str(self.http_tokenizer()),
        }
        engine = create_engine(s.engine, EngineOptions(model=model, provider=s.provider, extra=extra))
        return SlowedEngine(engine, s.inject_slowdown) if s.inject_slowdown else engine

    def prompt(self, engine: Engine, spec: CaseSpec) -> Prompt:
        key = spec.team_prompt or f"p{spec.prompt_tokens}"
        if key not in self._prompts:
            if spec.team_prompt is not None:
                self._prompts[key] = team_prompt(engine.tokenizer, spec.team_prompt)
            else:
                assert spec.prompt_tokens is not None
                self._prompts[key] = corpus_prompt(engine.tokenizer, spec.prompt_tokens)
        return self._prompts[key]

    def warm_engine(self) -> WarmEngine:
        """Load and warm the engine once per session; later calls get the same engine or error."""
        if self._warm is not None:
            return self._warm
        if self._warm_error is not None:
            raise self._warm_error
        s = self.settings
        shapes = [CaseSpec(min(s.token_budgets), prompt_tokens=p) for p in sorted(s.prompt_lengths)]
        try:
            engine = self._make_engine()
            self._warm = load_and_warm(
                engine,
                lambda e: [self.prompt(e, spec) for spec in shapes],
                new_tokens=min(s.token_budgets),
                warmup=s.warmup,
                progress=self._progress,
            )
        except EngineUnavailable as exc:
            self._warm_error = pytest.skip.Exception(str(exc), _use_item_location=True)
            raise self._warm_error from exc
        except (EngineError, PromptError, OSError, ValueError) as exc:
            self._warm_error = pytest.fail.Exception(
                f"engine {s.engine!r} with model {s.model!r}: {exc}", pytrace=False
            )
            raise self._warm_error from exc
        self._describe(self._warm)
        return self._warm

    def close(self) -> None:
        if self._warm is not None:
            self._warm.engine.close()
        if self._service is not None:
            self._service.engine.close()
        if self._server is not None:
            self._server.stop()

    def _describe(self, warm: WarmEngine) -> None:
        env = self.environment(warm)
        try:
            from pytest_metadata.plugin import metadata_key
        except ImportError:
            return
        self.config.stash.setdefault(metadata_key, {}).update(env)

    def environment(self, warm: WarmEngine | None = None) -> dict[str, str]:
        dev = device.fingerprint()
        env = {
            "npuperf": __version__,
            "Device": f"{dev['cpu']} ({dev['os']} {dev['arch']}, {dev['cores']} cores)",
            "Commit": git_commit(self.root),
        }
        warm = warm or self._warm
        if warm is not None:
            info = warm.engine.info
            env.update(
                {
                    "Engine": info.engine,
                    "Provider": info.provider,
                    "Model": info.model_id,
                    "Model sha256": info.model_sha256[:16],
                    "Runtime versions": ", ".join(f"{k} {v}" for k, v in sorted(info.versions.items())),
                    "Timing source": warm.cold.clock,
                }
            )
            env.update({f"Engine {k}": v for k, v in info.details.items()})
        if self.settings.inject_slowdown:
            env["Fault injection"] = (
                f"canary: every call and every token slowed by {self.settings.inject_slowdown:.0%} on purpose"
            )
        return env

    # ----- baselines ---------------------------------------------------------------------
    def baseline_key(self, warm: WarmEngine) -> baselines.BaselineKey:
        info = warm.engine.info
        return baselines.BaselineKey(
            device=device.fingerprint(),
            engine=info.engine,
            provider=info.provider,
            versions=dict(info.versions),
            model_id=info.model_id,
            model_sha256=info.model_sha256,
        )

    def baseline(self, warm: WarmEngine) -> baselines.Lookup:
        """The accepted baseline file for this device, engine and model (looked up once)."""
        if self._lookup is None:
            self._key = self.baseline_key(warm)
            try:
                self._lookup = baselines.find(self._path(self.settings.baselines_dir), self._key)
            except baselines.BaselineError as exc:
                pytest.fail(f"baseline: {exc}", pytrace=False)
            found = self._lookup.file
            if found is not None and found.schema != baselines.SCHEMA:
                self.notes.append(
                    f"{self._show(self._lookup.path)} is {found.schema}: no noise floor, so thresholds are the "
                    "tolerance alone; re-record with --update-baselines to add one"
                )
            if self._lookup.file is None:
                self.notes.append(f"no accepted baseline at {self._show(self._lookup.path)}")
                self.notes.extend(f"  near miss: {m}" for m in self._lookup.near_misses)
        return self._lookup

    # ----- cases -------------------------------------------------------------------------
    def case(self, warm: WarmEngine, spec: CaseSpec) -> Case:
        try:
            return Case(new_tokens=spec.new_tokens, prompt=self.prompt(warm.engine, spec))
        except PromptError as exc:
            pytest.fail(f"case {spec.id}: {exc}", pytrace=False)

    def measure(self, warm: WarmEngine, case: Case, benchmark: Any) -> CaseResult:
        benchmark.group = f"{case.new_tokens} new tokens"
        try:
            result = measure_case(warm.engine, case, self.settings.repetitions, benchmark_runner(benchmark))
        except EngineError as exc:
            pytest.fail(f"{case.label}: {exc}", pytrace=False)
        benchmark.extra_info.update(
            {
                "npuperf_case": case.id,
                "median_latency_ms": result.latency.median,
                "median_ttft_ms": result.ttft.median,
                "median_tpot_ms": None if result.tpot is None else result.tpot.median,
            }
        )
        return result

    def verify(self, warm: WarmEngine, result: CaseResult, lookup: baselines.Lookup, node: pytest.Item) -> CaseRecord:
        """Decide every check of a case, record it for the reports, fail the test on a failure.

        A case that looks regressed is re-measured (confirm-on-fail: up to --confirm-runs
        times, the k-th after k x --confirm-pause-s) and fails only if every re-run confirms
        it, so a slow spell of a shared machine does not fail the run.
        """
        s = self.settings
        case = result.case
        base = lookup.file.cases.get(case.id) if lookup.file is not None else None
        if base is not None and (base.prompt_tokens, base.new_tokens) != (case.prompt.tokens, case.new_tokens):
            pytest.fail(
                f"{case.label}: baseline entry {case.id} in {self._show(lookup.path)} is for "
                f"{base.new_tokens} tokens / {base.prompt_tokens}-token prompt; re-record with --update-baselines",
                pytrace=False,
            )
        noise = {m: f for m in METRICS if lookup.file and (f := lookup.file.noise_floor(case.id, m)) is not None}

        def judge(measured: CaseResult, family: OnlineHolm | None) -> CaseVerdict:
            return evaluate_case(
                case.label,
                {m: measured.samples(m) for m in METRICS},
                budget_ms=s.budget_for(case.id),
                breaker_ms=s.breaker_ms,
                baseline=None if base is None else base.samples,
                tolerance=s.tolerance,
                noise=noise,
                noise_k=s.noise_k,
                min_delta_ms=s.min_regression_ms,
                family=family,
                alpha=s.alpha,
                new_tokens=case.new_tokens,
                require_baseline=s.require_baseline,
                enforce_regression=not s.update_baselines,
            )

        verdict = judge(result, self.family())
        self._hypotheses.extend((case.id, r.metric) for r in verdict.regressions)
        self._rejected_online.update((case.id, r.metric) for r in verdict.regressions if r.failed)
        if any(r.failed for r in verdict.regressions):
            reruns: list[CaseVerdict] = []
            for attempt in range(1, s.confirm_runs + 1):
                time.sleep(s.confirm_pause_s * attempt)  # 1 s, then 2 s: outlast a slow spell
                try:
                    result = measure_case(warm.engine, case, s.repetitions)
                except EngineError as exc:
                    pytest.fail(f"{case.label}: re-run to confirm a regression failed: {exc}", pytrace=False)
                # each re-run re-tests hypotheses Holm already rejected, at alpha on its own
                reruns.append(judge(result, None))
                if not any(r.failed for r in reruns[-1].regressions):
                    break
            verdict = confirmed(verdict, reruns)
        record = CaseRecord(result=result, verdict=verdict, budget_ms=s.budget_for(case.id))
        self.records.append(record)
        node.user_properties.append(("npuperf", row_values(record)))
        if base is None and not s.require_baseline:
            warnings.warn(
                NoBaselineWarning(
                    f"no accepted baseline in {lookup.path.name}; these cases were not compared "
                    "(record one with --update-baselines)"
                ),
                stacklevel=2,
            )
        if result.stopped_early:
            self.notes.append(f"{case.id}: {result.stopped_early} repetition(s) stopped before the budget")
        if result.over_budget:
            self.notes.append(
                f"{case.id}: {result.over_budget} repetition(s) generated more tokens than the budget "
                f"(up to {result.tokens_generated[1]}; the runtime stops asynchronously); per-token figures use "
                "the real count"
            )
        reported = result.device_medians()
        if "client_first_text_ms" in reported and "device_ttft_ms" in reported:
            self.notes.append(
                f"{case.id}: TTFT {reported['device_ttft_ms']:.1f} ms from the runtime's profile (device clock); "
                f"first text seen by the client at {reported['client_first_text_ms']:.1f} ms (polled callback, "
                "coarse); latency from the client clock"
            )
        if verdict.failures:
            pytest.fail("\n".join(c.message for c in verdict.failures), pytrace=False)
        if s.fail_inconclusive and verdict.outcome is Outcome.INCONCLUSIVE:
            inconclusive = [c.message for c in verdict.checks if c.outcome is Outcome.INCONCLUSIVE]
            pytest.fail("\n".join(inconclusive) + "\n(--fail-inconclusive is set)", pytrace=False)
        return record

    def check_grid(self, warm: WarmEngine, lookup: baselines.Lookup) -> Regression:
        """Is the whole grid slower than its baseline? Confirmed by one re-measurement of every case."""
        s = self.settings
        if lookup.file is None:
            pytest.skip("no accepted baseline: the grid cannot be compared")
        measured = [r for r in self.records if r.case_id in lookup.file.cases]
        if not measured:
            pytest.skip("no case of this run has a baseline entry")
        floor = lookup.file.grid_noise("latency_ms")

        def judge(results: list[CaseResult]) -> Regression:
            pairs = [
                (r.samples("latency_ms"), lookup.file.cases[r.case.id].samples["latency_ms"])  # type: ignore[union-attr]
                for r in results
            ]
            return grid_regression(
                pairs, tolerance=s.grid_tolerance, noise_floor=floor, noise_k=s.noise_k, alpha=s.alpha
            )

        grid = judge([r.result for r in measured])
        if grid.failed and s.confirm_runs:
            time.sleep(s.confirm_pause_s)
            self._progress(f"grid looks regressed; re-measuring {len(measured)} case(s) to confirm")
            again = judge([measure_case(warm.engine, r.result.case, s.repetitions) for r in measured])
            note = (
                f" (confirmed on re-run; first run {(grid.ratio - 1) * 100:+.1f}%)"
                if again.failed
                else f"; first run looked regressed ({(grid.ratio - 1) * 100:+.1f}%), not confirmed on re-run"
            )
            grid = replace(again, message=again.message + note)
        if grid.failed and s.update_baselines:
            grid = replace(
                grid, outcome=Outcome.INCONCLUSIVE, message=grid.message + " (not enforced: accepting new baselines)"
            )
        self.grid = grid
        if grid.failed:
            pytest.fail(grid.message, pytrace=False)
        if s.fail_inconclusive and grid.outcome is Outcome.INCONCLUSIVE:
            pytest.fail(grid.message + "\n(--fail-inconclusive is set)", pytrace=False)
        return grid

    def family(self) -> OnlineHolm:
        """The regression hypotheses of the whole grid: every case x metric, under Holm."""
        if self._family is None:
            self._family = OnlineHolm(len(case_specs(self.settings)) * len(METRICS), self.settings.alpha)
        return self._family

    def late_rejections(self) -> list[tuple[str, str]]:
        """Hypotheses full-grid Holm rejects that the online decision (made per case) did not."""
        if self._family is None:
            return []
        final = self._family.final()
        return [h for h, rej in zip(self._hypotheses, final, strict=False) if rej and h not in self._rejected_online]

    # ----- backend checks ----------------------------------------------------------------
    def check_load(self, warm: WarmEngine) -> Check:
        check = load_budget(warm.load_s, self.settings.load_budget_s)
        self.backend_checks.append(check)
        if check.failed:
            pytest.fail(check.message, pytrace=False)
        return check

    def check_cold_call(self, warm: WarmEngine) -> Check:
        cold = warm.cold
        label = f"cold first call ({cold.requested_new_tokens} tokens / {cold.prompt_tokens}-token prompt)"
        check = circuit_breaker(label, cold.latency_ms, self.settings.breaker_ms)
        warm_ms = warm.warm_latency_ms
        if warm_ms:
            check = _with_message(
                check, f"{check.message}; warm median {warm_ms:.1f} ms (cold is x{cold.latency_ms / warm_ms:.1f})"
            )
        self.backend_checks.append(check)
        if check.failed:
            pytest.fail(check.message, pytrace=False)
        return check

    # ----- NPU checks --------------------------------------------------------------------
    def _enforce(self, check: Check) -> Check:
        self.backend_checks.append(check)
        if check.failed:
            pytest.fail(check.message, pytrace=False)
        if check.outcome is Outcome.INCONCLUSIVE and self.settings.fail_inconclusive:
            pytest.fail(check.message + "\n(--fail-inconclusive is set)", pytrace=False)
        return check

    def qnn_report(self) -> qnn.QnnReport:
        """Probe --qnn-model once per session (three fresh processes); later calls reuse it."""
        if self._qnn is not None:
            return self._qnn
        if self._qnn_error is not None:
            raise self._qnn_error
        s = self.settings
        try:
            if not s.qnn_model:
                _skip("--qnn-model is 'none': the QNN checks are off")
            reason = qnn.available()
            if reason is not None:
                _skip(f"the QNN checks need onnxruntime-qnn: {reason}; install it with: {qnn.INSTALL}")
            model = self._path(s.qnn_model)
            self._progress(
                f"QNN checks: probing {self._show(model)} in fresh processes (cold compile, context write, cached load)"
            )
            cache_dir = self._path(s.qnn_cache_dir) if s.qnn_cache_dir else None
            problem = None
            try:
                self._qnn = qnn.report(model, s.htp_perf_mode, s.qnn_runs, workdir=cache_dir)
            except (EngineError, OSError, ValueError) as exc:
                problem = f"QNN checks on {self._show(model)}: {exc}"
            if problem is not None:  # raised outside the handler: the message alone says it all
                pytest.fail(problem, pytrace=False)
            assert self._qnn is not None
        except (pytest.skip.Exception, pytest.fail.Exception) as exc:
            self._qnn_error = exc
            raise
        cold = self._qnn.cold
        if cold.simulated:
            self.notes.append(
                f"QNN timings are HTP simulator timings (QNN EP device type {cold.device_type} on this machine), "
                "not device figures; device budgets are not applied to them"
            )
        return self._qnn

    def check_qnn_placement(self, report: qnn.QnnReport) -> Check:
        return self._enforce(npu_checks.qnn_placement(report.cold))

    def check_qnn_perf_mode(self, report: qnn.QnnReport) -> Check:
        return self._enforce(npu_checks.qnn_perf_mode(report.cold, self.settings.htp_perf_mode))

    def check_qnn_compile_cache(self, report: qnn.QnnReport) -> Check:
        return self._enforce(npu_checks.qnn_compile_cache(report.cache))

    def check_qnn_load(self, report: qnn.QnnReport) -> Check:
        cold = report.cold
        if cold.simulated:
            _skip(
                f"HTP simulator: cold session creation (compile) took {cold.session_s:.3f} s here; simulator "
                f"timings are reported, not checked against the {self.settings.load_budget_s:g} s device budget"
            )
        return self._enforce(load_budget(cold.session_s, self.settings.load_budget_s))

    def check_qnn_cold_call(self, report: qnn.QnnReport) -> Check:
        cold = report.cold
        warm = cold.warm_run_ms
        versus = "" if warm is None else f"; warm median {warm:.1f} ms (cold is x{cold.first_run_ms / warm:.1f})"
        if cold.simulated:
            _skip(
                f"HTP simulator: first run {cold.first_run_ms:.1f} ms{versus}; simulator timings are reported, "
                f"not checked against the {self.settings.breaker_ms:g} ms breaker"
            )
        check = circuit_breaker(f"{report.model}: cold first run", cold.first_run_ms, self.settings.breaker_ms)
        return self._enforce(_with_message(check, check.message + versus))

    def genie_config(self) -> GenieConfig:
        """The loaded Genie engine's config; skips (before loading anything) when the engine is not Genie."""
        if self.settings.engine != "genie":
            _skip(
                f"the engine under test is {self.settings.engine!r}; the Genie checks run with "
                "--engine genie --model <bundle>/genie_config.json"
            )
        warm = self.warm_engine()
        engine = warm.engine.inner if isinstance(warm.engine, SlowedEngine) else warm.engine
        if not isinstance(engine, GenieEngine) or engine.config is None:
            pytest.fail(f"--engine genie made a {type(engine).__name__}, not the Genie engine", pytrace=False)
        return engine.config

    def check_genie_backend(self) -> Check:
        return self._enforce(npu_checks.genie_backend(self.genie_config()))

    def check_genie_perf_profile(self) -> Check:
        return self._enforce(npu_checks.genie_perf_profile(self.genie_config(), self.settings.htp_perf_mode))

    # ----- the backend service ------------------------------------------------------------
    def http_tokenizer(self) -> Path:
        """--http-tokenizer; else the --model's tokenizer.json (folder, or a Genie config's folder); else embedded."""
        s = self.settings
        if s.http_tokenizer:
            return self._path(s.http_tokenizer)
        model = self._path(s.model) if s.model and s.engine != "http" else None
        if model is not None:
            for candidate in (model / "tokenizer.json", model.parent / "tokenizer.json"):
                if candidate.is_file():
                    return candidate
        return self._path(EMBEDDED_TOKENIZER)

    def service(self) -> Service:
        """--backend-url, or the reference server started once on a free loopback port."""
        if self._service is not None:
            return self._service
        if self._service_error is not None:
            raise self._service_error
        try:
            self._service = self._connect()
        except (pytest.skip.Exception, pytest.fail.Exception) as exc:
            self._service_error = exc
            raise
        return self._service

    def _connect(self) -> Service:
        s = self.settings
        url, started = s.backend_url, False
        problem = None
        if not url:
            if s.engine not in SERVABLE:
                pytest.fail(
                    f"the reference server serves {', '.join(SERVABLE)}, not --engine {s.engine!r}; "
                    "give --backend-url of a running service",
                    pytrace=False,
                )
            log = Path(tempfile.gettempdir()) / f"npuperf-server-{os.getpid()}.log"
            self._progress(f"starting the reference server (python -m npuperf.server, {s.engine} {s.model})")
            args = ["--engine", s.engine, "--model", str(self._path(s.model)), "--ep", s.provider]
            args += ["--htp-perf-mode", s.htp_perf_mode, "--breaker-ms", f"{s.breaker_ms:g}"]
            try:
                self._server = start_process(args, log, timeout_s=max(180.0, 3 * s.load_budget_s))
            except (RuntimeError, OSError) as exc:
                problem = f"service: {exc}"
            if problem is None:
                assert self._server is not None
                url, started = self._server.url, True
                self.notes.append(
                    f"service: the reference server (python -m npuperf.server) on {url}, started by the suite; "
                    f"log {log}"
                )
        if problem is None:
            engine = http.HttpEngine(
                url, self.http_tokenizer(), stream=s.http_stream, timeout_s=s.http_timeout_s, temperature=0.7
            )
            try:
                engine.load()
            except EngineUnavailable as exc:
                _skip(str(exc))
            except (EngineError, ValueError) as exc:
                problem = f"service {url}: {exc}"
        if problem is not None:
            pytest.fail(problem, pytrace=False)
        return Service(url=url, engine=engine, started=started, health=dict(engine.health))

    def check_service_health(self, svc: Service) -> Check:
        reply = self._service_call(lambda: svc.client.send("GET", "/api/health"))
        return self._enforce(service_checks.health(reply.body if isinstance(reply.body, dict) else None, svc.url))

    def _service_call(self, fn: Callable[[], Any]) -> Any:
        problem = None
        try:
            return fn()
        except EngineError as exc:
            problem = str(exc)
        pytest.fail(problem, pytrace=False)

    def check_http_case(self, svc: Service, new_tokens: int) -> list[Check]:
        """One token budget of the grid over HTTP with the team's prompt: budget and breaker."""
        s = self.settings
        prompt = team_prompt(svc.engine.tokenizer, "greeting-zh")
        case = Case(new_tokens=new_tokens, prompt=prompt)
        result = self._service_call(lambda: measure_case(svc.engine, case, s.repetitions))
        self.http_records.append((new_tokens, result))
        label = f"{case.label} over HTTP"
        checks = [
            latency_budget(label, result.latency.median, s.budget_for(case.id)),
            circuit_breaker(label, result.latency.max, s.breaker_ms),
        ]
        counted = {g.device.get("server_prompt_tokens") for g in result.generations} - {None}
        if counted and counted != {float(prompt.tokens)}:
            self.notes.append(
                f"{case.id} over HTTP: the service counts {sorted(int(c) for c in counted)} prompt tokens for "
                f"{prompt.text!r}, the suite's tokenizer {prompt.tokens}; set --http-tokenizer to the model's"
            )
        failed = [c for c in checks if c.failed]
        if failed:
            pytest.fail("\n".join(c.message for c in failed), pytrace=False)
        return checks

    def check_benchmark_agreement(self, svc: Service) -> Check:
        s = self.settings
        n, runs = max(s.token_budgets), s.repetitions
        payload = {"prompt": "你好", "max_new_tokens": n, "temperature": 0.7}
        client = [
            self._service_call(lambda: svc.client.checked("POST", "/api/npu/infer", json=payload)).elapsed_ms
            for _ in range(runs)
        ]
        params = {"prompt": "你好", "max_new_tokens": n, "runs": runs}
        reply = self._service_call(
            lambda: svc.client.checked("GET", "/api/npu/benchmark", params=params, timeout=s.http_timeout_s * runs)
        )
        latency = reply.body.get("latency_ms") if isinstance(reply.body, dict) else None
        if not isinstance(latency, dict) or not isinstance(latency.get("median"), (int, float)):
            pytest.fail(
                f"{svc.url}/api/npu/benchmark answered without latency_ms.median (docs/api.md): "
                f"{str(reply.body)[:200]}",
                pytrace=False,
            )
        label = f"{n} tokens / '你好', {runs} runs each"
        check = service_checks.agreement(float(latency["median"]), statistics.median(client), s.http_agreement, label)
        return self._enforce(check)

    def check_bad_inputs(self, svc: Service) -> Check:
        bad = list(service_checks.BAD_INPUTS)
        context = svc.health.get("context_length")
        if isinstance(context, int) and context > 0:
            bad.append(service_checks.over_context(context))
        answers = self._service_call(lambda: service_client.answers(svc.client, bad))
        after = svc.client.send(
            "POST", "/api/npu/infer", content=api.SEED_REQUEST, headers={"Content-Type": "application/json"}
        )
        return self._enforce(service_checks.bad_inputs(bad, answers, after.status == 200))

    def check_concurrency(self, svc: Service) -> Check:
        s = self.settings
        payload = {"prompt": "你好", "max_new_tokens": min(s.token_budgets), "temperature": 0.7}
        self._progress(f"service: {s.http_clients} clients x {s.http_requests} requests")
        load = service_client.load(svc.url, s.http_clients, s.http_requests, payload, s.http_timeout_s)
        return self._enforce(service_checks.concurrency(load))

    def check_http_overhead(self, svc: Service) -> Check:
        s = self.settings
        if not self.http_records:
            case = Case(new_tokens=min(s.token_budgets), prompt=team_prompt(svc.engine.tokenizer, "greeting-zh"))
            result = self._service_call(lambda: measure_case(svc.engine, case, s.repetitions))
            self.http_records.append((case.new_tokens, result))
        overheads = [
            g.device["http_overhead_ms"]
            for _, r in self.http_records
            for g in r.generations
            if "http_overhead_ms" in g.device
        ]
        if not overheads:
            _skip(f"{svc.url} reports no server timings (timings.latency_ms): HTTP overhead cannot be split out")
        label = "streamed" if s.http_stream else "whole answers"
        return self._enforce(service_checks.overhead(overheads, s.http_overhead_ms, label))

    def check_seed_request(self, svc: Service) -> Check:
        s = self.settings
        headers = {"Content-Type": "application/json"}
        reply = self._service_call(
            lambda: svc.client.send(
                "POST", "/api/npu/infer", content=api.SEED_REQUEST, headers=headers, expect_json=False
            )
        )
        answers: dict[str, tuple[int, Any]] = {"python (httpx)": (reply.status, reply.body)}
        by_curl = self._service_call(
            lambda: service_client.curl(f"{svc.url}/api/npu/infer", api.SEED_REQUEST, s.http_timeout_s)
        )
        if by_curl is None:
            self.notes.append("seed request: curl is not installed here; sent from Python only")
        else:
            answers["curl"] = by_curl
        return self._enforce(service_checks.seed_request(answers, 32))

    def http_lines(self) -> list[str]:
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
                f"{fmt_ms(statistics.median(server) if server else None):>9}  "
                f"{fmt_ms(statistics.median(over) if over else None):>11}"
            )
        return lines

    # ----- hooks -------------------------------------------------------------------------
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if self.settings.engine not in known_engines():
            raise pytest.UsageError(
                f"--engine: unknown engine {self.settings.engine!r}; known engines: {', '.join(known_engines())}"
            )
        unknown = sorted(set(self.settings.budget_overrides) - {s.id for s in case_specs(self.settings)})
        if unknown:
            known = ", ".join(s.id for s in case_specs(self.settings))
            raise pytest.UsageError(
                f"--budgets-file: {self.settings.budgets_file!r} names unknown case(s) {', '.join(unknown)}; "
                f"cases in this run: {known}"
            )

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """The service section runs last: its server process and its load test must not share
        the machine with any latency case (order is otherwise kept)."""
        items[:] = [i for i in items if i.get_closest_marker("service") is None] + [
            i for i in items if i.get_closest_marker("service") is not None
        ]

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.records and not self.backend_checks and not self.http_records:
            return
        tr = terminalreporter
        tr.write_sep("=", "npuperf latency summary")
        if self._warm is not None:
            info = self._warm.engine.info
            tr.write_line(
                f"engine {info.engine} ({info.provider}), model {info.model_id} "
                f"[{info.model_sha256[:12]}], load {self._warm.load_s:.2f} s, "
                f"cold first call {self._warm.cold.latency_ms:.1f} ms"
            )
        for check in self.backend_checks + ([self.grid] if self.grid is not None else []):
            tr.write_line(f"{check.outcome.value.upper():>12}  {check.message}")
        if self.records:
            for line in terminal.case_table(self.records):
                tr.write_line(line)
            tr.write_line("token budgets that fit the latency budget, from the measured TTFT and TPOT (extrapolated):")
            for line in terminal.fit_lines(self.records):
                tr.write_line(f"  {line}")
        for line in terminal.over_tolerance_lines(self.records):
            tr.write_line(line, yellow=True)
        for case_id, metric in self.late_rejections():
            tr.write_line(
                f"INCONCLUSIVE  {case_id} {metric}: full-grid Holm would call it regressed; it was judged before "
                "the grid's other p-values were known; rerun to confirm",
                yellow=True,
            )
        for line in self.http_lines():
            tr.write_line(line)
        for note in self.notes:
            tr.write_line(note)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.is_worker:
            return
        if self.settings.results_json and (self.records or self.backend_checks or self.http_records):
            self._write_results()
        if self.settings.update_baselines and self.records:
            try:
                self._write_baselines()
            except baselines.BaselineError as exc:
                self.notes.append(f"baselines NOT written: {exc}")
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.close()

    def _write_results(self) -> None:
        warm = self._warm
        session_info: dict[str, Any] = {
            "backend_checks": [
                {"name": c.name, "outcome": c.outcome.value, "value": c.value, "limit": c.limit, "message": c.message}
                for c in self.backend_checks
            ],
            "grid": None
            if self.grid is None
            else {
                "outcome": self.grid.outcome.value,
                "ratio": self.grid.ratio,
                "ci": [self.grid.ci_low, self.grid.ci_high],
                "p_value": self.grid.p_value,
                "threshold": self.grid.threshold,
                "message": self.grid.message,
            },
        }
        if self._qnn is not None:
            session_info["qnn"] = _qnn_entry(self._qnn)
        if self._service is not None:
            session_info["service"] = {
                "url": self._service.url,
                "started_by_suite": self._service.started,
                "health": self._service.health,
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
        if warm is not None:
            session_info.update(
                load_s=warm.load_s,
                cold=results_json.generation_entry(warm.cold),
                warm_latency_ms=warm.warm_latency_ms,
            )
        path = self._path(self.settings.results_json)
        atomic.write_text(
            path,
            results_json.document(
                environment=self.environment(),
                settings={k: v for k, v in asdict(self.settings).items()},
                session=session_info,
                records=self.records,
                created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            ),
        )
        self.notes.append(f"results JSON: {self._show(path)}")

    def _write_baselines(self) -> None:
        """Record this run's cases as the baselines, with a second pass for the noise floor.

        The second pass measures every case again after the whole grid has run, so the two
        medians are minutes apart in a short run; their spread is the same-code noise
        stored with the baseline. Both passes' samples are kept.
        """
        assert self._lookup is not None
        assert self._key is not None
        assert self._warm is not None
        stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        commit = git_commit(self.root)
        self._progress(f"noise floor: second pass over {len(self.records)} case(s) for the baselines")
        new_cases = {}
        for rec in self.records:
            first = rec.result
            second = measure_case(self._warm.engine, first.case, self.settings.repetitions)
            new_cases[rec.case_id] = baselines.CaseBaseline(
                case_id=rec.case_id,
                prompt=first.case.prompt.name,
                prompt_tokens=first.case.prompt.tokens,
                new_tokens=first.case.new_tokens,
                sampling=first.case.sampling,
                samples={m: first.samples(m) + second.samples(m) for m in METRICS},
                recorded_at=stamp,
                commit=commit,
                noise={m: _drift(first.samples(m), second.samples(m)) for m in METRICS if first.samples(m)},
            )
        current = self._lookup.file or baselines.BaselineFile(key=self._key)
        baselines.save(self._lookup.path, current.merged(new_cases))
        kept = len(current.cases.keys() - new_cases.keys())
        self.notes.append(
            f"baselines written: {len(new_cases)} case(s) to {self._show(self._lookup.path)}"
            + (f" ({kept} other case(s) kept)" if kept else "")
        )


def _drift(first: tuple[float, ...], second: tuple[float, ...]) -> float:
    """ln(median ratio) of two passes over the same code: signed, about a fraction."""
    a, b = sorted(first)[len(first) // 2], sorted(second)[len(second) // 2]
    return math.log(a / b) if a > 0 and b > 0 else 0.0


def _skip(reason: str) -> None:
    """Skip reported at the test that asked, not at this module's line."""
    raise pytest.skip.Exception(reason, _use_item_location=True)


def _qnn_entry(report: qnn.QnnReport) -> dict[str, Any]:
    def probe(p: qnn.Probe) -> dict[str, Any]:
        return {
            "model": p.model,
            "simulated": p.simulated,
            "device_type": p.device_type,
            "clock": p.clock,
            "session_s": p.session_s,
            "run_ms": list(p.run_ms),
            "requested_perf_mode": p.requested_perf_mode,
            "applied_perf_mode": p.applied_perf_mode,
            "provider_options": dict(p.provider_options),
            "node_share": p.placement.node_share,
            "time_share": p.placement.time_share,
            "kernel_us": dict(p.placement.kernel_us),
            "fallback": [asdict(n) for n in p.placement.fallback],
            "uses_context": p.uses_context,
            "versions": dict(p.versions),
        }

    c = report.cache
    return {
        "model": report.model,
        "cold": probe(c.cold),
        "context_write": probe(c.generate),
        "cached": probe(c.cached),
        "context_model": c.context_model,
        "context_bytes": c.context_bytes,
        "speedup": c.speedup,
    }


def _with_message(check: Check, message: str) -> Check:
    from dataclasses import replace

    return replace(check, message=message)


class HtmlHooks:
    """pytest-html hooks; registered only when pytest-html is active (its hook specs exist)."""

    def __init__(self, perf: PerfSession) -> None:
        self.perf = perf

    def pytest_html_report_title(self, report: Any) -> None:
        report.title = "npuperf latency report"

    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        cells.extend(html_report.header_cells())

    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list[str]) -> None:
        values = next((v for k, v in report.user_properties if k == "npuperf"), None)
        cells.extend(html_report.row_cells(values if isinstance(values, dict) else None))

    def pytest_html_results_summary(self, prefix: list[str], summary: list[str], postfix: list[str]) -> None:
        checks = self.perf.backend_checks + ([self.perf.grid] if self.perf.grid is not None else [])
        notes = [c.message for c in checks] + self.perf.http_lines() + self.perf.notes
        prefix.append(html_report.summary(self.perf.records, notes))


SESSION = pytest.StashKey[PerfSession]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("npuperf", "npuperf latency regression suite")
    for opt in OPTIONS:
        # argparse %-formats help strings: a literal "10%" in a help text must reach it as "10%%"
        helptext = f"{opt.help} (ini: {opt.ini}; default: {opt.default or 'none'})".replace("%", "%%")
        if opt.kind == "flag":
            group.addoption(opt.flag, *opt.aliases, action="store_true", default=None, dest=opt.dest, help=helptext)
            parser.addini(opt.ini, opt.help, type="bool", default=opt.default == "true")
        else:
            group.addoption(opt.flag, *opt.aliases, action="store", default=None, dest=opt.dest, help=helptext)
            parser.addini(opt.ini, opt.help, default=opt.default)


def _raw(config: pytest.Config, opt: Option) -> str:
    value = config.getoption(opt.dest)
    if value is None:
        value = config.getini(opt.ini)
    return str(value).lower() if isinstance(value, bool) else str(value)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "npuperf: a latency case of the npuperf suite")
    config.addinivalue_line("markers", "npu: an NPU check (QNN placement, perf mode, compile cache; Genie config)")
    config.addinivalue_line("markers", "service: a check of the backend service over HTTP (--backend-url)")
    try:
        settings = resolve(lambda opt: _raw(config, opt), config.rootpath)
    except SettingsError as exc:
        raise pytest.UsageError(str(exc)) from None
    perf = PerfSession(config=config, settings=settings)
    config.stash[SESSION] = perf
    config.pluginmanager.register(perf, "npuperf-session")
    if config.pluginmanager.hasplugin("html"):
        config.pluginmanager.register(HtmlHooks(perf), "npuperf-html")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "npuperf_http_budget" in metafunc.fixturenames:
        budgets = metafunc.config.stash[SESSION].settings.token_budgets
        metafunc.parametrize("npuperf_http_budget", budgets, ids=[f"t{n}" for n in budgets])
    if "npuperf_case" in metafunc.fixturenames:
        specs = case_specs(metafunc.config.stash[SESSION].settings)
        metafunc.parametrize("npuperf_case", specs, ids=[s.id for s in specs])


@pytest.fixture(scope="session")
def npuperf_session(pytestconfig: pytest.Config) -> PerfSession:
    """The run's PerfSession: settings, engine, baselines and collected records."""
    return pytestconfig.stash[SESSION]
