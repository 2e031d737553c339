"""Qualcomm Genie: ``--engine genie --model path/to/genie_config.json``.

Two backends run the same dialog and produce the same ``Generation``
(``--genie-backend {auto,appbuilder,capi}``; auto takes AppBuilder where it is installed):

- ``appbuilder`` (engines/genie_appbuilder.py): ``qai_appbuilder.GenieContext``, what the
  team's app uses. Wheels exist only for Windows on ARM64 and Linux aarch64; elsewhere it is
  contract-tested against tests/fake_qai_appbuilder.py. Its text callback is polled every
  ~100 ms, so TTFT and TPOT come from Genie's profile (device clock).
- ``capi`` (engines/genie_capi.py): Genie's own C API through ctypes, from the library the
  onnxruntime-qnn wheel ships (``libGenie.so``; ``Genie.dll`` on Windows ARM64) or
  ``--genie-lib``. Its query callback comes once per token, so per-token times are the
  client's. On x86_64 its QnnHtp backend is the HTP simulator: a real dialog, simulator times.

This module reads the config bundle (without loading it) and Genie's profile JSON, and holds
the engine that picks a backend.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from npuperf.engines.base import (
    EngineError,
    EngineInfo,
    EngineOptions,
    EngineUnavailable,
    Generation,
    LoadedParts,
    ModelError,
    OnToken,
    phases_of,
)
from npuperf.engines.hf_tokenizer import HfTokenizer

NAME = "genie"
INSTALL = "pip install qai-appbuilder (wheels: Windows on ARM64/ARM64EC, Linux aarch64; there is none for x86_64)"
CLOCK = "latency: client perf_counter_ns; TTFT and TPOT: Genie GetProfile() (device clock)"
# Sampling for latency runs: top-k 1 is greedy, so every repetition does the same work.
GREEDY = ("0.8", "1", "1.0")
_UNITS_US = {"us": 1.0, "usec": 1.0, "microsec": 1.0, "µs": 1.0, "ms": 1000.0, "millisec": 1000.0, "s": 1e6, "sec": 1e6}
_FINGERPRINT_SAMPLE = 1 << 20


# ----- the config bundle ----------------------------------------------------------------


@dataclass(frozen=True)
class GenieConfig:
    """What a Genie config says about how the model will run.

    Relative paths are resolved against the config's own folder: the engine enters
    that folder while Genie loads (Genie itself resolves them against the working
    directory).
    """

    path: Path
    dialog_type: str
    context_size: int | None
    backend_type: str
    extensions: Path | None
    perf_profile: str | None
    ctx_bins: tuple[Path, ...]
    tokenizer: Path | None
    problems: tuple[str, ...]

    @property
    def on_htp(self) -> bool:
        return self.backend_type == "QnnHtp"

    @property
    def speculative(self) -> bool:
        return self.dialog_type.startswith("ssd")


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{what} {str(path)!r} does not exist") from None
    except OSError as exc:
        raise ModelError(f"cannot read {what} {str(path)!r} ({exc.strerror})") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{what} {str(path)!r} is not valid JSON ({exc})") from exc


def _get(doc: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return doc


def inspect_config(path: Path) -> GenieConfig:
    """Read a Genie config (and its backend extensions file) without loading the model.

    Raises ModelError for a missing, unreadable or non-Genie file; files the config
    names but that are missing are listed in ``problems``.
    """
    doc = _read_json(path, "Genie config")
    dialog = _get(doc, "dialog")
    if not isinstance(dialog, dict):
        raise ModelError(
            f"{str(path)!r} is not a Genie dialog config: no top-level 'dialog' object "
            "(expected a genie_config.json such as Qwen2.0-7B-SSD's)"
        )
    base = path.parent
    problems: list[str] = []

    def resolve(value: Any, what: str) -> Path | None:
        if not isinstance(value, str) or not value:
            return None
        file = Path(value) if Path(value).is_absolute() else base / value
        if not file.is_file():
            problems.append(f"{what} {value!r} not found (looked in {str(file.parent)!r})")
        return file

    engine = _get(dialog, "engine") or {}
    backend = _get(engine, "backend") or {}
    backend_type = str(_get(backend, "type") or "unknown")
    extensions = resolve(_get(backend, "extensions"), "backend extensions file")
    perf_profile = None
    if extensions is not None and extensions.is_file():
        ext = _read_json(extensions, "backend extensions file")
        cores = [c for d in _get(ext, "devices") or [] if isinstance(d, dict) for c in d.get("cores") or []]
        profiles = {str(c.get("perf_profile")) for c in cores if isinstance(c, dict) and "perf_profile" in c}
        if len(profiles) > 1:
            problems.append(f"extensions file sets different perf_profile values per core: {sorted(profiles)}")
        perf_profile = sorted(profiles)[0] if profiles else None
    bins = _get(engine, "model", "binary", "ctx-bins") or []
    ctx_bins = tuple(p for p in (resolve(b, "context binary") for b in bins) if p is not None)
    if not ctx_bins and _get(engine, "model", "type") == "binary":
        problems.append("engine.model.binary.ctx-bins lists no context binary")
    tokenizer = resolve(_get(dialog, "tokenizer", "path"), "tokenizer")
    size = _get(dialog, "context", "size")
    return GenieConfig(
        path=path,
        dialog_type=str(_get(dialog, "type") or "basic"),
        context_size=int(size) if isinstance(size, int) else None,
        backend_type=backend_type,
        extensions=extensions,
        perf_profile=perf_profile,
        ctx_bins=ctx_bins,
        tokenizer=tokenizer,
        problems=tuple(problems),
    )


def fingerprint(config: GenieConfig) -> str:
    """A sha256 over the config files and each context binary's name, size, head and tail.

    A 7B bundle is gigabytes; hashing all of it would add seconds to every load. The
    sampled hash changes when a binary is rebuilt or swapped, which is what baselines need.
    """
    digest = hashlib.sha256()
    for file in (config.path, config.extensions, config.tokenizer):
        if file is not None and file.is_file():
            digest.update(file.name.encode() + b"\0" + file.read_bytes())
    for binary in config.ctx_bins:
        size = binary.stat().st_size
        digest.update(f"{binary.name}\0{size}\0".encode())
        with binary.open("rb") as handle:
            digest.update(handle.read(_FINGERPRINT_SAMPLE))
            handle.seek(max(0, size - _FINGERPRINT_SAMPLE))
            digest.update(handle.read(_FINGERPRINT_SAMPLE))
    return digest.hexdigest()


# ----- the profile ----------------------------------------------------------------------


@dataclass(frozen=True)
class QueryProfile:
    """The figures Genie's profiler reported for the last query (device clock)."""

    ttft_us: float
    generation_us: float
    prompt_tokens: int
    generated_tokens: int
    prompt_tps: float | None
    generation_tps: float | None

    @property
    def ttft_ms(self) -> float:
        return self.ttft_us / 1000

    @property
    def tpot_ms(self) -> float | None:
        """Decode time over the tokens after the first (FIELD.md's TPOT)."""
        return None if self.generated_tokens < 2 else self.generation_us / 1000 / (self.generated_tokens - 1)


