"""Pure decisions: latency budget, circuit breaker, load budget, regression vs baseline.

Each function takes numbers and returns a frozen ``Check`` whose message gives the
measured value, the limit and the case, so a failing test says what to act on.
No pytest, no printing, no files.

The regression verdict (see docs/verdicts.md) is three-way per case and metric:
REGRESSED when the ratio of medians is above the materiality threshold with statistical
significance after Holm's correction over the whole grid, and again on a re-measurement;
INCONCLUSIVE when the estimate is above the threshold but the evidence is not enough;
OK otherwise.
"""

from __future__ import annotations

import enum
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from npuperf.judge.stats import OnlineHolm, RatioTest, Summary, median_of_ratios, ratio_of_medians


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


def passed_if(name: str, ok: bool, value: float, limit: float, message: str) -> Check:
    """A Check that is OK when ``ok`` holds and FAILED otherwise."""
    return Check(name=name, outcome=Outcome.OK if ok else Outcome.FAILED, value=value, limit=limit, message=message)


def _at_most(name: str, value: float, limit: float, what: str, describe: Callable[[bool], str]) -> Check:
    """A value that must not exceed a positive limit; ``describe(ok)`` words the message."""
    if limit <= 0:
        raise ValueError(f"{what} must be > 0, got {limit}")
    ok = value <= limit
    return passed_if(name, ok, value, limit, describe(ok))


def latency_budget(case: str, median_ms: float, budget_ms: float) -> Check:
    """Median end-to-end latency must not exceed the budget (the team's target: 500 ms)."""
    return _at_most(
        "latency budget",
        median_ms,
        budget_ms,
        "latency budget (ms)",
        lambda ok: (
            f"{case}: median latency {median_ms:.1f} ms {'within' if ok else 'over'} the {budget_ms:g} ms budget"
        ),
    )


def circuit_breaker(case: str, worst_ms: float, breaker_ms: float) -> Check:
    """No single request may take longer than the breaker threshold (the team's: 2000 ms)."""
    return _at_most(
        "circuit breaker",
        worst_ms,
        breaker_ms,
        "circuit breaker threshold (ms)",
        lambda ok: (
            f"{case}: slowest request {worst_ms:.1f} ms {'stays under' if ok else 'would trip'} "
            f"the {breaker_ms:g} ms circuit breaker"
        ),
    )


def cpu_offload(case: str, decode_cores: float | None, limit: float, simulated: bool) -> Check:
    """With the model on the NPU, decode keeps the CPU nearly idle; many busy cores mean a fallback.

    ``simulated``: the HTP simulator itself runs on the CPU, so the figure is shown, not judged.
    """
    if decode_cores is None:
        return Check("CPU during decode", Outcome.OK, 0.0, limit, f"{case}: decode CPU not measured (one token)")
    ok = decode_cores <= limit or simulated
    if simulated:
        why = "HTP simulator: it runs on the CPU, so this is not judged"
    elif ok:
        why = f"within --max-cpu-cores {limit:g}: the work stays off the CPU"
    else:
        why = (
            f"over --max-cpu-cores {limit:g}: with the model on the NPU the CPU should stay nearly idle (one host "
            "thread at most); this is what a CPU fallback looks like: ops placed on the CPU (the QNN checks name "
            "them) or a Genie backend that is not QnnHtp"
        )
    message = f"{case}: decode kept {decode_cores:.2f} CPU cores busy ({why})"
    return Check("CPU during decode", Outcome.OK if ok else Outcome.FAILED, decode_cores, limit, message)


def memory_budget(case: str, peak_mb: float, budget_mb: float) -> Check:
    """The process's peak resident memory during the case stays within --memory-budget-mb."""
    ok = peak_mb <= budget_mb
    message = f"{case}: peak resident memory {peak_mb:.0f} MB {'within' if ok else 'over'} the {budget_mb:g} MB budget"
    return Check("memory budget", Outcome.OK if ok else Outcome.FAILED, peak_mb, budget_mb, message)


def load_budget(load_s: float, budget_s: float) -> Check:
    """Model load must finish within the budget (the team's: 20 s)."""
    return _at_most(
        "load budget",
        load_s,
        budget_s,
        "load budget (s)",
        lambda ok: f"model load took {load_s:.2f} s, {'within' if ok else 'over'} the {budget_s:g} s budget",
    )


@dataclass(frozen=True)
class Regression(Check):
    """One metric of one case compared with its baseline."""

    metric: str = "latency_ms"
    baseline_median: float = 0.0
    current_median: float = 0.0
    ratio: float = 1.0
    ci_low: float = 1.0
    ci_high: float = 1.0
    confidence: float = 0.95
    p_value: float = 1.0
    threshold: float = 0.0
    tolerance: float = 0.0
    noise_floor: float | None = None
    candidate: bool = False  # above the threshold with enough samples; awaiting significance


