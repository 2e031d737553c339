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
from npuperf.measure import METRICS
from npuperf.report import CaseRecord, Line, page, results_json
from npuperf.suite.latency import LatencySection
from npuperf.suite.npu import NpuSection
from npuperf.suite.recording import EXIT_REFUSED
from npuperf.suite.run import Run
from npuperf.suite.service import ServiceSection
from npuperf.suite.summary import EXIT_NOT_JUDGED, RunSummary


def _os_reason(exc: OSError, path: Path) -> str:
    """'Is a directory' rather than "[Errno 21] Is a directory: 'reports/r.json'" (the path is named
    already); the file's name when it is another one (a folder that could not be made)."""
    other = exc.filename is not None and Path(exc.filename) != path
    return f"{exc.strerror} ({exc.filename})" if other else str(exc.strerror)


def outcome_of(exitstatus: int) -> str:
    """How the history names a run's end."""
    names = {
        0: "passed",
        1: "failed",
        2: "interrupted",
        EXIT_NOT_JUDGED: "not judged",
        EXIT_REFUSED: "baselines refused",
    }
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
        groups={m: r.groups(m) for m in METRICS},
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
        self.refused = ""
        self.told = RunSummary(run, latency, service)

    @property
    def anything(self) -> bool:
        """Did the run measure or check anything worth reporting?"""
        return self.told.anything

    @property
    def not_judged(self) -> list[str]:
        return self.told.not_judged

    def summary(self) -> list[Line]:
        return self.told.summary()

    def last_words(self) -> list[str]:
        return self.told.last_words(self.refused)

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
        if s.update_baselines and not interrupted and self.latency.records:
            self._record_baselines(session)
        if session.exitstatus == pytest.ExitCode.OK and self.not_judged:
            session.exitstatus = EXIT_NOT_JUDGED
        self.outcome = outcome_of(int(session.exitstatus))
        if s.history and self.latency.records:
            self._write(session, "history", s.history, lambda: self.write_history(self.outcome))
        if s.results_json and self.anything:
            self._write(session, "results JSON", s.results_json, self.write_results)
        if s.update_baselines and interrupted:  # a grid measured up to Ctrl-C is not what the team accepts
            self.run.notes.append("baselines NOT written: the run was interrupted; nothing was accepted")

    def _record_baselines(self, session: pytest.Session) -> None:
        """The recording's accepted passes into the baseline file; a refusal is its own exit status."""
        recording, lookup, identity = self.latency.recording, self.latency.lookup, self.latency.identity
        if lookup is None or identity is None or self.latency.provenance is None:
            return
        path = self.run.path(self.run.settings.baselines_dir) / identity.filename()
        if recording.accepted is None:
            self.refused = recording.refusal
            self.run.notes.append(f"baselines NOT written to {self.run.show(path)}: {recording.refusal}")
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = EXIT_REFUSED
            return
        try:
            self._write(session, "baselines", self.run.settings.baselines_dir,
                        lambda: recording.write(lookup, identity, self.latency.provenance or {}))  # fmt: skip
        except KeyboardInterrupt:  # Ctrl-C while writing: the file is replaced whole or not at all
            self.run.notes.append("baselines NOT written: the run was interrupted; nothing was accepted")
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
            # an A/B run's cases are judged against its reference, not the baseline: the trend says so
            label=""
            if not self.latency.measuring.ab or self.latency.reference is None
            else f"A/B against {self.latency.reference.describe}",
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
                "other_host": None
                if lookup is None or lookup.file is None or not lookup.other_host
                else lookup.file.identity.host_name,
                "cross_host": self.run.settings.cross_host,
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
        loaded = self.latency.loaded
        if loaded is not None:
            entry.update(
                context_length=loaded.info.context_length,
                load_s=loaded.load_s,
                load_times_s=list(loaded.load_times),
                loaded_rss_mb=loaded.loaded_rss_mb,
                cold=results_json.generation_entry(loaded.cold),
                cold_latencies_ms=list(loaded.cold_latencies),
                warm_latency_ms=loaded.warm_latency_ms,
            )
        entry["measured"] = self._measured_entry()
        return entry

    def _measured_entry(self) -> dict[str, Any]:
        """How the run measured: processes, repetitions, A/B, busy cases, the recording's passes."""
        s = self.run.settings
        m = self.latency.measuring
        busy = self.latency.judging.busy
        recording = self.latency.recording
        return {
            "processes": m.per_pass,
            "in_process": m.in_process,
            "repetitions": s.repetitions,
            "ab": {"model": s.ab_model, "python": s.ab_python} if m.ab else None,
            "reference": None if self.latency.reference is None else self.latency.reference.describe,
            "busy": {cid: {"cores": b.cores, "processes": b.processes, "of": b.of} for cid, b in busy.items()},
            "not_judged": self.not_judged,
            "recording": None
            if not s.update_baselines
            else {
                "passes": len(recording.passes),
                "accepted": recording.accepted is not None,
                "refusal": recording.refusal,
            },
        }

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
