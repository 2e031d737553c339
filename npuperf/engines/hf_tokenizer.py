"""A Hugging Face ``tokenizer.json`` as an npuperf Tokenizer (Genie bundles, HTTP services).

Used where the runtime itself offers no encode/decode the suite can call: prompts of an
exact token length are made with the same tokenizer the model uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from npuperf.engines.base import EngineUnavailable, ModelError


class HfTokenizer:
    """``tokenizer.json`` through the ``tokenizers`` package; no special tokens added."""

    def __init__(self, path: Path, engine: str = "genie") -> None:
        try:
            from tokenizers import Tokenizer as _Tokenizer
        except ImportError as exc:
            raise EngineUnavailable(engine, f"cannot import tokenizers ({exc})", "pip install tokenizers") from exc
        if not path.is_file():
            raise ModelError(f"tokenizer {str(path)!r} does not exist")
        try:
            self._tok = _Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception for a bad file
            raise ModelError(f"cannot read tokenizer {str(path)!r}: {exc}") from exc

    def encode(self, text: str) -> Sequence[int]:
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: Sequence[int]) -> str:
        return str(self._tok.decode(list(ids), skip_special_tokens=False))
