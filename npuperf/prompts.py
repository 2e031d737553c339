"""Deterministic prompts of an exact token length, and the team's literal prompts.

A prompt of N tokens is cut from the fixed bilingual corpus (npuperf/data/corpus.txt):
the first window of N corpus tokens whose decoded text re-encodes to exactly N tokens
under the engine's tokenizer (BPE merges can differ at a cut, so not every window does).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from npuperf.engines.base import Tokenizer
from npuperf.service.api import SEED_PROMPT

CORPUS = Path(__file__).parent / "data" / "corpus.txt"

# The literal prompts the product's users send (see the team's /api/npu/infer seed request).
TEAM_PROMPTS: dict[str, str] = {
    "greeting-zh": SEED_PROMPT,
    "analyze-zh": "分析数据:",
}


def corpus_key(tokens: int) -> str:
    """How case ids name a corpus prompt of ``tokens`` tokens: ``p64``."""
    return f"p{tokens}"


class PromptError(ValueError):
    """No prompt of the requested shape can be made."""


@dataclass(frozen=True)
class Prompt:
    """A prompt and its length in tokens under the tokenizer it was made for."""

    name: str
    text: str
    tokens: int

    @property
    def key(self) -> str:
        """The prompt's part of a case id: ``p64`` for a corpus window, else its name."""
        return corpus_key(self.tokens) if self.name == f"corpus-{self.tokens}" else self.name


@lru_cache(maxsize=1)
def corpus_text() -> str:
    return CORPUS.read_text(encoding="utf-8")


def corpus_prompt(tokenizer: Tokenizer, n_tokens: int, corpus: str | None = None) -> Prompt:
    """The first corpus window that is exactly ``n_tokens`` tokens long.

    >>> corpus_prompt(engine.tokenizer, 64).tokens  # doctest: +SKIP
    64
    """
    if n_tokens < 1:
        raise PromptError(f"prompt length must be >= 1 token, got {n_tokens}")
    text = corpus if corpus is not None else corpus_text()
    ids = list(tokenizer.encode(text))
    if not ids:
        raise PromptError("the corpus encodes to zero tokens")
    while len(ids) < 2 * n_tokens:  # long prompts repeat the corpus; keeps many cut points
        ids = ids + list(tokenizer.encode("\n" + text))
    for start in range(len(ids) - n_tokens + 1):
        candidate = tokenizer.decode(ids[start : start + n_tokens])
        if len(tokenizer.encode(candidate)) == n_tokens:
            return Prompt(name=f"corpus-{n_tokens}", text=candidate, tokens=n_tokens)
    raise PromptError(f"no window of the corpus re-encodes to exactly {n_tokens} tokens")


def team_prompt(tokenizer: Tokenizer, name: str) -> Prompt:
    """One of TEAM_PROMPTS, with its token count under ``tokenizer``."""
    if name not in TEAM_PROMPTS:
        raise PromptError(f"unknown team prompt {name!r}; known: {', '.join(sorted(TEAM_PROMPTS))}")
    text = TEAM_PROMPTS[name]
    return Prompt(name=name, text=text, tokens=len(tokenizer.encode(text)))
