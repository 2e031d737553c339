"""``npuperf compare A B``: is run B slower than run A? The suite's verdict, outside pytest.

Per case and metric the same statistics as the suite (ratio of the medians of process medians,
hierarchical bootstrap interval, materiality threshold, Holm over the grid; no confirm-on-fail:
the runs are already made),
and the whole-grid test. Exit status 1 when anything regressed, so a script can bisect
builds, SDK versions or model exports.
"""

from __future__ import annotations

from dataclasses import dataclass

from npuperf.judge import baselines, history
from npuperf.judge.stats import OnlineHolm
from npuperf.judge.verdict import Outcome, Regression, evaluate_case, grid_regression
from npuperf.measure import METRICS


@dataclass(frozen=True)
class Comparison:
    """Every case of both runs judged: B against A as its baseline."""

    a: history.Run
    b: history.Run
    cases: tuple[tuple[str, tuple[Regression, ...]], ...]
    grid: Regression | None
    only_a: tuple[str, ...]
    only_b: tuple[str, ...]

    @property
    def regressed(self) -> bool:
        failed = any(r.failed for _, regs in self.cases for r in regs)
        return failed or (self.grid is not None and self.grid.failed)

    @property
    def changed(self) -> list[str]:
        return baselines.changes(dict(self.a.provenance), dict(self.b.provenance))


def compare_runs(
    a: history.Run,
    b: history.Run,
    *,
    tolerance: float = 0.10,
    grid_tolerance: float = 0.03,
    alpha: float = 0.05,
    min_regression_ms: float = 1.0,
) -> Comparison:
    """B's cases judged against A's samples (the cases both have, in B's order)."""
    common = [cid for cid in b.cases if cid in a.cases]
    family = OnlineHolm(max(1, len(common) * len(METRICS)), alpha)
    judged = []
    for cid in common:
        old, new = a.cases[cid], b.cases[cid]
        verdict = evaluate_case(
            cid,
            {m: new.groups_of(m) for m in METRICS},
            budget_ms=float("inf"),
            breaker_ms=float("inf"),
            baseline={m: old.groups_of(m) for m in METRICS},
            tolerance=tolerance,
            min_delta_ms=min_regression_ms,
            family=family,
            alpha=alpha,
            new_tokens=new.new_tokens,
        )
        judged.append((cid, verdict.regressions))
    pairs = [
        (dict(enumerate(b.cases[cid].groups_of("latency_ms"))), dict(enumerate(a.cases[cid].groups_of("latency_ms"))))
        for cid in common
    ]
    grid = grid_regression(pairs, tolerance=grid_tolerance, noise_floor=None, alpha=alpha) if pairs else None
    only_a = tuple(cid for cid in a.cases if cid not in b.cases)
    only_b = tuple(cid for cid in b.cases if cid not in a.cases)
    return Comparison(a, b, tuple(judged), grid, only_a, only_b)


def render(comparison: Comparison) -> list[str]:
    """The comparison as lines: a table of every case (regressions first), then the grid and the details."""
    c = comparison
    lines = [f"A: {_name(c.a)}", f"B: {_name(c.b)}"]
    if c.a.identity_digest != c.b.identity_digest:
        lines.append("warning: A and B are of different identities (device, engine, provider or model name)")
    lines.append("changed from A to B: " + ("; ".join(c.changed) or "nothing recorded"))
    rows = sorted(c.cases, key=lambda item: not any(r.failed for r in item[1]))
    header = f"{'case':<18} {'A median ms':>12} {'B median ms':>12} {'change':>8}  {'95% CI':<16} verdict"
    lines += ["", header]
    for cid, regs in rows:
        lat = next((r for r in regs if r.metric == "latency_ms"), None)
        if lat is None or lat.outcome is Outcome.NO_BASELINE:
            continue
        worst = next((r for r in regs if r.failed), None) or next(
            (r for r in regs if r.outcome is Outcome.INCONCLUSIVE), lat
        )
        verdict = "REGRESSED" if worst.failed else worst.outcome.value
        if worst.metric != "latency_ms":
            verdict += f" ({worst.name})"
        ci = f"{(lat.ci_low - 1) * 100:+.1f}..{(lat.ci_high - 1) * 100:+.1f}%"
        lines.append(
            f"{cid:<18} {lat.baseline_median:>12.2f} {lat.current_median:>12.2f} "
            f"{(lat.ratio - 1) * 100:>+7.1f}%  {ci:<16} {verdict}"
        )
    if c.grid is not None:
        lines += ["", f"{c.grid.outcome.value.upper()}: {c.grid.message}"]
    failed = [r.message for _, regs in rows for r in regs if r.failed]
    lines += [f"REGRESSED: {m}" for m in failed]
    if c.only_a or c.only_b:
        lines.append(f"not compared: only in A {list(c.only_a)}, only in B {list(c.only_b)}")
    lines.append(f"verdict: {'REGRESSED' if c.regressed else 'no regression'}")
    return lines


def _name(run: history.Run) -> str:
    where = f"run {run.id} of the history" if run.id is not None else run.label
    return f"{where} ({run.created}, {run.outcome}, commit {run.commit[:12] or 'unknown'})"
