"""Judging measured cases: budget, breaker and baseline per case (confirmed on re-run), the
Holm family over the grid, and the whole-grid test."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import pytest

from npuperf.engines.base import Engine, EngineError
from npuperf.judge import baselines
from npuperf.judge.stats import OnlineHolm
from npuperf.judge.verdict import (
    CaseVerdict,
    Check,
    Outcome,
    Regression,
    confirmed,
    cpu_offload,
    evaluate_case,
    grid_regression,
    memory_budget,
)
from npuperf.machine.device import htp_simulated
from npuperf.measure import METRICS, Case, CaseResult, WarmEngine, measure_case
from npuperf.models.floor import Floor
from npuperf.report import CaseRecord, properties
from npuperf.suite.run import Run, attempt, fail, skip

# judge(measured, Holm family or None, other processes' cores while measured) -> verdict
Judge = Callable[[CaseResult, OnlineHolm | None, float | None], CaseVerdict]


class NoBaselineWarning(UserWarning):
    """A case ran without an accepted baseline to compare against."""


class Judging:
    """The verdicts of a run: one record per case, the grid's Holm family, the grid test."""

    def __init__(self, run: Run, cases: int) -> None:
        self.run = run
        self.records: list[CaseRecord] = []
        self.grid: Regression | None = None
        self._size = cases * len(METRICS)  # every case x metric is one hypothesis
        self._family: OnlineHolm | None = None
        self._hypotheses: list[tuple[str, str]] = []
        self._rejected_online: set[tuple[str, str]] = set()
        self.floor: Floor | None = None  # the model's decode floor, when its files told it

    def verify(
        self,
        warm: WarmEngine,
        result: CaseResult,
        lookup: baselines.Lookup,
        node: pytest.Item,
        provenance: Mapping[str, str],
        background: float | None = None,
    ) -> CaseRecord:
        """Decide every check of a case, record it for the reports, fail the test on a failure.

        A case that looks regressed is re-measured (confirm-on-fail: up to --confirm-runs
        times, the k-th after k x --confirm-pause-s) and fails only if every re-run confirms
        it, so a slow spell of a shared machine does not fail the run.
        """
        s = self.run.settings
        judge = self._judge(result.case, lookup, simulated_htp(warm.engine))
        verdict = judge(result, self.family(), background)
        self._hypotheses.extend((result.case.id, r.metric) for r in verdict.regressions)
        self._rejected_online.update((result.case.id, r.metric) for r in verdict.regressions if r.failed)
        base = lookup.file.cases.get(result.case.id) if lookup.file is not None else None
        # a missing baseline failed by --require-baseline is not a regression to re-measure
        if base is not None and any(r.failed for r in verdict.regressions):
            result, verdict, background = self._confirm(warm, result, verdict, judge, background)
        if base is not None:
            verdict = told_what_changed(verdict, baselines.changes(base.provenance, provenance))
        budget = s.budget_for(result.case.id)
        floors = self._floors(result, budget)
        if floors[2]:
            verdict = below_the_floor(verdict, floors[2])
        record = CaseRecord(
            result=result,
            verdict=verdict,
            budget_ms=budget,
            background_cores=background,
            baseline_recorded_at=None if base is None else base.recorded_at,
            floor_ms=floors[0],
            latency_floor_ms=floors[1],
            infeasible=floors[2],
        )
        self.records.append(record)
        node.user_properties.extend(properties(record))  # JUnit XML's and the HTML table's figures
        no_baseline = lookup.file is None or result.case.id not in lookup.file.cases
        if no_baseline and not s.require_baseline:
            warnings.warn(
                NoBaselineWarning(
                    f"no accepted baseline in {lookup.path.name}; these cases were not compared "
                    "(record one with --update-baselines)"
                ),
                stacklevel=2,
            )
        self.run.notes.extend(case_notes(result))
        if verdict.failures:
            fail("\n".join(c.message for c in verdict.failures))
        if s.fail_inconclusive and verdict.outcome is Outcome.INCONCLUSIVE:
            inconclusive = [c.message for c in verdict.checks if c.outcome is Outcome.INCONCLUSIVE]
            fail("\n".join(inconclusive) + "\n(--fail-inconclusive is set)")
        return record

    def _floors(self, result: CaseResult, budget_ms: float) -> tuple[float | None, float | None, str]:
        """(decode floor per token, latency floor, the arithmetic when the budget is below it)."""
        if self.floor is None:
            return None, None, ""
        lo, hi = result.tokens_generated
        p, n = result.case.prompt.tokens, round((lo + hi) / 2)
        latency = self.floor.latency_ms(p, n)
        return (
            self.floor.decode_ms(p, n),
            latency,
            self.floor.arithmetic(p, n, budget_ms) if latency > budget_ms else "",
        )

    def _judge(self, case: Case, lookup: baselines.Lookup, simulated: bool) -> Judge:
        """The verdict function of one case against its baseline entry (checked to be for this case)."""
        s = self.run.settings
        base = lookup.file.cases.get(case.id) if lookup.file is not None else None
        if base is not None and (base.prompt_tokens, base.new_tokens) != (case.prompt.tokens, case.new_tokens):
            fail(
                f"{case.label}: baseline entry {case.id} in {self.run.show(lookup.path)} is for "
                f"{base.new_tokens} tokens / {base.prompt_tokens}-token prompt; re-record with --update-baselines"
            )
        file = lookup.file
        noise = {m: f for m in METRICS if file and (f := file.noise_floor(case.id, m)) is not None}

        def judge(measured: CaseResult, family: OnlineHolm | None, background: float | None) -> CaseVerdict:
            busy = self.run.busy(background) and s.busy_tolerance > s.tolerance
            verdict = evaluate_case(
                case.label,
                {m: measured.samples(m) for m in METRICS},
                budget_ms=s.budget_for(case.id),
                breaker_ms=s.breaker_ms,
                baseline=None if base is None else base.samples,
                tolerance=s.busy_tolerance if busy else s.tolerance,
                noise=noise,
                noise_k=s.noise_k,
                min_delta_ms=s.min_regression_ms,
                family=family,
                alpha=s.alpha,
                new_tokens=case.new_tokens,
                require_baseline=s.require_baseline,
                enforce_regression=not s.update_baselines,
                simulated=simulated,
            )
            verdict = CaseVerdict(checks=verdict.checks + tuple(self._usage_checks(case.label, measured, simulated)))
            return told(verdict, [busy_reason(background, s.max_background_cores, s.busy_tolerance)] if busy else [])

        return judge

    def _usage_checks(self, label: str, measured: CaseResult, simulated: bool) -> list[Check]:
        """CPU during decode for the NPU engines (--max-cpu-cores), memory with --memory-budget-mb."""
        s = self.run.settings
        checks: list[Check] = []
        if s.max_cpu_cores and (s.engine == "genie" or s.provider == "qnn") and measured.usage:
            # Genie says so in its provider; the QNN EP of x86_64 onnxruntime-qnn is always the simulator
            sim = simulated or (s.provider == "qnn" and htp_simulated())
            checks.append(cpu_offload(label, measured.decode_cpu_cores, s.max_cpu_cores, sim))
        if s.memory_budget_mb and measured.peak_rss_mb is not None:
            checks.append(memory_budget(label, measured.peak_rss_mb, s.memory_budget_mb))
        return checks

    def _confirm(
        self,
        warm: WarmEngine,
        result: CaseResult,
        verdict: CaseVerdict,
        judge: Judge,
        background: float | None,
    ) -> tuple[CaseResult, CaseVerdict, float | None]:
        """Re-measure a case that looks regressed; it stays regressed only if every re-run agrees."""
        s = self.run.settings
        case = result.case
        reruns: list[CaseVerdict] = []
        for attempt_no in range(1, s.confirm_runs + 1):
            time.sleep(s.confirm_pause_s * attempt_no)  # 1 s, then 2 s: outlast a slow spell
            result, background = attempt(
                lambda: self.run.meter.measure(lambda: measure_case(warm.engine, case, s.repetitions)),
                (EngineError,),
                lambda exc: f"{case.label}: re-run to confirm a regression failed: {exc}",
            )
            # each re-run re-tests hypotheses Holm already rejected, at alpha on its own
            reruns.append(judge(result, None, background))
            if not any(r.failed for r in reruns[-1].regressions):
                break
        return result, confirmed(verdict, reruns), background

    # ----- the whole grid ------------------------------------------------------------------
    def check_grid(self, warm: WarmEngine, lookup: baselines.Lookup, changed: Sequence[str] = ()) -> Regression:
        """Is the whole grid slower than its baseline? Confirmed by one re-measurement of every case."""
        s = self.run.settings
        file = lookup.file
        if file is None:
            skip("no accepted baseline: the grid cannot be compared")
        measured = [r for r in self.records if r.case_id in file.cases]
        if not measured:
            skip("no case of this run has a baseline entry")
        floor = file.grid_noise("latency_ms")
        cores = [r.background_cores for r in measured if r.background_cores is not None]

        def judge(results: list[CaseResult], background: float | None) -> Regression:
            pairs = [(r.samples("latency_ms"), file.cases[r.case.id].samples["latency_ms"]) for r in results]
            busy = self.run.busy(background) and s.busy_tolerance > s.grid_tolerance
            tolerance = s.busy_tolerance if busy else s.grid_tolerance
            grid = grid_regression(pairs, tolerance=tolerance, noise_floor=floor, noise_k=s.noise_k, alpha=s.alpha)
            if busy:
                grid = replace(
                    grid, message=f"{grid.message}; {busy_reason(background, s.max_background_cores, tolerance)}"
                )
            return grid

        grid = judge([r.result for r in measured], sum(cores) / len(cores) if cores else None)
        if grid.failed and s.confirm_runs:
            time.sleep(s.confirm_pause_s)
            self.run.progress(f"grid looks regressed; re-measuring {len(measured)} case(s) to confirm")
            again = judge(
                *self.run.meter.measure(
                    lambda: [measure_case(warm.engine, r.result.case, s.repetitions) for r in measured]
                )
            )
            note = (
                f" (confirmed on re-run; first run {(grid.ratio - 1) * 100:+.1f}%)"
                if again.failed
                else f"; first run looked regressed ({(grid.ratio - 1) * 100:+.1f}%), not confirmed on re-run"
            )
            grid = replace(again, message=again.message + note)
        if changed:
            grid = replace(grid, message=grid.message + "; changed since the baseline: " + "; ".join(changed))
        if grid.failed and s.update_baselines:
            grid = replace(
                grid, outcome=Outcome.INCONCLUSIVE, message=grid.message + " (not enforced: accepting new baselines)"
            )
        self.grid = grid
        if grid.failed:
            fail(grid.message)
        if s.fail_inconclusive and grid.outcome is Outcome.INCONCLUSIVE:
            fail(grid.message + "\n(--fail-inconclusive is set)")
        return grid

    def family(self) -> OnlineHolm:
        """The regression hypotheses of the whole grid: every case x metric, under Holm."""
        if self._family is None:
            self._family = OnlineHolm(self._size, self.run.settings.alpha)
        return self._family

    def late_rejections(self) -> list[tuple[str, str]]:
        """Hypotheses full-grid Holm rejects that the online decision (made per case) did not."""
        if self._family is None:
            return []
        final = self._family.final()
        return [h for h, rej in zip(self._hypotheses, final, strict=False) if rej and h not in self._rejected_online]


