from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "tiny-qwen2"


@pytest.fixture(scope="session")
def tiny_engine():  # type: ignore[no-untyped-def]
    """The real embedded model on onnxruntime-genai, loaded once for the unit tests."""
    from npuperf.engines.ort_genai import OrtGenaiEngine

    engine = OrtGenaiEngine(MODEL)
    engine.load()
    yield engine
    engine.close()
