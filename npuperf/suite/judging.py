"""Judging the measured grid, once, before any case's test reports: budget, breaker and the
reference per case with Holm over every comparison of the grid (after suite/settling.py measured
a busy machine's cases again), a case that looks regressed confirmed in new processes, and the
whole-grid test."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace

from npuperf.judge.stats import holm
from npuperf.judge.verdict import (
    CaseVerdict,
    Check,
    Outcome,
    Policy,
    Regression,
    comparisons,
    confirmed,
    cpu_offload,
    evaluate_case,
    grid_regression,
    memory_budget,
)
from npuperf.machine.device import htp_simulated
from npuperf.measure import METRICS, CaseResult, CaseSpec
from npuperf.models.floor import Floor
from npuperf.report import CaseRecord
from npuperf.settings import Settings
from npuperf.suite.measuring import Measuring
from npuperf.suite.reference import Reference
from npuperf.suite.run import Run
from npuperf.suite.settling import Busy, Settling


class Judging:
    """The verdicts of a run: one record per case and the grid test, decided together."""

    def __init__(self, run: Run, measuring: Measuring) -> None:
        self.run = run
        self.measuring = measuring
        self.records: list[CaseRecord] = []
        self.grid: Regression | None = None
        self.floor: Floor | None = None  # the model's decode floor, when its files told it
        self.settling = Settling(run, measuring)
        self.specs: dict[str, CaseSpec] = {}

    @property
    def busy(self) -> dict[str, Busy]:
        """The cases measured on a busy machine that stayed busy, and how busy."""
        return self.settling.busy

    # ----- the whole run -----------------------------------------------------------------------
    def judge(
        self,
        results: Mapping[str, CaseResult],
        specs: Sequence[CaseSpec],
        reference: Reference | None,
        provenance: Mapping[str, str],
        simulated: bool,
    ) -> None:
        """Decide every case and the grid (re-measuring where the machine was busy or a case looks
        regressed); the records and the grid are then what each test reports."""
        self.specs = {s.id: s for s in specs}
        self.settling.specs = self.specs
        results = self.settling.settle(dict(results))
        verdicts = self._verdicts(results, reference, simulated)
        verdicts, results = self._confirm(verdicts, results, reference, simulated)
        self.grid = self._grid(results, reference, provenance) if reference is not None else None
        self.records = [
            self._record(results[cid], verdicts[cid], reference, provenance) for cid in self.specs if cid in results
        ]

    # ----- per case ----------------------------------------------------------------------------
    def _policy(self, reference: Reference | None) -> Policy:
        s = self.run.settings
        advisory = reference.advisory if reference is not None and s.cross_host == "advisory" else ""
        return Policy(
            require_baseline=s.require_baseline and not self.measuring.ab,
            enforce_regression=not s.update_baselines,
            advisory=advisory,
        )

    def _verdicts(
        self, results: Mapping[str, CaseResult], reference: Reference | None, simulated: bool
    ) -> dict[str, CaseVerdict]:
        """Every case's verdict; significance by Holm over every comparison of the grid at once."""
        s = self.run.settings
        compared = {cid: self._compare(r, reference) for cid, r in results.items()}
        flat = [(cid, i) for cid, regs in compared.items() for i, reg in enumerate(regs)]
        p_values = [compared[cid][i].p_value if compared[cid][i].candidate else 1.0 for cid, i in flat]
        rejected = holm(p_values, s.alpha) if p_values else []
        significant: dict[str, list[bool]] = {cid: [] for cid in compared}
        for (cid, _), rej in zip(flat, rejected, strict=True):
            significant[cid].append(rej)
        return {
            cid: self._evaluate(results[cid], reference, simulated, compared[cid], significant[cid]) for cid in results
        }

    def _compare(self, result: CaseResult, reference: Reference | None) -> list[Regression]:
        s = self.run.settings
        cid = result.case.id
        base = reference_of(result, reference)
        return comparisons(
            result.case.label,
            {m: result.groups(m) for m in METRICS},
            base,  # type: ignore[arg-type]
            tolerance=s.tolerance,
            noise={m: f for m in METRICS if reference and (f := reference.noise_floor(cid, m)) is not None},
            noise_k=s.noise_k,
            min_delta_ms=s.min_regression_ms,
            new_tokens=result.case.new_tokens,
            busy_tolerance=s.busy_tolerance if cid in self.busy else None,
            paired=reference is not None and reference.paired,
        )

    def _evaluate(
        self,
        result: CaseResult,
        reference: Reference | None,
        simulated: bool,
        compared: Sequence[Regression] | None = None,
        significant: Sequence[bool] | None = None,
    ) -> CaseVerdict:
        s = self.run.settings
        cid = result.case.id
        verdict = evaluate_case(
            result.case.label,
            {m: result.groups(m) for m in METRICS},
            budget_ms=s.budget_for(cid),
            breaker_ms=s.breaker_ms,
            baseline=reference_of(result, reference),  # type: ignore[arg-type]
            tolerance=s.tolerance,
            alpha=s.alpha,
            new_tokens=result.case.new_tokens,
            policy=self._policy(reference),
            simulated=simulated,
            busy_tolerance=s.busy_tolerance if cid in self.busy else None,
            paired=reference is not None and reference.paired,
            compared=compared,
            significant=significant,
        )
        extra = usage_checks(self.run.settings, result.case.label, result, simulated)
        if reference is not None and reference.has(cid) and reference_of(result, reference) is None:
            base_prompt, base_tokens = reference.shape[cid]
            extra.append(
                Check(
                    "baseline entry",
                    Outcome.FAILED,
                    0.0,
                    0.0,
                    f"{result.case.label}: the {reference.describe}'s entry {cid} is for {base_tokens} tokens / "
                    f"{base_prompt}-token prompt; re-record with --update-baselines",
                )
            )
        verdict = CaseVerdict(checks=verdict.checks + tuple(extra))
        return told(verdict, [self.settling.reason(cid)] if cid in self.busy else [])

    # ----- confirmation ------------------------------------------------------------------------
    def _confirm(
        self,
        verdicts: dict[str, CaseVerdict],
        results: dict[str, CaseResult],
        reference: Reference | None,
        simulated: bool,
    ) -> tuple[dict[str, CaseVerdict], dict[str, CaseResult]]:
        """Cases that look regressed, measured again in new processes (after 1 s, then 2 s:
        --confirm-runs, --confirm-pause-s); each stays REGRESSED only if every re-run agrees."""
        s = self.run.settings
        # a missing baseline failed by --require-baseline is not a regression to re-measure
        pending = [cid for cid, v in verdicts.items() if any(r.failed and r.baseline_median for r in v.regressions)]
        if not pending or not s.confirm_runs or self.measuring.ab:
            return verdicts, results
        reruns: dict[str, list[CaseVerdict]] = {cid: [] for cid in pending}
        for attempt_no in range(1, s.confirm_runs + 1):
            if not pending:
                break
            time.sleep(s.confirm_pause_s * attempt_no)  # 1 s, then 2 s: outlast a slow spell
            runs = self.measuring.measure(
                [self.specs[cid] for cid in pending],
                self.measuring.per_pass,
                f"confirming {len(pending)} case(s) that look regressed (re-run {attempt_no})",
            )
            fresh = {cid: CaseResult.combined([r.cases[cid] for r in runs if cid in r.cases]) for cid in pending}
            fresh = self.settling.settle(fresh)
            for cid in pending:
                results[cid] = fresh[cid]
                # each re-run re-tests hypotheses Holm already rejected, at alpha on its own
                reruns[cid].append(self._evaluate(fresh[cid], reference, simulated))
            pending = [
                cid for cid in pending if any(r.failed and r.baseline_median for r in reruns[cid][-1].regressions)
            ]
        return {cid: confirmed(v, reruns.get(cid, [])) for cid, v in verdicts.items()}, results

    # ----- the whole grid ----------------------------------------------------------------------
    def _grid(
        self, results: Mapping[str, CaseResult], reference: Reference, provenance: Mapping[str, str]
    ) -> Regression | None:
        """Is the grid as a whole slower (the median case's ratio)? Confirmed on a new pass."""
        s = self.run.settings
        measured = [cid for cid in results if reference.has(cid)]
        if not measured:
            return None
        grid = self._grid_of(results, measured, reference)
        if grid.failed and s.confirm_runs and not self.measuring.ab:
            time.sleep(s.confirm_pause_s)
            runs = self.measuring.measure(
                [self.specs[cid] for cid in measured],
                self.measuring.per_pass,
                "the grid looks regressed: every case again, to confirm",
            )
            fresh = {cid: CaseResult.combined([r.cases[cid] for r in runs if cid in r.cases]) for cid in measured}
            again = self._grid_of(self.settling.settle(fresh), measured, reference)
            note = (
                f" (confirmed on re-run; first run {(grid.ratio - 1) * 100:+.1f}%)"
                if again.failed
                else f"; first run looked regressed ({(grid.ratio - 1) * 100:+.1f}%), not confirmed on re-run"
            )
            grid = replace(again, message=again.message + note)
        changed = changed_since(reference, measured, provenance)
        if changed:
            grid = replace(
                grid, message=grid.message + f"; changed since the {reference.describe}: " + "; ".join(changed)
            )
        if grid.failed and s.update_baselines:
            grid = replace(
                grid, outcome=Outcome.INCONCLUSIVE, message=grid.message + " (not enforced: accepting new baselines)"
            )
        elif grid.failed and reference.advisory and s.cross_host == "advisory":
            grid = replace(grid, outcome=Outcome.ADVISORY, message=f"{grid.message}, ADVISORY: {reference.advisory}")
        return grid

    def _grid_of(self, results: Mapping[str, CaseResult], measured: Sequence[str], reference: Reference) -> Regression:
        s = self.run.settings
        cases = []
        for cid in measured:
            current = results[cid]
            keyed = dict(enumerate(current.groups("latency_ms"))) if reference.paired else current.keyed("latency_ms")
            cases.append((keyed, reference.keyed(cid)))
        busy = any(cid in self.busy for cid in measured)
        return grid_regression(
            cases,
            tolerance=s.grid_tolerance,
            noise_floor=reference.grid_noise,
            noise_k=s.noise_k,
            alpha=s.alpha,
            busy_tolerance=s.busy_tolerance if busy else None,
            paired=reference.paired,
        )

    # ----- the record ----------------------------------------------------------------------------
    def _record(
        self,
        result: CaseResult,
        verdict: CaseVerdict,
        reference: Reference | None,
        provenance: Mapping[str, str],
    ) -> CaseRecord:
        s = self.run.settings
        cid = result.case.id
        if reference is not None and reference.has(cid):
            changed = changed_since(reference, [cid], provenance)
            verdict = told(
                verdict, [f"changed since the {reference.describe}: " + "; ".join(changed)] if changed else []
            )
        budget = s.budget_for(cid)
        floors = floors_of(self.floor, result, budget)
        if floors[2]:
            verdict = below_the_floor(verdict, floors[2])
        cores = [c for c in result.background.values() if c is not None]
        return CaseRecord(
            result=result,
            verdict=verdict,
            budget_ms=budget,
            background_cores=max(cores) if cores else None,
            baseline_recorded_at=None if reference is None else reference.recorded_at.get(cid),
            floor_ms=floors[0],
            latency_floor_ms=floors[1],
            infeasible=floors[2],
        )

    def record(self, case_id: str) -> CaseRecord | None:
        return next((r for r in self.records if r.case_id == case_id), None)


