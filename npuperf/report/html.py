"""pytest-html extras: result-table cells and the summary chart, from jinja2 templates.

Templates autoescape, so a case id or message can never inject markup. pytest-html itself
puts two things into its page as markup without escaping them: the environment table's
values (rendered with innerHTML) and the test id cell. ``inert_environment`` and
``inert_test_id`` escape those, so a model folder named ``<img src=x onerror=...>`` shows
as text (tests/attack/test_suite_attacks.py opens the page in Chromium to prove it).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import jinja2
import markupsafe

from npuperf.report import CaseRecord, Line, row_values

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("npuperf.report", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

COLUMNS = (
    ("prompt", "Prompt tok"),
    ("tokens", "New tok"),
    ("median", "Median ms"),
    ("p90", "p90 ms"),
    ("ttft", "TTFT ms"),
    ("tpot", "TPOT ms"),
    ("decode", "Decode tok/s"),
    ("delta", "vs baseline"),
    ("verdict", "Verdict"),
)


def inert(value: Any) -> Any:
    """``value`` as text that HTML shows and never runs: strings escaped, mappings' keys and
    values escaped (pytest-html renders them as "key: value" list items), others as text."""
    if isinstance(value, Mapping):
        return {html.escape(str(k)): inert(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [inert(v) for v in value]
    return html.escape(str(value))


def inert_environment(environment: MutableMapping[str, Any]) -> None:
    """Escape every value of the environment table in place, once, just before the page is
    written (its keys are set with textContent, so they stay as they are)."""
    for key, value in environment.items():
        environment[key] = inert(value)


def inert_test_id(nodeid: str, when: str, cells: list[str]) -> None:
    """pytest-html's test id cell is f'<td class="col-testId">{nodeid}</td>', unescaped: redo it escaped."""
    test_id = nodeid if when == "call" else f"{nodeid}::{when}"
    for i, cell in enumerate(cells):
        if cell.startswith('<td class="col-testId">'):
            cells[i] = str(markupsafe.Markup('<td class="col-testId">{}</td>').format(test_id))


def header_cells() -> list[str]:
    return [_ENV.get_template("header_cell.html.j2").render(key=k, title=t) for k, t in COLUMNS]


def row_cells(values: Mapping[str, str] | None) -> list[str]:
    """Cells for one result row; a test without measurements gets empty cells."""
    tpl = _ENV.get_template("row_cell.html.j2")
    return [tpl.render(key=k, value=(values or {}).get(k, "")) for k, _ in COLUMNS]


@dataclass(frozen=True)
class Bar:
    label: str
    x: float
    width: float
    median_y: float
    p90_y: float
    baseline_y: float | None
    budget_y: float | None
    failed: bool
    title: str


def chart(records: Sequence[CaseRecord], height: float = 220.0, bar: float = 26.0, gap: float = 12.0) -> str:
    """An inline SVG: median latency per case (bar), p90 (whisker), baseline (tick), budget (line)."""
    if not records:
        return ""
    top = 1.15 * max(
        max(r.result.latency.p90, r.verdict.regression.baseline_median if r.verdict.regression else 0.0)
        for r in records
    )

    def y(value: float) -> float:
        return height - min(value, top) / top * height

    bars = []
    for i, rec in enumerate(records):
        reg = rec.verdict.regression
        base = reg.baseline_median if reg is not None and reg.baseline_median else None
        values = row_values(rec)
        bars.append(
            Bar(
                label=rec.case_id,
                x=gap + i * (bar + gap),
                width=bar,
                median_y=y(rec.result.latency.median),
                p90_y=y(rec.result.latency.p90),
                baseline_y=None if base is None else y(base),
                budget_y=y(rec.budget_ms) if rec.budget_ms <= top else None,
                failed=bool(rec.verdict.failures),
                title=(
                    f"{rec.result.case.label}: median {values['median']} ms, p90 {values['p90']} ms, "
                    f"budget {values['budget']} ms, vs baseline {values['delta']}"
                ),
            )
        )
    width = gap + len(records) * (bar + gap) + 60  # room for the last rotated label
    off_scale = sorted({r.budget_ms for r in records if r.budget_ms > top})
    return _ENV.get_template("chart.svg.j2").render(bars=bars, width=width, height=height, top=top, off_scale=off_scale)


@dataclass(frozen=True)
class Block:
    """Consecutive summary lines of one kind: a table (kept as columns) or plain lines."""

    table: bool
    lines: tuple[Line, ...]


def blocks(lines: Sequence[Line]) -> list[Block]:
    """Group the summary so that each run of table lines becomes one block."""
    out: list[Block] = []
    for line in lines:
        if out and out[-1].table == line.table:
            out[-1] = Block(line.table, (*out[-1].lines, line))
        else:
            out.append(Block(line.table, (line,)))
    return out


def summary(records: Sequence[CaseRecord], lines: Sequence[Line]) -> str:
    """The block above the results table: the run's summary (as in the terminal), the chart and a legend."""
    svg = markupsafe.Markup(chart(records))  # rendered by an autoescaping template above
    return _ENV.get_template("summary.html.j2").render(chart=svg, blocks=blocks(lines), count=len(records))
