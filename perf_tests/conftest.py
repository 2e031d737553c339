"""Session fixtures of the suite: the grid is measured once, then shared.

The work is done by npuperf's sections (``npuperf_session.latency.load()``: --processes fresh
worker processes, each loading the model, making its cold first call, warming up and measuring
every selected case); these fixtures give it the names the tests use. Choose the engine and
model with --engine / --model (or npuperf_engine / npuperf_model in pytest.ini).
"""

from __future__ import annotations

import pytest

from npuperf.judge.baselines import Lookup
from npuperf.measure import Loaded
from npuperf.npu.qnn import QnnReport
from npuperf.suite.service import Service
from npuperf.suite.session import PerfSession


@pytest.fixture(scope="session")
def engine(npuperf_session: PerfSession) -> Loaded:
    """The engine as each process loaded it (load time, the cold first call, --warmup calls before
    any measured case), with the grid measured."""
    return npuperf_session.latency.load()


@pytest.fixture(scope="session")
def baseline(npuperf_session: PerfSession, engine: Loaded) -> Lookup:
    """The accepted baseline for this device x engine x model (or why there is none)."""
    return npuperf_session.latency.baseline(engine)


@pytest.fixture(scope="session")
def qnn(npuperf_session: PerfSession) -> QnnReport:
    """--qnn-model probed once per session in fresh processes: cold compile, writing the
    compile cache, loading from it; placement, perf mode and timings of each."""
    return npuperf_session.npu.qnn_report()


@pytest.fixture(scope="session")
def service(npuperf_session: PerfSession) -> Service:
    """The backend service: --backend-url, or the reference server started on a free loopback
    port for the session (same engine and model) and stopped at its end."""
    return npuperf_session.service.connect()