METRIC_WORDS = {"latency_ms": "latency", "ttft_ms": "TTFT", "tpot_ms": "TPOT"}
MIN_SAMPLES = 3


def materiality(tolerance: float, noise_floor: float | None, noise_k: float) -> float:
    """The smallest slowdown worth failing for: max(tolerance, k x noise floor).

    >>> materiality(0.10, 0.08, 2.0)
    0.16
    """
    return max(tolerance, noise_k * noise_floor) if noise_floor is not None else tolerance


def _seed(case: str, metric: str) -> int:
    return zlib.crc32(f"{case}|{metric}".encode())


def compare(
    case: str,
    metric: str,
    current: Sequence[float],
    baseline: Sequence[float] | None,
    *,
    tolerance: float,
    noise_floor: float | None = None,
    noise_k: float = 2.0,
    min_delta_ms: float = 0.0,
    contribution: float = 1.0,
    confidence: float = 0.95,
) -> Regression:
    """The statistics of one comparison, before any multiple-comparison decision.

    ``min_delta_ms`` is an absolute floor on what the slowdown adds to one request, which
    is the metric's median delta times ``contribution`` (1 for latency and TTFT, the
    tokens after the first for TPOT). The outcome is OK (at or under the threshold, or
    under the floor), NO_BASELINE, or INCONCLUSIVE standing for "a candidate" (then
    ``candidate`` is set): ``decide`` settles it.
    """
    if not 0 <= tolerance < 10:
        raise ValueError(f"tolerance must be a fraction within 0..10 (0.10 = 10%), got {tolerance}")
    if min_delta_ms < 0:
        raise ValueError(f"min_delta_ms must be >= 0, got {min_delta_ms}")
    word = METRIC_WORDS.get(metric, metric)
    cur = Summary.of(current)
    if not baseline:
        return _not_compared(case, metric, cur.median, tolerance)
    base = Summary.of(baseline)
    if base.median == 0:
        raise ValueError(f"{case}: baseline {word} has a zero median; it cannot be compared")
    threshold = materiality(tolerance, noise_floor, noise_k)
    test = ratio_of_medians(current, baseline, 1 + threshold, confidence=confidence, seed=_seed(case, metric))
    why = f"{threshold * 100:.3g}% threshold"
    if noise_floor is not None and threshold > tolerance:
        why += f" ({noise_k:g} x noise floor {noise_floor * 100:.2g}%)"
    head = _head(case, word, cur.median, base.median, test, confidence)
    added_ms = (cur.median - base.median) * contribution
    outcome, tail = _judgement(test.ratio, 1 + threshold, why, added_ms, contribution, min_delta_ms, cur.n, base.n)
    return Regression(
        outcome=outcome,
        value=cur.median,
        limit=base.median * (1 + threshold),
        message=f"{head}, {tail}",
        baseline_median=base.median,
        ratio=test.ratio,
        ci_low=test.ci_low,
        ci_high=test.ci_high,
        confidence=confidence,
        p_value=test.p_value,
        threshold=threshold,
        noise_floor=noise_floor,
        candidate=outcome is Outcome.INCONCLUSIVE and min(cur.n, base.n) >= MIN_SAMPLES,
        name=f"{word} vs baseline",
        metric=metric,
        current_median=cur.median,
        tolerance=tolerance,
    )


def _not_compared(case: str, metric: str, current_median: float, tolerance: float) -> Regression:
    word = METRIC_WORDS.get(metric, metric)
    return Regression(
        name=f"{word} vs baseline",
        outcome=Outcome.NO_BASELINE,
        value=current_median,
        limit=0.0,
        message=f"{case}: no baseline for {word}; median {current_median:.2f} ms not compared",
        metric=metric,
        current_median=current_median,
        tolerance=tolerance,
    )


def _head(case: str, word: str, current: float, baseline: float, test: RatioTest, confidence: float) -> str:
    """The start of a comparison's message, e.g.
    ``32 tokens / 64-token prompt: median latency 8.51 ms vs baseline 6.98 ms (+22.0%, 95% CI +10.3..+28.0%)``"""
    return (
        f"{case}: median {word} {current:.2f} ms vs baseline {baseline:.2f} ms "
        f"({(test.ratio - 1) * 100:+.1f}%, {confidence:.0%} CI {(test.ci_low - 1) * 100:+.1f}.."
        f"{(test.ci_high - 1) * 100:+.1f}%)"
    )


