"""The backend as the app sees it: model load, the cold first call, and the NPU itself.

- model load must finish within 20 s (--load-budget-s);
- the first call after load (often slow: graph preparation, caches) is reported beside
  the warm median, and must not trip the 2000 ms circuit breaker on its own.

NPU section (marked ``npu``; ``-m "not npu"`` leaves it out), one test per suspected
cause of a slow NPU backend (docs/npu.md says what each means and what to do):

- ONNX Runtime QNN, on --qnn-model (default: the project's QDQ decoder block), each probe
  in a fresh process: the model runs on the NPU with no compute on the CPU; the HTP
  performance mode the EP applied is --htp-perf-mode (burst); the compile cache
  (EPContext model) is written, used and faster to load; load time and the cold first
  run against the device budgets. Here the HTP runs in simulation: the first three run
  for real, the two device-budget checks skip with the simulator's figures.
- Qualcomm Genie, with --engine genie: the bundle's backend is QnnHtp (the NPU), and its
  backend extensions file sets perf_profile to --htp-perf-mode (burst). Load time and
  the cold first call are the two tests above, on the Genie engine.

Each check skips with the reason and the install command when its runtime is missing.
"""

from __future__ import annotations

import pytest

from npuperf.engines.qnn import QnnReport
from npuperf.measure import WarmEngine
from npuperf.plugin import PerfSession


def test_model_load_within_budget(npuperf_session: PerfSession, engine: WarmEngine) -> None:
    npuperf_session.check_load(engine)


def test_cold_first_call_under_breaker(npuperf_session: PerfSession, engine: WarmEngine) -> None:
    npuperf_session.check_cold_call(engine)


# ----- NPU: ONNX Runtime + onnxruntime-qnn (HTP simulator on x86_64) -----------------------


@pytest.mark.npu
def test_qnn_runs_on_npu(npuperf_session: PerfSession, qnn: QnnReport) -> None:
    npuperf_session.check_qnn_placement(qnn)


@pytest.mark.npu
def test_qnn_perf_mode_is_burst(npuperf_session: PerfSession, qnn: QnnReport) -> None:
    npuperf_session.check_qnn_perf_mode(qnn)


@pytest.mark.npu
def test_qnn_compile_cache_effective(npuperf_session: PerfSession, qnn: QnnReport) -> None:
    npuperf_session.check_qnn_compile_cache(qnn)


@pytest.mark.npu
def test_qnn_load_within_budget(npuperf_session: PerfSession, qnn: QnnReport) -> None:
    npuperf_session.check_qnn_load(qnn)


@pytest.mark.npu
def test_qnn_cold_first_run_vs_warm(npuperf_session: PerfSession, qnn: QnnReport) -> None:
    npuperf_session.check_qnn_cold_call(qnn)


# ----- NPU: Qualcomm Genie (qai-appbuilder; with --engine genie) ---------------------------


@pytest.mark.npu
def test_genie_runs_on_npu(npuperf_session: PerfSession) -> None:
    npuperf_session.check_genie_backend()


@pytest.mark.npu
def test_genie_perf_profile_is_burst(npuperf_session: PerfSession) -> None:
    npuperf_session.check_genie_perf_profile()
