"""Noisy neighbours: a case measured on a busy machine is measured again once it is quiet, else
NOT JUDGED where the load could explain it (never OK); a recording measures passes until two agree,
and is refused, with its own exit status, only when its time budget runs out."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from conftest import ROOT, copy_suite, small_suite_ini
from npuperf.machine.load import MIN_WINDOW_S, LoadMeter
from npuperf.suite.recording import EXIT_REFUSED
from npuperf.suite.summary import EXIT_NOT_JUDGED

INI = small_suite_ini(min_regression_ms=0)  # these fakes' slowdowns add under 1 ms to the shortest case


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    return copy_suite(pytester, monkeypatch, INI)


@pytest.fixture
def hog() -> Iterator[int]:
    """An unrelated process that keeps one core busy (a virus scan, an indexer): started
    through the shell in the background, so it is not a child of this process."""
    out = subprocess.run(
        ["sh", "-c", f"{sys.executable} -c 'while True: pass' >/dev/null 2>&1 & echo $!"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    pid = int(out.stdout.strip())
    time.sleep(0.3)
    yield pid
    os.kill(pid, signal.SIGKILL)


def others(monkeypatch: pytest.MonkeyPatch, cores: float) -> None:
    """Make the meter report ``cores`` of other processes (the real one is tested below)."""
    monkeypatch.setattr(LoadMeter, "cores_since", lambda self, mark: cores)


@pytest.mark.slow
def test_the_meter_sees_a_busy_core(hog: int) -> None:
    meter = LoadMeter()
    _, cores = meter.measure(lambda: time.sleep(1.2))
    assert cores is not None
    assert 0.6 < cores < 1.4
    _, short = meter.measure(lambda: time.sleep(0.01))  # reaches back over the mark before: >= 1 s
    assert short is not None
    assert short > 0.6


def test_a_short_window_at_the_very_start_says_nothing() -> None:
    meter = LoadMeter()
    assert MIN_WINDOW_S >= 1
    _, cores = meter.measure(lambda: None)
    assert cores is None


@pytest.mark.slow
def test_recording_while_another_process_burns_a_core_is_refused_when_its_budget_runs_out(
    suite: pytest.Pytester, hog: int
) -> None:
    # the sleeping fake, slow enough that each case spans a window the meter can judge
    result = suite.runpytest(
        "perf_tests",
        "--engine=fake",
        "--model=prefill_ms=2,token_ms=10",
        "--update-baselines",
        "--quiet-wait-s=1",
        "--record-budget-s=1",
    )
    assert result.ret == EXIT_REFUSED
    result.stdout.fnmatch_lines(
        [
            "*baselines NOT written to baselines/*: the recording passes never agreed within --record-budget-s 1 s "
            "(2 passes in * s: the machine was busy (other processes kept * cores busy during *",
            "BASELINES NOT WRITTEN (exit status 7): *",
            "*baselines not written*",
        ]
    )
    assert not list((suite.path / "baselines").rglob("*.json"))


NO_WAIT = "--quiet-wait-s=0"  # the meter below is faked busy for good: waiting would only take time


def test_a_busy_machine_is_not_judged_where_the_load_could_explain_a_slowdown(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    others(monkeypatch, 0.0)
    suite.runpytest("perf_tests", "--update-baselines").assert_outcomes(passed=4, skipped=1, warnings=2)

    others(monkeypatch, 0.98)
    monkeypatch.setenv("NPUPERF_FAKE_SLOWDOWN", "1.15")  # contention can do this: it cannot be told from a change
    busy = suite.runpytest("perf_tests", "--results-json=busy.json", NO_WAIT)
    assert busy.ret == EXIT_NOT_JUDGED
    busy.assert_outcomes(passed=2)
    assert busy.parseoutcomes()["not"] == 3  # "3 not judged" in pytest's last line
    busy.stdout.fnmatch_lines(
        [
            "*machine busy: other processes kept up to 0.98 cores busy (*) while 2 of 2 case(s) were measured*",
            "NOT JUDGED (exit status 6): t8-p8, t16-p8, the grid: measured while other processes kept the machine*",
        ]
    )
    doc = json.loads((suite.path / "busy.json").read_text(encoding="utf-8"))
    case = doc["cases"][0]
    assert case["background_cores"] == 0.98
    assert case["outcome"] == "not judged"
    latency = next(c for c in case["checks"] if c["name"] == "latency vs baseline")
    assert latency["outcome"] == "not judged"
    assert re.search(r"\(\+1[45]\.\d%", latency["message"])
    assert "within the 25% a busy machine can add by itself: NOT JUDGED" in latency["message"]
    assert "the machine was busy: other processes kept up to 0.98 cores busy" in latency["message"]
    assert doc["session"]["measured"]["not_judged"] == ["t8-p8", "t16-p8", "the grid"]

    monkeypatch.setenv("NPUPERF_FAKE_SLOWDOWN", "1.03")  # within the threshold: busy or not, it is fine
    fine = suite.runpytest("perf_tests", NO_WAIT, "--grid-tolerance=0.1")
    assert fine.ret == 0
    fine.assert_outcomes(passed=5)

    monkeypatch.setenv("NPUPERF_FAKE_SLOWDOWN", "2.0")  # a regression no neighbour explains
    regressed = suite.runpytest("perf_tests", NO_WAIT)
    regressed.assert_outcomes(passed=2, failed=3)
    regressed.stdout.fnmatch_lines(["*above the 25% a busy machine can add by itself*REGRESSED*"])


def test_a_quiet_machine_keeps_the_teams_tolerance(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    others(monkeypatch, 0.01)
    suite.runpytest("perf_tests", "--update-baselines").assert_outcomes(passed=4, skipped=1, warnings=2)
    monkeypatch.setenv("NPUPERF_FAKE_SLOWDOWN", "1.15")
    quiet = suite.runpytest("perf_tests")
    quiet.assert_outcomes(passed=2, failed=3)
    assert "machine busy" not in quiet.stdout.str()


# calls 1-2: cold and warm-up; 3-10: the first pass; 11-18: the second pass, 1.5x slower; 19-: normal
SLOW_SECOND_PASS = "--model=prefill_ms=2,token_ms=0.5,burst_from=11,burst_to=19,burst=1.5"


def test_a_recording_measures_more_passes_until_two_agree(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    others(monkeypatch, 0.0)
    result = suite.runpytest("perf_tests", SLOW_SECOND_PASS, "--update-baselines")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "*recording: passes 1 and 2 disagree by *%; measured pass 3 to find two that agree*",
            "*baselines written: 2 case(s) to baselines/* (from 2 agreeing passes of 1 process(es) each, 4 measured)*",
        ]
    )
    (written,) = (suite.path / "baselines").rglob("*.json")
    doc = json.loads(written.read_text(encoding="utf-8"))
    assert abs(doc["cases"]["t8-p8"]["noise"]["latency_ms"]) < 0.01  # passes 3 and 4: the slow pass is not in it


def test_a_recording_whose_passes_disagree_until_its_budget_runs_out_is_refused(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    others(monkeypatch, 0.0)
    result = suite.runpytest("perf_tests", SLOW_SECOND_PASS, "--update-baselines", "--record-budget-s=0.001")
    assert result.ret == EXIT_REFUSED
    result.stdout.fnmatch_lines(
        [
            "*baselines NOT written to baselines/*: the recording passes never agreed within --record-budget-s 0.001 s "
            "(2 passes in * s: passes 1 and 2 disagree by 4*%; limit --max-noise-floor 10%): the machine was not "
            "steady; close what else runs and record again, or raise --record-budget-s*",
        ]
    )
    assert result.stdout.lines[-2].startswith(
        "BASELINES NOT WRITTEN (exit status 7): the recording passes never agreed"
    )
    assert "1 baselines not written" in result.stdout.lines[-1]
    assert not list((suite.path / "baselines").rglob("*.json"))
    assert ci_refusal().search(result.stdout.str()), ".ci/run would not say why the recording was refused"


def ci_refusal() -> re.Pattern[str]:
    """The pattern .ci/run greps a recording's log for to say why it was refused (an ERE that
    means the same in Python's re)."""
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    found = re.search(r"^refused='([^']+)'$", script, re.M)
    assert found, ".ci/run no longer defines refused='...'"
    return re.compile(found.group(1))


def test_ci_refusal_pattern_is_not_a_catch_all() -> None:
    pattern = ci_refusal()
    assert not pattern.search("baselines NOT written: the run was interrupted; nothing was accepted")
    assert not pattern.search("history NOT written to reports/history.sqlite: the machine was busy")


@pytest.mark.slow
def test_a_busy_child_process_of_ours_is_not_the_machine_being_busy() -> None:
    """The suite's own reference server runs as a child: its CPU is the suite's, not a neighbour's."""
    meter = LoadMeter()
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        _, cores = meter.measure(lambda: time.sleep(1.2))
    finally:
        child.kill()
        child.wait()
    assert cores is not None
    assert cores < 0.25
