"""A run named on the command line: a results JSON file, or a run id of the history."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from npuperf.judge import history

RESULTS_SCHEMA = "npuperf.results/1"


class CliError(Exception):
    """A bad argument or file; the message says which and what is accepted."""


def load_run(ref: str, history_path: Path) -> history.Run:
    """``ref`` is a results JSON file (e.g. reports/perf-results.json) or a history run id (e.g. 12)."""
    path = Path(ref)
    if path.is_file():
        return from_results(path)
    if ref.isdigit():
        try:
            return history.History(history_path).run(int(ref))
        except history.HistoryError as exc:
            raise CliError(str(exc)) from exc
    raise CliError(
        f"{ref!r} is neither a results JSON file nor a run id of {history_path}; "
        "expected e.g. reports/perf-results.json or 12 (see: python -m npuperf history)"
    )


def read_results(path: Path) -> dict[str, Any]:
    """A results JSON file's document, checked to be one (CliError naming the file otherwise)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CliError(f"{path}: not a readable results JSON file ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("schema") != RESULTS_SCHEMA:
        found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise CliError(f"{path}: not an npuperf results file (schema {found!r}; expected {RESULTS_SCHEMA!r})")
    return doc


def from_results(path: Path) -> history.Run:
    """The run a results JSON file describes (written by pytest perf_tests --results-json)."""
    doc = read_results(path)
    session = doc.get("session") or {}
    if "identity" not in session:
        raise CliError(f"{path}: has no identity and provenance (written by an older npuperf); run the suite again")
    try:
        cases = {c["id"]: _case(c) for c in doc["cases"]}
        return history.Run(
            created=str(doc["created"]),
            identity=session["identity"],
            identity_digest=_digest(session["identity"]),
            provenance={str(k): str(v) for k, v in session["provenance"].items()},
            commit=str(session["provenance"].get("commit", "")),
            settings=doc.get("settings") or {},
            outcome=str(session.get("outcome", "unknown")),
            cases=cases,
            label=str(path),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CliError(f"{path}: a case or the session is malformed ({exc!r})") from exc


def _case(c: dict[str, Any]) -> history.CaseRun:
    return history.CaseRun(
        case_id=str(c["id"]),
        prompt=str(c["prompt"]),
        prompt_tokens=int(c["prompt_tokens"]),
        new_tokens=int(c["new_tokens"]),
        sampling=str(c["sampling"]),
        budget_ms=float(c["budget_ms"]),
        outcome=str(c["outcome"]),
        samples={m: tuple(float(v) for v in vs) for m, vs in c["samples"].items()},
        groups={m: tuple(tuple(float(v) for v in g) for g in gs) for m, gs in (c.get("groups") or {}).items()},
    )


def _digest(identity: dict[str, Any]) -> str:
    from npuperf.judge.baselines import Identity

    return Identity.from_dict(identity).digest
