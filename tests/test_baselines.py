"""Baseline files: keys, strict loading, merge, atomic save, corrupt and foreign files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from npuperf import baselines
from npuperf.baselines import BaselineError, BaselineFile, BaselineKey, CaseBaseline

KEY = BaselineKey(
    device={"os": "windows", "arch": "arm64", "cpu": "Snapdragon X Elite", "cores": "12"},
    engine="genie",
    provider="htp",
    versions={"qai-appbuilder": "2.51.40"},
    model_id="qwen2.0-7b-ssd",
    model_sha256="ab" * 32,
)


def case(cid: str = "t32-p64", latency: tuple[float, ...] = (400.0, 410.0)) -> CaseBaseline:
    return CaseBaseline(
        case_id=cid,
        prompt="corpus-64",
        prompt_tokens=64,
        new_tokens=32,
        sampling="greedy",
        samples={"latency_ms": latency, "ttft_ms": (100.0, 101.0), "tpot_ms": (9.0, 9.1)},
        recorded_at="2026-11-25T00:00:00+00:00",
        commit="abc",
    )


def test_key_round_trips_and_digest_is_stable() -> None:
    again = BaselineKey.from_dict(json.loads(json.dumps(KEY.as_dict())))
    assert again == KEY
    assert again.digest == KEY.digest
    assert KEY.filename().startswith("windows-arm64-snapdragon-x-elite-12c/genie-htp-qwen2.0-7b-ssd-")


def test_any_key_field_changes_the_file() -> None:
    other = BaselineKey(**{**KEY.__dict__, "versions": {"qai-appbuilder": "2.52.0"}})
    assert other.filename() != KEY.filename()
    assert KEY.differences(other) == ["versions.qai-appbuilder: 2.52.0 -> 2.51.40"]


def test_save_then_load_round_trips(tmp_path: Path) -> None:
    path = tmp_path / KEY.filename()
    baselines.save(path, BaselineFile(key=KEY, cases={"t32-p64": case()}))
    loaded = baselines.load(path)
    assert loaded.key == KEY
    assert loaded.cases["t32-p64"].samples["latency_ms"] == (400.0, 410.0)


def test_file_is_diff_friendly(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    baselines.save(path, BaselineFile(key=KEY, cases={"t8-p8": case("t8-p8"), "t32-p64": case()}))
    text = path.read_text(encoding="utf-8")
    assert '"latency_ms": [400.0, 410.0]' in text  # samples on one line
    assert text.index('"t32-p64"') < text.index('"t8-p8"')  # sorted case ids
    assert text.endswith("}\n")
    assert baselines.load(path).to_json() == text  # stable: load + dump changes nothing


def test_merge_replaces_measured_cases_and_keeps_the_rest() -> None:
    old = BaselineFile(key=KEY, cases={"a": case("a"), "b": case("b")})
    new = old.merged({"b": case("b", (1.0,)), "c": case("c")})
    assert sorted(new.cases) == ["a", "b", "c"]
    assert new.cases["b"].samples["latency_ms"] == (1.0,)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", r"not valid JSON \(line 1"),
        ("[]", "not an npuperf baseline file"),
        ('{"hello": 1}', "not an npuperf baseline file"),
        ('{"schema": "npuperf.baseline/0", "key": {}, "cases": {}}', "schema 'npuperf.baseline/0' is not supported"),
        ('{"schema": "npuperf.baseline/1", "key": {}, "cases": {}}', "baseline key or cases are malformed"),
    ],
)
def test_corrupt_or_foreign_files_are_reported_with_their_path(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(BaselineError, match=message) as info:
        baselines.load(path)
    assert str(path) in str(info.value)


def test_malformed_case_names_the_case(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    baselines.save(path, BaselineFile(key=KEY, cases={"t32-p64": case()}))
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["cases"]["t32-p64"]["samples"]["latency_ms"] = ["fast"]
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(BaselineError, match="case 't32-p64' is malformed"):
        baselines.load(path)


def test_save_never_replaces_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text("{corrupt", encoding="utf-8")
    with pytest.raises(BaselineError, match="not valid JSON"):
        baselines.save(path, BaselineFile(key=KEY))
    assert path.read_text(encoding="utf-8") == "{corrupt"


def test_save_never_replaces_another_keys_file(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    other = BaselineKey(**{**KEY.__dict__, "model_id": "other"})
    baselines.save(path, BaselineFile(key=other, cases={"x": case("x")}))
    with pytest.raises(BaselineError, match="refusing to overwrite a baseline for another key"):
        baselines.save(path, BaselineFile(key=KEY))
    assert baselines.load(path).key == other


def test_save_leaves_no_temp_files_and_old_file_survives_a_failed_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "b.json"
    baselines.save(path, BaselineFile(key=KEY, cases={"a": case("a")}))
    before = path.read_text(encoding="utf-8")

    def boom(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("npuperf.atomic.os.replace", boom)
    with pytest.raises(OSError, match="disk full"):
        baselines.save(path, BaselineFile(key=KEY, cases={"b": case("b")}))
    assert path.read_text(encoding="utf-8") == before
    assert [p.name for p in tmp_path.iterdir()] == ["b.json"]


def test_find_returns_the_file_for_the_key(tmp_path: Path) -> None:
    baselines.save(tmp_path / KEY.filename(), BaselineFile(key=KEY, cases={"a": case("a")}))
    found = baselines.find(tmp_path, KEY)
    assert found.file is not None
    assert sorted(found.file.cases) == ["a"]


def test_find_explains_near_misses_and_unreadable_files(tmp_path: Path) -> None:
    other = BaselineKey(**{**KEY.__dict__, "device": {**KEY.device, "cpu": "Snapdragon X Plus"}})
    baselines.save(tmp_path / other.filename(), BaselineFile(key=other))
    (tmp_path / "junk.json").write_text("nope", encoding="utf-8")
    found = baselines.find(tmp_path, KEY)
    assert found.file is None
    assert any("device.cpu: Snapdragon X Plus -> Snapdragon X Elite" in m for m in found.near_misses)
    assert any(m.startswith("junk.json: unreadable") for m in found.near_misses)


def test_a_renamed_file_holding_another_key_is_an_error(tmp_path: Path) -> None:
    other = BaselineKey(**{**KEY.__dict__, "model_sha256": "cd" * 32})
    baselines.save(tmp_path / KEY.filename(), BaselineFile(key=other))
    with pytest.raises(BaselineError, match="holds a baseline for another key"):
        baselines.find(tmp_path, KEY)


def test_missing_folder_is_simply_no_baseline(tmp_path: Path) -> None:
    assert baselines.find(tmp_path / "nowhere", KEY).file is None


GOLDEN_V1 = Path(__file__).parent / "data" / "baseline-v1.json"
GOLDEN_V2 = Path(__file__).parent / "data" / "baseline-v2.json"


def test_golden_v1_file_still_loads_without_a_noise_floor() -> None:
    """Files written before noise floors existed keep working (tolerance-only thresholds)."""
    loaded = baselines.load(GOLDEN_V1)
    assert loaded.schema == "npuperf.baseline/1"
    assert loaded.key.device["cpu"].startswith("Snapdragon(R) X Elite")
    assert loaded.cases["t32-p64"].samples["latency_ms"] == (1000.0, 1010.0, 1020.0)
    assert loaded.noise_floor("t32-p64", "latency_ms") is None
    assert loaded.grid_noise("latency_ms") is None
    assert json.loads(loaded.to_json())["schema"] == "npuperf.baseline/2"  # rewritten as v2


def test_golden_v2_file_loads_and_rewrites_byte_for_byte() -> None:
    """A format change that would orphan teams' baselines fails here first.

    The numbers in it are round fixture values, not measurements.
    """
    loaded = baselines.load(GOLDEN_V2)
    assert loaded.schema == baselines.SCHEMA
    assert loaded.to_json() == GOLDEN_V2.read_text(encoding="utf-8")


def test_noise_floor_is_the_case_drift_but_never_below_the_median_case() -> None:
    loaded = baselines.load(GOLDEN_V2)
    # t32-p64 drifted -0.05 (5%), t8-greeting-zh +0.01: median of |drift| is the larger one here
    assert loaded.noise_floor("t32-p64", "latency_ms") == pytest.approx(0.05)
    assert loaded.noise_floor("t8-greeting-zh", "latency_ms") == pytest.approx(0.05)
    assert loaded.grid_noise("latency_ms") == pytest.approx(0.02)  # |mean of -0.05 and +0.01|
    assert loaded.noise_floor("missing", "latency_ms") is None


def test_summary_in_the_file_is_ignored_on_load(tmp_path: Path) -> None:
    doc = json.loads(GOLDEN_V2.read_text(encoding="utf-8"))
    doc["cases"]["t32-p64"]["summary"]["latency_ms"]["median"] = 1.0  # hand-edited: not trusted
    path = tmp_path / "b.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    rewritten = json.loads(baselines.load(path).to_json())
    assert rewritten["cases"]["t32-p64"]["summary"]["latency_ms"]["median"] == 1010.0