def _value_us(event: Mapping[str, Any], key: str) -> float:
    item = event.get(key)
    if not isinstance(item, dict) or not isinstance(item.get("value"), (int, float)):
        raise EngineError(f"Genie profile: {key!r} is missing or not a number in the last query event")
    unit = str(item.get("unit", "us")).lower()
    if unit not in _UNITS_US:
        raise EngineError(f"Genie profile: {key!r} has unit {unit!r}; expected one of {', '.join(_UNITS_US)}")
    return float(item["value"]) * _UNITS_US[unit]


def _number(event: Mapping[str, Any], key: str) -> float | None:
    item = event.get(key)
    value = item.get("value") if isinstance(item, dict) else None
    return float(value) if isinstance(value, (int, float)) else None


def init_time_ms(text: str) -> float | None:
    """Genie's own ``GenieDialog_create`` init time (device clock), if the profile has it."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return None
    components = _get(doc, "components")
    events = [
        e
        for c in (components if isinstance(components, list) else [])
        if isinstance(c, dict)
        for e in c.get("events") or []
        if isinstance(e, dict) and e.get("type") == "GenieDialog_create"
    ]
    if not events:
        return None
    try:
        return _value_us(events[-1], "init-time") / 1000
    except EngineError:
        return None


def parse_profile(text: str) -> QueryProfile:
    """The last ``GenieDialog_query`` event of ``GetProfile()``'s JSON."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EngineError(f"Genie profile is not JSON ({exc}): {text[:200]!r}") from exc
    components = _get(doc, "components")
    if not isinstance(components, list) or not components:
        raise EngineError("Genie profile has no 'components'; was the dialog created with a profiler bound?")
    events = [e for c in components if isinstance(c, dict) for e in c.get("events") or [] if isinstance(e, dict)]
    queries = [e for e in events if e.get("type") == "GenieDialog_query"]
    if not queries:
        raise EngineError(f"Genie profile has no GenieDialog_query event (events: {[e.get('type') for e in events]})")
    last = queries[-1]
    prompt, generated = _number(last, "num-prompt-tokens"), _number(last, "num-generated-tokens")
    if prompt is None or generated is None:
        raise EngineError("Genie profile: num-prompt-tokens / num-generated-tokens missing in the last query event")
    ttft_us = _value_us(last, "time-to-first-token")
    if generated == 0 and ttft_us > 0:
        # A query of one token reports num-generated-tokens 0 (its token came from the prefill;
        # no decode step ran): measured on Genie 1.21.0, tests/test_genie_real.py. It made one.
        generated = 1
    return QueryProfile(
        ttft_us=ttft_us,
        generation_us=_value_us(last, "token-generation-time"),
        prompt_tokens=int(prompt),
        generated_tokens=int(generated),
        prompt_tps=_number(last, "prompt-processing-rate"),
        generation_tps=_number(last, "token-generation-rate"),
    )


