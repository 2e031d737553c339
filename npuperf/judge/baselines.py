"""Versioned baseline files: identity, provenance, strict loading, merging and atomic saving.

A file holds the accepted samples of one **identity** - device x engine x provider x model
name - one entry per case. What a nightly run is there to judge (the model's hash,
runtime versions, config fingerprints, the commit) is each case's **provenance**: stored
with it, compared but not matched, so a re-exported model or a runtime upgrade is judged
against the numbers it replaces, and every verdict says what changed. ``strict`` matching
(``--baseline-match strict``) also requires the provenance to match, as schema v1/v2 did.

Raw samples are kept so later comparisons can use any statistic (the summary beside them
is for reviewers and is recomputed, never trusted, on load). Files are JSON with sorted
keys and one-line sample arrays so that diffs review like code. Comparison lives in
verdict.py; this module only reads and writes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from npuperf import atomic
from npuperf.judge.stats import Summary, median, median_of_medians, upper_median

SCHEMA = "npuperf.baseline/4"
# v1 (no noise floor), v2 and v3 still load: v1/v2's key splits into identity and provenance;
# v3 samples (one process) are one group, and its identity names no host (treated as another's).
LEGACY_SCHEMAS = ("npuperf.baseline/1", "npuperf.baseline/2", "npuperf.baseline/3")
KEYED_SCHEMAS = ("npuperf.baseline/1", "npuperf.baseline/2")
SUPPORTED_SCHEMAS = (*LEGACY_SCHEMAS, SCHEMA)
MATCHES = ("identity", "strict")
# Provenance keys, in the order a change is told: what changed in the model first.
MODEL_HASH = "model sha256"
COMMIT = "commit"
HOST = "host"  # npuperf.machine.host: told first, since another host changes every figure
# What "latency" means: from the prompt text handed to the engine to the output text returned
# (docs/metrics.md). Before 2026-11-26 the ort-genai engine timed from after tokenizing and
# generator setup to the last token; baselines recorded then have no such key, so a
# comparison across the change says "latency definition (none) -> text-to-text".
DEFINITION = "latency definition"
LATENCY_DEFINITION = "text-to-text"


class BaselineError(Exception):
    """A baseline file cannot be used; the message names the file and the reason."""


@dataclass(frozen=True)
class Identity:
    """What must be the same for two measurements to be compared at all, and the host that
    measured them (npuperf.machine.host: a hash). Another host's baseline of the same device,
    engine and model is still compared, but as another machine's (``same_but_host``)."""

    device: Mapping[str, str]
    engine: str
    provider: str
    model_id: str
    host: str = ""  # "" in files of schema v1..v3: an unknown host

    def as_dict(self) -> dict[str, Any]:
        out = {
            "device": dict(sorted(self.device.items())),
            "engine": self.engine,
            "provider": self.provider,
            "model_id": self.model_id,
        }
        if self.host:
            out["host"] = self.host
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Identity:
        return cls(
            device={str(k): str(v) for k, v in data["device"].items()},
            engine=str(data["engine"]),
            provider=str(data["provider"]),
            model_id=str(data["model_id"]),
            host=str(data.get("host", "")),
        )

    def same_but_host(self, other: Identity) -> bool:
        """The same device, engine, provider and model, measured on another host."""
        return replace(self, host="") == replace(other, host="") and self.host != other.host

    @property
    def host_name(self) -> str:
        return self.host or "an unknown host"

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:12]

    def filename(self) -> str:
        """e.g. ``linux-x86_64-amd-epyc-2c/ort-genai-cpu-tiny-qwen2-1a2b3c4d5e6f.json``."""
        from npuperf.machine.device import slug

        name = re.sub(r"[^a-z0-9_.]+", "-", f"{self.engine}-{self.provider}-{self.model_id}".lower())
        return f"{slug(dict(self.device))}/{name}-{self.digest}.json"

    def differences(self, other: Identity) -> list[str]:
        """Human-readable fields in which ``other`` differs from this identity."""
        mine, theirs = self.as_dict(), other.as_dict()
        out = [
            f"device.{k}: {theirs['device'].get(k, '-')} -> {mine['device'].get(k, '-')}"
            for k in sorted(set(mine["device"]) | set(theirs["device"]))
            if theirs["device"].get(k) != mine["device"].get(k)
        ]
        out += [f"{k}: {theirs[k]} -> {mine[k]}" for k in ("engine", "provider", "model_id") if mine[k] != theirs[k]]
        if self.host != other.host:
            out.append(f"host: {other.host_name} -> {self.host_name}")
        return out


