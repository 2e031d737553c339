"""The report as the team opens it: after two runs of the suite, in a real browser.

Two runs of a small grid (virtual-clock fake engine, a team prompt in Chinese) into one
history; the second run's page must show the banner, the latency charts, the planner and the
trend, load in headless Chromium without a console message, and stay one small file.
The JUnit XML of the same run carries each case's figures.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import chromium, copy_suite, small_suite_ini

pytestmark = pytest.mark.timeout(300)

OUT = ("--html=reports/r.html", "--self-contained-html", "--history=reports/h.sqlite", "--junitxml=reports/j.xml")


@pytest.fixture
def second_report(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    ini = small_suite_ini().replace(" -p no:html", "").replace("team_prompts = none", "team_prompts = greeting-zh")
    suite = copy_suite(pytester, monkeypatch, ini)
    first = suite.runpytest("perf_tests", *OUT, "--update-baselines")
    assert first.ret == 0, first.stdout.str()[-3000:]
    second = suite.runpytest("perf_tests", *OUT)
    assert second.ret == 0, second.stdout.str()[-3000:]
    return suite.path / "reports"


def test_second_report_has_banner_charts_planner_and_trend(second_report: Path) -> None:
    page = (second_report / "r.html").read_text(encoding="utf-8")
    assert 'id="npuperf-banner"' in page
    charts = re.findall(r'data-chart="(\w+)"', page)
    assert {"latency", "samples", "gaps", "trend"} <= set(charts)
    assert 'id="npuperf-planner-table"' in page
    assert "runs 1-2 of this device" in page  # the trend spans both runs
    assert "baseline accepted after run 1" in page  # the first run recorded the baseline
    assert "你好" in page
    assert (second_report / "r.html").stat().st_size < 3_000_000


def test_junit_xml_carries_each_case_figures(second_report: Path) -> None:
    tree = ET.parse(second_report / "j.xml")
    cases = [tc for tc in tree.iter("testcase") if "test_latency[" in tc.get("name", "")]
    assert len(cases) == 4  # 8 and 16 tokens x the corpus and the team prompt
    for tc in cases:
        props = {p.get("name"): p.get("value") for p in tc.iter("property")}
        assert float(props["npuperf.latency_median_ms"] or 0) > 0
        assert props["npuperf.verdict"] == "ok"
        assert "npuperf.vs_baseline_pct" in props
    suite_props = {p.get("name"): p.get("value") for p in tree.getroot().iter("property")}
    assert suite_props["npuperf.engine"] == "fake-clock"


def test_report_opens_in_chromium_without_console_messages(second_report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    seen = chromium(second_report / "r.html", screenshot=shot)
    assert seen.console == [], seen.console
    assert 'id="npuperf-banner"' in seen.dom
    assert len(re.findall(r'<svg class="npuperf-chart"', seen.dom)) >= 4
    # pytest-html's script ran: the results table's rows are built by it from the page's data
    assert len(re.findall(r'<tbody class="results-table-row', seen.dom)) >= 4
    assert shot.stat().st_size > 50_000  # a page was drawn, not a blank screen
