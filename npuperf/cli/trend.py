"""``npuperf history``: the trend of one case (or of every case) over the last N runs, what
changed on which run, and where a case's latency stepped up or down (npuperf.changes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from npuperf.cli.runs import CliError
from npuperf.judge import baselines, changes, history
from npuperf.judge.stats import median


@dataclass(frozen=True)
class Trend:
    """The runs of one identity, oldest first, and the series of one metric per case."""

    runs: tuple[history.Run, ...]
    metric: str
    case_ids: tuple[str, ...]
    others: tuple[str, ...] = ()  # the history's other identities, as "digest: engine/provider model"

    def series(self, case_id: str) -> list[tuple[history.Run, float]]:
        out = []
        for run in self.runs:
            case = run.cases.get(case_id)
            value = None if case is None else case.median(self.metric)
            if value is not None and value > 0:
                out.append((run, value))
        return out

    def grid(self) -> list[tuple[history.Run, float]]:
        """Per run, the median over cases of each case's median relative to that case's median
        over all the runs: one series for the whole grid, far steadier than any one case, in
        which a change that slows every case (a runtime, a driver, a thermal setting) shows."""
        typical = {cid: median([v for _, v in s]) for cid in self.case_ids if (s := self.series(cid))}
        out = []
        for run in self.runs:
            ratios = [v / typical[cid] for cid in typical if (v := _value(run, cid, self.metric)) is not None]
            if ratios:
                out.append((run, median(ratios)))
        return out

    def marks(self) -> dict[int, list[str]]:
        """Run id -> what changed on that run since the run before it (the commit aside)."""
        out: dict[int, list[str]] = {}
        for before, run in zip(self.runs, self.runs[1:], strict=False):
            changed = baselines.changes(dict(before.provenance), dict(run.provenance), with_commit=False)
            if changed:
                out[run.id or 0] = changed
        for run in self.runs:  # a run of another kind says so (an A/B run's cases)
            if run.label and not run.label.endswith(".json"):
                out.setdefault(run.id or 0, []).insert(0, run.label)
        return out


def _value(run: history.Run, case_id: str, metric: str) -> float | None:
    case = run.cases.get(case_id)
    value = None if case is None else case.median(metric)
    return value if value is not None and value > 0 else None


def trend(store: history.History, case: str | None, metric: str, last: int, identity: str | None) -> Trend:
    runs = store.runs()
    if not runs:
        raise CliError(f"{store.path}: the history has no runs yet")
    digests = {r.identity_digest for r in runs}
    wanted = identity or runs[-1].identity_digest
    matching = [d for d in digests if d.startswith(wanted)]
    if len(matching) != 1:
        raise CliError(f"--identity {identity!r} matches {len(matching)} of the identities {sorted(digests)}")
    mine = [r for r in runs if r.identity_digest == matching[0]][-last:]
    case_ids = tuple(dict.fromkeys(cid for r in mine for cid in r.cases))
    if case is not None and case not in case_ids:
        raise CliError(f"--case {case!r} is not in these runs; cases: {', '.join(case_ids)}")
    others = tuple(line for line in identities(runs) if not line.startswith(matching[0]))
    return Trend(tuple(mine), metric, (case,) if case else case_ids, others)


def case_table(t: Trend, case_id: str) -> list[str]:
    """One row per run: median, change from the previous run, outcome, commit, what changed."""
    marks = t.marks()
    lines = [
        f"{t.metric} of {case_id}",
        f"{'run':>5}  {'date':<16}  {'commit':<12}  {'outcome':<11} {'median':>9} {'vs prev':>8}  changed",
    ]
    previous = None
    for run, value in t.series(case_id):
        delta = "" if previous is None else f"{(value / previous - 1) * 100:+.1f}%"
        lines.append(
            f"{run.id:>5}  {run.created[:16].replace('T', ' '):<16}  {run.commit[:12]:<12}  {run.outcome:<11} "
            f"{value:>9.2f} {delta:>8}  {'; '.join(marks.get(run.id or 0, []))}"
        )
        previous = value
    return lines


def grid_table(t: Trend) -> list[str]:
    """One row per case, one column per run (medians), then what changed on which run."""
    ids = [r.id or 0 for r in t.runs]
    lines = [f"median {t.metric} per case and run", f"{'case':<18}" + "".join(f"{'run ' + str(i):>10}" for i in ids)]
    for cid in t.case_ids:
        values = {run.id: v for run, v in t.series(cid)}
        lines.append(f"{cid:<18}" + "".join(f"{values[i]:>10.2f}" if i in values else f"{'-':>10}" for i in ids))
    lines += [f"run {i}: changed {'; '.join(c)}" for i, c in t.marks().items()]
    return lines


def step_lines(t: Trend, alpha: float, min_step: float) -> list[str]:
    """Every detected step, naming the run where it happened and what changed on that run."""
    marks, lines = t.marks(), []
    named = [("whole grid", t.grid())] if len(t.case_ids) > 1 else []
    for name, series in named + [(cid, t.series(cid)) for cid in t.case_ids]:
        if len(series) < 2 * changes.MIN_SIZE:
            continue
        for step in changes.change_points([v for _, v in series], alpha=alpha, min_step=min_step):
            run = series[step.index][0]
            why = marks.get(run.id or 0)
            words = step.words.split(": median")[0] if name == "whole grid" else step.words
            lines.append(
                f"{name} {t.metric} {words} at run {run.id} ({run.created[:10]}, commit {run.commit[:12]})"
                + (f"; changed on that run: {'; '.join(why)}" if why else "; no recorded change on that run")
            )
    runs = len(t.runs)
    if runs < 2 * changes.MIN_SIZE:
        lines.append(f"steps: {runs} run(s); change detection needs {2 * changes.MIN_SIZE} or more")
    elif not lines:
        lines.append(f"steps: none found over {runs} runs (E-divisive means, alpha {alpha:g}, min step {min_step:.0%})")
    return lines


def plot(t: Trend, out: Path) -> str:
    """A chart of each case's series with the provenance changes marked; PNG or SVG by suffix."""
    if out.suffix.lower() not in (".png", ".svg"):
        raise CliError(f"--plot: {str(out)!r} must end in .png or .svg")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise CliError(f"--plot needs matplotlib ({exc}); pip install matplotlib") from exc
    fig, ax = plt.subplots(figsize=(10, 5))
    for cid in t.case_ids:
        series = t.series(cid)
        ax.plot([r.id or 0 for r, _ in series], [v for _, v in series], marker="o", markersize=3, label=cid)
    for run_id, changed in t.marks().items():
        ax.axvline(run_id, color="grey", linestyle="--", linewidth=0.8)
        ax.annotate("; ".join(changed), (run_id, 1), xycoords=("data", "axes fraction"), rotation=90,
                    fontsize=7, va="top", ha="right", color="grey")  # fmt: skip
    ax.set_xlabel("run")
    ax.set_ylabel(f"median {t.metric}")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    try:
        fig.savefig(out)
    except OSError as exc:
        raise CliError(f"--plot: cannot write {out} ({exc})") from exc
    finally:
        plt.close(fig)
    return f"chart: {out}"


def render(t: Trend, alpha: float, min_step: float) -> list[str]:
    first = t.runs[0].identity
    cpu = first.get("device", {}).get("cpu", "?")
    head = [f"{first.get('engine')}/{first.get('provider')} {first.get('model_id')} on {cpu}"]
    if t.others:
        head += ["other identities in this history (choose one with --identity DIGEST):", *(f"  {o}" for o in t.others)]
    body = case_table(t, t.case_ids[0]) if len(t.case_ids) == 1 else grid_table(t)
    return [*head, *body, "", *step_lines(t, alpha, min_step)]


def identities(runs: Sequence[history.Run]) -> list[str]:
    seen: dict[str, history.Run] = {}
    for run in runs:
        seen[run.identity_digest] = run
    return [
        f"{d}: {r.identity.get('engine')}/{r.identity.get('provider')} {r.identity.get('model_id')}"
        for d, r in seen.items()
    ]
