"""Latency per token budget x prompt length, against the budget, the breaker and the baseline.

Each case is measured up front by --processes fresh processes (--repetitions generations in
each; pytest-benchmark's tables replay them), and fails with the number, the limit and the case when:
- the median latency is over its budget (500 ms unless overridden per case),
- any single request would trip the 2000 ms circuit breaker,
- latency, TTFT or TPOT is slower than the accepted baseline: above the materiality
  threshold max(10%, 2 x the baseline's noise floor), significant after Holm's correction
  over the grid, and again when re-measured in new processes (confirm-on-fail); see docs/verdicts.md.
A case measured while other processes kept the machine busy is measured again once it is quiet;
if it stays busy and the load could explain its figures, it is NOT JUDGED (neither passed nor failed).
The last test asks whether the grid as a whole is slower (3% threshold).
"""

from __future__ import annotations

from typing import Any

import pytest

from npuperf.judge.baselines import Lookup
from npuperf.measure import CaseSpec, Loaded
from npuperf.suite.session import PerfSession


def test_latency(
    npuperf_session: PerfSession,
    engine: Loaded,
    baseline: Lookup,
    npuperf_case: CaseSpec,
    benchmark: Any,
    request: pytest.FixtureRequest,
) -> None:
    npuperf_session.latency.report(engine, baseline, npuperf_case, benchmark, request.node)


def test_grid_latency_vs_baseline(npuperf_session: PerfSession, engine: Loaded, baseline: Lookup) -> None:
    """After every case: is the grid as a whole slower (the median case's ratio)?

    Catches small slowdowns that hit every case, below what one case can show.
    """
    npuperf_session.latency.report_grid(engine, baseline)
