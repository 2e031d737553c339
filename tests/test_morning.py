"""The morning answer: banner, cases worst first, the HTML block, the markdown summary and the
night's page, from results JSON files of real (virtual-clock fake) runs under tests/data/summary.

device-a.json: a run 1.3x slower than its baseline with the fake runtime upgraded (every case
regressed, the grid too). device-b.json: a run at its baseline speed judged against a 5 ms
budget and a 10 ms breaker (some cases over either).

The markdown summary is compared with golden files; regenerate deliberately with NPUPERF_REGOLD=1.
"""

from __future__ import annotations

import copy
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT
from npuperf.cli import main
from npuperf.report import digest, markdown, page
from npuperf.report.trends import Trends

DATA = ROOT / "tests" / "data" / "summary"
NO_TREND = Trends.none("no trend here")


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))
    return doc


def golden(name: str, text: str) -> None:
    path = DATA / name
    if os.environ.get("NPUPERF_REGOLD"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} changed; NPUPERF_REGOLD=1 if on purpose"


# ----- the banner and the cases ------------------------------------------------------------------


def test_banner_of_a_regressed_run() -> None:
    b = digest.banner(load("device-a"))
    assert (b.total, b.regressed, b.passed, b.over_budget, b.trips_breaker) == (9, 9, 0, 0, 0)
    assert b.level == "bad"
    assert b.headline == "FAILED: 9 regressed, the grid regressed"
    assert b.worst.startswith("worst: ")
    assert "vs baseline" in b.worst
    assert b.changed == ("fake 1 -> 2",)
    assert ("engine", "fake-clock (virtual)") in b.conditions
    assert ("device", "fake device A (virtual clock)") in b.conditions


def test_banner_counts_budget_and_breaker_separately() -> None:
    doc = load("device-b")
    b = digest.banner(doc)
    over = [
        c["id"]
        for c in doc["cases"]
        if any(x["name"] == "latency budget" and x["outcome"] == "failed" for x in c["checks"])
    ]
    trips = [
        c["id"]
        for c in doc["cases"]
        if any(x["name"] == "circuit breaker" and x["outcome"] == "failed" for x in c["checks"])
    ]
    assert over
    assert trips
    assert (b.over_budget, b.trips_breaker, b.regressed) == (len(over), len(trips), 0)
    assert b.headline.startswith(f"FAILED: {len(over)} over budget, {len(trips)} would trip the breaker")


def test_the_worst_case_is_the_largest_regression() -> None:
    doc = load("device-a")
    rows = digest.rows(doc)
    ratios = [r.ratio or 0 for r in rows]
    assert ratios == sorted(ratios, reverse=True)  # all regressed: largest first
    assert digest.banner(doc).worst.startswith(f"worst: {rows[0].id} ")


def test_rows_put_regressions_then_breaker_then_budget_then_the_rest() -> None:
    doc = load("device-b")
    case = copy.deepcopy(doc["cases"][-1])
    case["id"] = "t99-regressed"
    case["checks"] = [{"name": "latency vs baseline", "outcome": "failed", "value": 1, "limit": 1, "message": ""}]
    case["outcome"] = "failed"
    doc["cases"].append(case)
    statuses = [r.status for r in digest.rows(doc)]
    assert statuses[0] == "REGRESSED"
    order = {"REGRESSED": 0, "TRIPS BREAKER": 1, "OVER BUDGET": 2, "FAILED": 3, "INCONCLUSIVE": 4}
    ranks = [order.get(s, 5) for s in statuses]
    assert ranks == sorted(ranks)


def test_a_passing_run_is_green_and_a_run_without_baseline_says_so() -> None:
    doc = load("device-b")
    for c in doc["cases"]:
        c["checks"] = [x for x in c["checks"] if x["name"] not in ("latency budget", "circuit breaker")]
        c["outcome"] = "ok"
    assert digest.banner(doc).level == "good"
    for c in doc["cases"]:
        c["baseline"] = None
    b = digest.banner(doc)
    assert (b.level, b.no_baseline) == ("warn", len(doc["cases"]))
    assert b.headline == f"PASSED with {len(doc['cases'])} without a baseline"


