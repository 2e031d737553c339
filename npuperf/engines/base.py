"""The engine interface every runtime implements, and the record of one generation.

An engine loads a model once, generates on demand and says exactly what it measured:
a ``Generation`` holds one client-clock timestamp per new token, from which latency,
TTFT and TPOT are derived with the definitions the field uses (see docs/metrics.md).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol, runtime_checkable

STOP_REASONS = ("budget", "eos", "stop-sequence")


def installed_version(package: str, missing: str = "unknown") -> str:
    """The installed distribution's version (for EngineInfo.versions and model manifests)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return missing


class EngineError(Exception):
    """An engine failed in a way the suite must report, not hide."""


class EngineUnavailable(EngineError):
    """The runtime an engine needs is not installed here; ``install`` says how to get it."""

    def __init__(self, engine: str, reason: str, install: str) -> None:
        super().__init__(f"engine {engine!r} is unavailable: {reason}; install it with: {install}")
        self.engine = engine
        self.reason = reason
        self.install = install


class ModelError(EngineError):
    """The model path is missing, incomplete or cannot be loaded."""


class UnknownEngineError(ValueError):
    """No engine is registered under the requested name."""


@dataclass(frozen=True)
class Generation:
    """One generation: when its prompt text was handed to the engine, when each new token
    became available and when the output text was returned.

    Timestamps are ``time.perf_counter_ns()`` values from the client's clock: ``submit_ns``
    before the prompt is tokenized, ``end_ns`` after the output is detokenized (latency is
    text to text, for every engine: docs/metrics.md). An engine whose runtime reports token
    timing itself (Genie's profile through AppBuilder) places the tokens on the client
    timeline from those figures and names both sources in ``clock``.

    >>> g = Generation(prompt_tokens=8, requested_new_tokens=3, submit_ns=0,
    ...                token_ns=(40_000_000, 50_000_000, 60_000_000))
    >>> g.latency_ms, g.ttft_ms, g.tpot_ms
    (60.0, 40.0, 10.0)
    """

    prompt_tokens: int
    requested_new_tokens: int
    submit_ns: int
    token_ns: tuple[int, ...]
    stop_reason: str = "budget"
    clock: str = "client perf_counter_ns"
    device: Mapping[str, float] = field(default_factory=dict)
    end_ns: int | None = None
    text: str = ""  # the generated text, when the engine decodes it
    # Where the latency went, in ms, in order (tokenize, setup, prefill, decode, detokenize,
    # or the engine's own split); they add up to latency_ms (docs/metrics.md).
    phases: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.prompt_tokens < 1:
            raise ValueError(f"prompt_tokens must be >= 1, got {self.prompt_tokens}")
        if self.requested_new_tokens < 1:
            raise ValueError(f"requested_new_tokens must be >= 1, got {self.requested_new_tokens}")
        if not self.token_ns:
            raise ValueError("a Generation needs at least one token timestamp, got none")
        if self.token_ns[0] < self.submit_ns:
            raise ValueError(f"first token at {self.token_ns[0]} ns precedes submission at {self.submit_ns} ns")
        if any(b < a for a, b in zip(self.token_ns, self.token_ns[1:], strict=False)):
            raise ValueError("token timestamps must be non-decreasing")
        if self.end_ns is not None and self.end_ns < self.submit_ns:
            raise ValueError(f"end at {self.end_ns} ns precedes submission at {self.submit_ns} ns")
        if self.stop_reason not in STOP_REASONS:
            raise ValueError(f"stop_reason {self.stop_reason!r} is not one of {STOP_REASONS}")
        if self.phases and abs(sum(self.phases.values()) - self.latency_ms) > 0.01:
            total = sum(self.phases.values())
            raise ValueError(
                f"phases add up to {total:.3f} ms, latency is {self.latency_ms:.3f} ms: {dict(self.phases)}"
            )

    @property
    def new_tokens(self) -> int:
        """How many tokens were actually generated (may be fewer than requested)."""
        return len(self.token_ns)

    @property
    def complete(self) -> bool:
        """True when the engine produced every requested token (or more)."""
        return self.new_tokens >= self.requested_new_tokens

    @property
    def over_budget(self) -> bool:
        """True when the runtime generated more tokens than requested (it stops asynchronously)."""
        return self.new_tokens > self.requested_new_tokens

    @cached_property
    def latency_ms(self) -> float:
        """Submit to last generated token (to ``end_ns`` when the engine set it)."""
        end = self.token_ns[-1] if self.end_ns is None else self.end_ns
        return (end - self.submit_ns) / 1e6

    @cached_property
    def ttft_ms(self) -> float:
        """Submit to first generated token (prefill plus first sample)."""
        return (self.token_ns[0] - self.submit_ns) / 1e6

    @cached_property
    def tpot_ms(self) -> float | None:
        """Mean time per output token after the first; None with a single token."""
        if self.new_tokens < 2:
            return None
        return (self.token_ns[-1] - self.token_ns[0]) / 1e6 / (self.new_tokens - 1)

    @cached_property
    def itl_ms(self) -> tuple[float, ...]:
        """Inter-token latencies: the gap before each token after the first (vLLM's ITL)."""
        return tuple((b - a) / 1e6 for a, b in zip(self.token_ns, self.token_ns[1:], strict=False))

    @cached_property
    def token_ms(self) -> tuple[float, ...]:
        """Each token's time since submission, in ms (what the results JSON keeps)."""
        return tuple((t - self.submit_ns) / 1e6 for t in self.token_ns)

    @cached_property
    def decode_tps(self) -> float | None:
        """Decode tokens per second, 1000 / TPOT; None when TPOT is undefined or zero."""
        tpot = self.tpot_ms
        return None if not tpot else 1000.0 / tpot

    @cached_property
    def prefill_tps(self) -> float | None:
        """Prompt tokens per second of TTFT; None when TTFT is zero."""
        return None if self.ttft_ms == 0 else self.prompt_tokens / (self.ttft_ms / 1000.0)


