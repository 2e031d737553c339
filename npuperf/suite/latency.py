"""The latency section: the warm engine, prompts, baseline lookup, measure, verify, the grid
test, and the engine's load and cold call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from npuperf.engines.base import Engine, EngineError, EngineOptions, EngineUnavailable, create_engine
from npuperf.engines.faults import SlowedEngine
from npuperf.judge import baselines
from npuperf.judge.verdict import (
    Check,
    Outcome,
    Regression,
    circuit_breaker,
    load_budget,
)
from npuperf.machine import device
from npuperf.measure import Case, CaseResult, CaseSpec, WarmEngine, case_specs, load_and_warm, measure_case
from npuperf.models import floor
from npuperf.prompts import Prompt, PromptError, corpus_prompt, team_prompt
from npuperf.report import CaseRecord
from npuperf.suite import environment
from npuperf.suite.judging import Judging, simulated_htp
from npuperf.suite.run import Memo, Run, attempt, fail, git_commit, skip


def benchmark_runner(benchmark: Any) -> Callable[[Callable[[], None], int], None]:
    """Adapt pytest-benchmark's pedantic mode to measure.Runner (one call per round)."""

    def run(fn: Callable[[], None], rounds: int) -> None:
        benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=0)

    return run


class LatencySection:
    """Measures the grid on the engine under test and judges every case."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.judging = Judging(run, cases=len(self.specs))
        self._warm: Memo[WarmEngine] = Memo()
        self._lookup: Memo[baselines.Lookup] = Memo()
        self._identity: baselines.Identity | None = None
        self._provenance: dict[str, str] | None = None
        self._prompts: dict[str, Prompt] = {}
        self.background: dict[str, float | None] = {}  # case id -> other processes' cores while measured

    @property
    def specs(self) -> list[CaseSpec]:
        s = self.run.settings
        return case_specs(s.token_budgets, s.prompt_lengths, s.team_prompts)

    @property
    def records(self) -> list[CaseRecord]:
        """Every case judged so far, in order."""
        return self.judging.records

    @property
    def grid(self) -> Regression | None:
        return self.judging.grid

    @property
    def warm_engine(self) -> WarmEngine | None:
        """The loaded engine, if loading was asked for and succeeded."""
        return self._warm.value

    @property
    def lookup(self) -> baselines.Lookup | None:
        return self._lookup.value

    @property
    def identity(self) -> baselines.Identity | None:
        return self._identity

    @property
    def provenance(self) -> dict[str, str] | None:
        """This run's provenance (model hash, runtime versions, configs, commit), once the baseline was looked up."""
        return self._provenance

    # ----- engine ------------------------------------------------------------------------
    def _make_engine(self) -> Engine:
        s = self.run.settings
        model = self.run.model()
        extra = {
            "htp_perf_mode": s.htp_perf_mode,
            "genie_backend": s.genie_backend,
            "genie_lib": str(self.run.path(s.genie_lib)) if s.genie_lib else "",
            "backend_url": s.backend_url,
            "http_stream": "true" if s.http_stream else "false",
            "http_timeout_s": str(s.http_timeout_s),
            "http_tokenizer": str(self.run.http_tokenizer()),
        }
        engine = create_engine(s.engine, EngineOptions(model=model, provider=s.provider, extra=extra))
        if s.inject_slowdown or s.inject_stall:
            return SlowedEngine(engine, s.inject_slowdown, s.inject_stall)
        return engine

    def prompt(self, engine: Engine, spec: CaseSpec) -> Prompt:
        """The case's prompt under the engine's tokenizer (made once per shape)."""
        key = spec.prompt_key
        if key not in self._prompts:
            if spec.team_prompt is not None:
                self._prompts[key] = team_prompt(engine.tokenizer, spec.team_prompt)
            else:
                assert spec.prompt_tokens is not None
                self._prompts[key] = corpus_prompt(engine.tokenizer, spec.prompt_tokens)
        return self._prompts[key]

    def warm(self) -> WarmEngine:
        """Load and warm the engine once per session; later calls get the same engine, skip or failure."""
        return self._warm.get(self._load_and_warm)

    def _load_and_warm(self) -> WarmEngine:
        s = self.run.settings
        shapes = [CaseSpec(min(s.token_budgets), prompt_tokens=p) for p in sorted(s.prompt_lengths)]
        try:
            engine = self._make_engine()
            warm = load_and_warm(
                engine,
                lambda e: [self.prompt(e, spec) for spec in shapes] if self._fits_context(e) else [],
                new_tokens=min(s.token_budgets),
                warmup=s.warmup,
                progress=self.run.progress,
            )
        except EngineUnavailable as exc:
            skip(str(exc))
        except (EngineError, PromptError, OSError, ValueError) as exc:
            fail(f"engine {s.engine!r} with model {s.model!r}: {exc}")
        self._describe(warm)
        self.judging.floor = find_floor(self.run)
        return warm

    def _fits_context(self, engine: Engine) -> bool:
        """Once, right after loading: stop the run with a usage error if a case cannot fit the context."""
        problem = environment.over_context(self.run.settings, engine)
        if problem is not None:
            pytest.exit(problem, returncode=pytest.ExitCode.USAGE_ERROR)
        return True

    def _describe(self, warm: WarmEngine) -> None:
        """The environment table of the HTML report (pytest-metadata), once the engine is known."""
        environment.publish(self.run.config, self.environment(warm))
        if simulated_htp(warm.engine):
            self.run.notes.append(
                f"latency figures are HTP simulator figures ({warm.engine.info.provider}: Genie on this x86_64 "
                "machine), not device figures; the latency budget, breaker and load budget are shown, not applied"
            )

    def environment(self, warm: WarmEngine | None = None) -> dict[str, str]:
        """Machine, checkout and, once loaded, the engine: what the reports' environment tables show.

        ``warm`` is the engine being described while the session memo does not hold it yet.
        """
        return environment.describe(self.run, warm or self.warm_engine)

    def close(self) -> None:
        if self.warm_engine is not None:
            self.warm_engine.engine.close()

    # ----- baselines ---------------------------------------------------------------------
    def baseline(self, warm: WarmEngine) -> baselines.Lookup:
        """The accepted baseline file for this device, engine and model (looked up once)."""
        return self._lookup.get(lambda: self._find_baseline(warm))

    def _find_baseline(self, warm: WarmEngine) -> baselines.Lookup:
        info = warm.engine.info
        s = self.run.settings
        self._identity = baselines.Identity(
            device=device.fingerprint(), engine=info.engine, provider=info.provider, model_id=info.model_id
        )
        self._provenance = baselines.provenance(
            info.model_sha256, info.versions, {**info.config, **environment.suite_config(s)}, git_commit(self.run.root)
        )
        identity, now = self._identity, self._provenance
        root = self.run.path(s.baselines_dir)

        def find() -> baselines.Lookup:
            try:
                return baselines.find(root, identity, now, s.baseline_match)
            except baselines.BaselineError as exc:
                if not s.update_baselines:
                    raise
                # this identity's own file is unreadable: the recording sets it aside and replaces it
                self.run.notes.append(f"baseline unreadable, to be replaced by this recording: {exc}")
                return baselines.Lookup(path=root / identity.filename(), file=None)

        lookup = attempt(find, (baselines.BaselineError,), lambda exc: f"baseline: {exc}")
        self._note_lookup(lookup)
        return lookup

    def _note_lookup(self, lookup: baselines.Lookup) -> None:
        found, shown = lookup.file, self.run.show(lookup.path)
        if found is None:
            match = " with this model, runtimes and configs (--baseline-match strict)"
            self.run.notes.append(
                f"no accepted baseline at {shown}"
                + (match if lookup.near_misses and self.run.settings.baseline_match == "strict" else "")
            )
            self.run.notes.extend(f"  near miss: {m}" for m in lookup.near_misses)
            return
        source = self.run.show(lookup.source) if lookup.source is not None else shown
        if found.schema == "npuperf.baseline/1":
            self.run.notes.append(
                f"{source} is {found.schema}: no noise floor, so thresholds are the "
                "tolerance alone; re-record with --update-baselines to add one"
            )
        elif found.schema != baselines.SCHEMA:
            self.run.notes.append(
                f"{source} is {found.schema}: its key is read as identity + provenance; "
                f"--update-baselines writes {baselines.SCHEMA} to {shown}"
            )
        changed = self.changed_since(found)
        if changed:
            self.run.notes.append("changed since the baseline: " + "; ".join(changed))

    def changed_since(self, file: baselines.BaselineFile) -> list[str]:
        """What differs between this run and the provenance most of the baseline's cases were recorded with."""
        seen = [tuple(sorted(c.provenance.items())) for c in file.cases.values()]
        if not seen or self._provenance is None:
            return []
        common = max(set(seen), key=seen.count)
        return baselines.changes(dict(common), self._provenance)

    # ----- cases -------------------------------------------------------------------------
    def case(self, warm: WarmEngine, spec: CaseSpec) -> Case:
        return attempt(
            lambda: Case(new_tokens=spec.new_tokens, prompt=self.prompt(warm.engine, spec)),
            (PromptError,),
            lambda exc: f"case {spec.id}: {exc}",
        )

    def measure(self, warm: WarmEngine, case: Case, benchmark: Any) -> CaseResult:
        """R repetitions through pytest-benchmark's pedantic mode; every Generation kept."""
        benchmark.group = f"{case.new_tokens} new tokens"
        result, self.background[case.id] = attempt(
            lambda: self.run.meter.measure(
                lambda: measure_case(warm.engine, case, self.run.settings.repetitions, benchmark_runner(benchmark))
            ),
            (EngineError,),
            lambda exc: f"{case.label}: {exc}",
        )
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
        """Judge a measured case against its budget, the breaker and the baseline (see Judging.verify)."""
        background = self.background.get(result.case.id)
        return self.judging.verify(warm, result, lookup, node, self._provenance or {}, background)

    def check_grid(self, warm: WarmEngine, lookup: baselines.Lookup) -> Regression:
        """Is the whole grid slower than its baseline? (see Judging.check_grid)"""
        changed = self.changed_since(lookup.file) if lookup.file is not None else []
        return self.judging.check_grid(warm, lookup, changed)

    # ----- load and the cold call ---------------------------------------------------------
    def check_load(self, warm: WarmEngine) -> Check:
        return self.run.enforce(_on_simulator(warm, load_budget(warm.load_s, self.run.settings.load_budget_s)))

    def check_cold_call(self, warm: WarmEngine) -> Check:
        cold = warm.cold
        label = f"cold first call ({cold.requested_new_tokens} tokens / {cold.prompt_tokens}-token prompt)"
        check = circuit_breaker(label, cold.latency_ms, self.run.settings.breaker_ms)
        warm_ms = warm.warm_latency_ms
        if warm_ms:
            check = replace(
                check,
                message=f"{check.message}; warm median {warm_ms:.1f} ms (cold is x{cold.latency_ms / warm_ms:.1f})",
            )
        return self.run.enforce(_on_simulator(warm, check))


