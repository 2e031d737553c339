"""Pure decisions: latency budget, circuit breaker, load budget, regression vs baseline.

Each function takes numbers and returns a frozen ``Check`` whose message gives the
measured value, the limit and the case, so a failing test says what to act on.
No pytest, no printing, no files.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from npuperf.stats import Summary


class Outcome(enum.Enum):
    OK = "ok"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"
    NO_BASELINE = "no baseline"


@dataclass(frozen=True)
class Check:
    """The result of one check on one case."""

    name: str
    outcome: Outcome
    value: float
    limit: float
    message: str

    @property
    def failed(self) -> bool:
        return self.outcome is Outcome.FAILED


def latency_budget(case: str, median_ms: float, budget_ms: float) -> Check:
    """Median end-to-end latency must not exceed the budget (the team's target: 500 ms)."""
    if budget_ms <= 0:
        raise ValueError(f"latency budget must be > 0 ms, got {budget_ms}")
    ok = median_ms <= budget_ms
    verb = "within" if ok else "over"
    return Check(
        name="latency budget",
        outcome=Outcome.OK if ok else Outcome.FAILED,
        value=median_ms,
        limit=budget_ms,
        message=f"{case}: median latency {median_ms:.1f} ms {verb} the {budget_ms:g} ms budget",
    )


def circuit_breaker(case: str, worst_ms: float, breaker_ms: float) -> Check:
    """No single request may take longer than the breaker threshold (the team's: 2000 ms)."""
    if breaker_ms <= 0:
        raise ValueError(f"circuit breaker threshold must be > 0 ms, got {breaker_ms}")
    ok = worst_ms <= breaker_ms
    return Check(
        name="circuit breaker",
        outcome=Outcome.OK if ok else Outcome.FAILED,
        value=worst_ms,
        limit=breaker_ms,
        message=(
            f"{case}: slowest request {worst_ms:.1f} ms "
            + ("stays under" if ok else "would trip")
            + f" the {breaker_ms:g} ms circuit breaker"
        ),
    )


def load_budget(load_s: float, budget_s: float) -> Check:
    """Model load must finish within the budget (the team's: 20 s)."""
    if budget_s <= 0:
        raise ValueError(f"load budget must be > 0 s, got {budget_s}")
    ok = load_s <= budget_s
    return Check(
        name="load budget",
        outcome=Outcome.OK if ok else Outcome.FAILED,
        value=load_s,
        limit=budget_s,
        message=f"model load took {load_s:.2f} s, {'within' if ok else 'over'} the {budget_s:g} s budget",
    )


@dataclass(frozen=True)
class Regression(Check):
    """A comparison of one metric against its baseline."""

    metric: str = "latency"
    baseline_median: float = 0.0
    current_median: float = 0.0
    ratio: float = 1.0
    min_ratio: float = 1.0
    tolerance: float = 0.0


def regression(
    case: str,
    metric: str,
    current: Sequence[float],
    baseline: Sequence[float] | None,
    tolerance: float,
    min_delta_ms: float = 0.0,
) -> Regression:
    """Is ``current`` slower than ``baseline`` by more than ``tolerance`` (0.10 = 10%)?

    Interim rule (until the statistical verdict lands): REGRESSED when the ratio of
    medians and the ratio of minimums both exceed 1 + tolerance, and the medians differ
    by more than ``min_delta_ms``. Machine noise only ever adds time, so it inflates
    medians but rarely the fastest run; a real slowdown moves both. A median over the
    line with the minimum under it is INCONCLUSIVE (reported, not failed). The absolute
    floor keeps sub-millisecond jitter of very fast cases from reading as a regression.
    """
    if not 0 <= tolerance < 10:
        raise ValueError(f"tolerance must be a fraction within 0..10 (0.10 = 10%), got {tolerance}")
    if min_delta_ms < 0:
        raise ValueError(f"min_delta_ms must be >= 0, got {min_delta_ms}")
    cur = Summary.of(current)
    if not baseline:
        return Regression(
            name=f"{metric} vs baseline",
            outcome=Outcome.NO_BASELINE,
            value=cur.median,
            limit=0.0,
            message=f"{case}: no baseline for {metric}; median {cur.median:.2f} ms not compared",
            metric=metric,
            current_median=cur.median,
            tolerance=tolerance,
        )
    base = Summary.of(baseline)
    if base.median == 0 or base.min == 0:
        raise ValueError(f"{case}: baseline {metric} has a zero median or minimum; it cannot be compared")
    ratio = cur.median / base.median
    min_ratio = cur.min / base.min
    line = 1 + tolerance
    delta = cur.median - base.median
    if ratio > line and delta <= min_delta_ms:
        outcome, word = Outcome.OK, f"OK (+{delta:.2f} ms is within the {min_delta_ms:g} ms floor)"
    elif ratio > line and min_ratio > line:
        outcome, word = Outcome.FAILED, "REGRESSED"
    elif ratio > line:
        outcome, word = Outcome.INCONCLUSIVE, "INCONCLUSIVE (fastest run within tolerance)"
    else:
        outcome, word = Outcome.OK, "OK"
    message = (
        f"{case}: median {metric} {cur.median:.2f} ms vs baseline {base.median:.2f} ms "
        f"({(ratio - 1) * 100:+.1f}%, fastest run {(min_ratio - 1) * 100:+.1f}%), "
        f"threshold {tolerance * 100:g}%: {word}"
    )
    return Regression(
        name=f"{metric} vs baseline",
        outcome=outcome,
        value=cur.median,
        limit=base.median * line,
        message=message,
        metric=metric,
        baseline_median=base.median,
        current_median=cur.median,
        ratio=ratio,
        min_ratio=min_ratio,
        tolerance=tolerance,
    )


@dataclass(frozen=True)
class CaseVerdict:
    """Every check of one case, and the case's overall outcome."""

    checks: tuple[Check, ...]

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.failed)

    @property
    def regression(self) -> Regression | None:
        return next((c for c in self.checks if isinstance(c, Regression)), None)

    @property
    def outcome(self) -> Outcome:
        """FAILED if any check failed, else INCONCLUSIVE, else NO_BASELINE, else OK."""
        for outcome in (Outcome.FAILED, Outcome.INCONCLUSIVE, Outcome.NO_BASELINE):
            if any(c.outcome is outcome for c in self.checks):
                return outcome
        return Outcome.OK


