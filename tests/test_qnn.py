"""QNN probes on the real HTP backend (simulated on x86_64), and the NPU decisions."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT, build_fallback_block, needs_onnx
from npuperf.engines.base import ModelError
from npuperf.judge.verdict import Outcome
from npuperf.npu import checks as npu_checks
from npuperf.npu import qnn
from npuperf.npu.qnn import EP, CompileCache, NodePlacement, Placement, Probe

BLOCK = ROOT / "models" / "qnn-block" / "model.onnx"
CPU = "CPUExecutionProvider"

needs_qnn = pytest.mark.skipif(qnn.available() is not None, reason=f"onnxruntime-qnn missing: {qnn.available()}")


def make_probe(nodes: list[tuple[str, str, str]], **kw: object) -> Probe:
    fields: dict[str, object] = {
        "model": "models/qnn-block/model.onnx",
        "simulated": True,
        "device_type": "CPU",
        "requested_perf_mode": "burst",
        "applied_perf_mode": "burst",
        "provider_options": {"htp_performance_mode": "burst"},
        "session_s": 0.2,
        "run_ms": (90.0, 70.0, 72.0),
        "placement": Placement(nodes=tuple(NodePlacement(*n) for n in nodes), kernel_us={EP: 900.0, CPU: 100.0}),
        "versions": {"onnxruntime": "x"},
    }
    fields.update(kw)
    return Probe(**fields)  # type: ignore[arg-type]


ALL_ON_QNN = [
    ("in_q", "QuantizeLinear", CPU),
    ("mm", "MatMul", EP),
    ("sm", "Softmax", EP),
    ("out_dq", "DequantizeLinear", CPU),
]


# ----- pure ------------------------------------------------------------------------------


def test_placement_counts_nodes_and_kernel_time_and_allows_boundary_qdq() -> None:
    p = make_probe(ALL_ON_QNN).placement
    assert (p.node_share, p.time_share, p.fallback) == (0.5, 0.9, ())


def test_placement_check_passes_with_shares_in_the_message() -> None:
    check = npu_checks.qnn_placement(make_probe(ALL_ON_QNN))
    assert check.outcome is Outcome.OK
    assert "2 of 4 nodes (50.0%) and 90.0% of kernel time on the HTP simulator" in check.message


def test_placement_check_fails_naming_every_fallback_node() -> None:
    nodes = [*ALL_ON_QNN, ("mlp/erf", "Erf", CPU), ("mlp/erf_q", "QuantizeLinear", CPU), ("odd", "Hardmax", CPU)]
    check = npu_checks.qnn_placement(make_probe(nodes))
    assert check.failed
    assert (
        "2 compute node(s) fell back to the CPU: mlp/erf (Erf on CPUExecutionProvider), odd (Hardmax" in check.message
    )


def test_placement_check_lists_at_most_a_dozen_nodes() -> None:
    nodes = [(f"n{i}", "Erf", CPU) for i in range(15)]
    assert "and 3 more" in npu_checks.qnn_placement(make_probe(nodes)).message


@pytest.mark.parametrize(
    ("applied", "required", "outcome"),
    [("burst", "burst", Outcome.OK), ("balanced", "burst", Outcome.FAILED), (None, "burst", Outcome.INCONCLUSIVE)],
)
def test_perf_mode_check(applied: str | None, required: str, outcome: Outcome) -> None:
    check = npu_checks.qnn_perf_mode(make_probe(ALL_ON_QNN, applied_perf_mode=applied), required)
    assert check.outcome is outcome
    assert f"required: {required}" in check.message or "cannot confirm burst" in check.message


def test_applied_perf_mode_is_read_from_the_eps_own_log_lines() -> None:
    log = (
        "[V:onnxruntime:, qnn_execution_provider.cc:176 ParseHtpPerformanceMode] Htp performance mode: burst\n"
        "[V:onnxruntime:, qnn_htp_power_config_manager.cc:109 AddHtpPerformanceMode] Updating htp performance mode to: "
        "burst.\n"
    )
    assert qnn.applied_perf_mode(log) == "burst"
    kept = "AddHtpPerformanceMode] Requested htp performance mode is the same as last set (default). Ignoring request"
    assert qnn.applied_perf_mode(kept) == "default"
    # the parsed option alone is not evidence that the HTP was set
    assert qnn.applied_perf_mode("ParseHtpPerformanceMode] Htp performance mode: burst") is None


def _cache(cached_nodes: list[tuple[str, str, str]], cold_s: float, cached_s: float) -> CompileCache:
    cold = make_probe(ALL_ON_QNN, session_s=cold_s)
    return CompileCache(
        cold=cold,
        generate=make_probe(ALL_ON_QNN, context_written="/tmp/x_ctx.onnx"),
        cached=make_probe(cached_nodes, session_s=cached_s),
        context_model="/tmp/x_ctx.onnx",
        context_bytes=1000,
    )


def test_compile_cache_check_needs_the_context_node_and_a_faster_load() -> None:
    ctx_nodes = [("in_q", "QuantizeLinear", CPU), ("ctx", "EPContext", EP)]
    ok = npu_checks.qnn_compile_cache(_cache(ctx_nodes, 0.2, 0.05))
    assert ok.outcome is Outcome.OK
    assert "cold compile 200 ms" in ok.message
    assert "load from cache 50 ms" in ok.message
    assert "x4.0" in ok.message
    unused = npu_checks.qnn_compile_cache(_cache(ALL_ON_QNN, 0.2, 0.05))
    assert unused.failed
    assert "without a precompiled EPContext node" in unused.message
    slower = npu_checks.qnn_compile_cache(_cache(ctx_nodes, 0.2, 0.3))
    assert slower.failed
    assert "NOT faster" in slower.message


def test_probe_rejects_bad_arguments_before_starting_a_process(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="htp performance mode 'turbo' is not one of burst, balanced"):
        qnn.probe(BLOCK, perf_mode="turbo")
    with pytest.raises(ModelError, match="does not exist"):
        qnn.probe(tmp_path / "missing.onnx")


def test_probe_failure_carries_the_exit_status_and_log_tail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(qnn.ProbeError, match=r"QNN probe of .*bad.onnx' failed \(exit 1\):"):
        qnn.probe(bad)


# ----- real probes on the HTP backend (simulator here) -----------------------------------


@pytest.fixture(scope="module")
def block_report(tmp_path_factory: pytest.TempPathFactory) -> qnn.QnnReport:
    if qnn.available() is not None:
        pytest.skip(f"onnxruntime-qnn missing: {qnn.available()}")
    return qnn.report(BLOCK, "burst", runs=3, workdir=tmp_path_factory.mktemp("qnn-cache"))


@needs_qnn
def test_block_runs_entirely_on_qnn_in_burst_mode(block_report: qnn.QnnReport) -> None:
    cold = block_report.cold
    assert cold.placement.fallback == ()
    assert cold.placement.time_share > 0.9
    assert cold.applied_perf_mode == "burst"
    assert cold.provider_options["htp_performance_mode"] == "burst"
    assert len(cold.run_ms) == 3
    assert npu_checks.qnn_placement(cold).outcome is Outcome.OK


@needs_qnn
def test_simulator_is_labelled_as_such(block_report: qnn.QnnReport) -> None:
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("only x86_64 is known to run the HTP in simulation")
    assert block_report.cold.simulated
    assert block_report.cold.device_type == "CPU"
    assert "simulator" in block_report.cold.clock


@needs_qnn
def test_compile_cache_is_written_then_used(block_report: qnn.QnnReport) -> None:
    cache = block_report.cache
    assert Path(cache.context_model).is_file()
    assert Path(cache.context_model).parent.name == "npuperf-qnn-model"  # a folder of the suite's own
    assert cache.cached.uses_context
    assert not cache.cold.uses_context
    assert cache.context_bytes > 0


@needs_qnn
def test_a_requested_mode_other_than_burst_is_what_the_ep_applies(tmp_path: Path) -> None:
    probe = qnn.probe(BLOCK, perf_mode="balanced", runs=1)
    assert probe.applied_perf_mode == "balanced"
    assert npu_checks.qnn_perf_mode(probe, "burst").failed


@needs_qnn
@pytest.mark.slow
@needs_onnx
def test_an_unsupported_op_falls_back_and_is_named(tmp_path: Path) -> None:
    model = build_fallback_block(tmp_path / "erf")
    check = npu_checks.qnn_placement(qnn.probe(model, runs=1))
    assert check.failed
    assert "mlp/erf (Erf on CPUExecutionProvider)" in check.message


def test_probe_inputs_are_seeded_floats_and_integer_zeros() -> None:
    from types import SimpleNamespace

    feeds = qnn._feeds(
        [
            SimpleNamespace(name="x", shape=[1, 4], type="tensor(float)"),
            SimpleNamespace(name="ids", shape=[1, 4], type="tensor(int64)"),
        ]
    )
    assert feeds["x"].dtype.name == "float32"
    assert feeds["ids"].tolist() == [[0, 0, 0, 0]]
    with pytest.raises(RuntimeError, match=r"input 'ids' has a dynamic shape \['batch', 4\]; QNN needs static"):
        qnn._feeds([SimpleNamespace(name="ids", shape=["batch", 4], type="tensor(int64)")])
    with pytest.raises(RuntimeError, match=r"input 's' has type tensor\(string\)"):
        qnn._feeds([SimpleNamespace(name="s", shape=[1], type="tensor(string)")])


@needs_qnn
def test_a_cache_dir_keeps_the_users_own_files(tmp_path: Path) -> None:
    mine = tmp_path / "model_ctx.onnx"
    mine.write_bytes(b"the user's file, not the suite's")
    qnn.report(BLOCK, "burst", runs=1, workdir=tmp_path)
    assert mine.read_bytes() == b"the user's file, not the suite's"
