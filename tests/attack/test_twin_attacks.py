"""Hostile and unlucky requests for shape twins: unknown presets, a preset too big for the
machine, a cache that cannot be written, missing synth requirements, two runs wanting the
same twin at once, a cached twin damaged after its build. Each is one clear line, nothing
half-built, no traceback."""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from attack.conftest import Attack
from conftest import ROOT, copy_suite, small_suite_ini
from npuperf import atomic
from npuperf.models import synth, twins

pytestmark = pytest.mark.timeout(300)

REAL = ("--engine=ort-genai", "--token-budgets=4", "--prompt-lengths=8", "--repetitions=3")


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.Pytester:
    monkeypatch.setenv("NPUPERF_CACHE", str(tmp_path / "cache"))
    return copy_suite(pytester, monkeypatch, small_suite_ini())


@pytest.mark.attack("twins: bad requests")
@pytest.mark.parametrize("model", ["synthetic:llama-70b", "synthetic:", "synthetic:QWEN2-0.5B"])
def test_an_unknown_preset_is_a_usage_error_naming_the_presets(
    suite: pytest.Pytester, attack: Attack, model: str
) -> None:
    attack.tried()
    result = suite.runpytest("perf_tests", *REAL, f"--model={model}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "--model: unknown shape twin" in err
    assert "presets: qwen2-0.5b, qwen2-7b, qwen2.5-1.5b" in err


@pytest.mark.attack("twins: bad requests")
def test_a_twin_for_the_genie_engine_is_a_usage_error_before_anything_is_built(
    suite: pytest.Pytester, attack: Attack, tmp_path: Path
) -> None:
    attack.tried()
    result = suite.runpytest("perf_tests", "--engine=genie", "--model=synthetic:qwen2-0.5b")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        "--model synthetic:qwen2-0.5b: a shape twin is an onnxruntime-genai model (--engine ort-genai); "
        "the genie engine takes a bundle's genie_config.json"
    ) in result.stderr.str()
    assert not (tmp_path / "cache").exists()  # nothing built for a run that cannot use it


