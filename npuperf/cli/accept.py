"""``npuperf accept RUN [RUN ...]``: make past runs the accepted baseline without measuring again.

Writes the file ``--update-baselines`` writes (schema v4, the run's identity and provenance,
merged into the existing file, other cases kept). The noise floor comes from two runs:
with two or more, the drift between the first two runs' medians (like the suite's two
passes, but nights apart: the better estimate); with one, the drift between the first and
the second half of its samples (seconds apart: a weaker one, said when written).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from npuperf.cli.runs import CliError
from npuperf.judge import baselines, history
from npuperf.measure import METRICS


def accepted_cases(runs: Sequence[history.Run]) -> dict[str, baselines.CaseBaseline]:
    """One baseline entry per case of the runs: their samples pooled, their drift as the noise."""
    first = runs[0]
    for run in runs[1:]:
        if run.identity_digest != first.identity_digest:
            raise CliError(f"{_name(run)} is of another identity than {_name(first)}; accept runs of one identity")
        changed = baselines.changes(dict(first.provenance), dict(run.provenance), with_commit=False)
        if changed:
            raise CliError(
                f"{_name(run)} differs from {_name(first)} in {'; '.join(changed)}; accept runs of one build"
            )
    out = {}
    for cid, case in first.cases.items():
        measured = [run.cases[cid] for run in runs if cid in run.cases]
        samples = {m: tuple(g for c in measured for g in c.groups_of(m)) for m in METRICS}
        out[cid] = baselines.CaseBaseline(
            case_id=cid,
            prompt=case.prompt,
            prompt_tokens=case.prompt_tokens,
            new_tokens=case.new_tokens,
            sampling=case.sampling,
            samples={m: v for m, v in samples.items() if v},
            recorded_at=first.created,
            commit=first.commit,
            noise={m: _noise(measured, m) for m in METRICS if case.samples.get(m)},
            provenance=dict(first.provenance),
        )
    return out


def _noise(measured: Sequence[history.CaseRun], metric: str) -> float:
    """The drift between the first two runs; with one, between its first and second half of processes
    (or of samples, when one process measured it)."""
    if len(measured) >= 2 and measured[1].groups_of(metric):
        return baselines.pass_drift(measured[0].groups_of(metric), measured[1].groups_of(metric))
    groups = measured[0].groups_of(metric)
    if len(groups) >= 2:
        half = len(groups) // 2
        return baselines.pass_drift(groups[:half], groups[half:])
    values = groups[0]
    half = len(values) // 2
    return baselines.pass_drift([values[:half]], [values[half:]]) if half else 0.0


def accept(runs: Sequence[history.Run], root: Path) -> list[str]:
    """Write the runs as the accepted baseline under ``root``; returns what was done, as lines."""
    if not runs:
        raise CliError("accept: name at least one run")
    for run in runs:
        if run.outcome == "interrupted":
            raise CliError(f"{_name(run)} was interrupted: its grid is partial; accept a complete run")
        if not run.cases:
            raise CliError(f"{_name(run)} has no measured cases")
    identity = baselines.Identity.from_dict(runs[0].identity)
    new_cases = accepted_cases(runs)
    path = root / identity.filename()
    try:
        current = baselines.load(path) if path.exists() else baselines.BaselineFile(identity=identity)
        baselines.save(path, current.merged(new_cases))
    except (baselines.BaselineError, OSError) as exc:
        raise CliError(f"baselines NOT written: {exc}") from exc
    kept = len(current.cases.keys() - new_cases.keys())
    lines = [
        f"baselines written: {len(new_cases)} case(s) from {', '.join(_name(r) for r in runs)} to {path}"
        + (f" ({kept} other case(s) kept)" if kept else "")
    ]
    if len(runs) == 1:
        lines.append(
            "noise floor from the two halves of one run's samples (seconds apart); accept two runs "
            "(e.g. two nights of the same build) for a noise floor that covers night-to-night drift"
        )
    return lines


def _name(run: history.Run) -> str:
    return f"run {run.id}" if run.id is not None else run.label
