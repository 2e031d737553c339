"""Running cases on a loaded engine: load and warm once, then R repetitions per case.

Plain functions over an Engine, so the session fixtures in plugin.py stay thin and
this logic is testable without pytest.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

from npuperf.engines.base import Engine, EngineError, Generation
from npuperf.judge.stats import Summary, median, percentile
from npuperf.machine.usage import MemorySampler, Usage, UsageClock, rss_mb
from npuperf.prompts import Prompt, corpus_key

# runner(fn, rounds) calls fn ``rounds`` times; pytest-benchmark's pedantic mode is one.
Runner = Callable[[Callable[[], None], int], None]

METRICS = ("latency_ms", "ttft_ms", "tpot_ms")


def loop_runner(fn: Callable[[], None], rounds: int) -> None:
    for _ in range(rounds):
        fn()


def case_id(new_tokens: int, prompt_key: str) -> str:
    """The stable id of a case in test names, baselines and budget overrides.

    >>> case_id(32, "p64"), case_id(8, "greeting-zh")
    ('t32-p64', 't8-greeting-zh')
    """
    return f"t{new_tokens}-{prompt_key}"


@dataclass(frozen=True)
class CaseSpec:
    """A case before the engine is loaded: a budget and a prompt length or team prompt."""

    new_tokens: int
    prompt_tokens: int | None = None
    team_prompt: str | None = None

    @property
    def prompt_key(self) -> str:
        """The prompt's part of the id (as ``Prompt.key`` names the prompt once it is made)."""
        return self.team_prompt if self.team_prompt is not None else corpus_key(self.prompt_tokens or 0)

    @property
    def id(self) -> str:
        return case_id(self.new_tokens, self.prompt_key)


def case_specs(
    token_budgets: Sequence[int], prompt_lengths: Sequence[int], team_prompts: Sequence[str]
) -> list[CaseSpec]:
    """The grid: token budgets x prompt lengths, then token budgets x team prompts."""
    specs = [CaseSpec(n, prompt_tokens=p) for n in token_budgets for p in prompt_lengths]
    specs += [CaseSpec(n, team_prompt=name) for n in token_budgets for name in team_prompts]
    return specs


@dataclass(frozen=True)
class Case:
    """One workload: a prompt and a token budget."""

    new_tokens: int
    prompt: Prompt
    sampling: str = "greedy"

    @property
    def id(self) -> str:
        """Stable id used in test names, baselines and budget overrides, e.g. ``t32-p64``."""
        return case_id(self.new_tokens, self.prompt.key)

    @property
    def label(self) -> str:
        """Human wording, e.g. ``32 tokens / 64-token prompt``."""
        return f"{self.new_tokens} tokens / {self.prompt.tokens}-token prompt"


@dataclass(frozen=True)
class TokenGaps:
    """The inter-token latency distribution of a case: every gap of every repetition."""

    count: int
    p50: float
    p90: float
    p99: float
    worst: float

    @classmethod
    def of(cls, gaps: Sequence[float]) -> TokenGaps:
        return cls(len(gaps), percentile(gaps, 50), percentile(gaps, 90), percentile(gaps, 99), max(gaps))


@dataclass(frozen=True)
class CaseResult:
    """All measured generations of one case, with per-metric summaries, and what the process
    used meanwhile (``usage`` per generation, ``peak_rss_mb`` over the case; empty/None when
    measured without instruments)."""

    case: Case
    generations: tuple[Generation, ...]
    usage: tuple[Usage, ...] = ()
    peak_rss_mb: float | None = None

    def __post_init__(self) -> None:
        if not self.generations:
            raise ValueError(f"case {self.case.id}: no generations were measured")

    def samples(self, metric: str) -> tuple[float, ...]:
        """Per-repetition values of ``metric`` (one of METRICS); TPOT skips 1-token runs."""
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
        values = (getattr(g, metric) for g in self.generations)
        return tuple(v for v in values if v is not None)

    @cached_property
    def latency(self) -> Summary:
        return Summary.of(self.samples("latency_ms"))

    @cached_property
    def ttft(self) -> Summary:
        return Summary.of(self.samples("ttft_ms"))

    @cached_property
    def tpot(self) -> Summary | None:
        values = self.samples("tpot_ms")
        return Summary.of(values) if values else None

    @cached_property
    def decode_tps(self) -> float | None:
        """Decode rate at the median TPOT."""
        return None if self.tpot is None or self.tpot.median == 0 else 1000.0 / self.tpot.median

    @cached_property
    def prefill_tps(self) -> float | None:
        """Prefill rate at the median TTFT."""
        return None if self.ttft.median == 0 else self.case.prompt.tokens / (self.ttft.median / 1000)

    @cached_property
    def tokens_generated(self) -> tuple[int, int]:
        """(fewest, most) new tokens over the repetitions."""
        counts = [g.new_tokens for g in self.generations]
        return min(counts), max(counts)

    @property
    def stopped_early(self) -> int:
        """How many repetitions ended before the budget (EOS or stop sequence)."""
        return sum(1 for g in self.generations if not g.complete)

    def device_medians(self) -> dict[str, float]:
        """Median of each figure the runtime reported itself (Generation.device), e.g. Genie's profile.

        Some are signed (HTTP overhead can be below zero), so this is the plain median, not a
        latency Summary (which rejects negative samples).
        """
        keys = sorted({k for g in self.generations for k in g.device})
        return {k: median([g.device[k] for g in self.generations if k in g.device]) for k in keys}

    @cached_property
    def phases(self) -> dict[str, float]:
        """The median of each phase over the repetitions, in the engine's order (empty if none seen)."""
        names = list(dict.fromkeys(k for g in self.generations for k in g.phases))
        return {k: median([g.phases[k] for g in self.generations if k in g.phases]) for k in names}

    @cached_property
    def itl(self) -> TokenGaps | None:
        """Every inter-token gap of every repetition (None with single-token generations)."""
        gaps = [gap for g in self.generations for gap in g.itl_ms]
        return TokenGaps.of(gaps) if gaps else None

    @cached_property
    def cpu_cores(self) -> float | None:
        """Median CPU cores busy over the whole call (this process, all threads)."""
        values = [c for u in self.usage if (c := u.cpu_cores) is not None]
        return median(values) if values else None

    @cached_property
    def decode_cpu_cores(self) -> float | None:
        """Median CPU cores busy from the first token to the end (decode)."""
        values = [c for u in self.usage if (c := u.decode_cpu_cores) is not None]
        return median(values) if values else None

    @property
    def over_budget(self) -> int:
        """How many repetitions generated more tokens than the budget (asynchronous stop)."""
        return sum(1 for g in self.generations if g.over_budget)


