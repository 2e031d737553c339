"""The embedded model is reproducible: rebuild it from scratch and run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import MODEL, ROOT, needs_onnx
from npuperf import cli
from npuperf.engines.ort_genai import OrtGenaiEngine
from npuperf.models import synth
from npuperf.models.files import identify
from npuperf.prompts import corpus_prompt


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch", reason="synth requirements missing: pip install -r requirements-synth.txt")
    out = tmp_path_factory.mktemp("synth") / "tiny-qwen2"
    synth.build(synth.RECIPES["tiny"], out, log=lambda _msg: None)
    return out


@pytest.mark.slow
def test_rebuilt_model_loads_and_generates(rebuilt: Path) -> None:
    engine = OrtGenaiEngine(rebuilt)
    engine.load()
    g = engine.generate(corpus_prompt(engine.tokenizer, 64).text, 16)
    assert g.new_tokens == 16
    manifest = json.loads((rebuilt / synth.MANIFEST).read_text(encoding="utf-8"))
    assert manifest["recipe"]["seed"] == synth.RECIPES["tiny"].seed
    assert manifest["vocab_size"] <= synth.RECIPES["tiny"].vocab_target
    config = json.loads((rebuilt / "genai_config.json").read_text(encoding="utf-8"))
    assert config["model"]["type"] == "qwen2"
    assert config["model"]["decoder"]["session_options"]["intra_op_num_threads"] == 1


@pytest.mark.slow
def test_rebuild_with_the_pinned_versions_is_byte_identical(rebuilt: Path) -> None:
    committed = json.loads((MODEL / synth.MANIFEST).read_text(encoding="utf-8"))["built_with"]
    here = json.loads((rebuilt / synth.MANIFEST).read_text(encoding="utf-8"))["built_with"]
    if committed != here:
        pytest.skip(f"synth packages differ from the committed model's ({here} vs {committed})")
    assert identify(rebuilt).sha256 == identify(MODEL).sha256


def test_existing_output_is_not_replaced_without_force(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    with pytest.raises(synth.SynthError, match="already exists; pass --force"):
        synth.build(synth.RECIPES["tiny"], tmp_path / "m")


def test_missing_synth_requirements_say_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(synth.SynthError, match=r"pip install -r requirements-synth\.txt"):
        synth.build(synth.RECIPES["tiny"], tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_cli_reports_errors_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m").mkdir()
    assert cli.main(["synth", "tiny", "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("npuperf synth: ")
    assert "already exists; pass --force to replace it" in err


@pytest.mark.slow
@needs_onnx
def test_qnn_block_rebuild_is_byte_identical(tmp_path: Path) -> None:
    committed = MODEL.parent / "qnn-block"
    rebuilt = subprocess.run(
        [sys.executable, "-m", "npuperf", "synth", "qnn-block", "--out", str(tmp_path / "b")],
        cwd=MODEL.parent.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert rebuilt.returncode == 0, rebuilt.stderr[-2000:]
    here = json.loads((tmp_path / "b" / synth.MANIFEST).read_text(encoding="utf-8"))
    there = json.loads((committed / synth.MANIFEST).read_text(encoding="utf-8"))
    assert here["recipe"] == there["recipe"]
    if here["built_with"] != there["built_with"]:
        pytest.skip(f"packages differ from the committed block's ({here['built_with']} vs {there['built_with']})")
    assert identify(tmp_path / "b" / "model.onnx").sha256 == identify(committed / "model.onnx").sha256


def test_unsupported_op_is_for_the_qnn_block_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["synth", "tiny", "--unsupported-op", "Erf"]) == 2
    assert "--unsupported-op applies to qnn-block only" in capsys.readouterr().err


def test_an_interrupted_build_stops_the_model_builder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while the builder runs: the builder process is killed, not left quantizing into a
    folder that is being deleted (Popen's exit waits only 0.25 s for it on an interrupt)."""
    pid_file = tmp_path / "builder.pid"
    stand_in = (
        "import os, sys, time\n"
        f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "print('Reading layer 0', flush=True)\n"
        "time.sleep(60)\n"
    )
    real_popen = subprocess.Popen

    def popen(cmd: list[str], **kwargs: object) -> subprocess.Popen[str]:
        return real_popen([sys.executable, "-c", stand_in], **kwargs)  # type: ignore[call-overload, no-any-return]

    def ctrl_c(done: int, total: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(synth.subprocess, "Popen", popen)
    with pytest.raises(KeyboardInterrupt):
        synth._run_builder(synth.RECIPES["tiny"], tmp_path, tmp_path / "out", tmp_path / "cache", ctrl_c)
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):  # gone (and reaped), not running on
        os.kill(pid, 0)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_during_a_build_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    import signal

    out = tmp_path / "model"
    proc = subprocess.Popen(
        [sys.executable, "-m", "npuperf", "synth", "tiny", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        # a background job's SIGINT is ignored, and Python then never raises KeyboardInterrupt
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # the build has begun
        if line.startswith("[1/3]"):
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == "npuperf: interrupted; nothing was written"
    assert "Traceback" not in err
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary folder left either
