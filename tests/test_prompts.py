from __future__ import annotations

from collections.abc import Sequence

import pytest

from fakes import CharTokenizer
from npuperf.prompts import TEAM_PROMPTS, PromptError, corpus_prompt, corpus_text, team_prompt


@pytest.mark.parametrize("n", [1, 8, 64, 256, 1000])
def test_char_tokenizer_prompts_have_exact_length(n: int) -> None:
    p = corpus_prompt(CharTokenizer(), n)
    assert p.tokens == n == len(p.text)
    assert p.name == f"corpus-{n}"


@pytest.mark.parametrize("n", [8, 64, 256])
def test_real_tokenizer_prompts_reencode_to_exact_length(tiny_engine, n: int) -> None:  # type: ignore[no-untyped-def]
    p = corpus_prompt(tiny_engine.tokenizer, n)
    assert len(tiny_engine.tokenizer.encode(p.text)) == n


def test_prompts_are_deterministic(tiny_engine) -> None:  # type: ignore[no-untyped-def]
    assert corpus_prompt(tiny_engine.tokenizer, 64) == corpus_prompt(tiny_engine.tokenizer, 64)


def test_corpus_is_bilingual() -> None:
    text = corpus_text()
    assert any("\u4e00" <= c <= "\u9fff" for c in text)
    assert "latency" in text.lower()


def test_team_prompts_are_the_literal_ones(tiny_engine) -> None:  # type: ignore[no-untyped-def]
    assert TEAM_PROMPTS == {"greeting-zh": "你好", "analyze-zh": "分析数据:"}
    p = team_prompt(tiny_engine.tokenizer, "greeting-zh")
    assert p.text == "你好"
    assert p.tokens == len(tiny_engine.tokenizer.encode("你好"))


def test_unknown_team_prompt_lists_known() -> None:
    with pytest.raises(PromptError, match="unknown team prompt 'x'; known: analyze-zh, greeting-zh"):
        team_prompt(CharTokenizer(), "x")


def test_zero_length_is_rejected() -> None:
    with pytest.raises(PromptError, match=">= 1 token, got 0"):
        corpus_prompt(CharTokenizer(), 0)


class _Lossy:
    """A tokenizer whose decode never round-trips: no window can be exact."""

    def encode(self, text: str) -> Sequence[int]:
        return [ord(c) for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(chr(i) for i in ids) + "!"


def test_no_exact_window_is_an_error_not_a_wrong_prompt() -> None:
    with pytest.raises(PromptError, match="re-encodes to exactly 5 tokens"):
        corpus_prompt(_Lossy(), 5, corpus="abcdefgh")
