"""Hostile and broken model files for the decode floor: `npuperf floor` answers each with one
line naming the file and what is wrong with it (exit 2, no traceback), and the suite, which
reads the same files for its floor, says the floor was not computed and measures on."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from attack.conftest import Attack
from conftest import ROOT, copy_suite, small_suite_ini
from npuperf.cli import main
from npuperf.models import floor

TINY = ROOT / "models" / "tiny-qwen2"
GENIE = ROOT / "models" / "genie-tiny"


def _genai(text: str | bytes) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        data = text.encode() if isinstance(text, str) else text
        (folder / "genai_config.json").write_bytes(data)

    return damage


def _decoder(**fields: object) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        path = folder / "genai_config.json"
        doc = json.loads(path.read_text(encoding="utf-8"))
        doc["model"]["decoder"].update(fields)
        path.write_text(json.dumps(doc), encoding="utf-8")

    return damage


def _onnx(data: bytes | None) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        if data is None:
            (folder / "model.onnx").unlink()
        else:
            (folder / "model.onnx").write_bytes(data)

    return damage


def _manifest(text: str) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        (folder / "npuperf_model.json").write_text(text, encoding="utf-8")

    return damage


FOLDERS = {
    "genai_config.json cut short": (_genai('{"model": '), "genai_config.json: not readable JSON"),
    "genai_config.json not UTF-8": (_genai(b"\xff\xfe{}"), "genai_config.json: not readable JSON"),
    "genai_config.json a list": (_genai("[]"), "genai_config.json: not an onnxruntime-genai decoder config"),
    "no decoder": (_genai('{"model": {}}'), "not an onnxruntime-genai decoder config (KeyError('decoder'))"),
    "zero layers": (_decoder(num_hidden_layers=0), "model.decoder.num_hidden_layers must be positive, got 0"),
    "heads not a number": (_decoder(num_key_value_heads="two"), "not an onnxruntime-genai decoder config"),
    "filename not a string": (_decoder(filename=7), "model.decoder.filename is not a file name"),
    "model.onnx missing": (_onnx(None), "model.onnx: the model file genai_config.json names is not there"),
    "model.onnx garbage": (_onnx(b"not onnx at all"), "model.onnx: not a readable ONNX model (DecodeError"),
    "manifest garbage": (_manifest("{"), "npuperf_model.json: not readable JSON"),
}


def _bins(value: object) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        path = folder / "genie_config.json"
        doc = json.loads(path.read_text(encoding="utf-8"))
        doc["dialog"]["engine"]["model"]["binary"]["ctx-bins"] = value
        path.write_text(json.dumps(doc), encoding="utf-8")

    return damage


def _empty_bins(folder: Path) -> None:
    for name in json.loads((folder / "genie_config.json").read_text(encoding="utf-8"))["dialog"]["engine"]["model"][
        "binary"
    ]["ctx-bins"]:
        (folder / name).write_bytes(b"")


def _hf_config(text: str) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        (folder / "config.json").write_text(text, encoding="utf-8")

    return damage


BUNDLES = {
    "a context binary missing": (_bins(["gone.bin"]), "context binaries not there (beside it): gone.bin"),
    "no context binaries": (_bins([]), "no context binaries to count"),
    "ctx-bins not a list": (_bins("model.bin"), "not a list of file names"),
    "empty context binaries": (_empty_bins, "its context binaries are empty files"),
    "config.json a list": (_hf_config("[]"), "config.json: config.json lacks a decoder shape field"),
    "config.json zero heads": (
        _hf_config(
            '{"hidden_size": 64, "num_attention_heads": 0, "num_hidden_layers": 2, '
            '"intermediate_size": 128, "vocab_size": 10}'
        ),
        "config.json lacks a decoder shape field (ZeroDivisionError",
    ),
}


@pytest.mark.attack("floor: broken model files")
@pytest.mark.parametrize(("kind", "name"), [("folder", n) for n in FOLDERS] + [("bundle", n) for n in BUNDLES])
def test_floor_command_names_a_broken_model_file(
    attack: Attack, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, name: str
) -> None:
    attack.tried()
    damage, says = (FOLDERS if kind == "folder" else BUNDLES)[name]
    copy = tmp_path / kind
    shutil.copytree(TINY if kind == "folder" else GENIE, copy)
    damage(copy)
    args = (
        ["--model", str(copy), "--bandwidth", "100"]
        if kind == "folder"
        else ["--engine", "genie", "--model", str(copy / "genie_config.json"), "--bandwidth", "x-elite"]
    )
    assert main(["floor", *args]) == 2
    err = capsys.readouterr().err
    assert says in err
    assert err.count("\n") == 1, err  # one line


def test_every_failure_of_the_floor_is_a_floor_error(tmp_path: Path) -> None:
    """What the suite relies on: it turns a FloorError into a note; anything else would end the run."""
    folder = tmp_path / "model"
    shutil.copytree(TINY, folder)
    _onnx(b"\x08\x07garbage")(folder)
    with pytest.raises(floor.FloorError, match="not a readable ONNX model"):
        floor.for_model("ort-genai", folder, floor.Bandwidth(10.0, "given"))


@pytest.mark.attack("floor: broken model files")
def test_the_suite_measures_on_when_its_floor_cannot_be_read(
    pytester: pytest.Pytester, attack: Attack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model loads (its ONNX is whole) but the file the floor reads first is garbage."""
    attack.tried()
    suite = copy_suite(pytester, monkeypatch, small_suite_ini())
    folder = suite.path / "broken-manifest"
    shutil.copytree(TINY, folder)
    _manifest("{")(folder)
    result = suite.runpytest(
        "perf_tests", "--engine=ort-genai", f"--model={folder}", "--token-budgets=4", "--prompt-lengths=8",
        "--repetitions=3", "-m", "not npu and not service",
    )  # fmt: skip
    result.assert_outcomes(passed=3, skipped=1)
    result.stdout.fnmatch_lines(["*decode floor: not computed (*npuperf_model.json: not readable JSON*"])
    assert "Traceback" not in result.stdout.str()
