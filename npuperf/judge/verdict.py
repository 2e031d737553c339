"""Pure decisions: latency budget, circuit breaker, load budget, regression vs baseline.

Each function takes numbers and returns a frozen ``Check`` whose message gives the
measured value, the limit and the case, so a failing test says what to act on.
No pytest, no printing, no files.

The regression verdict (see docs/verdicts.md) per case and metric, over samples grouped by
the process that measured them (the unit is a process's median):

- REGRESSED when the ratio of medians is above the materiality threshold with statistical
  significance after Holm's correction over the whole grid, and again on a re-measurement;
- INCONCLUSIVE when the estimate is above the threshold but the evidence is not enough;
- NOT JUDGED when it was measured while other processes kept the machine busy and the
  estimate lies between the threshold and what a busy machine can add by itself: it cannot
  say whether the code or the load made it slower (never OK: a busy machine may hide a change);
- ADVISORY when the baseline was recorded on another host: REGRESSED there, shown, not failed
  (it compares machines, not changes);
- OK otherwise.
"""

from __future__ import annotations

import enum
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from npuperf.judge.stats import (
    Groups,
    KeyedGroups,
    OnlineHolm,
    RatioTest,
    Summary,
    grid_ratio,
    grouped_ratio,
    paired_grid_ratio,
    paired_ratio,
)


class Outcome(enum.Enum):
    OK = "ok"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"
    NO_BASELINE = "no baseline"
    NOT_JUDGED = "not judged"
    ADVISORY = "advisory"


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
    processes: tuple[int, int] = (1, 1)  # (current, baseline) processes the medians come from
    busy_line: float | None = None  # a busy machine: the ratio above which it is still REGRESSED


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


def _flat(groups: Groups) -> list[float]:
    return [x for g in groups for x in g]


# Over 60 lines on purpose: the docstring says what each input means to the verdict; the body is
# one comparison's steps in order (median, threshold, test, message, outcome).
def compare(
    case: str,
    metric: str,
    current: Groups,
    baseline: Groups | None,
    *,
    tolerance: float,
    noise_floor: float | None = None,
    noise_k: float = 2.0,
    min_delta_ms: float = 0.0,
    contribution: float = 1.0,
    confidence: float = 0.95,
    busy_tolerance: float | None = None,
    paired: bool = False,
) -> Regression:
    """The statistics of one comparison, before any multiple-comparison decision.

    ``current`` and ``baseline`` are samples grouped by the process that measured them; the
    estimate is the ratio of the medians of the processes' medians, tested by a hierarchical
    bootstrap (npuperf.judge.stats.grouped_ratio). ``min_delta_ms`` is an absolute floor on
    what the slowdown adds to one request, which is the metric's median delta times
    ``contribution`` (1 for latency and TTFT, the tokens after the first for TPOT).

    ``busy_tolerance``: the case was measured while the machine was busy. At or under the
    threshold it is still OK (load only adds time); above ``max(threshold, busy_tolerance)``
    it is a candidate as usual; in between it is NOT JUDGED.

    ``paired``: the i-th group of each side are neighbours in time (an A/B run's alternating
    processes): the estimate is the median of the pairs' ratios (stats.paired_ratio).

    The outcome is OK, NO_BASELINE, NOT_JUDGED, or INCONCLUSIVE standing for "a candidate"
    (then ``candidate`` is set): ``decide`` settles it.
    """
    if not 0 <= tolerance < 10:
        raise ValueError(f"tolerance must be a fraction within 0..10 (0.10 = 10%), got {tolerance}")
    if min_delta_ms < 0:
        raise ValueError(f"min_delta_ms must be >= 0, got {min_delta_ms}")
    word = METRIC_WORDS.get(metric, metric)
    groups = [g for g in current if g]
    cur_median = _median_of(groups)
    if not baseline or not any(baseline):
        return _not_compared(case, metric, cur_median, tolerance)
    base_groups = [g for g in baseline if g]
    base_median = _median_of(base_groups)
    if base_median == 0:
        raise ValueError(f"{case}: baseline {word} has a zero median; it cannot be compared")
    threshold = materiality(tolerance, noise_floor, noise_k)
    busy_line = None if busy_tolerance is None else 1 + max(threshold, busy_tolerance)
    line = busy_line if busy_line is not None else 1 + threshold
    test = _ratio_test(case, metric, groups, base_groups, line, confidence, paired)
    why = f"{threshold * 100:.3g}% threshold"
    if noise_floor is not None and threshold > tolerance:
        why += f" ({noise_k:g} x noise floor {noise_floor * 100:.2g}%)"
    processes = (len(groups), len(base_groups))
    head = _head(case, word, cur_median, base_median, test, confidence, processes, paired)
    added_ms = (cur_median - base_median) * contribution
    n_cur, n_base = len(_flat(groups)), len(_flat(base_groups))
    outcome, tail = _judgement(test.ratio, 1 + threshold, why, added_ms, contribution, min_delta_ms, n_cur, n_base)
    outcome, tail = _on_a_busy_machine(outcome, tail, test.ratio, busy_line, why)
    return Regression(
        outcome=outcome,
        value=cur_median,
        limit=base_median * (1 + threshold),
        message=f"{head}, {tail}",
        baseline_median=base_median,
        ratio=test.ratio,
        ci_low=test.ci_low,
        ci_high=test.ci_high,
        confidence=confidence,
        p_value=test.p_value,
        threshold=threshold,
        noise_floor=noise_floor,
        candidate=outcome is Outcome.INCONCLUSIVE and min(n_cur, n_base) >= MIN_SAMPLES,
        name=f"{word} vs baseline",
        metric=metric,
        current_median=cur_median,
        tolerance=tolerance,
        processes=processes,
        busy_line=busy_line,
    )


