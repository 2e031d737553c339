"""The real onnxruntime-genai engine on the embedded model (CPU)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import MODEL
from npuperf.engines.base import Engine, EngineError, ModelError
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
    with pytest.raises(ValueError, match="provider 'dml' is not supported here; accepted: cpu"):
        OrtGenaiEngine(MODEL, provider="dml")


def test_generate_before_load_is_an_engine_error() -> None:
    with pytest.raises(EngineError, match="before load"):
        OrtGenaiEngine(MODEL).generate("hi", 1)
