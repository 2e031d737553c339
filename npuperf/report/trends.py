"""The report's trend: each case's median latency over the last runs of the history, with the
accepted baselines and the runs on which the provenance changed."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from npuperf.judge import baselines, history
from npuperf.report.figures import Series

LAST_RUNS = 30


@dataclass(frozen=True)
class Trends:
    """What the trend section shows; ``note`` says why a part is missing."""

    series: tuple[Series, ...]
    marks: Mapping[int, str]  # run id -> what changed on it since the run before
    accepted: Mapping[int, str]  # run id -> "baseline accepted after run N (<when>)"
    runs: int
    first_run: int | None
    last_run: int | None
    note: str = ""

    @classmethod
    def none(cls, why: str) -> Trends:
        """No trend, and why (said on the page where the chart would be)."""
        return cls((), {}, {}, 0, None, None, note=why)


def _accepted(runs: Sequence[history.Run], recorded: Sequence[str]) -> dict[int, str]:
    """Each recording time placed after the last run created before it (history writes a run,
    then --update-baselines writes its baseline; ``npuperf accept`` can come hours later)."""
    out = {}
    for stamp in sorted(set(recorded)):
        before = [r for r in runs if r.created <= stamp and r.id is not None]
        if before:
            run_id = before[-1].id or 0
            out[run_id] = f"baseline accepted after run {run_id} ({stamp[:16].replace('T', ' ')} UTC)"
    return out


def from_history(path: Path, doc: Mapping[str, Any], last: int = LAST_RUNS) -> Trends:
    """The trend of the run in ``doc`` over the last ``last`` runs of its identity in ``path``."""
    session = doc.get("session", {})
    identity = session.get("identity")
    if identity is None:
        return Trends.none("no trend: this run did not load a model")
    if not path.is_file():
        return Trends.none(f"no trend: no history at {path} (--history)")
    digest = baselines.Identity.from_dict(identity).digest
    runs = history.History(path).runs(digest, last=last)
    cases = {c["id"]: c for c in doc.get("cases", [])}
    series = []
    for cid, c in cases.items():
        points = []
        for run in runs:
            value = run.cases[cid].median("latency_ms") if cid in run.cases else None
            if value is not None and run.id is not None:
                points.append((run.id, value))
        base = ((c.get("baseline") or {}).get("metrics") or {}).get("latency_ms")
        series.append(
            Series(cid, c["prompt"], c["prompt_tokens"], c["new_tokens"], tuple(points), base and base["median"])
        )
    marks = {}
    for before, run in itertools.pairwise(runs):
        changed = baselines.changes(dict(before.provenance), dict(run.provenance), with_commit=False)
        if changed and run.id is not None:
            marks[run.id] = "; ".join(changed)
    recorded = [b["recorded_at"] for c in cases.values() if (b := c.get("baseline")) and b.get("recorded_at")]
    note = "" if len(runs) >= 2 else f"the trend appears from the second run ({len(runs)} run so far in {path})"
    return Trends(
        series=tuple(series),
        marks=marks,
        accepted=_accepted(runs, recorded),
        runs=len(runs),
        first_run=runs[0].id if runs else None,
        last_run=runs[-1].id if runs else None,
        note=note,
    )