@pytest.mark.parametrize("doc", [{}, {"schema": "other/1", "cases": []}, {"schema": "npuperf.results/1"}])
def test_a_foreign_document_is_refused(doc: dict[str, Any]) -> None:
    with pytest.raises(digest.DigestError):
        digest.rows(doc)


# ----- the HTML block --------------------------------------------------------------------------


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.tags: list[str] = []
        self.tables: dict[str, int] = {}
        self._table: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append(tag)
        if a.get("id"):
            self.ids.append(str(a["id"]))
        if tag == "table":
            self._table = str(a.get("id"))
            self.tables[self._table] = 0
        if tag == "tr" and self._table is not None:
            self.tables[self._table] += 1


def parse(html: str) -> Elements:
    p = Elements()
    p.feed(html)
    return p


def test_section_has_banner_charts_planner_cases_and_unique_ids() -> None:
    doc = load("device-a")
    html = page.section(doc, NO_TREND)
    p = parse(html)
    assert "npuperf-banner" in p.ids
    assert 'class="banner bad"' in html
    assert len(re.findall(r'<svg class="npuperf-chart" data-chart="(\w+)"', html)) == 3  # latency, samples, gaps
    assert p.tables["npuperf-planner-table"] == 1 + 3  # header + 3 prompts
    assert p.tables["npuperf-cases-table"] == 1 + 9
    assert len(p.ids) == len(set(p.ids)), "ids repeat across the inline SVGs"
    assert "no trend here" in html


def test_latency_chart_draws_the_budget_and_the_breaker_when_near_the_bars() -> None:
    html = page.section(load("device-b"), NO_TREND)  # 5 ms budget, 10 ms breaker, bars of 4-10 ms
    chart = html[html.index('data-chart="latency"') : html.index("</svg>", html.index('data-chart="latency"'))]
    assert "5 ms budget" in chart
    assert "10 ms breaker" in chart
    assert "\u2191" not in chart  # nothing named off scale
    far = page.section(load("device-a"), NO_TREND)  # 500 / 2000 ms against bars of ~10 ms
    assert "500 ms budget \u2191" in far
    assert "2000 ms breaker \u2191" in far


def test_the_http_table_is_a_real_table() -> None:
    doc = load("device-b")
    doc["session"]["service"] = {
        "url": "http://127.0.0.1:1",
        "http": [
            {"new_tokens": 8, "samples": {"latency_ms": [5.0, 6.0, 7.0], "ttft_ms": [2.0, 2.0, 2.0]},
             "runtime_reported": {"server_latency_ms": 3.5, "http_overhead_ms": 1.5}},
        ],
    }  # fmt: skip
    html = page.section(doc, NO_TREND)
    assert parse(html).tables["npuperf-http-table"] == 2
    assert "<td>8</td><td>6.00</td>" in html


def test_markup_in_names_stays_text_in_the_block_and_its_charts() -> None:
    doc = load("device-a")
    evil = "<img src=x onerror=alert(1)>"
    for c in doc["cases"]:
        c["prompt"] = evil
        c["prompt_text"] = evil
        c["id"] = evil + c["id"]
    doc["environment"]["Model"] = evil
    doc["session"]["baseline"]["changed"] = [evil]
    html = page.section(doc, NO_TREND)
    assert "<img" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_the_page_gives_cjk_fonts_of_windows_and_linux() -> None:
    html = page.section(load("device-b"), NO_TREND)
    for font in ("Microsoft YaHei", "Noto Sans CJK SC", "WenQuanYi Micro Hei", "PingFang SC"):
        assert font in html
    assert "&#34;" not in html[: html.index("</style>")]  # quotes inside <style> are not escaped
    assert "你好" in html  # the team prompt's text, in the planner


def test_night_page_puts_devices_side_by_side_with_ids_unique() -> None:
    html = page.night([("A", load("device-a")), ("B", load("device-b"))])
    p = parse(html)
    assert p.tables["npuperf-side-by-side"] == 1 + 9
    assert len(p.ids) == len(set(p.ids))
    assert html.count('data-chart="latency"') == 2
    assert html.startswith("<!DOCTYPE html>")


# ----- markdown ------------------------------------------------------------------------------


def test_markdown_summary_of_one_run_matches_golden() -> None:
    night = markdown.Night("a", load("device-a"))
    golden("summary-one.md", markdown.summary([night], [("HTML report", "https://example.invalid/1")]))


