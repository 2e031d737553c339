"""Identify a model on disk: a readable id and a content hash over all of its files.

Baselines are keyed by the hash, so a rebuilt or swapped model is never compared
against numbers measured on another one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelIdentity:
    model_id: str
    sha256: str
    files: int
    bytes: int


def identify(path: Path) -> ModelIdentity:
    """Hash every regular file under ``path`` (or the file itself), names included.

    >>> identify(Path("models/tiny-qwen2")).model_id  # doctest: +SKIP
    'tiny-qwen2'
    """
    if not path.exists():
        raise FileNotFoundError(f"model path {str(path)!r} does not exist")
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    total = 0
    for file in files:
        digest.update(file.relative_to(path.parent if path.is_file() else path).as_posix().encode())
        digest.update(b"\0")
        with file.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
                total += len(chunk)
    model_id = path.stem if path.is_file() else path.resolve().name
    return ModelIdentity(model_id=model_id, sha256=digest.hexdigest(), files=len(files), bytes=total)
