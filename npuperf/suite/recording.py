"""Recording the baselines (``--update-baselines``): passes over the grid until two in a row agree
and neither was disturbed, within a time budget; then one locked read-merge-write.

A pass is every case measured by --processes fresh processes. Two passes minutes apart that
agree (the grid's median case moved by at most --max-noise-floor between them) are what is
accepted: both passes' processes are the baseline's samples, and their drift its noise floor.
A pass during which other processes kept the machine busy does not count. When the budget runs
out first, nothing is written, the run says why with the figures, and it exits with its own
status (EXIT_REFUSED).
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from npuperf.judge import baselines
from npuperf.judge.stats import median
from npuperf.measure import METRICS, CaseResult, CaseSpec, ProcessRun
from npuperf.suite.measuring import Measuring, busy_processes
from npuperf.suite.run import Run, git_commit

EXIT_REFUSED = 7  # pytest uses 0..5; the nightly tells a refused recording from a failed test by it


@dataclass(frozen=True)
class Pass:
    runs: tuple[ProcessRun, ...]
    seconds: float

    def results(self) -> dict[str, CaseResult]:
        ids = dict.fromkeys(cid for r in self.runs for cid in r.cases)
        return {cid: CaseResult.combined([r.cases[cid] for r in self.runs if cid in r.cases]) for cid in ids}

    def busiest(self, limit: float) -> tuple[float, str] | None:
        """The most cores other processes kept busy while a case was measured, when over ``limit``."""
        found = [
            (result.background[p] or 0.0, cid)
            for cid, result in self.results().items()
            for p in busy_processes(result, limit)
        ]
        return max(found) if found else None


def grid_drift(first: Mapping[str, CaseResult], second: Mapping[str, CaseResult]) -> float:
    """How far the grid's median case moved between two passes: |median over cases of the drift|."""
    common = [cid for cid in first if cid in second]
    if not common:
        return 0.0
    return abs(
        median([baselines.pass_drift(first[c].groups("latency_ms"), second[c].groups("latency_ms")) for c in common])
    )


class Recording:
    """Measures the recording's passes and writes the accepted ones as the baselines."""

    def __init__(self, run: Run, measuring: Measuring) -> None:
        self.run = run
        self.measuring = measuring
        self.passes: list[Pass] = []
        self.accepted: tuple[Pass, Pass] | None = None
        self.refusal = ""

    def record(self, first: Sequence[ProcessRun], first_s: float, specs: Sequence[CaseSpec]) -> dict[str, CaseResult]:
        """Passes until two in a row agree, neither disturbed, or --record-budget-s runs out; the
        results to judge (the accepted passes', else every pass's)."""
        s = self.run.settings
        start = time.monotonic() - first_s
        self.passes = [Pass(tuple(first), first_s)]
        disagreements: list[str] = []
        while True:
            verdict = self._two_agree()
            if verdict is None:
                self.accepted = (self.passes[-2], self.passes[-1])
                break
            if len(self.passes) >= 2:
                disagreements.append(verdict)
            elapsed = time.monotonic() - start
            if len(self.passes) >= 2 and elapsed + self.passes[-1].seconds > s.record_budget_s:
                self.refusal = self._refused(disagreements, elapsed)
                break
            busiest = self.passes[-1].busiest(s.max_background_cores)
            if busiest is not None:
                self.measuring.wait_for_quiet(
                    f"recording: other processes kept {busiest[0]:.2f} cores busy during {busiest[1]}"
                )
            began = time.monotonic()
            n = len(self.passes) + 1
            runs = self.measuring.measure(specs, self.measuring.per_pass, f"recording pass {n}")
            self.passes.append(Pass(tuple(runs), time.monotonic() - began))
            if verdict is not None and len(self.passes) > 2:
                self.run.progress(f"recording: {verdict}; measured pass {n} to find two that agree")
        chosen = self.accepted or tuple(self.passes)
        merged: dict[str, list[CaseResult]] = {}
        for one in chosen:
            for cid, result in one.results().items():
                merged.setdefault(cid, []).append(result)
        return {cid: CaseResult.combined(parts) for cid, parts in merged.items()}

    def _two_agree(self) -> str | None:
        """None when the last two passes agree and neither was disturbed; else what is wrong."""
        s = self.run.settings
        if len(self.passes) < 2:
            return "one pass so far"
        a, b = self.passes[-2], self.passes[-1]
        for one in (a, b):
            busiest = one.busiest(s.max_background_cores)
            if busiest is not None:
                return f"the machine was busy (other processes kept {busiest[0]:.2f} cores busy during {busiest[1]})"
        moved = grid_drift(a.results(), b.results())
        if moved > s.max_noise_floor:
            return f"passes {len(self.passes) - 1} and {len(self.passes)} disagree by {moved:.1%}"
        return None

    def _refused(self, disagreements: Sequence[str], elapsed: float) -> str:
        s = self.run.settings
        return (
            f"the recording passes never agreed within --record-budget-s {s.record_budget_s:g} s "
            f"({len(self.passes)} passes in {elapsed:.0f} s: {'; '.join(disagreements) or 'no two passes'}; "
            f"limit --max-noise-floor {s.max_noise_floor:.0%}): the machine was not steady; close what else runs "
            "and record again, or raise --record-budget-s"
        )

    def new_cases(self, provenance: Mapping[str, str]) -> dict[str, baselines.CaseBaseline]:
        """The accepted passes as baseline entries: both passes' processes, and their drift as the noise floor."""
        assert self.accepted is not None
        first, second = (p.results() for p in self.accepted)
        stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        commit = git_commit(self.run.root)
        out = {}
        for cid, a in first.items():
            b = second.get(cid)
            if b is None:
                continue
            both = CaseResult.combined([a, b])
            out[cid] = baselines.CaseBaseline(
                case_id=cid,
                prompt=a.case.prompt.name,
                prompt_tokens=a.case.prompt.tokens,
                new_tokens=a.case.new_tokens,
                sampling=a.case.sampling,
                samples={m: both.groups(m) for m in METRICS},
                recorded_at=stamp,
                commit=commit,
                noise={
                    m: baselines.pass_drift(a.groups(m), b.groups(m)) for m in METRICS if a.groups(m) and b.groups(m)
                },
                provenance=provenance,
            )
        return out

    def write(self, lookup: baselines.Lookup, identity: baselines.Identity, provenance: Mapping[str, str]) -> None:
        """The accepted passes into this identity's file (BaselineError: refused, or the file cannot be written)."""
        if self.accepted is None:
            raise baselines.BaselineError(self.refusal or "the recording measured no two passes")
        new_cases = self.new_cases(provenance)
        legacy = lookup.source if lookup.source not in (None, lookup.path) and not lookup.other_host else None
        done = baselines.update(lookup.path, identity, new_cases, legacy_source=legacy)
        self.run.notes.append(
            f"baselines written: {len(new_cases)} case(s) to {self.run.show(lookup.path)} (from 2 agreeing passes of "
            f"{len(self.accepted[0].runs)} process(es) each, {len(self.passes)} measured)"
            + (f" ({done.kept} other case(s) kept)" if done.kept else "")
        )
        if done.set_aside is not None:
            self.run.notes.append(f"  the unreadable file it replaced is kept as {self.run.show(done.set_aside)}")
