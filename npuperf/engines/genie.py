"""Qualcomm Genie through qai_appbuilder.GenieContext: the production path on Snapdragon.

``--engine genie --model path/to/genie_config.json``. qai-appbuilder has wheels only for
Windows on ARM64 (and ARM64EC) and Linux aarch64, so on other machines this engine is
*contract-tested*: tests/fake_qai_appbuilder.py follows the real signatures
(``GenieContext(config)``, ``SetParams(max_length, temp, top_k, top_p)`` as strings,
``Query(prompt, callback) -> bool``, ``GetProfile() -> str``, ``TokenLength(text)``,
``Stop()``). It runs for real only on a Snapdragon device.

What is measured, and from which clock:

- latency: the client's wall time around ``Query`` (perf_counter_ns);
- TTFT, TPOT, token counts and rates: Genie's own profile (``GetProfile()``, device
  clock). The text callback is polled (every 10-100 ms depending on the version), so
  the client's first-text time is kept only as a coarse cross-check.

The token budget goes through ``SetParams``; the AppBuilder wrapper enforces it by
counting re-encoded text and calling ``Stop()``, so a run can end a little past the
budget (speculative dialogs accept several tokens per pass) or before it (EOS). The
Generation carries the real count and every per-token figure uses it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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
    return QueryProfile(
        ttft_us=_value_us(last, "time-to-first-token"),
        generation_us=_value_us(last, "token-generation-time"),
        prompt_tokens=int(prompt),
        generated_tokens=int(generated),
        prompt_tps=_number(last, "prompt-processing-rate"),
        generation_tps=_number(last, "token-generation-rate"),
    )


# ----- the engine -----------------------------------------------------------------------


class GenieEngine(LoadedParts):
    """A Genie dialog on the Hexagon NPU; contract-tested off-device (see module doc)."""

    name = NAME

    def __init__(self, config_path: Path, sampling: tuple[str, str, str] = GREEDY) -> None:
        self.config_path = config_path
        self.sampling = sampling
        self.config: GenieConfig | None = None
        self._ctx: Any = None
        self._tokenizer: HfTokenizer | None = None
        self._info: EngineInfo | None = None
        # GenieContext is not thread-safe: one query at a time, whoever calls.
        self._lock = threading.Lock()

    def load(self) -> None:
        try:
            import qai_appbuilder
        except ImportError as exc:
            raise EngineUnavailable(NAME, f"cannot import qai_appbuilder ({exc})", INSTALL) from exc
        if self.config_path.is_dir():
            raise ModelError(
                f"--model {str(self.config_path)!r} is a folder; the genie engine takes the path of the bundle's "
                "genie_config.json"
            )
        config = inspect_config(self.config_path)
        if config.problems:
            # The AppBuilder wrapper only prints to stderr when the dialog cannot be created;
            # catching missing files here turns a later crash into a message.
            raise ModelError(f"Genie config {str(self.config_path)!r}: " + "; ".join(config.problems))
        if config.tokenizer is None:
            raise ModelError(f"Genie config {str(self.config_path)!r} names no tokenizer (dialog.tokenizer.path)")
        tokenizer = HfTokenizer(config.tokenizer)
        try:
            with contextlib.chdir(self.config_path.parent):
                ctx = qai_appbuilder.GenieContext(str(self.config_path.resolve()))
        except Exception as exc:  # the extension raises RuntimeError (or worse) for any failure
            raise ModelError(f"GenieContext({str(self.config_path)!r}) failed: {exc}") from exc
        self.config, self._ctx, self._tokenizer = config, ctx, tokenizer
        init_ms = init_time_ms(ctx.GetProfile())
        self._info = EngineInfo(
            engine=NAME,
            provider=config.backend_type,
            versions={"qai-appbuilder": str(getattr(qai_appbuilder, "__version__", "unknown"))},
            model_id=self.config_path.parent.resolve().name,
            model_sha256=fingerprint(config),
            details={
                "genie_config": str(self.config_path),
                "dialog_type": config.dialog_type,
                "context_size": str(config.context_size),
                "backend_type": config.backend_type,
                "perf_profile": str(config.perf_profile),
                "device_init_ms": "not reported" if init_ms is None else f"{init_ms:.1f}",
            },
            context_length=config.context_size,
            config={
                "dialog_type": config.dialog_type,
                "context_size": str(config.context_size),
                "backend_type": config.backend_type,
                "perf_profile": str(config.perf_profile),
            },
        )

    def generate(self, prompt: str, max_new_tokens: int, on_token: OnToken | None = None) -> Generation:
        if self._ctx is None or self._tokenizer is None:
            raise EngineError("genie engine: generate() called before load()")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        prompt_tokens = len(self._tokenizer.encode(prompt))
        if prompt_tokens < 1:
            raise ValueError("prompt encodes to zero tokens; give a non-empty prompt")
        with self._lock:
            return self._query(prompt, prompt_tokens, max_new_tokens, on_token)

    def _query(self, prompt: str, prompt_tokens: int, max_new_tokens: int, on_token: OnToken | None) -> Generation:
        ctx = self._ctx
        if ctx.SetParams(str(max_new_tokens), *self.sampling) is False:
            raise EngineError(f"Genie SetParams({max_new_tokens!r}, ...) failed")
        texts = _Texts(on_token, ctx.Stop)
        arrivals, pieces, raised, callback = texts.arrivals, texts.pieces, texts.raised, texts.callback

        submit = time.perf_counter_ns()
        ok = ctx.Query(prompt, callback)
        end = time.perf_counter_ns()
        if raised:
            raise raised[0]
        if ok is False:
            raise EngineError(f"Genie Query failed for a {prompt_tokens}-token prompt")
        profile = parse_profile(ctx.GetProfile())
        count = profile.generated_tokens
        if count < 1:
            raise EngineError("Genie reported 0 generated tokens for the query")
        first = submit + int(profile.ttft_us * 1000)
        step = 0.0 if count < 2 else profile.generation_us * 1000 / (count - 1)
        stamps = tuple(first + int(i * step) for i in range(count))
        device: dict[str, float] = {
            "device_ttft_ms": profile.ttft_ms,
            "device_generation_ms": profile.generation_us / 1000,
            "device_prompt_tokens": float(profile.prompt_tokens),
            "device_generated_tokens": float(count),
            "client_latency_ms": (end - submit) / 1e6,
            "client_callbacks": float(len(arrivals)),
        }
        if profile.prompt_tps is not None:
            device["device_prompt_tps"] = profile.prompt_tps
        if profile.generation_tps is not None:
            device["device_generation_tps"] = profile.generation_tps
        if arrivals:
            device["client_first_text_ms"] = (arrivals[0] - submit) / 1e6
        return Generation(
            prompt_tokens=prompt_tokens,
            requested_new_tokens=max_new_tokens,
            submit_ns=submit,
            token_ns=stamps,
            stop_reason="eos" if count < max_new_tokens else "budget",
            clock=CLOCK,
            device=device,
            end_ns=end,
            text="".join(pieces),
        )

    def close(self) -> None:
        """Release the dialog (the wrapper frees it when the object goes)."""
        with self._lock:
            self._ctx = None


class _Texts:
    """Query's callback: the arrival time and text of each piece, and ``on_token`` called first.

    An exception from ``on_token`` (the server's ClientGone) must not cross the extension's
    C++ frames: it is kept, the dialog is asked to stop (Stop(), and the callback returns
    False), and ``_query`` raises it once Query has returned.
    """

    def __init__(self, on_token: OnToken | None, stop: Callable[[], object]) -> None:
        self.on_token, self.stop = on_token, stop
        self.arrivals: list[int] = []
        self.pieces: list[str] = []
        self.raised: list[BaseException] = []

    def callback(self, text: str) -> bool:
        if self.raised:
            return False
        try:
            if self.on_token is not None:
                self.on_token()
        except BaseException as exc:  # stop generating; re-raised after Query
            self.raised.append(exc)
            self.stop()
            return False
        self.arrivals.append(time.perf_counter_ns())
        self.pieces.append(text)
        return True


def create(options: EngineOptions) -> GenieEngine:
    return GenieEngine(Path(options.model))