def reference_of(result: CaseResult, reference: Reference | None) -> Mapping[str, object] | None:
    """The reference samples of a case, or None when it has none for this prompt and budget."""
    cid = result.case.id
    if reference is None or not reference.has(cid):
        return None
    if reference.shape.get(cid, (result.case.prompt.tokens, result.case.new_tokens)) != (
        result.case.prompt.tokens,
        result.case.new_tokens,
    ):
        return None  # another prompt or budget under this id: _evaluate says so
    return reference.cases[cid]


def usage_checks(s: Settings, label: str, measured: CaseResult, simulated: bool) -> list[Check]:
    """CPU during decode for the NPU engines (--max-cpu-cores), memory with --memory-budget-mb."""
    checks: list[Check] = []
    if s.max_cpu_cores and (s.engine == "genie" or s.provider == "qnn") and measured.usage:
        # Genie says so in its provider; the QNN EP of x86_64 onnxruntime-qnn is always the simulator
        sim = simulated or (s.provider == "qnn" and htp_simulated())
        checks.append(cpu_offload(label, measured.decode_cpu_cores, s.max_cpu_cores, sim))
    if s.memory_budget_mb and measured.peak_rss_mb is not None:
        checks.append(memory_budget(label, measured.peak_rss_mb, s.memory_budget_mb))
    return checks


