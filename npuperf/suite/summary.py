"""The run's summary: the lines the terminal writes and the HTML report shows (engine, checks,
cases, where the time went, what fits, warnings, HTTP, notes), and the last words that must not
be missed (a refused recording, cases that could not be judged)."""

from __future__ import annotations

from npuperf.judge.verdict import Check, Outcome
from npuperf.report import Line, terminal
from npuperf.suite.latency import LatencySection
from npuperf.suite.recording import EXIT_REFUSED
from npuperf.suite.run import Run
from npuperf.suite.service import ServiceSection

# pytest uses 0..5. A run that could not judge some case (a busy machine) is neither green nor a
# regression: its own status, so the nightly can say "not judged" and a re-run can follow.
EXIT_NOT_JUDGED = 6


class RunSummary:
    """What the run says, as lines; built from the sections, printed by the plugin."""

    def __init__(self, run: Run, latency: LatencySection, service: ServiceSection) -> None:
        self.run = run
        self.latency = latency
        self.service = service

    def _checks(self) -> list[Check]:
        grid = self.latency.grid
        return self.run.checks + ([grid] if grid is not None else [])

    @property
    def anything(self) -> bool:
        """Did the run measure or check anything worth reporting?"""
        return bool(self.latency.records or self.run.checks or self.service.http_records)

    def summary(self) -> list[Line]:
        """Every line of the run's summary, in order: engine, checks, cases, what fits, warnings, HTTP, notes."""
        lines: list[Line] = []
        loaded, records = self.latency.loaded, self.latency.records
        if loaded is not None:
            info = loaded.info
            m = self.latency.measuring
            where = "this process" if m.in_process else f"{len(loaded.runs)} processes"
            lines.append(
                Line(
                    f"engine {info.engine} ({info.provider}), model {info.model_id} "
                    f"[{info.model_sha256[:12]}], measured in {where}; slowest load {loaded.load_s:.2f} s"
                    + (f" ({loaded.loaded_rss_mb:.0f} MB resident after it)" if loaded.loaded_rss_mb else "")
                    + f", slowest cold first call {loaded.cold.latency_ms:.1f} ms"
                )
            )
        lines += [Line(f"{c.outcome.value.upper():>12}  {c.message}") for c in self._checks()]
        if records:
            lines += [Line(text, table=True) for text in terminal.case_table(records)]
            lines.append(
                Line("where the time went (median ms per phase; they add up to the latency), token gaps, CPU, memory:")
            )
            lines += [Line(text, table=True) for text in terminal.phase_table(records)]
            lines.append(
                Line("token budgets that fit, per prompt (the budget planner: latency ~ TTFT + (n-1) x TPOT):")
            )
            s = self.run.settings
            context = None if loaded is None else loaded.info.context_length
            fits = terminal.fit_lines(records, s.latency_budget_ms, s.breaker_ms, self.latency.judging.floor, context)
            lines += [Line(f"  {text}") for text in fits]
        lines += [Line(text, warn=True) for text in terminal.over_tolerance_lines(records)]
        lines += [Line(f"  INFEASIBLE  {r.case_id}: {r.infeasible}", warn=True) for r in records if r.infeasible]
        faster = [r.case_id for r in records if r.efficiency is not None and r.efficiency > 1.0]
        if faster:
            lines.append(
                Line(
                    f"decode floor: {', '.join(faster)} measured faster than the floor, which cannot be: its bytes or "
                    "bandwidth are wrong for this machine (--memory-bandwidth; docs/twins.md)",
                    warn=True,
                )
            )
        lines += [Line(text, table=True) for text in self.service.table()]
        lines += self._busy_lines()
        lines += [Line(note) for note in self.run.notes]
        return lines

    def _busy_lines(self) -> list[Line]:
        busy = self.latency.judging.busy
        if not busy:
            return []
        s = self.run.settings
        worst = max((b.cores, cid) for cid, b in busy.items())
        judged = [
            r.case_id for r in self.latency.records if r.case_id in busy and r.verdict.outcome is not Outcome.NOT_JUDGED
        ]
        return [
            Line(
                f"machine busy: other processes kept up to {worst[0]:.2f} cores busy ({worst[1]}) while {len(busy)} of "
                f"{len(self.latency.records)} case(s) were measured, and through a {s.quiet_wait_s:g} s wait for quiet "
                f"(limit --max-background-cores {s.max_background_cores:g}); "
                + (
                    f"{len(judged)} of them could still be judged (within their threshold, or slower than a busy "
                    f"machine's {s.busy_tolerance:.0%}); "
                    if judged
                    else ""
                )
                + "the rest are NOT JUDGED: re-run on a quiet machine",
                warn=True,
            )
        ]

    # ----- the files ----------------------------------------------------------------------------
    def last_words(self, refused: str) -> list[str]:
        """What must not be missed, said last: a refused recording, cases that could not be judged."""
        out = []
        if refused:
            out.append(f"BASELINES NOT WRITTEN (exit status {EXIT_REFUSED}): {refused}")
        if self.not_judged:
            s = self.run.settings
            out.append(
                f"NOT JUDGED (exit status {EXIT_NOT_JUDGED}): {', '.join(self.not_judged)}: measured while other "
                f"processes kept the machine busy (over --max-background-cores {s.max_background_cores:g}) and it "
                f"did not become quiet within --quiet-wait-s {s.quiet_wait_s:g}; the load could explain their "
                "figures; re-run on a quiet machine"
            )
        return out

    @property
    def not_judged(self) -> list[str]:
        """The cases (and the grid) that could not be judged."""
        out = [r.case_id for r in self.latency.records if r.verdict.outcome is Outcome.NOT_JUDGED]
        grid = self.latency.grid
        return out + (["the grid"] if grid is not None and grid.outcome is Outcome.NOT_JUDGED else [])
