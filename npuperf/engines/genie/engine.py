"""The Genie engine: reads the bundle, picks a backend (AppBuilder or the C API), loads, generates."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from npuperf.engines.base import (
    EngineError,
    EngineInfo,
    EngineOptions,
    EngineUnavailable,
    Generation,
    LoadedParts,
    ModelError,
    OnToken,
)
from npuperf.engines.genie.config import GenieConfig, fingerprint, inspect_config
from npuperf.engines.hf_tokenizer import HfTokenizer

NAME = "genie"
INSTALL = "pip install qai-appbuilder (wheels: Windows on ARM64/ARM64EC, Linux aarch64; there is none for x86_64)"
# Sampling for latency runs: top-k 1 is greedy, so every repetition does the same work.
GREEDY = ("0.8", "1", "1.0")

BACKENDS = ("auto", "appbuilder", "capi")


class GenieBackend(Protocol):
    """One way of running a Genie dialog (see the module doc)."""

    name: str
    provider: str  # the backend type, "-simulator" added when the HTP is simulated
    versions: dict[str, str]
    details: dict[str, str]

    def generate(
        self, prompt: str, prompt_tokens: int, max_new_tokens: int, on_token: OnToken | None
    ) -> Generation: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class BackendChoice:
    """What --genie-backend, --genie-lib and the HTP perf mode ask of the engine."""

    backend: str = "auto"
    library: str | None = None
    perf_mode: str | None = None
    sampling: tuple[str, str, str] = GREEDY

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise EngineError(f"--genie-backend {self.backend!r} is unknown; expected one of {', '.join(BACKENDS)}")


def open_backend(choice: BackendChoice, config: GenieConfig) -> GenieBackend:
    """AppBuilder where it is installed (or asked for), else Genie's C API."""
    if choice.backend in ("auto", "appbuilder"):
        try:
            import qai_appbuilder
        except ImportError as exc:
            if choice.backend == "appbuilder":
                raise EngineUnavailable(NAME, f"cannot import qai_appbuilder ({exc})", INSTALL) from exc
        else:
            from npuperf.engines.genie.appbuilder import AppBuilderBackend

            return AppBuilderBackend(qai_appbuilder, config, choice.sampling)
    from npuperf.engines.genie.capi import CapiBackend

    return CapiBackend(config, choice.library, choice.perf_mode)


class GenieEngine(LoadedParts):
    """A Genie dialog on the Hexagon NPU (or the HTP simulator, through the C API)."""

    name = NAME

    def __init__(self, config_path: Path, choice: BackendChoice | None = None) -> None:
        self.config_path = config_path
        self.choice = choice or BackendChoice()
        self.config: GenieConfig | None = None
        self.backend: GenieBackend | None = None
        self._tokenizer: HfTokenizer | None = None
        self._info: EngineInfo | None = None
        # Genie dialogs are not thread-safe: one query at a time, whoever calls.
        self._lock = threading.Lock()

    def load(self) -> None:
        if self.config_path.is_dir():
            raise ModelError(
                f"--model {str(self.config_path)!r} is a folder; the genie engine takes the path of the bundle's "
                "genie_config.json"
            )
        config = inspect_config(self.config_path)
        if config.problems:
            # Genie only logs when a file is missing; naming it here turns a crash into a message.
            raise ModelError(f"Genie config {str(self.config_path)!r}: " + "; ".join(config.problems))
        if config.tokenizer is None:
            raise ModelError(f"Genie config {str(self.config_path)!r} names no tokenizer (dialog.tokenizer.path)")
        tokenizer = HfTokenizer(config.tokenizer)
        backend = open_backend(self.choice, config)
        self.config, self.backend, self._tokenizer = config, backend, tokenizer
        settings = {
            "dialog_type": config.dialog_type,
            "context_size": str(config.context_size),
            "backend_type": config.backend_type,
            "perf_profile": str(config.perf_profile),
            **{k: v for k, v in backend.details.items() if k == "performance policy"},
        }
        self._info = EngineInfo(
            engine=NAME,
            provider=backend.provider,
            versions=backend.versions,
            model_id=self.config_path.parent.resolve().name,
            model_sha256=fingerprint(config),
            details={
                "genie_config": str(self.config_path),
                "genie backend": backend.name,
                **settings,
                **backend.details,
            },
            context_length=config.context_size,
            config=settings,
        )

    def generate(self, prompt: str, max_new_tokens: int, on_token: OnToken | None = None) -> Generation:
        if self.backend is None or self._tokenizer is None:
            raise EngineError("genie engine: generate() called before load()")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        prompt_tokens = len(self._tokenizer.encode(prompt))
        if prompt_tokens < 1:
            raise ValueError("prompt encodes to zero tokens; give a non-empty prompt")
        with self._lock:
            return self.backend.generate(prompt, prompt_tokens, max_new_tokens, on_token)

    def close(self) -> None:
        """Free the dialog."""
        with self._lock:
            if self.backend is not None:
                self.backend.close()
            self.backend = None


def create(options: EngineOptions) -> GenieEngine:
    extra = options.extra
    choice = BackendChoice(
        backend=extra.get("genie_backend", "auto") or "auto",
        library=extra.get("genie_lib") or None,
        perf_mode=extra.get("htp_perf_mode") or None,
    )
    return GenieEngine(Path(options.model), choice)
