"""Where a case's latency stepped up or down across nightly runs: change points in a series.

Method: E-divisive means (Matteson & James, "A nonparametric approach for multiple change
point analysis of multivariate data", JASA 2014), the method MongoDB runs over its nightly
performance results for the same question (Daly et al., "Change Point Detection in
Software Performance Testing", ICPE 2020). Why this one: it assumes no distribution (run
medians are skewed, and a laptop's are sometimes bimodal), it finds a step wherever it
is without a window to tune, it finds several by binary segmentation, and its
significance comes from a permutation test, so its false-alarm rate is what ``alpha``
says for exchangeable runs. Measured on A/A history made here: docs/verdicts.md.

Each series is taken on a log scale (a step is a ratio). A change is reported only when it
is significant (permutation p <= ``alpha``) and material (the medians either side differ
by at least ``min_step``), with a bootstrap interval of its size.

Pure: numbers in, frozen dataclasses out. The permutations are seeded, so the same history
gives the same answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from npuperf.judge.stats import median, ratio_of_medians

MIN_SIZE = 4  # runs on each side of a change: fewer cannot tell a step from a bad night
PERMUTATIONS = 199


@dataclass(frozen=True)
class Step:
    """A change between ``values[index - 1]`` and ``values[index]``: ``ratio`` = after / before."""

    index: int
    before_median: float
    after_median: float
    ratio: float
    ci_low: float
    ci_high: float
    p_value: float

    @property
    def words(self) -> str:
        way = "up" if self.ratio > 1 else "down"
        return (
            f"stepped {way} {(self.ratio - 1) * 100:+.1f}% "
            f"(95% CI {(self.ci_low - 1) * 100:+.1f}..{(self.ci_high - 1) * 100:+.1f}%, p = {self.p_value:.3f}): "
            f"median {self.before_median:.2f} -> {self.after_median:.2f} ms"
        )


def _statistic(x: np.ndarray, min_size: int) -> tuple[int, float]:
    """(split, statistic) of the best split of ``x``: E-divisive's Q(tau, kappa), alpha = 1.

    Segment x[:tau] is compared with x[tau:kappa], the best kappa for each tau, so a step
    that is later undone (a regression, then its fix) is found as well as a lasting one.
    """
    n = len(x)
    dist = np.abs(x[:, None] - x[None, :])
    prefix = np.zeros((n + 1, n + 1))
    prefix[1:, 1:] = dist.cumsum(0).cumsum(1)
    tau, kappa = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    valid = (tau >= min_size) & (kappa - tau >= min_size)
    t, k = tau[valid], kappa[valid]
    m = k - t

    def block(a: np.ndarray | int, b: np.ndarray, c: np.ndarray | int, d: np.ndarray) -> np.ndarray:
        out: np.ndarray = prefix[b, d] - prefix[a, d] - prefix[b, c] + prefix[a, c]
        return out

    between = block(0, t, t, k)
    left = block(0, t, 0, t)
    right = block(t, k, t, k)
    q = (t * m / k) * (2 * between / (t * m) - left / (t * (t - 1)) - right / (m * (m - 1)))
    best = int(np.argmax(q))
    return int(t[best]), float(q[best])


def _significant_split(x: np.ndarray, min_size: int, permutations: int, rng: np.random.Generator) -> tuple[int, float]:
    """The best split and its permutation p-value."""
    split, observed = _statistic(x, min_size)
    beaten = sum(_statistic(rng.permutation(x), min_size)[1] >= observed for _ in range(permutations))
    return split, (beaten + 1) / (permutations + 1)


def change_points(
    values: Sequence[float],
    *,
    alpha: float = 0.01,
    min_step: float = 0.05,
    min_size: int = MIN_SIZE,
    permutations: int = PERMUTATIONS,
    seed: int = 0,
) -> list[Step]:
    """The significant, material steps of ``values`` (run medians, oldest first), in order.

    >>> [s.index for s in change_points([10.0] * 8 + [12.0] * 8)]
    [8]
    """
    if any(not (v > 0 and math.isfinite(v)) for v in values):
        raise ValueError("change points need positive, finite values (run medians in ms)")
    if not 0 < alpha < 1 or min_step < 0 or min_size < 2:
        raise ValueError(f"alpha must be in (0, 1), min_step >= 0, min_size >= 2; got {alpha}, {min_step}, {min_size}")
    logs = np.log(np.asarray(values, dtype=float))
    rng = np.random.default_rng(seed)
    splits: list[tuple[int, float]] = []
    pending = [(0, len(values))]
    while pending:  # binary segmentation: split, then look again on each side
        start, end = pending.pop()
        if end - start < 2 * min_size:
            continue
        split, p = _significant_split(logs[start:end], min_size, permutations, rng)
        if p <= alpha:
            splits.append((start + split, p))
            pending += [(start, start + split), (start + split, end)]
    bounds = sorted(s for s, _ in splits)
    steps = []
    for index, p in sorted(splits):
        position = bounds.index(index)
        lo = bounds[position - 1] if position > 0 else 0
        hi = bounds[position + 1] if position + 1 < len(bounds) else len(values)
        before, after = list(values[lo:index]), list(values[index:hi])
        test = ratio_of_medians(after, before, 1 + min_step, seed=seed + index)
        if abs(math.log(test.ratio)) >= math.log(1 + min_step):
            steps.append(Step(index, median(before), median(after), test.ratio, test.ci_low, test.ci_high, p))
    return steps
