"""What the suite and a worker process say to each other: a job, then events, as JSON.

The suite writes one ``Job`` to the worker's standard input; the worker writes one JSON object
per line to its standard output (its own prints and the runtime's go to standard error):

    {"event": "loaded", "load_s": 0.05, "rss_mb": 94.0, "info": {...}}
    {"event": "cold", "generation": {...}, "warm_latency_ms": 2.3}
    {"event": "case", "id": "t32-p64", "prompt": {...}, "generations": [...], "usage": [...],
     "peak_rss_mb": 141.0, "background_cores": 0.01}
    {"event": "done"}

or, when it cannot go on, ``{"event": "error", "kind": ..., "message": ...}`` (kinds: KINDS).
Everything a Generation holds crosses whole, so a worker's figures are the figures.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from npuperf.engines.base import EngineInfo, Generation
from npuperf.machine.usage import Usage
from npuperf.measure import Case, CaseResult, CaseSpec
from npuperf.prompts import Prompt

# unavailable: the runtime is not installed (the suite skips); model: the model does not load;
# usage: the grid does not fit the model; engine: a generation failed
KINDS = ("unavailable", "model", "usage", "engine")


class ProtocolError(ValueError):
    """A worker said something that is not this protocol."""


@dataclass(frozen=True)
class Job:
    """What one worker process does: make the engine, (load, cold call, warm up), measure cases.

    ``factory`` is the engine factory's ``module:qualname`` (engines.base.factory_path).
    ``load`` False: the engine is already loaded (the in-process runner re-measuring).
    """

    engine: str
    factory: str
    model: str
    provider: str
    extra: Mapping[str, str]
    specs: tuple[CaseSpec, ...]
    repetitions: int
    warmup: int = 5
    # the cold call and the warm-up: the grid's smallest budget, cycling through its prompt lengths
    warm_tokens: int = 8
    warm_prompts: tuple[int, ...] = (8,)
    load: bool = True
    inject_slowdown: float = 0.0
    inject_stall: float = 0.0
    # the grid the context must hold: (largest prompt length, largest budget, team prompts)
    context_check: tuple[int, int, tuple[str, ...]] | None = None
    process: int = 0
    side: str = ""
    extra_env: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        doc = asdict(self)
        doc["specs"] = [asdict(s) for s in self.specs]
        return json.dumps(doc)

    @classmethod
    def from_json(cls, text: str) -> Job:
        try:
            doc = json.loads(text)
            doc["specs"] = tuple(CaseSpec(**s) for s in doc["specs"])
            doc["extra"] = dict(doc["extra"])
            doc["warm_prompts"] = tuple(int(n) for n in doc["warm_prompts"])
            if doc.get("context_check") is not None:
                p, n, team = doc["context_check"]
                doc["context_check"] = (int(p), int(n), tuple(team))
            return cls(**doc)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"not a worker job ({exc})") from exc


def generation(gen: Generation) -> dict[str, Any]:
    return {
        "prompt_tokens": gen.prompt_tokens,
        "requested_new_tokens": gen.requested_new_tokens,
        "submit_ns": gen.submit_ns,
        "token_ns": list(gen.token_ns),
        "stop_reason": gen.stop_reason,
        "clock": gen.clock,
        "device": dict(gen.device),
        "end_ns": gen.end_ns,
        "text": gen.text,
        "phases": dict(gen.phases),
    }


def to_generation(doc: Mapping[str, Any]) -> Generation:
    return Generation(
        prompt_tokens=int(doc["prompt_tokens"]),
        requested_new_tokens=int(doc["requested_new_tokens"]),
        submit_ns=int(doc["submit_ns"]),
        token_ns=tuple(int(t) for t in doc["token_ns"]),
        stop_reason=str(doc["stop_reason"]),
        clock=str(doc["clock"]),
        device={str(k): float(v) for k, v in doc["device"].items()},
        end_ns=None if doc["end_ns"] is None else int(doc["end_ns"]),
        text=str(doc["text"]),
        phases={str(k): float(v) for k, v in doc["phases"].items()},
    )


def info(engine_info: EngineInfo) -> dict[str, Any]:
    return asdict(engine_info)


def to_info(doc: Mapping[str, Any]) -> EngineInfo:
    return EngineInfo(
        engine=str(doc["engine"]),
        provider=str(doc["provider"]),
        versions={str(k): str(v) for k, v in doc["versions"].items()},
        model_id=str(doc["model_id"]),
        model_sha256=str(doc["model_sha256"]),
        details={str(k): str(v) for k, v in doc["details"].items()},
        context_length=None if doc["context_length"] is None else int(doc["context_length"]),
        config={str(k): str(v) for k, v in doc["config"].items()},
    )


def case_event(result: CaseResult, background: float | None) -> dict[str, Any]:
    prompt = result.case.prompt
    return {
        "event": "case",
        "id": result.case.id,
        "prompt": {"name": prompt.name, "text": prompt.text, "tokens": prompt.tokens},
        "new_tokens": result.case.new_tokens,
        "generations": [generation(g) for g in result.generations],
        "usage": [asdict(u) for u in result.usage],
        "peak_rss_mb": result.peak_rss_mb,
        "background_cores": background,
    }


def to_case(doc: Mapping[str, Any], process: int) -> CaseResult:
    """A case event as a CaseResult whose generations are tagged with ``process``."""
    prompt = Prompt(
        name=str(doc["prompt"]["name"]), text=str(doc["prompt"]["text"]), tokens=int(doc["prompt"]["tokens"])
    )
    gens = tuple(to_generation(g) for g in doc["generations"])
    background = doc["background_cores"]
    return CaseResult(
        case=Case(new_tokens=int(doc["new_tokens"]), prompt=prompt),
        generations=gens,
        usage=tuple(Usage(**u) for u in doc["usage"]),
        peak_rss_mb=None if doc["peak_rss_mb"] is None else float(doc["peak_rss_mb"]),
        processes=(process,) * len(gens),
        background={process: None if background is None else float(background)},
    )


def encode(event: Mapping[str, Any]) -> str:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


def decode(line: str) -> dict[str, Any]:
    try:
        event = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"not a JSON event: {line[:200]!r}") from exc
    if not isinstance(event, dict) or not isinstance(event.get("event"), str):
        raise ProtocolError(f"not an event: {line[:200]!r}")
    return event


def checked_prompts(results: Sequence[CaseResult]) -> None:
    """Every process must have measured the same prompts (the same tokenizer, the same corpus)."""
    seen: dict[str, Prompt] = {}
    for result in results:
        prompt = result.case.prompt
        first = seen.setdefault(result.case.id, prompt)
        if first != prompt:
            raise ProtocolError(
                f"case {result.case.id}: two processes made different prompts ({first.tokens} vs {prompt.tokens} "
                "tokens); the model's tokenizer is not deterministic"
            )
