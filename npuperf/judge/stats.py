"""Pure statistics over latency samples. No I/O, no pytest.

Percentiles use linear interpolation between closest ranks (numpy's default "linear"
method), so p50 of [1, 2, 3, 4] is 2.5 and results match numpy.percentile.
"""

from __future__ import annotations

import math
import random
import statistics
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


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


# ----- samples from several processes --------------------------------------------------------
#
# A case measured in P processes has P groups of samples. A process is fast or slow as a whole
# (docs/noise.md), so its samples are not independent draws: the unit of a comparison is the
# process. The estimate is the median of the processes' medians; the bootstrap is hierarchical
# (resample the processes, then each chosen process's samples), which is how clustered data is
# resampled so that the interval carries the process-to-process spread. With one group on each
# side it is the plain bootstrap of ratio_of_medians.

Groups = Sequence[Sequence[float]]


def median_of_medians(groups: Groups) -> float:
    """The median of each group's median.

    >>> median_of_medians([[1.0, 2.0, 9.0], [3.0, 3.0], [10.0]])
    3.0
    """
    if not groups or not all(groups):
        raise ValueError("every group needs at least one sample")
    return median([median(g) for g in groups])


def _padded(groups: Groups) -> tuple[np.ndarray, np.ndarray]:
    """The groups as one (groups x longest) array, padded with NaN, and each group's length."""
    lengths = np.array([len(g) for g in groups])
    values = np.full((len(groups), int(lengths.max())), np.nan)
    for i, g in enumerate(groups):
        values[i, : len(g)] = g
    return values, lengths


