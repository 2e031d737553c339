"""The files a run writes stay exactly as they were: results JSON and baselines, byte for byte.

A run of the virtual-clock fake engine (tests/fakes.py ``ClockEngine``) gives the same
figures every time, so its results JSON and baseline file can be compared with golden
copies under tests/data/golden/, recorded once. Only what must differ between runs is
masked: timestamps, the commit, the machine (its conditions: power, governor, frequency), the
wall-clock load time, and what the process used on the real clock (CPU cores, peak memory).

Regenerate deliberately (a change to the file formats) with NPUPERF_REGOLD=1.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, copy_suite

GOLDEN = ROOT / "tests" / "data" / "golden"
MASK = "<masked>"

INI = """
[pytest]
addopts = -p npuperf.plugin -p no:cacheprovider -m "not npu and not service"
npuperf_engine = fake-clock
npuperf_model = prefill_ms=2,token_ms=0.5
npuperf_token_budgets = 4,8
npuperf_prompt_lengths = 8,16
npuperf_team_prompts = greeting-zh
npuperf_repetitions = 4
npuperf_warmup = 1
npuperf_confirm_pause_s = 0
# the files must not depend on what other processes of this machine do meanwhile
npuperf_max_background_cores = 100
filterwarnings = default
"""


MACHINE = ("config power", "config power plan", "config cpu governor")


def _mask_machine(provenance: dict[str, str]) -> None:
    for key in (*MACHINE, "host"):
        if key in provenance:
            provenance[key] = MASK


def _mask_results(doc: dict[str, Any]) -> dict[str, Any]:
    doc["created"] = MASK
    for key in ("Device", "Commit", "Host", *(k for k in doc["environment"] if k.startswith("Condition: "))):
        doc["environment"][key] = MASK
    _mask_machine(doc["session"]["provenance"])
    session = doc["session"]
    session["load_s"] = session["load_times_s"] = MASK  # the fake loads on the real clock
    session["loaded_rss_mb"] = MASK  # this process's memory
    session["provenance"]["commit"] = MASK
    session["baseline"]["changed"] = [c for c in session["baseline"]["changed"] if not c.startswith("commit ")]
    session["identity"]["device"] = session["identity"]["host"] = MASK
    session["baseline"]["path"] = session["baseline"]["source"] = MASK  # in a folder named by the device
    for check in session["backend_checks"]:
        if check["name"] == "load budget":
            check["value"] = check["message"] = MASK
    for key in ("baselines_dir", "results_json"):
        doc["settings"][key] = MASK
    for case in doc["cases"]:
        case["background_cores"] = case["background_cores_by_process"] = MASK  # the machine's other processes
        case["cpu_cores"] = case["peak_rss_mb"] = MASK  # this process, on the real clock
        if case.get("baseline"):
            case["baseline"]["recorded_at"] = MASK  # when the first run of the test recorded it
    return doc


def _mask_baseline(doc: dict[str, Any]) -> dict[str, Any]:
    doc["identity"]["device"] = doc["identity"]["host"] = MASK
    for case in doc["cases"].values():
        case["recorded_at"] = case["commit"] = case["provenance"]["commit"] = MASK
        _mask_machine(case["provenance"])
    return doc


def _compare(name: str, doc: dict[str, Any]) -> None:
    text = json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    path = GOLDEN / name
    if os.environ.get("NPUPERF_REGOLD") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from the golden copy {path}"


@pytest.mark.slow
def test_record_then_compare_writes_the_golden_files(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite = copy_suite(pytester, monkeypatch, INI)
    recorded = suite.runpytest(
        "perf_tests", "--baselines-dir=bl", "--update-baselines", "--results-json=record.json", "-p", "no:html"
    )
    recorded.assert_outcomes(passed=8, skipped=1, warnings=6)
    compared = suite.runpytest(
        "perf_tests", "--baselines-dir=bl", "--require-baseline", "--results-json=compare.json", "-p", "no:html"
    )
    compared.assert_outcomes(passed=9)

    files = list(Path(suite.path, "bl").rglob("*.json"))
    assert len(files) == 1, files
    _compare("baseline.json", _mask_baseline(json.loads(files[0].read_text(encoding="utf-8"))))
    for name in ("record.json", "compare.json"):
        _compare(name, _mask_results(json.loads(Path(suite.path, name).read_text(encoding="utf-8"))))