# ----- the engine -----------------------------------------------------------------------

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
            from npuperf.engines.genie_appbuilder import AppBuilderBackend

            return AppBuilderBackend(qai_appbuilder, config, choice.sampling)
    from npuperf.engines.genie_capi import CapiBackend

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


def profile_generation(
    profile: QueryProfile,
    prompt_tokens: int,
    span: tuple[int, int, int],
    requested: int,
    clock: str,
    text: str,
    device: dict[str, float],
) -> Generation:
    """A Generation whose tokens are placed on the client timeline from Genie's profile
    (TTFT, then the decode time spread evenly), as the AppBuilder backend must.

    ``span`` is (submit, query started, query returned) on the client clock. Phases: setup
    (before the query: SetParams), prefill and decode (the profile's, device clock), finish
    (the rest of the client's wall time around the query: the polled callback, returning).
    """
    count = profile.generated_tokens
    if count < 1:
        raise EngineError("Genie reported 0 generated tokens for the query")
    submit, queried, end = span
    first = queried + int(profile.ttft_us * 1000)
    step = 0.0 if count < 2 else profile.generation_us * 1000 / (count - 1)
    tokens = tuple(min(first + int(i * step), end) for i in range(count))
    return Generation(
        prompt_tokens=prompt_tokens,
        requested_new_tokens=requested,
        submit_ns=submit,
        token_ns=tokens,
        stop_reason="eos" if count < requested else "budget",
        clock=clock,
        device={**device, **profile_figures(profile)},
        end_ns=end,
        text=text,
        phases=phases_of(submit, [("setup", queried), ("prefill", tokens[0]), ("decode", tokens[-1]), ("finish", end)]),
    )


def profile_figures(profile: QueryProfile) -> dict[str, float]:
    """Genie's own figures of a query (device clock), for Generation.device."""
    out = {
        "device_ttft_ms": profile.ttft_ms,
        "device_generation_ms": profile.generation_us / 1000,
        "device_prompt_tokens": float(profile.prompt_tokens),
        "device_generated_tokens": float(profile.generated_tokens),
    }
    if profile.prompt_tps is not None:
        out["device_prompt_tps"] = profile.prompt_tps
    if profile.generation_tps is not None:
        out["device_generation_tps"] = profile.generation_tps
    return out


def create(options: EngineOptions) -> GenieEngine:
    extra = options.extra
    choice = BackendChoice(
        backend=extra.get("genie_backend", "auto") or "auto",
        library=extra.get("genie_lib") or None,
        perf_mode=extra.get("htp_perf_mode") or None,
    )
    return GenieEngine(Path(options.model), choice)
