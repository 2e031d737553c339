"""Qualcomm Genie for real: its C API (the library onnxruntime-qnn ships) running the embedded
genie-tiny bundle on the HTP simulator. Every behaviour the AppBuilder backend's contract tests
check on the fake (tests/test_genie_contract.py) is checked here on the real runtime."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ROOT
from npuperf.engines.base import EngineError, ModelError
from npuperf.engines.genie.capi import CAPI_CLOCK, GenieError, GenieLibrary, library_path
from npuperf.engines.genie.engine import BackendChoice, GenieEngine
from npuperf.engines.genie.profile import parse_profile
from npuperf.measure import Case, measure_case
from npuperf.models import genie_build, genie_model
from npuperf.prompts import corpus_prompt, team_prompt

BUNDLE = ROOT / "models" / "genie-tiny"
CONFIG = BUNDLE / "genie_config.json"
RECORDED = ROOT / "tests" / "data" / "genie" / "profile-genie-tiny-simulator.json"

pytest.importorskip("onnxruntime_qnn", reason="Genie's library ships in the onnxruntime-qnn wheel")


@pytest.fixture(scope="module")
def genie() -> Iterator[GenieEngine]:
    engine = GenieEngine(CONFIG, BackendChoice(backend="capi", perf_mode="burst"))
    engine.load()
    yield engine
    engine.close()


def copy_bundle(tmp_path: Path) -> Path:
    target = tmp_path / "genie-tiny"
    shutil.copytree(BUNDLE, target)
    return target


# ----- what a generation reports --------------------------------------------------------------


@pytest.mark.parametrize("budget", [1, 8, 64])
def test_exactly_the_budget_with_one_client_timestamp_per_token(genie: GenieEngine, budget: int) -> None:
    prompt = corpus_prompt(genie.tokenizer, 16)
    g = genie.generate(prompt.text, budget)
    profile = parse_profile(genie.backend.dialog.profile_json())  # type: ignore[union-attr]
    assert (g.new_tokens, g.stop_reason, g.complete, g.over_budget) == (budget, "budget", True, False)
    assert profile.generated_tokens == budget  # Genie counts what the callbacks delivered
    assert profile.prompt_tokens == g.prompt_tokens == 16  # the suite's tokenizer agrees with Genie's
    assert g.clock == CAPI_CLOCK
    assert list(g.token_ns) == sorted(g.token_ns)
    assert g.device["client_callbacks"] == budget
    assert list(g.phases) == ["setup", "prefill", "decode", "finish"]
    assert sum(g.phases.values()) == pytest.approx(g.latency_ms, abs=0.01)


def test_decode_time_in_the_profile_covers_the_tokens_after_the_first(genie: GenieEngine) -> None:
    genie.generate(team_prompt(genie.tokenizer, "analyze-zh").text, 32)
    profile = parse_profile(genie.backend.dialog.profile_json())  # type: ignore[union-attr]
    assert profile.generation_tps is not None
    # token-generation-rate = (n - 1) / token-generation-time: TPOT = time / (n - 1)
    assert profile.generation_tps == pytest.approx(31 / (profile.generation_us / 1e6), rel=1e-3)


def test_client_ttft_includes_genie_own_ttft(genie: GenieEngine) -> None:
    g = genie.generate(corpus_prompt(genie.tokenizer, 64).text, 4)
    assert g.ttft_ms >= g.device["device_ttft_ms"] * 0.95  # the client's clock starts before Genie's


def test_the_same_prompt_gives_the_same_tokens_every_time(genie: GenieEngine) -> None:
    texts = {genie.generate("你好", 12).text for _ in range(3)}
    assert len(texts) == 1  # greedy, and reset before every query: the same work each repetition


def test_the_suite_measures_a_case_on_real_genie(genie: GenieEngine) -> None:
    result = measure_case(genie, Case(8, team_prompt(genie.tokenizer, "greeting-zh")), repetitions=3)
    assert result.tokens_generated == (8, 8)
    assert result.stopped_early == 0


def test_a_stop_sequence_ends_the_generation_early_and_the_count_is_real(genie: GenieEngine) -> None:
    full = genie.generate("hello", 12).text
    dialog = genie.backend.dialog  # type: ignore[union-attr]
    dialog.set_stop_sequences([full[4:6]])
    try:
        g = genie.generate("hello", 12)
    finally:
        dialog.set_stop_sequences([])
    assert g.new_tokens < 12
    assert (g.stop_reason, g.complete) == ("eos", False)
    assert full.startswith(g.text[: len(g.text) - 2])


def test_an_exception_from_on_token_aborts_the_query_and_the_dialog_still_works(genie: GenieEngine) -> None:
    class Gone(Exception):
        pass

    calls: list[int] = []

    def hang_up() -> None:
        calls.append(1)
        if len(calls) == 3:
            raise Gone("client left")

    with pytest.raises(Gone):
        genie.generate("hello", 200, on_token=hang_up)
    assert len(calls) == 3
    assert genie.generate("hello", 5).new_tokens == 5


# ----- the performance policy ------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["burst", "power_saver", "balanced"])
def test_the_performance_policy_is_applied_and_read_back(mode: str) -> None:
    engine = GenieEngine(CONFIG, BackendChoice(backend="capi", perf_mode=mode))
    engine.load()
    try:
        assert engine.info.details["performance policy"] == mode
        assert engine.info.config["performance policy"] == mode  # part of the baseline's provenance
    finally:
        engine.close()


# ----- bad inputs: one line naming the file or field ----------------------------------------------


def test_a_missing_context_binary_is_named_before_genie_runs(tmp_path: Path) -> None:
    bundle = copy_bundle(tmp_path)
    (bundle / "genie-tiny_qnn.bin").unlink()
    with pytest.raises(ModelError, match=r"context binary 'genie-tiny_qnn.bin' not found"):
        GenieEngine(bundle / "genie_config.json", BackendChoice(backend="capi")).load()


def test_a_config_with_a_typo_is_named_by_genie(tmp_path: Path) -> None:
    bundle = copy_bundle(tmp_path)
    doc = json.loads((bundle / "genie_config.json").read_text(encoding="utf-8"))
    doc["dialog"]["sampler"]["top_k"] = doc["dialog"]["sampler"].pop("top-k")
    (bundle / "genie_config.json").write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ModelError) as info:
        GenieEngine(bundle / "genie_config.json", BackendChoice(backend="capi")).load()
    message = str(info.value)
    assert "GenieDialogConfig_createFromJson failed: ERROR_JSON_SCHEMA (-8)" in message
    assert "additional property 'top_k'" in message
    assert "\n" not in message


def test_a_corrupt_context_binary_is_one_line(tmp_path: Path) -> None:
    bundle = copy_bundle(tmp_path)
    (bundle / "genie-tiny_qnn.bin").write_bytes(b"\0" * 4096)
    with pytest.raises(ModelError, match=r"GenieDialog_create failed: ERROR_GENERAL \(-1\)") as info:
        GenieEngine(bundle / "genie_config.json", BackendChoice(backend="capi")).load()
    assert "\n" not in str(info.value)


def test_a_model_with_the_wrong_io_names_is_refused_naming_the_tensor(tmp_path: Path) -> None:
    import onnx

    bundle = copy_bundle(tmp_path)
    model = onnx.load(str(bundle / genie_model.QIO))
    for node in model.graph.node:
        node.input[:] = ["mask" if i == "attention_mask" else i for i in node.input]
    (mask,) = [i for i in model.graph.input if i.name == "attention_mask"]
    mask.name = "mask"
    onnx.save(model, str(bundle / "renamed.onnx"))
    genie_model.compile_context(bundle / "renamed.onnx", bundle, "genie-tiny", {})
    with pytest.raises(ModelError) as info:
        GenieEngine(bundle / "genie_config.json", BackendChoice(backend="capi")).load()
    assert "Could not find attention mask tensor" in str(info.value)
    assert "\n" not in str(info.value)


def test_a_prompt_longer_than_the_context_is_one_line(genie: GenieEngine) -> None:
    prompt = corpus_prompt(genie.tokenizer, 600)
    with pytest.raises(EngineError) as info:
        genie.generate(prompt.text, 8)
    assert str(info.value) == (
        "Genie: a 600-token prompt with 8 new tokens exceeds the model's context of 512 tokens "
        "(dialog.context.size in genie_config.json)"
    )
    assert genie.generate("hello", 3).new_tokens == 3  # and the dialog is still usable


def test_another_genie_library_is_named_when_missing() -> None:
    with pytest.raises(EngineError, match=r"--genie-lib '/nowhere/libGenie.so': no such file"):
        library_path("/nowhere/libGenie.so")


def test_a_library_that_is_not_genie_is_named() -> None:
    import ctypes.util

    libm = ctypes.util.find_library("m")
    if libm is None:
        pytest.skip("no C math library to stand in for a wrong --genie-lib")
    with pytest.raises(EngineError, match=r"is not a Genie library \(it has no GenieDialog_create\)"):
        GenieLibrary(Path(libm))


def test_a_failing_call_names_the_call_the_status_and_genie_log() -> None:
    lib = GenieLibrary.load(library_path())
    with pytest.raises(GenieError) as info:
        lib.call("GenieDialogConfig_createFromJson", b"{not json", None)
    assert info.value.call == "GenieDialogConfig_createFromJson"
    assert info.value.status < 0


# ----- the bundle ------------------------------------------------------------------------------


@pytest.mark.slow
def test_genie_and_onnx_runtime_on_the_cpu_generate_the_same_tokens() -> None:
    tokens = genie_build.check(BUNDLE, genie_model.GenieRecipe())
    assert len(tokens) == genie_build.CHECK_TOKENS


@pytest.mark.slow
def test_the_committed_bundle_rebuilds_byte_for_byte(tmp_path: Path) -> None:
    # in a fresh process, as a user rebuilds it: ONNX Runtime numbers the graphs it compiles
    # per process, and that number is in the binary
    out = tmp_path / "genie-tiny"
    cmd = [sys.executable, "-m", "npuperf", "synth", "genie-tiny", "--out", str(out)]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, timeout=300)
    for file in sorted(BUNDLE.iterdir()):
        assert (out / file.name).read_bytes() == file.read_bytes(), f"{file.name} differs"
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in BUNDLE.iterdir())


def test_the_recorded_profile_is_what_genie_writes() -> None:
    doc = json.loads(RECORDED.read_text(encoding="utf-8"))
    assert doc["header"]["artifact_type"] == "GENIE_PROFILE"
    assert [e["type"] for e in doc["components"][0]["events"]] == [
        "GenieDialog_create",
        "GenieDialog_query",
        "GenieDialog_query",
    ]


# ----- the reference server serves it ------------------------------------------------------------


def test_the_reference_server_serves_real_genie_and_a_hang_up_aborts_the_query() -> None:
    import httpx
    from attack.conftest import disconnect_after_first_bytes, wait_until

    from conftest import serving

    engine = GenieEngine(CONFIG, BackendChoice(backend="capi"))
    with serving(engine, warmup=1) as url:
        health = httpx.get(url + "/api/health", timeout=30).json()
        assert (health["engine"], health["provider"]) == ("genie", "QnnHtp-simulator")
        answer = httpx.post(url + "/api/npu/infer", json={"prompt": "你好", "max_new_tokens": 32}, timeout=60).json()
        assert (answer["new_tokens"], answer["stop_reason"]) == (32, "budget")
        disconnect_after_first_bytes(url, "/api/npu/infer/stream", {"prompt": "hello", "max_new_tokens": 400})
        assert wait_until(lambda: httpx.get(url + "/api/health", timeout=30).json()["queue"]["pending"] == 0)
        profile = parse_profile(engine.backend.dialog.profile_json())  # type: ignore[union-attr]
        assert profile.generated_tokens < 400  # Genie was told to abort when the client left
        again = httpx.post(url + "/api/npu/infer", json={"prompt": "hi", "max_new_tokens": 4}, timeout=60).json()
        assert again["new_tokens"] == 4


def test_ctrl_c_during_a_query_aborts_it_and_is_raised(genie: GenieEngine) -> None:
    import os
    import signal
    import threading
    import time

    threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    start = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        genie.generate("hello", 400)  # about 4 s of simulated tokens
    assert time.perf_counter() - start < 2  # not after the query ran to its end
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert genie.generate("hi", 3).new_tokens == 3
