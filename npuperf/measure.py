"""Running cases on a loaded engine: load and warm once, then R repetitions per case.

Plain functions over an Engine, so the session fixtures in plugin.py stay thin and
this logic is testable without pytest.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

from npuperf.engines.base import Engine, EngineError, EngineInfo, Generation
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
    measured without instruments).

    A case measured in several processes (npuperf.workers) keeps which process made each
    generation (``processes``, one index per generation; empty: all in one) and the cores other
    processes kept busy while each process measured it (``background``, by process index).
    The regression verdict uses each process's median as its unit (``groups``); the pooled
    figures here are what the tables and the budget show.
    """

    case: Case
    generations: tuple[Generation, ...]
    usage: tuple[Usage, ...] = ()
    peak_rss_mb: float | None = None
    processes: tuple[int, ...] = ()
    background: Mapping[int, float | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.generations:
            raise ValueError(f"case {self.case.id}: no generations were measured")
        if self.processes and len(self.processes) != len(self.generations):
            raise ValueError(
                f"case {self.case.id}: {len(self.processes)} process tags for {len(self.generations)} generations"
            )

    def samples(self, metric: str) -> tuple[float, ...]:
        """Per-repetition values of ``metric`` (one of METRICS); TPOT skips 1-token runs."""
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
        values = (getattr(g, metric) for g in self.generations)
        return tuple(v for v in values if v is not None)

    @property
    def tags(self) -> tuple[int, ...]:
        """The process index of each generation (0 for all when measured in one process)."""
        return self.processes or (0,) * len(self.generations)

    @property
    def process_ids(self) -> tuple[int, ...]:
        """The processes that measured this case, in the order they first appear."""
        return tuple(dict.fromkeys(self.tags))

    def groups(self, metric: str) -> tuple[tuple[float, ...], ...]:
        """``metric``'s samples per process, in ``process_ids`` order (processes without one left out)."""
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
        by: dict[int, list[float]] = {p: [] for p in self.process_ids}
        for tag, gen in zip(self.tags, self.generations, strict=True):
            value = getattr(gen, metric)
            if value is not None:
                by[tag].append(value)
        return tuple(tuple(v) for v in by.values() if v)

    def keyed(self, metric: str) -> dict[int, tuple[float, ...]]:
        """``metric``'s samples per process, keyed by process index (processes without one left out)."""
        by: dict[int, list[float]] = {}
        for tag, gen in zip(self.tags, self.generations, strict=True):
            value = getattr(gen, metric)
            if value is not None:
                by.setdefault(tag, []).append(value)
        return {p: tuple(v) for p, v in by.items()}

    def only(self, keep: Sequence[int]) -> CaseResult:
        """The generations of the processes in ``keep`` (e.g. those measured while the machine was quiet)."""
        chosen = [i for i, tag in enumerate(self.tags) if tag in set(keep)]
        if not chosen:
            raise ValueError(f"case {self.case.id}: none of processes {list(keep)} measured it")
        return replace(
            self,
            generations=tuple(self.generations[i] for i in chosen),
            usage=tuple(self.usage[i] for i in chosen) if len(self.usage) == len(self.generations) else (),
            processes=tuple(self.tags[i] for i in chosen),
            background={p: c for p, c in self.background.items() if p in set(keep)},
            peak_rss_mb=self.peak_rss_mb,
        )

    @classmethod
    def combined(cls, parts: Sequence[CaseResult]) -> CaseResult:
        """One case measured by several processes, as one result (each keeps its process tags)."""
        if not parts:
            raise ValueError("nothing to combine")
        first = parts[0]
        if any(p.case != first.case for p in parts):
            raise ValueError(f"case {first.case.id}: the processes measured different prompts or budgets")
        aligned = all(len(p.usage) == len(p.generations) for p in parts)
        peaks = [p.peak_rss_mb for p in parts if p.peak_rss_mb is not None]
        return cls(
            case=first.case,
            generations=tuple(g for p in parts for g in p.generations),
            usage=tuple(u for p in parts for u in p.usage) if aligned else (),
            peak_rss_mb=max(peaks) if peaks else None,
            processes=tuple(t for p in parts for t in p.tags),
            background={k: v for p in parts for k, v in p.background.items()},
        )

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
    engine: Engine,
    case: Case,
    repetitions: int,
    runner: Runner = loop_runner,
    instruments: bool = True,
    process: int | None = None,
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
    tags = () if process is None else (process,) * len(generations)
    return CaseResult(case=case, generations=tuple(generations), usage=tuple(usage), peak_rss_mb=peak, processes=tags)


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


@dataclass(frozen=True)
class ProcessRun:
    """One process's part of a run: how it loaded the engine (when it loaded one) and the cases it
    measured, each tagged with this process's ``index``. ``side`` names the artefact of an A/B run."""

    index: int
    info: EngineInfo
    cases: Mapping[str, CaseResult]
    load_s: float | None = None
    loaded_rss_mb: float | None = None
    cold: Generation | None = None
    warm_latency_ms: float | None = None
    side: str = ""


@dataclass(frozen=True)
class Loaded:
    """The engine under test as the run's processes loaded it: each load, each cold first call.

    The load budget and the breaker are judged on the worst of them (each is a user's app
    starting). ``engine`` is the engine itself when it was loaded in this process (--processes 0).
    """

    info: EngineInfo
    runs: tuple[ProcessRun, ...]
    engine: Engine | None = None

    def __post_init__(self) -> None:
        if not any(r.load_s is not None and r.cold is not None for r in self.runs):
            raise ValueError("no process of the run reported loading the engine")

    @property
    def loads(self) -> tuple[ProcessRun, ...]:
        return tuple(r for r in self.runs if r.load_s is not None and r.cold is not None)

    @property
    def load_s(self) -> float:
        """The slowest load."""
        return max(r.load_s or 0.0 for r in self.loads)

    @property
    def load_times(self) -> tuple[float, ...]:
        return tuple(r.load_s or 0.0 for r in self.loads)

    @property
    def _coldest(self) -> ProcessRun:
        return max(self.loads, key=lambda r: r.cold.latency_ms if r.cold is not None else 0.0)

    @property
    def cold(self) -> Generation:
        """The slowest cold first call."""
        cold = self._coldest.cold
        assert cold is not None
        return cold

    @property
    def cold_latencies(self) -> tuple[float, ...]:
        return tuple(r.cold.latency_ms for r in self.loads if r.cold is not None)

    @property
    def warm_latency_ms(self) -> float | None:
        """The warm median of the process whose cold call was the slowest (the same prompt and budget)."""
        return self._coldest.warm_latency_ms

    @property
    def loaded_rss_mb(self) -> float | None:
        values = [r.loaded_rss_mb for r in self.loads if r.loaded_rss_mb is not None]
        return max(values) if values else None


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
