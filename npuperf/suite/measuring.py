"""Measuring the grid: in fresh worker processes (``--processes N``, npuperf.workers), or in this
process (``--processes 0``). A pass is every selected case measured by each of N processes, in a
rotated order; a re-measurement (a busy machine, a confirmation) is a pass over some cases in new
processes. An A/B run's pass alternates the reference's processes (A) with the model's (B).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

import pytest

from npuperf.engines.base import Engine, EngineOptions, create_engine, factory_path
from npuperf.engines.faults import SlowedEngine
from npuperf.machine.load import LoadMeter
from npuperf.measure import CaseResult, CaseSpec, ProcessRun
from npuperf.suite.run import Run, fail, skip
from npuperf.workers.pool import LocalRunner, ProcessRunner, WorkerError, rotations
from npuperf.workers.protocol import Job, ProtocolError

QUIET_FOR_S = 2.0  # the machine counts as quiet after this long under --max-background-cores
POLL_S = 0.5


@dataclass
class Measured:
    """The cases' results so far, by case id, and every process that took part."""

    runs: list[ProcessRun] = field(default_factory=list)

    def add(self, runs: Sequence[ProcessRun]) -> None:
        self.runs.extend(runs)

    def case(self, case_id: str, side: str = "", runs: Sequence[ProcessRun] | None = None) -> CaseResult | None:
        """The case as every process (of ``side``) measured it, combined; None if none did."""
        parts = [
            r.cases[case_id] for r in (self.runs if runs is None else runs) if r.side == side and case_id in r.cases
        ]
        return CaseResult.combined(parts) if parts else None