@pytest.mark.attack("twins: bad requests")
def test_a_preset_too_big_fails_its_tests_with_the_arithmetic_and_writes_nothing(
    suite: pytest.Pytester, attack: Attack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    attack.tried()
    monkeypatch.setattr(twins, "_memory", lambda: 24 * 2**30)
    result = suite.runpytest("perf_tests", *REAL, "--model=synthetic:qwen2-7b")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    out = result.stdout.str()
    assert "--model synthetic:qwen2-7b: qwen2-7b cannot be built on this machine: 7.62 B parameters" in out
    assert "Traceback" not in out
    assert not (tmp_path / "cache").exists()


@pytest.mark.attack("twins: bad requests")
def test_missing_synth_requirements_say_what_to_install(
    suite: pytest.Pytester, attack: Attack, monkeypatch: pytest.MonkeyPatch
) -> None:
    attack.tried()

    def no_torch(*args: object, **kwargs: object) -> Path:
        raise synth.SynthError(
            "synthetic models need the synth requirements (No module named 'torch'); "
            "install them with: pip install -r requirements-synth.txt"
        )

    monkeypatch.setattr(synth, "build", no_torch)
    result = suite.runpytest("perf_tests", *REAL, "--model=synthetic:qwen2-0.5b")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "pip install -r requirements-synth.txt" in result.stdout.str()
    assert "Traceback" not in result.stdout.str()


@pytest.mark.attack("twins: bad requests")
def test_a_cache_that_cannot_be_written_is_one_line(
    attack: Attack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    attack.tried()
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file", encoding="utf-8")
    monkeypatch.setenv("NPUPERF_CACHE", str(blocker / "cache"))
    with pytest.raises(twins.TwinError, match=r"cannot write the cache at .*set NPUPERF_CACHE to a writable folder"):
        twins.ensure("qwen2-0.5b", log=lambda line: None)


@pytest.fixture
def out(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Where the qwen2-0.5b twin goes, in a cache of this test's own (its folder not yet there)."""
    monkeypatch.setenv("NPUPERF_CACHE", str(tmp_path))
    where = twins.location("qwen2-0.5b")
    where.parent.mkdir(parents=True)
    return where


def fake_build(out: Path) -> None:
    """What a finished build leaves: the model's files, then the list of their sizes."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "genai_config.json").write_text("{}", encoding="utf-8")
    (out / synth.MANIFEST).write_text("{}", encoding="utf-8")
    (out / "model.onnx.data").write_bytes(b"\0" * 4096)
    twins._list_files(out)


@contextlib.contextmanager
def another_run_building(out: Path, finishes: bool) -> Iterator[threading.Event]:
    """Another run holding the twin's build lock until the yielded event is set; with
    ``finishes`` it leaves a built twin behind when it lets go."""
    holding, release = threading.Event(), threading.Event()

    def other_run() -> None:
        with atomic.locked(out.parent / f".{out.name}.lock"):
            holding.set()
            release.wait(10)
            if finishes:
                fake_build(out)

    thread = threading.Thread(target=other_run)
    thread.start()
    holding.wait(10)
    try:
        yield release
    finally:
        release.set()
        thread.join(10)


@pytest.mark.attack("twins: two runs at once")
def test_a_run_waits_for_another_building_the_same_twin_then_uses_it(
    attack: Attack, monkeypatch: pytest.MonkeyPatch, out: Path
) -> None:
    attack.tried()
    builds: list[str] = []
    monkeypatch.setattr(twins, "_build", lambda t, o, log: builds.append(t.preset))
    with another_run_building(out, finishes=True) as release:
        threading.Timer(0.5, release.set).start()
        started = time.monotonic()
        assert twins.ensure("qwen2-0.5b", log=lambda line: None) == out
    assert time.monotonic() - started >= 0.4  # it waited for the other build
    assert builds == []  # and did not build again


@pytest.mark.attack("twins: two runs at once")
def test_a_build_held_too_long_by_another_run_is_one_line(
    attack: Attack, monkeypatch: pytest.MonkeyPatch, out: Path
) -> None:
    attack.tried()
    monkeypatch.setattr(twins, "BUILD_WAIT_S", 0.3)
    with another_run_building(out, finishes=False), pytest.raises(twins.TwinError, match="another run is building it"):
        twins.ensure("qwen2-0.5b", log=lambda line: None)


# ----- a cached twin damaged after its build -------------------------------------------------


def _truncate(out: Path) -> str:
    (out / "model.onnx.data").write_bytes(b"\0" * 100)
    return "model.onnx.data is 100 bytes, 4096 when built"


def _delete(out: Path) -> str:
    (out / "genai_config.json").unlink()
    return "genai_config.json is missing"


def _garble_list(out: Path) -> str:
    (out / twins.FILES).write_text('{"files": {"model.onnx.data": "big"}}', encoding="utf-8")
    return f"its file list {twins.FILES} is missing or unreadable (ValueError)"


def _lose_list(out: Path) -> str:  # a build killed between its last file and the list, or an older npuperf's
    (out / twins.FILES).unlink()
    return f"its file list {twins.FILES} is missing or unreadable (FileNotFoundError)"


@pytest.mark.attack("twins: a damaged cache")
@pytest.mark.parametrize("damage", [_truncate, _delete, _garble_list, _lose_list], ids=lambda f: f.__name__[1:])
def test_a_damaged_cached_twin_is_rebuilt_saying_what_was_wrong(
    attack: Attack, monkeypatch: pytest.MonkeyPatch, out: Path, damage: Callable[[Path], str]
) -> None:
    attack.tried()
    fake_build(out)
    said: list[str] = []
    builds: list[str] = []
    monkeypatch.setattr(twins, "_build", lambda t, o, log: (builds.append(t.preset), shutil.rmtree(o), fake_build(o)))
    assert twins.ensure("qwen2-0.5b", log=said.append) == out
    assert builds == []  # whole: reused as it is

    why = damage(out)
    assert twins.ensure("qwen2-0.5b", log=said.append) == out
    assert builds == ["qwen2-0.5b"]
    assert said == [f"the cached shape twin at {out} is incomplete or damaged ({why}): building it again"]
    assert twins._damage(out) is None  # rebuilt, with its list: the next run reuses it
    twins.ensure("qwen2-0.5b", log=said.append)
    assert builds == ["qwen2-0.5b"]


@pytest.mark.attack("twins: a damaged cache")
def test_the_suite_says_it_rebuilds_a_damaged_twin_then_measures_it(
    suite: pytest.Pytester, attack: Attack, monkeypatch: pytest.MonkeyPatch
) -> None:
    attack.tried()
    out = twins.location("qwen2-0.5b")  # in the suite fixture's cache
    fake_build(out)
    _truncate(out)

    def build(t: twins.Twin, o: Path, log: twins.Log) -> None:  # the embedded model stands in for the build
        shutil.rmtree(o)
        shutil.copytree(ROOT / "models" / "tiny-qwen2", o)

    monkeypatch.setattr(twins, "_build", build)
    result = suite.runpytest("perf_tests", *REAL, "--model=synthetic:qwen2-0.5b", "-m", "not npu and not service")
    result.stdout.fnmatch_lines(
        ["*the cached shape twin at * is incomplete or damaged (model.onnx.data is 100 bytes, 4096 when built): build*"]
    )
    result.assert_outcomes(passed=3, skipped=1)
    assert twins._damage(out) is None