def provenance(
    model_sha256: str, versions: Mapping[str, str], config: Mapping[str, str], commit: str, host: str = ""
) -> dict[str, str]:
    """What a run is made of and may change from night to night, as flat named values.

    >>> provenance("ab" * 32, {"onnxruntime-genai": "0.18.0"}, {"perf_profile": "burst"}, "5d6ffb7339e5")["commit"]
    '5d6ffb7339e5'
    """
    out = {HOST: host} if host else {}
    out[MODEL_HASH] = model_sha256
    out.update({f"version {k}": v for k, v in versions.items()})
    out.update({f"config {k}": v for k, v in config.items()})
    out[DEFINITION] = LATENCY_DEFINITION
    out[COMMIT] = commit
    return out


def _rank(key: str) -> tuple[int, str]:
    order = 0 if key == MODEL_HASH else 1 if key.startswith("version ") else 2 if key.startswith("config ") else 4
    return (-1 if key == HOST else 3 if key == COMMIT else order, key)


def _shown(key: str, value: str) -> str:
    return value[:8] if key in (MODEL_HASH, COMMIT) or key.endswith("sha256") else value


def changes(before: Mapping[str, str], now: Mapping[str, str], *, with_commit: bool = True) -> list[str]:
    """What differs from ``before`` to ``now``, model first, commit last.

    >>> changes({"model sha256": "1ae3c977aa", "commit": "a"}, {"model sha256": "3363cb49bb", "commit": "a"})
    ['model sha256 1ae3c977 -> 3363cb49']
    """
    out = []
    for key in sorted(set(before) | set(now), key=_rank):
        if key == COMMIT and not with_commit:
            continue
        a, b = before.get(key, "(none)"), now.get(key, "(none)")
        if key == HOST and a != b:
            out.append(f"host {a if a != '(none)' else '(not recorded)'} -> {b} (another machine)")
        elif a != b:
            name = key.removeprefix("version ").removeprefix("config ")
            out.append(f"{name} {_shown(key, a)} -> {_shown(key, b)}")
    return out


def strict_match(before: Mapping[str, str], now: Mapping[str, str]) -> bool:
    """The same model, runtimes and configs (the commit and the host may differ): what v1/v2 keys required."""
    return not [c for c in changes(before, now, with_commit=False) if not c.startswith(f"{HOST} ")]


def drift(first: Sequence[float], second: Sequence[float]) -> float:
    """ln(m1 / m2) of two passes over the same code, m the upper median: signed, about a fraction.

    >>> round(drift([10.0, 10.2], [10.0, 10.0]), 4)
    0.0198
    """
    a, b = upper_median(first), upper_median(second)
    return math.log(a / b) if a > 0 and b > 0 else 0.0


def pass_drift(first: Sequence[Sequence[float]], second: Sequence[Sequence[float]]) -> float:
    """ln(m1 / m2) between two passes, each pass's median of its processes' medians: signed, about
    a fraction (the noise floor of a recording, or of runs accepted together).

    >>> round(pass_drift([[10.0, 10.2], [10.4]], [[10.0], [10.0, 10.1]]), 4)
    0.0198
    """
    a, b = median_of_medians(first), median_of_medians(second)
    return math.log(a / b) if a > 0 and b > 0 else 0.0


@dataclass(frozen=True)
class CaseBaseline:
    """Accepted samples of one case, and what they were measured with."""

    case_id: str
    prompt: str
    prompt_tokens: int
    new_tokens: int
    sampling: str
    # per metric, the samples of each process that recorded them (one group per process)
    samples: Mapping[str, tuple[tuple[float, ...], ...]]
    recorded_at: str
    commit: str = ""
    # Same-code drift per metric: ln(m1 / m2), signed, between the medians of the two passes
    # over the grid the recording accepted (empty in v1 files).
    noise: Mapping[str, float] = field(default_factory=dict)
    provenance: Mapping[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "prompt_tokens": self.prompt_tokens,
            "new_tokens": self.new_tokens,
            "sampling": self.sampling,
            "samples": {k: [[round(v, 4) for v in g] for g in gs] for k, gs in sorted(self.samples.items())},
            # for reviewers reading a diff; derived from the samples and ignored on load
            "summary": {k: Summary.of(flat(gs)).brief(digits=4) for k, gs in sorted(self.samples.items()) if flat(gs)},
            "noise": {k: round(v, 5) for k, v in sorted(self.noise.items())},
            "provenance": dict(sorted(self.provenance.items())),
            "recorded_at": self.recorded_at,
            "commit": self.commit,
        }