def _judgement(
    ratio: float,
    line: float,
    why: str,
    added_ms: float,
    contribution: float,
    min_delta_ms: float,
    n_current: int,
    n_baseline: int,
) -> tuple[Outcome, str]:
    """OK (under the line, or under the absolute floor), or INCONCLUSIVE with the reason;
    a comparison with enough samples is then a candidate that ``decide`` settles."""
    if ratio <= line:
        return Outcome.OK, f"within the {why}: OK"
    if added_ms <= min_delta_ms:
        added = f"+{added_ms:.2f} ms" + (f" ({contribution:g} tokens)" if contribution != 1 else "")
        return Outcome.OK, f"above the {why} but {added} per request is within the {min_delta_ms:.4g} ms floor: OK"
    if n_current < MIN_SAMPLES or n_baseline < MIN_SAMPLES:
        fewest = min(n_current, n_baseline)
        return (
            Outcome.INCONCLUSIVE,
            f"above the {why}, but {fewest} sample(s) cannot show it (need {MIN_SAMPLES}): INCONCLUSIVE",
        )
    return Outcome.INCONCLUSIVE, f"above the {why}"


def decide(reg: Regression, significant: bool) -> Regression:
    """Settle a candidate: REGRESSED when significant, else INCONCLUSIVE; others pass through."""
    if not reg.candidate:
        return reg
    if significant:
        return replace(reg, outcome=Outcome.FAILED, candidate=False, message=f"{reg.message}: REGRESSED")
    return replace(
        reg,
        candidate=False,
        message=f"{reg.message}, not significant (p = {reg.p_value:.3g}, Holm-corrected over the grid): INCONCLUSIVE",
    )


@dataclass(frozen=True)
class CaseVerdict:
    """Every check of one case, and the case's overall outcome."""

    checks: tuple[Check, ...]

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.failed)

    @property
    def regressions(self) -> tuple[Regression, ...]:
        return tuple(c for c in self.checks if isinstance(c, Regression))

    @property
    def regression(self) -> Regression | None:
        """The latency comparison (the headline one)."""
        return next((c for c in self.regressions if c.metric == "latency_ms"), None)

    @property
    def outcome(self) -> Outcome:
        """FAILED if any check failed, else INCONCLUSIVE, else NO_BASELINE, else OK."""
        for outcome in (Outcome.FAILED, Outcome.INCONCLUSIVE, Outcome.NO_BASELINE):
            if any(c.outcome is outcome for c in self.checks):
                return outcome
        return Outcome.OK


def evaluate_case(
    case: str,
    current: Mapping[str, Sequence[float]],
    *,
    budget_ms: float,
    breaker_ms: float,
    baseline: Mapping[str, Sequence[float]] | None,
    tolerance: float,
    noise: Mapping[str, float] | None = None,
    noise_k: float = 2.0,
    min_delta_ms: float = 0.0,
    family: OnlineHolm | None = None,
    alpha: float = 0.05,
    new_tokens: int = 1,
    require_baseline: bool = False,
    enforce_regression: bool = True,
    simulated: bool = False,
) -> CaseVerdict:
    """Budget, breaker and per-metric regression checks of one case.

    ``current`` and ``baseline`` map metric names (latency_ms, ttft_ms, tpot_ms) to
    samples; ``new_tokens`` is the case's token budget (TPOT's share of a request). With
    ``family`` the significance decision is Holm's over the whole grid
    (online: a case decides when it runs); without, each metric stands alone at ``alpha``.
    ``require_baseline`` turns a missing baseline into a failure; ``enforce_regression=False``
    reports a regression without failing (used while accepting new baselines). ``simulated``:
    the figures come from the HTP simulator, so the device's budget and breaker are shown, not applied.
    """
    latency = Summary.of(current["latency_ms"])
    checks: list[Check] = [
        latency_budget(case, latency.median, budget_ms),
        circuit_breaker(case, latency.max, breaker_ms),
    ]
    if simulated:
        checks = [replace(c, outcome=Outcome.OK, message=f"{c.message} (HTP simulator: not applied)") for c in checks]
    floors = _floors(baseline, tolerance, min_delta_ms, new_tokens)
    compared = [
        compare(
            case,
            metric,
            samples,
            (baseline or {}).get(metric),
            tolerance=tolerance,
            noise_floor=(noise or {}).get(metric),
            noise_k=noise_k,
            min_delta_ms=floors[metric][0],
            contribution=floors[metric][1],
        )
        for metric in ("latency_ms", "ttft_ms", "tpot_ms")
        if (samples := current.get(metric) or ())
    ]
    p_values = [r.p_value if r.candidate else 1.0 for r in compared]
    significant = family.decide(p_values) if family is not None else [p <= alpha for p in p_values]
    for reg, sig in zip(compared, significant, strict=True):
        checks.append(_policy(decide(reg, sig), require_baseline, enforce_regression))
    return CaseVerdict(checks=tuple(checks))