def _ratio_test(
    case: str, metric: str, groups: Groups, base_groups: Groups, line: float, confidence: float, paired: bool
) -> RatioTest:
    """The bootstrap test of a comparison: paired (an A/B run's neighbouring processes) or hierarchical."""
    if paired and len(groups) != len(base_groups):
        raise ValueError(f"{case}: {len(groups)} vs {len(base_groups)} processes cannot be paired")
    seed = _seed(case, metric)
    if paired:
        return paired_ratio(list(zip(groups, base_groups, strict=True)), line, confidence=confidence, seed=seed)
    return grouped_ratio(groups, base_groups, line, confidence=confidence, seed=seed)


def _on_a_busy_machine(
    outcome: Outcome, tail: str, ratio: float, busy_line: float | None, why: str
) -> tuple[Outcome, str]:
    """Above the threshold on a busy machine: NOT JUDGED up to what the load can add, else a
    candidate against that line (a busy machine never turns a slowdown into OK, nor fails one the
    load could explain)."""
    if busy_line is None or outcome is not Outcome.INCONCLUSIVE:
        return outcome, tail
    can_add = f"{(busy_line - 1) * 100:.3g}% a busy machine can add by itself"
    if ratio <= busy_line:
        return Outcome.NOT_JUDGED, (
            f"above the {why} but within the {can_add}: NOT JUDGED (the load, not the code, may have made it "
            "slower; re-run on a quiet machine)"
        )
    return outcome, f"above the {can_add} (the {why} when quiet)"


def _median_of(groups: Groups) -> float:
    """The median of the groups' medians (one group: its median)."""
    return Summary.of([Summary.of(g).median for g in groups if g]).median


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