class Measuring:
    """Runs jobs for the latency section: which runner, which jobs, busy waits, progress."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.selected: list[CaseSpec] | None = None  # the latency cases pytest will run (-k, -m)
        self._runners: dict[str, ProcessRunner | LocalRunner] = {}
        self._next = 0
        self.notes_made: set[str] = set()

    # ----- what to run, and where ------------------------------------------------------------
    @property
    def ab(self) -> bool:
        s = self.run.settings
        return bool(s.ab_model or s.ab_python)

    @property
    def in_process(self) -> bool:
        """--processes 0, or an engine another process cannot make (registered as a lambda)."""
        s = self.run.settings
        if s.processes == 0:
            return True
        if factory_path(s.engine) is None:
            self._note_once(
                f"engine {s.engine!r} is registered with a factory another process cannot import (a lambda or a "
                "nested function); it was measured in this process (as --processes 0): one process's figures"
            )
            return True
        return False

    @property
    def per_pass(self) -> int:
        return 1 if self.in_process else self.run.settings.processes

    def _note_once(self, note: str) -> None:
        if note not in self.notes_made:
            self.notes_made.add(note)
            self.run.notes.append(note)

    def options(self, side: str = "") -> EngineOptions:
        s = self.run.settings
        model = self.run.model()
        if side == "A" and s.ab_model:
            model = str(self.run.path(s.ab_model))
        extra = {
            "htp_perf_mode": s.htp_perf_mode,
            "genie_backend": s.genie_backend,
            "genie_lib": str(self.run.path(s.genie_lib)) if s.genie_lib else "",
            "backend_url": s.backend_url,
            "http_stream": "true" if s.http_stream else "false",
            "http_timeout_s": str(s.http_timeout_s),
            "http_tokenizer": str(self.run.http_tokenizer()),
        }
        return EngineOptions(model=model, provider=s.provider, extra=extra)

    def job(self, specs: Sequence[CaseSpec], process: int, side: str = "") -> Job:
        s = self.run.settings
        opts = self.options(side)
        return Job(
            engine=s.engine,
            factory=factory_path(s.engine) or "",
            model=opts.model,
            provider=opts.provider,
            extra=dict(opts.extra),
            specs=tuple(specs),
            repetitions=s.repetitions,
            warmup=s.warmup,
            warm_tokens=min(s.token_budgets),
            warm_prompts=tuple(sorted(s.prompt_lengths)),
            inject_slowdown=s.inject_slowdown,
            inject_stall=s.inject_stall,
            context_check=(max(s.prompt_lengths), max(s.token_budgets), tuple(s.team_prompts)),
            process=process,
            side=side,
        )

    def _runner(self, side: str) -> ProcessRunner | LocalRunner:
        if side not in self._runners:
            s = self.run.settings
            if self.in_process:
                self._runners[side] = LocalRunner(lambda: self._local_engine())
            else:
                python = s.ab_python if side == "A" and s.ab_python else None
                self._runners[side] = ProcessRunner(python) if python else ProcessRunner()
        return self._runners[side]

    def _local_engine(self) -> Engine:
        s = self.run.settings
        engine = create_engine(s.engine, self.options())
        if s.inject_slowdown or s.inject_stall:
            return SlowedEngine(engine, s.inject_slowdown, s.inject_stall)
        return engine

    @property
    def local_engine(self) -> Engine | None:
        """The engine loaded in this process (--processes 0), else None."""
        runner = self._runners.get("")
        return runner.engine if isinstance(runner, LocalRunner) else None

    # ----- running ---------------------------------------------------------------------------
    def measure(self, specs: Sequence[CaseSpec], processes: int, why: str) -> list[ProcessRun]:
        """``specs`` in ``processes`` new processes (each in its own rotation of the order); an A/B
        run measures that many pairs, A and B alternating, the first of each pair swapped every pair."""
        if not specs:
            return []
        plan: list[tuple[str, tuple[CaseSpec, ...]]] = []
        for k, order in enumerate(rotations(specs, processes)):
            if self.ab:
                sides = ("A", "B") if k % 2 == 0 else ("B", "A")
                plan += [(side, order) for side in sides]
            else:
                plan.append(("", order))
        runs = []
        for i, (side, order) in enumerate(plan, start=1):
            process = self._next
            self._next += 1
            where = "this process" if self.in_process else f"process {i} of {len(plan)}"
            label = f"{why}: {where}" + (f" ({'reference A' if side == 'A' else 'model B'})" if side else "")
            runs.append(self._run_one(self.job(order, process, side), label))
        return runs

    def _run_one(self, job: Job, label: str) -> ProcessRun:
        s = self.run.settings
        start = time.perf_counter()
        last = [start]

        def progress(message: str) -> None:  # a line every few seconds, not one per case
            now = time.perf_counter()
            if now - last[0] >= 5.0 or message.startswith("loaded"):
                last[0] = now
                self.run.progress(f"{label}: {message}")

        self.run.progress(f"{label}: {len(job.specs)} case(s) x {job.repetitions} generations")
        try:
            return self._runner(job.side).run(job, progress)
        except WorkerError as exc:
            self._stop(exc, job)
        except ProtocolError as exc:
            fail(f"engine {s.engine!r}: a worker process broke the protocol ({exc})")

    def _stop(self, exc: WorkerError, job: Job) -> NoReturn:
        s = self.run.settings
        if exc.kind == "unavailable":
            skip(str(exc))
        if exc.kind == "usage":
            pytest.exit(str(exc), returncode=pytest.ExitCode.USAGE_ERROR)
        fail(f"engine {s.engine!r} with model {job.model!r}: {exc}")

    def wait_for_quiet(self, why: str) -> bool:
        """Wait (at most --quiet-wait-s) until other processes keep at most --max-background-cores
        busy for QUIET_FOR_S; say so every few seconds. True when it became quiet."""
        s = self.run.settings
        meter = LoadMeter()
        if not meter.available or s.quiet_wait_s <= 0:
            return False
        deadline = time.monotonic() + s.quiet_wait_s
        quiet_since: float | None = None
        said = 0.0
        self.run.progress(f"{why}; waiting up to {s.quiet_wait_s:g} s for the machine to be quiet")
        while time.monotonic() < deadline:
            mark = meter.mark()
            time.sleep(POLL_S)
            now = time.monotonic()
            cores = meter.cores_since(mark)
            if cores is not None and cores <= s.max_background_cores:
                quiet_since = quiet_since or now
                if now - quiet_since >= QUIET_FOR_S:
                    return True
            else:
                quiet_since = None
                if now - said >= 5.0:
                    said = now
                    shown = "?" if cores is None else f"{cores:.2f}"
                    self.run.progress(f"still busy: other processes keep {shown} cores busy")
        return False

    def close(self) -> None:
        for runner in self._runners.values():
            if isinstance(runner, LocalRunner):
                runner.close()


def busy_processes(result: CaseResult, limit: float) -> list[int]:
    """The processes that measured ``result`` while other processes kept more than ``limit`` cores busy."""
    return [p for p, cores in result.background.items() if cores is not None and cores > limit]


Remeasure = Callable[[Sequence[CaseSpec], int, str], list[ProcessRun]]
