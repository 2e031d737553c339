"""What a run leaves behind: the results JSON, the recorded baselines, and the one summary
that the terminal and the HTML report both show."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from npuperf import atomic
from npuperf.judge import baselines, history
from npuperf.judge.verdict import Check
from npuperf.measure import METRICS
from npuperf.report import CaseRecord, Line, page, results_json, terminal
from npuperf.suite.latency import LatencySection
from npuperf.suite.npu import NpuSection
from npuperf.suite.recording import Recording
from npuperf.suite.run import Run
from npuperf.suite.service import ServiceSection


def _os_reason(exc: OSError, path: Path) -> str:
    """'Is a directory' rather than "[Errno 21] Is a directory: 'reports/r.json'" (the path is named
    already); the file's name when it is another one (a folder that could not be made)."""
    other = exc.filename is not None and Path(exc.filename) != path
    return f"{exc.strerror} ({exc.filename})" if other else str(exc.strerror)


def outcome_of(exitstatus: int) -> str:
    """How the history names a run's end."""
    names = {0: "passed", 1: "failed", 2: "interrupted"}
    return names.get(int(exitstatus), f"exit {int(exitstatus)}")


def case_run(record: CaseRecord) -> history.CaseRun:
    r = record.result
    return history.CaseRun(
        case_id=record.case_id,
        prompt=r.case.prompt.name,
        prompt_tokens=r.case.prompt.tokens,
        new_tokens=r.case.new_tokens,
        sampling=r.case.sampling,
        budget_ms=record.budget_ms,
        outcome=record.verdict.outcome.value,
        # the metrics, and each repetition's token times since its submission ("token_ms#<i>")
        samples={
            **{m: r.samples(m) for m in METRICS},
            **{f"token_ms#{i}": g.token_ms for i, g in enumerate(r.generations)},
        },
    )


