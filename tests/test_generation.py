"""Generation maths: latency, TTFT, TPOT and rates, with FIELD.md's definitions."""

from __future__ import annotations

import pytest

from npuperf.engines.base import (
    EngineOptions,
    Generation,
    UnknownEngineError,
    create_engine,
    known_engines,
    register_engine,
)

MS = 1_000_000


def gen(stamps_ms: list[float], submit_ms: float = 0, prompt: int = 10, requested: int | None = None) -> Generation:
    return Generation(
        prompt_tokens=prompt,
        requested_new_tokens=requested if requested is not None else len(stamps_ms),
        submit_ns=int(submit_ms * MS),
        token_ns=tuple(int(t * MS) for t in stamps_ms),
    )


def test_latency_is_submit_to_last_token() -> None:
    assert gen([100, 110, 120, 130], submit_ms=20).latency_ms == pytest.approx(110.0)


def test_ttft_is_submit_to_first_token() -> None:
    assert gen([100, 110, 120], submit_ms=20).ttft_ms == pytest.approx(80.0)


def test_tpot_excludes_the_first_token() -> None:
    # first token slow (prefill), then 3 tokens 10 ms apart: TPOT is 10, not (130-0)/4
    g = gen([100, 110, 120, 130])
    assert g.tpot_ms == pytest.approx(10.0)
    assert g.decode_tps == pytest.approx(100.0)


def test_prefill_rate_is_prompt_tokens_over_ttft() -> None:
    assert gen([50, 60], prompt=100).prefill_tps == pytest.approx(2000.0)


def test_single_token_has_no_tpot_or_decode_rate() -> None:
    g = gen([40])
    assert g.tpot_ms is None
    assert g.decode_tps is None
    assert g.latency_ms == g.ttft_ms == pytest.approx(40.0)


def test_zero_spread_tokens_give_no_decode_rate_instead_of_dividing_by_zero() -> None:
    g = gen([5, 5, 5])
    assert g.tpot_ms == 0.0
    assert g.decode_tps is None


def test_early_stop_counts_real_tokens() -> None:
    g = Generation(prompt_tokens=4, requested_new_tokens=32, submit_ns=0, token_ns=(MS, 2 * MS), stop_reason="eos")
    assert g.new_tokens == 2
    assert not g.complete
    assert g.tpot_ms == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"token_ns": ()}, "at least one token timestamp"),
        ({"token_ns": (5, 3)}, "non-decreasing"),
        ({"submit_ns": 10, "token_ns": (5,)}, "precedes submission"),
        ({"prompt_tokens": 0}, "prompt_tokens must be >= 1"),
        ({"requested_new_tokens": 0}, "requested_new_tokens must be >= 1"),
        ({"stop_reason": "tired"}, "stop_reason 'tired' is not one of"),
    ],
)
def test_invalid_generations_are_rejected_with_the_constraint(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"prompt_tokens": 1, "requested_new_tokens": 1, "submit_ns": 0, "token_ns": (1,)}
    base.update(kwargs)
    with pytest.raises(ValueError, match=message):
        Generation(**base)  # type: ignore[arg-type]


def test_unknown_engine_lists_the_known_ones() -> None:
    with pytest.raises(UnknownEngineError, match=r"unknown engine 'nope'; known engines: .*ort-genai"):
        create_engine("nope", EngineOptions(model="x"))


def test_registered_engine_is_created_by_name() -> None:
    made: list[EngineOptions] = []
    register_engine("test-registry", lambda opts: made.append(opts) or object())  # type: ignore[func-returns-value,return-value]
    create_engine("test-registry", EngineOptions(model="m", provider="p"))
    assert made == [EngineOptions(model="m", provider="p")]
    assert "test-registry" in known_engines()


def test_engine_names_must_be_clean() -> None:
    with pytest.raises(ValueError, match="must be non-empty"):
        register_engine(" spaced ", lambda opts: object())  # type: ignore[arg-type,return-value]