def _floors(
    baseline: Mapping[str, Sequence[float]] | None, tolerance: float, min_delta_ms: float, new_tokens: int
) -> dict[str, tuple[float, float]]:
    """Per metric: (the absolute floor in ms a regression must add to a request, the metric's share of it).

    TTFT and TPOT are parts of the request: a change in one is material only if it adds
    more to a request than the tolerance of the baseline's latency (and the absolute floor).
    """
    base_latency = Summary.of(baseline["latency_ms"]).median if baseline and baseline.get("latency_ms") else 0.0
    part_floor = max(min_delta_ms, tolerance * base_latency)
    return {
        "latency_ms": (min_delta_ms, 1.0),
        "ttft_ms": (part_floor, 1.0),
        "tpot_ms": (part_floor, max(new_tokens - 1, 1)),
    }


def _policy(reg: Regression, require_baseline: bool, enforce_regression: bool) -> Regression:
    """A missing baseline fails with --require-baseline; a regression is reported, not enforced,
    while new baselines are being accepted."""
    if reg.outcome is Outcome.NO_BASELINE and require_baseline:
        return replace(
            reg, outcome=Outcome.FAILED, message=reg.message + " and a baseline is required (--require-baseline)"
        )
    if reg.outcome is Outcome.FAILED and not enforce_regression:
        return replace(
            reg, outcome=Outcome.INCONCLUSIVE, message=reg.message + " (not enforced: accepting new baselines)"
        )
    return reg


def confirmed(first: CaseVerdict, reruns: Sequence[CaseVerdict]) -> CaseVerdict:
    """The verdict of a case re-measured after it looked regressed.

    A metric stays REGRESSED only if every re-run shows it too (each re-run is a second,
    independent test of a hypothesis Holm already rejected, so requiring both can only
    lower the false-alarm rate); the re-runs stop at the first that does not. A burst of
    load on a shared machine lasts seconds, so it rarely survives a re-run. The final
    verdict is the last re-run's, each message saying what the first run showed.
    """
    if not reruns:
        return first
    before = {r.metric: r for r in first.regressions}
    last = reruns[-1]
    n = len(reruns)
    checks: list[Check] = []
    for check in last.checks:
        prior = before.get(check.metric) if isinstance(check, Regression) else None
        if prior is None or prior.outcome is not Outcome.FAILED:
            checks.append(check)
            continue
        first_pct = f"{(prior.ratio - 1) * 100:+.1f}%"
        if check.outcome is Outcome.FAILED:
            note = f" (confirmed on {n} re-run{'s' if n > 1 else ''}; first run {first_pct})"
        else:
            note = f"; first run looked regressed ({first_pct}), not confirmed on re-run {n}"
        checks.append(replace(check, message=check.message + note))
    return CaseVerdict(checks=tuple(checks))


def grid_regression(
    pairs: Sequence[tuple[Sequence[float], Sequence[float]]],
    *,
    tolerance: float,
    noise_floor: float | None,
    noise_k: float = 2.0,
    alpha: float = 0.05,
    confidence: float = 0.95,
) -> Regression:
    """Is the whole grid slower? The median across cases of each case's latency ratio.

    One hypothesis, tested at ``alpha`` on its own (a family apart from the per-case
    tests). Its threshold is max(tolerance, k x the grid's noise floor: how far its median
    case moved between the two passes recorded with the baseline).
    """
    threshold = materiality(tolerance, noise_floor, noise_k)
    test = median_of_ratios(pairs, 1 + threshold, confidence=confidence, seed=len(pairs))
    why = f"{threshold * 100:.3g}% grid threshold"
    if noise_floor is not None and threshold > tolerance:
        why += f" ({noise_k:g} x grid noise floor {noise_floor * 100:.2g}%)"
    head = (
        f"whole grid ({len(pairs)} cases): median latency ratio {(test.ratio - 1) * 100:+.1f}% "
        f"({confidence:.0%} CI {(test.ci_low - 1) * 100:+.1f}..{(test.ci_high - 1) * 100:+.1f}%)"
    )
    if test.ratio <= 1 + threshold:
        outcome, tail = Outcome.OK, f"within the {why}: OK"
    elif test.p_value <= alpha:
        outcome, tail = Outcome.FAILED, f"above the {why}: REGRESSED"
    else:
        outcome, tail = Outcome.INCONCLUSIVE, f"above the {why}, not significant (p = {test.p_value:.3g}): INCONCLUSIVE"
    return Regression(
        name="grid latency vs baseline",
        outcome=outcome,
        value=test.ratio,
        limit=1 + threshold,
        message=f"{head}, {tail}",
        metric="latency_ms",
        ratio=test.ratio,
        ci_low=test.ci_low,
        ci_high=test.ci_high,
        confidence=confidence,
        p_value=test.p_value,
        threshold=threshold,
        tolerance=tolerance,
        noise_floor=noise_floor,
    )
