"""A worker process: ``python -m npuperf.workers.worker`` reads a Job on standard input, makes the
engine, loads it, makes its cold first call, warms up, measures each case of the job in the job's
order, and writes the events of npuperf.workers.protocol to standard output.

``run_job`` is the same loop for the suite's own process (``--processes 0``): it takes an engine
and a callback instead of a pipe, so both ways produce the same events.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from npuperf.engines.base import (
    Engine,
    EngineError,
    EngineOptions,
    EngineUnavailable,
    ModelError,
    load_factory,
)
from npuperf.engines.faults import SlowedEngine
from npuperf.machine.load import LoadMeter
from npuperf.measure import Case, CaseSpec, load_and_warm, measure_case
from npuperf.prompts import Prompt, PromptError, corpus_prompt, team_prompt
from npuperf.workers import protocol
from npuperf.workers.protocol import Job

Emit = Callable[[dict[str, Any]], None]


class UsageProblem(ValueError):
    """The job's grid does not fit the model's context."""


def make_engine(job: Job) -> Engine:
    """The job's engine, from its factory path, with the canaries wrapped around it."""
    factory = load_factory(job.factory)
    engine = factory(EngineOptions(model=job.model, provider=job.provider, extra=dict(job.extra)))
    if job.inject_slowdown or job.inject_stall:
        return SlowedEngine(engine, job.inject_slowdown, job.inject_stall)
    return engine


def prompt_of(engine: Engine, spec: CaseSpec, made: dict[str, Prompt]) -> Prompt:
    if spec.prompt_key not in made:
        if spec.team_prompt is not None:
            made[spec.prompt_key] = team_prompt(engine.tokenizer, spec.team_prompt)
        else:
            made[spec.prompt_key] = corpus_prompt(engine.tokenizer, spec.prompt_tokens or 0)
    return made[spec.prompt_key]


def over_context(engine: Engine, check: tuple[int, int, tuple[str, ...]]) -> str | None:
    """Why the grid cannot run on this model, naming the options and the limit (None: it fits)."""
    limit = engine.info.context_length
    if limit is None:
        return None
    longest, budget, team = check
    prompt = max([longest, *(team_prompt(engine.tokenizer, name).tokens for name in team)])
    if prompt + budget <= limit:
        return None
    model = f"model {engine.info.model_id} holds {limit} tokens (prompt + new tokens)"
    if prompt >= limit:
        what = f"--prompt-lengths: a {prompt}-token prompt does not fit; {model}"
    elif budget >= limit:
        what = f"--token-budgets: {budget} new tokens do not fit; {model}"
    else:
        what = f"--prompt-lengths {prompt} with --token-budgets {budget} needs {prompt + budget} tokens; {model}"
    return f"{what}; choose values whose sum is at most {limit}"


def run_job(
    job: Job,
    engine: Engine,
    emit: Emit,
    progress: Callable[[str], None] = lambda _m: None,
    meter: LoadMeter | None = None,
) -> None:
    """Load (when the job says so), the cold call, the warm-up, then each case: one event each.

    ``meter`` (begun as early as the process could) measures how busy other processes kept the
    machine during each case; a short first case reaches back to its beginning."""
    made: dict[str, Prompt] = {}
    if meter is None:
        meter = LoadMeter()
        meter.begin()
    if job.load:

        def prompts(e: Engine) -> Sequence[Prompt]:
            if job.context_check is not None:
                problem = over_context(e, job.context_check)
                if problem is not None:
                    raise UsageProblem(problem)
            return [prompt_of(e, CaseSpec(job.warm_tokens, prompt_tokens=n), made) for n in job.warm_prompts]

        warm = load_and_warm(engine, prompts, new_tokens=job.warm_tokens, warmup=job.warmup, progress=progress)
        emit(
            {"event": "loaded", "load_s": warm.load_s, "rss_mb": warm.loaded_rss_mb, "info": protocol.info(engine.info)}
        )
        emit({"event": "cold", "generation": protocol.generation(warm.cold), "warm_latency_ms": warm.warm_latency_ms})
    for spec in job.specs:
        case = Case(new_tokens=spec.new_tokens, prompt=prompt_of(engine, spec, made))
        progress(f"{case.id}")
        result, cores = meter.measure(lambda c=case: measure_case(engine, c, job.repetitions))  # type: ignore[misc]
        emit(protocol.case_event(result, cores))
    emit({"event": "done"})


def classify(exc: BaseException) -> str | None:
    """The protocol's kind of a failure (KINDS), or None for one that is not the engine's doing."""
    if isinstance(exc, EngineUnavailable):
        return "unavailable"
    if isinstance(exc, UsageProblem):
        return "usage"
    if isinstance(exc, (ModelError, OSError)):
        return "model"
    if isinstance(exc, (EngineError, PromptError, ValueError, ImportError, AttributeError)):
        return "engine"
    return None


def serve(stdin: TextIO, out: TextIO) -> int:
    """The worker process: one job in, events out; an error is an event, then exit 1."""
    meter = LoadMeter()
    meter.begin()  # before the runtime is imported and the model loaded: the first case's window reaches here

    def emit(event: dict[str, Any]) -> None:
        out.write(protocol.encode(event) + "\n")
        out.flush()

    try:
        job = Job.from_json(stdin.read())
    except protocol.ProtocolError as exc:
        emit({"event": "error", "kind": "engine", "message": str(exc)})
        return 1
    engine: Engine | None = None
    try:
        engine = make_engine(job)
        run_job(job, engine, emit, lambda m: print(f"npuperf worker {job.process}: {m}", file=sys.stderr), meter)
    except Exception as exc:
        kind = classify(exc)
        if kind is None:
            raise
        emit({"event": "error", "kind": kind, "message": str(exc), "install": getattr(exc, "install", "")})
        return 1
    finally:
        if engine is not None:
            engine.close()
    return 0


def main() -> int:
    # The protocol keeps the real standard output; everything else printed to it (this process's
    # prints, a runtime's C-level logging) goes to standard error instead.
    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    stdin = open(sys.stdin.fileno(), encoding="utf-8", closefd=False)  # noqa: SIM115 (the process's own stdin)
    try:
        return serve(stdin, protocol_out)
    except KeyboardInterrupt:
        return 130
    finally:
        protocol_out.close()


if __name__ == "__main__":
    raise SystemExit(main())
