"""Running jobs in fresh worker processes (the default), or in this process (``--processes 0``),
and the order in which a grid's processes measure its cases.

Why fresh processes (pyperf's design; asv's --interleave-processes): a process is fast or slow
as a whole (address-space layout, allocator state, which core and cache it lands on), so the
same code's median of a case moved by up to 17.6% between processes here, once by 57%
(docs/noise.md). Samples from one process carry that process's bias; several processes, each
loading the model, make it visible and let the verdict use it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from npuperf.engines.base import Engine
from npuperf.measure import CaseResult, CaseSpec, ProcessRun
from npuperf.workers import protocol
from npuperf.workers.protocol import Job
from npuperf.workers.worker import classify, run_job

Progress = Callable[[str], None]
ROOT = Path(__file__).resolve().parents[2]  # the checkout (npuperf importable from here)


class WorkerError(Exception):
    """A worker could not do its job; ``kind`` is one of protocol.KINDS."""

    def __init__(self, kind: str, message: str, install: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.install = install


def rotations(specs: Sequence[CaseSpec], processes: int) -> list[tuple[CaseSpec, ...]]:
    """The order each process measures the cases in: the grid rotated by an equal share per process,
    so no case is always first (just after the warm-up) or always last.

    >>> [[s.new_tokens for s in order] for order in rotations([CaseSpec(n, 8) for n in (1, 2, 3, 4)], 2)]
    [[1, 2, 3, 4], [3, 4, 1, 2]]
    """
    n = len(specs)
    out = []
    for k in range(processes):
        shift = (k * n) // processes if processes else 0
        out.append(tuple(specs[shift:]) + tuple(specs[:shift]))
    return out


class Assembler:
    """Turns one job's events into a ProcessRun; an error event becomes a WorkerError."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.info: Any = None
        self.load_s: float | None = None
        self.rss_mb: float | None = None
        self.cold: Any = None
        self.warm_ms: float | None = None
        self.cases: dict[str, CaseResult] = {}
        self.done = False
        self.error: WorkerError | None = None

    def feed(self, event: dict[str, Any], progress: Progress) -> None:
        kind = event["event"]
        try:
            if kind == "loaded":
                self.info = protocol.to_info(event["info"])
                self.load_s = float(event["load_s"])
                self.rss_mb = None if event["rss_mb"] is None else float(event["rss_mb"])
                if self.load_s >= 1.0:  # worth a line (a 7B bundle: seconds); the embedded model: not
                    progress(f"loaded in {self.load_s:.2f} s; cold first call, warm-up")
            elif kind == "cold":
                self.cold = protocol.to_generation(event["generation"])
                self.warm_ms = None if event["warm_latency_ms"] is None else float(event["warm_latency_ms"])
            elif kind == "case":
                result = protocol.to_case(event, self.job.process)
                self.cases[result.case.id] = result
                progress(f"{result.case.id} ({len(self.cases)}/{len(self.job.specs)})")
            elif kind == "done":
                self.done = True
            elif kind == "error":
                self.error = WorkerError(str(event["kind"]), str(event["message"]), str(event.get("install", "")))
            else:
                raise protocol.ProtocolError(f"unknown event {kind!r}")
        except (KeyError, TypeError, ValueError) as exc:
            raise protocol.ProtocolError(f"a malformed {kind!r} event ({exc})") from exc

    def result(self, info: Any = None) -> ProcessRun:
        if self.error is not None:
            raise self.error
        if not self.done:
            raise WorkerError("engine", "the worker stopped before it finished its cases")
        return ProcessRun(
            index=self.job.process,
            info=self.info if self.info is not None else info,
            cases=dict(self.cases),
            load_s=self.load_s,
            loaded_rss_mb=self.rss_mb,
            cold=self.cold,
            warm_latency_ms=self.warm_ms,
            side=self.job.side,
        )


def worker_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment with npuperf and this run's own import paths (a conftest's
    engine factories) importable, but not this interpreter's standard library or site-packages:
    a worker of another Python environment (an A/B run of a runtime upgrade) uses its own."""
    own = {Path(p).resolve() for p in {sys.prefix, sys.base_prefix, sys.exec_prefix}}
    paths = [str(ROOT)]
    for entry in sys.path:
        if not entry or not Path(entry).exists():
            continue
        resolved = Path(entry).resolve()
        if any(resolved == prefix or prefix in resolved.parents for prefix in own):
            continue
        paths.append(str(resolved))
    env = {**os.environ, **(extra or {})}
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.setdefault("PYTHONIOENCODING", "utf-8")
    return env


class ProcessRunner:
    """Each job in a fresh process: ``python -m npuperf.workers.worker``, with ``python`` the
    interpreter (another environment's, for an A/B run of a runtime upgrade)."""

    def __init__(self, python: str = sys.executable) -> None:
        self.python = python

    def run(self, job: Job, progress: Progress) -> ProcessRun:
        assembler = Assembler(job)
        with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as log:
            try:
                proc = subprocess.Popen(
                    [self.python, "-m", "npuperf.workers.worker"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    env=worker_env(dict(job.extra_env)),
                    text=True,
                    encoding="utf-8",
                    errors="replace",
                )
            except OSError as exc:
                raise WorkerError("engine", f"cannot start a worker with {self.python!r} ({exc.strerror})") from None
            try:
                self._talk(proc, job, assembler, progress)
            except BaseException:  # Ctrl-C or a protocol fault: the worker must not run on
                proc.kill()
                proc.wait()
                raise
            finally:
                for pipe in (proc.stdin, proc.stdout):
                    if pipe is not None:
                        pipe.close()
            status = proc.wait()
            if assembler.error is None and not assembler.done:
                log.seek(0)
                tail = " | ".join(line.strip() for line in log.read().splitlines()[-5:] if line.strip())
                raise WorkerError("engine", f"the worker exited with status {status} before it finished: {tail}")
        return assembler.result()

    @staticmethod
    def _talk(proc: subprocess.Popen[str], job: Job, assembler: Assembler, progress: Progress) -> None:
        assert proc.stdin is not None
        assert proc.stdout is not None
        try:
            proc.stdin.write(job.to_json())
            proc.stdin.close()
        except BrokenPipeError:
            pass  # it died at once; its status says so
        for line in proc.stdout:
            if line.strip():
                assembler.feed(protocol.decode(line), progress)


class LocalRunner:
    """Jobs in this process, on one engine made and loaded by the first job (``--processes 0``:
    for engines a fresh process cannot make, and to debug). Its figures carry this process's bias."""

    def __init__(self, make_engine: Callable[[], Engine]) -> None:
        self.make_engine = make_engine
        self.engine: Engine | None = None
        self.info: Any = None

    def run(self, job: Job, progress: Progress) -> ProcessRun:
        assembler = Assembler(job)
        if self.engine is None:
            self.engine = self.make_engine()
        else:
            job = replace(job, load=False)
        try:
            run_job(job, self.engine, lambda event: assembler.feed(event, progress))
        except Exception as exc:  # the same failures a worker reports as an error event
            kind = classify(exc)
            if kind is None:
                raise
            raise WorkerError(kind, str(exc), getattr(exc, "install", "")) from exc
        run = assembler.result(info=self.info)
        self.info = run.info
        return run

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None
