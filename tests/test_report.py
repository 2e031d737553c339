from __future__ import annotations

from html.parser import HTMLParser

from npuperf.engines.base import Generation
from npuperf.measure import Case, CaseResult
from npuperf.prompts import Prompt
from npuperf.report import CaseRecord, Line, row_values
from npuperf.report import html as html_report
from npuperf.report.terminal import case_table
from npuperf.verdict import evaluate_case


def record(name: str = "corpus-8", latency: float = 10.0, baseline: list[float] | None = None) -> CaseRecord:
    gen = Generation(
        prompt_tokens=8,
        requested_new_tokens=4,
        submit_ns=0,
        token_ns=tuple(int((latency - 3 + i) * 1e6) for i in range(4)),
    )
    result = CaseResult(case=Case(4, Prompt(name, "x" * 8, 8)), generations=(gen, gen))
    verdict = evaluate_case(
        "c",
        {m: result.samples(m) for m in ("latency_ms", "ttft_ms", "tpot_ms")},
        budget_ms=500,
        breaker_ms=2000,
        baseline=None if baseline is None else {"latency_ms": baseline},
        tolerance=0.1,
    )
    return CaseRecord(result=result, verdict=verdict, budget_ms=500)


def test_row_values() -> None:
    values = row_values(record(baseline=[8.0, 8.0, 8.0]))
    assert (values["prompt"], values["tokens"]) == ("8", "4")
    assert values["median"] == "10.00"
    assert values["ttft"] == "7.00"
    assert values["tpot"] == "1.00"
    assert values["decode"] == "1000"
    assert values["delta"] == "+25.0%"
    assert values["verdict"] == "inconclusive"  # 2 samples cannot show a regression
    assert row_values(record())["delta"] == "no baseline"


def test_terminal_table_aligns_columns() -> None:
    lines = case_table([record(), record(name="greeting-zh", latency=123.0)])
    assert lines[0].startswith("case")
    assert len({len(line.rstrip().rsplit("  ", 1)[0]) for line in lines}) == 1  # all cells before verdict align
    assert lines[2].startswith("t4-greeting-zh")


def test_html_cells_escape_markup() -> None:
    cells = html_report.row_cells({"median": "<script>alert(1)</script>"})
    assert "<script>" not in "".join(cells)
    (median,) = [c for c in cells if "col-npuperf_median" in c]
    assert "&lt;script&gt;" in median
    assert len(cells) == len(html_report.header_cells())


def test_rows_without_measurements_get_empty_cells() -> None:
    assert all(c.endswith("></td>") for c in html_report.row_cells(None))


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)


def test_summary_chart_has_a_bar_per_case_and_escapes_notes() -> None:
    lines = [Line("<b>note</b>"), Line("tokens  <i>ms</i>", table=True), Line("     8  5.44", table=True)]
    html = html_report.summary([record(), record(name="b", latency=20.0, baseline=[19.0, 19.0])], lines)
    parser = _Tags()
    parser.feed(html)
    assert parser.tags.count("rect") == 2
    assert parser.tags.count("pre") == 1  # the two table lines stay one block, columns kept
    assert "tokens  &lt;i&gt;ms&lt;/i&gt;\n     8  5.44" in html
    assert "&lt;b&gt;note&lt;/b&gt;" in html
    assert "stroke-dasharray" in html  # the baseline tick of the second case


def test_chart_of_nothing_is_empty() -> None:
    assert html_report.chart([]) == ""


def test_fit_lines_use_the_largest_budget_case_per_prompt() -> None:
    from npuperf.report.terminal import fit_lines

    (line,) = fit_lines([record(latency=10.0), record(latency=10.0)])
    # TTFT 7 ms, TPOT 1 ms, budget 500 ms -> 1 + floor(493 / 1) = 494
    assert line.strip().startswith("8-token prompt (corpus-8): 494 new tokens would fit 500 ms")


def test_http_overhead_check_takes_negative_overheads() -> None:
    from npuperf.service_checks import overhead

    check = overhead([-0.87, 1.5, 2.0], 20.0, "streamed")
    assert not check.failed
    assert "median 1.50 ms" in check.message
    assert "min -0.87 ms" in check.message
