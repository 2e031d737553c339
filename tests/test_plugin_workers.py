"""The suite with worker processes: each process loads the model and measures every case, their
medians are the verdict's unit; another host's baseline is advisory; an A/B run is paired."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import psutil
import pytest

from conftest import ROOT, copy_suite, small_suite_ini

# the sleeping fake from an importable factory: measured in fresh processes, like a real engine
INI = small_suite_ini(engine="fake-proc", repetitions=3, processes=3, min_regression_ms=0, max_background_cores=100)
ENGINE = "--model=prefill_ms=2,token_ms=0.5"


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    return copy_suite(pytester, monkeypatch, INI)


def run(suite: pytest.Pytester, *args: str) -> pytest.RunResult:
    return suite.runpytest("perf_tests", "-p", "no:randomly", ENGINE, *args)


def test_each_case_is_measured_by_every_process_and_each_keeps_its_own_samples(suite: pytest.Pytester) -> None:
    result = run(suite, "--results-json=r.json")
    result.assert_outcomes(passed=4, skipped=1, warnings=2)
    result.stdout.fnmatch_lines(
        [
            "*npuperf: measuring 2 case(s) in 3 fresh processes*",
            "*npuperf: measuring: process 3 of 3: *",
            "engine fake (sleep), model sleepy *, measured in 3 processes; slowest load *",
            "*model load took * s, within the 20 s budget (the slowest of 3 processes' loads; fastest * s)",
        ]
    )
    doc = json.loads((suite.path / "r.json").read_text(encoding="utf-8"))
    case = doc["cases"][0]
    assert len(set(case["processes"])) == 3
    assert [len(g) for g in case["groups"]["latency_ms"]] == [3, 3, 3]
    assert len(case["samples"]["latency_ms"]) == 9
    assert doc["session"]["measured"]["processes"] == 3
    assert len(doc["session"]["load_times_s"]) == 3
    assert doc["environment"]["Measured in"] == "3 fresh worker processes x 3 generations per case"


def test_a_recording_keeps_every_process_and_the_next_run_compares_with_it(suite: pytest.Pytester) -> None:
    run(suite, "--update-baselines").assert_outcomes(passed=4, skipped=1, warnings=2)
    (path,) = (suite.path / "baselines").rglob("*.json")
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["schema"] == "npuperf.baseline/4"
    assert doc["identity"]["host"]
    assert [len(g) for g in doc["cases"]["t8-p8"]["samples"]["latency_ms"]] == [3] * 6  # 2 passes x 3 processes
    same = run(suite, "--grid-tolerance=0.5", "--tolerance=0.5")
    same.assert_outcomes(passed=5)
    same.stdout.fnmatch_lines(["*whole grid (2 cases): median latency ratio *within the 50% grid threshold*"])


def test_another_hosts_baseline_is_said_first_and_its_regressions_are_advisory(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("npuperf.suite.lookup.host_id", lambda: "aaaaaaaaaaaa")
    run(suite, "--update-baselines").assert_outcomes(passed=4, skipped=1, warnings=2)
    monkeypatch.setattr("npuperf.suite.lookup.host_id", lambda: "bbbbbbbbbbbb")
    monkeypatch.setenv("NPUPERF_FAKE_SLOWDOWN", "2")
    there = run(suite, "--results-json=r.json")
    assert there.ret == 0
    there.assert_outcomes(passed=5)
    out = there.stdout.str()
    assert "the baseline baselines/" in out
    assert "was recorded on another host (aaaaaaaaaaaa; this host is bbbbbbbbbbbb): its regressions are advisory" in out
    there.stdout.fnmatch_lines(
        ["*REGRESSED, ADVISORY: against a baseline recorded on another host (aaaaaaaaaaaa)*; changed since the "
         "baseline of another host: host aaaaaaaaaaaa -> bbbbbbbbbbbb (another machine)*"]
    )  # fmt: skip
    doc = json.loads((suite.path / "r.json").read_text(encoding="utf-8"))
    assert {c["outcome"] for c in doc["cases"]} == {"advisory"}
    assert doc["session"]["baseline"]["other_host"] == "aaaaaaaaaaaa"
    strict = run(suite, "--cross-host=strict")
    strict.assert_outcomes(passed=2, failed=3)
    # this host's own baseline, once recorded, is the one compared (and enforced)
    monkeypatch.delenv("NPUPERF_FAKE_SLOWDOWN")
    run(suite, "--update-baselines").assert_outcomes(passed=5)  # compared (advisory) with host a's, then written
    assert len(list((suite.path / "baselines").rglob("*.json"))) == 2
    monkeypatch.setenv("NPUPERF_FAKE_SLOWDOWN", "2")
    run(suite).assert_outcomes(passed=2, failed=3)


def test_an_ab_run_alternates_the_reference_and_the_model_and_judges_the_pairs(suite: pytest.Pytester) -> None:
    slower = run(
        suite, "--model=prefill_ms=2,token_ms=1.0", "--ab-model=prefill_ms=2,token_ms=0.5", "--results-json=r.json"
    )
    slower.assert_outcomes(passed=2, failed=3)
    slower.stdout.fnmatch_lines(
        [
            "*measuring: process 1 of 6 (reference A)*",
            "*measuring: process 2 of 6 (model B)*",
            "*median latency * vs baseline * (+*%, 95% CI *; the median of 3 interleaved pairs' ratios)*REGRESSED*",
        ]
    )
    doc = json.loads((suite.path / "r.json").read_text(encoding="utf-8"))
    assert doc["session"]["measured"]["reference"] == "reference A (--ab-model prefill_ms=2,token_ms=0.5, interleaved)"
    same = run(suite, "--ab-model=prefill_ms=2,token_ms=0.5", "--grid-tolerance=0.2")
    same.assert_outcomes(passed=5)


def test_a_not_judged_case_is_a_skip_of_its_own_in_junit_xml(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from npuperf.machine.load import LoadMeter

    run(suite, "--processes=0", "--update-baselines").assert_outcomes(passed=4, skipped=1, warnings=2)
    monkeypatch.setattr(LoadMeter, "cores_since", lambda self, mark: 0.9)
    monkeypatch.setenv("NPUPERF_FAKE_SLOWDOWN", "1.15")
    result = run(suite, "--processes=0", "--max-background-cores=0.25", "--quiet-wait-s=0", "--junitxml=j.xml", "-v")
    result.stdout.fnmatch_lines(["*test_latency[[]t8-p8[]] NOT JUDGED*"])
    cases = {tc.get("name"): tc for tc in ET.parse(suite.path / "j.xml").iter("testcase")}
    latency = cases["test_latency[t8-p8]"]
    skipped = latency.find("skipped")
    assert skipped is not None
    assert skipped.get("message", "").startswith("NOT JUDGED: ")
    props = {p.get("name"): p.get("value") for p in latency.iter("property")}
    assert props["npuperf.verdict"] == "not judged"


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_while_workers_measure_leaves_no_worker_behind(suite: pytest.Pytester) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    cmd = [sys.executable, "-m", "pytest", "perf_tests", "-p", "no:randomly", "--model=prefill_ms=2,token_ms=40"]
    proc = subprocess.Popen(
        cmd, cwd=suite.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if "measuring: process 1 of 3" in line:
            break
    time.sleep(0.5)  # loaded, and into the cases (8 tokens x 40 ms a generation)
    workers = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
    assert workers, "a worker should be measuring now"
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out[-2000:]
    assert "Traceback" not in out
    time.sleep(0.2)
    assert not [pid for pid in workers if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
