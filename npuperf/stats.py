"""Pure statistics over latency samples. No I/O, no pytest.

Percentiles use linear interpolation between closest ranks (numpy's default "linear"
method), so p50 of [1, 2, 3, 4] is 2.5 and results match numpy.percentile.
"""

from __future__ import annotations

import math
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
