"""The latency section: the grid measured once up front (worker processes: suite/measuring.py), the
engine's load and cold calls, the baseline (or an A/B run's reference), the verdicts decided
together (suite/judging.py), and each case's test reporting its own."""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from npuperf.judge import baselines
from npuperf.judge.verdict import Check, Outcome, Regression, circuit_breaker, load_budget
from npuperf.machine import device
from npuperf.machine.host import host_id
from npuperf.measure import CaseResult, CaseSpec, Loaded, ProcessRun, case_specs
from npuperf.models import floor
from npuperf.report import CaseRecord, properties
from npuperf.suite import environment
from npuperf.suite.judging import Judging, case_notes, simulated_htp
from npuperf.suite.lookup import BaselineFinder
from npuperf.suite.measuring import Measuring
from npuperf.suite.recording import Recording
from npuperf.suite.reference import Reference, from_ab, from_baseline
from npuperf.suite.run import Memo, Run, fail, git_commit, not_judged, skip


class NoBaselineWarning(UserWarning):
    """A case ran without an accepted baseline to compare against."""


class Replay:
    """A clock for pytest-benchmark that replays measured latencies: each call of ``step`` moves it
    on by the next one, so pytest-benchmark's statistics are those of the worker processes'
    generations (its ``timer`` option, set per test with ``pytest.mark.benchmark``)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.pending: list[float] = []

    def __call__(self) -> float:
        return self.now

    def load(self, latencies_ms: Sequence[float]) -> None:
        self.pending = [ms / 1000 for ms in latencies_ms]

    def step(self) -> None:
        self.now += self.pending.pop(0) if self.pending else 0.0


class LatencySection:
    """Measures the selected grid, judges every case, and lets each test report its case."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.measuring = Measuring(run)
        self.judging = Judging(run, self.measuring)
        self.recording = Recording(run, self.measuring)
        self.main: list[ProcessRun] = []
        self.main_s = 0.0
        self._loaded: Memo[Loaded] = Memo()
        self._lookup: Memo[baselines.Lookup] = Memo()
        self._judged: Memo[bool] = Memo()
        self.finder = BaselineFinder(run, self.measuring)
        self.reference: Reference | None = None
        self.replays: dict[str, Replay] = {}

    @property
    def specs(self) -> list[CaseSpec]:
        s = self.run.settings
        return case_specs(s.token_budgets, s.prompt_lengths, s.team_prompts)

    @property
    def selected(self) -> list[CaseSpec]:
        """The latency cases this run measures: those pytest selected (-k, -m), all by default."""
        return self.measuring.selected if self.measuring.selected is not None else self.specs

    @property
    def records(self) -> list[CaseRecord]:
        return self.judging.records

    @property
    def grid(self) -> Regression | None:
        return self.judging.grid

    @property
    def loaded(self) -> Loaded | None:
        """The engine as loaded by the run's processes, once they ran."""
        return self._loaded.value

    @property
    def lookup(self) -> baselines.Lookup | None:
        return self._lookup.value

    @property
    def identity(self) -> baselines.Identity | None:
        return self.finder.identity

    @property
    def provenance(self) -> dict[str, str] | None:
        """This run's provenance (host, model hash, runtime versions, configs, commit), once looked up."""
        return self.finder.provenance

    # ----- measuring -------------------------------------------------------------------------
    def load(self) -> Loaded:
        """Measure the selected grid once (each process loads the engine, makes its cold call, warms
        up, then measures every case); later calls get the same, or the same skip or failure."""
        return self._loaded.get(self._measure)

    def _measure(self) -> Loaded:
        m = self.measuring
        if not self.selected:
            fail("no latency case is selected (-k/-m left none)")
        where = "in this process" if m.in_process else f"in {m.per_pass} fresh processes"
        what = " (A/B: each process of the model beside one of the reference)" if m.ab else ""
        self.run.progress(f"measuring {len(self.selected)} case(s) {where}{what}")
        start = time.monotonic()
        self.main = m.measure(self.selected, m.per_pass, "measuring")
        self.main_s = time.monotonic() - start
        mine = [r for r in self.main if r.side in ("", "B")]
        loaded = Loaded(info=mine[0].info, runs=tuple(mine), engine=m.local_engine)
        self._describe(loaded)
        self.judging.floor = find_floor(self.run)
        return loaded

    def _describe(self, loaded: Loaded) -> None:
        """The environment table of the HTML report (pytest-metadata), once the engine is known."""
        environment.publish(self.run.config, self.environment(loaded))
        if simulated_htp(loaded.info.provider):
            self.run.notes.append(
                f"latency figures are HTP simulator figures ({loaded.info.provider}: Genie on this x86_64 "
                "machine), not device figures; the latency budget, breaker and load budget are shown, not applied"
            )

    def environment(self, loaded: Loaded | None = None) -> dict[str, str]:
        """Machine, checkout and, once loaded, the engine: what the reports' environment tables show."""
        return environment.describe(self.run, loaded or self.loaded, self.measuring)

    def close(self) -> None:
        self.measuring.close()

    # ----- the baseline --------------------------------------------------------------------------
    def baseline(self, loaded: Loaded) -> baselines.Lookup:
        """The accepted baseline file for this device, engine and model (looked up once)."""
        return self._lookup.get(lambda: self.finder.find(loaded))

    def changed_since(self, file: baselines.BaselineFile) -> list[str]:
        return self.finder.changed_since(file)

    # ----- judging ---------------------------------------------------------------------------------
    def judge(self, loaded: Loaded, lookup: baselines.Lookup) -> None:
        """Decide every case and the grid, once (the first case's test triggers it)."""
        self._judged.get(lambda: self._judge(loaded, lookup))

    def _judge(self, loaded: Loaded, lookup: baselines.Lookup) -> bool:
        s = self.run.settings
        mine = [r for r in self.main if r.side in ("", "B")]
        results = self._combined(mine)
        if self.measuring.ab:
            theirs = [r for r in self.main if r.side == "A"]
            what = f"--ab-model {s.ab_model}" if s.ab_model else f"--ab-python {s.ab_python}"
            self.reference = from_ab(self._combined(theirs), self._ab_provenance(theirs), what)
        elif lookup.file is not None:
            advisory = ""
            if lookup.other_host:
                advisory = (
                    f"against a baseline recorded on another host ({lookup.file.identity.host_name}), it compares two "
                    "machines, not a change (--cross-host strict fails it)"
                )
            self.reference = from_baseline(lookup.file, advisory)
        if s.update_baselines:
            results = self.recording.record(self.main, self.main_s, self.selected)
        self.judging.judge(
            results, self.selected, self.reference, self.provenance or {}, simulated_htp(loaded.info.provider)
        )
        return True

    @staticmethod
    def _combined(runs: Sequence[ProcessRun]) -> dict[str, CaseResult]:
        ids = dict.fromkeys(cid for r in runs for cid in r.cases)
        return {cid: CaseResult.combined([r.cases[cid] for r in runs if cid in r.cases]) for cid in ids}

    def _ab_provenance(self, runs: Sequence[ProcessRun]) -> dict[str, str]:
        info = runs[0].info
        s = self.run.settings
        return baselines.provenance(
            info.model_sha256,
            info.versions,
            {**info.config, **environment.suite_config(s)},
            git_commit(self.run.root),
            host=host_id(),
        )

    # ----- each test -----------------------------------------------------------------------------
    def report(
        self, loaded: Loaded, lookup: baselines.Lookup, spec: CaseSpec, benchmark: Any, node: pytest.Item
    ) -> CaseRecord:
        """This case's verdict: its figures into pytest-benchmark, JUnit XML and the HTML table; its
        test fails on a failed check and is NOT JUDGED (a skip of its own kind) when it could not be judged."""
        s = self.run.settings
        self.judge(loaded, lookup)
        record = self.judging.record(spec.id)
        if record is None:
            fail(f"{spec.id}: no process measured this case")
        self._replay(record, benchmark)
        node.user_properties.extend(properties(record))
        no_reference = self.reference is None or not self.reference.has(spec.id)
        if no_reference and not s.require_baseline:
            warnings.warn(
                NoBaselineWarning(
                    f"no accepted baseline in {lookup.path.name}; these cases were not compared "
                    "(record one with --update-baselines)"
                ),
                stacklevel=2,
            )
        self.run.notes.extend(case_notes(record.result))
        verdict = record.verdict
        if verdict.failures:
            fail("\n".join(c.message for c in verdict.failures))
        if verdict.outcome is Outcome.NOT_JUDGED:
            not_judged("\n".join(c.message for c in verdict.checks if c.outcome is Outcome.NOT_JUDGED))
        if s.fail_inconclusive and verdict.outcome is Outcome.INCONCLUSIVE:
            inconclusive = [c.message for c in verdict.checks if c.outcome is Outcome.INCONCLUSIVE]
            fail("\n".join(inconclusive) + "\n(--fail-inconclusive is set)")
        return record

    def _replay(self, record: CaseRecord, benchmark: Any) -> None:
        replay = self.replays.get(record.case_id)
        result = record.result
        benchmark.group = f"{result.case.new_tokens} new tokens"
        benchmark.extra_info.update(
            {
                "npuperf_case": record.case_id,
                "median_latency_ms": result.latency.median,
                "median_ttft_ms": result.ttft.median,
                "median_tpot_ms": None if result.tpot is None else result.tpot.median,
                "processes": len(result.process_ids),
            }
        )
        if replay is not None:  # pytest-benchmark's figures are the processes' generations, replayed
            samples = result.samples("latency_ms")
            replay.load(samples)
            benchmark.pedantic(replay.step, rounds=len(samples), iterations=1, warmup_rounds=0)

    def report_grid(self, loaded: Loaded, lookup: baselines.Lookup) -> Regression:
        """Is the whole grid slower than its reference? (decided with the cases)"""
        s = self.run.settings
        self.judge(loaded, lookup)
        grid = self.grid
        if grid is None:
            skip(
                "no accepted baseline: the grid cannot be compared"
                if self.reference is None
                else "no case of this run has a baseline entry"
            )
        if grid.failed:
            fail(grid.message)
        if grid.outcome is Outcome.NOT_JUDGED:
            not_judged(grid.message)
        if s.fail_inconclusive and grid.outcome is Outcome.INCONCLUSIVE:
            fail(grid.message + "\n(--fail-inconclusive is set)")
        return grid

    # ----- load and the cold call -----------------------------------------------------------------
    def check_load(self, loaded: Loaded) -> Check:
        check = load_budget(loaded.load_s, self.run.settings.load_budget_s)
        loads = loaded.load_times
        if len(loads) > 1:
            check = replace(
                check,
                message=f"{check.message} (the slowest of {len(loads)} processes' loads; fastest {min(loads):.2f} s)",
            )
        return self.run.enforce(_on_simulator(loaded, check))

    def check_cold_call(self, loaded: Loaded) -> Check:
        cold = loaded.cold
        label = f"cold first call ({cold.requested_new_tokens} tokens / {cold.prompt_tokens}-token prompt)"
        check = circuit_breaker(label, cold.latency_ms, self.run.settings.breaker_ms)
        warm_ms = loaded.warm_latency_ms
        many = len(loaded.cold_latencies)
        if many > 1:
            check = replace(check, message=f"{check.message} (the slowest of {many} processes' first calls)")
        if warm_ms:
            check = replace(
                check,
                message=f"{check.message}; warm median {warm_ms:.1f} ms (cold is x{cold.latency_ms / warm_ms:.1f})",
            )
        return self.run.enforce(_on_simulator(loaded, check))


def _on_simulator(loaded: Loaded, check: Check) -> Check:
    """A figure of the HTP simulator is shown against the device's limit, not judged by it."""
    if not simulated_htp(loaded.info.provider):
        return check
    return replace(check, outcome=Outcome.OK, message=f"{check.message} (HTP simulator: not applied)")


def find_floor(run: Run) -> floor.Floor | None:
    """The decode floor of the model under test (npuperf.models.floor), with a note saying what it rests
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