def test_markdown_summary_of_a_night_matches_golden() -> None:
    nights = [markdown.Night("A", load("device-a")), markdown.Night("B", load("device-b"))]
    golden("summary-night.md", markdown.summary(nights))


def test_markdown_regressions_come_first_and_cells_cannot_break_the_table() -> None:
    doc = load("device-b")
    doc["cases"][0]["id"] = "a|b<script>"
    text = markdown.summary([markdown.Night("x", doc)])
    assert "<script>" not in text
    assert "| a\\|b&lt;script> |" in text
    block = text.split("### Cases, regressions first\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    header, rows = block[0], block[2:]
    assert len(rows) == len(doc["cases"])
    assert all(len(re.split(r"(?<!\\)\|", r)) == len(header.split("|")) for r in rows)  # no cell broke a row
    order = {"REGRESSED": 0, "TRIPS BREAKER": 1, "OVER BUDGET": 2}
    ranks = [order.get(re.split(r"(?<!\\)\|", r)[2].strip(), 5) for r in rows]
    assert ranks == sorted(ranks)
    assert ranks[0] == 1


def test_link_text_and_urls_cannot_break_out() -> None:
    assert markdown.link("a](javascript:x)", "https://h/x y)z") == "- [a\\](javascript:x)](https://h/x%20y%29z)"


# ----- the command ---------------------------------------------------------------------------


def test_summary_command_prints_and_appends(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = str(DATA / "device-a.json")
    assert main(["summary", a]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("# npuperf latency summary")
    out = tmp_path / "step-summary.md"
    out.write_text("before\n", encoding="utf-8")
    assert main(["summary", a, "--output", str(out), "--link", "JSON=reports/perf-results.json"]) == 0
    text = out.read_text(encoding="utf-8")
    assert text.startswith("before\n# npuperf latency summary")  # appended, as GitHub expects
    assert "- [JSON](reports/perf-results.json)" in text


def test_summary_command_writes_the_night_page(tmp_path: Path) -> None:
    night = tmp_path / "night.html"
    assert main(["summary", str(DATA / "device-a.json"), str(DATA / "device-b.json"), "--html", str(night)]) == 0
    assert "npuperf-side-by-side" in night.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["summary", "nope.json"], "nope.json: not a readable results JSON file"),
        (["summary", "{data}/../golden/baseline.json"], "not an npuperf results file"),
        (["summary", "{data}/device-a.json", "--link", "x"], "expected NAME=URL"),
        (["summary", "{data}/device-a.json", "--link", "x=javascript:alert(1)"], "must be http(s)://"),
        (["summary", "{data}/device-a.json", "--output", "{tmp}/no/such/dir/x.md"], "cannot append to it"),
        (["summary", "{tmp}/cut.json"], "malformed"),
    ],
)
def test_summary_command_errors_name_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    cut = load("device-a")
    del cut["cases"][0]["summary"]
    (tmp_path / "cut.json").write_text(json.dumps(cut), encoding="utf-8")
    argv = [a.format(data=DATA, tmp=tmp_path) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_failed_backend_checks_and_an_interrupted_run_reach_the_banner() -> None:
    doc = load("device-b")
    for c in doc["cases"]:
        c["checks"] = [x for x in c["checks"] if x["name"] not in ("latency budget", "circuit breaker")]
        c["outcome"] = "ok"
    doc["session"]["backend_checks"].append(
        {"name": "runs on NPU", "outcome": "failed", "value": 1, "limit": 0, "message": "1 node fell back to the CPU"}
    )
    b = digest.banner(doc)
    assert (b.level, b.headline) == ("bad", "FAILED: 1 backend check(s) failed")
    assert b.backend_failures == ("runs on NPU: 1 node fell back to the CPU",)
    assert "runs on NPU: 1 node fell back to the CPU" in page.section(doc, NO_TREND)
    assert "- **FAILED** runs on NPU: 1 node fell back to the CPU" in markdown.summary([markdown.Night("x", doc)])
    doc["session"]["backend_checks"].pop()
    doc["session"]["outcome"] = "interrupted"
    b = digest.banner(doc)
    assert b.level == "warn"
    assert b.headline.startswith("INTERRUPTED after 9 case(s), a partial grid; PASSED")


def test_a_chart_that_fails_to_draw_leaves_no_figure_open() -> None:
    import matplotlib.pyplot as plt

    from npuperf.report import figures

    def broken(ax: object, group: object) -> None:
        raise ValueError("bad data")

    before = set(plt.get_fignums())
    with pytest.raises(ValueError, match="bad data"):
        figures._chart("x", figures.by_prompt(digest.cases_of(load("device-a"))), broken)
    assert set(plt.get_fignums()) == before
    figures.latency_bars(digest.cases_of(load("device-a")), figures.Limits(500, 2000))
    assert set(plt.get_fignums()) == before  # and a drawn one is closed once written


# ----- what could not be judged, another host, an A/B run -------------------------------------------


def _with_outcomes(doc: dict[str, Any], outcome: str) -> dict[str, Any]:
    """device-b's run with every case's regression checks set to ``outcome`` (and nothing failed)."""
    out = copy.deepcopy(doc)
    for case in out["cases"]:
        case["outcome"] = outcome
        for check in case["checks"]:
            check["outcome"] = outcome if check["name"].endswith("vs baseline") else "ok"
    out["session"]["grid"] = {**(out["session"].get("grid") or {}), "outcome": "ok", "message": "ok"}
    return out


def test_a_run_that_could_not_judge_is_neither_passed_nor_failed() -> None:
    doc = _with_outcomes(load("device-b"), "not judged")
    doc["session"]["grid"]["outcome"] = "not judged"
    b = digest.banner(doc)
    assert b.level == "warn"
    assert b.headline.startswith("NOT JUDGED: 9 case(s) and the grid measured while the machine stayed busy")
    assert ("not judged", 9, "warn") in b.counts()
    assert [r.status for r in digest.rows(doc)][:1] == ["NOT JUDGED"]
    assert "NOT JUDGED" in markdown.summary([markdown.Night("x", doc)])


def test_a_failure_outranks_not_judged_and_says_both() -> None:
    doc = _with_outcomes(load("device-b"), "not judged")
    doc["cases"][0]["checks"][0]["outcome"] = "failed"  # its latency budget
    headline = digest.banner(doc).headline
    assert headline.startswith("FAILED: 1 over budget")
    assert headline.endswith("; not judged: 9 case(s)")


def test_regressions_against_another_hosts_baseline_are_advisory_and_said_so() -> None:
    doc = _with_outcomes(load("device-b"), "advisory")
    doc["session"]["baseline"] = {"other_host": "aaaaaaaaaaaa", "cross_host": "advisory", "changed": []}
    b = digest.banner(doc)
    assert b.level == "warn"
    assert b.headline == (
        "PASSED with 9 above their threshold against the baseline of another host (aaaaaaaaaaaa): advisory (advisory)"
    )
    assert ("compared with", "the baseline of another host (aaaaaaaaaaaa): advisory") in b.conditions


def test_an_ab_run_names_its_reference() -> None:
    doc = copy.deepcopy(load("device-a"))
    doc["session"]["measured"] = {"ab": {"model": "old"}, "reference": "reference A (--ab-model old, interleaved)"}
    assert ("compared with", "reference A (--ab-model old, interleaved)") in digest.banner(doc).conditions


def test_npuperf_ab_runs_the_suite_with_the_reference_alternating() -> None:
    import argparse

    from npuperf.cli import ab
    from npuperf.cli.runs import CliError

    args = argparse.Namespace(a="old/genie_config.json", b="new/genie_config.json", a_python=None, pairs=3,
                              pytest_args=["--", "--engine=genie"])  # fmt: skip
    cmd = ab.command(args)
    assert cmd[1:4] == ["-m", "pytest", "perf_tests"]
    assert cmd[4:] == [
        "-m",
        "not npu and not service",
        "--model=new/genie_config.json",
        "--ab-model=old/genie_config.json",
        "--processes=3",
        "--engine=genie",
    ]
    with pytest.raises(CliError, match="name the reference"):
        ab.command(argparse.Namespace(a=None, b=None, a_python=None, pairs=None, pytest_args=[]))
    assert main(["ab", "--pairs", "0", "--a", "x"]) == 2
