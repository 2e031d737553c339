"""Latency per token budget x prompt length, against the budget, the breaker and the baseline.

Each case runs --repetitions generations through pytest-benchmark's pedantic mode, keeps
a timestamp per token, and fails with the number, the limit and the case when:
- the median latency is over its budget (500 ms unless overridden per case),
- any single request would trip the 2000 ms circuit breaker,
- it is slower than the accepted baseline beyond the tolerance (10%, and more than 1 ms),
  on its first run and again when re-measured (confirm-on-fail).
"""

from __future__ import annotations

from typing import Any

import pytest

from npuperf.baselines import Lookup
from npuperf.measure import WarmEngine
from npuperf.plugin import CaseSpec, PerfSession


def test_latency(
    npuperf_session: PerfSession,
    engine: WarmEngine,
    baseline: Lookup,
    npuperf_case: CaseSpec,
    benchmark: Any,
    request: pytest.FixtureRequest,
) -> None:
    case = npuperf_session.case(engine, npuperf_case)
    result = npuperf_session.measure(engine, case, benchmark)
    npuperf_session.verify(engine, result, baseline, request.node)
