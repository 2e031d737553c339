from __future__ import annotations

from npuperf.engines.base import Generation
from npuperf.judge.verdict import evaluate_case
from npuperf.measure import Case, CaseResult
from npuperf.prompts import Prompt
from npuperf.report import CaseRecord, row_values
from npuperf.report import html as html_report
from npuperf.report.terminal import case_table


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
        {m: result.groups(m) for m in ("latency_ms", "ttft_ms", "tpot_ms")},
        budget_ms=500,
        breaker_ms=2000,
        baseline=None if baseline is None else {"latency_ms": [baseline]},
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
    cells = html_report.row_cells({"verdict": "<script>alert(1)</script>"})
    assert "<script>" not in "".join(cells)
    (verdict,) = [c for c in cells if "col-npuperf_verdict" in c]
    assert "&lt;script&gt;" in verdict
    assert len(cells) == len(html_report.header_cells())


def test_rows_without_measurements_get_empty_cells() -> None:
    assert all(c.endswith("></td>") for c in html_report.row_cells(None))


def test_fit_lines_plan_per_prompt_with_the_planner() -> None:
    from npuperf.report.terminal import fit_lines

    (one,) = fit_lines([record(latency=10.0)], 500, 2000)
    # one budget: TTFT 7 ms, TPOT 1 ms -> 1 + floor(493 / 1) = 494 within 500 ms, 1994 within 2000 ms
    assert one.strip().startswith(
        "8-token prompt (corpus-8): 494 new tokens would fit 500 ms, 1994 the 2000 ms breaker"
    )
    assert "from its one case" in one


def test_properties_carry_each_figure_and_feed_the_html_cells() -> None:
    from npuperf.report import PROPERTY_PREFIX, properties

    props = dict(properties(record(baseline=[8.0, 8.0, 8.0])))
    assert props[PROPERTY_PREFIX + "latency_median_ms"] == "10.0"
    assert props[PROPERTY_PREFIX + "baseline_median_ms"] == "8.0"
    assert props[PROPERTY_PREFIX + "vs_baseline_pct"] == "25.0"
    assert props[PROPERTY_PREFIX + "verdict"] == "inconclusive"
    assert PROPERTY_PREFIX + "baseline_median_ms" not in dict(properties(record()))
    cells = html_report.cell_values({k.removeprefix(PROPERTY_PREFIX): v for k, v in props.items()})
    assert cells == {k: row_values(record(baseline=[8.0, 8.0, 8.0]))[k] for k in cells}  # the terminal's figures


def test_http_overhead_check_takes_negative_overheads() -> None:
    from npuperf.service.checks import overhead

    check = overhead([-0.87, 1.5, 2.0], 20.0, "streamed")
    assert not check.failed
    assert "median 1.50 ms" in check.message
    assert "min -0.87 ms" in check.message
