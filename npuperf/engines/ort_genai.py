"""onnxruntime-genai engine: the CPU provider, or QNN through the onnxruntime-qnn plugin.

Forces exactly N new tokens by setting both min_length and max_length to
prompt + N (both count prompt tokens), and checks that it got them.

``--ep qnn`` registers the onnxruntime-qnn library with onnxruntime-genai and asks for
the QNN provider with the HTP performance mode (``--htp-perf-mode``, burst by default):

    og.register_execution_provider_library(qnn.get_ep_name(), qnn.get_library_path())
    config = og.Config(folder); config.clear_providers(); config.append_provider("QNN")
    config.set_provider_option("QNN", "htp_performance_mode", "burst")

The model folder must then be a QNN export (static shapes, from AI Hub or Olive); the
model builder's CPU models such as the embedded one are not.
"""

from __future__ import annotations

import json
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
    LoadedParts,
    ModelError,
    OnToken,
    installed_version,
    phases_of,
)
from npuperf.models.files import identify

NAME = "ort-genai"
INSTALL = "pip install onnxruntime-genai"
PROVIDERS = ("cpu", "qnn")
QNN_INSTALL = "pip install onnxruntime-qnn"


class _GenaiTokenizer:
    def __init__(self, og: Any, model: Any) -> None:
        self._tok = og.Tokenizer(model)

    def encode(self, text: str) -> Sequence[int]:
        return [int(i) for i in self._tok.encode(text)]

    def decode(self, ids: Sequence[int]) -> str:
        return str(self._tok.decode(list(ids)))


class OrtGenaiEngine(LoadedParts):
    """Runs an onnxruntime-genai model folder (model.onnx + genai_config.json + tokenizer)."""

    name = NAME

    def __init__(self, model_dir: Path, provider: str = "cpu", htp_perf_mode: str = "burst") -> None:
        if provider not in PROVIDERS:
            raise ValueError(f"ort-genai provider {provider!r} is not supported here; accepted: {', '.join(PROVIDERS)}")
        self.model_dir = model_dir
        self.provider = provider
        self.htp_perf_mode = htp_perf_mode
        self.provider_options: dict[str, str] = {}
        self._og: Any = None
        self._model: Any = None
        self._tokenizer: _GenaiTokenizer | None = None
        self._info: EngineInfo | None = None

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
        versions = {"onnxruntime-genai": str(getattr(og, "__version__", "unknown"))}
        source: Any = str(self.model_dir)
        if self.provider == "qnn":
            source = self._qnn_config(og, versions)
        try:
            model = og.Model(source)
            tokenizer = _GenaiTokenizer(og, model)
        except Exception as exc:  # the runtime raises plain RuntimeError for any bad file
            raise ModelError(f"cannot load model folder {str(self.model_dir)!r}: {exc}") from exc
        identity = identify(self.model_dir)
        context = _context_length(config)
        self._og, self._model, self._tokenizer = og, model, tokenizer
        self._info = EngineInfo(
            engine=NAME,
            provider=self.provider,
            versions=versions,
            model_id=identity.model_id,
            model_sha256=identity.sha256,
            details={
                "model_path": str(self.model_dir),
                "model_bytes": str(identity.bytes),
                **{f"QNN {k}": v for k, v in self.provider_options.items()},
            },
            context_length=context,
            config={f"QNN {k}": v for k, v in self.provider_options.items()},
        )

    def _qnn_config(self, og: Any, versions: dict[str, str]) -> Any:
        """Register onnxruntime-qnn with genai and build a Config that asks for QNN in the perf mode."""
        try:
            import onnxruntime_qnn as qnn
        except ImportError as exc:
            raise EngineUnavailable(NAME, f"--ep qnn needs onnxruntime_qnn ({exc})", QNN_INSTALL) from exc
        try:
            og.register_execution_provider_library(qnn.get_ep_name(), qnn.get_library_path())
        except Exception as exc:  # genai raises RuntimeError with the loader's message
            raise EngineError(f"cannot register {qnn.get_library_path()} with onnxruntime-genai: {exc}") from exc
        self.provider_options = {"backend_type": "htp", "htp_performance_mode": self.htp_perf_mode}
        config = og.Config(str(self.model_dir))
        config.clear_providers()
        config.append_provider("QNN")
        for key, value in self.provider_options.items():
            config.set_provider_option("QNN", key, value)
        versions["onnxruntime-qnn"] = installed_version("onnxruntime-qnn")
        return config

    def generate(self, prompt: str, max_new_tokens: int, on_token: OnToken | None = None) -> Generation:
        if self._model is None or self._tokenizer is None:
            raise EngineError("ort-genai engine: generate() called before load()")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        og = self._og
        submit = time.perf_counter_ns()  # the prompt text is handed over: latency starts here
        ids = self._tokenizer.encode(prompt)
        if not ids:
            raise ValueError("prompt encodes to zero tokens; give a non-empty prompt")
        tokenized = time.perf_counter_ns()
        total = len(ids) + max_new_tokens
        params = og.GeneratorParams(self._model)
        params.set_search_options(min_length=total, max_length=total)
        generator = og.Generator(self._model, params)  # allocates the KV cache
        ready = time.perf_counter_ns()
        stamps: list[int] = []
        generator.append_tokens(ids)
        while not generator.is_done():
            generator.generate_next_token()
            if on_token is not None:
                on_token()
            stamps.append(time.perf_counter_ns())
        new_ids = [int(i) for i in generator.get_sequence(0)][len(ids) :]
        del generator
        text = self._tokenizer.decode(new_ids)
        end = time.perf_counter_ns()
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
            end_ns=end,
            text=text,
            phases=phases_of(
                submit,
                [
                    ("tokenize", tokenized),
                    ("setup", ready),
                    ("prefill", stamps[0]),
                    ("decode", stamps[-1]),
                    ("detokenize", end),
                ],
            ),
        )

    def close(self) -> None:
        self._model = None
        self._tokenizer = None


def _context_length(config: Path) -> int | None:
    try:
        value = json.loads(config.read_text(encoding="utf-8"))["model"]["context_length"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, int) and value > 0 else None


def create(options: EngineOptions) -> OrtGenaiEngine:
    return OrtGenaiEngine(
        Path(options.model), provider=options.provider, htp_perf_mode=options.extra.get("htp_perf_mode", "burst")
    )
