"""``npuperf summary``: a run (or a night of devices) as markdown, for ``$GITHUB_STEP_SUMMARY``.

The banner, the cases with regressions first, the budget planner, links to the artifacts;
several results files (one per device) add a table that puts the devices side by side.
Built from the results JSON by npuperf.report.digest, as the HTML report is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from npuperf.report import digest, planner


@dataclass(frozen=True)
class Night:
    """One results document and the name its device goes by in the side-by-side table."""

    label: str
    doc: Mapping[str, Any]


def cell(text: object) -> str:
    """Text safe inside a markdown table cell: no column breaks, no markup, no line breaks."""
    out = str(text).replace("&", "&amp;").replace("<", "&lt;")  # no tag can start; "->" stays readable
    return out.replace("|", "\\|").replace("\n", " ").replace("`", "\\`")


def link(name: str, url: str) -> str:
    """A markdown list item linking ``name`` to ``url`` (brackets and spaces cannot break it)."""
    text = cell(name).replace("[", "\\[").replace("]", "\\]")
    return f"- [{text}]({url.replace(' ', '%20').replace('(', '%28').replace(')', '%29')})"


def label(doc: Mapping[str, Any]) -> str:
    env = doc.get("environment", {})
    return f"{env.get('Device', '?')}, {env.get('Engine', '?')} ({env.get('Provider', '?')}) {env.get('Model', '?')}"


def _banner(doc: Mapping[str, Any]) -> list[str]:
    b = digest.banner(doc)
    icon = {"bad": "\u274c", "warn": "\u26a0\ufe0f", "good": "\u2705"}[b.level]
    counts = " \u00b7 ".join(f"**{n}** {word}" for word, n, _ in b.counts())
    out = [f"{icon} **{cell(b.headline)}**", "", f"{counts} \u00b7 {b.total} cases", "", f"- {cell(b.worst)}"]
    if b.grid:
        out.append(f"- {cell(b.grid)}")
    out += [f"- **FAILED** {cell(failure)}" for failure in b.backend_failures]
    out += [f"- **INFEASIBLE** {cell(why)}" for why in b.infeasible]
    out.append(f"- changed since the baseline: {cell('; '.join(b.changed)) if b.changed else 'nothing recorded'}")
    out += [f"- {cell(k)}: {cell(v)}" for k, v in b.conditions]
    return out


def _cases(doc: Mapping[str, Any]) -> list[str]:
    out = [
        "| case | status | median ms | p90 ms | TTFT ms | TPOT ms | budget ms | vs baseline |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for r in digest.rows(doc):
        tpot = "-" if r.tpot_ms is None else f"{r.tpot_ms:.3f}"
        status = r.status + (f" ({', '.join(r.failed_checks)})" if r.failed_checks else "")
        out.append(
            f"| {cell(r.id)} | {cell(status)} | {r.median_ms:.2f} | {r.p90_ms:.2f} | {r.ttft_ms:.2f} | {tpot} "
            f"| {r.budget_ms:g} | {r.delta} |"
        )
    return out


def _planner(doc: Mapping[str, Any]) -> list[str]:
    settings = doc.get("settings", {})
    target, breaker = float(settings.get("latency_budget_ms", 500)), float(settings.get("breaker_ms", 2000))
    found = planner.floor_of(doc.get("session", {}))
    context = doc.get("session", {}).get("context_length")
    plans = planner.plan(planner.points_from_results(digest.cases_of(doc)), target, breaker, found, context)
    if not plans:
        return []
    floor_head, floor_rule = (" the decode floor allows |", "--:|") if found else ("", "")
    out = [
        f"| prompt | tokens in | fit | fit error | fits {target:g} ms | under the {breaker:g} ms breaker |{floor_head}",
        f"|---|--:|---|---|--:|--:|{floor_rule}",
    ]
    for p in plans:
        error = f"RMS {p.rms_ms:.2f} ms" if p.rms_ms is not None else "one case"
        beyond = (
            f" (capped by the floor; the fit said {p.fit_said})"
            if p.fit_said
            else " (extrapolated)"
            if p.extrapolated
            else ""
        )
        floor_cell = f" {p.floor_max} |" if found else ""
        out.append(
            f"| {cell(p.prompt)} | {p.prompt_tokens} | {cell(p.formula())} | {error} | {p.fits_target}{beyond} "
            f"| {p.fits_breaker} |{floor_cell}"
        )
    return out


def _side_by_side(nights: Sequence[Night]) -> list[str]:
    """Case rows, a column per device: median ms, change against that device's baseline, status."""
    out = ["| case | " + " | ".join(cell(n.label) for n in nights) + " |", "|---|" + "--:|" * len(nights)]
    for cid, devices in digest.side_by_side([n.doc for n in nights]):
        cells = ["-" if r is None else f"{r.median_ms:.2f} ms ({r.delta}) {r.status}" for r in devices]
        out.append(f"| {cell(cid)} | " + " | ".join(cell(c) for c in cells) + " |")
    return out


def summary(nights: Sequence[Night], links: Sequence[tuple[str, str]] = ()) -> str:
    """The markdown for one run, or for a night's runs on several devices (side by side first)."""
    lines = ["# npuperf latency summary", ""]
    if len(nights) > 1:
        lines += ["## Devices side by side", "", *_side_by_side(nights), ""]
    for n in nights:
        if len(nights) > 1:
            lines += [f"## {cell(n.label)}", ""]
        lines += [*_banner(n.doc), "", "### Cases, regressions first", "", *_cases(n.doc), ""]
        plan = _planner(n.doc)
        if plan:
            lines += ["### Token budgets that fit (the budget planner)", "", *plan, ""]
    if links:
        lines += ["### Artifacts", "", *(link(name, url) for name, url in links), ""]
    return "\n".join(lines)