def _on_simulator(warm: WarmEngine, check: Check) -> Check:
    """A figure of the HTP simulator is shown against the device's limit, not judged by it."""
    if not simulated_htp(warm.engine):
        return check
    return replace(check, outcome=Outcome.OK, message=f"{check.message} (HTP simulator: not applied)")


def find_floor(run: Run) -> floor.Floor | None:
    """The decode floor of the model under test (npuperf.floor), with a note saying what it rests
    on; a model without files to read it from is a note, never a failure (and measures nothing)."""
    s = run.settings
    model = Path(run.model()) if s.model else None
    if model is None or not (model.is_dir() or (s.engine == "genie" and model.is_file())):
        run.notes.append(f"decode floor: not computed (engine {s.engine!r} has no model files to read it from)")
        return None
    try:
        bandwidth = floor.choose_bandwidth(
            s.memory_bandwidth, s.engine == "genie" or s.provider == "qnn", device.cpu_model()
        )
        found = floor.for_model(s.engine, model, bandwidth)
    except (floor.FloorError, OSError, ValueError, KeyError) as exc:
        run.notes.append(f"decode floor: not computed ({exc})")
        return None
    run.notes.append(
        f"decode floor: {found.weight_bytes / 1e6:.1f} MB of weights per step ({found.weights_source}) + "
        f"{found.kv_bytes_per_position / 1e3:.1f} kB of KV cache per position, at "
        f"{found.bandwidth.gb_per_s:.3g} GB/s ({found.bandwidth.source})"
    )
    return found
