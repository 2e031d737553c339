"""Versioned baseline files: the key, strict loading, merging and atomic saving.

One file per key (device x engine x provider x runtime versions x model), one entry
per case, raw samples kept so later comparisons can use any statistic (the summary
beside them is for reviewers and is recomputed, never trusted, on load). Files are
JSON with sorted keys and one-line sample arrays so that diffs review like code.
Comparison lives in verdict.py; this module only reads and writes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from npuperf import atomic
from npuperf.stats import Summary, median, upper_median

SCHEMA = "npuperf.baseline/2"
# v1 (no noise floor) still loads; its comparisons fall back to the tolerance alone.
SUPPORTED_SCHEMAS = ("npuperf.baseline/1", SCHEMA)


class BaselineError(Exception):
    """A baseline file cannot be used; the message names the file and the reason."""


@dataclass(frozen=True)
class BaselineKey:
    """What must be identical for two measurements to be compared."""

    device: Mapping[str, str]
    engine: str
    provider: str
    versions: Mapping[str, str]
    model_id: str
    model_sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "device": dict(sorted(self.device.items())),
            "engine": self.engine,
            "provider": self.provider,
            "versions": dict(sorted(self.versions.items())),
            "model_id": self.model_id,
            "model_sha256": self.model_sha256,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BaselineKey:
        return cls(
            device={str(k): str(v) for k, v in data["device"].items()},
            engine=str(data["engine"]),
            provider=str(data["provider"]),
            versions={str(k): str(v) for k, v in data["versions"].items()},
            model_id=str(data["model_id"]),
            model_sha256=str(data["model_sha256"]),
        )

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:12]

    def filename(self) -> str:
        """e.g. ``linux-x86_64-amd-epyc-2c/ort-genai-cpu-tiny-qwen2-1a2b3c4d5e6f.json``."""
        from npuperf.device import slug

        name = re.sub(r"[^a-z0-9_.]+", "-", f"{self.engine}-{self.provider}-{self.model_id}".lower())
        return f"{slug(dict(self.device))}/{name}-{self.digest}.json"

    def differences(self, other: BaselineKey) -> list[str]:
        """Human-readable fields in which ``other`` differs from this key."""
        mine, theirs = self.as_dict(), other.as_dict()
        out = []
        for section in ("device", "versions"):
            for k in sorted(set(mine[section]) | set(theirs[section])):
                a, b = theirs[section].get(k, "-"), mine[section].get(k, "-")
                if a != b:
                    out.append(f"{section}.{k}: {a} -> {b}")
        for k in ("engine", "provider", "model_id", "model_sha256"):
            if mine[k] != theirs[k]:
                out.append(f"{k}: {theirs[k]} -> {mine[k]}")
        return out


@dataclass(frozen=True)
class CaseBaseline:
    """Accepted samples of one case."""

    case_id: str
    prompt: str
    prompt_tokens: int
    new_tokens: int
    sampling: str
    samples: Mapping[str, tuple[float, ...]]
    recorded_at: str
    commit: str = ""
    # Same-code drift per metric: ln(m1 / m2), signed, between the medians of two passes
    # over the grid made when the baseline was recorded (empty in v1 files).
    noise: Mapping[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "prompt_tokens": self.prompt_tokens,
            "new_tokens": self.new_tokens,
            "sampling": self.sampling,
            "samples": {k: [round(v, 4) for v in vs] for k, vs in sorted(self.samples.items())},
            # for reviewers reading a diff; derived from the samples and ignored on load
            "summary": {k: Summary.of(vs).brief(digits=4) for k, vs in sorted(self.samples.items()) if vs},
            "noise": {k: round(v, 5) for k, v in sorted(self.noise.items())},
            "recorded_at": self.recorded_at,
            "commit": self.commit,
        }


@dataclass(frozen=True)
class BaselineFile:
    key: BaselineKey
    cases: Mapping[str, CaseBaseline] = field(default_factory=dict)
    schema: str = SCHEMA

    def noise_floor(self, case_id: str, metric: str) -> float | None:
        """The case's recorded noise, but never below the median noise of the file's cases.

        Two passes give a rough per-case estimate; the grid-wide median keeps a case that
        happened to agree with itself from getting a threshold tighter than the machine.
        """
        own = self.cases[case_id].noise.get(metric) if case_id in self.cases else None
        if own is None:
            return None
        return max(abs(own), upper_median([abs(c.noise[metric]) for c in self.cases.values() if metric in c.noise]))

    def grid_noise(self, metric: str) -> float | None:
        """How far the grid's median case moved between the two passes: |median of ln(m1/m2)|.

        The noise floor of the whole-grid test (None in v1 files). Cases drift in both
        directions, so the grid statistic moves much less than any one case.
        """
        values = [c.noise[metric] for c in self.cases.values() if metric in c.noise]
        return abs(median(values)) if values else None

    def merged(self, new_cases: Mapping[str, CaseBaseline]) -> BaselineFile:
        """Cases measured now replace their old entries; the others are kept."""
        return BaselineFile(key=self.key, cases={**self.cases, **new_cases}, schema=SCHEMA)

    def to_json(self) -> str:
        doc = {
            "schema": SCHEMA,
            "key": self.key.as_dict(),
            "cases": {cid: self.cases[cid].as_dict() for cid in sorted(self.cases)},
        }
        return _dump(doc) + "\n"


def _dump(value: Any, indent: int = 0) -> str:
    """JSON with sorted keys, nested objects indented; lists and all-number objects on one line."""
    pad = "  " * (indent + 1)
    if isinstance(value, dict):
        if not value:
            return "{}"
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values()):
            return json.dumps(value, sort_keys=True)
        items = [f"{pad}{json.dumps(k, ensure_ascii=False)}: {_dump(value[k], indent + 1)}" for k in sorted(value)]
        return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
    return json.dumps(value, ensure_ascii=False)


def _case_from(path: Path, cid: str, data: Any) -> CaseBaseline:
    try:
        samples = {str(k): tuple(float(x) for x in v) for k, v in data["samples"].items()}
        if not samples.get("latency_ms"):
            raise ValueError("no latency_ms samples")
        return CaseBaseline(
            case_id=cid,
            prompt=str(data["prompt"]),
            prompt_tokens=int(data["prompt_tokens"]),
            new_tokens=int(data["new_tokens"]),
            sampling=str(data["sampling"]),
            samples=samples,
            recorded_at=str(data.get("recorded_at", "")),
            commit=str(data.get("commit", "")),
            noise={str(k): float(v) for k, v in data.get("noise", {}).items()},
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BaselineError(f"{path}: case {cid!r} is malformed ({exc!r}); fix or delete the file") from exc


def load(path: Path) -> BaselineFile:
    """Read and validate one baseline file; any defect raises BaselineError naming the file."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"{path}: cannot read baseline file ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise BaselineError(
            f"{path}: not valid JSON (line {exc.lineno}: {exc.msg}); fix it, or delete it and "
            "re-record with --update-baselines"
        ) from exc
    if not isinstance(doc, dict) or "schema" not in doc:
        raise BaselineError(f"{path}: not an npuperf baseline file (no 'schema' field)")
    if doc["schema"] not in SUPPORTED_SCHEMAS:
        raise BaselineError(
            f"{path}: baseline schema {doc['schema']!r} is not supported; this npuperf reads "
            f"{', '.join(SUPPORTED_SCHEMAS)}; re-record with --update-baselines"
        )
    try:
        key = BaselineKey.from_dict(doc["key"])
        raw_cases = doc["cases"]
        if not isinstance(raw_cases, dict):
            raise TypeError("'cases' is not an object")
    except (KeyError, TypeError, AttributeError) as exc:
        raise BaselineError(f"{path}: baseline key or cases are malformed ({exc!r})") from exc
    cases = {cid: _case_from(path, cid, c) for cid, c in raw_cases.items()}
    return BaselineFile(key=key, cases=cases, schema=str(doc["schema"]))


