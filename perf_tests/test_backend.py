"""The backend as the app sees it: model load, the cold first call, the NPU, and the service.

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

Service section (marker ``service``; run after every other test, so its server process
and load never share the machine with a latency case), over HTTP against --backend-url,
or, without it, against the reference server (``python -m npuperf.server``) the suite
starts on a free loopback port with the same engine and model, and stops at the end
(docs/api.md):

- health; the token-budget grid with the team's prompt 你好 under the latency budget and
  the breaker (client clock, TTFT from the SSE stream);
- /api/npu/benchmark agrees with the client's own measurement of the same request within
  --http-agreement (25%) + 10 ms;
- bad inputs get the right 4xx naming the field, and the service keeps serving;
- 4 clients x 25 requests (--http-clients, --http-requests): no lost response, no 5xx;
- HTTP overhead = client latency - the server's in-process latency, per request: reported,
  and its median must stay under --http-overhead-ms (20 ms);
- the team's seed request, byte for byte (UTF-8 你好), from Python and from curl.
"""

from __future__ import annotations

import pytest

from npuperf.measure import Loaded
from npuperf.npu.qnn import QnnReport
from npuperf.suite.service import Service
from npuperf.suite.session import PerfSession


def test_model_load_within_budget(npuperf_session: PerfSession, engine: Loaded) -> None:
    npuperf_session.latency.check_load(engine)


def test_cold_first_call_under_breaker(npuperf_session: PerfSession, engine: Loaded) -> None:
    npuperf_session.latency.check_cold_call(engine)


# ----- NPU: ONNX Runtime + onnxruntime-qnn (HTP simulator on x86_64) -----------------------


@pytest.mark.npu
def test_qnn_runs_on_npu(npuperf_session: PerfSession, qnn: QnnReport) -> None:
    npuperf_session.npu.check_qnn_placement(qnn)


@pytest.mark.npu
def test_qnn_perf_mode_is_burst(npuperf_session: PerfSession, qnn: QnnReport) -> None:
    npuperf_session.npu.check_qnn_perf_mode(qnn)


@pytest.mark.npu
def test_qnn_compile_cache_effective(npuperf_session: PerfSession, qnn: QnnReport) -> None:
    npuperf_session.npu.check_qnn_compile_cache(qnn)


@pytest.mark.npu
def test_qnn_load_within_budget(npuperf_session: PerfSession, qnn: QnnReport) -> None:
    npuperf_session.npu.check_qnn_load(qnn)


@pytest.mark.npu
def test_qnn_cold_first_run_vs_warm(npuperf_session: PerfSession, qnn: QnnReport) -> None:
    npuperf_session.npu.check_qnn_cold_call(qnn)


# ----- NPU: Qualcomm Genie (qai-appbuilder; with --engine genie) ---------------------------


@pytest.mark.npu
def test_genie_runs_on_npu(npuperf_session: PerfSession) -> None:
    npuperf_session.npu.check_genie_backend()


@pytest.mark.npu
def test_genie_perf_profile_is_burst(npuperf_session: PerfSession) -> None:
    npuperf_session.npu.check_genie_perf_profile()


# ----- the backend service over HTTP -------------------------------------------------------


@pytest.mark.service
def test_service_health(npuperf_session: PerfSession, service: Service) -> None:
    npuperf_session.service.check_health(service)


@pytest.mark.service
def test_http_latency(npuperf_session: PerfSession, service: Service, npuperf_http_budget: int) -> None:
    npuperf_session.service.check_http_case(service, npuperf_http_budget)


@pytest.mark.service
def test_benchmark_endpoint_agrees_with_client(npuperf_session: PerfSession, service: Service) -> None:
    npuperf_session.service.check_benchmark_agreement(service)


@pytest.mark.service
def test_bad_inputs_get_4xx_and_service_keeps_serving(npuperf_session: PerfSession, service: Service) -> None:
    npuperf_session.service.check_bad_inputs(service)


@pytest.mark.service
def test_concurrent_clients_lose_nothing(npuperf_session: PerfSession, service: Service) -> None:
    npuperf_session.service.check_concurrency(service)


@pytest.mark.service
def test_http_overhead(npuperf_session: PerfSession, service: Service) -> None:
    npuperf_session.service.check_http_overhead(service)


@pytest.mark.service
def test_seed_request_byte_for_byte(npuperf_session: PerfSession, service: Service) -> None:
    npuperf_session.service.check_seed_request(service)
