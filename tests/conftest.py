from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpcore  # noqa: F401  (see below)
import httpx  # noqa: F401
import matplotlib.pyplot  # noqa: F401  (numpy, under the report's charts: it cannot load twice either)
import pytest

with contextlib.suppress(ImportError):  # the decode floor counts ONNX initializers with it, inside pytester
    import onnx  # noqa: F401  (runs too: a second import of its protobuf extension aborts the process)

# pytester's in-process runs restore sys.modules afterwards: a module first imported inside
# one of them is imported again later, and httpx then fails to map the new httpcore's
# exceptions. Importing the HTTP stack here keeps one copy for the whole session. numpy (under
# matplotlib, which draws the report's charts) refuses outright to be imported a second time.

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "tiny-qwen2"

# Tests that need onnx (rebuilding a model) skip without it.
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
        [sys.executable, "-m", "npuperf", "synth", "qnn-block", "--out", str(out), "--unsupported-op", "Erf"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out / "model.onnx"


def small_suite_ini(engine: str = "fake-clock", repetitions: int = 4, **settings: object) -> str:
    """pytest.ini of a two-case suite (8 and 16 tokens, 8-token prompt) on a fake engine, the
    virtual-clock one by default; ``settings`` adds npuperf_<name> = value lines."""
    extra = "".join(f"npuperf_{name} = {value}\n" for name, value in settings.items())
    return f"""
[pytest]
addopts = -p npuperf.plugin -p no:cacheprovider -p no:html -m "not npu and not service"
npuperf_engine = {engine}
npuperf_model = prefill_ms=2,token_ms=0.5
npuperf_token_budgets = 8,16
npuperf_prompt_lengths = 8
npuperf_team_prompts = none
npuperf_repetitions = {repetitions}
npuperf_warmup = 1
npuperf_confirm_pause_s = 0
{extra}filterwarnings = default
"""


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


@dataclass(frozen=True)
class Browsed:
    """What headless Chromium made of a page: the DOM after its scripts ran, and its console."""

    dom: str
    console: list[str]


def chromium(page: Path, screenshot: Path | None = None, width: int = 1280, height: int = 2400) -> Browsed:
    """Open ``page`` in headless Chromium; skip (saying how to get it) where there is none.

    With NPUPERF_REQUIRE_BROWSER=1 (.ci/run sets it once Chromium is installed) a missing
    browser fails instead, so CI cannot pass a browser test by skipping it.
    """
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        reason = "no Chromium here to open the report in (apt-get install chromium)"
        if os.environ.get("NPUPERF_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + ", and NPUPERF_REQUIRE_BROWSER=1")
        pytest.skip(reason)
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=3000"]
    cmd += ["--enable-logging=stderr", "--v=0", f"--window-size={width},{height}"]
    proc = subprocess.run([*cmd, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    if screenshot is not None:
        shot = subprocess.run(
            [*cmd, f"--screenshot={screenshot}", page.as_uri()], capture_output=True, text=True, timeout=120
        )
        assert shot.returncode == 0, shot.stderr[-2000:]
    return Browsed(proc.stdout, console)


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