@dataclass(frozen=True)
class Lookup:
    """The baseline for a key, or why there is none."""

    path: Path
    file: BaselineFile | None
    near_misses: tuple[str, ...] = ()


def find(root: Path, key: BaselineKey) -> Lookup:
    """The file for ``key`` under ``root``; when absent, explain what the other files differ in."""
    path = root / key.filename()
    if path.is_file():
        found = load(path)
        if found.key != key:
            raise BaselineError(
                f"{path}: holds a baseline for another key ({'; '.join(key.differences(found.key))}); "
                "it was renamed or edited by hand; delete it or move it back"
            )
        return Lookup(path=path, file=found)
    misses = []
    for other in sorted(root.rglob("*.json")) if root.is_dir() else []:
        try:
            theirs = load(other)
        except BaselineError as exc:
            misses.append(f"{other.relative_to(root)}: unreadable ({exc})")
            continue
        if theirs.key.engine == key.engine and theirs.key.model_id == key.model_id:
            misses.append(f"{other.relative_to(root)} differs in " + "; ".join(key.differences(theirs.key)))
    return Lookup(path=path, file=None, near_misses=tuple(misses))


def save(path: Path, baseline: BaselineFile) -> None:
    """Write atomically. An existing file that is corrupt or holds another key is never replaced."""
    if path.exists():
        existing = load(path)
        if existing.key != baseline.key:
            raise BaselineError(
                f"{path}: refusing to overwrite a baseline for another key "
                f"({'; '.join(baseline.key.differences(existing.key))})"
            )
    atomic.write_text(path, baseline.to_json())
