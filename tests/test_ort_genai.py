"""The real onnxruntime-genai engine on the embedded model (CPU; QNN at the configuration level)."""

from __future__ import annotations

import shutil
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from conftest import MODEL
from npuperf.engines.base import Engine, EngineError, EngineUnavailable, ModelError
from npuperf.engines.ort_genai import OrtGenaiEngine
from npuperf.prompts import corpus_prompt


@pytest.mark.parametrize("n", [1, 8, 33])
def test_generates_exactly_the_requested_tokens(tiny_engine, n: int) -> None:  # type: ignore[no-untyped-def]
    prompt = corpus_prompt(tiny_engine.tokenizer, 16)
    g = tiny_engine.generate(prompt.text, n)
    assert g.new_tokens == n
    assert g.complete
    assert g.prompt_tokens == 16
    assert g.latency_ms > 0
    assert g.ttft_ms > 0


def test_satisfies_the_engine_protocol_and_describes_itself(tiny_engine) -> None:  # type: ignore[no-untyped-def]
    assert isinstance(tiny_engine, Engine)
    info = tiny_engine.info
    assert (info.engine, info.provider, info.model_id) == ("ort-genai", "cpu", "tiny-qwen2")
    assert len(info.model_sha256) == 64
    assert info.versions["onnxruntime-genai"]
    assert info.context_length == 2048  # genai_config.json model.context_length


def test_generated_text_is_decoded_after_the_last_stamp(tiny_engine) -> None:  # type: ignore[no-untyped-def]
    g = tiny_engine.generate(corpus_prompt(tiny_engine.tokenizer, 8).text, 8)
    assert g.text
    assert len(tiny_engine.tokenizer.encode(g.text)) <= 8 + 2  # re-encoding may merge or split at the ends


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"model folder '.*nope' does not exist"):
        OrtGenaiEngine(tmp_path / "nope").load()


def test_folder_without_genai_config(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"has no genai_config\.json"):
        OrtGenaiEngine(tmp_path).load()


def test_corrupt_model_file_is_a_model_error_naming_the_folder(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(MODEL, broken)
    (broken / "model.onnx").write_bytes(b"this is not an onnx model")
    with pytest.raises(ModelError, match=r"cannot load model folder '.*broken'"):
        OrtGenaiEngine(broken).load()


def test_unsupported_provider_is_rejected_naming_accepted() -> None:
    with pytest.raises(ValueError, match="provider 'dml' is not supported here; accepted: cpu, qnn"):
        OrtGenaiEngine(MODEL, provider="dml")


def test_generate_before_load_is_an_engine_error() -> None:
    with pytest.raises(EngineError, match="before load"):
        OrtGenaiEngine(MODEL).generate("hi", 1)


# ----- --ep qnn ----------------------------------------------------------------------------


class RecordingGenai:
    """Stands in for onnxruntime_genai and records how the engine configures it."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls: list[tuple[Any, ...]] = []
        self.__version__ = real.__version__
        self.Tokenizer = real.Tokenizer

    def register_execution_provider_library(self, name: str, path: str) -> None:
        self.calls.append(("register", name, path))

    def Config(self, folder: str) -> Any:
        calls = self.calls
        calls.append(("config", folder))

        class Config:
            def clear_providers(self) -> None:
                calls.append(("clear_providers",))

            def append_provider(self, name: str) -> None:
                calls.append(("append_provider", name))

            def set_provider_option(self, provider: str, key: str, value: str) -> None:
                calls.append(("option", provider, key, value))

        return Config()

    def Model(self, source: Any) -> Any:
        self.calls.append(("model", type(source).__name__))
        return self.real.Model(str(MODEL))  # the embedded CPU model, so load completes


def test_ep_qnn_registers_the_plugin_library_and_sets_perf_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime_genai

    qnn = types.SimpleNamespace(get_ep_name=lambda: "QNNExecutionProvider", get_library_path=lambda: "/x/libqnn.so")
    recorder = RecordingGenai(onnxruntime_genai)
    monkeypatch.setitem(sys.modules, "onnxruntime_genai", recorder)
    monkeypatch.setitem(sys.modules, "onnxruntime_qnn", qnn)
    engine = OrtGenaiEngine(MODEL, provider="qnn", htp_perf_mode="burst")
    engine.load()
    assert recorder.calls == [
        ("register", "QNNExecutionProvider", "/x/libqnn.so"),
        ("config", str(MODEL)),
        ("clear_providers",),
        ("append_provider", "QNN"),
        ("option", "QNN", "backend_type", "htp"),
        ("option", "QNN", "htp_performance_mode", "burst"),
        ("model", "Config"),
    ]
    assert engine.info.provider == "qnn"
    assert engine.info.details["QNN htp_performance_mode"] == "burst"
    assert "onnxruntime-qnn" in engine.info.versions


def test_ep_qnn_without_onnxruntime_qnn_is_unavailable_with_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime_qnn", None)
    with pytest.raises(EngineUnavailable, match=r"--ep qnn needs onnxruntime_qnn.*pip install onnxruntime-qnn"):
        OrtGenaiEngine(MODEL, provider="qnn").load()


def test_ep_qnn_loads_for_real_with_the_plugin_ep() -> None:
    # The real registration path: onnxruntime-genai accepts the onnxruntime-qnn library and
    # the QNN provider options (on x86_64 its HTP is the simulator).
    pytest.importorskip("onnxruntime_qnn", reason="onnxruntime-qnn missing: pip install onnxruntime-qnn")
    engine = OrtGenaiEngine(MODEL, provider="qnn")
    engine.load()
    assert engine.provider_options == {"backend_type": "htp", "htp_performance_mode": "burst"}
    assert engine.generate(corpus_prompt(engine.tokenizer, 8).text, 4).new_tokens == 4
    engine.close()
