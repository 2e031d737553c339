"""``python -m npuperf``: history, compare and accept, on runs the suite really made."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, copy_suite, small_suite_ini
from npuperf.cli import main, run
from npuperf.judge import history


def suite_of(engine: str, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    return copy_suite(pytester, monkeypatch, small_suite_ini(engine, repetitions=6))


def test_history_after_three_runs_shows_three_rows(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    suite = suite_of("fake-clock", pytester, monkeypatch)
    for _ in range(3):
        suite.runpytest("perf_tests").assert_outcomes(passed=4, skipped=1, warnings=2)
    status, lines = run(["--history", str(suite.path / "reports" / "history.sqlite"), "history", "--case", "t8-p8"])
    assert status == 0
    rows = [line for line in lines if line.strip()[:1].isdigit()]
    assert [row.split()[0] for row in rows] == ["1", "2", "3"]
    assert "steps: 3 run(s); change detection needs 8 or more" in lines


def test_compare_exits_1_on_a_canary_and_0_on_a_a(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    suite = suite_of("fake", pytester, monkeypatch)
    suite.runpytest("perf_tests", "--results-json=a.json").assert_outcomes(passed=4, skipped=1, warnings=2)
    suite.runpytest("perf_tests", "--results-json=slow.json", "--inject-slowdown=0.2")
    a, slow = str(suite.path / "a.json"), str(suite.path / "slow.json")
    status, lines = run(["compare", a, slow])
    assert status == 1, "\n".join(lines)
    assert "changed from A to B: inject slowdown (none) -> 0.2" in lines
    assert lines[-1] == "verdict: REGRESSED"

    for name in ("x", "y"):  # the virtual-clock engine: identical runs, an A/A without noise
        suite.runpytest("perf_tests", "--engine=fake-clock", f"--results-json={name}.json")
    status, lines = run(["compare", str(suite.path / "x.json"), str(suite.path / "y.json")])
    assert status == 0, "\n".join(lines)
    assert lines[-1] == "verdict: no regression"


def test_accept_writes_the_baseline_the_suite_then_uses(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite = suite_of("fake-clock", pytester, monkeypatch)
    suite.runpytest("perf_tests", "--results-json=night.json")
    status, lines = run(["accept", str(suite.path / "night.json"), "--baselines-dir", str(suite.path / "accepted")])
    assert status == 0
    assert lines[0].startswith("baselines written: 2 case(s) from ")
    assert "noise floor from the two halves of one run's samples" in lines[1]
    (written,) = (suite.path / "accepted").rglob("*.json")
    doc = json.loads(written.read_text(encoding="utf-8"))
    assert doc["schema"] == "npuperf.baseline/4"
    assert doc["cases"]["t8-p8"]["provenance"]["version fake"] == "1"
    suite.runpytest("perf_tests", "--baselines-dir=accepted", "--require-baseline").assert_outcomes(passed=5)

    store = str(suite.path / "reports" / "history.sqlite")
    status, lines = run(["--history", store, "accept", "1", "1", "--baselines-dir", str(suite.path / "again")])
    assert status == 0
    assert len(lines) == 1  # two runs: the noise floor is theirs, nothing to warn about


def test_accept_refuses_an_interrupted_run_and_runs_of_two_builds(tmp_path: Path) -> None:
    store = history.History(tmp_path / "h.sqlite")
    case = history.CaseRun("t8-p8", "corpus-8", 8, 8, "greedy", 500.0, "ok", {"latency_ms": (5.0, 5.1)})
    identity = {"device": {"os": "linux"}, "engine": "e", "provider": "p", "model_id": "m"}

    def record(outcome: str, sha: str) -> None:
        store.record(history.Run("2026-11-26", identity, "d", {"model sha256": sha}, "c", {}, outcome, {"t8-p8": case}))

    record("interrupted", "aa")
    record("passed", "aa")
    record("passed", "bb")
    out = str(tmp_path / "bl")
    assert main(["--history", str(store.path), "accept", "1", "--baselines-dir", out]) == 2
    assert main(["--history", str(store.path), "accept", "2", "3", "--baselines-dir", out]) == 2
    assert not Path(out).exists()


def test_history_names_the_run_where_a_case_stepped_and_what_changed_on_it(tmp_path: Path) -> None:
    store = history.History(tmp_path / "h.sqlite")
    identity = {"device": {"os": "linux"}, "engine": "e", "provider": "p", "model_id": "m"}
    for night in range(20):
        level = 10.0 if night < 12 else 12.5
        samples = tuple(level * (1 + (night * 7 + k) % 5 / 500) for k in range(10))
        case = history.CaseRun("t32-p64", "corpus-64", 64, 32, "greedy", 500.0, "ok", {"latency_ms": samples})
        provenance = {"model sha256": "1ae3c977" if night < 12 else "3363cb49", "commit": f"c{night}"}
        store.record(history.Run(f"2026-11-{night + 1:02d}", identity, "d", provenance, f"c{night}", {}, "passed",
                                 {"t32-p64": case}))  # fmt: skip
    status, lines = run(["--history", str(store.path), "history", "--case", "t32-p64"])
    assert status == 0
    (step,) = [line for line in lines if "stepped" in line]
    assert step.startswith("t32-p64 latency_ms stepped up +25.")
    assert "at run 13 (2026-11-13, commit c12); changed on that run: model sha256 1ae3c977 -> 3363cb49" in step
    assert any(
        line.rstrip().endswith("model sha256 1ae3c977 -> 3363cb49") and line.split()[0] == "13" for line in lines
    )

    chart = tmp_path / "trend.svg"
    pytest.importorskip("matplotlib")
    status, lines = run(["--history", str(store.path), "history", "--plot", str(chart)])
    assert lines[-1] == f"chart: {chart}"
    assert chart.read_text(encoding="utf-8").lstrip().startswith("<?xml")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["history", "--last", "0"], "--last: 0 is below 1"),
        (["compare", "7", "8"], "no history here"),
        (["compare", "nothing.json", "8"], "'nothing.json' is neither a results JSON file nor a run id"),
        (["compare", "--alpha", "2", "a", "b"], "--alpha: 2.0 is out of range"),
    ],
)
def test_bad_arguments_are_one_line_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["--history", str(tmp_path / "h.sqlite"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("npuperf: ")
    assert message in err
    assert "Traceback" not in err


def test_python_dash_m_npuperf_runs(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "npuperf", "--history", str(tmp_path / "none.sqlite"), "history"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("npuperf: ")
    assert "no history here" in proc.stderr


def test_history_of_several_identities_shows_the_latest_and_lists_the_others(tmp_path: Path) -> None:
    store = history.History(tmp_path / "h.sqlite")
    case = history.CaseRun("t8-p8", "corpus-8", 8, 8, "greedy", 500.0, "ok", {"latency_ms": (5.0, 5.1)})
    for model, digest in (("tiny-qwen2", "aaaa11112222"), ("qwen2-7b", "bbbb33334444")):
        identity = {"device": {"cpu": "X Elite"}, "engine": "genie", "provider": "QnnHtp", "model_id": model}
        store.record(history.Run("2026-11-26", identity, digest, {}, "c", {}, "passed", {"t8-p8": case}))
    status, lines = run(["--history", str(store.path), "history"])
    assert status == 0
    assert lines[0] == "genie/QnnHtp qwen2-7b on X Elite"
    assert lines[1:3] == [
        "other identities in this history (choose one with --identity DIGEST):",
        "  aaaa11112222: genie/QnnHtp tiny-qwen2",
    ]
    status, lines = run(["--history", str(store.path), "history", "--identity", "aaaa"])
    assert lines[0] == "genie/QnnHtp tiny-qwen2 on X Elite"


def test_a_step_of_every_case_shows_in_the_grid_series(tmp_path: Path) -> None:
    store = history.History(tmp_path / "h.sqlite")
    identity = {"device": {"os": "linux"}, "engine": "e", "provider": "p", "model_id": "m"}
    for night in range(16):
        level = 1.0 if night < 8 else 1.12  # a runtime upgrade on night 9 slows every case 12%
        cases = {}
        for cid, base in (("t8-p8", 2.0), ("t32-p8", 5.0), ("t64-p8", 9.0)):
            samples = tuple(base * level * (1 + (night * 3 + k) % 4 / 400) for k in range(5))
            cases[cid] = history.CaseRun(cid, "corpus-8", 8, 8, "greedy", 500.0, "ok", {"latency_ms": samples})
        runtime = {"version onnxruntime-genai": "0.18.0" if night < 8 else "0.19.0"}
        store.record(history.Run(f"2026-11-{night + 1:02d}", identity, "d", runtime, "c", {}, "passed", cases))
    status, lines = run(["--history", str(store.path), "history"])
    assert status == 0
    grid = [line for line in lines if line.startswith("whole grid")]
    assert len(grid) == 1
    assert grid[0].startswith("whole grid latency_ms stepped up +12.")
    assert grid[0].endswith("at run 9 (2026-11-09, commit c); changed on that run: onnxruntime-genai 0.18.0 -> 0.19.0")
    assert "run 9: changed onnxruntime-genai 0.18.0 -> 0.19.0" in lines