def _head(
    case: str,
    word: str,
    current: float,
    baseline: float,
    test: RatioTest,
    confidence: float,
    processes: tuple[int, int] = (1, 1),
    paired: bool = False,
) -> str:
    """The start of a comparison's message, e.g.
    ``32 tokens / 64-token prompt: median latency 8.51 ms vs baseline 6.98 ms (+22.0%, 95% CI +10.3..+28.0%)``;
    with samples from several processes the medians are medians of process medians, and it says of how many."""
    over = "" if processes == (1, 1) else f"; medians of {processes[0]} vs {processes[1]} processes"
    if paired:
        over = f"; the median of {processes[0]} interleaved pairs' ratios"
    return (
        f"{case}: median {word} {current:.2f} ms vs baseline {baseline:.2f} ms "
        f"({(test.ratio - 1) * 100:+.1f}%, {confidence:.0%} CI {(test.ci_low - 1) * 100:+.1f}.."
        f"{(test.ci_high - 1) * 100:+.1f}%{over})"
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
    """Settle a candidate: REGRESSED when significant, else INCONCLUSIVE (NOT JUDGED when measured
    on a busy machine: the load may be all of it); others pass through."""
    if not reg.candidate:
        return reg
    if significant:
        return replace(reg, outcome=Outcome.FAILED, candidate=False, message=f"{reg.message}: REGRESSED")
    if reg.busy_line is not None:
        return replace(
            reg,
            outcome=Outcome.NOT_JUDGED,
            candidate=False,
            message=f"{reg.message}, not significant (p = {reg.p_value:.3g}) on a busy machine: NOT JUDGED",
        )
    return replace(
        reg,
        candidate=False,
        message=f"{reg.message}, not significant (p = {reg.p_value:.3g}, Holm-corrected over the grid): INCONCLUSIVE",
    )


# an outcome's rank when a case sums up its checks: the first that any check has
PRECEDENCE = (
    Outcome.FAILED,
    Outcome.NOT_JUDGED,
    Outcome.INCONCLUSIVE,
    Outcome.ADVISORY,
    Outcome.NO_BASELINE,
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
        """FAILED if any check failed, else NOT_JUDGED, INCONCLUSIVE, ADVISORY, NO_BASELINE, in that order; else OK."""
        for outcome in PRECEDENCE:
            if any(c.outcome is outcome for c in self.checks):
                return outcome
        return Outcome.OK


@dataclass(frozen=True)
class Policy:
    """What a run does with a comparison's outcome: fail on a missing baseline (--require-baseline);
    report a regression without failing it while accepting new baselines, or (``advisory``: why)
    against another host's baseline."""

    require_baseline: bool = False
    enforce_regression: bool = True
    advisory: str = ""


def evaluate_case(
    case: str,
    current: Mapping[str, Groups],
    *,
    budget_ms: float,
    breaker_ms: float,
    baseline: Mapping[str, Groups] | None,
    tolerance: float,
    noise: Mapping[str, float] | None = None,
    noise_k: float = 2.0,
    min_delta_ms: float = 0.0,
    family: OnlineHolm | None = None,
    significant: Sequence[bool] | None = None,
    alpha: float = 0.05,
    new_tokens: int = 1,
    policy: Policy = Policy(),
    simulated: bool = False,
    busy_tolerance: float | None = None,
    paired: bool = False,
    compared: Sequence[Regression] | None = None,
) -> CaseVerdict:
    """Budget, breaker and per-metric regression checks of one case.

    ``current`` and ``baseline`` map metric names (latency_ms, ttft_ms, tpot_ms) to samples
    grouped by process; ``new_tokens`` is the case's token budget (TPOT's share of a request).
    The significance decision is, in order of preference: ``significant`` (decided by the
    caller, e.g. Holm over the whole grid once every p-value is known, one per metric compared),
    ``family`` (online Holm), or each metric alone at ``alpha``. ``simulated``: the figures come
    from the HTP simulator, so the device's budget and breaker are shown, not applied.
    ``busy_tolerance``: the case was measured on a busy machine (see ``compare``); then a budget
    or breaker failure within that tolerance of its limit is NOT JUDGED too. ``compared``: the
    comparisons already made (``comparisons``), when the caller needed their p-values first.
    """
    checks = _limits(case, current, budget_ms, breaker_ms, simulated, busy_tolerance)
    if compared is None:
        compared = comparisons(
            case,
            current,
            baseline,
            tolerance=tolerance,
            noise=noise,
            noise_k=noise_k,
            min_delta_ms=min_delta_ms,
            new_tokens=new_tokens,
            busy_tolerance=busy_tolerance,
            paired=paired,
        )
    if significant is None:
        p_values = [r.p_value if r.candidate else 1.0 for r in compared]
        significant = family.decide(p_values) if family is not None else [p <= alpha for p in p_values]
    for reg, sig in zip(compared, significant, strict=True):
        checks.append(apply(decide(reg, sig), policy))
    return CaseVerdict(checks=tuple(checks))


def _limits(
    case: str,
    current: Mapping[str, Groups],
    budget_ms: float,
    breaker_ms: float,
    simulated: bool,
    busy_tolerance: float | None,
) -> list[Check]:
    """The latency budget (median) and the breaker (slowest request), as the run can judge them."""
    latency = Summary.of(_flat(current["latency_ms"]))
    checks: list[Check] = [
        latency_budget(case, latency.median, budget_ms),
        circuit_breaker(case, latency.max, breaker_ms),
    ]
    if simulated:
        return [replace(c, outcome=Outcome.OK, message=f"{c.message} (HTP simulator: not applied)") for c in checks]
    if busy_tolerance is not None:
        return [_busy_limit(c, busy_tolerance) for c in checks]
    return checks


def _busy_limit(check: Check, busy_tolerance: float) -> Check:
    """A limit missed on a busy machine by less than the load can add is NOT JUDGED, not failed."""
    if not check.failed or check.value > check.limit * (1 + busy_tolerance):
        return check
    return replace(
        check,
        outcome=Outcome.NOT_JUDGED,
        message=f"{check.message}, by less than the {busy_tolerance:.0%} a busy machine can add by itself: NOT JUDGED",
    )


def comparisons(
    case: str,
    current: Mapping[str, Groups],
    baseline: Mapping[str, Groups] | None,
    *,
    tolerance: float,
    noise: Mapping[str, float] | None = None,
    noise_k: float = 2.0,
    min_delta_ms: float = 0.0,
    new_tokens: int = 1,
    busy_tolerance: float | None = None,
    paired: bool = False,
) -> list[Regression]:
    """The comparison of each metric of a case that has samples, in METRIC order, undecided."""
    floors = _floors(baseline, tolerance, min_delta_ms, new_tokens)
    return [
        compare(
            case,
            metric,
            groups,
            (baseline or {}).get(metric),
            tolerance=tolerance,
            noise_floor=(noise or {}).get(metric),
            noise_k=noise_k,
            min_delta_ms=floors[metric][0],
            contribution=floors[metric][1],
            busy_tolerance=busy_tolerance,
            paired=paired,
        )
        for metric in ("latency_ms", "ttft_ms", "tpot_ms")
        if _flat(groups := current.get(metric) or ())
    ]


def _floors(
    baseline: Mapping[str, Groups] | None, tolerance: float, min_delta_ms: float, new_tokens: int
) -> dict[str, tuple[float, float]]:
    """Per metric: (the absolute floor in ms a regression must add to a request, the metric's share of it).

    TTFT and TPOT are parts of the request: a change in one is material only if it adds
    more to a request than the tolerance of the baseline's latency (and the absolute floor).
    """
    base_latency = _median_of(baseline["latency_ms"]) if baseline and _flat(baseline.get("latency_ms") or ()) else 0.0
    part_floor = max(min_delta_ms, tolerance * base_latency)
    return {
        "latency_ms": (min_delta_ms, 1.0),
        "ttft_ms": (part_floor, 1.0),
        "tpot_ms": (part_floor, max(new_tokens - 1, 1)),
    }


def apply(reg: Regression, policy: Policy) -> Regression:
    """A missing baseline fails with --require-baseline; a regression is reported, not enforced,
    while new baselines are being accepted, and is advisory against another host's baseline."""
    if reg.outcome is Outcome.NO_BASELINE and policy.require_baseline:
        return replace(
            reg, outcome=Outcome.FAILED, message=reg.message + " and a baseline is required (--require-baseline)"
        )
    if reg.outcome is Outcome.FAILED and not policy.enforce_regression:
        return replace(
            reg, outcome=Outcome.INCONCLUSIVE, message=reg.message + " (not enforced: accepting new baselines)"
        )
    if reg.outcome is Outcome.FAILED and policy.advisory:
        return replace(reg, outcome=Outcome.ADVISORY, message=f"{reg.message}, ADVISORY: {policy.advisory}")
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
    cases: Sequence[tuple[KeyedGroups, KeyedGroups]],
    *,
    tolerance: float,
    noise_floor: float | None,
    noise_k: float = 2.0,
    alpha: float = 0.05,
    confidence: float = 0.95,
    busy_tolerance: float | None = None,
    paired: bool = False,
) -> Regression:
    """Is the whole grid slower? The median across cases of each case's latency ratio.

    ``cases`` holds (current, baseline) latency samples per case, grouped by the process that
    measured them (keyed by process index: the bootstrap draws processes jointly across cases).
    One hypothesis, tested at ``alpha`` on its own (a family apart from the per-case tests). Its
    threshold is max(tolerance, k x the grid's noise floor: how far its median case moved
    between the passes recorded with the baseline). ``busy_tolerance``: as in ``compare``.
    """
    threshold = materiality(tolerance, noise_floor, noise_k)
    busy_line = None if busy_tolerance is None else 1 + max(threshold, busy_tolerance)
    line = busy_line if busy_line is not None else 1 + threshold
    if paired:
        pairs = [[(cur[i], base[i]) for i in sorted(set(cur) & set(base))] for cur, base in cases]
        test = paired_grid_ratio(pairs, line, confidence=confidence, seed=len(cases))
    else:
        test = grid_ratio(cases, line, confidence=confidence, seed=len(cases))
    why = f"{threshold * 100:.3g}% grid threshold"
    if noise_floor is not None and threshold > tolerance:
        why += f" ({noise_k:g} x grid noise floor {noise_floor * 100:.2g}%)"
    head = (
        f"whole grid ({len(cases)} cases): median latency ratio {(test.ratio - 1) * 100:+.1f}% "
        f"({confidence:.0%} CI {(test.ci_low - 1) * 100:+.1f}..{(test.ci_high - 1) * 100:+.1f}%)"
    )
    outcome, tail = _grid_outcome(test, threshold, busy_line, why, alpha)
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
        busy_line=busy_line,
    )


def _grid_outcome(
    test: RatioTest, threshold: float, busy_line: float | None, why: str, alpha: float
) -> tuple[Outcome, str]:
    """OK, REGRESSED, INCONCLUSIVE; on a busy machine NOT JUDGED where the load could explain it."""
    busy_words = "" if busy_line is None else f"the {(busy_line - 1) * 100:.3g}% a busy machine can add by itself"
    if test.ratio <= 1 + threshold:
        return Outcome.OK, f"within the {why}: OK"
    if busy_line is not None and test.ratio <= busy_line:
        return Outcome.NOT_JUDGED, f"above the {why} but within {busy_words}: NOT JUDGED"
    if test.p_value <= alpha:
        above = f"the {why}" if busy_line is None else f"{busy_words} (the {why} when quiet)"
        return Outcome.FAILED, f"above {above}: REGRESSED"
    if busy_line is not None:
        return Outcome.NOT_JUDGED, f"above {busy_words}, not significant (p = {test.p_value:.3g}): NOT JUDGED"
    return Outcome.INCONCLUSIVE, f"above the {why}, not significant (p = {test.p_value:.3g}): INCONCLUSIVE"
