"""The decode floor in a real run of the suite (the embedded model, a given bandwidth): per case
in the results JSON and the terminal, and in the failure of a budget below it."""

from __future__ import annotations

import json

import pytest

from conftest import MODEL, copy_suite, small_suite_ini


@pytest.fixture
def real(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    ini = small_suite_ini(engine="ort-genai").replace("prefill_ms=2,token_ms=0.5", "models/tiny-qwen2")
    suite = copy_suite(pytester, monkeypatch, ini)
    import shutil

    shutil.copytree(MODEL, suite.path / "models" / "tiny-qwen2")
    return suite


def test_each_case_carries_its_floor_and_efficiency(real: pytest.Pytester) -> None:
    result = real.runpytest(
        "perf_tests", "--memory-bandwidth=20", "--results-json=r.json", "--max-background-cores=100"
    )
    assert result.ret == 0, result.stdout.str()[-3000:]
    doc = json.loads((real.path / "r.json").read_text(encoding="utf-8"))
    assert doc["session"]["floor"]["bandwidth_gb_per_s"] == 20
    assert doc["session"]["floor"]["bandwidth_source"] == "given: 20 GB/s"
    for case in doc["cases"]:
        f = case["floor"]
        assert f["feasible"] is True
        assert 0 < f["decode_ms_per_token"] < case["summary"]["tpot_ms"]["median"]  # measured is above the floor
        assert f["efficiency"] == pytest.approx(f["decode_ms_per_token"] / case["summary"]["tpot_ms"]["median"])
    result.stdout.fnmatch_lines(["*floor ms*efficiency*", "*decode floor: * MB of weights per step*at 20 GB/s*"])


def test_a_budget_below_the_floor_fails_with_the_arithmetic(real: pytest.Pytester) -> None:
    # 20 GB/s: 2.7 MB of weights per token, 0.14 ms: 16 tokens need 2.2 ms at the floor, over a 1 ms
    # budget, while the measured ~3 ms stays above the floor (as it must)
    result = real.runpytest(
        "perf_tests", "--memory-bandwidth=20", "--latency-budget-ms=1", "--results-json=r.json",
        "--max-background-cores=100",
    )  # fmt: skip
    out = result.stdout.str()
    assert "the decode floor makes it impossible here: infeasible: 16 tokens after a 8-token prompt" in out
    assert "INFEASIBLE  t16-p8: infeasible: 16 tokens" in out
    doc = json.loads((real.path / "r.json").read_text(encoding="utf-8"))
    t16 = next(c for c in doc["cases"] if c["id"] == "t16-p8")
    assert t16["floor"]["feasible"] is False
    assert t16["floor"]["arithmetic"].endswith("> 1 ms")
    assert "measured faster than the floor" not in out
