"""The NPU section of perf_tests/test_backend.py end to end, through pytester.

The QNN checks run for real on the HTP backend (simulated on x86_64); the Genie checks
run the genie engine against tests/fake_qai_appbuilder.py (contract tests: there is no
qai-appbuilder wheel for this machine).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import fake_qai_appbuilder as fake
import pytest

from conftest import build_fallback_block, copy_suite, needs_onnx
from npuperf.npu import qnn

TESTS = Path(__file__).parent
ROOT = TESTS.parent

INI = """
[pytest]
addopts = -p npuperf.plugin -p no:cacheprovider -m "not service"
npuperf_engine = fake
npuperf_model = prefill_ms=2,token_ms=0.5
npuperf_token_budgets = 4,8
npuperf_prompt_lengths = 8
npuperf_team_prompts = none
npuperf_repetitions = 3
npuperf_warmup = 1
npuperf_qnn_model = {block}
npuperf_qnn_runs = 2
npuperf_results_json = reports/results.json
npuperf_confirm_pause_s = 0
filterwarnings = default
"""

needs_qnn = pytest.mark.skipif(qnn.available() is not None, reason=f"onnxruntime-qnn missing: {qnn.available()}")


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    return copy_suite(pytester, monkeypatch, INI.format(block=ROOT / "models" / "qnn-block" / "model.onnx"))


def run(suite: pytest.Pytester, *args: str) -> pytest.RunResult:
    return suite.runpytest("perf_tests", "-p", "no:randomly", "-rs", *args)


@needs_qnn
@pytest.mark.slow
def test_qnn_checks_run_on_the_simulator_and_pass(suite: pytest.Pytester) -> None:
    result = run(suite, "-m", "npu")
    # placement, perf mode, cache pass; load and cold run skip (simulator); 2 Genie checks skip
    result.assert_outcomes(passed=3, skipped=4)
    result.stdout.fnmatch_lines(
        [
            "*OK  qnn-block/model.onnx: * nodes (*) and *% of kernel time on the HTP simulator*; no compute on the CPU",
            "*OK  qnn-block/model.onnx: HTP performance mode applied by the EP: burst "
            "(configured: burst; required: burst)",
            "*OK  compile cache effective: cold compile * ms, writing the context model * ms, load from cache * ms "
            "(HTP simulator); cached load is x*",
            "*QNN timings are HTP simulator timings*",
            "*HTP simulator: cold session creation (compile) took * s here; simulator timings are reported, "
            "not checked against the 20 s device budget",
            "*HTP simulator: first run * ms; warm median * ms (cold is x*); simulator timings are reported*",
            "*the engine under test is 'fake'; the Genie checks run with --engine genie --model*",
        ]
    )
    doc = json.loads((suite.path / "reports" / "results.json").read_text(encoding="utf-8"))
    entry = doc["session"]["qnn"]
    assert entry["cold"]["simulated"] is (entry["cold"]["device_type"] != "NPU")
    assert entry["cold"]["applied_perf_mode"] == "burst"
    assert entry["cached"]["uses_context"] is True
    assert {c["name"] for c in doc["session"]["backend_checks"]} == {"runs on NPU", "perf mode", "compile cache"}


@needs_qnn
@pytest.mark.slow
@needs_onnx
def test_a_cpu_fallback_fails_the_placement_check_naming_the_node(suite: pytest.Pytester, tmp_path: Path) -> None:
    model = build_fallback_block(tmp_path / "erf-block")
    result = run(suite, "-m", "npu", f"--qnn-model={model}", "-k", "runs_on_npu")
    result.assert_outcomes(failed=1, skipped=1)
    result.stdout.fnmatch_lines(
        ["*erf-block/model.onnx: 1 compute node(s) fell back to the CPU: mlp/erf (Erf on CPUExecutionProvider)*"]
    )


@needs_qnn
def test_a_missing_qnn_model_fails_naming_it(suite: pytest.Pytester) -> None:
    result = run(suite, "-m", "npu", "--qnn-model=nowhere/model.onnx", "-k", "qnn")
    result.assert_outcomes(errors=5)
    result.stdout.fnmatch_lines(["*QNN checks on nowhere/model.onnx: ONNX model * does not exist*"])
    result.stdout.no_fnmatch_line("*During handling of the above exception*")


def test_qnn_checks_skip_with_install_hint_when_the_runtime_is_missing(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(qnn, "available", lambda: "cannot import onnxruntime_qnn (No module named 'onnxruntime_qnn')")
    result = run(suite, "-m", "npu", "-k", "qnn")
    result.assert_outcomes(skipped=5)
    result.stdout.fnmatch_lines(
        ["*the QNN checks need onnxruntime-qnn: cannot import*install it with: pip install onnxruntime-qnn"]
    )


def test_qnn_model_none_turns_the_qnn_checks_off(suite: pytest.Pytester) -> None:
    result = run(suite, "-m", "npu", "--qnn-model=none", "-k", "qnn")
    result.assert_outcomes(skipped=5)
    result.stdout.fnmatch_lines(["*--qnn-model is 'none': the QNN checks are off"])


# ----- Genie through the whole suite (contract-tested with the fake) -----------------------


@pytest.fixture
def genie_suite(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    fake.reset()
    monkeypatch.setitem(sys.modules, "qai_appbuilder", fake)
    shutil.copytree(TESTS / "data" / "genie" / "bundle", suite.path / "Qwen2.0-7B-SSD")
    return suite


# The fake qai_appbuilder lives in this process's sys.modules: the suite measures here (--processes 0)
GENIE = ("--engine=genie", "--model=Qwen2.0-7B-SSD/genie_config.json", "--qnn-model=none", "--processes=0")


def test_contract_genie_suite_measures_every_case_and_checks_the_bundle(genie_suite: pytest.Pytester) -> None:
    result = run(genie_suite, *GENIE)
    # 2 cases + load + cold + 2 Genie checks pass; grid (no baseline) and 5 QNN checks skip
    result.assert_outcomes(passed=6, skipped=6, warnings=2)
    result.stdout.fnmatch_lines(
        [
            "*engine genie (QnnHtp), model Qwen2.0-7B-SSD*",
            "*OK  genie_config.json: engine backend 'QnnHtp' (the Hexagon NPU), dialog ssd-q1, context 4096",
            "*OK  htp_backend_ext_config.json: perf_profile burst (required: burst)",
        ]
    )
    doc = json.loads((genie_suite.path / "reports" / "results.json").read_text(encoding="utf-8"))
    assert doc["environment"]["Timing source"].startswith("latency: client perf_counter_ns; TTFT and TPOT: Genie")
    assert doc["environment"]["Engine dialog_type"] == "ssd-q1"
    assert doc["environment"]["Engine perf_profile"] == "burst"
    assert doc["environment"]["Engine device_init_ms"] == "1500.0"
    assert [c["tokens_generated"] for c in doc["cases"]] == [[4, 4], [8, 8]]
    reported = doc["cases"][0]["runtime_reported"]
    assert reported["device_generated_tokens"] == 4
    # TTFT is on the client timeline: the setup before the query (SetParams), then Genie's own
    # time to first token (the prefill phase); the setup is small but not zero, so the two are
    # compared phase by phase, not within a tolerance of each other
    phases = doc["cases"][0]["phases_ms"]
    assert phases["median"]["prefill"] == pytest.approx(reported["device_ttft_ms"], abs=0.001)
    for ttft, rep in zip(doc["cases"][0]["samples"]["ttft_ms"], phases["per_repetition"], strict=True):
        assert ttft == pytest.approx(rep["setup"] + rep["prefill"], abs=0.002)
    result.stdout.fnmatch_lines(
        ["*t4-p8: TTFT * ms from the runtime's profile (device clock); first text seen by the client at * ms*"]
    )


def test_contract_genie_perf_profile_not_burst_fails_naming_file_and_value(genie_suite: pytest.Pytester) -> None:
    ext = genie_suite.path / "Qwen2.0-7B-SSD" / "htp_backend_ext_config.json"
    doc = json.loads(ext.read_text(encoding="utf-8"))
    doc["devices"][0]["cores"][0]["perf_profile"] = "balanced"
    ext.write_text(json.dumps(doc), encoding="utf-8")
    result = run(genie_suite, *GENIE, "-m", "npu", "-k", "genie")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*htp_backend_ext_config.json: perf_profile balanced (required: burst)"])


def test_contract_genie_early_stop_is_reported_per_case(genie_suite: pytest.Pytester) -> None:
    fake.SIM.eos_after = 3
    result = run(genie_suite, *GENIE, "-m", "not npu and not service")
    result.assert_outcomes(passed=4, skipped=1, warnings=2)
    result.stdout.fnmatch_lines(["t4-p8 *3 *", "t8-p8 *3 *", "*t4-p8: 3 repetition(s) stopped before the budget*"])


def test_contract_genie_missing_runtime_skips_with_install_hint(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "qai_appbuilder", None)
    shutil.copytree(TESTS / "data" / "genie" / "bundle", suite.path / "Qwen2.0-7B-SSD")
    result = run(suite, *GENIE, "--genie-backend=appbuilder", "-k", "genie or test_model_load")
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines(
        ["*engine 'genie' is unavailable: cannot import qai_appbuilder*pip install qai-appbuilder*"]
    )


def test_contract_genie_overshoot_is_noted(genie_suite: pytest.Pytester) -> None:
    fake.SIM.accept = 3
    result = run(genie_suite, *GENIE, "-m", "not npu and not service")
    result.assert_outcomes(passed=4, skipped=1, warnings=2)
    result.stdout.fnmatch_lines(["*t8-p8: 3 repetition(s) generated more tokens than the budget (up to 10;*"])


def test_contract_genie_decode_burning_cpu_cores_fails_naming_the_case_and_the_cause(
    genie_suite: pytest.Pytester,
) -> None:
    fake.SIM.burn_threads = 2  # a "fallback": two cores busy while Genie generates
    fake.SIM.token_us = 4000  # long enough for the CPU clock to see it
    result = run(genie_suite, *GENIE, "--max-cpu-cores=1.2", "-k", "test_latency")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*: decode kept * CPU cores busy (over --max-cpu-cores 1.2: with the model on the NPU the CPU should "
            "stay nearly idle*CPU fallback*",
        ]
    )


def test_contract_genie_decode_that_leaves_the_cpu_idle_passes_the_cpu_check(genie_suite: pytest.Pytester) -> None:
    fake.SIM.token_us = 4000
    result = run(genie_suite, *GENIE, "-k", "test_latency", "--results-json=out.json")
    result.assert_outcomes(passed=2, skipped=1, warnings=2)
    doc = json.loads((genie_suite.path / "out.json").read_text(encoding="utf-8"))
    cpu = [c for case in doc["cases"] for c in case["checks"] if c["name"] == "CPU during decode"]
    assert len(cpu) == 2
    assert all(c["outcome"] == "ok" and c["value"] < 0.5 for c in cpu), cpu
