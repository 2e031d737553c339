"""Baseline files: identity and provenance, strict loading, merge, atomic save, corrupt and foreign files."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from npuperf.judge import baselines
from npuperf.judge.baselines import BaselineError, BaselineFile, CaseBaseline, Identity

IDENTITY = Identity(
    device={"os": "windows", "arch": "arm64", "cpu": "Snapdragon X Elite", "cores": "12"},
    engine="genie",
    provider="htp",
    model_id="qwen2.0-7b-ssd",
)
NOW = baselines.provenance("ab" * 32, {"qai-appbuilder": "2.51.40"}, {"perf_profile": "burst"}, "5d6ffb7339e5")


def case(
    cid: str = "t32-p64", latency: tuple[float, ...] = (400.0, 410.0), provenance: dict[str, str] | None = None
) -> CaseBaseline:
    return CaseBaseline(
        case_id=cid,
        prompt="corpus-64",
        prompt_tokens=64,
        new_tokens=32,
        sampling="greedy",
        samples={"latency_ms": (latency,), "ttft_ms": ((100.0, 101.0),), "tpot_ms": ((9.0, 9.1),)},
        recorded_at="2026-11-25T00:00:00+00:00",
        commit="abc",
        provenance=NOW if provenance is None else provenance,
    )


def test_identity_round_trips_and_digest_is_stable() -> None:
    again = Identity.from_dict(json.loads(json.dumps(IDENTITY.as_dict())))
    assert again == IDENTITY
    assert again.digest == IDENTITY.digest
    assert IDENTITY.filename().startswith("windows-arm64-snapdragon-x-elite-12c/genie-htp-qwen2.0-7b-ssd-")


def test_identity_fields_change_the_file_and_provenance_does_not() -> None:
    other = replace(IDENTITY, provider="cpu")
    assert other.filename() != IDENTITY.filename()
    assert IDENTITY.differences(other) == ["provider: cpu -> htp"]


def test_changes_name_what_changed_model_first_commit_last_hashes_short() -> None:
    later = {**NOW, "model sha256": "cd" * 32, "version qai-appbuilder": "2.52.0", "commit": "1b6bb5c0aaaa"}
    assert baselines.changes(NOW, later) == [
        "model sha256 abababab -> cdcdcdcd",
        "qai-appbuilder 2.51.40 -> 2.52.0",
        "commit 5d6ffb73 -> 1b6bb5c0",
    ]
    assert baselines.changes(NOW, {**NOW, "commit": "x"}, with_commit=False) == []
    assert baselines.changes(NOW, {**NOW, "config perf_profile": "balanced"}) == ["perf_profile burst -> balanced"]
    assert baselines.changes(NOW, {**NOW, "config inject slowdown": "0.2"}) == ["inject slowdown (none) -> 0.2"]
    assert baselines.strict_match(NOW, {**NOW, "commit": "other"})
    assert not baselines.strict_match(NOW, {**NOW, "version qai-appbuilder": "2.52.0"})


def test_save_then_load_round_trips_with_provenance(tmp_path: Path) -> None:
    path = tmp_path / IDENTITY.filename()
    baselines.save(path, BaselineFile(identity=IDENTITY, cases={"t32-p64": case()}))
    loaded = baselines.load(path)
    assert loaded.identity == IDENTITY
    assert loaded.schema == "npuperf.baseline/4"
    assert loaded.cases["t32-p64"].samples["latency_ms"] == ((400.0, 410.0),)
    assert loaded.cases["t32-p64"].provenance == NOW


def test_file_is_diff_friendly(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    baselines.save(path, BaselineFile(identity=IDENTITY, cases={"t8-p8": case("t8-p8"), "t32-p64": case()}))
    text = path.read_text(encoding="utf-8")
    assert '"latency_ms": [[400.0, 410.0]]' in text  # samples on one line, a list per process
    assert text.index('"t32-p64"') < text.index('"t8-p8"')  # sorted case ids
    assert text.endswith("}\n")
    assert baselines.load(path).to_json() == text  # stable: load + dump changes nothing


def test_merge_replaces_measured_cases_and_keeps_the_rest_with_their_provenance() -> None:
    old = BaselineFile(identity=IDENTITY, cases={"a": case("a"), "b": case("b")})
    newer = {**NOW, "model sha256": "cd" * 32}
    new = old.merged({"b": case("b", (1.0,), newer), "c": case("c", provenance=newer)})
    assert sorted(new.cases) == ["a", "b", "c"]
    assert new.cases["b"].samples["latency_ms"] == ((1.0,),)
    assert new.cases["a"].provenance == NOW
    assert new.cases["c"].provenance == newer


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", r"not valid JSON \(line 1"),
        ("[]", "not an npuperf baseline file"),
        ('{"hello": 1}', "not an npuperf baseline file"),
        ('{"schema": "npuperf.baseline/0", "key": {}, "cases": {}}', "schema 'npuperf.baseline/0' is not supported"),
        ('{"schema": "npuperf.baseline/1", "key": {}, "cases": {}}', "baseline identity or cases are malformed"),
        ('{"schema": "npuperf.baseline/3", "identity": {}, "cases": {}}', "baseline identity or cases are malformed"),
    ],
)
def test_corrupt_or_foreign_files_are_reported_with_their_path(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(BaselineError, match=message) as info:
        baselines.load(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("samples", "message"),
    [(["fast"], "could not convert"), ([1.0, "NaN"], "finite and >= 0"), ([-3.0], "finite and >= 0")],
)
def test_malformed_case_names_the_file_and_the_case(tmp_path: Path, samples: list[object], message: str) -> None:
    path = tmp_path / "b.json"
    baselines.save(path, BaselineFile(identity=IDENTITY, cases={"t32-p64": case()}))
    text = path.read_text(encoding="utf-8").replace("[400.0, 410.0]", json.dumps(samples).replace('"NaN"', "NaN"))
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BaselineError, match=f"{re.escape(str(path))}: case .t32-p64. is malformed.*{message}"):
        baselines.load(path)


def test_save_never_replaces_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text("{corrupt", encoding="utf-8")
    with pytest.raises(BaselineError, match="not valid JSON"):
        baselines.save(path, BaselineFile(identity=IDENTITY))
    assert path.read_text(encoding="utf-8") == "{corrupt"


def test_save_never_replaces_another_identitys_file(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    other = replace(IDENTITY, model_id="other")
    baselines.save(path, BaselineFile(identity=other, cases={"x": case("x")}))
    with pytest.raises(BaselineError, match="refusing to overwrite a baseline for another identity"):
        baselines.save(path, BaselineFile(identity=IDENTITY))
    assert baselines.load(path).identity == other


def test_save_leaves_no_temp_files_and_old_file_survives_a_failed_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "b.json"
    baselines.save(path, BaselineFile(identity=IDENTITY, cases={"a": case("a")}))
    before = path.read_text(encoding="utf-8")

    def boom(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("npuperf.atomic.os.replace", boom)
    with pytest.raises(OSError, match="disk full"):
        baselines.save(path, BaselineFile(identity=IDENTITY, cases={"b": case("b")}))
    assert path.read_text(encoding="utf-8") == before
    assert [p.name for p in tmp_path.iterdir()] == ["b.json"]


def test_find_compares_across_a_model_change_and_strict_does_not(tmp_path: Path) -> None:
    baselines.save(tmp_path / IDENTITY.filename(), BaselineFile(identity=IDENTITY, cases={"a": case("a")}))
    rebuilt = {**NOW, "model sha256": "cd" * 32}
    found = baselines.find(tmp_path, IDENTITY, rebuilt)
    assert found.file is not None
    assert sorted(found.file.cases) == ["a"]
    strict = baselines.find(tmp_path, IDENTITY, rebuilt, "strict")
    assert strict.file is None
    assert strict.near_misses == (f"{IDENTITY.filename()} differs in model sha256 abababab -> cdcdcdcd",)
    assert baselines.find(tmp_path, IDENTITY, NOW, "strict").file is not None


def test_strict_keeps_only_the_cases_of_the_same_provenance(tmp_path: Path) -> None:
    old = {**NOW, "version qai-appbuilder": "2.50.0"}
    cases = {"a": case("a"), "b": case("b", provenance=old)}
    baselines.save(tmp_path / IDENTITY.filename(), BaselineFile(identity=IDENTITY, cases=cases))
    found = baselines.find(tmp_path, IDENTITY, NOW, "strict")
    assert found.file is not None
    assert sorted(found.file.cases) == ["a"]


def test_find_explains_near_misses_and_unreadable_files(tmp_path: Path) -> None:
    other = replace(IDENTITY, device={**IDENTITY.device, "cpu": "Snapdragon X Plus"})
    baselines.save(tmp_path / other.filename(), BaselineFile(identity=other))
    (tmp_path / "junk.json").write_text("nope", encoding="utf-8")
    found = baselines.find(tmp_path, IDENTITY, NOW)
    assert found.file is None
    assert any("device.cpu: Snapdragon X Plus -> Snapdragon X Elite" in m for m in found.near_misses)
    assert any(m.startswith("junk.json: unreadable") for m in found.near_misses)


def test_a_renamed_file_holding_another_identity_is_an_error(tmp_path: Path) -> None:
    other = replace(IDENTITY, engine="ort-genai")
    baselines.save(tmp_path / IDENTITY.filename(), BaselineFile(identity=other))
    with pytest.raises(BaselineError, match="holds a baseline for another identity"):
        baselines.find(tmp_path, IDENTITY, NOW)


def test_a_corrupt_file_of_this_identity_is_an_error_not_silence(tmp_path: Path) -> None:
    path = tmp_path / IDENTITY.filename()
    path.parent.mkdir(parents=True)
    path.write_text("{corrupt", encoding="utf-8")
    with pytest.raises(BaselineError, match="not valid JSON"):
        baselines.find(tmp_path, IDENTITY, NOW)


def test_missing_folder_is_simply_no_baseline(tmp_path: Path) -> None:
    assert baselines.find(tmp_path / "nowhere", IDENTITY, NOW).file is None


def test_a_v2_file_is_found_by_its_identity_wherever_it_lies(tmp_path: Path) -> None:
    """v2 files are named by a digest of their whole key: found by reading, not by name."""
    legacy = tmp_path / "linux-x86_64-x-2c" / "old-name.json"
    legacy.parent.mkdir()
    legacy.write_text(GOLDEN_V2.read_text(encoding="utf-8"), encoding="utf-8")
    identity = baselines.load(GOLDEN_V2).identity
    found = baselines.find(tmp_path, identity, NOW)
    assert found.source == legacy
    assert found.file is not None
    assert found.path == tmp_path / identity.filename()  # where --update-baselines writes v3


GOLDEN_V1 = Path(__file__).parent / "data" / "baseline-v1.json"
GOLDEN_V2 = Path(__file__).parent / "data" / "baseline-v2.json"


def test_golden_v1_file_still_loads_without_a_noise_floor() -> None:
    """Files written before noise floors existed keep working (tolerance-only thresholds)."""
    loaded = baselines.load(GOLDEN_V1)
    assert loaded.schema == "npuperf.baseline/1"
    assert loaded.identity.device["cpu"].startswith("Snapdragon(R) X Elite")
    assert loaded.cases["t32-p64"].samples["latency_ms"] == ((1000.0, 1010.0, 1020.0),)  # one process
    assert loaded.noise_floor("t32-p64", "latency_ms") is None
    assert loaded.grid_noise("latency_ms") is None
    assert json.loads(loaded.to_json())["schema"] == "npuperf.baseline/4"  # rewritten as v4


GOLDEN_V3 = Path(__file__).parent / "data" / "baseline-v3.json"
GOLDEN_V4 = Path(__file__).parent / "data" / "baseline-v4.json"


def test_golden_v2_file_maps_its_key_to_identity_and_provenance() -> None:
    """A format change that would orphan teams' baselines fails here first.

    The numbers in it are round fixture values, not measurements.
    """
    loaded = baselines.load(GOLDEN_V2)
    key = json.loads(GOLDEN_V2.read_text(encoding="utf-8"))["key"]
    assert loaded.schema == "npuperf.baseline/2"
    assert loaded.identity.as_dict() == {k: key[k] for k in ("device", "engine", "provider", "model_id")}
    case = loaded.cases["t32-p64"]
    assert case.provenance["model sha256"] == key["model_sha256"]
    assert {k.removeprefix("version "): v for k, v in case.provenance.items() if k.startswith("version ")} == key[
        "versions"
    ]
    assert case.provenance["commit"] == case.commit
    assert loaded.to_json() == GOLDEN_V4.read_text(encoding="utf-8")  # as --update-baselines rewrites it


def test_golden_v3_file_loads_as_one_process_of_an_unknown_host() -> None:
    loaded = baselines.load(GOLDEN_V3)
    assert loaded.schema == "npuperf.baseline/3"
    assert loaded.identity.host == ""
    assert all(len(groups) == 1 for c in loaded.cases.values() for groups in c.samples.values())
    assert loaded.to_json() == GOLDEN_V4.read_text(encoding="utf-8")


def test_golden_v4_file_loads_and_rewrites_byte_for_byte() -> None:
    loaded = baselines.load(GOLDEN_V4)
    assert loaded.schema == baselines.SCHEMA
    assert loaded.to_json() == GOLDEN_V4.read_text(encoding="utf-8")


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


# ----- hosts: the same device, engine and model on another machine --------------------------------

HERE = replace(IDENTITY, host="1a2b3c4d5e6f")
THERE = replace(IDENTITY, host="9f8e7d6c5b4a")


def test_the_host_is_part_of_the_identity_and_its_file() -> None:
    assert HERE.filename() != THERE.filename()
    assert HERE.same_but_host(THERE)
    assert not HERE.same_but_host(HERE)
    assert not HERE.same_but_host(replace(THERE, model_id="other"))
    assert HERE.differences(THERE) == ["host: 9f8e7d6c5b4a -> 1a2b3c4d5e6f"]
    assert Identity.from_dict(HERE.as_dict()) == HERE


def test_another_hosts_baseline_is_found_and_said_to_be_another_hosts(tmp_path: Path) -> None:
    baselines.save(tmp_path / THERE.filename(), BaselineFile(identity=THERE, cases={"a": case("a")}))
    found = baselines.find(tmp_path, HERE, NOW)
    assert found.file is not None
    assert found.other_host
    assert found.source == tmp_path / THERE.filename()
    assert found.path == tmp_path / HERE.filename()  # where this host's recording goes


def test_this_hosts_own_baseline_is_preferred_to_another_hosts(tmp_path: Path) -> None:
    baselines.save(tmp_path / THERE.filename(), BaselineFile(identity=THERE, cases={"a": case("a"), "b": case("b")}))
    baselines.save(tmp_path / HERE.filename(), BaselineFile(identity=HERE, cases={"a": case("a")}))
    found = baselines.find(tmp_path, HERE, NOW)
    assert found.source == tmp_path / HERE.filename()
    assert not found.other_host


def test_a_v3_file_names_no_host_and_is_another_hosts(tmp_path: Path) -> None:
    legacy = tmp_path / "linux-x86_64-x-2c" / "v3.json"
    legacy.parent.mkdir()
    legacy.write_text(GOLDEN_V3.read_text(encoding="utf-8"), encoding="utf-8")
    identity = replace(baselines.load(GOLDEN_V3).identity, host="1a2b3c4d5e6f")
    found = baselines.find(tmp_path, identity, NOW)
    assert found.other_host
    assert found.file is not None


def test_a_host_change_is_told_first_and_strict_matching_ignores_it() -> None:
    here = baselines.provenance("ab" * 32, {}, {}, "c1", host="1a2b3c4d5e6f")
    there = {**here, "host": "9f8e7d6c5b4a", "commit": "c2"}
    assert baselines.changes(there, here) == [
        "host 9f8e7d6c5b4a -> 1a2b3c4d5e6f (another machine)",
        "commit c2 -> c1",
    ]
    unknown = {k: v for k, v in there.items() if k != "host"}
    assert baselines.changes(unknown, here)[0] == "host (not recorded) -> 1a2b3c4d5e6f (another machine)"
    assert baselines.strict_match(there, here)


def test_recording_never_carries_another_hosts_cases_into_this_hosts_file(tmp_path: Path) -> None:
    baselines.save(tmp_path / THERE.filename(), BaselineFile(identity=THERE, cases={"old": case("old")}))
    baselines.update(tmp_path / HERE.filename(), HERE, {"a": case("a")}, legacy_source=None)
    mine = baselines.load(tmp_path / HERE.filename())
    assert sorted(mine.cases) == ["a"]
    assert mine.identity.host == HERE.host