def simulated_htp(engine: Engine) -> bool:
    """Does the engine run on the HTP simulator (its provider says so: Genie's C API on x86_64)?"""
    return engine.info.provider.endswith("-simulator")


def below_the_floor(verdict: CaseVerdict, arithmetic: str) -> CaseVerdict:
    """The latency budget check of a case whose budget is below the physical floor says so."""
    return CaseVerdict(
        checks=tuple(
            replace(c, message=f"{c.message}; the decode floor makes it impossible here: {arithmetic}")
            if c.name == "latency budget"
            else c
            for c in verdict.checks
        )
    )


def told_what_changed(verdict: CaseVerdict, changed: Sequence[str]) -> CaseVerdict:
    """Every comparison with the baseline says what changed since it was recorded, e.g.
    ``...: REGRESSED; changed since the baseline: model sha256 1ae3c977 -> 3363cb49``."""
    return told(verdict, ["changed since the baseline: " + "; ".join(changed)] if changed else [])


def busy_reason(cores: float | None, limit: float, tolerance: float) -> str:
    return (
        f"the machine was busy (other processes kept {cores or 0:.2f} cores busy; limit {limit:g}), "
        f"so the threshold is {tolerance:.0%}"
    )


def told(verdict: CaseVerdict, reasons: Sequence[str]) -> CaseVerdict:
    """Every comparison with the baseline gets ``reasons`` appended to its message."""
    if not reasons:
        return verdict
    tail = "".join(f"; {r}" for r in reasons)
    return CaseVerdict(
        checks=tuple(
            replace(c, message=c.message + tail)
            if isinstance(c, Regression) and c.outcome is not Outcome.NO_BASELINE
            else c
            for c in verdict.checks
        )
    )


def case_notes(result: CaseResult) -> list[str]:
    """What the summary should say about how a case ran: early stops, overshoot, timing sources."""
    case_id, notes = result.case.id, []
    if result.stopped_early:
        notes.append(f"{case_id}: {result.stopped_early} repetition(s) stopped before the budget")
    if result.over_budget:
        notes.append(
            f"{case_id}: {result.over_budget} repetition(s) generated more tokens than the budget "
            f"(up to {result.tokens_generated[1]}; the runtime stops asynchronously); per-token figures use "
            "the real count"
        )
    reported = result.device_medians()
    if "client_first_text_ms" in reported and "device_ttft_ms" in reported:
        notes.append(
            f"{case_id}: TTFT {reported['device_ttft_ms']:.1f} ms from the runtime's profile (device clock); "
            f"first text seen by the client at {reported['client_first_text_ms']:.1f} ms (polled callback, "
            "coarse); latency from the client clock"
        )
    return notes