def floors_of(floor: Floor | None, result: CaseResult, budget_ms: float) -> tuple[float | None, float | None, str]:
    """(decode floor per token, latency floor, the arithmetic when the budget is below it)."""
    if floor is None:
        return None, None, ""
    lo, hi = result.tokens_generated
    p, n = result.case.prompt.tokens, round((lo + hi) / 2)
    latency = floor.latency_ms(p, n)
    return floor.decode_ms(p, n), latency, floor.arithmetic(p, n, budget_ms) if latency > budget_ms else ""


def changed_since(reference: Reference, case_ids: Sequence[str], now: Mapping[str, str]) -> list[str]:
    """What differs between this run and the provenance most of the cases' references were recorded with."""
    from npuperf.judge.baselines import changes

    seen = [tuple(sorted(reference.provenance[c].items())) for c in case_ids if c in reference.provenance]
    if not seen or not now:
        return []
    common = max(set(seen), key=seen.count)
    return changes(dict(common), now)


def simulated_htp(provider: str) -> bool:
    """Does the engine run on the HTP simulator (its provider says so: Genie's C API on x86_64)?"""
    return provider.endswith("-simulator")


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


def told(verdict: CaseVerdict, reasons: Sequence[str]) -> CaseVerdict:
    """Every comparison with the reference gets ``reasons`` appended to its message."""
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
