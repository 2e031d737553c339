"""Hostile and unlucky inputs to the morning report and the summary command.

A history that is corrupt, a folder or off; a history holding another model's runs; a fault
while drawing the charts; results files that are cut short, foreign or huge. Each: the page
(or the command) still says what it can, names the problem, and loses nothing else.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from attack.conftest import Attack
from conftest import ROOT, copy_suite, small_suite_ini
from npuperf.cli import main

pytestmark = pytest.mark.timeout(300)

OUT = ("--html=reports/r.html", "--self-contained-html", "--results-json=reports/r.json")


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    return copy_suite(pytester, monkeypatch, small_suite_ini().replace(" -p no:html", ""))


def page_of(suite: pytest.Pytester) -> str:
    return (suite.path / "reports" / "r.html").read_text(encoding="utf-8")


@pytest.mark.attack("suite: the report's history")
@pytest.mark.parametrize("kind", ["garbage", "folder", "off"])
def test_a_history_that_cannot_be_read_costs_the_trend_only(suite: pytest.Pytester, attack: Attack, kind: str) -> None:
    attack.tried()
    history = suite.path / "reports" / "h.sqlite"
    history.parent.mkdir(parents=True, exist_ok=True)
    if kind == "garbage":
        history.write_bytes(b"not a database" * 100)
    elif kind == "folder":
        history.mkdir()
    option = "--history=none" if kind == "off" else f"--history={history}"
    result = suite.runpytest("perf_tests", *OUT, option)
    page = page_of(suite)
    assert 'id="npuperf-banner"' in page
    assert 'data-chart="latency"' in page  # everything but the trend is there
    assert 'data-chart="trend"' not in page
    if kind == "off":
        assert result.ret == 0
        assert "no trend: the history is off" in page
    else:
        assert result.ret == 1  # the history was not written: said, and the run fails
        assert "history NOT written" in result.stdout.str()
        assert "no trend: " in page
        assert (suite.path / "reports" / "r.json").is_file()  # the other outputs were written


@pytest.mark.attack("suite: the report's history")
def test_a_history_shared_with_another_model_trends_this_model_only(suite: pytest.Pytester, attack: Attack) -> None:
    attack.tried()
    history = "--history=reports/h.sqlite"
    assert suite.runpytest("perf_tests", *OUT, history, "--engine=fake").ret == 0  # another identity: "sleepy"
    assert suite.runpytest("perf_tests", *OUT, history).ret == 0
    page = page_of(suite)
    assert "the trend appears from the second run (1 run so far" in page  # the other model's run is not this one's


@pytest.mark.attack("suite: the report's drawing")
def test_a_fault_while_drawing_keeps_the_report_and_says_why(
    suite: pytest.Pytester, attack: Attack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from npuperf.report import figures

    def broken(*args: object, **kwargs: object) -> str:
        raise ValueError("chart library exploded")

    attack.tried()
    monkeypatch.setattr(figures, "latency_bars", broken)
    result = suite.runpytest("perf_tests", *OUT)
    assert result.ret == 0  # the verdict is the cases', not the chart's
    page = page_of(suite)
    assert "The report's summary could not be drawn:" in page
    assert "ValueError: chart library exploded" in page
    assert "t8-p8" in page  # the log and the test table are still there
    assert "HTML report: its summary could not be drawn (ValueError: chart library exploded)" in result.stdout.str()


@pytest.mark.attack("summary: hostile results files")
@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\xff\xfe\x00garbage",
        b"[]",
        b'{"schema": "npuperf.results/1"}',
        b'{"schema": "npuperf.results/1", "cases": [{"id": "x"}]}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=["empty", "binary", "a-list", "no-cases", "cut-case", "deep"],
)
def test_summary_refuses_a_bad_results_file_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], attack: Attack, content: bytes
) -> None:
    attack.tried()
    bad = tmp_path / "r.json"
    bad.write_bytes(content)
    assert main(["summary", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"npuperf: {bad}") or "malformed" in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


@pytest.mark.attack("summary: hostile results files")
def test_summary_of_markup_everywhere_stays_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], attack: Attack
) -> None:
    attack.tried()
    doc = json.loads((ROOT / "tests" / "data" / "summary" / "device-a.json").read_text(encoding="utf-8"))
    evil = "<script>alert(1)</script>|`x`"
    doc["environment"] = {k: evil for k in doc["environment"]}
    for c in doc["cases"]:
        c["id"] = c["prompt"] = evil + c["id"]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    night = tmp_path / "night.html"
    assert main(["summary", str(path), str(path), "--html", str(night)]) == 0
    out = capsys.readouterr().out
    assert "<script>" not in out
    assert "<script>" not in night.read_text(encoding="utf-8")
    rows = [line for line in out.splitlines() if line.startswith("| &lt;script>") and "| REGRESSED |" in line]
    assert len(rows) == 2 * 9  # the cases table of each of the two runs
    assert all(len(re.split(r"(?<!\\)\|", r)) == 10 for r in rows)  # 8 columns: no cell broke its row


@pytest.mark.attack("suite: unwritable outputs")
@pytest.mark.parametrize("flag", ["--html", "--junitxml"])
def test_a_file_where_the_report_folder_should_be_is_one_line(
    suite: pytest.Pytester, attack: Attack, flag: str
) -> None:
    attack.tried()
    (suite.path / "reports").write_text("a file, not a folder", encoding="utf-8")
    result = suite.runpytest("perf_tests", f"{flag}=reports/out.file")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert f"{flag} reports/out.file: " in err
    assert "reports is a file, not a folder" in err
    assert "INTERNALERROR" not in err + result.stdout.str()
