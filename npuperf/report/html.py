"""pytest-html extras: the result table's cells, and keeping pytest-html's own markup inert.

The block above the table (banner, charts, planner...) is npuperf.report.page.

Templates autoescape, so a case id or message can never inject markup. pytest-html itself
puts two things into its page as markup without escaping them: the environment table's
values (rendered with innerHTML) and the test id cell. ``inert_environment`` and
``inert_test_id`` escape those, so a model folder named ``<img src=x onerror=...>`` shows
as text (tests/attack/test_suite_attacks.py opens the page in Chromium to prove it).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, MutableMapping
from typing import Any

import markupsafe

from npuperf.report.jinja import ENV

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
    return [ENV.get_template("header_cell.html.j2").render(key=k, title=t) for k, t in COLUMNS]


def _fixed(text: str | None, digits: int) -> str:
    return "" if text is None else f"{float(text):.{digits}f}"


def cell_values(props: Mapping[str, str]) -> dict[str, str]:
    """The result table's cells from a case's properties (``npuperf.report.properties``)."""
    if not props:
        return {}
    delta = props.get("vs_baseline_pct")
    return {
        "prompt": props.get("prompt_tokens", ""),
        "tokens": props.get("tokens_generated", ""),
        "median": _fixed(props.get("latency_median_ms"), 2),
        "p90": _fixed(props.get("latency_p90_ms"), 2),
        "ttft": _fixed(props.get("ttft_median_ms"), 2),
        "tpot": _fixed(props.get("tpot_median_ms"), 2) or "-",
        "decode": _fixed(props.get("decode_tokens_per_s"), 0) or "-",
        "delta": "no baseline" if delta is None else f"{float(delta):+.1f}%",
        "verdict": props.get("verdict", ""),
    }


def row_cells(props: Mapping[str, str] | None) -> list[str]:
    """Cells for one result row from the case's properties; a test without measurements gets empty cells."""
    values = cell_values(props or {})
    tpl = ENV.get_template("row_cell.html.j2")
    return [tpl.render(key=k, value=values.get(k, "")) for k, _ in COLUMNS]