def evaluate_case(
    case: str,
    latency_ms: Sequence[float],
    *,
    budget_ms: float,
    breaker_ms: float,
    baseline_latency_ms: Sequence[float] | None,
    tolerance: float,
    min_delta_ms: float = 0.0,
    require_baseline: bool = False,
    enforce_regression: bool = True,
) -> CaseVerdict:
    """Budget, breaker and regression checks of one case's latency samples.

    ``require_baseline`` turns a missing baseline into a failure (nightly runs);
    ``enforce_regression=False`` reports a regression without failing on it (used
    while accepting new baselines).
    """
    summary = Summary.of(latency_ms)
    budget = latency_budget(case, summary.median, budget_ms)
    breaker = circuit_breaker(case, summary.max, breaker_ms)
    reg = regression(case, "latency", latency_ms, baseline_latency_ms, tolerance, min_delta_ms)
    if reg.outcome is Outcome.NO_BASELINE and require_baseline:
        reg = _replace_outcome(reg, Outcome.FAILED, reg.message + " and a baseline is required (--require-baseline)")
    elif reg.outcome is Outcome.FAILED and not enforce_regression:
        reg = _replace_outcome(reg, Outcome.INCONCLUSIVE, reg.message + " (not enforced: accepting new baselines)")
    return CaseVerdict(checks=(budget, breaker, reg))


def confirmed(first: CaseVerdict, reruns: Sequence[CaseVerdict]) -> CaseVerdict:
    """The verdict of a case re-measured after it looked regressed.

    The regression stands only if every re-run shows it too; the re-runs stop at the
    first that does not. A burst of load on a shared machine lasts seconds, so it
    rarely survives re-runs spaced apart. The final verdict is the last re-run's, its
    message saying what the first run showed.
    """
    before = first.regression
    if not reruns or before is None or before.outcome is not Outcome.FAILED:
        return reruns[-1] if reruns else first
    last = reruns[-1]
    after = last.regression
    if after is None:
        return last
    first_pct = f"{(before.ratio - 1) * 100:+.1f}%"
    n = len(reruns)
    if after.outcome is Outcome.FAILED:
        note = f" (confirmed on {n} re-run{'s' if n > 1 else ''}; first run {first_pct})"
    else:
        note = f"; first run looked regressed ({first_pct}), not confirmed on re-run {n}"
    from dataclasses import replace

    checks = tuple(replace(c, message=c.message + note) if c is after else c for c in last.checks)
    return CaseVerdict(checks=checks)


def _replace_outcome(reg: Regression, outcome: Outcome, message: str) -> Regression:
    from dataclasses import replace

    return replace(reg, outcome=outcome, message=message)