@dataclass(frozen=True)
class BaselineFile:
    identity: Identity
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
        """Cases measured now replace their old entries; the others are kept, each with its provenance."""
        return BaselineFile(identity=self.identity, cases={**self.cases, **new_cases}, schema=SCHEMA)

    def matching(self, now: Mapping[str, str]) -> BaselineFile:
        """Only the cases recorded with this provenance (strict matching)."""
        kept = {cid: c for cid, c in self.cases.items() if strict_match(c.provenance, now)}
        return replace(self, cases=kept)

    def latest_recorded(self) -> str:
        return max((c.recorded_at for c in self.cases.values()), default="")

    def to_json(self) -> str:
        doc = {
            "schema": SCHEMA,
            "identity": self.identity.as_dict(),
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


def flat(groups: Sequence[Sequence[float]]) -> tuple[float, ...]:
    """Every sample of every group."""
    return tuple(x for g in groups for x in g)


def _groups(values: Any, schema: str) -> tuple[tuple[float, ...], ...]:
    """A metric's samples: v4 holds a list per process; older files one list (one process)."""
    if schema in LEGACY_SCHEMAS:
        return (tuple(float(x) for x in values),)
    if not isinstance(values, list) or not all(isinstance(g, list) for g in values):
        raise ValueError("samples must be a list per process")
    return tuple(tuple(float(x) for x in g) for g in values if g)


def _case_from(path: Path, cid: str, data: Any, legacy: Mapping[str, str] | None, schema: str) -> CaseBaseline:
    try:
        samples = {str(k): _groups(v, schema) for k, v in data["samples"].items()}
        if not flat(samples.get("latency_ms") or ()):
            raise ValueError("no latency_ms samples")
        bad = sorted({m for m, gs in samples.items() for x in flat(gs) if not (x >= 0 and x < float("inf"))})
        if bad:
            raise ValueError(f"samples of {', '.join(bad)} must be finite and >= 0")
        commit = str(data.get("commit", ""))
        recorded = data.get("provenance")
        if legacy is not None:  # v1/v2: the file's key is every case's provenance
            recorded = {**legacy, COMMIT: commit}
        return CaseBaseline(
            case_id=cid,
            prompt=str(data["prompt"]),
            prompt_tokens=int(data["prompt_tokens"]),
            new_tokens=int(data["new_tokens"]),
            sampling=str(data["sampling"]),
            samples=samples,
            recorded_at=str(data.get("recorded_at", "")),
            commit=commit,
            noise={str(k): float(v) for k, v in data.get("noise", {}).items()},
            provenance={str(k): str(v) for k, v in (recorded or {}).items()},
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BaselineError(f"{path}: case {cid!r} is malformed ({exc}); fix or delete the file") from exc


def _identity_of(doc: dict[str, Any]) -> tuple[Identity, dict[str, str] | None]:
    """The file's identity, and for a v1/v2 file the provenance its key held."""
    if doc["schema"] in KEYED_SCHEMAS:
        key = doc["key"]
        versions = {str(k): str(v) for k, v in key["versions"].items()}
        legacy = provenance(str(key["model_sha256"]), versions, {}, "")
        del legacy[DEFINITION]  # recorded before latency was text to text
        return Identity.from_dict(key), legacy
    return Identity.from_dict(doc["identity"]), None


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
            f"{', '.join(SUPPORTED_SCHEMAS)}; move the file away, then re-record with --update-baselines"
        )
    try:
        identity, legacy = _identity_of(doc)
        raw_cases = doc["cases"]
        if not isinstance(raw_cases, dict):
            raise TypeError("'cases' is not an object")
    except (KeyError, TypeError, AttributeError) as exc:
        raise BaselineError(f"{path}: baseline identity or cases are malformed ({exc!r})") from exc
    cases = {cid: _case_from(path, cid, c, legacy, str(doc["schema"])) for cid, c in raw_cases.items()}
    return BaselineFile(identity=identity, cases=cases, schema=str(doc["schema"]))


@dataclass(frozen=True)
class Lookup:
    """The baseline for an identity, or why there is none.

    ``path`` is where this identity's file is (or will be) written; ``source`` the file the
    cases were read from, which is another path for a v1/v2 file or another host's file.
    ``other_host``: the file was recorded on another host (or schema v3 and older, which name
    none): its comparisons are another machine's, not a change's.
    """

    path: Path
    file: BaselineFile | None
    near_misses: tuple[str, ...] = ()
    source: Path | None = None
    other_host: bool = False


def _candidates(root: Path, identity: Identity) -> list[tuple[Path, BaselineFile]]:
    """Every readable file under ``root`` for ``identity``: its own file first, then v1/v2 files of
    this host, then other hosts' files of the same device, engine and model."""
    own = root / identity.filename()
    found = []
    for path in sorted(root.rglob("*.json")) if root.is_dir() else []:
        try:
            theirs = load(path)
        except BaselineError:
            if path == own:
                raise
            continue
        if theirs.identity == identity or identity.same_but_host(theirs.identity):
            found.append((path, theirs))
        elif path == own:
            raise BaselineError(
                f"{path}: holds a baseline for another identity ({'; '.join(identity.differences(theirs.identity))}); "
                "it was renamed or edited by hand; delete it or move it back"
            )
    # its own file first; then this host's v1/v2 files; then other hosts'; the most cases, the most recent of equals
    found.sort(key=lambda pf: pf[1].latest_recorded(), reverse=True)
    found.sort(key=lambda pf: (pf[0] != own, pf[1].identity != identity, -len(pf[1].cases)))
    return found


def find(root: Path, identity: Identity, now: Mapping[str, str], match: str = "identity") -> Lookup:
    """The accepted baseline for ``identity`` under ``root``, or failing that another host's of the
    same device, engine and model; with ``match="strict"`` only the cases recorded with the same
    provenance (``now``). When none, say what the others differ in."""
    if match not in MATCHES:
        raise ValueError(f"match must be one of {', '.join(MATCHES)}, got {match!r}")
    path = root / identity.filename()
    candidates = _candidates(root, identity)
    if match == "strict":
        strict = [(p, f.matching(now)) for p, f in candidates]
        misses = [
            f"{p.relative_to(root)} differs in " + "; ".join(_provenance_gap(f, now))
            for p, f in candidates
            if not f.matching(now).cases
        ]
        candidates = [(p, f) for p, f in strict if f.cases]
        if not candidates:
            return Lookup(path=path, file=None, near_misses=tuple(misses))
    if candidates:
        source, file = candidates[0]
        return Lookup(path=path, file=file, source=source, other_host=file.identity.host != identity.host)
    return Lookup(path=path, file=None, near_misses=tuple(_near_misses(root, identity)))


def _provenance_gap(file: BaselineFile, now: Mapping[str, str]) -> list[str]:
    first = next(iter(file.cases.values()), None)
    return changes(first.provenance, now, with_commit=False) if first is not None else ["no cases"]


def _near_misses(root: Path, identity: Identity) -> list[str]:
    misses = []
    for other in sorted(root.rglob("*.json")) if root.is_dir() else []:
        try:
            theirs = load(other)
        except BaselineError as exc:
            misses.append(f"{other.relative_to(root)}: unreadable ({exc})")
            continue
        if theirs.identity.engine == identity.engine and theirs.identity.model_id == identity.model_id:
            misses.append(f"{other.relative_to(root)} differs in " + "; ".join(identity.differences(theirs.identity)))
    return misses


@dataclass(frozen=True)
class Updated:
    """What ``update`` did: how many accepted cases it kept beside the new ones, and where
    it put an unreadable file it replaced."""

    kept: int
    set_aside: Path | None = None


def update(
    path: Path,
    identity: Identity,
    new_cases: Mapping[str, CaseBaseline],
    legacy_source: Path | None = None,
    timeout_s: float = 120.0,
) -> Updated:
    """Merge ``new_cases`` into the file at ``path`` as one locked read-merge-write.

    Two runs recording into one folder at once both land: each reads the file as the other
    left it (without the lock, the second writer's stale copy dropped the first one's cases).
    Cases of ``legacy_source`` (this identity's v1/v2 file) carry over; never another host's.
    An unreadable file at ``path`` (corrupt, or a schema this npuperf does not read) is never
    lost: it is renamed beside it (``<name>.unreadable-<UTC time>``) and replaced.
    """
    lock = path.with_name(f".{path.name}.lock")
    try:
        with atomic.locked(lock, timeout_s):
            set_aside = None
            if path.exists():
                try:
                    current = load(path)
                except BaselineError:
                    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
                    set_aside = path.with_name(f"{path.name}.unreadable-{stamp}")
                    os.replace(path, set_aside)
                    current = BaselineFile(identity=identity)
            elif legacy_source is not None:
                current = BaselineFile(identity=identity, cases=load(legacy_source).cases)
            else:
                current = BaselineFile(identity=identity)
            save(path, current.merged(dict(new_cases)))
    except atomic.LockTimeout as exc:
        raise BaselineError(f"{path}: {exc}: another run is recording baselines here") from None
    return Updated(kept=len(current.cases.keys() - new_cases.keys()), set_aside=set_aside)


def save(path: Path, baseline: BaselineFile) -> None:
    """Write atomically. An existing file that is corrupt or holds another identity is never replaced."""
    if path.exists():
        existing = load(path)
        if existing.identity != baseline.identity:
            raise BaselineError(
                f"{path}: refusing to overwrite a baseline for another identity "
                f"({'; '.join(baseline.identity.differences(existing.identity))})"
            )
    atomic.write_text(path, baseline.to_json())