def _resampled(values: np.ndarray, lengths: np.ndarray, chosen: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per replicate (a row of ``chosen``: the groups drawn, -1 for none), the median over the drawn
    groups of the median of each one's samples drawn with replacement. NaN where none was drawn."""
    b, g = chosen.shape
    longest = values.shape[1]
    rows = np.where(chosen < 0, 0, chosen)
    n = np.where(chosen < 0, 0, lengths[rows])
    picks = np.floor(rng.random((b, g, longest)) * np.maximum(n, 1)[..., None]).astype(np.int64)
    draws = values[rows[..., None], picks]
    draws[np.arange(longest)[None, None, :] >= n[..., None]] = np.nan
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN slice (a group not drawn) is NaN
        group_medians = np.nanmedian(draws, axis=2)
        return np.asarray(np.nanmedian(group_medians, axis=1))


def _test(ratio: float, replicates: np.ndarray, line: float, confidence: float) -> RatioTest:
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        finite = np.array([ratio])
    tail = (1 - confidence) / 2 * 100
    return RatioTest(
        ratio=ratio,
        ci_low=float(np.percentile(finite, tail)),
        ci_high=float(np.percentile(finite, 100 - tail)),
        p_value=(1 + int(np.sum(finite <= line))) / (finite.size + 1),
        line=line,
        resamples=int(finite.size),
        confidence=confidence,
    )


def grouped_ratio(
    current: Groups,
    baseline: Groups,
    line: float,
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> RatioTest:
    """Hierarchical bootstrap of median_of_medians(current) / median_of_medians(baseline).

    ``p_value`` is one-sided for "the true ratio exceeds ``line``", with the +1 correction.
    Seeded, so a verdict is reproducible from the samples.

    >>> cur = [[12.0, 12.5, 13.0], [12.2, 12.8, 12.4], [12.1, 12.6, 12.3]]
    >>> base = [[10.0, 10.5, 11.0], [10.2, 10.8, 10.4], [10.1, 10.3, 10.6]]
    >>> t = grouped_ratio(cur, base, line=1.10, seed=1)
    >>> round(t.ratio, 3), t.p_value < 0.01
    (1.192, True)
    """
    if not current or not baseline or not all(current) or not all(baseline):
        raise ValueError("the ratio test needs samples on both sides")
    if resamples < 100:
        raise ValueError(f"resamples must be >= 100, got {resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be within (0, 1), got {confidence}")
    base = median_of_medians(baseline)
    if base <= 0:
        raise ValueError("baseline median must be > 0 for a ratio")
    rng = np.random.default_rng(seed)
    sides = []
    for groups in (current, baseline):
        values, lengths = _padded(groups)
        chosen = rng.integers(0, len(groups), size=(resamples, len(groups)))
        sides.append(_resampled(values, lengths, chosen, rng))
    with np.errstate(divide="ignore", invalid="ignore"):
        replicates = np.where(sides[1] > 0, sides[0] / sides[1], np.inf)
    return _test(median_of_medians(current) / base, replicates, line, confidence)


# one case of the grid: (current groups, baseline groups), each group keyed by its process index
KeyedGroups = Mapping[int, Sequence[float]]


def grid_ratio(
    cases: Sequence[tuple[KeyedGroups, KeyedGroups]],
    line: float,
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> RatioTest:
    """The median, across cases, of each case's ratio of median_of_medians: the grid's statistic.

    The bootstrap draws *processes* once per replicate for every case together (a process that
    was slow was slow for all of its cases: drawing them jointly keeps that in the interval),
    then each drawn process's samples of each case. A case its drawn processes did not measure
    (one left out as busy) sits that replicate out.
    """
    if not cases:
        raise ValueError("the grid test needs at least one case")
    if resamples < 100:
        raise ValueError(f"resamples must be >= 100, got {resamples}")
    for cur, base in cases:
        if not cur or not base or not all(cur.values()) or not all(base.values()):
            raise ValueError("every case needs samples on both sides")
        if median_of_medians(list(base.values())) <= 0:
            raise ValueError("every case needs a baseline median > 0")
    rng = np.random.default_rng(seed)
    ids = [sorted({p for case in cases for p in case[side]}) for side in (0, 1)]
    drawn = [rng.integers(0, len(side), size=(resamples, len(side))) for side in ids]
    per_case = np.full((resamples, len(cases)), np.nan)
    for c, case in enumerate(cases):
        sides = []
        for s in (0, 1):
            keyed = case[s]
            order = sorted(keyed)
            values, lengths = _padded([keyed[p] for p in order])
            row_of = np.array([order.index(p) if p in keyed else -1 for p in ids[s]])
            sides.append(_resampled(values, lengths, row_of[drawn[s]], rng))
        with np.errstate(divide="ignore", invalid="ignore"):
            per_case[:, c] = sides[0] / sides[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        replicates = np.nanmedian(per_case, axis=1)
    point = median(
        [median_of_medians(list(cur.values())) / median_of_medians(list(base.values())) for cur, base in cases]
    )
    return _test(point, replicates, line, confidence)


# ----- paired samples: A and B measured in alternating processes (an A/B run) ---------------------
#
# Pair i is a process of B and the process of A next to it in time. Whatever the machine did
# meanwhile (a slow phase of the host, a laptop warming up) hits both sides of a pair alike, so
# each pair's ratio cancels it (Chromium's Pinpoint compares builds this way).


def _pair_ratios(pairs: Sequence[tuple[Sequence[float], Sequence[float]]]) -> list[float]:
    return [median(cur) / median(base) for cur, base in pairs]


def paired_ratio(
    pairs: Sequence[tuple[Sequence[float], Sequence[float]]],
    line: float,
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> RatioTest:
    """The median over pairs of each pair's ratio of medians (B / A), and a bootstrap that draws
    pairs, then each drawn pair's samples on both sides.

    >>> pairs = [([12.0, 12.4], [10.0, 10.2]), ([14.0, 14.2], [11.8, 11.6]), ([11.0, 11.2], [9.1, 9.3])]
    >>> t = paired_ratio(pairs, line=1.10, seed=3)
    >>> round(t.ratio, 3), t.p_value < 0.01
    (1.207, True)
    """
    if not pairs or not all(cur and base for cur, base in pairs):
        raise ValueError("every pair needs samples on both sides")
    if any(median(base) <= 0 for _, base in pairs):
        raise ValueError("every pair needs a reference median > 0")
    rng = np.random.default_rng(seed)
    chosen = rng.integers(0, len(pairs), size=(resamples, len(pairs)))
    sides = []
    for s in (0, 1):
        values, lengths = _padded([pair[s] for pair in pairs])
        sides.append(_per_group(values, lengths, chosen, rng))
    with np.errstate(divide="ignore", invalid="ignore"):
        per_pair = sides[0] / sides[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        replicates = np.nanmedian(per_pair, axis=1)
    return _test(median(_pair_ratios(pairs)), replicates, line, confidence)


def _per_group(values: np.ndarray, lengths: np.ndarray, chosen: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per replicate and drawn group, the median of that group's samples drawn with replacement."""
    b, g = chosen.shape
    longest = values.shape[1]
    n = lengths[chosen]
    picks = np.floor(rng.random((b, g, longest)) * n[..., None]).astype(np.int64)
    draws = values[chosen[..., None], picks]
    draws[np.arange(longest)[None, None, :] >= n[..., None]] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(np.nanmedian(draws, axis=2))


def paired_grid_ratio(
    cases: Sequence[Sequence[tuple[Sequence[float], Sequence[float]]]],
    line: float,
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> RatioTest:
    """The median across cases of each case's median pair ratio; pairs are drawn jointly for every
    case (pair i of every case is the same two processes)."""
    if not cases or not all(cases):
        raise ValueError("the grid test needs at least one case with pairs")
    n = min(len(pairs) for pairs in cases)
    rng = np.random.default_rng(seed)
    chosen = rng.integers(0, n, size=(resamples, n))
    per_case = np.full((resamples, len(cases)), np.nan)
    for c, pairs in enumerate(cases):
        sides = []
        for s in (0, 1):
            values, lengths = _padded([pair[s] for pair in pairs[:n]])
            sides.append(_per_group(values, lengths, chosen, rng))
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            per_case[:, c] = np.nanmedian(sides[0] / sides[1], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        replicates = np.nanmedian(per_case, axis=1)
    return _test(median([median(_pair_ratios(pairs)) for pairs in cases]), replicates, line, confidence)
