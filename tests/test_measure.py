from __future__ import annotations

import itertools

import pytest

from fakes import SleepEngine
from npuperf.engines.base import EngineError, Generation
from npuperf.measure import Case, load_and_warm, measure_case
from npuperf.prompts import Prompt, corpus_prompt

PROMPT = Prompt(name="corpus-8", text="abcdefgh", tokens=8)


class Recorded:
    """An engine replaying scripted generations, to pin the arithmetic exactly."""

    def __init__(self, token_ms: list[list[float]]) -> None:
        self.script = itertools.cycle(token_ms)
        self.tokenizer = None

    def generate(self, prompt: str, max_new_tokens: int, on_token: object = None) -> Generation:
        stamps = next(self.script)
        return Generation(
            prompt_tokens=len(prompt),
            requested_new_tokens=max_new_tokens,
            submit_ns=0,
            token_ns=tuple(int(t * 1e6) for t in stamps),
        )


def test_case_ids_and_labels() -> None:
    assert Case(32, PROMPT).id == "t32-p8"
    assert Case(32, Prompt("greeting-zh", "你好", 2)).id == "t32-greeting-zh"
    assert Case(32, PROMPT).label == "32 tokens / 8-token prompt"


def test_measure_case_summarises_every_repetition() -> None:
    engine = Recorded([[10, 12, 14], [20, 22, 24], [30, 32, 34]])
    result = measure_case(engine, Case(3, PROMPT), repetitions=3)  # type: ignore[arg-type]
    assert result.samples("latency_ms") == (14.0, 24.0, 34.0)
    assert result.latency.median == 24.0
    assert result.ttft.median == 20.0
    assert result.tpot is not None
    assert result.tpot.median == 2.0
    assert result.decode_tps == 500.0
    assert result.prefill_tps == pytest.approx(8 / 0.020)
    assert result.tokens_generated == (3, 3)


def test_runner_that_runs_fewer_rounds_is_completed() -> None:
    calls: list[int] = []

    def once_only(fn, rounds):  # type: ignore[no-untyped-def]  # like a disabled pytest-benchmark
        calls.append(rounds)
        fn()

    result = measure_case(Recorded([[1, 2]]), Case(2, PROMPT), repetitions=5, runner=once_only)  # type: ignore[arg-type]
    assert calls == [5]
    assert len(result.generations) == 5


def test_prompt_made_for_another_tokenizer_is_caught() -> None:
    with pytest.raises(EngineError, match="engine saw 3 prompt tokens, the case has 8"):
        measure_case(Recorded([[1]]), Case(1, Prompt("corpus-8", "abc", 8)), repetitions=1)  # type: ignore[arg-type]


def test_more_tokens_than_the_budget_are_kept_and_counted() -> None:
    # Genie stops asynchronously (a speculative pass can accept several tokens at once):
    # the real count is what was measured, so it is kept and reported, not rejected.
    result = measure_case(Recorded([[1, 2, 3]]), Case(2, PROMPT), repetitions=2)  # type: ignore[arg-type]
    assert result.over_budget == 2
    assert result.stopped_early == 0
    assert result.tokens_generated == (3, 3)


def test_unknown_metric_is_named() -> None:
    result = measure_case(Recorded([[1, 2]]), Case(2, PROMPT), repetitions=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown metric 'speed'; known: latency_ms, ttft_ms, tpot_ms"):
        result.samples("speed")


def test_load_and_warm_times_load_keeps_cold_call_and_warms_every_shape() -> None:
    engine = SleepEngine(prefill_ms=0.1, token_ms=0.05)
    ticks = iter([100.0, 103.5])
    prompts = []
    warm = load_and_warm(
        engine,
        lambda e: [corpus_prompt(e.tokenizer, 8), corpus_prompt(e.tokenizer, 16)],
        new_tokens=4,
        warmup=4,
        clock=lambda: next(ticks),
        progress=prompts.append,
    )
    assert warm.load_s == 3.5
    assert engine.loaded
    assert warm.cold.prompt_tokens == 8
    assert [g.prompt_tokens for g in warm.warmup] == [8, 16, 8, 16]
    assert warm.warm_latency_ms is not None
    assert engine.calls == 5
    assert prompts[0] == "loading model"


def test_generation_stopping_early_is_counted() -> None:
    engine = SleepEngine(prefill_ms=0.1, token_ms=0.05, stop_after=2)
    engine.load()
    result = measure_case(engine, Case(8, corpus_prompt(engine.tokenizer, 8)), repetitions=2)
    assert result.stopped_early == 2
    assert result.tokens_generated == (2, 2)


def test_runtime_reported_figures_may_be_negative() -> None:
    """HTTP overhead = client latency - server latency is below zero when the server's clock
    runs past the last streamed token (it detokenizes after it): it is reported, not a crash."""
    prompt = Prompt(name="corpus-8", text="x" * 8, tokens=8)
    gens = tuple(
        Generation(8, 2, 0, (1_000_000, 2_000_000), device={"http_overhead_ms": v, "server_latency_ms": 2.5})
        for v in (-0.87, -0.2, 0.4)
    )
    from npuperf.measure import CaseResult

    medians = CaseResult(Case(2, prompt), gens).device_medians()
    assert medians == {"http_overhead_ms": pytest.approx(-0.2), "server_latency_ms": 2.5}
