"""A Genie config bundle read without loading it: backend, perf profile, files, a fingerprint.

Shared by the engine (engine.py), both backends (appbuilder.py, capi.py) and the NPU checks.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from npuperf.engines.base import ModelError

_FINGERPRINT_SAMPLE = 1 << 20


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


def dig(doc: Any, *keys: str) -> Any:
    """``doc[k1][k2]...``, or None where a key is missing or a level is not an object."""
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
    dialog = dig(doc, "dialog")
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

    engine = dig(dialog, "engine") or {}
    backend = dig(engine, "backend") or {}
    backend_type = str(dig(backend, "type") or "unknown")
    extensions = resolve(dig(backend, "extensions"), "backend extensions file")
    perf_profile = None
    if extensions is not None and extensions.is_file():
        ext = _read_json(extensions, "backend extensions file")
        cores = [c for d in dig(ext, "devices") or [] if isinstance(d, dict) for c in d.get("cores") or []]
        profiles = {str(c.get("perf_profile")) for c in cores if isinstance(c, dict) and "perf_profile" in c}
        if len(profiles) > 1:
            problems.append(f"extensions file sets different perf_profile values per core: {sorted(profiles)}")
        perf_profile = sorted(profiles)[0] if profiles else None
    bins = dig(engine, "model", "binary", "ctx-bins") or []
    ctx_bins = tuple(p for p in (resolve(b, "context binary") for b in bins) if p is not None)
    if not ctx_bins and dig(engine, "model", "type") == "binary":
        problems.append("engine.model.binary.ctx-bins lists no context binary")
    tokenizer = resolve(dig(dialog, "tokenizer", "path"), "tokenizer")
    size = dig(dialog, "context", "size")
    return GenieConfig(
        path=path,
        dialog_type=str(dig(dialog, "type") or "basic"),
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
