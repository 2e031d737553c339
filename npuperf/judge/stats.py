"""Pure statistics over latency samples. No I/O, no pytest.

Percentiles use linear interpolation between closest ranks (numpy's default "linear"
method), so p50 of [1, 2, 3, 4] is 2.5 and results match numpy.percentile.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of ``values``, linearly interpolated.

    >>> percentile([1, 2, 3, 4], 50)
    2.5
    """
    if not values:
        raise ValueError("percentile of an empty sample is undefined")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be within 0..100, got {q}")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def median(values: Sequence[float]) -> float:
    """The median: p50, the mean of the two middle values of an even count.

    >>> median([1, 2, 3, 4])
    2.5
    """
    return percentile(values, 50)


def upper_median(values: Sequence[float]) -> float:
    """The middle value of an odd count, the upper of the two middle ones of an even count.

    Always one of the observed values. Baselines use it for the noise floor, so recorded
    files keep meaning what they meant when they were written.

    >>> upper_median([1, 2, 3, 4])
    3
    """
    if not values:
        raise ValueError("the upper median of an empty sample is undefined")
    return sorted(values)[len(values) // 2]


@dataclass(frozen=True)
class Summary:
    """Order statistics of one metric's samples.

    >>> Summary.of([10.0, 12.0, 11.0]).median
    11.0
    """

    n: int
    median: float
    p25: float
    p90: float
    min: float
    max: float
    mean: float
    stdev: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Summary:
        if not samples:
            raise ValueError("cannot summarise zero samples")
        bad = [s for s in samples if not math.isfinite(s) or s < 0]
        if bad:
            raise ValueError(f"samples must be finite and >= 0, got {bad[:3]}")
        return cls(
            n=len(samples),
            median=percentile(samples, 50),
            p25=percentile(samples, 25),
            p90=percentile(samples, 90),
            min=min(samples),
            max=max(samples),
            mean=statistics.fmean(samples),
            stdev=statistics.stdev(samples) if len(samples) > 1 else 0.0,
        )

    def brief(self, digits: int | None = None) -> dict[str, float | int]:
        """n, median, p90, min and max as a dict (rounded to ``digits`` if given), for files and APIs.

        >>> Summary.of([1.0, 2.0, 4.0]).brief()
        {'n': 3, 'median': 2.0, 'p90': 3.6, 'min': 1.0, 'max': 4.0}
        """
        values = {"median": self.median, "p90": self.p90, "min": self.min, "max": self.max}
        if digits is not None:
            values = {k: round(v, digits) for k, v in values.items()}
        return {"n": self.n, **values}


def tokens_within(budget_ms: float, ttft_ms: float, tpot_ms: float | None) -> int:
    """How many new tokens fit a latency budget at a measured TTFT and TPOT.

    The first token costs TTFT, each further one TPOT:
    n = 1 + floor((budget - TTFT) / TPOT), and 0 when TTFT alone is over budget.
    For Qwen2.5-7B on a Snapdragon X Elite (TTFT 175 ms, 12.3 tok/s) and 500 ms:

    >>> tokens_within(500, 175, 1000 / 12.3)
    4
    """
    if budget_ms <= 0:
        raise ValueError(f"budget must be > 0 ms, got {budget_ms}")
    if ttft_ms > budget_ms:
        return 0
    if not tpot_ms:
        return 1
    return 1 + math.floor((budget_ms - ttft_ms) / tpot_ms)


@dataclass(frozen=True)
class RatioTest:
    """Bootstrap test of the ratio of medians, current / baseline.

    ``p_value`` is one-sided for "the true ratio exceeds ``line``"; ``ci_low`` and
    ``ci_high`` bound a two-sided interval at ``confidence``.
    """

    ratio: float
    ci_low: float
    ci_high: float
    p_value: float
    line: float
    resamples: int
    confidence: float


def ratio_of_medians(
    current: Sequence[float],
    baseline: Sequence[float],
    line: float,
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> RatioTest:
    """Percentile bootstrap of median(current) / median(baseline).

    Distribution-free: latency samples are skewed and sometimes bimodal, so no normal
    or log-normal model is assumed; each sample is resampled with replacement, on its
    own, ``resamples`` times. Seeded, so a verdict is reproducible from the samples.
    The p-value is the share of resampled ratios at or below ``line``, with the +1
    correction that keeps it above 0 (Davison & Hinkley 1997, eq. 4.11).

    >>> cur, base = [12.0, 12.5, 13.0, 12.2, 12.8, 12.4], [10.0, 10.5, 11.0, 10.2, 10.8, 10.4]
    >>> t = ratio_of_medians(cur, base, line=1.10, seed=1)
    >>> round(t.ratio, 3), round(t.ci_low, 3), round(t.ci_high, 3), t.p_value < 0.01
    (1.191, 1.138, 1.243, True)
    """
    if not current or not baseline:
        raise ValueError("the ratio test needs samples on both sides")
    if resamples < 100:
        raise ValueError(f"resamples must be >= 100, got {resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be within (0, 1), got {confidence}")
    base_median = median(baseline)
    if base_median <= 0:
        raise ValueError("baseline median must be > 0 for a ratio")
    rng = random.Random(seed)
    n, m = len(current), len(baseline)
    ratios = []
    for _ in range(resamples):
        num = median([current[rng.randrange(n)] for _ in range(n)])
        den = median([baseline[rng.randrange(m)] for _ in range(m)])
        ratios.append(num / den if den > 0 else math.inf)
    ratios.sort()
    tail = (1 - confidence) / 2 * 100
    at_or_below = sum(1 for r in ratios if r <= line)
    return RatioTest(
        ratio=median(current) / base_median,
        ci_low=percentile(ratios, tail),
        ci_high=percentile(ratios, 100 - tail),
        p_value=(1 + at_or_below) / (resamples + 1),
        line=line,
        resamples=resamples,
        confidence=confidence,
    )


def holm(p_values: Sequence[float], alpha: float) -> list[bool]:
    """Holm's step-down procedure: which hypotheses are rejected at family-wise ``alpha``.

    >>> holm([0.01, 0.04, 0.03], 0.05)
    [True, False, False]
    >>> holm([0.01, 0.02, 0.03], 0.05)
    [True, True, True]
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be within (0, 1), got {alpha}")
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    rejected = [False] * m
    for rank, i in enumerate(order):
        if p_values[i] > alpha / (m - rank):
            break
        rejected[i] = True
    return rejected


class OnlineHolm:
    """Holm's procedure over a family of known size whose p-values arrive one case at a time.

    Hypotheses not yet seen count as p = 1. A rejection made this way is never undone by
    p-values that arrive later (a later, smaller p-value only loosens the thresholds of
    those above it), so each case can fail in its own test while the whole grid stays
    under family-wise ``alpha``. ``final()`` gives the full Holm result, which may reject
    more once every p-value is known.
    """

    def __init__(self, family_size: int, alpha: float) -> None:
        if family_size < 1:
            raise ValueError(f"family size must be >= 1, got {family_size}")
        self.family_size = family_size
        self.alpha = alpha
        self.seen: list[float] = []

    def decide(self, p_values: Sequence[float]) -> list[bool]:
        """Add ``p_values`` to the family and say which of them are rejected now."""
        start = len(self.seen)
        self.seen.extend(p_values)
        if len(self.seen) > self.family_size:
            raise ValueError(f"more p-values ({len(self.seen)}) than the family size ({self.family_size})")
        padded = self.seen + [1.0] * (self.family_size - len(self.seen))
        return holm(padded, self.alpha)[start : start + len(p_values)]

    def final(self) -> list[bool]:
        """Holm over the p-values seen (unseen ones, if any, still count as 1)."""
        return holm(self.seen + [1.0] * (self.family_size - len(self.seen)), self.alpha)[: len(self.seen)]


def median_of_ratios(
    pairs: Sequence[tuple[Sequence[float], Sequence[float]]],
    line: float,
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> RatioTest:
    """Bootstrap of the median, across cases, of each case's ratio of medians.

    ``pairs`` holds (current, baseline) samples per case. Each resample draws every
    case's samples with replacement on both sides, so the interval reflects the noise of
    every case; the median across cases keeps one case shifted by a slow spell from
    moving the grid's estimate. This is the statistic of a slowdown that hits the whole
    grid (a runtime, driver or model change), which is what most regressions are.
    """
    if not pairs:
        raise ValueError("the grid test needs at least one case")
    if resamples < 100:
        raise ValueError(f"resamples must be >= 100, got {resamples}")
    for cur, base in pairs:
        if not cur or not base or median(base) <= 0:
            raise ValueError("every case needs samples on both sides and a baseline median > 0")
    rng = random.Random(seed)
    estimates = []
    for _ in range(resamples):
        ratios = []
        for cur, base in pairs:
            num = median([cur[rng.randrange(len(cur))] for _ in cur])
            den = median([base[rng.randrange(len(base))] for _ in base])
            ratios.append(num / den if den > 0 else math.inf)
        estimates.append(median(ratios))
    estimates.sort()
    tail = (1 - confidence) / 2 * 100
    return RatioTest(
        ratio=median([median(cur) / median(base) for cur, base in pairs]),
        ci_low=percentile(estimates, tail),
        ci_high=percentile(estimates, 100 - tail),
        p_value=(1 + sum(1 for e in estimates if e <= line)) / (resamples + 1),
        line=line,
        resamples=resamples,
        confidence=confidence,
    )
