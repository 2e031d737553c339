"""onnxruntime-genai engine: CPU here; QNN or DirectML providers on a device.

Forces exactly N new tokens by setting both min_length and max_length to
prompt + N (both count prompt tokens), and checks that it got them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from npuperf.engines.base import (
    EngineError,
    EngineInfo,
    EngineOptions,
    EngineUnavailable,
    Generation,
    ModelError,
    OnToken,
    Tokenizer,
)
from npuperf.model_files import identify

NAME = "ort-genai"
INSTALL = "pip install onnxruntime-genai"
PROVIDERS = ("cpu",)


class _GenaiTokenizer:
    def __init__(self, og: Any, model: Any) -> None:
        self._tok = og.Tokenizer(model)

    def encode(self, text: str) -> Sequence[int]:
        return [int(i) for i in self._tok.encode(text)]

    def decode(self, ids: Sequence[int]) -> str:
        return str(self._tok.decode(list(ids)))


class OrtGenaiEngine:
    """Runs an onnxruntime-genai model folder (model.onnx + genai_config.json + tokenizer)."""

    def __init__(self, model_dir: Path, provider: str = "cpu") -> None:
        if provider not in PROVIDERS:
            raise ValueError(f"ort-genai provider {provider!r} is not supported here; accepted: {', '.join(PROVIDERS)}")
        self.model_dir = model_dir
        self.provider = provider
        self._og: Any = None
        self._model: Any = None
        self._tokenizer: _GenaiTokenizer | None = None
        self._info: EngineInfo | None = None

    @property
    def info(self) -> EngineInfo:
        if self._info is None:
            raise EngineError("ort-genai engine: info is known only after load()")
        return self._info

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            raise EngineError("ort-genai engine: tokenizer is available only after load()")
        return self._tokenizer

    def load(self) -> None:
        try:
            import onnxruntime_genai as og
        except ImportError as exc:
            raise EngineUnavailable(NAME, f"cannot import onnxruntime_genai ({exc})", INSTALL) from exc
        config = self.model_dir / "genai_config.json"
        if not self.model_dir.is_dir():
            raise ModelError(f"model folder {str(self.model_dir)!r} does not exist")
        if not config.is_file():
            raise ModelError(
                f"model folder {str(self.model_dir)!r} has no genai_config.json; "
                "expected an onnxruntime-genai model folder (model.onnx, genai_config.json, tokenizer)"
            )
        try:
            model = og.Model(str(self.model_dir))
            tokenizer = _GenaiTokenizer(og, model)
        except Exception as exc:  # the runtime raises plain RuntimeError for any bad file
            raise ModelError(f"cannot load model folder {str(self.model_dir)!r}: {exc}") from exc
        identity = identify(self.model_dir)
        self._og, self._model, self._tokenizer = og, model, tokenizer
        self._info = EngineInfo(
            engine=NAME,
            provider=self.provider,
            versions={"onnxruntime-genai": str(getattr(og, "__version__", "unknown"))},
            model_id=identity.model_id,
            model_sha256=identity.sha256,
            details={"model_path": str(self.model_dir), "model_bytes": str(identity.bytes)},
        )

    def generate(self, prompt: str, max_new_tokens: int, on_token: OnToken | None = None) -> Generation:
        if self._model is None or self._tokenizer is None:
            raise EngineError("ort-genai engine: generate() called before load()")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        og = self._og
        ids = self._tokenizer.encode(prompt)
        if not ids:
            raise ValueError("prompt encodes to zero tokens; give a non-empty prompt")
        total = len(ids) + max_new_tokens
        params = og.GeneratorParams(self._model)
        params.set_search_options(min_length=total, max_length=total)
        generator = og.Generator(self._model, params)
        stamps: list[int] = []
        submit = time.perf_counter_ns()
        generator.append_tokens(ids)
        while not generator.is_done():
            generator.generate_next_token()
            if on_token is not None:
                on_token()
            stamps.append(time.perf_counter_ns())
        del generator
        if len(stamps) != max_new_tokens:
            raise EngineError(
                f"ort-genai produced {len(stamps)} new tokens, expected exactly {max_new_tokens} "
                f"(min_length = max_length = {total})"
            )
        return Generation(
            prompt_tokens=len(ids),
            requested_new_tokens=max_new_tokens,
            submit_ns=submit,
            token_ns=tuple(stamps),
        )

    def close(self) -> None:
        self._model = None
        self._tokenizer = None


def create(options: EngineOptions) -> OrtGenaiEngine:
    return OrtGenaiEngine(Path(options.model), provider=options.provider)