class Outputs:
    """Builds the summary and writes the files at the end of the session (never on xdist workers)."""

    def __init__(self, run: Run, latency: LatencySection, npu: NpuSection, service: ServiceSection) -> None:
        self.run = run
        self.latency = latency
        self.npu = npu
        self.service = service
        self.history_run: int | None = None
        self.outcome = "unknown"

    def _checks(self) -> list[Check]:
        grid = self.latency.grid
        return self.run.checks + ([grid] if grid is not None else [])

    @property
    def anything(self) -> bool:
        """Did the run measure or check anything worth reporting?"""
        return bool(self.latency.records or self.run.checks or self.service.http_records)

    # ----- the summary ------------------------------------------------------------------------
    def summary(self) -> list[Line]:
        """Every line of the run's summary, in order: engine, checks, cases, what fits, warnings, HTTP, notes."""
        lines: list[Line] = []
        warm, records = self.latency.warm_engine, self.latency.records
        if warm is not None:
            info = warm.engine.info
            lines.append(
                Line(
                    f"engine {info.engine} ({info.provider}), model {info.model_id} "
                    f"[{info.model_sha256[:12]}], load {warm.load_s:.2f} s"
                    + (f" ({warm.loaded_rss_mb:.0f} MB resident after it)" if warm.loaded_rss_mb else "")
                    + f", cold first call {warm.cold.latency_ms:.1f} ms"
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
            context = None if warm is None else warm.engine.info.context_length
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
        lines += [
            Line(
                f"INCONCLUSIVE  {case_id} {metric}: full-grid Holm would call it regressed; it was judged before "
                "the grid's other p-values were known; rerun to confirm",
                warn=True,
            )
            for case_id, metric in self.latency.judging.late_rejections()
        ]
        lines += [Line(text, table=True) for text in self.service.table()]
        lines += self._busy_lines()
        lines += [Line(note) for note in self.run.notes]
        return lines

    def _busy_lines(self) -> list[Line]:
        s = self.run.settings
        busy = [
            (r.background_cores or 0.0, r.case_id) for r in self.latency.records if self.run.busy(r.background_cores)
        ]
        if not busy:
            return []
        worst = max(busy)
        return [
            Line(
                f"machine busy: other processes kept up to {worst[0]:.2f} cores busy ({worst[1]}) during "
                f"{len(busy)} of {len(self.latency.records)} case(s) (limit --max-background-cores "
                f"{s.max_background_cores:g}); their regression thresholds were raised to {s.busy_tolerance:.0%}",
                warn=True,
            )
        ]

    # ----- the files ----------------------------------------------------------------------------
    def finish(self, session: pytest.Session, exitstatus: int) -> None:
        """Append the run to the history, write the results JSON, then (with --update-baselines) the baselines.

        Each is written on its own: one that cannot be written (a folder where a file should
        be, a read-only or full disk, a lock held too long) is one line naming it and the
        reason, the run exits non-zero, and the others are still written.
        """
        s = self.run.settings
        if self.run.is_worker:
            return
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
        self.outcome = outcome_of(exitstatus)
        if s.history and self.latency.records:
            self._write(session, "history", s.history, lambda: self.write_history(self.outcome))
        if s.results_json and self.anything:
            self._write(session, "results JSON", s.results_json, self.write_results)
        if s.update_baselines and interrupted:  # a grid measured up to Ctrl-C is not what the team accepts
            self.run.notes.append("baselines NOT written: the run was interrupted; nothing was accepted")
        elif s.update_baselines and self.latency.records:
            try:
                self._write(session, "baselines", s.baselines_dir, Recording(self.run, self.latency).write)
            except KeyboardInterrupt:  # Ctrl-C in the second pass: the other outputs are written already
                self.run.notes.append(
                    "baselines NOT written: the run was interrupted (in the noise-floor pass); nothing was accepted"
                )
                session.exitstatus = pytest.ExitCode.INTERRUPTED

    def _write(self, session: pytest.Session, what: str, where: str, write: Callable[[], object]) -> None:
        path = self.run.path(where)
        try:
            write()
        except (OSError, baselines.BaselineError, history.HistoryError) as exc:
            self.not_written(session, what, exc, path)

    def not_written(self, session: pytest.Session, what: str, exc: Exception, path: Path | None = None) -> None:
        """One line naming the output, its path and the reason; the run exits non-zero."""
        if path is None:
            path = Path(getattr(exc, "filename", None) or "?")
        reason = _os_reason(exc, path) if isinstance(exc, OSError) and exc.strerror else str(exc)
        self.run.notes.append(f"{what} NOT written to {self.run.show(path)}: {reason}")
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def write_history(self, outcome: str) -> int | None:
        """Append this run to --history (HistoryError when it cannot be written)."""
        identity, now = self.latency.identity, self.latency.provenance
        if identity is None or now is None:
            return None
        path = self.run.path(self.run.settings.history)
        run = history.Run(
            created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            identity=identity.as_dict(),
            identity_digest=identity.digest,
            provenance=now,
            commit=now.get(baselines.COMMIT, ""),
            settings=asdict(self.run.settings),
            outcome=outcome,
            cases={r.case_id: case_run(r) for r in self.latency.records},
        )
        run_id = history.History(path).record(run)
        self.history_run = run_id
        self.run.notes.append(f"history: run {run_id} appended to {self.run.show(path)}")
        return run_id

    def _session_entry(self) -> dict[str, Any]:
        grid = self.latency.grid
        entry: dict[str, Any] = {
            "outcome": self.outcome,
            "backend_checks": [results_json.check_entry(c) for c in self.run.checks],
            "grid": None
            if grid is None
            else {
                "outcome": grid.outcome.value,
                "ratio": grid.ratio,
                "ci": [grid.ci_low, grid.ci_high],
                "p_value": grid.p_value,
                "threshold": grid.threshold,
                "message": grid.message,
            },
        }
        if self.latency.identity is not None:
            lookup = self.latency.lookup
            entry["identity"] = self.latency.identity.as_dict()
            entry["provenance"] = self.latency.provenance
            entry["baseline"] = {
                "match": self.run.settings.baseline_match,
                "path": None if lookup is None else self.run.show(lookup.path),
                "source": None if lookup is None or lookup.source is None else self.run.show(lookup.source),
                "changed": [] if lookup is None or lookup.file is None else self.latency.changed_since(lookup.file),
            }
        found = self.latency.judging.floor
        if found is not None:
            entry["floor"] = found.describe()
        if self.history_run is not None:
            entry["history"] = {"path": self.run.settings.history, "run": self.history_run}
        if self.npu.probed is not None:
            entry["qnn"] = results_json.qnn_entry(self.npu.probed)
        service = self.service.results_entry()
        if service is not None:
            entry["service"] = service
        warm = self.latency.warm_engine
        if warm is not None:
            entry.update(
                context_length=warm.engine.info.context_length,
                load_s=warm.load_s,
                loaded_rss_mb=warm.loaded_rss_mb,
                cold=results_json.generation_entry(warm.cold),
                warm_latency_ms=warm.warm_latency_ms,
            )
        return entry

    def results_text(self) -> str:
        """The results JSON of this run (what --results-json writes; the HTML report is built from it)."""
        return results_json.document(
            environment=self.latency.environment(),
            settings=asdict(self.run.settings),
            session=self._session_entry(),
            records=self.latency.records,
            created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        )

    def write_results(self) -> None:
        path = self.run.path(self.run.settings.results_json)
        atomic.write_text(path, self.results_text())
        self.run.notes.append(f"results JSON: {self.run.show(path)}")

    def page(self) -> str:
        """The top of the HTML report: banner, charts, planner, trend, cases, HTTP table, the log.

        A fault while drawing it (a chart library error, data it did not expect) must not cost
        the team the report: the page then says why, shows the log, and the run notes it.
        """
        try:
            doc = json.loads(self.results_text())
            where = self.run.settings.history
            trend = page.trends_for(doc, self.run.path(where) if where else None)
            return page.section(doc, trend, self.summary())
        except Exception as exc:  # the boundary: any drawing fault becomes a note
            reason = f"{type(exc).__name__}: {exc}"
            self.run.notes.append(f"HTML report: its summary could not be drawn ({reason}); the log is shown instead")
            return page.fallback(reason, self.summary())
