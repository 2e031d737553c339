from __future__ import annotations

import contextlib
import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpcore  # noqa: F401  (see below)
import httpx  # noqa: F401
import pytest

# pytester's in-process runs restore sys.modules afterwards: a module first imported inside
# one of them is imported again later, and httpx then fails to map the new httpcore's
# exceptions. Importing the HTTP stack here keeps one copy for the whole session.

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "tiny-qwen2"

# Looked up, not imported: importing onnx in a process that loaded onnxruntime-genai aborts it.
needs_onnx = pytest.mark.skipif(
    importlib.util.find_spec("onnx") is None,
    reason="building the fallback model needs onnx: pip install -r requirements-synth.txt",
)


@pytest.fixture(scope="session")
def tiny_engine():  # type: ignore[no-untyped-def]
    """The real embedded model on onnxruntime-genai, loaded once for the unit tests."""
    from npuperf.engines.ort_genai import OrtGenaiEngine

    engine = OrtGenaiEngine(MODEL)
    engine.load()
    yield engine
    engine.close()


def build_fallback_block(out: Path) -> Path:
    """The QDQ block with an Erf in its MLP, built in a fresh process.

    onnxruntime's quantizer runs inference sessions; in a process that also loaded
    onnxruntime-genai (which carries its own onnxruntime) that crashes the interpreter.
    """
    proc = subprocess.run(
        [sys.executable, "-m", "npuperf.synth", "qnn-block", "--out", str(out), "--unsupported-op", "Erf"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out / "model.onnx"


def copy_suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ini: str) -> pytest.Pytester:
    """A copy of the real perf_tests/ under ``ini``, with the fake engines registered in a root conftest."""
    monkeypatch.syspath_prepend(str(ROOT / "tests"))
    monkeypatch.delenv("NPUPERF_FAKE_SLOWDOWN", raising=False)
    pytester.makeini(ini)
    pytester.makeconftest("import fakes\nfakes.register()\n")
    target = pytester.mkdir("perf_tests")
    for name in ("conftest.py", "test_latency.py", "test_backend.py"):
        (target / name).write_text((ROOT / "perf_tests" / name).read_text(encoding="utf-8"), encoding="utf-8")
    return pytester


@contextlib.contextmanager
def serving(engine: Any, **config: Any) -> Iterator[str]:
    """The reference server over ``engine`` on a free loopback port, in a thread; yields its URL."""
    from npuperf.server.config import ServerConfig
    from npuperf.server.launch import serve_in_thread

    served = serve_in_thread(engine, ServerConfig(port=0, **config))
    try:
        yield served.url
    finally:
        served.stop()
