"""Latency from the prompt text to the output text, its phases, token gaps, CPU and memory (issue #13)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conftest import MODEL, serving
from fakes import CharTokenizer, ClockEngine, SleepEngine
from npuperf.engines.base import Generation
from npuperf.engines.faults import SlowedEngine
from npuperf.engines.http import HttpEngine
from npuperf.engines.ort_genai import OrtGenaiEngine
from npuperf.judge import baselines
from npuperf.machine.usage import MemorySampler, UsageClock
from npuperf.measure import Case, measure_case
from npuperf.prompts import Prompt, corpus_prompt


def prompt_of(text: str) -> Prompt:
    return Prompt(name="fake", text=text, tokens=len(CharTokenizer().encode(text)))


def test_a_fake_engine_with_known_phases_reports_them_and_they_add_up() -> None:
    engine = ClockEngine(prefill_ms=2.0, token_ms=0.5, tokenize_ms=0.3, setup_ms=1.2, detokenize_ms=0.4)
    g = engine.generate("abcd", 4)
    assert list(g.phases) == ["tokenize", "setup", "prefill", "decode", "detokenize"]
    assert (g.phases["tokenize"], g.phases["setup"], g.phases["detokenize"]) == (0.3, 1.2, 0.4)
    assert sum(g.phases.values()) == pytest.approx(g.latency_ms, abs=1e-9)
    # TTFT runs from the prompt text: tokenizing and setup are in it
    assert g.ttft_ms == pytest.approx(0.3 + 1.2 + g.phases["prefill"])


def test_phases_that_do_not_add_up_to_the_latency_are_refused() -> None:
    with pytest.raises(ValueError, match=r"phases add up to 3\.000 ms, latency is 5\.000 ms"):
        Generation(
            prompt_tokens=1,
            requested_new_tokens=1,
            submit_ns=0,
            token_ns=(5_000_000,),
            phases={"prefill": 3.0},
        )


@pytest.mark.slow
def test_the_embedded_model_times_tokenize_setup_and_detokenize_too() -> None:
    engine = OrtGenaiEngine(MODEL)
    engine.load()
    try:
        prompt = corpus_prompt(engine.tokenizer, 64)
        # warm up first, as the suite does: right after loading, a runtime thread is still
        # busy for a few calls (about 2 cores here), then one core is
        measure_case(engine, Case(16, prompt), repetitions=10, instruments=False)
        result = measure_case(engine, Case(16, prompt), repetitions=5)
    finally:
        engine.close()
    for g in result.generations:
        assert list(g.phases) == ["tokenize", "setup", "prefill", "decode", "detokenize"]
        assert all(v > 0 for v in g.phases.values()), g.phases
        assert sum(g.phases.values()) == pytest.approx(g.latency_ms, abs=0.01)
        assert g.ttft_ms == pytest.approx(g.phases["tokenize"] + g.phases["setup"] + g.phases["prefill"], abs=0.01)
    # one intra-op thread: about one core busy (wide bounds: a preempted run shows less)
    assert result.cpu_cores is not None
    assert 0.5 < result.cpu_cores < 1.6
    assert result.peak_rss_mb is not None
    assert result.peak_rss_mb > 10


def test_over_http_the_server_phases_and_the_wire_add_up_to_the_client_latency() -> None:
    with serving(SleepEngine(prefill_ms=3, token_ms=1), warmup=0) as url:
        for stream in (True, False):
            engine = HttpEngine(url, MODEL / "tokenizer.json", stream=stream)
            engine.load()
            g = engine.generate("hello there", 8)
            engine.close()
            assert list(g.phases) == ["queue", "prefill", "decode", "server other", "wire"]
            assert sum(g.phases.values()) == pytest.approx(g.latency_ms, abs=0.01)
            assert g.phases["prefill"] >= 3
            assert g.phases["wire"] > 0  # the client waits at least as long as the server works


def test_an_injected_stall_is_the_worst_token_gap_and_the_p99_not_the_median() -> None:
    engine = SlowedEngine(SleepEngine(prefill_ms=1, token_ms=1), stall_ms=30)
    result = measure_case(engine, Case(16, prompt_of("stall here")), repetitions=5)
    gaps = result.itl
    assert gaps is not None
    assert gaps.count == 5 * 15
    assert gaps.worst >= 30
    assert gaps.p99 >= 30  # 5 stalls in 75 gaps: the p99 is a stall
    assert gaps.p50 < 10
    for g in result.generations:  # the stall is the gap before the middle token
        assert max(range(len(g.itl_ms)), key=g.itl_ms.__getitem__) == 16 // 2 - 1


def test_busy_and_idle_waiting_read_as_one_and_zero_cores() -> None:
    clock = UsageClock()
    clock.start()
    end = time.perf_counter() + 0.5
    while time.perf_counter() < end:
        pass
    busy = clock.stop()
    clock.start()
    time.sleep(0.5)
    idle = clock.stop()
    assert busy.cpu_cores is not None
    assert idle.cpu_cores is not None
    # one core vs none, split at the middle: on a loaded 2-core machine a busy loop gets less
    # than a core (0.65 with two busy-loop processes beside it, over 0.2 s)
    assert busy.cpu_cores > 0.5
    assert idle.cpu_cores < 0.2


def test_the_memory_sampler_sees_a_peak_that_is_gone_by_the_end() -> None:
    with MemorySampler(interval_s=0.005) as sampler:
        before = sampler.peak_mb
        block = bytearray(300 * 1024 * 1024)
        time.sleep(0.05)
        del block
    assert sampler.peak_mb - before > 200


def test_measuring_without_instruments_keeps_no_usage() -> None:
    result = measure_case(SleepEngine(prefill_ms=1, token_ms=0.2), Case(4, prompt_of("abc")), 3, instruments=False)
    assert result.usage == ()
    assert result.peak_rss_mb is None
    assert result.cpu_cores is None


def test_a_baseline_of_the_old_definition_is_named_when_compared() -> None:
    old = baselines.provenance("ab" * 32, {"onnxruntime-genai": "0.18.0"}, {}, "c1")
    del old[baselines.DEFINITION]
    now = baselines.provenance("ab" * 32, {"onnxruntime-genai": "0.18.0"}, {}, "c1")
    assert baselines.changes(old, now) == ["latency definition (none) -> text-to-text"]


def test_results_keep_every_token_time_and_the_phases(tmp_path: Path) -> None:
    from npuperf.report import results_json

    g = ClockEngine(tokenize_ms=0.25).generate("abc", 3)
    entry = results_json.generation_entry(g)
    assert entry["token_ms"] == [round(t, 3) for t in g.token_ms]
    assert len(entry["token_ms"]) == 3
    assert entry["phases_ms"]["tokenize"] == 0.25


def test_resident_memory_after_loading_is_kept() -> None:
    from npuperf.measure import load_and_warm

    warm = load_and_warm(SleepEngine(), lambda e: [prompt_of("abc")], new_tokens=2, warmup=1)
    assert warm.loaded_rss_mb is not None
    assert warm.loaded_rss_mb > 10
