"""The suite appends every run to the history; a history that cannot be written never changes the outcome."""

from __future__ import annotations

import pytest

from conftest import copy_suite, small_suite_ini
from npuperf.judge.history import History

INI = small_suite_ini()


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    return copy_suite(pytester, monkeypatch, INI)


def test_every_run_is_appended_with_its_outcome_provenance_and_samples(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite.runpytest("perf_tests", "--update-baselines").assert_outcomes(passed=4, skipped=1, warnings=2)
    monkeypatch.setenv("NPUPERF_FAKE_SLOWDOWN", "1.5")
    slower = suite.runpytest("perf_tests")
    slower.assert_outcomes(passed=2, failed=3)
    slower.stdout.fnmatch_lines(["*history: run 2 appended to reports/history.sqlite*"])

    runs = History(suite.path / "reports" / "history.sqlite").runs()
    assert [(r.id, r.outcome) for r in runs] == [(1, "passed"), (2, "failed")]
    assert runs[1].identity["model_id"] == "clocked"
    assert runs[1].provenance["version fake"] == "1"
    assert sorted(runs[1].cases) == ["t16-p8", "t8-p8"]
    assert runs[1].cases["t8-p8"].outcome == "failed"
    assert len(runs[1].cases["t8-p8"].samples["latency_ms"]) == 4
    assert runs[1].cases["t8-p8"].median("latency_ms") > 1.4 * runs[0].cases["t8-p8"].median("latency_ms")  # type: ignore[operator]


def test_history_none_keeps_none(suite: pytest.Pytester) -> None:
    suite.runpytest("perf_tests", "--history=none").assert_outcomes(passed=4, skipped=1, warnings=2)
    assert not (suite.path / "reports" / "history.sqlite").exists()


@pytest.mark.parametrize("broken", ["folder", "corrupt"])
def test_a_history_that_cannot_be_written_is_one_line_and_fails_the_run(suite: pytest.Pytester, broken: str) -> None:
    path = suite.path / "reports" / "history.sqlite"
    if broken == "folder":
        path.mkdir(parents=True)
    else:
        path.parent.mkdir()
        path.write_bytes(b"garbage" * 1000)
    result = suite.runpytest("perf_tests")
    result.assert_outcomes(passed=4, skipped=1, warnings=2)  # every case measured and judged
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # but the nightly's trend lost a run: say so
    result.stdout.fnmatch_lines(["*history NOT written to reports/history.sqlite: *"])
    assert (suite.path / "reports" / "perf-results.json").exists()  # the other outputs are still written
    if broken == "corrupt":
        assert path.read_bytes() == b"garbage" * 1000


def test_every_repetition_token_times_are_kept_in_the_history(suite: pytest.Pytester) -> None:
    from npuperf.judge.history import History

    assert suite.runpytest("perf_tests").ret == 0
    (run,) = History(suite.path / "reports" / "history.sqlite").runs()
    case = run.cases["t8-p8"]
    times = [case.samples[f"token_ms#{i}"] for i in range(4)]  # the small suite's 4 repetitions
    assert all(len(t) == 8 for t in times)
    assert all(list(t) == sorted(t) for t in times)
    assert case.samples["latency_ms"]  # beside the metrics, which every view still reads