def phases_of(start_ns: int, marks: list[tuple[str, int]]) -> dict[str, float]:
    """Phases in ms from ``start_ns`` and the time each one ended: [("tokenize", t1), ...]."""
    out: dict[str, float] = {}
    previous = start_ns
    for name, end in marks:
        out[name] = (end - previous) / 1e6
        previous = end
    return out


@dataclass(frozen=True)
class EngineInfo:
    """What ran: engine name, execution provider, runtime versions and the model's identity."""

    engine: str
    provider: str
    versions: Mapping[str, str]
    model_id: str
    model_sha256: str
    details: Mapping[str, str] = field(default_factory=dict)
    context_length: int | None = None  # prompt + new tokens the model can hold, when known
    # settings and config fingerprints that can change speed without changing the model
    # (Genie's dialog type and perf_profile, the QNN provider options): a baseline's provenance
    config: Mapping[str, str] = field(default_factory=dict)


# Called by an engine as each new token arrives, before the token's timestamp is taken.
OnToken = Callable[[], None]


@runtime_checkable
class Tokenizer(Protocol):
    """The part of a tokenizer prompts need."""

    def encode(self, text: str) -> Sequence[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


@runtime_checkable
class Engine(Protocol):
    """A runtime that loads a model once, then generates on demand.

    ``load`` may take seconds (the suite times it); ``generate`` must produce
    exactly ``max_new_tokens`` tokens where the runtime can force it, and otherwise
    report the real count and ``stop_reason`` in the Generation. When ``on_token`` is
    given, the engine calls it as each new token arrives and *then* takes that token's
    timestamp, so time spent in the callback (fault injection) is part of the figures.
    """

    @property
    def info(self) -> EngineInfo: ...

    @property
    def tokenizer(self) -> Tokenizer: ...

    def load(self) -> None: ...

    def generate(self, prompt: str, max_new_tokens: int, on_token: OnToken | None = None) -> Generation: ...

    def close(self) -> None: ...


class LoadedParts:
    """``info`` and ``tokenizer`` of an engine that knows them only after ``load()``.

    Subclasses set ``name`` and assign ``self._info`` / ``self._tokenizer`` when loading.
    """

    name = "engine"
    _info: EngineInfo | None = None
    _tokenizer: Tokenizer | None = None

    @property
    def info(self) -> EngineInfo:
        if self._info is None:
            raise EngineError(f"{self.name} engine: info is known only after load()")
        return self._info

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            raise EngineError(f"{self.name} engine: tokenizer is available only after load()")
        return self._tokenizer


@dataclass(frozen=True)
class EngineOptions:
    """What the suite passes to an engine factory."""

    model: str
    provider: str = "cpu"
    extra: Mapping[str, str] = field(default_factory=dict)


EngineFactory = Callable[[EngineOptions], Engine]

# Built-in engines are named by "module:function" so their heavy runtimes are imported
# only when that engine is chosen.
_BUILTIN: dict[str, str] = {
    "ort-genai": "npuperf.engines.ort_genai:create",
    "genie": "npuperf.engines.genie.engine:create",
    "http": "npuperf.engines.http:create",
}
_REGISTERED: dict[str, EngineFactory] = {}


def register_engine(name: str, factory: EngineFactory) -> None:
    """Make ``factory`` available as ``--npuperf-engine name`` (e.g. from a conftest.py)."""
    if not name or name != name.strip():
        raise ValueError(f"engine name {name!r} must be non-empty without surrounding spaces")
    _REGISTERED[name] = factory


def known_engines() -> list[str]:
    """Every engine name that can be created, sorted."""
    return sorted(set(_BUILTIN) | set(_REGISTERED))


def create_engine(name: str, options: EngineOptions) -> Engine:
    """Create (not load) the engine registered as ``name``."""
    if name in _REGISTERED:
        return _REGISTERED[name](options)
    target = _BUILTIN.get(name)
    if target is None:
        raise UnknownEngineError(f"unknown engine {name!r}; known engines: {', '.join(known_engines())}")
    return load_factory(target)(options)


def factory_path(name: str) -> str | None:
    """``module:qualname`` of the factory of engine ``name``, for another process to import; None when
    it cannot (a lambda or a function defined inside another, registered from a conftest)."""
    if name in _BUILTIN:
        return _BUILTIN[name]
    factory = _REGISTERED.get(name)
    module, qualname = getattr(factory, "__module__", None), getattr(factory, "__qualname__", "")
    if factory is None or not module or not qualname or "<" in qualname:
        return None
    try:
        found = load_factory(f"{module}:{qualname}")
    except (ImportError, AttributeError):
        return None
    return f"{module}:{qualname}" if found is factory else None


def load_factory(path: str) -> EngineFactory:
    """The factory a ``module:qualname`` path names (import errors propagate)."""
    module_name, _, qualname = path.partition(":")
    target: object = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target  # type: ignore[return-value]
