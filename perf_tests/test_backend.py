"""The backend as the app sees it: model load time and the cold first call.

- model load must finish within 20 s (--load-budget-s);
- the first call after load (often slow: graph preparation, caches) is reported beside
  the warm median, and must not trip the 2000 ms circuit breaker on its own.
"""

from __future__ import annotations

from npuperf.measure import WarmEngine
from npuperf.plugin import PerfSession


def test_model_load_within_budget(npuperf_session: PerfSession, engine: WarmEngine) -> None:
    npuperf_session.check_load(engine)


def test_cold_first_call_under_breaker(npuperf_session: PerfSession, engine: WarmEngine) -> None:
    npuperf_session.check_cold_call(engine)
