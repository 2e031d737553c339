"""The top of the HTML report: what the team reads in the morning, from the run's results JSON.

The banner (did anything regress, what is over budget, the worst case, the conditions and
what changed), the latency per token budget per prompt with the budget, the breaker and the
baseline, the budget planner, the trend over the last runs, the distributions, the cases
worst first, the service's HTTP table, and the run's log as the terminal printed it.

One self-contained block: inline SVG charts and CSS, no script, nothing fetched at view time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import markupsafe

from npuperf.judge import history
from npuperf.judge.stats import median, percentile
from npuperf.report import Line, digest, figures, planner
from npuperf.report.jinja import ENV
from npuperf.report.trends import Trends, from_history

# Latin first, then the CJK faces Windows (YaHei, JhengHei, Yu Gothic), macOS (PingFang) and
# Linux (Noto / Source Han, WenQuanYi) ship, so the team's prompts (你好, 分析数据) render.
FONT_STACK = (
    'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, '
    '"Microsoft YaHei UI", "Microsoft YaHei", "Microsoft JhengHei", "Yu Gothic UI", "Meiryo", '
    '"PingFang SC", "Hiragino Sans GB", "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", '
    '"WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Droid Sans Fallback", sans-serif'
)


@dataclass(frozen=True)
class HttpRow:
    tokens: int
    median: str
    p90: str
    ttft: str
    server: str
    overhead: str


@dataclass(frozen=True)
class Block:
    """Consecutive log lines of one kind: a table (kept as columns) or plain lines."""

    table: bool
    lines: tuple[Line, ...]


def blocks(lines: Sequence[Line]) -> list[Block]:
    """Group the log so that each run of table lines becomes one block."""
    out: list[Block] = []
    for line in lines:
        if out and out[-1].table == line.table:
            out[-1] = Block(line.table, (*out[-1].lines, line))
        else:
            out.append(Block(line.table, (line,)))
    return out


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def http_rows(session: Mapping[str, Any]) -> list[HttpRow]:
    """The service section's grid over HTTP, one row per token budget."""
    out = []
    for entry in (session.get("service") or {}).get("http", []):
        latency = entry["samples"].get("latency_ms") or []
        ttft = entry["samples"].get("ttft_ms") or []
        reported = entry.get("runtime_reported") or {}
        out.append(
            HttpRow(
                tokens=entry["new_tokens"],
                median=_ms(median(latency) if latency else None),
                p90=_ms(percentile(latency, 90) if latency else None),
                ttft=_ms(median(ttft) if ttft else None),
                server=_ms(reported.get("server_latency_ms")),
                overhead=_ms(reported.get("http_overhead_ms")),
            )
        )
    return out


def trends_for(doc: Mapping[str, Any], history_path: Path | None) -> Trends:
    """The trend of this run, or an empty one whose note says why there is none."""
    if history_path is None:
        return Trends.none("no trend: the history is off (--history none)")
    try:
        return from_history(history_path, doc)
    except history.HistoryError as exc:
        return Trends.none(f"no trend: {exc}")


def section(doc: Mapping[str, Any], trends: Trends, log: Sequence[Line] = ()) -> str:
    """The morning block of the report (HTML), from a results JSON document."""
    cases = digest.cases_of(doc)
    settings = doc.get("settings", {})
    session = doc.get("session", {})
    target = float(settings.get("latency_budget_ms", 500.0))
    breaker = float(settings.get("breaker_ms", 2000.0))
    limits = figures.Limits(target, breaker)
    charts = {
        "latency": figures.latency_bars(cases, limits),
        "samples": figures.distributions(cases),
        "gaps": figures.gaps(cases),
        "trend": figures.trend(trends.series, trends.marks, list(trends.accepted)),
    }
    return ENV.get_template("morning.html.j2").render(
        font_stack=markupsafe.Markup(FONT_STACK),  # a constant, inside <style> (entities are not decoded there)
        banner=digest.banner(doc),
        rows=digest.rows(doc),
        plans=planner.plan(
            planner.points_from_results(cases),
            target,
            breaker,
            planner.floor_of(session),
            session.get("context_length"),
        ),
        floor=session.get("floor"),
        target=target,
        breaker=breaker,
        cold=planner.cold_overhead_ms(session),
        session=session,
        charts={k: markupsafe.Markup(v) for k, v in charts.items()},  # matplotlib's SVG; our text is escaped
        trends=trends,
        http=http_rows(session),
        blocks=blocks(log),
    )


def night(runs: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    """A self-contained page for a night's runs on several devices: a side-by-side table of the
    cases, then each device's banner, charts, planner and cases (no trend: no history here)."""
    no_trend = Trends.none("the trend of each device is in its own report")
    sections = [
        (name, markupsafe.Markup(figures.prefix_ids(section(doc, no_trend), f"d{i}")))
        for i, (name, doc) in enumerate(runs)
    ]
    return ENV.get_template("night.html.j2").render(
        font_stack=markupsafe.Markup(FONT_STACK),
        devices=[name for name, _ in runs],
        table=digest.side_by_side([doc for _, doc in runs]),
        sections=sections,
    )


def fallback(reason: str, log: Sequence[Line]) -> str:
    """What the report shows when the block above could not be drawn: why, and the run's log."""
    return ENV.get_template("fallback.html.j2").render(reason=reason, blocks=blocks(log))