def measure_case(
    engine: Engine, case: Case, repetitions: int, runner: Runner = loop_runner, instruments: bool = True
) -> CaseResult:
    """Run ``case`` ``repetitions`` times through ``runner`` and keep every Generation.

    With ``instruments`` each generation's CPU use is stamped (at its start, first token and
    end) and a thread samples resident memory over the case; benchmarks/measure_overhead.py
    measures what that costs.
    """
    if repetitions < 1:
        raise ValueError(f"repetitions must be >= 1, got {repetitions}")
    generations: list[Generation] = []
    usage: list[Usage] = []
    clock = UsageClock()

    def once() -> None:
        if not instruments:
            generations.append(_checked(engine.generate(case.prompt.text, case.new_tokens), case))
            return
        clock.start()
        gen = engine.generate(case.prompt.text, case.new_tokens, on_token=clock.first_token)
        usage.append(clock.stop())
        generations.append(_checked(gen, case))

    with MemorySampler() if instruments else contextlib.nullcontext() as sampler:
        runner(once, repetitions)
        # A disabled pytest-benchmark runs the function only once; finish the repetitions here.
        loop_runner(once, repetitions - len(generations))
    peak = sampler.peak_mb if isinstance(sampler, MemorySampler) else None
    return CaseResult(case=case, generations=tuple(generations), usage=tuple(usage), peak_rss_mb=peak)


def _checked(gen: Generation, case: Case) -> Generation:
    if gen.prompt_tokens != case.prompt.tokens:
        raise EngineError(
            f"{case.label}: engine saw {gen.prompt_tokens} prompt tokens, the case has {case.prompt.tokens}; "
            "the prompt was made for another tokenizer"
        )
    return gen


@dataclass(frozen=True)
class WarmEngine:
    """A loaded engine with its load time, its cold first call and its warm-up calls."""

    engine: Engine
    load_s: float
    cold: Generation
    warmup: tuple[Generation, ...]
    loaded_rss_mb: float | None = None  # this process's resident memory right after loading

    @property
    def warm_latency_ms(self) -> float | None:
        """Median latency of the warm-up calls made with the cold call's prompt and budget."""
        same = [
            g.latency_ms
            for g in self.warmup
            if g.prompt_tokens == self.cold.prompt_tokens and g.requested_new_tokens == self.cold.requested_new_tokens
        ]
        return Summary.of(same).median if same else None


def load_and_warm(
    engine: Engine,
    prompts: Callable[[Engine], Sequence[Prompt]],
    new_tokens: int,
    warmup: int,
    clock: Callable[[], float] = time.perf_counter,
    progress: Callable[[str], None] = lambda _msg: None,
) -> WarmEngine:
    """Load once (timed), make the first call separately (the cold call), then warm up.

    ``prompts(engine)`` is asked after loading (prompts need the engine's tokenizer);
    the cold call uses the first prompt, and the warm-up cycles through all of them so
    every prompt shape has run once before any measured case.
    """
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    progress("loading model")
    start = clock()
    engine.load()
    load_s = clock() - start
    loaded_rss = rss_mb()
    shapes = list(prompts(engine))
    if not shapes:
        raise ValueError("load_and_warm needs at least one prompt")
    progress(f"loaded in {load_s:.2f} s; cold first call")
    cold = engine.generate(shapes[0].text, new_tokens)
    progress(f"warming up ({warmup} calls)")
    warm = tuple(engine.generate(shapes[i % len(shapes)].text, new_tokens) for i in range(warmup))
    return WarmEngine(engine=engine, load_s=load_s, cold=cold, warmup=warm, loaded_rss_mb=loaded_rss)
